//! Maintenance.Snapshot's file: the store at one revision as an etcd snapshot database
//! (snapshot/export.rs), written next to the raft snapshots and removed once streamed.
//!
//! Consistent without stopping writes: under the kv lock only long enough to note the
//! revision and applied index and copy the small records (leases, members, alarms, auth,
//! meta); key versions are immutable up to that revision, and the compaction gate keeps a
//! compaction from removing any while they are copied.

use bytes::Bytes;

use super::error::{Error, Result};
use super::member::Member;
use crate::mvcc::Revision;
use crate::snapshot::export::{DbMeta, DbWriter};
use crate::storage::{schema, Tree};

/// Records read per backend call.
const PAGE: usize = 1024;

/// A snapshot database on disk, removed when dropped.
pub struct SnapshotDb {
    pub file: tempfile::NamedTempFile,
    pub size: u64,
    pub revision: i64,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

impl Member {
    /// Write the store as an etcd snapshot database.
    pub async fn snapshot_db(&self) -> Result<SnapshotDb> {
        let state = self.state.clone();
        let dir = self.settings.data_dir.join("member").join("snap");
        let cluster_version = self.cluster_version();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            std::fs::create_dir_all(&dir).map_err(internal)?;
            // The gate before the kv lock, in the compactor's order.
            let gate = state.kv.read().expect("kv lock").compaction_gate();
            let _no_compaction = gate.read().expect("compaction gate");
            let backend = state.backend();
            let (records, revision, applied) = {
                let kv = state.kv.read().expect("kv lock");
                let mut records = backend
                    .range(Tree::State, &[], &[schema::KEY], 0)
                    .map_err(internal)?;
                records.extend(
                    backend
                        .range(Tree::State, &[schema::KEY + 1], &[], 0)
                        .map_err(internal)?,
                );
                (records, kv.current_rev(), state.last_applied())
            };
            let file = tempfile::Builder::new()
                .prefix("etcd-snapshot-")
                .suffix(".db")
                .tempfile_in(&dir)
                .map_err(internal)?;
            let meta = DbMeta {
                consistent_index: applied.map_or(0, |l| l.index),
                term: applied.map_or(0, |l| l.leader_id.term),
                cluster_version,
            };
            let mut w = DbWriter::create(file.path(), &meta).map_err(internal)?;
            for (k, v) in &records {
                w.put_state(k, v).map_err(internal)?;
            }
            let end = Revision::backend_key_from_main(revision + 1);
            let mut start = Bytes::from_static(&[schema::KEY]);
            loop {
                let page = backend
                    .range(Tree::State, &start, &end, PAGE)
                    .map_err(internal)?;
                for (k, v) in &page {
                    w.put_key_version(k, v).map_err(internal)?;
                }
                match page.last() {
                    Some((last, _)) if page.len() == PAGE => {
                        let mut next = last.to_vec();
                        next.push(0);
                        start = Bytes::from(next);
                    }
                    _ => break,
                }
            }
            let size = w.finish(file.path()).map_err(internal)?;
            crate::metrics::BACKEND_SNAPSHOT_SECONDS.observe(started.elapsed().as_secs_f64());
            Ok(SnapshotDb {
                file,
                size,
                revision,
            })
        })
        .await
        .map_err(internal)?
    }
}

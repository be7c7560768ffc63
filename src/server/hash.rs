//! The Maintenance hashes (etcd: v3rpc/maintenance.go Hash and HashKV).
//!
//! HashKV is etcd's: CRC-32C over the stored versions up to a revision (mvcc/hash.rs), so
//! the same history of writes and compactions hashes the same as on etcd. The plan is
//! made under the kv lock; the scan runs on a blocking thread without it.
//!
//! Hash covers the whole state: the versions HashKV at the current revision counts,
//! then every other record of the state tree (leases, members, alarms, auth, meta) but
//! `last_applied`, the one record that is about this member's log rather than the data
//! (etcd's Hash skips the consistent index for the same reason). Stored versions that a
//! compaction has yet to remove do not count, so members that are at the same applied
//! index hash equal however far their compactors have got. It holds the kv lock while it
//! scans (applies wait), as etcd's holds a read transaction: it is a test and repair
//! tool, not for production load.

use bytes::Bytes;

use super::error::{Error, Result};
use super::member::Member;
use crate::mvcc::hash::{Crc32c, KvHash};
use crate::storage::{schema, Tree};

/// Records read per backend call.
const PAGE: usize = 1024;

fn mvcc_err(e: crate::mvcc::Error) -> Error {
    match e {
        crate::mvcc::Error::Compacted => Error::Compacted,
        crate::mvcc::Error::FutureRev => Error::FutureRev,
        other => Error::Internal(other.to_string()),
    }
}

impl Member {
    /// etcd's HashKV at `rev` (0: the current revision). `compact_rev` is -1 before any
    /// compaction, as etcd's.
    pub async fn hash_kv(&self, rev: i64) -> Result<KvHash> {
        self.state.hash_kv(rev).await.map_err(mvcc_err)
    }

    /// etcd's Hash: one CRC-32C of the member's whole state, and the revision it is at.
    pub async fn hash_state(&self) -> Result<(u32, i64)> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            // The gate before the kv lock, in the compactor's order (it holds the gate
            // while it takes the kv lock).
            let gate = state.kv.read().expect("kv lock").compaction_gate();
            let _no_compaction = gate.read().expect("compaction gate");
            let kv = state.kv.read().expect("kv lock");
            let plan = kv.hash_plan(0).map_err(mvcc_err)?;
            let backend = state.backend();
            let mut h = Crc32c::new();
            h.write(Tree::State.name().as_bytes());
            let mut start = Bytes::new();
            loop {
                let page = backend
                    .range(Tree::State, &start, &[], PAGE)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                let Some((last, _)) = page.last() else { break };
                let mut next = last.to_vec();
                next.push(0);
                for (k, v) in &page {
                    let counts = match k.first() {
                        Some(&schema::KEY) => plan.counts(k),
                        _ => k.as_ref() != schema::META_LAST_APPLIED,
                    };
                    if counts {
                        h.write(k);
                        h.write(v);
                    }
                }
                if page.len() < PAGE {
                    break;
                }
                start = Bytes::from(next);
            }
            Ok((h.sum32(), plan.revisions().1))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    }
}

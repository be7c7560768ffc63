//! Building a snapshot from the state tree and loading one into it.
//!
//! To ensure correctness:
//! - **Build** copies one applied index without holding the kv lock while it copies: under
//!   the lock it notes the applied log id, the membership and the current revision, and
//!   copies the small prefixes (alarms, members, leases, meta); then, without the lock, it
//!   streams the key versions up to that revision, which are immutable once written. A
//!   compaction's deletes wait on `compaction_gate` while a build streams, so no version
//!   the snapshot needs disappears under it. Memory is bounded by one page of versions.
//! - **Install** is atomic across a crash: the received file is checked whole and made a
//!   snapshot file first, then an `installing` mark naming it is made durable, then the
//!   state tree is replaced and the mark removed. A start that finds the mark loads the
//!   named snapshot again before anything reads the state ([`recover`]), so a crash at any
//!   step leaves the old state or the new one, never an empty store behind a purged log.
//!
//! Each step has a named failpoint (`crate::failpoint`), and tests/snapshot_crash.rs kills
//! the process at each one.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::sync::RwLock;

use bytes::Bytes;

use super::codec;
use super::snapshot::{self, Reader, Writer};
use super::snapshotter::{SnapFile, Snapshotter};
use super::types::{LogId, StoredMembership};
use crate::failpoint;
use crate::mvcc::Revision;
use crate::proto::metastorepb::SnapshotHeader;
use crate::storage::{schema, Backend, Tree, WriteBatch};

/// Key versions read from the backend at a time while building.
const PAGE: usize = 4096;
/// Records written to the backend in one batch while installing. sled holds a large batch
/// in memory several times over (8,192 records a batch cost 1 GiB for 300,000 keys; 256
/// cost 70 MiB), so batches stay small: the install is still one atomic step through
/// the `installing` mark, not through the batch.
const INSTALL_BATCH: usize = 256;

/// The raft-meta key that names a snapshot being installed.
const INSTALLING: &[u8] = b"installing";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
    #[error("{0}")]
    Failpoint(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Snapshot(snapshot::Error::Io(e))
    }
}

fn point(name: &str) -> Result<(), Error> {
    failpoint::hit(name).map_err(Error::Failpoint)
}

/// What a build copies under the kv lock.
pub struct Captured {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Key versions up to this revision belong to the snapshot.
    pub revision: i64,
    /// Every state record outside the key versions, in key order: below the key prefix
    /// (alarms, members) and above it (leases, meta).
    pub below: Vec<(Bytes, Bytes)>,
    pub above: Vec<(Bytes, Bytes)>,
}

impl Captured {
    /// Copy what the snapshot needs besides key versions. The caller holds the kv lock.
    pub fn take(
        backend: &dyn Backend,
        last_applied: Option<LogId>,
        membership: StoredMembership,
        revision: i64,
    ) -> Result<Self, Error> {
        Ok(Captured {
            last_applied,
            membership,
            revision,
            below: backend.range(Tree::State, &[], &[schema::KEY], 0)?,
            above: backend.range(Tree::State, &[schema::KEY + 1], &[], 0)?,
        })
    }

    pub fn snapshot_id(&self) -> String {
        match &self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.revision),
            None => format!("none-{}", self.revision),
        }
    }
}

/// Write the snapshot of `captured` to a new snapshot file.
pub fn build(
    backend: &dyn Backend,
    snapshotter: &Snapshotter,
    compaction_gate: &RwLock<()>,
    captured: Captured,
) -> Result<SnapFile, Error> {
    let header = SnapshotHeader {
        last_log_id: captured.last_applied.as_ref().map(codec::log_id_to_pb),
        last_membership: Some(codec::stored_membership_to_pb(&captured.membership)),
        snapshot_id: captured.snapshot_id(),
    };
    let (tmp, file) = snapshotter.create_tmp()?;
    let mut w = Writer::new(BufWriter::with_capacity(1 << 20, file), &header)?;
    for (k, v) in captured.below {
        w.record(k, v)?;
    }
    {
        let _no_compaction = compaction_gate.read().expect("compaction gate");
        let end = Revision::backend_key_from_main(captured.revision + 1);
        let mut start = Bytes::from_static(&[schema::KEY]);
        loop {
            let page = backend.range(Tree::State, &start, &end, PAGE)?;
            let full = page.len() == PAGE;
            let mut last = None;
            for (k, v) in page {
                last = Some(k.clone());
                w.record(k, v)?;
            }
            match last {
                Some(k) if full => {
                    let mut next = k.to_vec();
                    next.push(0);
                    start = Bytes::from(next);
                }
                _ => break,
            }
        }
    }
    for (k, v) in captured.above {
        w.record(k, v)?;
    }
    point("snapshot_build_before_commit")?;
    w.finish()?.into_inner().map_err(|e| e.into_error())?;
    let snap = snapshotter.commit(&tmp, &header)?;
    point("snapshot_build_after_commit")?;
    Ok(snap)
}

/// Read a received snapshot through once, checking every record and the footer; its header.
pub fn verify(path: &Path) -> Result<SnapshotHeader, Error> {
    let mut r = Reader::new(BufReader::new(File::open(path)?))?;
    while r.next_record()?.is_some() {}
    Ok(r.header().clone())
}

/// Install the received snapshot at `incoming`, whose log id must be `expected`. The
/// caller holds the kv write lock and rebuilds its in-memory state afterwards.
pub fn install(
    backend: &dyn Backend,
    snapshotter: &Snapshotter,
    incoming: &Path,
    expected: Option<LogId>,
) -> Result<SnapshotHeader, Error> {
    point("snapshot_install_before_persist")?;
    let header = verify(incoming)?;
    let got = header.last_log_id.as_ref().map(codec::log_id_from_pb);
    if got != expected {
        return Err(Error::Invalid(format!(
            "the snapshot received is of {got:?}, its meta says {expected:?}"
        )));
    }
    let snap = snapshotter.commit(incoming, &header)?;
    point("snapshot_install_after_persist")?;
    let name = snap
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Invalid("a snapshot file name that is not UTF-8".into()))?
        .to_string();
    let mut mark = WriteBatch::default();
    mark.put(Bytes::from_static(INSTALLING), name.into_bytes());
    backend.write(Tree::RaftMeta, mark)?;
    backend.flush()?;
    point("snapshot_install_after_mark")?;
    load(backend, snap)?;
    Ok(header)
}

/// Replace the state tree with the snapshot `snap`, then remove the `installing` mark.
fn load(backend: &dyn Backend, snap: SnapFile) -> Result<SnapshotHeader, Error> {
    let mut r = Reader::new(BufReader::new(snap.file))?;
    let header = r.header().clone();
    backend.clear(Tree::State)?;
    point("snapshot_install_after_clear")?;
    let mut batch = WriteBatch::default();
    while let Some((k, v)) = r.next_record()? {
        batch.put(k, v);
        if batch.ops.len() >= INSTALL_BATCH {
            backend.write(Tree::State, std::mem::take(&mut batch))?;
        }
    }
    if let Some(l) = &header.last_log_id {
        batch.put(
            Bytes::from_static(schema::META_LAST_APPLIED),
            codec::encode_log_id(&codec::log_id_from_pb(l)),
        );
    }
    let membership =
        codec::stored_membership_from_pb(header.last_membership.clone().unwrap_or_default());
    batch.put(
        Bytes::from_static(schema::META_MEMBERSHIP),
        codec::encode_stored_membership(&membership),
    );
    backend.write(Tree::State, batch)?;
    backend.flush()?;
    point("snapshot_install_after_write")?;
    let mut unmark = WriteBatch::default();
    unmark.remove(Bytes::from_static(INSTALLING));
    backend.write(Tree::RaftMeta, unmark)?;
    backend.flush()?;
    point("snapshot_install_after_unmark")?;
    Ok(header)
}

/// Finish an install a crash interrupted: if a snapshot is marked as being installed, load
/// it again; else, if the newest snapshot is ahead of the state, load it. A received
/// snapshot is committed to its file before it is marked, and openraft purges the log it
/// covers without waiting for the install: a crash between the commit and the mark leaves
/// a state behind a log whose entries after it are gone, which openraft cannot replay
/// (`try to get log at index 553 but got Some(752)`). Runs at start, before the state is
/// read. Whether one was loaded.
pub fn recover(backend: &dyn Backend, snapshotter: &Snapshotter) -> Result<bool, Error> {
    if let Some(name) = backend.get(Tree::RaftMeta, INSTALLING)? {
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| Error::Invalid("an installing mark that is not UTF-8".into()))?;
        let snap = snapshotter.by_name(&name)?;
        tracing::warn!(
            "finishing the install of snapshot {} that a crash interrupted",
            snap.path.display()
        );
        load(backend, snap)?;
        return Ok(true);
    }
    let Some(snap) = snapshotter.latest()? else {
        return Ok(false);
    };
    let snap_index = snap.header.last_log_id.as_ref().map(|l| l.index);
    let applied_index = match backend.get(Tree::State, schema::META_LAST_APPLIED)? {
        Some(v) => Some(
            codec::decode_log_id(&v)
                .map_err(|e| Error::Invalid(format!("the stored last applied log id: {e}")))?
                .index,
        ),
        None => None,
    };
    if snap_index <= applied_index {
        return Ok(false);
    }
    tracing::warn!(
        "loading snapshot {}, ahead of the state (applied {applied_index:?}): a crash \
         interrupted its install before it was marked",
        snap.path.display()
    );
    load(backend, snap)?;
    Ok(true)
}

//! Compaction in bounded steps, off the apply path (etcd: kvstore_compaction.go
//! scheduleCompaction, index.go treeIndex.Compact).
//!
//! The apply of a compaction only records its revision ([`KvStore::compact`]); from then on
//! reads below it are refused. A compactor thread then does the work in two phases, each a
//! series of short steps between which applies, reads and heartbeats go on:
//!
//! 1. the key index, [`INDEX_KEYS_PER_STEP`] keys at a time under the store's write lock,
//!    collecting the revisions that stay readable;
//! 2. the stored versions, in revision order, [`BATCH`] backend keys at a time under the
//!    shared lock, each step one atomic delete batch, with a [`PAUSE`] between steps (etcd:
//!    1,000 keys per batch and 10 ms between). The last step also records the finished
//!    compaction revision.
//!
//! To ensure correctness:
//! - a compaction removes only versions below its revision that no read at or above it can
//!   see, so the order of its steps against later writes does not matter;
//! - versions are removed in revision order, so after a crash between two steps every key
//!   still has its oldest remaining versions, and rebuilding the index from them gives the
//!   same answers at every readable revision;
//! - the finished revision is written only by the last step; a store opened with a recorded
//!   compaction above the finished one runs that compaction again (it is idempotent);
//! - a step checks the store's epoch under the lock: after a snapshot install (a reload),
//!   the old job stops and the reload schedules what the new state needs.

use std::collections::HashSet;
use std::sync::{RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;

use super::kvstore::{encode_i64, KvStore};
use super::revision::Revision;
use super::{Error, Result};
use crate::storage::{Tree, WriteBatch};

/// Meta record: the last compaction whose removals are all written (etcd's
/// finishedCompactRev; the scheduled one is `schema::META_COMPACT_REV`).
pub const META_FINISHED_COMPACT_REV: &[u8] = b"mfinished_compact_rev";
/// Backend keys looked at per delete batch (etcd's CompactionBatchLimit).
pub const BATCH: usize = 1000;
/// Pause between two delete batches (etcd's CompactionSleepInterval).
pub const PAUSE: Duration = Duration::from_millis(10);
/// Keys of the index compacted per hold of the write lock.
pub const INDEX_KEYS_PER_STEP: usize = 10_000;

/// One compaction in progress.
pub struct Job {
    rev: i64,
    epoch: u64,
    /// The versions at or below `rev` that stay readable.
    available: HashSet<Revision>,
    /// The next key to compact in the index; `None` once the index is done.
    next_key: Option<Bytes>,
    /// The next backend key to look at.
    cursor: Bytes,
}

impl KvStore {
    pub(super) fn compaction_job(&self, rev: i64) -> Job {
        Job {
            rev,
            epoch: self.epoch,
            available: HashSet::new(),
            next_key: Some(Bytes::new()),
            cursor: Revision::backend_key_from_main(0),
        }
    }

    /// One step of the index phase. `Ok(false)` when the job no longer applies (reloaded).
    fn compact_index_step(&mut self, job: &mut Job) -> bool {
        if job.epoch != self.epoch {
            return false;
        }
        if let Some(start) = job.next_key.take() {
            job.next_key =
                self.index
                    .compact_chunk(job.rev, &start, INDEX_KEYS_PER_STEP, &mut job.available);
        }
        true
    }

    /// One delete batch of the backend phase; `Ok(true)` when the compaction is finished
    /// (or no longer applies). Needs only the shared lock: applies wait for one batch.
    fn compact_backend_step(&self, job: &mut Job) -> Result<bool> {
        if job.epoch != self.epoch {
            return Ok(true);
        }
        let rev = job.rev;
        let end = Revision::backend_key_from_main(rev + 1);
        let found = self.backend.range(Tree::State, &job.cursor, &end, BATCH)?;
        let mut batch = WriteBatch::default();
        for (k, _) in &found {
            let (r, tombstone) = Revision::from_backend_key(k)
                .ok_or_else(|| Error::Corrupt(format!("bad key {k:?}")))?;
            // A tombstone at exactly `rev` stays stored (not indexed): a watcher may start
            // at the compacted revision and must still see that revision's deletes. The next
            // compaction above `rev` removes it.
            if !job.available.contains(&r) && !(tombstone && r.main == rev) {
                batch.remove(k.clone());
            }
        }
        let done = found.len() < BATCH;
        if done {
            batch.put(
                Bytes::from_static(META_FINISHED_COMPACT_REV),
                encode_i64(rev),
            );
        } else if let Some((last, _)) = found.last() {
            let mut next = last.to_vec();
            next.push(0);
            job.cursor = Bytes::from(next);
        }
        self.backend.write(Tree::State, batch)?;
        if done {
            self.finished.send_replace(rev);
        }
        Ok(done)
    }

    /// Run every scheduled compaction to its end now, without pauses: for a store that has
    /// no compactor thread (tests, tools). A no-op once a compactor has taken the queue.
    pub fn run_scheduled_compactions(&mut self) -> Result<()> {
        let Some(rx) = self.compaction_rx.lock().expect("queue lock").take() else {
            return Ok(());
        };
        let mut result = Ok(());
        while let Ok(rev) = rx.try_recv() {
            let mut job = self.compaction_job(rev);
            while job.next_key.is_some() {
                self.compact_index_step(&mut job);
            }
            loop {
                match self.compact_backend_step(&mut job) {
                    Ok(false) => continue,
                    Ok(true) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if result.is_err() {
                break;
            }
        }
        *self.compaction_rx.lock().expect("queue lock") = Some(rx);
        result
    }
}

/// Start the compactor thread of a store; `None` if one was started already. It stops when
/// the store is dropped. A storage error stops it and goes to `on_error` (fail-stop: the
/// member must stop, as for any storage error).
pub fn start(
    kv: &std::sync::Arc<RwLock<KvStore>>,
    pause: Duration,
    on_error: impl Fn(Error) + Send + 'static,
) -> Option<std::thread::JoinHandle<()>> {
    let rx = kv
        .read()
        .expect("kv lock")
        .compaction_rx
        .lock()
        .expect("queue lock")
        .take()?;
    let weak = std::sync::Arc::downgrade(kv);
    let spawned = std::thread::Builder::new()
        .name("mvcc-compactor".into())
        .spawn(move || {
            // The sender lives in the store: `recv` fails once the store is gone.
            while let Ok(rev) = rx.recv() {
                if let Err(e) = run_job(&weak, rev, pause) {
                    on_error(e);
                    return;
                }
            }
        });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the compactor thread");
            None
        }
    }
}

fn run_job(kv: &Weak<RwLock<KvStore>>, rev: i64, pause: Duration) -> Result<()> {
    let Some(store) = kv.upgrade() else {
        return Ok(());
    };
    let mut job = store.read().expect("kv lock").compaction_job(rev);
    tracing::info!(revision = rev, "compact tree index");
    let started = std::time::Instant::now();
    while job.next_key.is_some() {
        if !store.write().expect("kv lock").compact_index_step(&mut job) {
            return Ok(());
        }
        std::thread::yield_now();
    }
    loop {
        let done = store
            .read()
            .expect("kv lock")
            .compact_backend_step(&mut job)?;
        if done {
            break;
        }
        std::thread::sleep(pause);
    }
    tracing::info!(
        revision = rev,
        took = ?started.elapsed(),
        "finished scheduled compaction"
    );
    Ok(())
}

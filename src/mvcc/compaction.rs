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
/// How the compactor thread paces a compaction (etcd's `--compaction-batch-limit` and
/// `--compaction-sleep-interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Backend keys looked at per delete batch.
    pub batch: usize,
    /// Pause between two delete batches.
    pub pause: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            batch: BATCH,
            pause: PAUSE,
        }
    }
}

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
    /// Backend keys looked at per delete batch.
    batch: usize,
}

impl KvStore {
    pub(super) fn compaction_job(&self, rev: i64) -> Job {
        Job {
            rev,
            epoch: self.epoch,
            available: HashSet::new(),
            next_key: Some(Bytes::new()),
            cursor: Revision::backend_key_from_main(0),
            batch: BATCH,
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
        let found = self
            .backend
            .range(Tree::State, &job.cursor, &end, job.batch)?;
        let mut batch = WriteBatch::default();
        for (k, _) in &found {
            let (r, tombstone) = Revision::from_backend_key(k)
                .ok_or_else(|| Error::Corrupt(format!("bad key {k:?}")))?;
            // A tombstone at exactly `rev` stays stored (not indexed): a watcher may start
            // at the compacted revision and must still see that revision's deletes. The next
            // compaction above `rev` removes it.
            let keep = job.available.contains(&r) || tombstone && r.main == rev;
            if !keep {
                batch.remove(k.clone());
            }
        }
        let done = found.len() < job.batch;
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

/// The failpoint before every delete batch (`crate::failpoint`): armed with `error`, the
/// batch fails with a storage error (for the tests of the fatal stop).
pub const FAILPOINT_STEP: &str = "compaction_step";

/// Start the compactor thread of a store; `None` if one was started already. It stops when
/// the store is dropped. A storage error stops it and goes to `on_error` (fail-stop: the
/// member must stop, as for any storage error).
pub fn start(
    kv: &std::sync::Arc<RwLock<KvStore>>,
    pacing: Pacing,
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
                if let Err(e) = run_job(&weak, rev, pacing) {
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

fn run_job(kv: &Weak<RwLock<KvStore>>, rev: i64, pacing: Pacing) -> Result<()> {
    let Some(store) = kv.upgrade() else {
        return Ok(());
    };
    let (mut job, gate) = {
        let kv = store.read().expect("kv lock");
        (kv.compaction_job(rev), kv.compaction_gate())
    };
    job.batch = pacing.batch.max(1);
    tracing::info!(revision = rev, "compact tree index");
    let started = std::time::Instant::now();
    while job.next_key.is_some() {
        if !store.write().expect("kv lock").compact_index_step(&mut job) {
            return Ok(());
        }
        std::thread::yield_now();
    }
    loop {
        crate::failpoint::hit(FAILPOINT_STEP)
            .map_err(|e| Error::Storage(crate::storage::Error::Io(e)))?;
        let done = {
            let _no_copy_under_way = gate.write().expect("compaction gate");
            store
                .read()
                .expect("kv lock")
                .compact_backend_step(&mut job)?
        };
        if done {
            break;
        }
        std::thread::sleep(pacing.pause);
    }
    tracing::info!(
        revision = rev,
        took = ?started.elapsed(),
        "finished scheduled compaction"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::mvcc::{KeyRange, RangeOptions};
    use crate::storage::{schema, Backend, SledBackend};

    /// Apply one batch of puts (and deletes, for keys ending in `-`), one revision each.
    fn apply(kv: &mut KvStore, backend: &dyn Backend, ops: &[(String, bool)]) {
        let mut batch = WriteBatch::default();
        for (key, delete) in ops {
            let mut txn = kv.write(&mut batch);
            if *delete {
                txn.delete_range(&KeyRange::Single(Bytes::from(key.clone())))
                    .unwrap();
            } else {
                txn.put(Bytes::from(key.clone()), Bytes::from(format!("v{key}")), 0);
            }
            txn.end();
        }
        backend.write(Tree::State, batch).unwrap();
        kv.batch_written();
    }

    /// A history of puts, deletes and re-creates over `keys` keys.
    fn history(keys: usize, rounds: usize) -> Vec<(String, bool)> {
        let mut ops = Vec::new();
        for round in 0..rounds {
            for k in 0..keys {
                let key = format!("k{k:05}");
                ops.push((key, (k + round) % 5 == 0));
            }
        }
        ops
    }

    fn stored_versions(backend: &dyn Backend) -> Vec<Bytes> {
        backend
            .range(Tree::State, &[schema::KEY], &[schema::KEY + 1], 0)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    /// The answers a client gets at readable revisions (the first, the last, and about 40
    /// between).
    fn answers(kv: &KvStore) -> BTreeMap<i64, Vec<(Bytes, i64, i64, i64)>> {
        let all = KeyRange::new(Bytes::from_static(b"k"), Bytes::from_static(b"l"));
        let (first, last) = (kv.compact_rev().max(1), kv.current_rev());
        let step = usize::try_from((last - first) / 40).unwrap_or(1).max(1);
        (first..=last)
            .step_by(step)
            .chain([last])
            .map(|rev| {
                let opts = RangeOptions {
                    rev,
                    ..Default::default()
                };
                let r = kv.range(&all, opts).unwrap();
                let kvs = r
                    .kvs
                    .into_iter()
                    .map(|kv| (kv.key, kv.create_revision, kv.mod_revision, kv.version))
                    .collect();
                (rev, kvs)
            })
            .collect()
    }

    /// Open the store in `dir`; sled lets go of a dropped database's lock a little later.
    fn open(dir: &std::path::Path) -> (Arc<dyn Backend>, KvStore) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let sled = loop {
            match SledBackend::open(dir) {
                Ok(b) => break b,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("reopen: {e}"),
            }
        };
        let backend: Arc<dyn Backend> = Arc::new(sled);
        let kv = KvStore::open(backend.clone()).unwrap();
        (backend, kv)
    }

    #[test]
    fn the_apply_of_a_compaction_only_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let (backend, mut kv) = open(dir.path());
        apply(&mut kv, &*backend, &history(500, 4));
        let mut batch = WriteBatch::default();
        kv.compact(kv.current_rev() - 10, &mut batch).unwrap();
        // Before, the apply batch carried every removal (here about 1,990).
        assert_eq!(batch.ops.len(), 1, "the apply batch holds only the record");
        backend.write(Tree::State, batch).unwrap();
        let before = stored_versions(&*backend).len();
        kv.run_scheduled_compactions().unwrap();
        assert!(stored_versions(&*backend).len() < before / 2);
        assert_eq!(*kv.finished_compactions().borrow(), kv.compact_rev());
    }

    /// A kill after any delete batch: the reopened store runs the compaction again and ends
    /// with exactly what an uninterrupted compaction leaves, with the same answers.
    #[test]
    fn a_compaction_cut_after_any_batch_is_finished_at_restart() {
        let ops = history(700, 5);
        let reference = {
            let dir = tempfile::tempdir().unwrap();
            let (backend, mut kv) = open(dir.path());
            apply(&mut kv, &*backend, &ops);
            let mut batch = WriteBatch::default();
            kv.compact(2100, &mut batch).unwrap();
            backend.write(Tree::State, batch).unwrap();
            kv.run_scheduled_compactions().unwrap();
            (stored_versions(&*backend), answers(&kv))
        };
        for cut in [0, 1, 2] {
            let dir = tempfile::tempdir().unwrap();
            {
                let (backend, mut kv) = open(dir.path());
                apply(&mut kv, &*backend, &ops);
                let mut batch = WriteBatch::default();
                kv.compact(2100, &mut batch).unwrap();
                backend.write(Tree::State, batch).unwrap();
                let mut job = kv.compaction_job(2100);
                while job.next_key.is_some() {
                    kv.compact_index_step(&mut job);
                }
                for _ in 0..cut {
                    assert!(!kv.compact_backend_step(&mut job).unwrap());
                }
                backend.flush().unwrap();
                // Dropped here without finishing: the kill.
            }
            let (backend, mut kv) = open(dir.path());
            assert_eq!(*kv.finished_compactions().borrow(), -1, "cut {cut}");
            assert_eq!(answers(&kv), reference.1, "cut {cut}: answers before redo");
            kv.run_scheduled_compactions().unwrap();
            assert_eq!(*kv.finished_compactions().borrow(), 2100);
            assert_eq!(stored_versions(&*backend), reference.0, "cut {cut}");
            assert_eq!(answers(&kv), reference.1, "cut {cut}");
            // And once more from the start: nothing is scheduled any more.
            drop((kv, backend));
            let (backend, _kv) = open(dir.path());
            assert_eq!(stored_versions(&*backend), reference.0, "cut {cut}");
        }
    }

    /// Writes between the steps of a compaction (as the compactor thread allows) end in the
    /// same state as the same writes after it.
    #[test]
    fn writes_between_compaction_steps_change_nothing_it_keeps() {
        let ops = history(12_000, 2);
        let later = history(300, 3);
        let run = |interleave: bool| {
            let dir = tempfile::tempdir().unwrap();
            let (backend, mut kv) = open(dir.path());
            apply(&mut kv, &*backend, &ops);
            let rev = kv.current_rev() - 100;
            let mut batch = WriteBatch::default();
            kv.compact(rev, &mut batch).unwrap();
            backend.write(Tree::State, batch).unwrap();
            let mut job = kv.compaction_job(rev);
            let mut pending = later.chunks(50);
            while job.next_key.is_some() {
                kv.compact_index_step(&mut job);
                if interleave {
                    if let Some(ops) = pending.next() {
                        apply(&mut kv, &*backend, ops);
                    }
                }
            }
            while !kv.compact_backend_step(&mut job).unwrap() {
                if interleave {
                    if let Some(ops) = pending.next() {
                        apply(&mut kv, &*backend, ops);
                    }
                }
            }
            for ops in pending {
                apply(&mut kv, &*backend, ops);
            }
            (stored_versions(&*backend), answers(&kv))
        };
        let (a, b) = (run(true), run(false));
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
    }
}

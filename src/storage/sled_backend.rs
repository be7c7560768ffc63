//! The sled implementation of [`Backend`]: one sled database per member, one sled tree per
//! [`Tree`]. sled writes every tree through one log, which gives the ordering `Backend`
//! requires; `flush` is its fsync. Writes to the state tree are held in memory and handed
//! to sled in batches (`deferred.rs`), so that a put pays sled's batch manifest once per
//! hand-over rather than once per apply.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::deferred::{self, Deferred};
use super::{defrag, Backend, Error, Result, Tree, WriteBatch};

pub struct SledBackend {
    dir: PathBuf,
    /// sled's page cache, in bytes (`--backend-cache-bytes`).
    cache_bytes: u64,
    /// The open database; `None` only while a defragmentation swaps it (or after one
    /// failed to open the result, when every call answers an error).
    inner: Arc<RwLock<Option<Inner>>>,
    /// The size on disk and when it was read: reading it lists the database's files, too
    /// slow for every write the quota check guards.
    size: Mutex<Option<(Instant, u64)>>,
    /// Bytes written since that reading, added to it so the size never lags the writes.
    written: AtomicU64,
    /// The state tree's writes not yet handed to sled.
    deferred: Arc<Deferred>,
    /// The thread that hands them over once due.
    drainer: Option<Drainer>,
    /// Whether a sync ends in an `fdatasync` (`--unsafe-no-fsync` turns it off).
    fsync: bool,
}

/// The thread that hands held state writes to sled [`deferred::DRAIN_INTERVAL`] after the
/// first of them, so no apply waits for a hand-over.
struct Drainer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Drainer {
    fn spawn(inner: Arc<RwLock<Option<Inner>>>, deferred: Arc<Deferred>) -> Result<Drainer> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("backend-drain".into())
            .spawn(move || {
                while !stopped.load(Ordering::SeqCst) {
                    match deferred.due_in() {
                        None => std::thread::park(),
                        Some(wait) if !wait.is_zero() => std::thread::park_timeout(wait),
                        Some(_) => {
                            if let Err(e) = hand_over(&inner, &deferred) {
                                // What is held stays readable; the next flush or full
                                // write meets the error and stops the member.
                                tracing::error!("handing held state writes to sled: {e}");
                                std::thread::park_timeout(deferred::DRAIN_INTERVAL);
                            }
                        }
                    }
                }
            })
            .map_err(io_std)?;
        Ok(Drainer { stop, thread })
    }

    fn wake(&self) {
        self.thread.thread().unpark();
    }
}

struct Inner {
    db: sled::Db,
    /// sled's data file, for the `fdatasync` sled does not make (below).
    file: std::fs::File,
    raft_log: sled::Tree,
    raft_meta: sled::Tree,
    state: sled::Tree,
}

/// The file sled keeps its log and pages in, under the database's directory.
const SLED_DATA_FILE: &str = "db";
/// How long a size read stays good.
const SIZE_FRESH: Duration = Duration::from_millis(100);
/// Records copied per sled batch while defragmenting.
const DEFRAG_BATCH: usize = 10_000;

fn io(e: sled::Error) -> Error {
    match e {
        sled::Error::Corruption { .. } => Error::Corruption(e.to_string()),
        other => Error::Io(other.to_string()),
    }
}

fn io_std(e: std::io::Error) -> Error {
    Error::Io(e.to_string())
}

fn to_bytes(v: sled::IVec) -> Bytes {
    // IVec is reference counted: hand it over without copying.
    Bytes::from_owner(v)
}

/// How long a reopen after a defragmentation waits for sled to let go of the copy's lock.
const REOPEN_WAIT: Duration = Duration::from_secs(10);

impl Inner {
    /// [`Inner::open`], retried until `wait` has passed: sled lets go of a dropped
    /// database's file lock a little after the drop (its background threads hold the
    /// handle), and after a defragmentation the directory holds the copy, whose handle was
    /// dropped just before. Under load the first reopen could find it still locked and the
    /// member stopped (found by the gRPC fuzz target: a defragment among snapshot streams).
    fn open_waiting(dir: &Path, cache_bytes: u64, wait: Duration) -> Result<Inner> {
        let deadline = Instant::now() + wait;
        loop {
            match Inner::open(dir, cache_bytes) {
                Ok(i) => return Ok(i),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn open(dir: &Path, cache_bytes: u64) -> Result<Inner> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // We fsync ourselves, once per log batch.
            .flush_every_ms(None)
            .open()
            .map_err(io)?;
        let raft_log = db.open_tree(Tree::RaftLog.name()).map_err(io)?;
        let raft_meta = db.open_tree(Tree::RaftMeta.name()).map_err(io)?;
        let state = db.open_tree(Tree::State.name()).map_err(io)?;
        let file = std::fs::File::open(dir.join(SLED_DATA_FILE)).map_err(io_std)?;
        Ok(Inner {
            db,
            file,
            raft_log,
            raft_meta,
            state,
        })
    }

    /// Write out sled's io buffers (each ends in a `sync_file_range` of what it wrote) and,
    /// unless `--unsafe-no-fsync`, `fdatasync` the data file: `sync_file_range` neither
    /// flushes the disk's volatile write cache nor records the file's growth, so without
    /// it a power loss could take acknowledged writes that a crash of the process or the
    /// kernel cannot (sled's own `fsync` runs only in its periodic flush thread, which is
    /// off here). etcd makes one `fdatasync` of its WAL per append.
    fn sync(&self, fsync: bool) -> Result<()> {
        self.db.flush().map_err(io)?;
        if fsync {
            self.file.sync_data().map_err(io_std)?;
        }
        Ok(())
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        match tree {
            Tree::RaftLog => &self.raft_log,
            Tree::RaftMeta => &self.raft_meta,
            Tree::State => &self.state,
        }
    }

    /// Copy every record into a fresh database at `to`, durably.
    fn copy_to(&self, to: &Path, cache_bytes: u64) -> Result<()> {
        let fresh = Inner::open(to, cache_bytes)?;
        for tree in [Tree::RaftLog, Tree::RaftMeta, Tree::State] {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for item in self.tree(tree).iter() {
                let (k, v) = item.map_err(io)?;
                batch.insert(k, v);
                n += 1;
                if n == DEFRAG_BATCH {
                    fresh
                        .tree(tree)
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(io)?;
                    n = 0;
                }
            }
            fresh.tree(tree).apply_batch(batch).map_err(io)?;
        }
        fresh.sync(true)?;
        Ok(())
    }
}

impl SledBackend {
    /// sled's page cache unless told otherwise (`--backend-cache-bytes`'s default).
    pub const DEFAULT_CACHE_BYTES: u64 = 32 << 20;

    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_cache(dir, Self::DEFAULT_CACHE_BYTES)
    }

    /// Open with a page cache of `cache_bytes` (the records sled keeps in memory beyond
    /// those in use).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self> {
        Self::open_with(dir, cache_bytes, true)
    }

    /// Open with a page cache of `cache_bytes`; `fsync` false (`--unsafe-no-fsync`) skips
    /// the `fdatasync` after sled's own writes (see [`Inner::sync`]).
    pub fn open_with(dir: &Path, cache_bytes: u64, fsync: bool) -> Result<Self> {
        defrag::recover(dir).map_err(io_std)?;
        let inner = Arc::new(RwLock::new(Some(Inner::open(dir, cache_bytes)?)));
        let deferred = Arc::new(Deferred::default());
        let drainer = Drainer::spawn(inner.clone(), deferred.clone())?;
        Ok(Self {
            dir: dir.to_path_buf(),
            cache_bytes,
            inner,
            size: Mutex::new(None),
            written: AtomicU64::new(0),
            deferred,
            drainer: Some(drainer),
            fsync,
        })
    }

    /// Hand the held state writes to sled as one atomic batch (not synced).
    fn drain(&self) -> Result<()> {
        hand_over(&self.inner, &self.deferred)
    }

    fn inner(&self) -> Result<MappedInner<'_>> {
        open_inner(&self.inner)
    }
}

/// The open database behind `inner`, or the error every call answers once a
/// defragmentation could not reopen it.
fn open_inner(inner: &RwLock<Option<Inner>>) -> Result<MappedInner<'_>> {
    let g = inner.read().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        return Err(Error::Io(
            "the database is closed (a defragmentation could not reopen it)".into(),
        ));
    }
    Ok(MappedInner(g))
}

/// Hand what `deferred` holds to the state tree as one atomic batch (not synced).
fn hand_over(inner: &RwLock<Option<Inner>>, deferred: &Deferred) -> Result<()> {
    deferred.drain(|ops| write_atomically(&open_inner(inner)?.state, ops.iter()))
}

impl Drop for SledBackend {
    /// A backend let go of (the member stopping, a test's store dropped) keeps what it
    /// held: only a crash loses held writes, which the raft log replays.
    fn drop(&mut self) {
        if let Some(d) = self.drainer.take() {
            d.stop.store(true, Ordering::SeqCst);
            d.wake();
            let _ = d.thread.join();
        }
        let _ = self.flush();
    }
}

/// Entries of `t` in `[start, end)` (`end` empty: no upper bound), at most `limit` (0: all).
fn scan(t: &sled::Tree, bounds: (&[u8], &[u8]), limit: usize) -> Result<Vec<(Bytes, Bytes)>> {
    let (start, end) = bounds;
    let iter = if end.is_empty() {
        t.range(start..)
    } else {
        t.range(start..end)
    };
    let mut out = Vec::new();
    for item in iter {
        let (k, v) = item.map_err(io)?;
        out.push((to_bytes(k), to_bytes(v)));
        if limit != 0 && out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Write `ops` to `t` atomically. sled makes a multi-key batch atomic with a batch manifest,
/// and writing one costs two synchronous writes to its log (it rolls the io buffer before
/// and after the manifest). One key is atomic on its own, so it skips all that.
fn write_atomically<'a>(
    t: &sled::Tree,
    mut ops: impl ExactSizeIterator<Item = (&'a Bytes, &'a Option<Bytes>)>,
) -> Result<()> {
    if ops.len() == 1 {
        let (k, v) = ops.next().expect("one op");
        return match v {
            Some(v) => t.insert(k.as_ref(), v.as_ref()).map(drop),
            None => t.remove(k.as_ref()).map(drop),
        }
        .map_err(io);
    }
    let mut b = sled::Batch::default();
    for (k, v) in ops {
        match v {
            Some(v) => b.insert(k.as_ref(), v.as_ref()),
            None => b.remove(k.as_ref()),
        }
    }
    t.apply_batch(b).map_err(io)
}

/// A read guard on an open database.
struct MappedInner<'a>(RwLockReadGuard<'a, Option<Inner>>);

impl std::ops::Deref for MappedInner<'_> {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        self.0.as_ref().expect("checked open")
    }
}

impl Backend for SledBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Bytes>> {
        // What is held comes first: a hand-over finishing meanwhile is then seen in sled.
        if tree == Tree::State && !self.deferred.is_empty() {
            if let Some(held) = self.deferred.get(key) {
                return Ok(held);
            }
        }
        Ok(self.inner()?.tree(tree).get(key).map_err(io)?.map(to_bytes))
    }

    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        if tree != Tree::State || self.deferred.is_empty() {
            return scan(self.inner()?.tree(tree), (start, end), limit);
        }
        let held = self.deferred.range(start, end);
        // Each held removal hides at most one of sled's entries.
        let sled_limit = if limit == 0 { 0 } else { limit + held.len() };
        let base = scan(self.inner()?.tree(tree), (start, end), sled_limit)?;
        Ok(deferred::merge(base, held, limit))
    }

    fn last(&self, tree: Tree) -> Result<Option<(Bytes, Bytes)>> {
        if tree != Tree::State || self.deferred.is_empty() {
            return Ok(self
                .inner()?
                .tree(tree)
                .last()
                .map_err(io)?
                .map(|(k, v)| (to_bytes(k), to_bytes(v))));
        }
        let held: std::collections::BTreeMap<Bytes, Option<Bytes>> =
            self.deferred.range(&[], &[]).into_iter().collect();
        let held_last = held
            .iter()
            .rev()
            .find_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())));
        let inner = self.inner()?;
        let mut sled_last = None;
        for item in inner.tree(tree).iter().rev() {
            let (k, v) = item.map_err(io)?;
            if !held.contains_key(k.as_ref()) {
                sled_last = Some((to_bytes(k), to_bytes(v)));
                break;
            }
        }
        Ok(match (held_last, sled_last) {
            (Some(h), Some(s)) => Some(if h.0 > s.0 { h } else { s }),
            (h, s) => h.or(s),
        })
    }

    fn write(&self, tree: Tree, batch: WriteBatch) -> Result<()> {
        // The state tree's writes are held (deferred.rs); the raft trees' go to sled now.
        if batch.ops.is_empty() {
            return Ok(());
        }
        let bytes: usize = batch
            .ops
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
            .sum();
        self.written.fetch_add(bytes as u64, Ordering::Relaxed);
        if tree == Tree::State {
            match self.deferred.write(batch) {
                deferred::Next::Held => {}
                deferred::Next::First => {
                    if let Some(d) = &self.drainer {
                        d.wake();
                    }
                }
                deferred::Next::Full => self.drain()?,
            }
            return Ok(());
        }
        let ops = batch.ops.iter().map(|(k, v)| (k, v));
        write_atomically(self.inner()?.tree(tree), ops)
    }

    /// The held state writes handed to sled, then one fsync of everything: etcd's backend
    /// commit.
    fn flush(&self) -> Result<()> {
        let started = std::time::Instant::now();
        self.drain()?;
        let done = self.inner()?.sync(self.fsync);
        crate::metrics::BACKEND_COMMIT_SECONDS.observe(started.elapsed().as_secs_f64());
        done
    }

    /// One fsync of sled's log without handing over the held state writes: etcd's WAL
    /// fsync, once per raft log append.
    fn sync_log(&self) -> Result<()> {
        let started = std::time::Instant::now();
        let done = self.inner()?.sync(self.fsync);
        crate::metrics::WAL_FSYNC_SECONDS.observe(started.elapsed().as_secs_f64());
        done
    }

    fn clear(&self, tree: Tree) -> Result<()> {
        if tree == Tree::State {
            self.deferred.clear();
        }
        self.inner()?.tree(tree).clear().map_err(io)
    }

    fn size(&self) -> u64 {
        let mut held = self.size.lock().unwrap_or_else(|p| p.into_inner());
        match *held {
            Some((at, n)) if at.elapsed() < SIZE_FRESH => {
                n.saturating_add(self.written.load(Ordering::Relaxed))
            }
            _ => {
                self.written.store(0, Ordering::Relaxed);
                let n = self
                    .inner()
                    .ok()
                    .and_then(|i| i.db.size_on_disk().ok())
                    .unwrap_or(0);
                *held = Some((Instant::now(), n));
                n
            }
        }
    }

    /// Rewrite the database into a fresh one and swap it in (storage/defrag.rs), every
    /// other call waiting meanwhile, as etcd's defrag blocks its backend.
    fn defragment(&self) -> Result<()> {
        // What is held goes into the copy; what is written meanwhile stays held.
        self.drain()?;
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let Some(inner) = g.as_ref() else {
            return Err(Error::Io("the database is closed".into()));
        };
        let paths = defrag::SwapPaths::of(&self.dir);
        inner.sync(self.fsync)?;
        let _ = std::fs::remove_dir_all(&paths.copy);
        if let Err(e) = inner.copy_to(&paths.copy, self.cache_bytes) {
            let _ = std::fs::remove_dir_all(&paths.copy);
            return Err(e);
        }
        crate::failpoint::hit(defrag::FAILPOINT_COPIED).map_err(Error::Io)?;
        // The old database closes before its directory moves.
        drop(g.take());
        let swapped = defrag::swap_in(&self.dir).map_err(io_std);
        // Whatever happened, open what the directory holds now (recovering a swap that
        // stopped half way), so the member goes on with every record.
        let reopened = defrag::recover(&self.dir)
            .map_err(io_std)
            .and_then(|()| Inner::open_waiting(&self.dir, self.cache_bytes, REOPEN_WAIT));
        *self.size.lock().unwrap_or_else(|p| p.into_inner()) = None;
        match reopened {
            Ok(i) => {
                *g = Some(i);
                swapped
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod reopen_tests {
    use super::*;

    /// A database still held by a handle being dropped (as the defragmentation's copy is
    /// when the directory is reopened) opens once the handle lets go, instead of failing.
    #[test]
    fn a_reopen_after_defragmentation_waits_for_the_copy_to_let_go_of_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let held = Inner::open(dir.path(), 1 << 20).expect("first open");
        assert!(
            Inner::open(dir.path(), 1 << 20).is_err(),
            "sled refuses a second open while the first holds the lock"
        );
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let reopened = Inner::open_waiting(dir.path(), 1 << 20, Duration::from_secs(10));
        releaser.join().unwrap();
        assert!(reopened.is_ok(), "{:?}", reopened.err());
    }
}

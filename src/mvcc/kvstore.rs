//! The multi-version key-value store (etcd: storage/mvcc/kvstore.go, kvstore_txn.go).
//!
//! Owns the key index, the current and compacted revisions, and the encoding of key
//! versions in the backend. Reads run under a shared lock held by the caller; a write
//! transaction ([`WriteTxn`]) runs inside the apply loop, adds its changes to the apply
//! batch and keeps them in `pending` until the batch is written, so that later commands of
//! the same batch read them.
//!
//! A range is planned under the lock (which revisions, the count) and its values may be
//! read after the lock is released ([`RangePlan::fetch`]): versions are immutable once
//! written, and only a later compaction or a snapshot install can remove one, which
//! `fetch` reports so that the caller plans again.
//!
//! Compaction is split as etcd splits it (kvstore_compaction.go): the apply only checks the
//! revision and records it (the scheduled compaction); the index and the stored versions
//! are compacted afterwards in bounded steps by [`super::compaction`], which records the
//! finished compaction last. A restart with a compaction scheduled and not finished runs it
//! again (etcd's scheduledCompactRev / finishedCompactRev).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{mpsc, Arc};

use bytes::Bytes;
use prost::Message;

use super::index::{KeyRange, TreeIndex};
use super::key_index::KeyAt;
use super::revision::Revision;
use super::{Error, Result};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::{schema, Backend, Tree, WriteBatch};

/// Armed with `error`, every put stores another value than it was given (what a silent
/// disk corruption would leave): the corruption check's tests arm it on one member.
pub const FAILPOINT_PUT_CORRUPT: &str = "mvcc-put-corrupt";

pub struct KvStore {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) index: TreeIndex,
    current_rev: i64,
    /// The last compaction's revision; -1 before the first one (etcd's compactMainRev). It
    /// is recorded by the apply of the compaction (etcd's scheduledCompactRev).
    compact_rev: i64,
    /// Versions written by the batch being applied and not yet in the backend.
    pending: HashMap<Revision, KeyValue>,
    /// Live keys with a lease, as found by the last restore (for the lessor to re-attach).
    restored_leases: HashMap<Bytes, i64>,
    /// Compactions to run, in order, and their receiving end until a compactor takes it.
    compactions: mpsc::Sender<i64>,
    pub(super) compaction_rx: std::sync::Mutex<Option<mpsc::Receiver<i64>>>,
    /// The revision of the last compaction whose stored versions are all removed.
    pub(super) finished: tokio::sync::watch::Sender<i64>,
    /// Changes on every restore: a compaction started before a reload stops.
    pub(super) epoch: u64,
    /// Held shared by whoever copies stored versions without the kv lock (a snapshot
    /// build); each compaction delete step holds it exclusively, so it waits for the copy.
    pub(super) compaction_gate: Arc<std::sync::RwLock<()>>,
}

/// What a range read returns before the request's sort and limit are applied.
#[derive(Debug, Default)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Keys in the range at the read revision (before any limit or filter).
    pub count: usize,
    /// The store's current revision at the time of the read.
    pub rev: i64,
}

/// Bounds on the mod and create revisions of the keys a range returns (0 = no bound). They
/// thin `kvs`, never `count` (etcd filters after counting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevFilter {
    pub min_mod: i64,
    pub max_mod: i64,
    pub min_create: i64,
    pub max_create: i64,
}

impl RevFilter {
    pub fn is_empty(&self) -> bool {
        *self == RevFilter::default()
    }

    fn keeps(&self, at: &KeyAt) -> bool {
        let (m, c) = (at.modified.main, at.created.main);
        !(self.max_mod != 0 && m > self.max_mod
            || self.min_mod != 0 && m < self.min_mod
            || self.max_create != 0 && c > self.max_create
            || self.min_create != 0 && c < self.min_create)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RangeOptions {
    /// At most this many keys in `kvs` (0 = all).
    pub limit: usize,
    /// Read at this revision (<= 0 = current).
    pub rev: i64,
    /// Only count, read no values.
    pub count_only: bool,
    /// Leave the values out of `kvs`.
    pub keys_only: bool,
    /// Return keys in descending key order (the limit takes the greatest keys).
    pub descend: bool,
    pub filter: RevFilter,
}

/// A range decided under the store's lock: the versions to read, in answer order.
#[derive(Debug)]
pub struct RangePlan {
    revs: Vec<Revision>,
    count: usize,
    rev: i64,
    keys_only: bool,
}

impl RangePlan {
    /// Read the planned versions from the backend; the store's lock need not be held.
    /// `Ok(None)`: a version was removed since the plan (a later compaction or a snapshot
    /// install), so plan again.
    pub fn fetch(self, backend: &dyn Backend) -> Result<Option<RangeResult>> {
        let mut kvs = Vec::with_capacity(self.revs.len());
        for rev in &self.revs {
            let Some(raw) = backend.get(Tree::State, &rev.to_backend_key(false))? else {
                return Ok(None);
            };
            let mut kv = KeyValue::decode(raw).map_err(|e| Error::Corrupt(e.to_string()))?;
            if self.keys_only {
                kv.value = Bytes::new();
            }
            kvs.push(kv);
        }
        Ok(Some(RangeResult {
            kvs,
            count: self.count,
            rev: self.rev,
        }))
    }
}

impl KvStore {
    /// The gate a copy of stored versions holds (shared) so that no compaction deletes
    /// a version under it.
    pub fn compaction_gate(&self) -> Arc<std::sync::RwLock<()>> {
        self.compaction_gate.clone()
    }

    /// Open the store over a backend, rebuilding the key index from every stored version.
    pub fn open(backend: Arc<dyn Backend>) -> Result<Self> {
        let (compactions, compaction_rx) = mpsc::channel();
        let mut store = KvStore {
            backend,
            index: TreeIndex::default(),
            current_rev: 0,
            compact_rev: -1,
            pending: HashMap::new(),
            restored_leases: HashMap::new(),
            compactions,
            compaction_rx: std::sync::Mutex::new(Some(compaction_rx)),
            compaction_gate: Arc::default(),
            finished: tokio::sync::watch::Sender::new(-1),
            epoch: 0,
        };
        store.restore()?;
        Ok(store)
    }

    fn restore(&mut self) -> Result<()> {
        self.index = TreeIndex::default();
        self.pending.clear();
        self.restored_leases.clear();
        self.epoch += 1;
        self.compact_rev = match self.backend.get(Tree::State, schema::META_COMPACT_REV)? {
            Some(v) => decode_i64(&v)?,
            None => -1,
        };
        let finished = match self
            .backend
            .get(Tree::State, super::compaction::META_FINISHED_COMPACT_REV)?
        {
            Some(v) => decode_i64(&v)?,
            None => -1,
        };
        self.finished.send_replace(finished);
        if self.compact_rev > finished {
            // Killed in the middle of a compaction: run it again (etcd: kvstore.go restore).
            let _ = self.compactions.send(self.compact_rev);
        }
        // An empty store is at revision 1, so the first write gets 2 (etcd's currentRev).
        let mut current = self.compact_rev.max(1);
        if let Some(v) = self.backend.get(Tree::State, schema::META_CURRENT_REV)? {
            current = current.max(decode_i64(&v)?);
        }
        let start = [schema::KEY];
        let end = [schema::KEY + 1];
        for (k, v) in self.backend.range(Tree::State, &start, &end, 0)? {
            let (rev, tombstone) = Revision::from_backend_key(&k)
                .ok_or_else(|| Error::Corrupt(format!("bad revision key {k:?}")))?;
            let kv = KeyValue::decode(v).map_err(|e| Error::Corrupt(e.to_string()))?;
            if tombstone {
                self.restored_leases.remove(&kv.key);
                self.index.tombstone(&kv.key, rev);
            } else {
                if kv.lease != 0 {
                    self.restored_leases.insert(kv.key.clone(), kv.lease);
                } else {
                    self.restored_leases.remove(&kv.key);
                }
                self.index.restore(
                    &kv.key,
                    Revision::new(kv.create_revision, 0),
                    rev,
                    kv.version,
                );
            }
            current = current.max(rev.main);
        }
        self.current_rev = current;
        Ok(())
    }

    /// Drop everything in memory and read the backend again (after a snapshot install).
    pub fn reload(&mut self) -> Result<()> {
        self.restore()
    }

    /// Live keys attached to a lease when the store was last restored (taken once).
    pub fn take_restored_leases(&mut self) -> HashMap<Bytes, i64> {
        std::mem::take(&mut self.restored_leases)
    }

    pub fn current_rev(&self) -> i64 {
        self.current_rev
    }

    pub fn compact_rev(&self) -> i64 {
        self.compact_rev
    }

    pub fn index(&self) -> &TreeIndex {
        &self.index
    }

    /// Check a read revision against the current and compacted ones (etcd's rangeKeys).
    pub fn check_rev(&self, rev: i64) -> Result<i64> {
        if rev > self.current_rev {
            return Err(Error::FutureRev);
        }
        let rev = if rev <= 0 { self.current_rev } else { rev };
        if rev < self.compact_rev {
            return Err(Error::Compacted);
        }
        Ok(rev)
    }

    pub fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult> {
        let rev = self.check_rev(opts.rev)?;
        self.range_at(range, rev, opts, self.current_rev)
    }

    /// Plan a range: check the revision, count, and choose the versions to read. The
    /// values are read by [`RangePlan::fetch`], after the caller has released the lock.
    pub fn plan_range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangePlan> {
        let rev = self.check_rev(opts.rev)?;
        Ok(self.plan_at(range, rev, opts, self.current_rev))
    }

    /// `latest` is the revision the index's live-key set reflects (counts at it need no walk).
    fn plan_at(&self, range: &KeyRange, rev: i64, opts: RangeOptions, latest: i64) -> RangePlan {
        let want = if opts.count_only {
            0
        } else if opts.limit == 0 {
            usize::MAX
        } else {
            opts.limit
        };
        let counted = rev == latest;
        let mut count = 0;
        let mut revs = Vec::new();
        if want > 0 || !counted {
            self.index.visit_at(range, rev, opts.descend, |_, at| {
                count += 1;
                if revs.len() < want && opts.filter.keeps(&at) {
                    revs.push(at.modified);
                }
                if counted && revs.len() >= want {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
        }
        if counted {
            count = self.index.count_latest(range);
        }
        RangePlan {
            revs,
            count,
            rev: self.current_rev,
            keys_only: opts.keys_only,
        }
    }

    fn range_at(
        &self,
        range: &KeyRange,
        rev: i64,
        opts: RangeOptions,
        latest: i64,
    ) -> Result<RangeResult> {
        let plan = self.plan_at(range, rev, opts, latest);
        let mut kvs = Vec::with_capacity(plan.revs.len());
        for at in &plan.revs {
            let mut kv = self.read_version(*at)?;
            if opts.keys_only {
                kv.value = Bytes::new();
            }
            kvs.push(kv);
        }
        Ok(RangeResult {
            kvs,
            count: plan.count,
            rev: plan.rev,
        })
    }

    /// The stored version at exactly `rev` (not a tombstone).
    pub fn read_version(&self, rev: Revision) -> Result<KeyValue> {
        if let Some(kv) = self.pending.get(&rev) {
            return Ok(kv.clone());
        }
        let raw = self
            .backend
            .get(Tree::State, &rev.to_backend_key(false))?
            .ok_or_else(|| Error::Corrupt(format!("revision {rev:?} is indexed but not stored")))?;
        KeyValue::decode(raw).map_err(|e| Error::Corrupt(e.to_string()))
    }

    /// Begin a write transaction whose changes go into `batch`.
    pub fn write<'a>(&'a mut self, batch: &'a mut WriteBatch) -> WriteTxn<'a> {
        let rev = self.current_rev + 1;
        WriteTxn {
            store: self,
            batch,
            rev,
            events: Vec::new(),
        }
    }

    /// The apply batch has been written: versions are readable from the backend now.
    pub fn batch_written(&mut self) {
        self.pending.clear();
    }

    /// Compact at `rev` (etcd: kvstore.go compact): checks it, records it in `batch` and
    /// schedules the removal of what it makes unreadable (see [`super::compaction`]). A
    /// refused compaction changes nothing. Reads below `rev` are refused from now on.
    pub fn compact(&mut self, rev: i64, batch: &mut WriteBatch) -> Result<()> {
        if rev <= self.compact_rev {
            return Err(Error::Compacted);
        }
        if rev > self.current_rev {
            return Err(Error::FutureRev);
        }
        self.compact_rev = rev;
        batch.put(
            Bytes::from_static(schema::META_COMPACT_REV),
            encode_i64(rev),
        );
        // The compactor takes the store's lock first, so it starts after this batch is
        // written; the receiver lives as long as the store.
        let _ = self.compactions.send(rev);
        Ok(())
    }

    /// The revision of the last compaction that has removed all it makes unreadable, as
    /// it changes (a `physical` compaction waits on it).
    pub fn finished_compactions(&self) -> tokio::sync::watch::Receiver<i64> {
        self.finished.subscribe()
    }

    /// Every stored version and tombstone with `main` in `[from, to]`, in revision order,
    /// as watch events (for watch catch-up and the randomised tests).
    pub fn events_between(&self, from: i64, to: i64) -> Result<Vec<(Revision, Event)>> {
        let start = Revision::backend_key_from_main(from.max(0));
        let end = Revision::backend_key_from_main(to + 1);
        let mut out = Vec::new();
        for (k, v) in self.backend.range(Tree::State, &start, &end, 0)? {
            let (r, tomb) = Revision::from_backend_key(&k)
                .ok_or_else(|| Error::Corrupt(format!("bad key {k:?}")))?;
            let mut kv = KeyValue::decode(v).map_err(|e| Error::Corrupt(e.to_string()))?;
            if tomb {
                // A stored tombstone holds the key only; its event carries the revision.
                kv.mod_revision = r.main;
            }
            out.push((r, to_event(kv, tomb)));
        }
        Ok(out)
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
}

fn to_event(kv: KeyValue, tombstone: bool) -> Event {
    let t = if tombstone {
        EventType::Delete
    } else {
        EventType::Put
    };
    Event {
        r#type: t as i32,
        kv: Some(kv),
        prev_kv: None,
    }
}

pub fn encode_i64(v: i64) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}

pub fn decode_i64(b: &[u8]) -> Result<i64> {
    let arr: [u8; 8] = b
        .try_into()
        .map_err(|_| Error::Corrupt("bad i64 record".into()))?;
    Ok(i64::from_be_bytes(arr))
}

/// One write transaction: every change gets the same main revision and increasing sub
/// revisions; the store revision moves only if something changed.
pub struct WriteTxn<'a> {
    store: &'a mut KvStore,
    batch: &'a mut WriteBatch,
    rev: i64,
    events: Vec<Event>,
}

impl WriteTxn<'_> {
    fn next_rev(&self) -> Revision {
        let sub = i64::try_from(self.events.len()).expect("txn changes fit i64");
        Revision::new(self.rev, sub)
    }

    /// The apply batch, for other stores changed in the same command (leases).
    pub fn batch_mut(&mut self) -> &mut WriteBatch {
        self.batch
    }

    /// The revision reads inside this transaction see: its own changes included.
    pub fn read_rev(&self) -> i64 {
        if self.events.is_empty() {
            self.rev - 1
        } else {
            self.rev
        }
    }

    pub fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult> {
        let rev = if opts.rev <= 0 {
            self.read_rev()
        } else {
            opts.rev
        };
        if rev > self.read_rev() {
            return Err(Error::FutureRev);
        }
        if rev < self.store.compact_rev {
            return Err(Error::Compacted);
        }
        let mut r = self.store.range_at(range, rev, opts, self.read_rev())?;
        r.rev = self.read_rev();
        Ok(r)
    }

    /// The live version of `key` as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        match self.store.index.get(key, self.read_rev()) {
            Some(at) => Ok(Some(self.store.read_version(at.modified)?)),
            None => Ok(None),
        }
    }

    pub fn put(&mut self, key: Bytes, value: Bytes, lease: i64) -> KeyValue {
        let rev = self.next_rev();
        let read_rev = self.read_rev();
        let (created, version) = match self.store.index.put(&key, rev, read_rev) {
            Some(at) => (at.created.main, at.version + 1),
            None => (rev.main, 1),
        };
        let kv = KeyValue {
            key,
            create_revision: created,
            mod_revision: rev.main,
            version,
            value,
            lease,
        };
        let stored = if crate::failpoint::hit(FAILPOINT_PUT_CORRUPT).is_err() {
            KeyValue {
                value: Bytes::from_static(b"corrupted"),
                ..kv.clone()
            }
            .encode_to_vec()
        } else {
            kv.encode_to_vec()
        };
        self.batch.put(rev.to_backend_key(false), stored);
        self.store.pending.insert(rev, kv.clone());
        self.events.push(to_event(kv.clone(), false));
        kv
    }

    /// Delete every live key of the range; returns the deleted versions.
    pub fn delete_range(&mut self, range: &KeyRange) -> Result<Vec<KeyValue>> {
        let live = self.store.index.range(range, self.read_rev());
        let mut deleted = Vec::with_capacity(live.len());
        for (key, at) in live {
            deleted.push(self.store.read_version(at.modified)?);
            let rev = self.next_rev();
            let tomb = KeyValue {
                key: key.clone(),
                mod_revision: rev.main,
                ..Default::default()
            };
            self.batch.put(
                rev.to_backend_key(true),
                KeyValue {
                    key: key.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            );
            self.store.index.tombstone(&key, rev);
            self.events.push(to_event(tomb, true));
        }
        Ok(deleted)
    }

    /// Finish: returns the store revision after the transaction and its events.
    pub fn end(self) -> (i64, Vec<Event>) {
        if !self.events.is_empty() {
            self.store.current_rev = self.rev;
            self.batch.put(
                Bytes::from_static(schema::META_CURRENT_REV),
                encode_i64(self.rev),
            );
        }
        (self.store.current_rev, self.events)
    }
}

/// A consistent view for reads: the store under a read lock, or a write transaction that
/// sees its own changes (etcd's ReadView).
pub trait ReadView {
    fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult>;
    /// The revision the view reads at.
    fn rev(&self) -> i64;
    /// The oldest readable revision (the compacted one).
    fn first_rev(&self) -> i64;
}

impl ReadView for KvStore {
    fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult> {
        KvStore::range(self, range, opts)
    }
    fn rev(&self) -> i64 {
        self.current_rev
    }
    fn first_rev(&self) -> i64 {
        self.compact_rev
    }
}

impl ReadView for WriteTxn<'_> {
    fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult> {
        WriteTxn::range(self, range, opts)
    }
    fn rev(&self) -> i64 {
        self.read_rev()
    }
    fn first_rev(&self) -> i64 {
        self.store.compact_rev
    }
}

//! The multi-version key-value store (etcd: storage/mvcc/kvstore.go, kvstore_txn.go).
//!
//! Owns the key index, the current and compacted revisions, and the encoding of key
//! versions in the backend. Reads run under a shared lock held by the caller; a write
//! transaction ([`WriteTxn`]) runs inside the apply loop, adds its changes to the apply
//! batch and keeps them in `pending` until the batch is written, so that later commands of
//! the same batch read them.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::index::{KeyRange, TreeIndex};
use super::revision::Revision;
use super::{Error, Result};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::{schema, Backend, Tree, WriteBatch};

pub struct KvStore {
    backend: Arc<dyn Backend>,
    index: TreeIndex,
    current_rev: i64,
    /// The last compaction's revision; -1 before the first one (etcd's compactMainRev).
    compact_rev: i64,
    /// Versions written by the batch being applied and not yet in the backend.
    pending: HashMap<Revision, KeyValue>,
    /// Live keys with a lease, as found by the last restore (for the lessor to re-attach).
    restored_leases: HashMap<Bytes, i64>,
}

/// What a range read returns before the request's filters and sort are applied.
#[derive(Debug, Default)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Keys in the range at the read revision (before any limit).
    pub count: usize,
    /// The store's current revision at the time of the read.
    pub rev: i64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RangeOptions {
    /// At most this many keys (0 = all).
    pub limit: usize,
    /// Read at this revision (<= 0 = current).
    pub rev: i64,
    /// Only count, read no values.
    pub count_only: bool,
}

impl KvStore {
    /// Open the store over a backend, rebuilding the key index from every stored version.
    pub fn open(backend: Arc<dyn Backend>) -> Result<Self> {
        let mut store = KvStore {
            backend,
            index: TreeIndex::default(),
            current_rev: 0,
            compact_rev: -1,
            pending: HashMap::new(),
            restored_leases: HashMap::new(),
        };
        store.restore()?;
        Ok(store)
    }

    fn restore(&mut self) -> Result<()> {
        self.index = TreeIndex::default();
        self.pending.clear();
        self.restored_leases.clear();
        self.compact_rev = match self.backend.get(Tree::State, schema::META_COMPACT_REV)? {
            Some(v) => decode_i64(&v)?,
            None => -1,
        };
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
        self.range_at(range, rev, opts)
    }

    fn range_at(&self, range: &KeyRange, rev: i64, opts: RangeOptions) -> Result<RangeResult> {
        let found = self.index.range(range, rev);
        let count = found.len();
        if opts.count_only {
            return Ok(RangeResult {
                kvs: Vec::new(),
                count,
                rev: self.current_rev,
            });
        }
        let n = if opts.limit == 0 {
            count
        } else {
            opts.limit.min(count)
        };
        let mut kvs = Vec::with_capacity(n);
        for (_, at) in found.into_iter().take(n) {
            kvs.push(self.read_version(at.modified)?);
        }
        Ok(RangeResult {
            kvs,
            count,
            rev: self.current_rev,
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

    /// Compact at `rev` into `batch` (etcd: kvstore.go compact + kvstore_compaction.go).
    /// Checks are made here, so a refused compaction changes nothing.
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
        let keep = self.index.compact(rev);
        // Tombstones at exactly `rev` stay stored (not indexed): a watcher may start at the
        // compacted revision and must still see that revision's deletes. The next
        // compaction above `rev` removes them.
        let dropped = |r: &Revision, tombstone: bool| {
            r.main <= rev && !keep.contains(r) && !(tombstone && r.main == rev)
        };
        let start = Revision::backend_key_from_main(0);
        let end = Revision::backend_key_from_main(rev + 1);
        for (k, _) in self.backend.range(Tree::State, &start, &end, 0)? {
            let (r, tomb) = Revision::from_backend_key(&k)
                .ok_or_else(|| Error::Corrupt(format!("bad key {k:?}")))?;
            if dropped(&r, tomb) {
                batch.remove(k);
            }
        }
        // Versions put earlier in this apply batch are not in the backend yet (only puts are
        // pending; a tombstone of this batch stays stored until the next compaction).
        for r in self.pending.keys() {
            if dropped(r, false) {
                batch.remove(r.to_backend_key(false));
            }
        }
        Ok(())
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
        let mut r = self.store.range_at(range, rev, opts)?;
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
        let (created, version) = match self.store.index.get(&key, self.read_rev()) {
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
        self.batch
            .put(rev.to_backend_key(false), kv.encode_to_vec());
        self.store.index.put(&kv.key, rev);
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

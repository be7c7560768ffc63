//! Model-based tests of the MVCC store, compaction above all (sled's `tests/tree` habit).
//!
//! Random commands (puts, delete ranges, small transactions, compactions at random
//! positions, several commands per apply batch as the state machine does) run against
//! [`KvStore`] on the in-memory backend and against [`Model`], a plain `BTreeMap` of every
//! revision ever written. After every command the reads are compared at the current
//! revision and at random historical ones (at or above the compacted revision; below it the
//! store must answer `Compacted`, above the current one `FutureRev`). After every batch the
//! stored versions (through `events_between`) are compared with what compaction must keep,
//! and now and then the store is reopened or reloaded from the backend and compared again.
//!
//! Only `KvStore`'s public methods are used. Each run prints its seed; replay one with
//! `MVCC_SEED=<seed> cargo test --release --lib mvcc::model_test`. `MVCC_STEPS` and
//! `MVCC_ROUNDS` make the random test longer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Error, KeyRange, KvStore, RangeOptions};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::{Backend, MemoryBackend, Tree, WriteBatch};

/// A small key space, so that keys are deleted and created again many times; `b\0` sits
/// between `b` and `c` to catch off-by-one range ends.
const KEYS: &[&[u8]] = &[b"a", b"b", b"b\0", b"c", b"d", b"e"];

/// One change of one key at revision `(main, sub)`: a put of `(value, lease)` or a tombstone.
#[derive(Debug, Clone)]
struct Change {
    main: i64,
    sub: i64,
    put: Option<(Bytes, i64)>,
}

/// One operation of a write transaction, as the apply layer issues it. A delete names a
/// range the way a request does: `(key, range_end)`.
#[derive(Debug, Clone)]
enum Op {
    Put {
        key: Bytes,
        value: Bytes,
        lease: i64,
    },
    Delete {
        key: Bytes,
        end: Bytes,
    },
}

/// Every revision ever written, and what compaction must have left in the backend.
#[derive(Debug)]
struct Model {
    /// key -> its changes in revision order.
    history: BTreeMap<Bytes, Vec<Change>>,
    current: i64,
    compacted: i64,
}

impl Model {
    fn new() -> Self {
        Model {
            history: BTreeMap::new(),
            // an empty store is at revision 1 and has never been compacted
            current: 1,
            compacted: -1,
        }
    }

    /// What a read of `key` at `rev` sees, computed from the whole history.
    fn get(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        let upto: Vec<&Change> = self
            .history
            .get(key)?
            .iter()
            .take_while(|c| c.main <= rev)
            .collect();
        let last = upto.last()?;
        let (value, lease) = last.put.clone()?;
        // the generation began after the last tombstone before `last`
        let born = upto
            .iter()
            .rposition(|c| c.put.is_none())
            .map_or(0, |i| i + 1);
        Some(KeyValue {
            key: Bytes::copy_from_slice(key),
            create_revision: upto[born].main,
            mod_revision: last.main,
            version: i64::try_from(upto.len() - born).expect("small"),
            value,
            lease,
        })
    }

    fn range(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<KeyValue> {
        self.history
            .keys()
            .filter(|k| in_range(k, key, end))
            .filter_map(|k| self.get(k, rev))
            .collect()
    }

    /// Apply one write transaction; its events, in order.
    fn txn(&mut self, ops: &[Op]) -> (Vec<Event>, Vec<Vec<KeyValue>>) {
        let main = self.current + 1;
        let mut sub = 0;
        let mut events = Vec::new();
        let mut deleted = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    self.record(key, main, sub, Some((value.clone(), *lease)));
                    sub += 1;
                    let kv = self.get(key, main).expect("just put");
                    events.push(event(EventType::Put, kv));
                }
                Op::Delete { key, end } => {
                    // what the transaction sees: its own earlier changes included
                    let live = self.range(key, end, main);
                    for kv in &live {
                        self.record(&kv.key, main, sub, None);
                        sub += 1;
                        let tomb = KeyValue {
                            key: kv.key.clone(),
                            mod_revision: main,
                            ..Default::default()
                        };
                        events.push(event(EventType::Delete, tomb));
                    }
                    deleted.push(live);
                }
            }
        }
        if sub > 0 {
            self.current = main;
        }
        (events, deleted)
    }

    fn record(&mut self, key: &Bytes, main: i64, sub: i64, put: Option<(Bytes, i64)>) {
        self.history
            .entry(key.clone())
            .or_default()
            .push(Change { main, sub, put });
    }

    /// etcd's refusals, or the new compacted revision.
    fn compact(&mut self, rev: i64) -> Result<(), &'static str> {
        if rev <= self.compacted {
            return Err("compacted");
        }
        if rev > self.current {
            return Err("future");
        }
        // The compactor removes what a compaction drops once its batch is written, so
        // tombstones of the same batch below it go too.
        self.compacted = rev;
        Ok(())
    }

    /// The versions the backend must hold: everything above the compacted revision, the
    /// version each key shows at it, and the tombstones at exactly it (kept for watchers
    /// that start there).
    fn stored(&self) -> BTreeSet<(i64, i64)> {
        let c = self.compacted;
        let mut out = BTreeSet::new();
        for changes in self.history.values() {
            let visible = changes.iter().rposition(|ch| ch.main <= c);
            for (i, ch) in changes.iter().enumerate() {
                let kept = ch.main > c
                    || (Some(i) == visible && ch.put.is_some())
                    || (ch.main == c && ch.put.is_none());
                if kept {
                    out.insert((ch.main, ch.sub));
                }
            }
        }
        out
    }

    /// Every change with a main revision in `[from, to]`, in revision order, as an event.
    fn events(&self, from: i64, to: i64) -> Vec<((i64, i64), Event)> {
        let mut out = Vec::new();
        for (key, changes) in &self.history {
            for ch in changes.iter().filter(|c| c.main >= from && c.main <= to) {
                let e = match ch.put {
                    Some(_) => event(EventType::Put, self.get(key, ch.main).expect("a put")),
                    None => event(
                        EventType::Delete,
                        KeyValue {
                            key: key.clone(),
                            mod_revision: ch.main,
                            ..Default::default()
                        },
                    ),
                };
                out.push(((ch.main, ch.sub), e));
            }
        }
        out.sort_by_key(|(r, _)| *r);
        out
    }

    /// Live keys with a lease at the current revision.
    fn leases(&self) -> HashMap<Bytes, i64> {
        self.history
            .keys()
            .filter_map(|k| self.get(k, self.current))
            .filter(|kv| kv.lease != 0)
            .map(|kv| (kv.key, kv.lease))
            .collect()
    }
}

/// etcd's `range_end` rules, written out independently of `KeyRange`.
fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == [0] {
        k >= key
    } else {
        k >= key && k < end
    }
}

fn event(t: EventType, kv: KeyValue) -> Event {
    Event {
        r#type: t as i32,
        kv: Some(kv),
        prev_kv: None,
    }
}

/// The store, its backend, the model and the apply batch being built.
struct Harness {
    backend: Arc<dyn Backend>,
    kv: KvStore,
    model: Model,
    batch: WriteBatch,
    /// Printed with every failure: the seed and the step.
    ctx: String,
}

impl Harness {
    fn new() -> Self {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        Harness {
            kv: KvStore::open(backend.clone()).expect("open an empty store"),
            backend,
            model: Model::new(),
            batch: WriteBatch::default(),
            ctx: String::new(),
        }
    }

    fn txn(&mut self, ops: &[Op]) {
        let mut txn = self.kv.write(&mut self.batch);
        let mut deleted = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    txn.put(key.clone(), value.clone(), *lease);
                }
                Op::Delete { key, end } => {
                    let range = KeyRange::new(key.clone(), end.clone());
                    deleted.push(txn.delete_range(&range).expect("delete_range"));
                }
            }
        }
        let (rev, events) = txn.end();
        let (want_events, want_deleted) = self.model.txn(ops);
        let ctx = &self.ctx;
        assert_eq!(rev, self.model.current, "{ctx}: revision after {ops:?}");
        assert_eq!(events, want_events, "{ctx}: events of {ops:?}");
        assert_eq!(deleted, want_deleted, "{ctx}: deleted by {ops:?}");
    }

    fn compact(&mut self, rev: i64) {
        let got = self.kv.compact(rev, &mut self.batch);
        let want = self.model.compact(rev);
        let ctx = &self.ctx;
        match (got, want) {
            (Ok(()), Ok(())) => {}
            (Err(Error::Compacted), Err("compacted")) | (Err(Error::FutureRev), Err("future")) => {}
            (got, want) => panic!("{ctx}: compact({rev}) gave {got:?}, the model {want:?}"),
        }
    }

    /// Write the apply batch, as the state machine does after its last command.
    fn write_batch(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        self.backend
            .write(Tree::State, batch)
            .expect("memory backend");
        self.kv.batch_written();
        // The apply only schedules a compaction; the compactor deletes the versions. Here
        // it runs to its end before the stored versions are compared.
        self.kv.run_scheduled_compactions().expect("memory backend");
    }

    /// A fresh store over the same backend (a restart), or `reload` (a snapshot install).
    fn reopen(&mut self, fresh: bool) {
        assert!(self.batch.is_empty(), "reopen only between batches");
        if fresh {
            self.kv = KvStore::open(self.backend.clone()).expect("reopen");
        } else {
            self.kv.reload().expect("reload");
        }
        let leases = self.kv.take_restored_leases();
        assert_eq!(
            leases,
            self.model.leases(),
            "{}: leases after a restore",
            self.ctx
        );
    }

    fn check_range(&self, key: &[u8], end: &[u8], rev: i64, limit: usize, count_only: bool) {
        let ctx = &self.ctx;
        let range = KeyRange::new(Bytes::copy_from_slice(key), Bytes::copy_from_slice(end));
        let opts = RangeOptions {
            limit,
            rev,
            count_only,
            ..Default::default()
        };
        let got = self
            .kv
            .range(&range, opts)
            .unwrap_or_else(|e| panic!("{ctx}: range {key:?}..{end:?} at {rev}: {e}"));
        let at = if rev <= 0 { self.model.current } else { rev };
        let mut want = self.model.range(key, end, at);
        let what = format!("{ctx}: range {key:?}..{end:?} at {rev} limit {limit}");
        assert_eq!(got.count, want.len(), "{what}: count");
        assert_eq!(got.rev, self.model.current, "{what}: header revision");
        if count_only {
            assert!(got.kvs.is_empty(), "{what}: count_only returned values");
            return;
        }
        if limit > 0 {
            want.truncate(limit);
        }
        assert_eq!(got.kvs, want, "{what}");
    }

    /// Reads at the current revision, at random historical ones, below the compacted
    /// revision and above the current one.
    fn check_reads(&self, rng: &mut StdRng) {
        let ctx = &self.ctx;
        let m = &self.model;
        assert_eq!(self.kv.current_rev(), m.current, "{ctx}: current revision");
        assert_eq!(
            self.kv.compact_rev(),
            m.compacted,
            "{ctx}: compacted revision"
        );
        let oldest = m.compacted.max(1);
        let mut revs = vec![0, m.current, oldest];
        for _ in 0..3 {
            revs.push(rng.gen_range(oldest..=m.current));
        }
        for rev in revs {
            // every key, then a few random ranges with random limits
            self.check_range(b"", b"\0", rev, 0, false);
            for _ in 0..3 {
                let (key, end) = random_range(rng);
                let limit = if rng.gen_bool(0.3) {
                    rng.gen_range(1..4)
                } else {
                    0
                };
                self.check_range(&key, &end, rev, limit, rng.gen_bool(0.2));
            }
        }
        let full = KeyRange::new(Bytes::new(), Bytes::from_static(&[0]));
        if m.compacted > 1 {
            let rev = rng.gen_range(1..m.compacted);
            let opts = RangeOptions {
                rev,
                ..Default::default()
            };
            let got = self.kv.range(&full, opts);
            assert!(
                matches!(got, Err(Error::Compacted)),
                "{ctx}: a read at {rev}, below the compacted {}, gave {got:?}",
                m.compacted
            );
        }
        let rev = m.current + rng.gen_range(1..3);
        let opts = RangeOptions {
            rev,
            ..Default::default()
        };
        let got = self.kv.range(&full, opts);
        assert!(
            matches!(got, Err(Error::FutureRev)),
            "{ctx}: a read at {rev}, above the current {}, gave {got:?}",
            m.current
        );
    }

    /// Between batches: the backend holds exactly what compaction must keep, and the events
    /// from any revision at or above the compacted one are the model's.
    fn check_stored(&self, rng: &mut StdRng) {
        let ctx = &self.ctx;
        let m = &self.model;
        let all = self
            .kv
            .events_between(0, m.current)
            .expect("events_between");
        let stored: BTreeSet<(i64, i64)> = all.iter().map(|(r, _)| (r.main, r.sub)).collect();
        assert_eq!(stored.len(), all.len(), "{ctx}: a revision stored twice");
        let want = m.stored();
        assert_eq!(
            stored, want,
            "{ctx}: stored versions after compacting at {} (left: store, right: model)",
            m.compacted
        );
        let from = rng.gen_range(m.compacted.max(0)..=m.current + 1);
        let got: Vec<((i64, i64), Event)> = self
            .kv
            .events_between(from, m.current)
            .expect("events_between")
            .into_iter()
            .map(|(r, e)| ((r.main, r.sub), e))
            .collect();
        assert_eq!(
            got,
            m.events(from, m.current),
            "{ctx}: events from {from} to {}",
            m.current
        );
    }
}

fn random_key(rng: &mut StdRng) -> Bytes {
    Bytes::from_static(KEYS[rng.gen_range(0..KEYS.len())])
}

/// A request range `(key, range_end)`: one key, a half-open interval (sometimes empty or
/// inverted), or everything from a key on.
fn random_range(rng: &mut StdRng) -> (Bytes, Bytes) {
    let key = random_key(rng);
    let end = match rng.gen_range(0..4) {
        0 => Bytes::new(),
        1 => Bytes::from_static(&[0]),
        _ => random_key(rng),
    };
    (key, end)
}

/// A compaction revision: usually valid, often on a change of one key (every position of
/// its generations: a put, a tombstone, just before or after either), sometimes refused.
fn random_compaction(rng: &mut StdRng, m: &Model) -> i64 {
    let lo = m.compacted.max(0);
    match rng.gen_range(0..10) {
        0 => rng.gen_range(0..=lo.max(1)), // at or below the compacted revision
        1 => m.current + rng.gen_range(1..3), // a future revision
        2..=5 => rng.gen_range(lo..=m.current) + 1, // anywhere after the last compaction
        _ => {
            let key = random_key(rng);
            let mains: Vec<i64> = m
                .history
                .get(&key)
                .map(|h| h.iter().map(|c| c.main).collect())
                .unwrap_or_default();
            if mains.is_empty() {
                return m.current;
            }
            mains[rng.gen_range(0..mains.len())] + rng.gen_range(-1..=1)
        }
    }
}

fn random_ops(rng: &mut StdRng) -> Vec<Op> {
    let put = |rng: &mut StdRng, key: Bytes| Op::Put {
        key,
        value: Bytes::from(format!("v{}", rng.gen_range(0..1000))),
        lease: if rng.gen_bool(0.3) {
            rng.gen_range(1..4)
        } else {
            0
        },
    };
    match rng.gen_range(0..10) {
        0..=4 => {
            let key = random_key(rng);
            vec![put(rng, key)]
        }
        5..=7 => {
            let (key, end) = random_range(rng);
            vec![Op::Delete { key, end }]
        }
        _ => {
            // a transaction: distinct put keys, deletes that cover none of them (the api
            // layer refuses anything else as etcd's duplicate key)
            let mut ops = Vec::new();
            let mut put_keys: Vec<Bytes> = Vec::new();
            for _ in 0..rng.gen_range(1..5) {
                if rng.gen_bool(0.5) {
                    let key = random_key(rng);
                    if !put_keys.contains(&key) {
                        put_keys.push(key.clone());
                        ops.push(put(rng, key));
                    }
                } else {
                    let (key, end) = random_range(rng);
                    ops.push(Op::Delete { key, end });
                }
            }
            let covers = |op: &Op| match op {
                Op::Delete { key, end } => put_keys.iter().any(|k| in_range(k, key, end)),
                Op::Put { .. } => false,
            };
            ops.retain(|op| !covers(op));
            ops
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One random run: `steps` commands in batches of one to four.
fn run(seed: u64, steps: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut h = Harness::new();
    let mut step = 0;
    while step < steps {
        for _ in 0..rng.gen_range(1..=4) {
            step += 1;
            h.ctx = format!("MVCC_SEED={seed} step {step}");
            if rng.gen_range(0..6) == 0 {
                let rev = random_compaction(&mut rng, &h.model);
                h.compact(rev);
            } else {
                let ops = random_ops(&mut rng);
                h.txn(&ops);
            }
            h.check_reads(&mut rng);
        }
        h.write_batch();
        h.check_stored(&mut rng);
        if rng.gen_range(0..12) == 0 {
            h.reopen(rng.gen_bool(0.5));
            h.check_reads(&mut rng);
            h.check_stored(&mut rng);
        }
    }
}

#[test]
fn random_operations_match_the_model() {
    let steps = env_u64("MVCC_STEPS").map_or(400, |s| usize::try_from(s).expect("steps"));
    let seeds: Vec<u64> = match env_u64("MVCC_SEED") {
        Some(seed) => vec![seed],
        None => {
            let rounds = env_u64("MVCC_ROUNDS").unwrap_or(24);
            let mut rng = rand::thread_rng();
            (0..rounds).map(|_| rng.gen()).collect()
        }
    };
    for seed in seeds {
        eprintln!("mvcc model test: seed {seed} (replay: MVCC_SEED={seed})");
        run(seed, steps);
    }
}

/// The history of one key, with another key written in between, that every compaction
/// position below is tried on: two generations closed by tombstones and a live third.
fn fixed_history() -> Vec<Vec<Op>> {
    let put = |k: &'static [u8], v: &'static str| Op::Put {
        key: Bytes::from_static(k),
        value: Bytes::from_static(v.as_bytes()),
        lease: 0,
    };
    let del = |k: &'static [u8]| Op::Delete {
        key: Bytes::from_static(k),
        end: Bytes::new(),
    };
    vec![
        vec![put(b"k", "1")],                 // 2: k created
        vec![put(b"o", "x")],                 // 3
        vec![put(b"k", "2")],                 // 4
        vec![del(b"k")],                      // 5: first generation ends
        vec![put(b"k", "3"), put(b"o", "y")], // 6: k created again
        vec![del(b"k"), put(b"o", "z")],      // 7: second generation ends
        vec![del(b"k")],                      // nothing to delete: no revision
        vec![put(b"k", "4")],                 // 8: third generation
        vec![put(b"k", "5")],                 // 9
        vec![del(b"o")],                      // 10
    ]
}

/// Compaction at every revision of the fixed history, then at every later one again, with
/// the history applied one command per batch and all in one batch (where the versions
/// compaction drops are still pending), each checked before and after a reopen.
#[test]
fn compaction_at_every_position_of_a_keys_generations() {
    let mut rng = StdRng::seed_from_u64(9);
    let history = fixed_history();
    let last = {
        let mut m = Model::new();
        for ops in &history {
            m.txn(ops);
        }
        m.current
    };
    for one_batch in [false, true] {
        for first in 0..=last {
            for second in [None, Some(first + 1), Some(last)] {
                let mut h = Harness::new();
                h.ctx = format!("one batch {one_batch}, compact at {first} then {second:?}");
                for ops in &history {
                    h.txn(ops);
                    if !one_batch {
                        h.write_batch();
                    }
                }
                h.compact(first);
                h.check_reads(&mut rng);
                if let Some(second) = second {
                    h.write_batch();
                    h.compact(second);
                    h.check_reads(&mut rng);
                }
                h.write_batch();
                h.check_reads(&mut rng);
                h.check_stored(&mut rng);
                // keys recreated after the compaction
                h.txn(&[Op::Put {
                    key: Bytes::from_static(b"k"),
                    value: Bytes::from_static(b"after"),
                    lease: 2,
                }]);
                h.txn(&[Op::Delete {
                    key: Bytes::from_static(b"a"),
                    end: Bytes::from_static(&[0]),
                }]);
                h.txn(&[Op::Put {
                    key: Bytes::from_static(b"o"),
                    value: Bytes::from_static(b"back"),
                    lease: 0,
                }]);
                h.write_batch();
                h.check_reads(&mut rng);
                h.check_stored(&mut rng);
                for fresh in [true, false] {
                    h.reopen(fresh);
                    h.check_reads(&mut rng);
                    h.check_stored(&mut rng);
                }
            }
        }
    }
}

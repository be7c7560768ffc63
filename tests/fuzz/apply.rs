//! The apply path against a model: random committed commands (puts with and without
//! leases and ignore flags, delete ranges, txns with compares and nested reads, puts and
//! deletes, compactions, lease grants and revokes, including every refusal the applier
//! knows) go through `Applier` on the in-memory backend and through `Model`, a map of the
//! live keys. After each command the outcome, the revision, the events and the whole
//! keyspace must agree; a refusal must leave the batch empty. Now and then the store is
//! reopened from the backend and compared again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use metastore::alarm::AlarmStore;
use metastore::apply::{Applied, Applier, Command, Refusal, Request};
use metastore::auth::AuthStore;
use metastore::lease::{Lessor, MAX_LEASE_TTL};
use metastore::membership::Members;
use metastore::mvcc::KvStore;
use metastore::proto::etcdserverpb::{
    compare, request_op, response_op, CompactionRequest, Compare, DeleteRangeRequest,
    LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use metastore::proto::mvccpb::KeyValue;
use metastore::storage::{Backend, MemoryBackend, Tree, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEYS: &[&[u8]] = &[b"a", b"b", b"b\0", b"c", b"d"];

#[derive(Clone, Debug, PartialEq)]
struct Live {
    value: Bytes,
    create: i64,
    modified: i64,
    version: i64,
    lease: i64,
}

#[derive(Default)]
struct Model {
    rev: i64,
    compacted: i64,
    keys: BTreeMap<Bytes, Live>,
    leases: BTreeMap<i64, BTreeSet<Bytes>>,
}

/// What the model expects of one command.
#[derive(Debug, PartialEq)]
enum Want {
    Refused(Refusal),
    /// Applied; the events it made (all at the new revision, if any).
    Done {
        events: usize,
    },
}

fn kv_of(key: &Bytes, l: &Live) -> KeyValue {
    KeyValue {
        key: key.clone(),
        create_revision: l.create,
        mod_revision: l.modified,
        version: l.version,
        value: l.value.clone(),
        lease: l.lease,
    }
}

fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    match end {
        [] => k == key,
        [0] => k >= key,
        end => k >= key && k < end,
    }
}

impl Model {
    fn new() -> Model {
        // etcd's store starts at revision 1, compacted at -1 (a compaction at 0 succeeds once)
        Model {
            rev: 1,
            compacted: -1,
            ..Default::default()
        }
    }

    fn get(&self, key: &[u8]) -> Option<&Live> {
        self.keys.get(key)
    }

    fn check_put(&self, p: &PutRequest) -> Option<Refusal> {
        if (p.ignore_value || p.ignore_lease) && self.get(&p.key).is_none() {
            return Some(Refusal::KeyNotFound);
        }
        if p.lease != 0 && !self.leases.contains_key(&p.lease) {
            return Some(Refusal::LeaseNotFound);
        }
        None
    }

    /// A put at revision `rev` (sub-revisions need no model: a key is written once per
    /// revision). Returns the previous kv.
    fn put(&mut self, p: &PutRequest, rev: i64) -> Option<KeyValue> {
        let prev = self.keys.get(&p.key).cloned();
        let value = match (&prev, p.ignore_value) {
            (Some(l), true) => l.value.clone(),
            _ => p.value.clone(),
        };
        let lease = match (&prev, p.ignore_lease) {
            (Some(l), true) => l.lease,
            _ => p.lease,
        };
        if let Some(l) = &prev {
            if let Some(keys) = self.leases.get_mut(&l.lease) {
                keys.remove(&p.key);
            }
        }
        if lease != 0 {
            self.leases.entry(lease).or_default().insert(p.key.clone());
        }
        let live = Live {
            value,
            create: prev.as_ref().map_or(rev, |l| l.create),
            modified: rev,
            version: prev.as_ref().map_or(1, |l| l.version + 1),
            lease,
        };
        self.keys.insert(p.key.clone(), live);
        prev.map(|l| kv_of(&p.key, &l))
    }

    fn delete(&mut self, key: &[u8], end: &[u8]) -> Vec<KeyValue> {
        let gone: Vec<Bytes> = self
            .keys
            .keys()
            .filter(|k| in_range(k, key, end))
            .cloned()
            .collect();
        gone.iter()
            .map(|k| {
                let l = self.keys.remove(k).expect("live");
                if let Some(keys) = self.leases.get_mut(&l.lease) {
                    keys.remove(k);
                }
                kv_of(k, &l)
            })
            .collect()
    }

    fn compare(&self, c: &Compare) -> bool {
        let live = self.get(&c.key);
        let ord = match compare::CompareTarget::try_from(c.target).expect("target") {
            compare::CompareTarget::Value => {
                let Some(l) = live else { return false };
                let Some(compare::TargetUnion::Value(v)) = &c.target_union else {
                    return false;
                };
                l.value.as_ref().cmp(v.as_ref())
            }
            t => {
                let (have, want) = match (t, &c.target_union) {
                    (compare::CompareTarget::Version, Some(compare::TargetUnion::Version(v))) => {
                        (live.map_or(0, |l| l.version), *v)
                    }
                    (
                        compare::CompareTarget::Create,
                        Some(compare::TargetUnion::CreateRevision(v)),
                    ) => (live.map_or(0, |l| l.create), *v),
                    (compare::CompareTarget::Mod, Some(compare::TargetUnion::ModRevision(v))) => {
                        (live.map_or(0, |l| l.modified), *v)
                    }
                    (compare::CompareTarget::Lease, Some(compare::TargetUnion::Lease(v))) => {
                        (live.map_or(0, |l| l.lease), *v)
                    }
                    _ => unreachable!("the generator pairs targets and values"),
                };
                have.cmp(&want)
            }
        };
        use std::cmp::Ordering::*;
        match compare::CompareResult::try_from(c.result).expect("result") {
            compare::CompareResult::Equal => ord == Equal,
            compare::CompareResult::Greater => ord == Greater,
            compare::CompareResult::Less => ord == Less,
            compare::CompareResult::NotEqual => ord != Equal,
        }
    }

    fn apply(&mut self, req: &Request) -> Want {
        match req {
            Request::Put(p) => match self.check_put(p) {
                Some(r) => Want::Refused(r),
                None => {
                    self.rev += 1;
                    self.put(p, self.rev);
                    Want::Done { events: 1 }
                }
            },
            Request::DeleteRange(d) => {
                let n = self.delete(&d.key, &d.range_end).len();
                if n > 0 {
                    self.rev += 1;
                }
                Want::Done { events: n }
            }
            Request::Txn(t) => {
                let ok = t.compare.iter().all(|c| self.compare(c));
                let ops = if ok { &t.success } else { &t.failure };
                for op in ops {
                    match &op.request {
                        Some(request_op::Request::RequestPut(p)) => {
                            if let Some(r) = self.check_put(p) {
                                return Want::Refused(r);
                            }
                        }
                        Some(request_op::Request::RequestRange(r)) => {
                            if r.revision > self.rev {
                                return Want::Refused(Refusal::FutureRev);
                            }
                            if r.revision > 0 && r.revision < self.compacted {
                                return Want::Refused(Refusal::Compacted);
                            }
                        }
                        _ => {}
                    }
                }
                let rev = self.rev + 1;
                let mut events = 0;
                for op in ops {
                    match &op.request {
                        Some(request_op::Request::RequestPut(p)) => {
                            self.put(p, rev);
                            events += 1;
                        }
                        Some(request_op::Request::RequestDeleteRange(d)) => {
                            events += self.delete(&d.key, &d.range_end).len();
                        }
                        _ => {}
                    }
                }
                if events > 0 {
                    self.rev = rev;
                }
                Want::Done { events }
            }
            Request::Compaction(c) => {
                if c.revision <= self.compacted {
                    Want::Refused(Refusal::Compacted)
                } else if c.revision > self.rev {
                    Want::Refused(Refusal::FutureRev)
                } else {
                    self.compacted = c.revision;
                    Want::Done { events: 0 }
                }
            }
            Request::LeaseGrant(g) => {
                if g.ttl > MAX_LEASE_TTL {
                    Want::Refused(Refusal::LeaseTtlTooLarge)
                } else if let std::collections::btree_map::Entry::Vacant(e) =
                    self.leases.entry(g.id)
                {
                    e.insert(BTreeSet::new());
                    Want::Done { events: 0 }
                } else {
                    Want::Refused(Refusal::LeaseExists)
                }
            }
            Request::LeaseRevoke(r) => match self.leases.remove(&r.id) {
                None => Want::Refused(Refusal::LeaseNotFound),
                Some(keys) => {
                    let n = keys.len();
                    for k in keys {
                        self.keys.remove(&k);
                    }
                    if n > 0 {
                        self.rev += 1;
                    }
                    Want::Done { events: n }
                }
            },
            other => unreachable!("not generated: {other:?}"),
        }
    }
}

fn key(rng: &mut StdRng) -> Bytes {
    Bytes::from_static(KEYS[rng.gen_range(0..KEYS.len())])
}

fn range_end(rng: &mut StdRng, key: &Bytes) -> Bytes {
    match rng.gen_range(0..4) {
        0 | 1 => Bytes::new(),
        2 => Bytes::from_static(b"\0"),
        _ => {
            let mut end = key.to_vec();
            end.push(rng.gen_range(0..3));
            if rng.gen_bool(0.5) {
                Bytes::from_static(KEYS[rng.gen_range(0..KEYS.len())])
            } else {
                Bytes::from(end)
            }
        }
    }
}

fn lease(rng: &mut StdRng) -> i64 {
    if rng.gen_bool(0.6) {
        0
    } else {
        rng.gen_range(1..6)
    }
}

fn put(rng: &mut StdRng) -> PutRequest {
    let ignore_value = rng.gen_bool(0.1);
    let ignore_lease = rng.gen_bool(0.1);
    PutRequest {
        key: key(rng),
        value: Bytes::from(vec![b'v'; rng.gen_range(0..3)]),
        lease: if ignore_lease { 0 } else { lease(rng) },
        prev_kv: rng.gen_bool(0.5),
        ignore_value,
        ignore_lease,
    }
}

fn compare_of(rng: &mut StdRng, m: &Model) -> Compare {
    use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let n = rng.gen_range(0..m.rev + 2);
    let (target, union) = match rng.gen_range(0..5) {
        0 => (T::Version, U::Version(rng.gen_range(0..4))),
        1 => (T::Create, U::CreateRevision(n)),
        2 => (T::Mod, U::ModRevision(n)),
        3 => (T::Lease, U::Lease(lease(rng))),
        _ => (
            T::Value,
            U::Value(Bytes::from(vec![b'v'; rng.gen_range(0..3)])),
        ),
    };
    let result = [R::Equal, R::Greater, R::Less, R::NotEqual][rng.gen_range(0..4)];
    Compare {
        result: result as i32,
        target: target as i32,
        key: key(rng),
        range_end: Bytes::new(),
        target_union: Some(union),
    }
}

/// A branch of a txn: a few ops on distinct keys (etcd's API refuses a put and another
/// write of one key in a txn before it commits).
fn ops(rng: &mut StdRng, m: &Model) -> Vec<RequestOp> {
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(0..4) {
        let op = match rng.gen_range(0..3) {
            0 => {
                let p = put(rng);
                if !used.insert(p.key.clone()) {
                    continue;
                }
                request_op::Request::RequestPut(p)
            }
            1 => {
                // a delete of one key only, so that no two writes overlap
                let k = key(rng);
                if !used.insert(k.clone()) {
                    continue;
                }
                request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                    key: k,
                    range_end: Bytes::new(),
                    prev_kv: rng.gen_bool(0.5),
                })
            }
            _ => {
                let k = key(rng);
                let end = range_end(rng, &k);
                request_op::Request::RequestRange(RangeRequest {
                    key: k,
                    range_end: end,
                    revision: match rng.gen_range(0..10) {
                        0 => m.compacted - 1,
                        1 => m.rev + 1,
                        _ => 0,
                    }
                    .max(0),
                    ..Default::default()
                })
            }
        };
        out.push(RequestOp { request: Some(op) });
    }
    out
}

fn request(rng: &mut StdRng, m: &Model) -> Request {
    match rng.gen_range(0..20) {
        0..=5 => Request::Put(put(rng)),
        6..=8 => {
            let k = key(rng);
            Request::DeleteRange(DeleteRangeRequest {
                range_end: range_end(rng, &k),
                key: k,
                prev_kv: rng.gen_bool(0.5),
            })
        }
        9..=14 => Request::Txn(TxnRequest {
            compare: (0..rng.gen_range(0..3))
                .map(|_| compare_of(rng, m))
                .collect(),
            success: ops(rng, m),
            failure: ops(rng, m),
        }),
        15 => Request::Compaction(CompactionRequest {
            revision: rng.gen_range(0..m.rev + 3),
            physical: false,
        }),
        16..=17 => Request::LeaseGrant(LeaseGrantRequest {
            ttl: if rng.gen_bool(0.05) {
                MAX_LEASE_TTL + 1
            } else {
                600
            },
            id: rng.gen_range(1..6),
        }),
        _ => Request::LeaseRevoke(LeaseRevokeRequest {
            id: rng.gen_range(1..7),
        }),
    }
}

struct Stores {
    backend: Arc<dyn Backend>,
    kv: KvStore,
    leases: Lessor,
    members: Members,
    alarms: AlarmStore,
    auth: AuthStore,
}

fn all(kv: &KvStore) -> Vec<KeyValue> {
    let req = RangeRequest {
        key: Bytes::from_static(b"\0"),
        range_end: Bytes::from_static(b"\0"),
        ..Default::default()
    };
    metastore::apply::kv::range(kv, &req)
        .expect("range")
        .expect("a read")
        .kvs
}

/// Run `cases` commands; returns (applied, refused), or the first disagreement.
pub fn run(seed: u64, cases: u64) -> Result<(u64, u64), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    let mut s = Stores {
        kv: KvStore::open(backend.clone()).map_err(|e| e.to_string())?,
        backend,
        leases: Lessor::new(1),
        members: Members::default(),
        alarms: AlarmStore::default(),
        auth: AuthStore::default(),
    };
    let mut m = Model::new();
    let (mut applied, mut refused) = (0, 0);
    for case in 0..cases {
        // a fresh start now and then, so that keys are few and revisions small
        if case % 5_000 == 0 && case > 0 {
            let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
            s.kv = KvStore::open(backend.clone()).map_err(|e| e.to_string())?;
            s.backend = backend;
            s.leases = Lessor::new(1);
            m = Model::new();
        }
        let req = request(&mut rng, &m);
        let want_branch = match &req {
            Request::Txn(t) => t.compare.iter().all(|c| m.compare(c)),
            _ => false,
        };
        let want = m.apply(&req);
        let mut batch = WriteBatch::default();
        let out = Applier {
            kv: &mut s.kv,
            leases: &mut s.leases,
            members: &mut s.members,
            alarms: &mut s.alarms,
            auth: &mut s.auth,
            batch: &mut batch,
        }
        .apply(Command::new(1, req.clone()))
        .map_err(|e| format!("case {case} (seed {seed}): {req:?} failed: {e}"))?;
        let writes = batch.ops.len();
        s.backend
            .write(Tree::State, batch)
            .map_err(|e| e.to_string())?;
        s.kv.batch_written();
        s.kv.run_scheduled_compactions()
            .map_err(|e| e.to_string())?;
        let fail = |what: String| format!("case {case} (seed {seed}): {req:?}: {what}");
        match (&want, &out.applied) {
            (Want::Refused(w), Applied::Refused(got)) => {
                if w != got {
                    return Err(fail(format!("refused with {got:?}, the model says {w:?}")));
                }
                if writes != 0 || !out.events.is_empty() {
                    return Err(fail(format!(
                        "a refusal wrote {writes} records and made {} events",
                        out.events.len()
                    )));
                }
                refused += 1;
            }
            (Want::Done { events }, got) if !matches!(got, Applied::Refused(_)) => {
                let made: usize = out.events.iter().map(|(_, e)| e.len()).sum();
                if made != *events || out.events.iter().any(|(rev, _)| *rev != m.rev) {
                    return Err(fail(format!(
                        "events {:?}, the model says {events} at {}",
                        out.events, m.rev
                    )));
                }
                if let (Request::Txn(t), Applied::Txn(r)) = (&req, got) {
                    if r.succeeded != want_branch {
                        return Err(fail(format!(
                            "took the {} branch, the model the other",
                            if r.succeeded { "success" } else { "failure" }
                        )));
                    }
                    let ops = if r.succeeded { &t.success } else { &t.failure };
                    if r.responses.len() != ops.len()
                        || r.responses.iter().zip(ops).any(|(resp, op)| {
                            !matches!(
                                (&resp.response, &op.request),
                                (
                                    Some(response_op::Response::ResponsePut(_)),
                                    Some(request_op::Request::RequestPut(_))
                                ) | (
                                    Some(response_op::Response::ResponseRange(_)),
                                    Some(request_op::Request::RequestRange(_))
                                ) | (
                                    Some(response_op::Response::ResponseDeleteRange(_)),
                                    Some(request_op::Request::RequestDeleteRange(_))
                                )
                            )
                        })
                    {
                        return Err(fail(format!("responses {:?} for ops {ops:?}", r.responses)));
                    }
                }
                applied += 1;
            }
            (w, got) => return Err(fail(format!("got {got:?}, the model says {w:?}"))),
        }
        if s.kv.current_rev() != m.rev {
            return Err(fail(format!(
                "revision {}, the model's {}",
                s.kv.current_rev(),
                m.rev
            )));
        }
        let want_kvs: Vec<KeyValue> = m.keys.iter().map(|(k, l)| kv_of(k, l)).collect();
        if all(&s.kv) != want_kvs {
            return Err(fail(format!(
                "keyspace {:?}, the model's {want_kvs:?}",
                all(&s.kv)
            )));
        }
        if case % 997 == 0 {
            // reopened from what the batches wrote
            let reopened = KvStore::open(s.backend.clone()).map_err(|e| e.to_string())?;
            if all(&reopened) != want_kvs || reopened.current_rev() != m.rev {
                return Err(fail("the reopened store differs".into()));
            }
        }
    }
    Ok((applied, refused))
}

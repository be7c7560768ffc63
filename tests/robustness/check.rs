//! The checks of one recorded run.
//!
//! Linearizability through revisions: etcd gives every write a revision, and a watch of
//! every key from revision 1 sees them all in order, so the history's linearization is the
//! revision order itself (plus, for reads, the revision in their header). Checking it is
//! then linear rather than a search (Wing–Gong–Lowe, as porcupine does it):
//!
//! - the watch is a complete, ordered record: revisions strictly increase between
//!   responses, no event comes twice, one revision's events come in one response, every
//!   revision from 2 to the last has events (no gap, across reconnects), a progress
//!   notification's revision is never followed by an event at or below it, `prev_kv` and
//!   versions are those of the state before;
//! - every acknowledged write is at its revision with its content (else it is lost), every
//!   write the watch shows was invoked by a client (no phantom, no write applied twice:
//!   values are unique), an unknown write is applied once or never;
//! - real time: an operation invoked after another returned has a revision above it
//!   (writes) or at least it (reads); a read's revision was produced by a write invoked
//!   before the read returned;
//! - every read (and a failed txn's get) returns the state at its header's revision, and a
//!   txn's compare held (or failed) against that state;
//! - the members' final keyspace is the state at the last revision;
//! - a delete no client asked for is a lease's: the key's value was put under a lease,
//!   every live key of that lease goes at that one revision, and nothing is put under the
//!   lease after it;
//! - a list is every key of its prefix at its revision;
//! - one client's serializable gets (all to one member) never go back a revision;
//! - a reflector's list is the state at its revision and its watch then carries exactly
//!   the prefix's events after it, in order, none at or below a progress notification.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::history::{Call, Reflection, Req, Resp, Seen, WatchResp};
use super::workload::COMPACT_REV_KEY;

#[derive(Debug, Default)]
pub struct Verdict {
    pub ops: usize,
    pub unknown: usize,
    pub events: usize,
    pub violations: Vec<String>,
    pub lost: usize,
    /// The scenario's failpoint fired.
    pub failpoint_fired: bool,
    /// Deletes by a lease's expiry; reflector lists, and events their watches carried.
    pub lease_deletes: usize,
    pub reflector_lists: usize,
    pub reflector_events: usize,
}

/// A key's versions: (revision, value, create revision, version); value `None` deleted.
type Versions = Vec<(i64, Option<String>, i64, i64)>;

struct State {
    keys: HashMap<String, Versions>,
}

impl State {
    /// `key` as of revision `rev`: (value, mod revision, create revision, version).
    fn at(&self, key: &str, rev: i64) -> Option<(String, i64, i64, i64)> {
        let v = self.keys.get(key)?;
        let i = v.partition_point(|(r, ..)| *r <= rev);
        let (r, value, create, version) = v.get(i.checked_sub(1)?)?;
        value.clone().map(|val| (val, *r, *create, *version))
    }

    fn seen(&self, key: &str, rev: i64) -> Seen {
        self.at(key, rev).map(|(v, m, ..)| (v, m))
    }

    /// Every key under `prefix` at `rev`, in key order, as a list returns them.
    fn list(&self, prefix: &str, rev: i64) -> Vec<(String, String, i64)> {
        let mut out: Vec<_> = self
            .keys
            .keys()
            .filter(|k| k.starts_with(prefix))
            .filter_map(|k| self.seen(k, rev).map(|(v, m)| (k.clone(), v, m)))
            .collect();
        out.sort();
        out
    }
}

pub fn check(
    calls: &[Call],
    watch: &[WatchResp],
    reflections: &[Reflection],
    last_rev: i64,
) -> (Verdict, BTreeMap<String, (String, i64)>) {
    let mut out = Verdict {
        ops: calls.len(),
        unknown: calls
            .iter()
            .filter(|c| matches!(c.resp, Resp::Unknown))
            .count(),
        ..Default::default()
    };
    let v = &mut out.violations;

    // --- the watch: ordered, unique, atomic, reliable, bookmarkable
    let mut by_rev: BTreeMap<i64, Vec<&super::history::Ev>> = BTreeMap::new();
    let mut resp_of_rev: HashMap<i64, usize> = HashMap::new();
    let mut last_event_rev = 1;
    let mut bookmark = 0;
    for (i, r) in watch.iter().enumerate() {
        if r.canceled {
            v.push(format!(
                "watch canceled (compact revision {})",
                r.compact_rev
            ));
        }
        if r.is_progress() {
            if r.rev < bookmark {
                v.push(format!("progress went back: {} after {bookmark}", r.rev));
            }
            bookmark = bookmark.max(r.rev);
            continue;
        }
        for e in &r.events {
            if e.rev <= bookmark {
                v.push(format!(
                    "event at revision {} after a progress notification at {bookmark}",
                    e.rev
                ));
            }
            if e.rev < last_event_rev {
                v.push(format!(
                    "event at revision {} after {last_event_rev}",
                    e.rev
                ));
            }
            if let Some(prev) = resp_of_rev.insert(e.rev, i) {
                if prev != i {
                    v.push(format!(
                        "revision {} split over two responses (watch connection {})",
                        e.rev, r.stream
                    ));
                }
            }
            if !e.key.starts_with('k') && e.key != COMPACT_REV_KEY {
                v.push(format!("event of key {} outside the watched prefix", e.key));
            }
            if by_rev
                .get(&e.rev)
                .is_some_and(|es| es.iter().any(|x| x.key == e.key))
            {
                v.push(format!("event of {} at revision {} twice", e.key, e.rev));
            }
            last_event_rev = last_event_rev.max(e.rev);
            by_rev.entry(e.rev).or_default().push(e);
            out.events += 1;
        }
    }
    let seen_last = by_rev.keys().next_back().copied().unwrap_or(1);
    for rev in 2..=seen_last.max(last_rev) {
        if !by_rev.contains_key(&rev) {
            v.push(format!("no event at revision {rev}: a gap in the watch"));
            break;
        }
    }

    // --- replay, checking prev_kv and versions against the state before
    let mut state = State {
        keys: HashMap::new(),
    };
    let mut put_at: HashMap<String, (i64, String)> = HashMap::new();
    for (rev, events) in &by_rev {
        for e in events {
            let before = state.at(&e.key, rev - 1);
            let prev = before.as_ref().map(|(val, m, ..)| (val.clone(), *m));
            if e.prev != prev {
                v.push(format!(
                    "prev_kv of {} at {rev} is {:?}, the state before was {prev:?}",
                    e.key, e.prev
                ));
            }
            let entry = match &e.value {
                Some(val) => {
                    let (create, version) = match &before {
                        Some((_, _, c, ver)) => (*c, ver + 1),
                        None => (*rev, 1),
                    };
                    if (e.create_rev, e.version) != (create, version) {
                        v.push(format!(
                            "{} at {rev}: create revision {} version {}, expected {create} and {version}",
                            e.key, e.create_rev, e.version
                        ));
                    }
                    if e.key != COMPACT_REV_KEY
                        && put_at.insert(val.clone(), (*rev, e.key.clone())).is_some()
                    {
                        v.push(format!("value {val} written twice"));
                    }
                    (*rev, Some(val.clone()), create, version)
                }
                None => {
                    if before.is_none() {
                        v.push(format!("delete of absent {} at {rev}", e.key));
                    }
                    (*rev, None, 0, 0)
                }
            };
            state.keys.entry(e.key.clone()).or_default().push(entry);
        }
    }

    // --- each reflector's list and watch against the history
    for (n, r) in reflections.iter().enumerate() {
        let want = state.list("k", r.list_rev);
        if r.list != want {
            v.push(format!(
                "reflector list {n} at {} saw {:?}, the state was {want:?}",
                r.list_rev, r.list
            ));
        }
        let mut got = Vec::new();
        let (mut bookmark, mut reached) = (r.list_rev, r.list_rev);
        for resp in &r.watch {
            if resp.is_progress() {
                bookmark = bookmark.max(resp.rev);
                reached = reached.max(resp.rev);
                continue;
            }
            for e in &resp.events {
                if e.rev <= bookmark {
                    v.push(format!(
                        "reflector watch {n}: event at {} at or below {bookmark}",
                        e.rev
                    ));
                }
                reached = reached.max(e.rev);
                got.push(e);
            }
        }
        let want: Vec<&super::history::Ev> = by_rev
            .range(r.list_rev + 1..=reached.max(r.list_rev + 1))
            .filter(|(rev, _)| **rev <= reached)
            .flat_map(|(_, es)| es.iter().copied())
            .filter(|e| e.key.starts_with('k'))
            .collect();
        let got: Vec<&super::history::Ev> = got;
        out.reflector_lists += 1;
        out.reflector_events += got.len();
        // etcd reads a watch event's prev_kv when it sends it, and leaves it out when the
        // previous version has been compacted meanwhile (etcd issue 10681): a reflector
        // behind a paused member met that under the Kubernetes load's compactions. So a
        // missing prev_kv is accepted; a wrong one is not.
        let same = |a: &&super::history::Ev, b: &&super::history::Ev| {
            a == b
                || (a.prev.is_none()
                    && super::history::Ev {
                        prev: None,
                        ..(*b).clone()
                    } == **a)
        };
        if got.len() != want.len() || !got.iter().zip(&want).all(|(a, b)| same(a, b)) {
            let at = got.iter().zip(&want).position(|(a, b)| !same(a, b));
            let shown = |es: &[&super::history::Ev], at: Option<usize>| {
                let from = at
                    .unwrap_or(es.len().min(got.len()).min(want.len()))
                    .saturating_sub(2);
                es.iter()
                    .skip(from)
                    .take(5)
                    .map(|e| format!("{e:?}"))
                    .collect::<Vec<_>>()
            };
            v.push(format!(
                "reflector watch {n} from {}: {} events, the history has {} up to {reached}; first difference at {at:?}: the reflector saw {:?}, the history has {:?}",
                r.list_rev + 1,
                got.len(),
                want.len(),
                shown(&got, at),
                shown(&want, at)
            ));
        }
    }

    // --- each call against the history
    let writers: HashMap<&str, &Call> = calls
        .iter()
        .filter_map(|c| c.req.value().map(|val| (val, c)))
        .collect();
    for (val, (rev, key)) in &put_at {
        match writers.get(val.as_str()) {
            None => v.push(format!("phantom write of {val} to {key} at {rev}")),
            Some(c) if c.req.key() != key => {
                v.push(format!("{val} written to {key}, asked for {}", c.req.key()))
            }
            Some(_) => {}
        }
    }
    let mut deletes_claimed: HashSet<(i64, String)> = HashSet::new();
    // the revision each call is linearized at, when known: (rev, is a write)
    let mut lin: Vec<Option<(i64, bool)>> = vec![None; calls.len()];
    for (i, c) in calls.iter().enumerate() {
        let key = c.req.key();
        match (&c.req, &c.resp) {
            (Req::Put { value, .. } | Req::Event { value, .. }, Resp::Put { rev }) => {
                if put_at.get(value) != Some(&(*rev, key.to_string())) {
                    v.push(format!(
                        "acknowledged put {key}={value} at {rev} is not there: lost"
                    ));
                    out.lost += 1;
                }
                lin[i] = Some((*rev, true));
            }
            (
                Req::Put { value, .. } | Req::Txn { value, .. } | Req::Event { value, .. },
                Resp::Unknown,
            ) => {
                if let Some((rev, _)) = put_at.get(value) {
                    lin[i] = Some((*rev, true));
                }
            }
            (Req::Delete { .. }, Resp::Delete { rev, deleted }) => {
                if *deleted > 0 {
                    let there = by_rev
                        .get(rev)
                        .is_some_and(|es| es.iter().any(|e| e.key == key && e.value.is_none()));
                    if !there {
                        v.push(format!(
                            "acknowledged delete of {key} at {rev} is not there: lost"
                        ));
                        out.lost += 1;
                    }
                    deletes_claimed.insert((*rev, key.to_string()));
                    lin[i] = Some((*rev, true));
                } else {
                    if state.at(key, *rev).is_some() {
                        v.push(format!(
                            "delete of {key} found nothing at {rev}, where it exists"
                        ));
                    }
                    lin[i] = Some((*rev, false));
                }
            }
            (
                Req::Txn {
                    expect_mod, value, ..
                },
                Resp::Txn {
                    rev,
                    succeeded,
                    got,
                },
            ) => {
                let at = if *succeeded { rev - 1 } else { *rev };
                let mod_rev = state.seen(key, at).map_or(0, |(_, m)| m);
                if (mod_rev == *expect_mod) != *succeeded {
                    v.push(format!(
                        "txn on {key} (mod revision {expect_mod}?) {} at {rev}, where the mod revision is {mod_rev}",
                        if *succeeded { "succeeded" } else { "failed" }
                    ));
                }
                if *succeeded {
                    if put_at.get(value) != Some(&(*rev, key.to_string())) {
                        v.push(format!(
                            "acknowledged txn put {key}={value} at {rev} is not there: lost"
                        ));
                        out.lost += 1;
                    }
                    lin[i] = Some((*rev, true));
                } else {
                    if put_at.contains_key(value) {
                        v.push(format!("failed txn's put {key}={value} was applied"));
                    }
                    if *got != state.seen(key, *rev) {
                        v.push(format!(
                            "failed txn's get of {key} at {rev} saw {got:?}, the state was {:?}",
                            state.seen(key, *rev)
                        ));
                    }
                    lin[i] = Some((*rev, false));
                }
            }
            (Req::Get { serializable, .. }, Resp::Get { rev, got }) => {
                if *got != state.seen(key, *rev) {
                    v.push(format!(
                        "get of {key} at {rev} saw {got:?}, the state was {:?}",
                        state.seen(key, *rev)
                    ));
                }
                if !serializable {
                    lin[i] = Some((*rev, false));
                }
                // a serializable read's revision was reached: its writer is in the history
                if *rev > seen_last {
                    v.push(format!(
                        "get at revision {rev}, past the last one {seen_last}"
                    ));
                }
            }
            (Req::List { prefix }, Resp::List { rev, kvs }) => {
                let want = state.list(prefix, *rev);
                if *kvs != want {
                    v.push(format!(
                        "list of {prefix} at {rev} saw {kvs:?}, the state was {want:?}"
                    ));
                }
                lin[i] = Some((*rev, false));
            }
            (_, Resp::Unknown) => {}
            (req, resp) => v.push(format!("answer {resp:?} to {req:?}")),
        }
    }
    // one client's serializable gets go to one member: never back a revision
    let mut serial_floor: HashMap<usize, (i64, u64)> = HashMap::new();
    let mut by_client: Vec<&Call> = calls
        .iter()
        .filter(|c| {
            matches!(
                c.req,
                Req::Get {
                    serializable: true,
                    ..
                }
            )
        })
        .collect();
    by_client.sort_by_key(|c| (c.client, c.invoke));
    for c in by_client {
        if let Resp::Get { rev, .. } = c.resp {
            let floor = serial_floor.entry(c.client).or_insert((0, 0));
            if rev < floor.0 {
                v.push(format!(
                    "client {}'s serializable get at revision {rev} after one at {}",
                    c.client, floor.0
                ));
            }
            *floor = (floor.0.max(rev), c.ret);
        }
    }
    // every delete the watch shows was asked for, or is a lease's (an Event's key)
    let lease_of: HashMap<&str, i64> = calls
        .iter()
        .filter_map(|c| match &c.req {
            Req::Event { value, lease, .. } => Some((value.as_str(), *lease)),
            _ => None,
        })
        .collect();
    let mut lease_keys: HashMap<i64, Vec<&str>> = HashMap::new();
    for (val, (_, key)) in &put_at {
        if let Some(l) = lease_of.get(val.as_str()) {
            lease_keys.entry(*l).or_default().push(key);
        }
    }
    let mut revoked: HashMap<i64, i64> = HashMap::new();
    for (rev, events) in &by_rev {
        let mut leases_here = HashSet::new();
        for e in events.iter().filter(|e| e.value.is_none()) {
            let claimed = deletes_claimed.contains(&(*rev, e.key.clone()))
                || calls.iter().any(|c| {
                    matches!(c.req, Req::Delete { .. })
                        && matches!(c.resp, Resp::Unknown)
                        && c.req.key() == e.key
                });
            let lease = state
                .seen(&e.key, rev - 1)
                .and_then(|(val, _)| lease_of.get(val.as_str()).copied());
            match lease {
                _ if claimed => {}
                Some(l) => {
                    leases_here.insert(l);
                    out.lease_deletes += 1;
                }
                None => v.push(format!("phantom delete of {} at {rev}", e.key)),
            }
        }
        if leases_here.len() > 1 {
            v.push(format!(
                "leases {leases_here:?} all revoked at revision {rev}"
            ));
        }
        for l in leases_here {
            revoked.insert(l, *rev);
            // atomic: every key still under the lease goes at this revision
            for key in lease_keys.get(&l).into_iter().flatten() {
                let live = state
                    .seen(key, rev - 1)
                    .is_some_and(|(val, _)| lease_of.get(val.as_str()) == Some(&l));
                let gone = events.iter().any(|e| e.key == *key && e.value.is_none());
                if live && !gone {
                    v.push(format!(
                        "lease {l:x} revoked at {rev}, but its key {key} stayed"
                    ));
                }
            }
        }
    }
    for (val, (rev, key)) in &put_at {
        if let Some(l) = lease_of.get(val.as_str()) {
            if revoked.get(l).is_some_and(|r| r < rev) {
                v.push(format!(
                    "{key}={val} put at {rev} under lease {l:x}, revoked before"
                ));
            }
        }
    }

    // --- real time: sweep invocations against the revisions of returned calls
    let mut returned: Vec<(u64, i64)> = calls
        .iter()
        .zip(&lin)
        .filter(|(c, _)| !matches!(c.resp, Resp::Unknown))
        .filter_map(|(c, l)| l.map(|(rev, _)| (c.ret, rev)))
        .collect();
    returned.sort_unstable();
    let mut order: Vec<usize> = (0..calls.len()).collect();
    order.sort_by_key(|i| calls[*i].invoke);
    let (mut j, mut floor) = (0, 0i64);
    for i in order {
        let c = &calls[i];
        while j < returned.len() && returned[j].0 < c.invoke {
            floor = floor.max(returned[j].1);
            j += 1;
        }
        match lin[i] {
            Some((rev, true)) if rev <= floor => v.push(format!(
                "{:?} at revision {rev} was invoked after revision {floor} had been answered",
                c.req
            )),
            Some((rev, false)) if rev < floor => v.push(format!(
                "stale read: client {}'s {:?} at revision {rev}, invoked after revision {floor} had been answered",
                c.client, c.req
            )),
            _ => {}
        }
    }
    // a read's revision was produced by a write invoked before the read returned
    let first_invoke_of_rev: HashMap<i64, u64> = calls
        .iter()
        .zip(&lin)
        .filter_map(|(c, l)| match l {
            Some((rev, true)) => Some((*rev, c.invoke)),
            _ => None,
        })
        .collect();
    for (c, l) in calls.iter().zip(&lin) {
        if let Some((rev, false)) = l {
            if let Some(inv) = first_invoke_of_rev.get(rev) {
                if *inv > c.ret {
                    v.push(format!(
                        "{:?} saw revision {rev}, whose write was invoked after it returned",
                        c.req
                    ));
                }
            }
        }
    }

    // the members' keyspace was read at `last_rev`; the watch may have gone on (leases
    // still expire after the load stops)
    let last = if last_rev <= seen_last {
        last_rev
    } else {
        seen_last
    };
    let mut final_state = BTreeMap::new();
    for key in state.keys.keys() {
        if let Some(s) = state.seen(key, last) {
            final_state.insert(key.clone(), s);
        }
    }
    out.violations.truncate(20);
    (out, final_state)
}

#[cfg(test)]
mod tests {
    use super::super::history::{Call, Ev, Reflection, Req, Resp, WatchResp};
    use super::check;

    fn put(client: usize, key: &str, value: &str, t: (u64, u64), rev: Option<i64>) -> Call {
        Call {
            client,
            req: Req::Put {
                key: key.into(),
                value: value.into(),
            },
            invoke: t.0,
            ret: t.1,
            resp: rev.map_or(Resp::Unknown, |rev| Resp::Put { rev }),
        }
    }

    fn ev(
        rev: i64,
        key: &str,
        value: &str,
        create: i64,
        version: i64,
        prev: Option<(&str, i64)>,
    ) -> Ev {
        Ev {
            rev,
            key: key.into(),
            value: Some(value.into()),
            create_rev: create,
            version,
            prev: prev.map(|(v, m)| (v.into(), m)),
        }
    }

    fn resp(rev: i64, events: Vec<Ev>) -> WatchResp {
        WatchResp {
            rev,
            events,
            created: false,
            canceled: false,
            compact_rev: 0,
            stream: 0,
        }
    }

    #[test]
    fn a_sound_history_passes_and_each_fault_is_found() {
        let calls = vec![
            put(0, "k1", "a", (0, 10), Some(2)),
            put(1, "k1", "b", (20, 30), Some(3)),
            put(2, "k2", "c", (5, 50), None),
        ];
        let watch = vec![
            resp(2, vec![ev(2, "k1", "a", 2, 1, None)]),
            resp(3, vec![ev(3, "k1", "b", 2, 2, Some(("a", 2)))]),
        ];
        let (v, state) = check(&calls, &watch, &[], 3);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!(state["k1"], ("b".to_string(), 3));
        // an acknowledged write missing from the watch is lost
        let (v, _) = check(&calls, &watch[..1], &[], 2);
        assert_eq!(v.lost, 1, "{:?}", v.violations);
        // a write acknowledged before another was invoked, at a later revision
        let swapped = vec![
            put(0, "k1", "a", (0, 10), Some(3)),
            put(1, "k1", "b", (20, 30), Some(2)),
        ];
        let watch2 = vec![
            resp(2, vec![ev(2, "k1", "b", 2, 1, None)]),
            resp(3, vec![ev(3, "k1", "a", 2, 2, Some(("b", 2)))]),
        ];
        let (v, _) = check(&swapped, &watch2, &[], 3);
        assert!(
            v.violations.iter().any(|x| x.contains("invoked after")),
            "{:?}",
            v.violations
        );
        // a gap, and a value nobody wrote
        let gap = vec![resp(3, vec![ev(3, "k1", "z", 3, 1, None)])];
        let (v, _) = check(&[], &gap, &[], 3);
        assert!(v.violations.iter().any(|x| x.contains("gap")));
        assert!(v.violations.iter().any(|x| x.contains("phantom")));
        // a stale read
        let mut reads = calls.clone();
        reads.push(Call {
            client: 3,
            req: Req::Get {
                key: "k1".into(),
                serializable: false,
            },
            invoke: 40,
            ret: 45,
            resp: Resp::Get {
                rev: 2,
                got: Some(("a".into(), 2)),
            },
        });
        let (v, _) = check(&reads, &watch, &[], 3);
        assert!(
            v.violations.iter().any(|x| x.contains("stale read")),
            "{:?}",
            v.violations
        );
    }

    fn del(rev: i64, key: &str, prev: (&str, i64)) -> Ev {
        Ev {
            rev,
            key: key.into(),
            value: None,
            create_rev: 0,
            version: 0,
            prev: Some((prev.0.into(), prev.1)),
        }
    }

    fn event(client: usize, key: &str, value: &str, lease: i64, rev: i64) -> Call {
        Call {
            client,
            req: Req::Event {
                key: key.into(),
                value: value.into(),
                lease,
            },
            invoke: 0,
            ret: 1,
            resp: Resp::Put { rev },
        }
    }

    #[test]
    fn lease_deletes_lists_serializable_reads_and_reflectors_are_checked() {
        // two Events under lease 7, revoked together at 4
        let calls = vec![event(0, "kev/a", "a", 7, 2), event(0, "kev/b", "b", 7, 3)];
        let watch = vec![
            resp(2, vec![ev(2, "kev/a", "a", 2, 1, None)]),
            resp(3, vec![ev(3, "kev/b", "b", 3, 1, None)]),
            resp(
                4,
                vec![del(4, "kev/a", ("a", 2)), del(4, "kev/b", ("b", 3))],
            ),
        ];
        let (v, _) = check(&calls, &watch, &[], 4);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        // one key of the lease left behind: not atomic
        let torn = vec![
            watch[0].clone(),
            watch[1].clone(),
            resp(4, vec![del(4, "kev/a", ("a", 2))]),
        ];
        let (v, _) = check(&calls, &torn, &[], 4);
        assert!(
            v.violations.iter().any(|x| x.contains("stayed")),
            "{:?}",
            v.violations
        );
        // a delete of a key no lease holds and no client deleted
        let mut plain = calls.clone();
        plain.push(put(1, "k1", "p", (0, 1), None));
        let phantom = vec![
            resp(2, vec![ev(2, "k1", "p", 2, 1, None)]),
            resp(3, vec![del(3, "k1", ("p", 2))]),
        ];
        let (v, _) = check(&plain[2..], &phantom, &[], 3);
        assert!(
            v.violations.iter().any(|x| x.contains("phantom delete")),
            "{:?}",
            v.violations
        );
        // a list missing a key, and a serializable get going back
        let mut reads = calls.clone();
        reads.push(Call {
            client: 2,
            req: Req::List { prefix: "k".into() },
            invoke: 2,
            ret: 3,
            resp: Resp::List {
                rev: 3,
                kvs: vec![("kev/a".into(), "a".into(), 2)],
            },
        });
        for (rev, t) in [(3, 5), (2, 7)] {
            reads.push(Call {
                client: 3,
                req: Req::Get {
                    key: "kev/a".into(),
                    serializable: true,
                },
                invoke: t,
                ret: t + 1,
                resp: Resp::Get {
                    rev,
                    got: Some(("a".into(), 2)),
                },
            });
        }
        let (v, _) = check(&reads, &watch, &[], 4);
        assert!(
            v.violations.iter().any(|x| x.contains("list of k")),
            "{:?}",
            v.violations
        );
        assert!(
            v.violations
                .iter()
                .any(|x| x.contains("serializable get at revision 2")),
            "{:?}",
            v.violations
        );
        // a reflector: listed at 2, then a watch that skips revision 3
        let good = Reflection {
            list_rev: 2,
            list: vec![("kev/a".into(), "a".into(), 2)],
            watch: watch[1..].to_vec(),
        };
        let (v, _) = check(&calls, &watch, std::slice::from_ref(&good), 4);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        // a reflector that listed at the last revision and saw nothing after it
        let quiet = Reflection {
            list_rev: 4,
            list: Vec::new(),
            watch: Vec::new(),
        };
        let (v, _) = check(&calls, &watch, &[quiet], 4);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        // a delete's prev_kv left out (etcd does once the previous version is compacted)
        let mut no_prev = good.clone();
        no_prev.watch[1].events[0].prev = None;
        let (v, _) = check(&calls, &watch, &[no_prev], 4);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        // but a wrong one is a violation
        let mut wrong_prev = good.clone();
        wrong_prev.watch[1].events[0].prev = Some(("x".into(), 2));
        let (v, _) = check(&calls, &watch, &[wrong_prev], 4);
        assert!(
            v.violations.iter().any(|x| x.contains("reflector watch 0")),
            "{:?}",
            v.violations
        );
        let skipped = Reflection {
            watch: watch[2..].to_vec(),
            ..good
        };
        let (v, _) = check(&calls, &watch, &[skipped], 4);
        assert!(
            v.violations.iter().any(|x| x.contains("reflector watch 0")),
            "{:?}",
            v.violations
        );
    }
}

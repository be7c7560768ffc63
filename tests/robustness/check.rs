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
//! - the members' final keyspace is the state at the last revision.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::history::{Call, Req, Resp, Seen, WatchResp};

#[derive(Debug, Default)]
pub struct Verdict {
    pub ops: usize,
    pub unknown: usize,
    pub events: usize,
    pub violations: Vec<String>,
    pub lost: usize,
    /// The scenario's failpoint fired.
    pub failpoint_fired: bool,
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
}

pub fn check(
    calls: &[Call],
    watch: &[WatchResp],
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
            if !e.key.starts_with('k') {
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
                    if put_at.insert(val.clone(), (*rev, e.key.clone())).is_some() {
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
            (Req::Put { value, .. }, Resp::Put { rev }) => {
                if put_at.get(value) != Some(&(*rev, key.to_string())) {
                    v.push(format!(
                        "acknowledged put {key}={value} at {rev} is not there: lost"
                    ));
                    out.lost += 1;
                }
                lin[i] = Some((*rev, true));
            }
            (Req::Put { value, .. } | Req::Txn { value, .. }, Resp::Unknown) => {
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
            (_, Resp::Unknown) => {}
            (req, resp) => v.push(format!("answer {resp:?} to {req:?}")),
        }
    }
    // every delete the watch shows was asked for
    for (rev, events) in &by_rev {
        for e in events.iter().filter(|e| e.value.is_none()) {
            let claimed = deletes_claimed.contains(&(*rev, e.key.clone()))
                || calls.iter().any(|c| {
                    matches!(c.req, Req::Delete { .. })
                        && matches!(c.resp, Resp::Unknown)
                        && c.req.key() == e.key
                });
            if !claimed {
                v.push(format!("phantom delete of {} at {rev}", e.key));
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

    let last = seen_last;
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
    use super::super::history::{Call, Ev, Req, Resp, WatchResp};
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
        let (v, state) = check(&calls, &watch, 3);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!(state["k1"], ("b".to_string(), 3));
        // an acknowledged write missing from the watch is lost
        let (v, _) = check(&calls, &watch[..1], 2);
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
        let (v, _) = check(&swapped, &watch2, 3);
        assert!(
            v.violations.iter().any(|x| x.contains("invoked after")),
            "{:?}",
            v.violations
        );
        // a gap, and a value nobody wrote
        let gap = vec![resp(3, vec![ev(3, "k1", "z", 3, 1, None)])];
        let (v, _) = check(&[], &gap, 3);
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
        let (v, _) = check(&reads, &watch, 3);
        assert!(
            v.violations.iter().any(|x| x.contains("stale read")),
            "{:?}",
            v.violations
        );
    }
}

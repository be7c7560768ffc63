//! Randomised watch test: concurrent writers (puts, deletes, txns), compactions, and many
//! watchers created at random revisions over random ranges. A reference watcher created
//! before any write sees the whole history; every other watcher's event sequence must be
//! exactly that history filtered by its range and start revision, with each revision's
//! events in one response. Seeds are printed; `WATCH_SEED=n` replays one, `WATCH_SEEDS=n`
//! runs n (default 20).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Kind, Server};
use etcd_client::{Client, EventType, GetOptions, Txn, TxnOp, WatchOptions, WatchStream};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;

/// One event as compared: revision, put?, key, value.
type Ev = (i64, bool, String, String);

const KEYS: usize = 12;

fn key(i: usize) -> String {
    format!("r/{i:02}")
}

/// Collect events until the watcher is known to be caught up with `final_rev` (sent once
/// the writes are done): a progress request is answered only when the watcher is synced.
/// Returns the events and whether a compaction cancelled the watcher, and checks that no
/// revision is split across responses.
async fn drain(
    s: WatchStream,
    who: &'static str,
    final_rev: oneshot::Receiver<i64>,
) -> (Vec<Ev>, bool) {
    let (mut sender, mut responses) = s.split();
    let mut evs = Vec::new();
    let mut rev_response: HashMap<i64, usize> = HashMap::new();
    let mut final_rev = final_rev;
    let mut target: Option<i64> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0usize;
    loop {
        let r = tokio::select! {
            f = &mut final_rev, if target.is_none() => {
                target = Some(f.unwrap());
                sender.request_progress().await.unwrap();
                continue;
            }
            r = tokio::time::timeout_at(deadline, responses.message()) => r,
        };
        let r = r.unwrap_or_else(|_| {
            panic!(
                "{who}: timed out after {} events, last {:?}",
                evs.len(),
                evs.last()
            )
        });
        let r = r.unwrap().unwrap_or_else(|| panic!("{who}: stream ended"));
        n += 1;
        if r.canceled() {
            assert!(
                r.compact_revision() > 0,
                "{who}: cancelled without compaction: {r:?}"
            );
            return (evs, true);
        }
        for e in r.events() {
            let kv = e.kv().unwrap();
            let rev = kv.mod_revision();
            let first = *rev_response.entry(rev).or_insert(n);
            assert_eq!(first, n, "{who}: revision {rev} split across responses");
            evs.push((
                rev,
                e.event_type() == EventType::Put,
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
            ));
        }
        let progress = r.events().is_empty() && r.watch_id() == -1;
        if let (true, Some(t)) = (progress, target) {
            if r.header().unwrap().revision() >= t {
                return (evs, false);
            }
            sender.request_progress().await.unwrap();
        }
    }
}

async fn current_rev(c: &mut Client) -> i64 {
    c.get("probe", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
}

async fn one_seed(endpoint: &str, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = Client::connect([endpoint], None).await.unwrap();
    let start = current_rev(&mut c).await + 1;
    let reference = c
        .watch(
            "",
            Some(
                WatchOptions::new()
                    .with_all_keys()
                    .with_start_revision(start),
            ),
        )
        .await
        .unwrap();
    let (ref_done, ref_final) = oneshot::channel();
    let reference = tokio::spawn(drain(reference, "reference", ref_final));

    // Writers.
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let mut c = c.clone();
        let mut rng = StdRng::seed_from_u64(seed * 31 + w);
        writers.push(tokio::spawn(async move {
            for n in 0..60 {
                let k = key(rng.gen_range(0..KEYS));
                match rng.gen_range(0..10) {
                    0..=5 => drop(c.put(k, format!("w{w}n{n}"), None).await),
                    6..=7 => drop(c.delete(k, None).await),
                    _ => {
                        let (a, b) = (key(rng.gen_range(0..KEYS)), key(rng.gen_range(0..KEYS)));
                        let ops = if a == b {
                            vec![TxnOp::put(a, format!("t{w}n{n}"), None)]
                        } else {
                            vec![
                                TxnOp::put(a, format!("t{w}n{n}"), None),
                                TxnOp::delete(b, None),
                            ]
                        };
                        drop(c.txn(Txn::new().and_then(ops)).await);
                    }
                }
            }
        }));
    }
    // Watchers at random revisions and ranges, and compactions, while the writers run.
    let mut watchers = Vec::new();
    let mut compacted = 0i64;
    for i in 0..30 {
        let now = current_rev(&mut c).await;
        if i % 10 == 9 && now > start + 5 {
            let target = rng.gen_range((compacted.max(start)).max(1)..now);
            if target > compacted && c.compact(target, None).await.is_ok() {
                compacted = target;
            }
        }
        let from = rng.gen_range(start..=now + 2);
        let a = rng.gen_range(0..KEYS);
        let (k, range, opts) = match rng.gen_range(0..3) {
            0 => (
                key(a),
                Range::Single(key(a)),
                WatchOptions::new().with_start_revision(from),
            ),
            1 => (
                "r/".to_string(),
                Range::Prefix("r/".into()),
                WatchOptions::new().with_prefix().with_start_revision(from),
            ),
            _ => {
                let end = key(rng.gen_range(a..KEYS)) + "\0";
                let opts = WatchOptions::new()
                    .with_range(end.clone())
                    .with_start_revision(from);
                (key(a), Range::Interval(key(a), end), opts)
            }
        };
        let s = c.watch(k, Some(opts)).await.unwrap();
        let (done, fin) = oneshot::channel();
        watchers.push((from, range, done, tokio::spawn(drain(s, "watcher", fin))));
    }
    for w in writers {
        w.await.unwrap();
    }
    let final_rev = current_rev(&mut c).await;
    let _ = ref_done.send(final_rev);
    let (history, cancelled) = reference.await.unwrap();
    assert!(
        !cancelled,
        "seed {seed}: the reference watcher was cancelled"
    );
    // The reference equals what the store says now about the last versions.
    let now = c
        .get("r/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let mut last: HashMap<String, Option<String>> = HashMap::new();
    for (_, put, k, v) in &history {
        last.insert(k.clone(), put.then(|| v.clone()));
    }
    for kv in now.kvs() {
        assert_eq!(
            last.get(kv.key_str().unwrap()),
            Some(&Some(kv.value_str().unwrap().to_string())),
            "seed {seed}: store and history disagree"
        );
    }
    for (i, (from, range, done, h)) in watchers.into_iter().enumerate() {
        let _ = done.send(final_rev);
        let (got, cancelled) = h.await.unwrap();
        let expected: Vec<Ev> = history
            .iter()
            .filter(|e| e.0 >= from && range.contains(&e.2))
            .cloned()
            .collect();
        if cancelled {
            assert!(from < compacted, "seed {seed} watcher {i} ({range:?} from {from}): cancelled, but compaction is at {compacted}");
            assert!(
                expected.starts_with(&got),
                "seed {seed} watcher {i}: events before the cancel differ from the history"
            );
        } else {
            assert_eq!(
                got, expected,
                "seed {seed} watcher {i} ({range:?} from {from})"
            );
        }
    }
    let delivered = history.len();
    eprintln!("seed {seed}: {delivered} events in the history, 30 watchers checked, compacted at {compacted}");
}

#[derive(Debug)]
enum Range {
    Single(String),
    Prefix(String),
    Interval(String, String),
}

impl Range {
    fn contains(&self, k: &str) -> bool {
        match self {
            Range::Single(x) => k == x,
            Range::Prefix(p) => k.starts_with(p.as_str()),
            Range::Interval(a, b) => k >= a.as_str() && k < b.as_str(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_see_exactly_the_history() {
    let server = Server::start(Kind::Metastore, &[]);
    let seeds: Vec<u64> = match std::env::var("WATCH_SEED") {
        Ok(s) => vec![s.parse().expect("WATCH_SEED is a number")],
        Err(_) => {
            let n: u64 = std::env::var("WATCH_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(20);
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            (0..n).map(|i| base * 100 + i).collect()
        }
    };
    for seed in seeds {
        eprintln!("watch_random: seed {seed} (replay with WATCH_SEED={seed})");
        one_seed(&server.endpoint, seed).await;
    }
}

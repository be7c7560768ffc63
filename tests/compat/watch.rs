//! Watch scenarios, side by side: the same writes, the same watch requests; every response
//! of every watcher is compared. Each scenario ends with a sentinel write, and collection
//! stops when the sentinel arrives (no sleeps).

use std::time::Duration;

use etcd_client::{
    Client, DeleteOptions, Event, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchFilterType,
    WatchOptions, WatchResponse, WatchStream,
};

use crate::{Fut, Obs, Pair, Report};

fn kv_str(kv: Option<&etcd_client::KeyValue>) -> String {
    match kv {
        None => "-".into(),
        Some(kv) => {
            let v = String::from_utf8_lossy(kv.value());
            let v = if v.len() > 16 {
                format!("{}..({} bytes)", &v[..16], v.len())
            } else {
                v.into_owned()
            };
            format!(
                "{}={} c{} m{} v{} l{}",
                String::from_utf8_lossy(kv.key()),
                v,
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease()
            )
        }
    }
}

/// A compact, complete rendering of a watch response (ids and term left out).
/// A response as lines, one per revision of its events. A watcher that falls behind gets
/// several revisions in one response (etcd's unsynced watchers do too, under load); which
/// revisions share a response is timing, not behaviour, so each revision is shown alone,
/// with the revision in the header it would have had.
fn show(r: &WatchResponse) -> Vec<String> {
    let mut groups: Vec<(i64, Vec<&Event>)> = Vec::new();
    for e in r.events() {
        let rev = e.kv().map(|kv| kv.mod_revision()).unwrap_or(-1);
        match groups.last_mut() {
            Some((last, evs)) if *last == rev => evs.push(e),
            _ => groups.push((rev, vec![e])),
        }
    }
    if groups.len() <= 1 {
        return vec![show_one(
            r,
            r.header().map(|h| h.revision()).unwrap_or(-1),
            r.events(),
        )];
    }
    groups
        .into_iter()
        .map(|(rev, evs)| {
            let evs: Vec<Event> = evs.into_iter().cloned().collect();
            show_one(r, rev, &evs)
        })
        .collect()
}

fn show_one(r: &WatchResponse, rev: i64, events: &[Event]) -> String {
    let evs: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{:?} {} prev[{}]",
                e.event_type(),
                kv_str(e.kv()),
                kv_str(e.prev_kv())
            )
        })
        .collect();
    format!(
        "rev={rev} id={} created={} canceled={} compact={} reason={:?} events={evs:?}",
        r.watch_id(),
        r.created(),
        r.canceled(),
        r.compact_revision(),
        r.cancel_reason(),
    )
}

/// Collect responses until one carries a put of `sentinel` (or `n` responses when
/// `sentinel` is empty), with a deadline.
async fn collect(s: &mut WatchStream, sentinel: &str, n: usize) -> Obs {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, s.message()).await;
        let Ok(Ok(Some(r))) = msg else {
            out.push(
                format!("stream ended or timed out: {msg:?}")
                    .chars()
                    .take(200)
                    .collect(),
            );
            return out;
        };
        let done = if sentinel.is_empty() {
            out.len() + 1 >= n
        } else {
            r.events().iter().any(|e| {
                e.event_type() == EventType::Put
                    && e.kv().is_some_and(|kv| kv.key() == sentinel.as_bytes())
            })
        };
        out.extend(show(&r));
        if done {
            return out;
        }
    }
}

async fn run(
    pair: &Pair,
    rep: &mut Report,
    name: &str,
    f: for<'a> fn(&'a mut Client, String) -> Fut<'a>,
) {
    let (oe, om) = crate::observe(pair, name, f).await;
    rep.begin(name);
    rep.steps += oe.len();
    if oe != om {
        rep.diffs.push(format!(
            "[{name}]\n  etcd:      {oe:#?}\n  metastore: {om:#?}"
        ));
    }
}

async fn rev_now(c: &mut Client) -> i64 {
    c.get("rev-probe", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_through_etcd_client() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    run(&pair, &mut rep, "live-key", |c, p| {
        Box::pin(async move {
            let k = format!("{p}k");
            let mut s = c.watch(k.as_str(), None).await.unwrap();
            let mut o = collect(&mut s, "", 1).await;
            c.put(k.as_str(), "1", None).await.unwrap();
            c.put(k.as_str(), "2", None).await.unwrap();
            c.delete(k.as_str(), None).await.unwrap();
            c.put(k.as_str(), "end", None).await.unwrap();
            o.extend(collect(&mut s, &k, 0).await);
            o
        })
    })
    .await;
    run(&pair, &mut rep, "live-prefix-txn-one-response", |c, p| {
        Box::pin(async move {
            let mut s = c
                .watch(p.as_str(), Some(WatchOptions::new().with_prefix()))
                .await
                .unwrap();
            let mut o = collect(&mut s, "", 1).await;
            c.put(format!("{p}x"), "0", None).await.unwrap();
            let t = Txn::new().and_then([
                TxnOp::put(format!("{p}a"), "1", None),
                TxnOp::put(format!("{p}b"), "2", None),
                TxnOp::delete(format!("{p}x"), None),
            ]);
            c.txn(t).await.unwrap();
            c.put(format!("{p}c"), "3", None).await.unwrap();
            c.delete(p.as_str(), Some(DeleteOptions::new().with_prefix()))
                .await
                .unwrap();
            c.put(format!("{p}end"), "x", None).await.unwrap();
            o.extend(collect(&mut s, &format!("{p}end"), 0).await);
            o
        })
    })
    .await;
    run(&pair, &mut rep, "history-replay-prev-kv", |c, p| {
        Box::pin(async move {
            let start = rev_now(c).await + 1;
            for v in ["1", "2", "3"] {
                c.put(format!("{p}k"), v, None).await.unwrap();
            }
            c.delete(format!("{p}k"), None).await.unwrap();
            c.put(format!("{p}end"), "x", None).await.unwrap();
            let opts = WatchOptions::new()
                .with_prefix()
                .with_start_revision(start)
                .with_prev_key();
            let mut s = c.watch(p.as_str(), Some(opts)).await.unwrap();
            collect(&mut s, &format!("{p}end"), 0).await
        })
    })
    .await;
    run(&pair, &mut rep, "filters", |c, p| {
        Box::pin(async move {
            let noput = WatchOptions::new()
                .with_prefix()
                .with_filters([WatchFilterType::NoPut]);
            let mut s = c.watch(p.as_str(), Some(noput)).await.unwrap();
            let mut o = collect(&mut s, "", 1).await;
            let nodel = WatchOptions::new()
                .with_prefix()
                .with_filters([WatchFilterType::NoDelete]);
            s.watch(p.as_str(), Some(nodel)).await.unwrap();
            o.extend(collect(&mut s, "", 1).await);
            c.put(format!("{p}a"), "1", None).await.unwrap();
            c.delete(format!("{p}a"), None).await.unwrap();
            c.put(format!("{p}end"), "x", None).await.unwrap();
            o.extend(collect(&mut s, &format!("{p}end"), 0).await);
            o
        })
    })
    .await;
    run(&pair, &mut rep, "cancel-and-ids", |c, p| {
        Box::pin(async move {
            let mut s = c
                .watch(format!("{p}a"), Some(WatchOptions::new().with_watch_id(7)))
                .await
                .unwrap();
            let mut o = collect(&mut s, "", 1).await;
            s.watch(format!("{p}b"), Some(WatchOptions::new().with_watch_id(7)))
                .await
                .unwrap();
            o.extend(collect(&mut s, "", 1).await);
            s.watch(format!("{p}c"), None).await.unwrap();
            o.extend(collect(&mut s, "", 1).await);
            s.cancel(7).await.unwrap();
            o.extend(collect(&mut s, "", 1).await);
            c.put(format!("{p}a"), "not seen", None).await.unwrap();
            c.put(format!("{p}c"), "seen", None).await.unwrap();
            o.extend(collect(&mut s, &format!("{p}c"), 0).await);
            o
        })
    })
    .await;
    run(&pair, &mut rep, "progress-request", |c, p| {
        Box::pin(async move {
            let mut s = c.watch(format!("{p}a"), None).await.unwrap();
            let mut o = collect(&mut s, "", 1).await;
            c.put(format!("{p}other"), "1", None).await.unwrap();
            s.request_progress().await.unwrap();
            o.extend(collect(&mut s, "", 1).await);
            o
        })
    })
    .await;
    run(&pair, &mut rep, "future-start-revision", |c, p| {
        Box::pin(async move {
            let start = rev_now(c).await + 3;
            let mut s = c
                .watch(
                    p.as_str(),
                    Some(WatchOptions::new().with_prefix().with_start_revision(start)),
                )
                .await
                .unwrap();
            let mut o = collect(&mut s, "", 1).await;
            for i in 0..4 {
                c.put(format!("{p}k{i}"), "v", None).await.unwrap();
            }
            c.put(format!("{p}end"), "x", None).await.unwrap();
            o.extend(collect(&mut s, &format!("{p}end"), 0).await);
            o
        })
    })
    .await;
    run(&pair, &mut rep, "range-interval", |c, p| {
        Box::pin(async move {
            let opts = WatchOptions::new().with_range(format!("{p}c"));
            let mut s = c.watch(format!("{p}a"), Some(opts)).await.unwrap();
            let mut o = collect(&mut s, "", 1).await;
            for k in ["a", "b", "c", "d", "bb"] {
                c.put(
                    format!("{p}{k}"),
                    "v",
                    Some(PutOptions::new().with_prev_key()),
                )
                .await
                .unwrap();
            }
            o.extend(collect(&mut s, &format!("{p}bb"), 0).await);
            o
        })
    })
    .await;
    run(&pair, &mut rep, "compacted-start", |c, p| {
        Box::pin(async move {
            let old = rev_now(c).await;
            c.put(format!("{p}a"), "1", None).await.unwrap();
            c.put(format!("{p}a"), "2", None).await.unwrap();
            let now = rev_now(c).await;
            c.compact(now, None).await.unwrap();
            let mut s = c
                .watch(
                    p.as_str(),
                    Some(WatchOptions::new().with_prefix().with_start_revision(old)),
                )
                .await
                .unwrap();
            collect(&mut s, "", 2).await
        })
    })
    .await;
    rep.finish("watch_through_etcd_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_fragments() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    run(&pair, &mut rep, "fragment", |c, p| {
        Box::pin(async move {
            // 4 x 300 KB puts with their previous values: a 2.4 MB response, over etcd's
            // fragment threshold of --max-request-bytes + 512 KiB.
            for i in 0..4 {
                c.put(format!("{p}k{i}"), "x".repeat(300_000), None)
                    .await
                    .unwrap();
            }
            let big = Txn::new().and_then(
                (0..4)
                    .map(|i| TxnOp::put(format!("{p}k{i}"), "y".repeat(300_000), None))
                    .collect::<Vec<_>>(),
            );
            let mut s = c
                .watch(
                    p.as_str(),
                    Some(
                        WatchOptions::new()
                            .with_prefix()
                            .with_prev_key()
                            .with_fragment(),
                    ),
                )
                .await
                .unwrap();
            let mut o = collect(&mut s, "", 1).await;
            c.txn(big).await.unwrap();
            c.put(format!("{p}end"), "x", None).await.unwrap();
            // The client reassembles fragments; what it hands out must match.
            o.extend(collect(&mut s, &format!("{p}end"), 0).await);
            let _ = c
                .get(
                    p.as_str(),
                    Some(GetOptions::new().with_prefix().with_count_only()),
                )
                .await;
            o
        })
    })
    .await;
    rep.finish("watch_fragments");
}

//! The order of what a watch stream delivers, under load:
//! - a progress notification (periodic or requested) at revision P is never followed by an
//!   event at or below P on that stream (etcd sends progress behind the events; Kubernetes'
//!   watch cache relies on it);
//! - a watcher that falls behind the compaction point while its stream is full still gets
//!   its compaction cancel once the client reads again (it must not wait forever).

mod common;

use std::time::Duration;

use common::{Kind, Server};
use etcd_client::{Client, EventType, WatchOptions};

/// Concurrent writers on a prefix; one stream with a prefix watcher and a single-key watcher,
/// both asking for periodic progress, and the client asking for progress after every
/// response. Every event must lie above every progress revision seen before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_never_runs_ahead_of_events() {
    let s = Server::start(
        Kind::Metastore,
        &["--experimental-watch-progress-notify-interval", "5ms"],
    );
    let c = Client::connect([s.endpoint.as_str()], None).await.unwrap();
    let mut wc = Client::connect([s.endpoint.as_str()], None).await.unwrap();
    let mut stream = wc
        .watch(
            "o/",
            Some(WatchOptions::new().with_prefix().with_progress_notify()),
        )
        .await
        .unwrap();
    stream
        .watch("o/k0", Some(WatchOptions::new().with_progress_notify()))
        .await
        .unwrap();
    // etcd-client's `watch` returns before the server has created the watcher: wait for
    // both created responses, or the first puts may come before the watchers (a watcher
    // created at revision R rightly sees nothing at or below R).
    let mut created = 0;
    while created < 2 {
        let r = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("watchers not created")
            .unwrap()
            .expect("stream ended");
        assert!(r.events().is_empty() && !r.canceled(), "{r:?}");
        created += usize::from(r.created());
    }
    const WRITERS: usize = 4;
    const PUTS: usize = 400;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut c = c.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..PUTS {
                c.put(format!("o/k{}", n % 8), format!("w{w}n{n}"), None)
                    .await
                    .unwrap();
            }
        }));
    }
    let (mut sender, mut responses) = stream.split();
    let mut progress_rev = 0i64;
    let (mut progresses, mut events) = (0usize, 0usize);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Every put reaches the prefix watcher: stop once all of them arrived.
    while events < WRITERS * PUTS {
        let r = tokio::time::timeout_at(deadline, responses.message())
            .await
            .unwrap_or_else(|_| panic!("timed out after {events} events"))
            .unwrap()
            .expect("stream ended");
        assert!(!r.created() && !r.canceled(), "{r:?}");
        if r.events().is_empty() {
            let rev = r.header().unwrap().revision();
            assert!(
                rev >= progress_rev,
                "progress went back from {progress_rev} to {rev}"
            );
            progress_rev = rev;
            progresses += 1;
        }
        for e in r.events() {
            let kv = e.kv().unwrap();
            assert_eq!(e.event_type(), EventType::Put);
            assert!(
                kv.mod_revision() > progress_rev,
                "event at {} after a progress notification at {progress_rev}",
                kv.mod_revision()
            );
            if r.watch_id() == 0 {
                events += 1;
            }
        }
        sender.request_progress().await.unwrap();
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(progresses > 0, "no progress notification at all");
}

/// A client that stops reading while its watchers get many events: the server-side queues
/// fill and the watchers fall back to catch-up. A compaction past them must still reach
/// the client as a cancel with the compact revision once it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_cancel_reaches_a_slow_client() {
    let s = Server::start(Kind::Metastore, &[]);
    let mut c = Client::connect([s.endpoint.as_str()], None).await.unwrap();
    // Its own connection, so that flow control stalls only the watch stream.
    let mut wc = Client::connect([s.endpoint.as_str()], None).await.unwrap();
    let mut stream = wc
        .watch("c/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(stream.message().await.unwrap().unwrap().created());
    let value = "x".repeat(2048);
    let first = c
        .put("c/0", value.as_str(), None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    // Far more responses than the stream's queues and the HTTP/2 windows hold.
    for n in 1..3000 {
        c.put(format!("c/{}", n % 16), value.as_str(), None)
            .await
            .unwrap();
    }
    let last = c.put("c/end", "1", None).await.unwrap();
    let compact_rev = last.header().unwrap().revision();
    c.compact(compact_rev, None).await.unwrap();
    // Give the server's catch-up a few passes while the client still reads nothing (this
    // is what lost the cancel; the fixed server passes whatever the timing).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut next = first;
    loop {
        let r = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("no compaction cancel; events up to {next} seen"))
            .unwrap()
            .expect("stream ended");
        for e in r.events() {
            let rev = e.kv().unwrap().mod_revision();
            assert_eq!(rev, next, "events out of order or missing");
            next += 1;
        }
        if r.canceled() {
            assert_eq!(r.compact_revision(), compact_rev, "{r:?}");
            assert!(next <= compact_rev, "cancelled after every event: {r:?}");
            break;
        }
    }
}

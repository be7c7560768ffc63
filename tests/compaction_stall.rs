//! Measures the longest put latency while a compaction of 1,000,000 revisions runs, against
//! the baseline before it. Ignored by default (it writes a million revisions).
//!
//! `METASTORE_BIN=... cargo test --release --test compaction_stall -- --ignored --nocapture`

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Kind, Server};
use etcd_client::{Client, CompactionOptions};

const REVISIONS: usize = 1_000_000;
const KEYS: usize = 100_000;
const WRITERS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn longest_put_stall_during_a_compaction_of_1m_revisions() {
    let s = Server::start(Kind::Metastore, &[]);
    let ep = s.endpoint.clone();
    let fill = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let ep = ep.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect([ep.as_str()], None).await.unwrap();
            let mut i = w;
            while i < REVISIONS {
                c.put(format!("stall/{:06}", i % KEYS), "0123456789abcdef", None)
                    .await
                    .unwrap();
                i += WRITERS;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!("wrote {REVISIONS} revisions in {:?}", fill.elapsed());

    // One writer puts in a loop and records each latency with when it finished.
    let lat: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let stream = {
        let (ep, lat, stop) = (ep.clone(), lat.clone(), stop.clone());
        tokio::spawn(async move {
            let mut c = Client::connect([ep.as_str()], None).await.unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                // A put that times out counts with the time it took to fail.
                if let Err(e) = c.put(format!("probe/{}", n % 100), "x", None).await {
                    eprintln!("put failed after {:?}: {e}", t.elapsed());
                }
                lat.lock().unwrap().push((Instant::now(), t.elapsed()));
                n += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut c = Client::connect([ep.as_str()], None).await.unwrap();
    let rev = c
        .get("probe/0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let started = Instant::now();
    if let Err(e) = c
        .compact(rev, Some(CompactionOptions::new().with_physical()))
        .await
    {
        eprintln!("compaction failed after {:?}: {e}", started.elapsed());
    }
    let compacted = Instant::now();
    eprintln!("compaction at {rev} took {:?}", compacted - started);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    stream.await.unwrap();
    let lat = lat.lock().unwrap();
    let max_in = |from: Instant, to: Instant| {
        lat.iter()
            .filter(|(at, d)| *at >= from && *at - *d <= to)
            .map(|(_, d)| *d)
            .max()
            .unwrap_or_default()
    };
    let first = lat.first().unwrap().0;
    eprintln!(
        "longest put: {:?} before the compaction, {:?} during it ({} puts in all)",
        max_in(first, started),
        max_in(started, compacted),
        lat.len()
    );
}

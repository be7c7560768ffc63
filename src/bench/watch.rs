//! `metastore bench watch`: many watchers over many streams on one endpoint, then puts on
//! watched keys; reports the time from each put's send to the event's receipt (p50/p99)
//! and, given the server's pid, its resident memory per watcher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use metastore::proto::etcdserverpb::{
    kv_client::KvClient, watch_client::WatchClient, watch_request::RequestUnion, PutRequest,
    WatchCreateRequest, WatchRequest,
};

#[derive(Debug, Parser)]
#[command(name = "metastore bench watch")]
pub(crate) struct Args {
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    endpoints: String,
    #[arg(long, default_value_t = 100)]
    conns: usize,
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    #[arg(long, default_value_t = 100_000)]
    watchers: usize,
    #[arg(long, default_value_t = 2000)]
    puts: usize,
    /// Server process id, to report its memory (VmRSS) per watcher.
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long, default_value = "")]
    label: String,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn key(i: usize) -> Bytes {
    Bytes::from(format!("bench-watch/{i:08}"))
}

pub(crate) async fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let channels = super::connect(&a.endpoints, a.conns).await?;
    let rss_before = a.server_pid.and_then(rss_kib);
    let sent: Arc<Mutex<HashMap<Bytes, Instant>>> = Arc::default();
    let (lat_tx, mut lat_rx) = mpsc::unbounded_channel::<Duration>();
    let per_stream = a.watchers.div_ceil(a.streams.max(1));
    let t0 = Instant::now();
    let mut ready = Vec::new();
    let mut keep_alive = Vec::new();
    for s in 0..a.streams {
        let (req_tx, req_rx) = mpsc::channel::<WatchRequest>(per_stream + 1);
        let mut client = WatchClient::new(channels[s % channels.len()].clone());
        let first = s * per_stream;
        let last = ((s + 1) * per_stream).min(a.watchers);
        for i in first..last {
            let create = WatchCreateRequest {
                key: key(i),
                ..Default::default()
            };
            req_tx
                .send(WatchRequest {
                    request_union: Some(RequestUnion::CreateRequest(create)),
                })
                .await?;
        }
        keep_alive.push(req_tx);
        let mut responses = client
            .watch(ReceiverStream::new(req_rx))
            .await?
            .into_inner();
        let (sent, lat_tx) = (sent.clone(), lat_tx.clone());
        let (created_tx, created_rx) = tokio::sync::oneshot::channel::<()>();
        ready.push(created_rx);
        tokio::spawn(async move {
            let mut created = 0;
            let mut created_tx = Some(created_tx);
            while let Ok(Some(r)) = responses.message().await {
                if r.created {
                    created += 1;
                    if created == last - first {
                        if let Some(tx) = created_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                }
                for ev in r.events {
                    let Some(kv) = ev.kv else { continue };
                    if let Some(t) = sent.lock().expect("sent map").remove(&kv.key) {
                        let _ = lat_tx.send(t.elapsed());
                    }
                }
            }
        });
    }
    for r in ready {
        let _ = r.await;
    }
    let setup = t0.elapsed();
    // Let the server settle before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = a.server_pid.and_then(rss_kib);
    let mut kv = KvClient::new(channels[0].clone());
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    for n in 0..a.puts {
        let k = key((n * 7919) % a.watchers.max(1));
        sent.lock()
            .expect("sent map")
            .insert(k.clone(), Instant::now());
        kv.put(PutRequest {
            key: k,
            value: Bytes::from_static(b"v"),
            ..Default::default()
        })
        .await?;
        // One put in flight at a time: latency is the put plus the delivery.
        let d = tokio::time::timeout(Duration::from_secs(10), lat_rx.recv())
            .await?
            .ok_or("latency channel closed")?;
        hist.record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))?;
    }
    let per_watcher = match (rss_before, rss_after) {
        (Some(b), Some(f)) => format!(
            "{:.0}",
            (f.saturating_sub(b) as f64 * 1024.0) / a.watchers.max(1) as f64
        ),
        _ => "-".into(),
    };
    println!(
        "RESULT label={} op=watch streams={} watchers={} setup_s={:.2} p50_ms={:.3} p99_ms={:.3} rss_before_kib={} rss_after_kib={} bytes_per_watcher={per_watcher}",
        if a.label.is_empty() { "-" } else { &a.label },
        a.streams,
        a.watchers,
        setup.as_secs_f64(),
        hist.value_at_percentile(50.0) as f64 / 1000.0,
        hist.value_at_percentile(99.0) as f64 / 1000.0,
        rss_before.map_or("-".into(), |v| v.to_string()),
        rss_after.map_or("-".into(), |v| v.to_string()),
    );
    drop(keep_alive);
    Ok(())
}

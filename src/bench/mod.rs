//! `metastore bench put|range`: a load generator modelled on etcd's `benchmark` tool, used by
//! `make bench` against metastore and real etcd in one run. It speaks the etcd v3 gRPC API,
//! so it measures any etcd-compatible endpoint the same way.
//!
//! Owned by the binary (`src/main.rs` declares it), not part of the library's API; it speaks
//! only the public `metastore::proto` client stubs.

mod failover;
mod lease;
mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use rand::Rng;
use tonic::transport::Channel;

use metastore::proto::etcdserverpb::{kv_client::KvClient, PutRequest, RangeRequest};

#[derive(Debug, Parser)]
#[command(name = "metastore bench")]
struct Args {
    /// put or range
    op: String,
    /// For range: the key to read (range end with --prefix semantics not supported).
    key: Option<String>,
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    endpoints: String,
    #[arg(long, default_value_t = 1)]
    conns: usize,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    #[arg(long, default_value_t = 10_000)]
    total: u64,
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    #[arg(long, default_value_t = 8)]
    val_size: usize,
    #[arg(long, default_value_t = 1)]
    key_space_size: u64,
    #[arg(long, default_value_t = false)]
    sequential_keys: bool,
    /// l (linearizable) or s (serializable)
    #[arg(long, default_value = "l")]
    consistency: String,
    /// A label printed in the RESULT line.
    #[arg(long, default_value = "")]
    label: String,
}

pub fn main(args: &[String]) -> i32 {
    match args.first().map(String::as_str) {
        Some("watch") => return cli("watch", &args[1..], watch::run),
        Some("keepalive") => return cli("keepalive", &args[1..], lease::run),
        Some("failover") => return cli("failover", &args[1..], failover::run),
        _ => {}
    }
    cli("bench", args, run)
}

/// Parse a bench subcommand's arguments and run it on a fresh runtime; the exit code.
pub(crate) fn cli<A, F>(name: &str, args: &[String], run: impl FnOnce(A) -> F) -> i32
where
    A: Parser,
    F: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    let parsed =
        match A::try_parse_from(std::iter::once(name.to_string()).chain(args.iter().cloned())) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(parsed)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bench {name}: {e}");
            1
        }
    }
}

/// `conns` connections, spread over `endpoints` in turn (as etcd's benchmark tool does).
pub(crate) async fn connect(
    endpoints: &str,
    conns: usize,
) -> Result<Vec<Channel>, Box<dyn std::error::Error>> {
    let endpoints: Vec<String> = endpoints
        .split(',')
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    if endpoints.is_empty() {
        return Err("no endpoints".into());
    }
    let mut channels = Vec::new();
    for n in 0..conns.max(1) {
        let endpoint = endpoints[n % endpoints.len()].clone();
        channels.push(Channel::from_shared(endpoint)?.connect().await?);
    }
    Ok(channels)
}

/// Count one request: its latency if it succeeded, an error otherwise.
pub(crate) fn record(
    lat: &mut hdrhistogram::Histogram<u64>,
    errors: &mut u64,
    ok: bool,
    started: Instant,
) {
    if ok {
        let _ = lat.record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    } else {
        *errors += 1;
    }
}

type ClientResult = (hdrhistogram::Histogram<u64>, u64);

/// Wait for every client task and merge their latencies and error counts.
pub(crate) async fn join(
    tasks: Vec<tokio::task::JoinHandle<ClientResult>>,
) -> Result<ClientResult, Box<dyn std::error::Error>> {
    let mut lat = hdrhistogram::Histogram::<u64>::new(3)?;
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.add(l)?;
        errors += e;
    }
    Ok((lat, errors))
}

fn key_bytes(n: u64, size: usize) -> Bytes {
    let mut k = vec![b'0'; size.max(8)];
    k[..8].copy_from_slice(&n.to_be_bytes());
    Bytes::from(k)
}

async fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    if a.op != "put" && a.op != "range" {
        return Err(format!(
            "unknown workload {:?}: put, range, watch, keepalive or failover",
            a.op
        )
        .into());
    }
    let channels = connect(&a.endpoints, a.conns).await?;
    let issued = Arc::new(AtomicU64::new(0));
    let value = Bytes::from(vec![b'v'; a.val_size]);
    let range_key = Bytes::from(a.key.clone().unwrap_or_else(|| "foo".into()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.clients.max(1) {
        let mut client = KvClient::new(channels[c % channels.len()].clone())
            .max_decoding_message_size(usize::MAX);
        let issued = issued.clone();
        let (op, total, value, range_key) =
            (a.op.clone(), a.total, value.clone(), range_key.clone());
        let (ks, kss, seq, serializable) = (
            a.key_size,
            a.key_space_size.max(1),
            a.sequential_keys,
            a.consistency == "s",
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            let mut errors = 0u64;
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let t = Instant::now();
                let ok = if op == "put" {
                    let k = if seq {
                        n % kss
                    } else {
                        rand::thread_rng().gen_range(0..kss)
                    };
                    let req = PutRequest {
                        key: key_bytes(k, ks),
                        value: value.clone(),
                        ..Default::default()
                    };
                    client.put(req).await.is_ok()
                } else {
                    let req = RangeRequest {
                        key: range_key.clone(),
                        serializable,
                        ..Default::default()
                    };
                    client.range(req).await.is_ok()
                };
                record(&mut lat, &mut errors, ok, t);
            }
            (lat, errors)
        }));
    }
    let (lat, errors) = join(tasks).await?;
    let elapsed = start.elapsed();
    report(&a, elapsed, &lat, errors);
    Ok(())
}

fn report(a: &Args, elapsed: Duration, lat: &hdrhistogram::Histogram<u64>, errors: u64) {
    let ms = |us: u64| us as f64 / 1000.0;
    let rps = lat.len() as f64 / elapsed.as_secs_f64();
    println!("Summary:");
    println!("  Total:\t{:.4} secs.", elapsed.as_secs_f64());
    println!("  Requests/sec:\t{rps:.1}");
    println!("  Average:\t{:.4} ms", lat.mean() / 1000.0);
    for q in [50.0, 90.0, 99.0] {
        println!("  p{q}:\t{:.4} ms", ms(lat.value_at_percentile(q)));
    }
    println!("  Errors:\t{errors}");
    println!(
        "RESULT label={} op={} conns={} clients={} total={} rps={rps:.1} avg_ms={:.4} p50_ms={:.4} p99_ms={:.4} errors={errors}",
        if a.label.is_empty() { "-" } else { &a.label },
        a.op,
        a.conns,
        a.clients,
        a.total,
        lat.mean() / 1000.0,
        ms(lat.value_at_percentile(50.0)),
        ms(lat.value_at_percentile(99.0)),
    );
}

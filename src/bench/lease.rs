//! `metastore bench keepalive`: lease keep-alive throughput, either one long-lived stream
//! per client (`--mode stream`) or a new stream for every keep-alive (`--mode new`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use metastore::proto::etcdserverpb::{
    lease_client::LeaseClient, LeaseGrantRequest, LeaseKeepAliveRequest,
};

#[derive(Debug, Parser)]
#[command(name = "metastore bench keepalive")]
pub(crate) struct Args {
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    endpoints: String,
    #[arg(long, default_value_t = 10)]
    conns: usize,
    #[arg(long, default_value_t = 100)]
    clients: usize,
    #[arg(long, default_value_t = 100_000)]
    total: u64,
    /// stream: one stream per client; new: a new stream per keep-alive.
    #[arg(long, default_value = "stream")]
    mode: String,
    #[arg(long, default_value = "")]
    label: String,
}

pub(crate) async fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    if a.mode != "stream" && a.mode != "new" {
        return Err(format!("unknown mode {:?}: stream or new", a.mode).into());
    }
    let channels = super::connect(&a.endpoints, a.conns).await?;
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.clients.max(1) {
        let mut client = LeaseClient::new(channels[c % channels.len()].clone());
        let id = client
            .lease_grant(LeaseGrantRequest { ttl: 600, id: 0 })
            .await?
            .into_inner()
            .id;
        let (issued, total, per_stream) = (issued.clone(), a.total, a.mode == "stream");
        tasks.push(tokio::spawn(async move {
            let mut lat = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            let mut errors = 0u64;
            // grpc-go answers a stream's headers with its first response: queue the first
            // keep-alive before opening the stream, or the call never returns against etcd.
            let (tx, rx) = mpsc::channel::<LeaseKeepAliveRequest>(1);
            let mut first_queued = false;
            let mut stream = None;
            if per_stream && issued.load(Ordering::Relaxed) < total {
                first_queued = tx.send(LeaseKeepAliveRequest { id }).await.is_ok();
                stream = client
                    .lease_keep_alive(ReceiverStream::new(rx))
                    .await
                    .ok()
                    .map(|r| (tx, r.into_inner()));
            }
            while issued.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let ok = match &mut stream {
                    Some((tx, responses)) => {
                        let sent = std::mem::take(&mut first_queued)
                            || tx.send(LeaseKeepAliveRequest { id }).await.is_ok();
                        sent && matches!(responses.message().await, Ok(Some(r)) if r.ttl > 0)
                    }
                    None => {
                        let (tx, rx) = mpsc::channel::<LeaseKeepAliveRequest>(1);
                        let _ = tx.send(LeaseKeepAliveRequest { id }).await;
                        match client.lease_keep_alive(ReceiverStream::new(rx)).await {
                            Ok(r) => {
                                matches!(r.into_inner().message().await, Ok(Some(r)) if r.ttl > 0)
                            }
                            Err(_) => false,
                        }
                    }
                };
                super::record(&mut lat, &mut errors, ok, t);
            }
            (lat, errors)
        }));
    }
    let (lat, errors) = super::join(tasks).await?;
    let elapsed = start.elapsed();
    println!(
        "RESULT label={} op=keepalive-{} clients={} total={} rps={:.1} p50_ms={:.4} p99_ms={:.4} errors={errors}",
        if a.label.is_empty() { "-" } else { &a.label },
        a.mode,
        a.clients,
        a.total,
        lat.len() as f64 / elapsed.as_secs_f64(),
        lat.value_at_percentile(50.0) as f64 / 1000.0,
        lat.value_at_percentile(99.0) as f64 / 1000.0,
    );
    Ok(())
}

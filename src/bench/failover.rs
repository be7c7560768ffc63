//! `metastore bench failover`: the time from a leader's death to the first acknowledged
//! write. The caller kills the leader, then runs this with the kill time; it puts to every
//! other endpoint in turn, each try bounded by a short timeout, until one acknowledges, and
//! reports how long after the kill that was. Any etcd-compatible cluster is measured alike.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use tonic::transport::Channel;

use metastore::proto::etcdserverpb::{kv_client::KvClient, PutRequest};

#[derive(Debug, Parser)]
#[command(name = "metastore bench failover")]
pub(crate) struct Args {
    /// The surviving members' client URLs, comma separated.
    #[arg(long)]
    endpoints: String,
    /// When the leader was killed, in nanoseconds since the Unix epoch.
    #[arg(long)]
    since_ns: u128,
    /// One try's timeout.
    #[arg(long, default_value_t = 100)]
    try_ms: u64,
    /// Give up after this long.
    #[arg(long, default_value_t = 60)]
    give_up_s: u64,
    #[arg(long, default_value = "")]
    label: String,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

pub(crate) async fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut clients = Vec::new();
    for e in a.endpoints.split(',').filter(|e| !e.is_empty()) {
        let ch = Channel::from_shared(e.to_string())?
            .connect_timeout(Duration::from_millis(a.try_ms))
            .connect_lazy();
        clients.push(KvClient::new(ch));
    }
    if clients.is_empty() {
        return Err("no endpoints".into());
    }
    let try_for = Duration::from_millis(a.try_ms);
    let deadline = std::time::Instant::now() + Duration::from_secs(a.give_up_s);
    let mut tries = 0u64;
    for n in 0.. {
        if std::time::Instant::now() > deadline {
            return Err(format!("no write acknowledged within {} s", a.give_up_s).into());
        }
        let count = clients.len();
        let client = &mut clients[n % count];
        let req = PutRequest {
            key: Bytes::from_static(b"bench-failover"),
            value: Bytes::from(n.to_string()),
            ..Default::default()
        };
        tries += 1;
        if let Ok(Ok(_)) = tokio::time::timeout(try_for, client.put(req)).await {
            break;
        }
    }
    let ms = now_ns().saturating_sub(a.since_ns) as f64 / 1e6;
    println!(
        "RESULT label={} op=failover failover_ms={ms:.1} tries={tries}",
        if a.label.is_empty() { "-" } else { &a.label },
    );
    Ok(())
}

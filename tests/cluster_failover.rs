//! kill -9 of the leader of a 3-member cluster under a 50-client write load: afterwards
//! every acknowledged write is on every member, and all members hold the identical keyspace
//! at the same revision.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use etcd_client::{Client, GetOptions};

const CLIENTS: usize = 50;

/// Acknowledged writes: (key, value, revision).
type Acked = Arc<Mutex<Vec<(String, String, i64)>>>;

fn load(
    endpoints: Vec<String>,
    acked: Acked,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|w| {
            let endpoint = endpoints[w % endpoints.len()].clone();
            let (acked, stop) = (acked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut client: Option<Client> = None;
                while !stop.load(Ordering::Relaxed) {
                    if client.is_none() {
                        let opts = etcd_client::ConnectOptions::new()
                            .with_timeout(Duration::from_secs(3))
                            .with_connect_timeout(Duration::from_millis(300));
                        client = Client::connect([endpoint.as_str()], Some(opts)).await.ok();
                        if client.is_none() {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                    let c = client.as_mut().unwrap();
                    let (k, v) = (format!("load/{w:02}/{n:06}"), format!("v{n}"));
                    n += 1;
                    match c.put(k.as_str(), v.as_str(), None).await {
                        Ok(r) => acked
                            .lock()
                            .unwrap()
                            .push((k, v, r.header().unwrap().revision())),
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
        })
        .collect()
}

fn acked_len(a: &Acked) -> usize {
    a.lock().unwrap().len()
}

/// (revision, every key with its value and mod revision) as member `endpoint` holds it,
/// read locally (serializable).
async fn keyspace(endpoint: &str) -> (i64, Vec<(String, String, i64)>) {
    let mut c = Client::connect([endpoint], None).await.expect("connect");
    let r = c
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_serializable()),
        )
        .await
        .expect("range");
    let kvs = r
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
                kv.mod_revision(),
            )
        })
        .collect();
    (r.header().unwrap().revision(), kvs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_leader_under_load_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = load(cluster.endpoints(), acked.clone(), stop.clone());

    // Load on every member, then the leader dies mid-stream.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked_len(&acked) < 2000 {
        assert!(Instant::now() < deadline, "the load made no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.members[leader].kill();
    let killed_at = Instant::now();
    let before = acked_len(&acked);
    // The survivors elect a leader and go on acknowledging writes.
    while acked_len(&acked) < before + 2000 {
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "no writes acknowledged after the leader was killed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "acked {before} before the kill, {} in all; first 2000 after it in {:?}",
        acked_len(&acked),
        killed_at.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    // The killed member comes back from its data dir and catches up.
    cluster.restart(leader);
    let acked = acked.lock().unwrap().clone();
    let endpoints = cluster.endpoints();
    let deadline = Instant::now() + Duration::from_secs(30);
    let reference = loop {
        let mut spaces = Vec::new();
        for e in &endpoints {
            spaces.push(keyspace(e).await);
        }
        if spaces.windows(2).all(|w| w[0] == w[1]) {
            break spaces.remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "members did not converge: revisions {:?}",
            spaces.iter().map(|s| s.0).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (revision, kvs) = reference;
    let held: std::collections::HashMap<&str, (&str, i64)> = kvs
        .iter()
        .map(|(k, v, r)| (k.as_str(), (v.as_str(), *r)))
        .collect();
    for (k, v, rev) in &acked {
        assert_eq!(
            held.get(k.as_str()),
            Some(&(v.as_str(), *rev)),
            "acknowledged write {k} at revision {rev} is missing or changed"
        );
        assert!(*rev <= revision);
    }
    // A linearizable read on every member agrees too.
    for e in &endpoints {
        let mut c = Client::connect([e.as_str()], None).await.unwrap();
        let r = c
            .get(
                "load/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .expect("linearizable count");
        assert_eq!(r.count() as usize, kvs.len());
    }
}

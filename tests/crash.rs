//! Durability: kill -9 in the middle of a concurrent write load loses no acknowledged write
//! and revisions stay monotonic across restarts. `make test` runs 2 cycles; `make soak`
//! (METASTORE_SOAK=1) runs 20.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Kind, Server};
use etcd_client::{Client, GetOptions};

const WRITERS: usize = 50;

/// Acknowledged writes: (key, value, revision).
type Acked = Arc<Mutex<Vec<(String, String, i64)>>>;

async fn load(
    endpoint: String,
    cycle: usize,
    acked: Acked,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (endpoint, acked, stop) = (endpoint.clone(), acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut c) = Client::connect([endpoint.as_str()], None).await else {
                return;
            };
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (k, v) = (format!("crash/{cycle}/{w}/{n}"), format!("v{n}"));
                match c.put(k.as_str(), v.as_str(), None).await {
                    Ok(r) => acked
                        .lock()
                        .unwrap()
                        .push((k, v, r.header().unwrap().revision())),
                    Err(_) => return, // the server is gone
                }
                n += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_write() {
    let cycles = if std::env::var("METASTORE_SOAK").is_ok() {
        20
    } else {
        2
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let mut server = Server::spawn(Kind::Metastore, &data, port, &["--snapshot-count", "2000"]);
    let acked: Acked = Arc::default();
    let mut last_rev = 0;
    for cycle in 0..cycles {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = tokio::spawn(load(
            server.endpoint.clone(),
            cycle,
            acked.clone(),
            stop.clone(),
        ));
        // Kill once a few hundred writes are acknowledged in this cycle.
        let deadline = Instant::now() + Duration::from_secs(30);
        let target = acked.lock().unwrap().len() + 500;
        while acked.lock().unwrap().len() < target {
            assert!(Instant::now() < deadline, "load made no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = load.await;
        server = Server::spawn(Kind::Metastore, &data, port, &["--snapshot-count", "2000"]);

        let mut c = Client::connect([server.endpoint.as_str()], None)
            .await
            .unwrap();
        let all = acked.lock().unwrap().clone();
        let max_acked = all.iter().map(|a| a.2).max().unwrap_or(0);
        let now = c
            .get(
                "crash/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .unwrap();
        let rev = now.header().unwrap().revision();
        assert!(
            rev >= max_acked,
            "cycle {cycle}: revision {rev} after restart is below acknowledged {max_acked}"
        );
        assert!(
            rev >= last_rev,
            "cycle {cycle}: revision went back from {last_rev} to {rev}"
        );
        last_rev = rev;
        let stored = c
            .get("crash/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        let map: std::collections::HashMap<String, (String, i64)> = stored
            .kvs()
            .iter()
            .map(|kv| {
                (
                    kv.key_str().unwrap().to_string(),
                    (kv.value_str().unwrap().to_string(), kv.mod_revision()),
                )
            })
            .collect();
        for (k, v, r) in &all {
            let got = map.get(k);
            assert_eq!(
                got,
                Some(&(v.clone(), *r)),
                "cycle {cycle}: acknowledged write {k}={v}@{r} lost"
            );
        }
        eprintln!(
            "cycle {cycle}: {} acknowledged writes all present at revision {rev}",
            all.len()
        );
    }
}

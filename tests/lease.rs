//! Lease expiry at scale and across restarts.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Kind, Server};
use etcd_client::{Client, EventType, GetOptions, LeaseGrantOptions, PutOptions, WatchOptions};

/// 10,000 leases with the minimum TTL and 5 keys each expire: every key goes, every delete
/// event is delivered, and expiry keeps to etcd's pace (1,000 revokes a second, checked
/// every 500 ms) rather than lagging further.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_leases_expire_with_their_keys() {
    const LEASES: i64 = 10_000;
    const KEYS: i64 = 5;
    let s = Server::start(Kind::Metastore, &[]);
    let c = Client::connect([s.endpoint.as_str()], None).await.unwrap();
    let mut w = c.watch_client();
    let mut watch = w
        .watch("x/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(watch.message().await.unwrap().unwrap().created());
    let granted_at = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..50 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..LEASES).step_by(50) {
                let id = i + 1;
                c.lease_grant(2, Some(LeaseGrantOptions::new().with_id(id)))
                    .await
                    .unwrap();
                for k in 0..KEYS {
                    c.put(
                        format!("x/{id}/{k}"),
                        "v",
                        Some(PutOptions::new().with_lease(id)),
                    )
                    .await
                    .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let loaded = granted_at.elapsed();
    let mut deleted = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while deleted.len() < (LEASES * KEYS) as usize {
        let r = tokio::time::timeout_at(deadline.into(), watch.message())
            .await
            .expect("expiry too slow")
            .unwrap()
            .unwrap();
        for e in r.events() {
            if e.event_type() == EventType::Delete {
                assert!(
                    deleted.insert(e.kv().unwrap().key().to_vec()),
                    "a delete event came twice"
                );
            }
        }
    }
    let took = granted_at.elapsed();
    let mut c = c.clone();
    let left = c
        .get(
            "x/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap()
        .count();
    assert_eq!(left, 0);
    assert!(c.leases().await.unwrap().leases().is_empty());
    // The last lease was granted at `loaded`; all must be gone within its TTL, the revoke pace
    // for 10,000 leases (10 s) and a check period.
    let bound = loaded + Duration::from_secs(2 + 10 + 2);
    assert!(took <= bound, "expiry took {took:?}, beyond {bound:?}");
    eprintln!("granted 10000 leases and 50000 keys in {loaded:?}; all expired by {took:?}");
}

/// Leases survive kill -9 with their TTL renewed; keys of a revoked lease never come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_restart_with_renewed_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let mut s = Server::spawn(Kind::Metastore, &data, port, &[]);
    let mut c = Client::connect([s.endpoint.as_str()], None).await.unwrap();
    c.lease_grant(30, Some(LeaseGrantOptions::new().with_id(7)))
        .await
        .unwrap();
    c.lease_grant(30, Some(LeaseGrantOptions::new().with_id(8)))
        .await
        .unwrap();
    c.put("keep", "1", Some(PutOptions::new().with_lease(7)))
        .await
        .unwrap();
    c.put("gone", "1", Some(PutOptions::new().with_lease(8)))
        .await
        .unwrap();
    c.lease_revoke(8).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // let lease 7 age before the restart
    s.kill();
    let s = Server::spawn(Kind::Metastore, &data, port, &[]);
    let mut c = Client::connect([s.endpoint.as_str()], None).await.unwrap();
    let ttl = c
        .lease_time_to_live(
            7,
            Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()),
        )
        .await
        .unwrap();
    assert!(
        ttl.ttl() >= 29,
        "lease 7 was not renewed to its full TTL: {}",
        ttl.ttl()
    );
    assert_eq!(ttl.keys(), [b"keep".to_vec()]);
    assert_eq!(c.lease_time_to_live(8, None).await.unwrap().ttl(), -1);
    assert_eq!(c.get("keep", None).await.unwrap().count(), 1);
    assert_eq!(c.get("gone", None).await.unwrap().count(), 0);
    // The re-attached key still goes with its lease.
    c.lease_revoke(7).await.unwrap();
    assert_eq!(c.get("keep", None).await.unwrap().count(), 0);
}

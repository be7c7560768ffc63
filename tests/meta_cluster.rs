//! The typed metadata layer on a real 3-member cluster whose leader is killed under it: the
//! revision-safe watcher (on a client of every member) resumes on the survivors and its cache
//! ends equal to the store with every acknowledged write; the drain election keeps its
//! leader across the failover (leases get a fresh TTL on the new leader) and hands over on
//! a resign afterwards.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use etcd_client::{ConnectOptions, GetOptions};
use metastore::meta::drain::{election, liveness, Refusal};
use metastore::meta::watcher::{Entry, Options, Watcher};
use metastore::meta::{Client, Layout};

async fn connect(endpoints: &[String]) -> Client {
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(3));
    Client::connect(endpoints, Some(opts))
        .await
        .expect("connect")
}

fn options() -> Options {
    Options {
        page_size: 100,
        progress_interval: Duration::from_millis(200),
        stall_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(500),
        on_page: None,
    }
}

/// Retry `f` until it succeeds, within a deadline (requests in flight when the leader dies
/// fail; an operator's client retries them).
async fn retry<T, E: std::fmt::Debug, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{what}: {e:?}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_and_drain_election_survive_the_leader_killed_under_them() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let survivors: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| cluster.members[i].endpoint())
        .collect();
    let all = cluster.endpoints();
    let layout = Layout::new("/meta-cluster");
    let prefix = "/meta-cluster/watched/";

    // The election: nodes a and b alive on long leases; a leads.
    let mut c = connect(&all).await;
    let mut lease_of = BTreeMap::new();
    for node in ["a", "b"] {
        let lease = c.lease_grant(600, None).await.unwrap().id();
        liveness::register(&mut c, &layout, node, lease)
            .await
            .unwrap()
            .unwrap();
        lease_of.insert(node, lease);
    }
    let a = election::campaign(&mut c, &layout, "owner", "a")
        .await
        .unwrap()
        .unwrap();

    // The watcher, on a client of every member, and writes before, during and after the
    // leader's death.
    let watcher = Watcher::start(connect(&all).await, prefix, options()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), watcher.ready())
        .await
        .expect("watcher ready");
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut w = connect(&all).await;
    for i in 0..300 {
        if i == 100 {
            cluster.members[leader].kill();
            // Requests now go to the survivors only.
            w = connect(&survivors).await;
        }
        let (k, v) = (format!("{prefix}{i:04}"), format!("v{i}"));
        retry("put", || {
            let (mut w, k, v) = (w.clone(), k.clone(), v.clone());
            async move { w.put(k, v, None).await }
        })
        .await;
        acked.insert(k, v);
    }
    let mut s = connect(&survivors).await;
    let last = s
        .get("\0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();

    // The cache reaches the last revision and equals a fresh range, with every write.
    if tokio::time::timeout(Duration::from_secs(30), watcher.wait_for(last))
        .await
        .is_err()
    {
        panic!(
            "watcher stuck at {} < {last}: {:?}",
            watcher.revision(),
            watcher.stats()
        );
    }
    let snapshot = watcher.snapshot();
    let fresh = s
        .get(
            prefix,
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_revision(snapshot.revision),
            ),
        )
        .await
        .unwrap();
    let fresh: BTreeMap<Vec<u8>, Entry> = fresh
        .kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), Entry::from(kv)))
        .collect();
    assert_eq!(snapshot.entries, fresh, "cache differs from the store");
    for (k, v) in &acked {
        let e = snapshot
            .entries
            .get(k.as_bytes())
            .unwrap_or_else(|| panic!("acknowledged {k} missing from the cache"));
        assert_eq!(e.value, v.as_bytes(), "{k}");
    }

    // The election kept its leader across the failover; b cannot take it, then can once a
    // resigns.
    let now = retry("leader", || {
        let mut s = s.clone();
        let layout = layout.clone();
        async move { election::leader(&mut s, &layout, "owner").await }
    })
    .await;
    assert_eq!(now.as_ref().map(|l| l.node.as_str()), Some("a"));
    let refused = election::campaign(&mut s, &layout, "owner", "b")
        .await
        .unwrap();
    assert_eq!(refused, Err(Refusal::LeaderExists { leader: "a".into() }));
    assert!(election::resign(&mut s, &layout, &a).await.unwrap());
    let b = election::campaign(&mut s, &layout, "owner", "b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.node, "b");
    // Both leases outlived the failover.
    for (node, lease) in lease_of {
        let ttl = s.lease_time_to_live(lease, None).await.unwrap().ttl();
        assert!(ttl > 0, "lease of {node} gone after the failover");
    }
}

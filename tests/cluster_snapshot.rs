//! A member that falls behind a purged log catches up through a snapshot installed over the
//! real peer link: openraft's chunked InstallSnapshot, in protobuf, from the leader's
//! snapshot file (--snapshot-count small, so the leader snapshots and purges its log often).

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use etcd_client::{Client, GetOptions};

/// (revision, keys with values and mod revisions), read locally on `endpoint`.
async fn keyspace(endpoint: &str) -> Option<(i64, Vec<(Vec<u8>, Vec<u8>, i64)>)> {
    let mut c = Client::connect([endpoint], None).await.ok()?;
    let r = c
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_serializable()),
        )
        .await
        .ok()?;
    let kvs = r
        .kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
        .collect();
    Some((r.header()?.revision(), kvs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_behind_a_purged_log_catches_up_through_a_snapshot_over_the_peer_link() {
    let mut cluster = Cluster::start(
        3,
        &[
            "--snapshot-count",
            "100",
            "--experimental-snapshot-catchup-entries",
            "100",
        ],
    );
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let behind = (leader + 1) % 3;
    cluster.members[behind].kill();

    // 3,000 keys of 1 KiB from 10 clients: many snapshots, the log purged behind them, and
    // a snapshot of several 1 MiB chunks.
    let endpoint = cluster.members[leader].endpoint();
    let value = "x".repeat(1024);
    let mut tasks = Vec::new();
    for w in 0..10 {
        let (endpoint, value) = (endpoint.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect([endpoint.as_str()], None).await.unwrap();
            for n in 0..300 {
                c.put(format!("snap/{w}/{n:03}"), value.as_str(), None)
                    .await
                    .expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A delete and an overwrite too, so the snapshot carries more than fresh puts.
    let mut lc = Client::connect([endpoint.as_str()], None).await.unwrap();
    lc.delete("snap/0/000", None).await.unwrap();
    lc.put("snap/1/000", "changed", None).await.unwrap();

    cluster.restart(behind);
    let (want_rev, want) = keyspace(&endpoint).await.expect("leader keyspace");
    assert_eq!(want.len(), 2999);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if keyspace(&cluster.members[behind].endpoint()).await == Some((want_rev, want.clone())) {
            break;
        }
        assert!(Instant::now() < deadline, "the member did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = cluster.members[behind].log_text();
    assert!(
        log.contains("applied incoming snapshot"),
        "the member caught up without a snapshot: {log}"
    );

    // It follows the log again after the install: a write on it (forwarded) and on the
    // leader are both seen there.
    let mut bc = cluster.members[behind].client().await;
    bc.put("after/install", "1", None)
        .await
        .expect("put on the caught-up member");
    lc.put("after/leader", "2", None).await.unwrap();
    let r = bc
        .get("after/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("linearizable read");
    assert_eq!(r.kvs().len(), 2);
}

/// `member add` of a fourth member after 100,000 keys were written and the log purged
/// behind a snapshot: the new member starts with `--initial-cluster-state existing`, gets
/// the whole store through a snapshot installed over the peer link, and ends with the same
/// keyspace at the same revision as every other member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_member_added_after_100000_keys_catches_up_through_a_snapshot() {
    let mut cluster = Cluster::start(
        3,
        &[
            "--snapshot-count",
            "10000",
            "--experimental-snapshot-catchup-entries",
            "100",
        ],
    );
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let endpoint = cluster.members[leader].endpoint();
    // 100,000 keys from 20 clients.
    let mut tasks = Vec::new();
    for w in 0..20 {
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect([endpoint], None).await.unwrap();
            for n in 0..5_000 {
                c.put(format!("k{w:02}-{n:05}"), format!("v{n}"), None)
                    .await
                    .expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut c = Client::connect([endpoint.as_str()], None).await.unwrap();
    let new = cluster.new_member();
    let peer = cluster.members[new].peer_url();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.member_add([peer.as_str()], None).await {
            Ok(_) => break,
            Err(e) if e.to_string().contains("etcdserver: unhealthy cluster") => {
                assert!(Instant::now() < deadline, "still unhealthy: {e}")
            }
            Err(e) => panic!("member add: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.spawn_with(new, &["--initial-cluster-state", "existing"]);
    cluster
        .wait_ready(new, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    // The new member keeps running while it catches up.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if cluster.members[new].wait_exit(Duration::ZERO) {
            panic!("the new member exited: {}", cluster.members[new].log_text());
        }
        let mine = keyspace(&cluster.members[new].endpoint()).await;
        if mine.is_some_and(|(_, keys)| keys.len() == 100_000) {
            break;
        }
        assert!(Instant::now() < deadline, "the new member did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (rev, keys) = cluster.converged(Duration::from_secs(60)).await;
    assert_eq!(
        keys.len(),
        100_000,
        "keys on every member at revision {rev}"
    );
    let log = cluster.members[new].log_text();
    assert!(
        log.contains("applied incoming snapshot"),
        "the new member caught up without a snapshot: {log}"
    );
}

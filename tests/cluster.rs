//! Replicated clusters as separate processes on loopback: bootstrap with --initial-cluster,
//! requests on every member (followers forward writes and ask the leader for read
//! indexes), restart of every member from its data dir, and leases across a leader change.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use etcd_client::{Client, GetOptions, LeaseKeepAliveStream, LeaseKeeper};

async fn get(c: &mut Client, key: &str, serializable: bool) -> Option<String> {
    let opts = serializable.then(|| GetOptions::new().with_serializable());
    let r = c.get(key, opts).await.expect("get");
    r.kvs()
        .first()
        .map(|kv| kv.value_str().unwrap().to_string())
}

/// Poll until `f` holds, with a deadline.
async fn eventually<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_bootstrap_serve_on_every_member_and_restart_from_their_data() {
    let mut cluster = Cluster::start(3, &[]);
    let mut clients = Vec::new();
    for m in &cluster.members {
        clients.push(m.client().await);
    }

    // Every member agrees on one cluster, and lists every member with its URLs.
    let mut cluster_ids = Vec::new();
    for c in clients.iter_mut() {
        let list = c.member_list().await.expect("member list");
        cluster_ids.push(list.header().unwrap().cluster_id());
        let mut names: Vec<String> = list
            .members()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["m0", "m1", "m2"]);
        for m in list.members() {
            let me = cluster.members.iter().find(|x| x.name == m.name()).unwrap();
            assert_eq!(m.peer_urls(), [me.peer_url()]);
            assert_eq!(m.client_urls(), [me.endpoint()]);
        }
    }
    assert!(cluster_ids
        .iter()
        .all(|id| *id == cluster_ids[0] && *id != 0));

    // A write on each member (two of them followers, which forward it), then every member
    // reads every write linearizably.
    for (i, c) in clients.iter_mut().enumerate() {
        c.put(format!("k{i}"), format!("v{i}"), None)
            .await
            .expect("put");
    }
    for c in clients.iter_mut() {
        for i in 0..3 {
            assert_eq!(
                get(c, &format!("k{i}"), false).await.as_deref(),
                Some(format!("v{i}").as_str())
            );
        }
    }
    // A serializable read is local: it catches up without asking the leader.
    for c in clients.iter_mut() {
        eventually(
            Duration::from_secs(5),
            "serializable read catches up",
            || {
                let mut c = c.clone();
                async move { get(&mut c, "k2", true).await.as_deref() == Some("v2") }
            },
        )
        .await;
    }
    let revision = clients[0]
        .get("k0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    drop(clients);

    // Every member killed and restarted from its data dir: the same cluster again.
    for m in cluster.members.iter_mut() {
        m.kill();
    }
    for i in 0..3 {
        cluster.spawn(i);
    }
    cluster
        .wait_ready_all(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    for m in &cluster.members {
        let mut c = m.client().await;
        let list = c.member_list().await.expect("member list");
        assert_eq!(list.header().unwrap().cluster_id(), cluster_ids[0]);
        assert_eq!(list.members().len(), 3);
        let r = c
            .get("k", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(r.kvs().len(), 3);
        assert!(r.header().unwrap().revision() >= revision);
        c.put("after-restart", m.name.as_str(), None)
            .await
            .expect("put after restart");
    }
}

async fn keep_alive(keeper: &mut LeaseKeeper, stream: &mut LeaseKeepAliveStream) -> i64 {
    keeper.keep_alive().await.expect("keep-alive sent");
    let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("keep-alive answered in time")
        .expect("keep-alive stream")
        .expect("keep-alive response");
    resp.ttl()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_kept_alive_through_followers_and_expire_on_the_new_leader() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut fc = cluster.members[follower].client().await;

    // Granted and kept alive on a follower: the keep-alive reaches the leader.
    let lease = fc.lease_grant(3, None).await.expect("grant").id();
    fc.put(
        "leased",
        "x",
        Some(etcd_client::PutOptions::new().with_lease(lease)),
    )
    .await
    .expect("put with lease");
    let (mut keeper, mut stream) = fc.lease_keep_alive(lease).await.expect("keep-alive");
    assert_eq!(keep_alive(&mut keeper, &mut stream).await, 3);
    // Kept alive past its TTL through the follower.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_eq!(keep_alive(&mut keeper, &mut stream).await, 3);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(get(&mut fc, "leased", false).await.as_deref(), Some("x"));
    drop((keeper, stream));

    // The leader dies: the new leader gives the lease a fresh TTL, then expires it once
    // nobody keeps it alive, and every member sees the key go.
    cluster.members[leader].kill();
    let mut oc = cluster.members[other].client().await;
    eventually(
        Duration::from_secs(20),
        "the lease expires on the new leader",
        || {
            let mut oc = oc.clone();
            async move { get(&mut oc, "leased", false).await.is_none() }
        },
    )
    .await;
    assert_eq!(get(&mut fc, "leased", false).await, None);
    let ttl = fc.lease_time_to_live(lease, None).await.expect("ttl").ttl();
    assert_eq!(ttl, -1, "the expired lease is gone");
    let _ = &mut oc;
}

/// HashKV and Hash of every member, as (revision, hash) pairs.
async fn hashes(clients: &mut [Client], rev: i64) -> (Vec<Option<u32>>, Vec<Option<(i64, u32)>>) {
    let mut kv = Vec::new();
    let mut all = Vec::new();
    for c in clients.iter_mut() {
        kv.push(c.hash_kv(rev).await.ok().map(|r| r.hash()));
        all.push(
            c.hash()
                .await
                .ok()
                .map(|r| (r.header().unwrap().revision(), r.hash())),
        );
    }
    (kv, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_hashes_the_same_and_defragments_without_losing_anything() {
    let cluster = Cluster::start(3, &[]);
    let mut clients = Vec::new();
    for m in &cluster.members {
        clients.push(m.client().await);
    }
    for i in 0..300 {
        let c = &mut clients[i % 3];
        c.put(format!("h/{:03}", i % 120), format!("v{i}"), None)
            .await
            .expect("put");
        if i % 7 == 0 {
            c.delete(format!("h/{:03}", (i + 5) % 120), None)
                .await
                .expect("delete");
        }
    }
    let rev = clients[0]
        .get("h/", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    clients[1]
        .compact(
            rev - 100,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .expect("compact");
    // Every member, once it has applied everything, hashes the same at the same revision.
    let mut settled = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while settled.is_none() {
        let (kv, all) = hashes(&mut clients, rev).await;
        if kv.iter().all(|h| h.is_some() && *h == kv[0])
            && all.iter().all(|h| h.is_some() && *h == all[0])
        {
            settled = Some((kv[0].unwrap(), all[0].unwrap()));
        }
        assert!(
            Instant::now() < deadline,
            "members never agreed: {kv:?} {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (kv_hash, whole) = settled.unwrap();
    // A follower and then the leader defragment; nothing changes but the space.
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    for i in [follower, leader] {
        let r = clients[i].defragment().await.expect("defragment");
        assert!(
            r.header().is_none(),
            "etcd answers defragment with no header"
        );
    }
    let (kv, all) = hashes(&mut clients, rev).await;
    assert!(kv.iter().all(|h| *h == Some(kv_hash)), "{kv:?}");
    assert!(all.iter().all(|h| *h == Some(whole)), "{all:?}");
    // Writes go on through every member after the swap.
    for (i, c) in clients.iter_mut().enumerate() {
        c.put(format!("after/{i}"), "x", None)
            .await
            .expect("put after defragment");
    }
    for c in clients.iter_mut() {
        let r = c
            .get("after/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(r.kvs().len(), 3);
    }
}

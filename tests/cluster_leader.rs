//! The leader as clients see it: etcd's `hasleader` metadata (WithRequireLeader) on a member
//! cut off from its peers, TimeToLive on a follower answering the leader's TTL, and
//! MoveLeader (`etcdctl move-leader`) with etcd's errors.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use etcd_client::{Client, ConnectOptions, LeaseTimeToLiveOptions};

async fn client(endpoint: &str, require_leader: bool) -> Client {
    let opts = ConnectOptions::new()
        .with_timeout(Duration::from_secs(15))
        .with_require_leader(require_leader);
    Client::connect([endpoint], Some(opts))
        .await
        .expect("connect")
}

async fn member_id(c: &mut Client) -> u64 {
    c.status().await.unwrap().header().unwrap().member_id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_a_leader_refuses_clients_that_require_one() {
    let cluster = Cluster::start_proxied(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let cut = (leader + 1) % 3;
    let endpoint = cluster.members[cut].endpoint();
    let mut rc = client(&endpoint, true).await;
    rc.put("k", "v", None).await.expect("put with a leader");
    let mut watch = rc.watch("k", None).await.expect("watch");

    cluster.isolate(cut);
    let started = Instant::now();
    // New requests are refused at once with etcd's "no leader" once the member has none.
    let refused = loop {
        match rc.get("k", None).await {
            Err(e) if e.to_string().contains("etcdserver: no leader") => break e,
            _ => assert!(
                started.elapsed() < Duration::from_secs(20),
                "the cut-off member kept a leader"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("refused after {:?}: {refused}", started.elapsed());
    let at = Instant::now();
    let err = rc.get("k", None).await.unwrap_err();
    assert!(at.elapsed() < Duration::from_secs(1), "not refused at once");
    match err {
        etcd_client::Error::GRpcStatus(s) => {
            assert_eq!(format!("{:?}", s.code()), "Unavailable");
            assert_eq!(s.message(), "etcdserver: no leader");
        }
        other => panic!("{other}"),
    }
    // The open watch ends with the same error.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return "the stream ended without an error".to_string(),
                Err(e) => return e.to_string(),
            }
        }
    })
    .await
    .expect("the watch outlived the leader");
    assert!(ended.contains("etcdserver: no leader"), "{ended}");
    // A serializable read without the metadata still answers locally.
    let mut plain = client(&endpoint, false).await;
    plain
        .get(
            "k",
            Some(etcd_client::GetOptions::new().with_serializable()),
        )
        .await
        .expect("serializable read without hasleader");

    cluster.heal();
    let deadline = Instant::now() + Duration::from_secs(20);
    while rc.get("k", None).await.is_err() {
        assert!(Instant::now() < deadline, "no leader after healing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_live_on_a_follower_answers_the_leaders_ttl() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    let mut lc = client(&cluster.members[leader].endpoint(), false).await;
    let mut fc = client(&cluster.members[follower].endpoint(), false).await;
    let id = lc.lease_grant(30, None).await.unwrap().id();
    // Time passes, then a keep-alive on the leader gives the lease its full TTL again:
    // the follower answers that, not its own clock since the grant.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut keeper, mut acks) = lc.lease_keep_alive(id).await.unwrap();
    keeper.keep_alive().await.unwrap();
    assert_eq!(acks.message().await.unwrap().unwrap().ttl(), 30);
    let r = fc
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time to live on a follower");
    assert_eq!(r.granted_ttl(), 30);
    assert!(r.ttl() >= 28, "the follower answered {} s", r.ttl());
    // An unknown lease: etcd's answer, TTL -1.
    let r = fc.lease_time_to_live(id + 1, None).await.unwrap();
    assert_eq!(r.ttl(), -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_hands_leadership_to_the_target() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let target = (leader + 1) % 3;
    let mut lc = client(&cluster.members[leader].endpoint(), false).await;
    for i in 0..100 {
        lc.put(format!("k{i}"), "v", None).await.unwrap();
    }
    let leader_id = member_id(&mut lc).await;
    let mut tc = client(&cluster.members[target].endpoint(), false).await;
    let target_id = member_id(&mut tc).await;

    // etcd's refusals: a follower is not the leader, a stranger is no transferee.
    let err = tc.move_leader(leader_id).await.unwrap_err();
    assert!(err.to_string().contains("etcdserver: not leader"), "{err}");
    let err = lc.move_leader(0x1234).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("etcdserver: bad leader transferee"),
        "{err}"
    );

    // etcdctl finds the leader among the endpoints and asks it.
    let endpoints = cluster.endpoints().join(",");
    let out = common::etcdctl(
        &endpoints,
        &["move-leader", &format!("{target_id:x}")],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("Leadership transferred from {leader_id:x} to {target_id:x}\n")
    );
    assert_eq!(cluster.leader(Duration::from_secs(5)).await, target);
    // The cluster goes on under its new leader, with every write.
    lc.put("after", "1", None)
        .await
        .expect("put after the move");
    let r = tc
        .get(
            "k",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.count(), 100);
    let err = lc.move_leader(target_id).await.unwrap_err();
    assert!(err.to_string().contains("etcdserver: not leader"), "{err}");
}

//! Reconfiguration as etcd does it: removing the leader (it steps down and exits, the others
//! elect a leader and go on), `--strict-reconfig-check` refusing a change that would lose
//! the active quorum, and `--max-learners`.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use etcd_client::{Client, ConnectOptions, MemberAddOptions};

async fn client(endpoint: &str) -> Client {
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(15));
    Client::connect([endpoint], Some(opts))
        .await
        .expect("connect")
}

async fn member_id(c: &mut Client) -> u64 {
    c.status().await.unwrap().header().unwrap().member_id()
}

/// etcd refuses a change until the leader's peer links have worked for 5 s (its health
/// interval): retry while the cluster is "unhealthy" after a start.
async fn remove_when_healthy(c: &mut Client, id: u64, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.member_remove(id).await {
            Ok(_) => return,
            Err(e) if e.to_string().contains("etcdserver: unhealthy cluster") => {
                assert!(Instant::now() < deadline, "still unhealthy: {e}")
            }
            Err(e) => panic!("member remove: {e}; log:\n{}", log()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_leader_steps_it_down_and_the_cluster_goes_on() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let mut lc = client(&cluster.members[leader].endpoint()).await;
    lc.put("before", "1", None).await.expect("put");
    let id = member_id(&mut lc).await;

    let log = cluster.members[leader].log.clone();
    remove_when_healthy(&mut lc, id, || {
        std::fs::read_to_string(&log).unwrap_or_default()
    })
    .await;
    // The removed leader exits, as etcd's does.
    assert!(
        cluster.members[leader].wait_exit(Duration::from_secs(20)),
        "the removed leader still runs"
    );
    assert!(cluster.members[leader]
        .log_text()
        .contains("the member has been permanently removed from the cluster"));

    // The other two elect a leader among themselves and take writes; both list two members.
    let new = cluster.leader(Duration::from_secs(20)).await;
    assert_ne!(new, leader);
    for (i, m) in cluster.members.iter().enumerate() {
        if i == leader {
            continue;
        }
        let mut c = client(&m.endpoint()).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match c.put("after", m.name.as_str(), None).await {
                Ok(_) => break,
                Err(e) => assert!(Instant::now() < deadline, "no write on {}: {e}", m.name),
            }
        }
        let list = c.member_list().await.expect("member list");
        assert_eq!(list.members().len(), 2, "{:?}", list.members());
        assert!(list.members().iter().all(|r| r.id() != id));
        let r = c.get("before", None).await.unwrap();
        assert_eq!(r.kvs()[0].value(), b"1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_reconfig_check_refuses_a_change_that_would_lose_the_active_quorum() {
    // m0 runs with the check off and room for two learners; the others with etcd's defaults.
    let mut cluster = Cluster::start_with(3, &[], "http", |i| {
        if i == 0 {
            vec![
                "--strict-reconfig-check=false".into(),
                "--max-learners".into(),
                "2".into(),
            ]
        } else {
            Vec::new()
        }
    });
    let leader = cluster.leader(Duration::from_secs(10)).await;
    // One follower other than m0 dies; `alive` is the third member.
    let dead = (1..3).find(|&i| i != leader).unwrap();
    let alive = (0..3).find(|&i| i != leader && i != dead).unwrap();
    let mut ids = Vec::new();
    for m in &cluster.members {
        ids.push(member_id(&mut client(&m.endpoint()).await).await);
    }
    // A strict member to ask: the leader, or the third member when m0 leads.
    let strict = if leader == 0 { alive } else { leader };
    let mut sc = client(&cluster.members[strict].endpoint()).await;
    // Let every peer link count as healthy (etcd's 5 s), shown by a learner add that
    // passes the check; then remove that learner again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let learner = loop {
        let added = sc
            .member_add(
                ["http://127.0.0.1:9"],
                Some(MemberAddOptions::new().with_is_learner()),
            )
            .await;
        match added {
            Ok(r) => break r.member().unwrap().id(),
            Err(e) if e.to_string().contains("etcdserver: unhealthy cluster") => {
                assert!(Instant::now() < deadline, "still unhealthy: {e}")
            }
            Err(e) => panic!("learner add: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    sc.member_remove(learner).await.expect("remove the learner");

    cluster.members[dead].kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Removing the live follower would leave the leader alone with a dead member.
    let err = sc.member_remove(ids[alive]).await.unwrap_err();
    assert!(
        err.to_string().contains("etcdserver: unhealthy cluster"),
        "{err}"
    );
    // Adding a voter would need 3 of 4 connected; 2 are.
    let err = sc
        .member_add(["http://127.0.0.1:10"], None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("etcdserver: unhealthy cluster"),
        "{err}"
    );
    assert_eq!(sc.member_list().await.unwrap().members().len(), 3);

    // Without the check (m0) learners go in, up to its --max-learners of 2.
    let mut c0 = client(&cluster.members[0].endpoint()).await;
    for port in [11, 12] {
        c0.member_add(
            [format!("http://127.0.0.1:{port}")],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .expect("learner add without the check");
    }
    let err = c0
        .member_add(
            ["http://127.0.0.1:13"],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("etcdserver: too many learner members in cluster"),
        "{err}"
    );

    // A member that is down is safe to remove, strict or not.
    sc.member_remove(ids[dead])
        .await
        .expect("remove the dead member");
    let list = sc.member_list().await.unwrap();
    assert_eq!(list.members().len(), 4, "two voters and two learners");
    sc.put("after", "1", None)
        .await
        .expect("writes go on with two voters");
}

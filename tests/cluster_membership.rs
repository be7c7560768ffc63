//! etcd's Cluster service on a real cluster: a learner added with `member add --learner`
//! joins with --initial-cluster-state existing and catches up, too many learners and a
//! taken peer URL are refused, the learner is promoted, its peer URLs updated, and a
//! member removed; every member lists the same members throughout.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use etcd_client::{GetOptions, MemberAddOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_is_added_joins_is_promoted_updated_and_removed() {
    let mut cluster = Cluster::start(3, &[]);
    let mut c = cluster.members[1].client().await;
    for i in 0..200 {
        c.put(format!("k{i:03}"), "v", None).await.expect("put");
    }

    // Added as a learner through a member that may be a follower (the change is forwarded).
    let new = cluster.new_member();
    let peer = cluster.members[new].peer_url();
    // etcd's --strict-reconfig-check refuses changes until the leader's peer links have
    // worked for 5 s: retry while the fresh cluster is "unhealthy".
    let deadline = Instant::now() + Duration::from_secs(20);
    let added = loop {
        let r = c
            .member_add(
                [peer.as_str()],
                Some(MemberAddOptions::new().with_is_learner()),
            )
            .await;
        match r {
            Ok(r) => break r,
            Err(e) if e.to_string().contains("etcdserver: unhealthy cluster") => {
                assert!(Instant::now() < deadline, "still unhealthy: {e}")
            }
            Err(e) => panic!("member add: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let id = added.member().unwrap().id();
    assert!(added.member().unwrap().is_learner());
    assert_eq!(added.member_list().len(), 4);

    // etcd's refusals: a second learner, a peer URL in use, an unknown member.
    let err = c
        .member_add(
            ["http://127.0.0.1:1"],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("etcdserver: too many learner members in cluster"),
        "{err}"
    );
    let err = c.member_add([peer.as_str()], None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("etcdserver: Peer URLs already exists"),
        "{err}"
    );
    let err = c.member_remove(12345).await.unwrap_err();
    assert!(
        err.to_string().contains("etcdserver: member not found"),
        "{err}"
    );
    let err = c
        .member_promote(cluster.members.len() as u64 + 999)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("etcdserver: member not found"),
        "{err}"
    );

    // The new member joins the existing cluster and catches up.
    cluster.spawn_with(new, &["--initial-cluster-state", "existing"]);
    cluster
        .wait_ready(new, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut nc = cluster.members[new].client().await;
    let r = nc
        .get("k", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .expect("linearizable read on the learner");
    assert_eq!(r.count(), 200);

    // Promoted (once caught up), then a voter: a second promote is refused.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.member_promote(id).await {
            Ok(_) => break,
            Err(e) if e.to_string().contains("in sync with leader") => {
                assert!(Instant::now() < deadline, "the learner never caught up")
            }
            Err(e) => panic!("promote: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = c.member_promote(id).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("etcdserver: can only promote a learner member"),
        "{err}"
    );

    // Every member lists it, named and a voter (each applies the change soon).
    for m in &cluster.members {
        let mut mc = m.client().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = mc.member_list().await.expect("member list");
            let rec = list
                .members()
                .iter()
                .find(|r| r.id() == id)
                .expect("listed");
            if !rec.is_learner() {
                assert_eq!(rec.name(), cluster.members[new].name);
                assert_eq!(list.members().len(), 4);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} lists a learner still",
                m.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Its peer URLs updated, then removed: the others list three members and go on.
    let second = format!("http://127.0.0.1:{}", common::free_port());
    c.member_update(id, vec![peer.clone(), second.clone()])
        .await
        .expect("member update");
    let list = c.member_list().await.unwrap();
    let rec = list.members().iter().find(|r| r.id() == id).unwrap();
    assert_eq!(rec.peer_urls().len(), 2);
    c.member_remove(id).await.expect("member remove");
    for m in &cluster.members[..3] {
        let mut mc = m.client().await;
        // The member list is local (as etcd 3.4's): each member applies the removal soon.
        let deadline = Instant::now() + Duration::from_secs(10);
        while mc.member_list().await.unwrap().members().len() != 3 {
            assert!(
                Instant::now() < deadline,
                "{} still lists the removed member",
                m.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        mc.put("after-remove", m.name.as_str(), None)
            .await
            .expect("put after remove");
    }
}

/// etcd answers `member add` of a voter to a one-member cluster at once (and waits for the
/// new member to start); raft's joint consensus cannot commit without the new member, so
/// metastore answers with the member marked a voter and raft makes it one once it has
/// joined and caught up. The new member then counts: pausing it stops the leader's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_added_to_a_one_member_cluster_is_answered_at_once_and_counted_once_joined() {
    let mut cluster = Cluster::start(1, &[]);
    let mut c = cluster.members[0].client().await;
    for i in 0..100 {
        c.put(format!("k{i:03}"), "v", None).await.expect("put");
    }
    let new = cluster.new_member();
    let peer = cluster.members[new].peer_url();
    let added = c
        .member_add([peer.as_str()], None)
        .await
        .expect("member add");
    let id = added.member().unwrap().id();
    assert!(!added.member().unwrap().is_learner());
    assert_eq!(added.member_list().len(), 2);
    let list = c.member_list().await.expect("member list");
    let rec = list
        .members()
        .iter()
        .find(|r| r.id() == id)
        .expect("listed");
    assert!(!rec.is_learner(), "listed as a learner");
    // etcd checks that the member is in sync before that it is a learner.
    let err = c.member_promote(id).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("etcdserver: can only promote a learner member which is in sync with leader"),
        "{err}"
    );

    // The mark is replicated: a leader killed now finishes the promotion after a restart.
    cluster.members[0].kill();
    cluster.spawn(0);
    cluster
        .wait_ready(0, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut c = cluster.members[0].client().await;
    c.put("k100", "v", None).await.expect("put after restart");

    cluster.spawn_with(new, &["--initial-cluster-state", "existing"]);
    cluster
        .wait_ready(new, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut nc = cluster.members[new].client().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = nc
            .get("k", Some(GetOptions::new().with_prefix().with_count_only()))
            .await;
        if r.is_ok_and(|r| r.count() == 101) {
            break;
        }
        assert!(Instant::now() < deadline, "the new member never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Once raft counts it, the leader is one of two voters: with the new member paused,
    // no write commits.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        cluster.members[new].pause();
        let put = tokio::time::timeout(Duration::from_secs(2), c.put("probe", "x", None)).await;
        cluster.members[new].resume();
        if !matches!(put, Ok(Ok(_))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new member never became a voter"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Both members serve writes and agree.
    let deadline = Instant::now() + Duration::from_secs(20);
    let rev = loop {
        match c.put("after", "2", None).await {
            Ok(r) => break r.header().unwrap().revision(),
            Err(e) => assert!(Instant::now() < deadline, "no write after resuming: {e}"),
        }
    };
    let r = nc.get("after", None).await.expect("read on the new member");
    assert_eq!(r.kvs()[0].value(), b"2");
    assert!(r.header().unwrap().revision() >= rev);
    // In sync and a voter: refused as not a learner.
    let err = c.member_promote(id).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("message: \"etcdserver: can only promote a learner member\""),
        "{err}"
    );
}

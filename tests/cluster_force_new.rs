//! `--force-new-cluster`, as etcd's: a member of a cluster that lost its other members
//! restarts as the only voter, with every acknowledged write, and serves writes again; the
//! one-member cluster survives kill -9 and a restart without the flag, a crash in the
//! middle of forcing is recovered by forcing again, and forcing twice is harmless.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use etcd_client::{Client, ConnectOptions, GetOptions};

async fn client(endpoint: &str) -> Client {
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(5));
    Client::connect([endpoint], Some(opts))
        .await
        .expect("connect")
}

/// Poll until a put is acknowledged (the forced member elects itself first).
async fn put_eventually(c: &mut Client, k: &str, v: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.put(k, v, None).await {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("put {k}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("put {k} never acknowledged: {e}"),
        }
    }
}

async fn check(c: &mut Client, acked: &[(String, String)]) {
    let r = c
        .get("k", Some(GetOptions::new().with_prefix()))
        .await
        .expect("range");
    let got: std::collections::BTreeMap<String, String> = r
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
            )
        })
        .collect();
    for (k, v) in acked {
        assert_eq!(got.get(k), Some(v), "acknowledged {k} lost");
    }
    let members = c.member_list().await.expect("member list");
    let names: Vec<&str> = members.members().iter().map(|m| m.name()).collect();
    assert_eq!(names, ["m0"], "a one-member cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_member_keeps_every_write_and_serves_alone() {
    let mut cluster = Cluster::start(3, &[]);
    let mut c = client(&cluster.members[1].endpoint()).await;
    let mut acked = Vec::new();
    for i in 0..300 {
        let (k, v) = (format!("k{i:04}"), format!("v{i}"));
        c.put(k.as_str(), v.as_str(), None).await.expect("put");
        acked.push((k, v));
    }
    drop(c);
    // m0 is the member forced later: it must hold every acknowledged write (a member that
    // lags loses what it never received, on etcd too). Wait until it has applied the last.
    let mut m0 = client(&cluster.members[0].endpoint()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = m0
            .get("k0299", Some(GetOptions::new().with_serializable()))
            .await;
        if r.is_ok_and(|r| r.count() == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "m0 never applied k0299");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(m0);
    // Every member dies (kill -9: m0's applies may still be held in memory, and come back
    // from its log); only m0's data is left to run.
    for m in cluster.members.iter_mut() {
        m.kill();
    }
    // A crash in the middle of forcing (its vote stored, its membership entry not yet):
    // the next forced start goes on from there.
    std::env::set_var(
        "METASTORE_FAILPOINTS",
        "raft_force_new_cluster_after_vote=abort",
    );
    cluster.spawn_with(0, &["--force-new-cluster"]);
    std::env::remove_var("METASTORE_FAILPOINTS");
    assert!(
        cluster.members[0].wait_exit(Duration::from_secs(30)),
        "the armed failpoint did not stop the member"
    );
    assert!(cluster.members[0]
        .log_text()
        .contains("failpoint raft_force_new_cluster_after_vote: abort"));
    cluster.spawn_with(0, &["--force-new-cluster"]);
    cluster
        .wait_ready(0, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut c = client(&cluster.members[0].endpoint()).await;
    put_eventually(&mut c, "k-after-force", "1").await;
    acked.push(("k-after-force".into(), "1".into()));
    check(&mut c, &acked).await;

    // kill -9, then a restart without the flag: still one member, nothing lost.
    cluster.members[0].kill();
    cluster.spawn(0);
    cluster
        .wait_ready(0, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut c = client(&cluster.members[0].endpoint()).await;
    put_eventually(&mut c, "k-after-restart", "2").await;
    acked.push(("k-after-restart".into(), "2".into()));
    check(&mut c, &acked).await;

    // Forcing again on a member that is already alone changes nothing but the term.
    cluster.members[0].kill();
    cluster.spawn_with(0, &["--force-new-cluster"]);
    cluster
        .wait_ready(0, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut c = client(&cluster.members[0].endpoint()).await;
    put_eventually(&mut c, "k-forced-twice", "3").await;
    acked.push(("k-forced-twice".into(), "3".into()));
    check(&mut c, &acked).await;
}

//! A 5-member cluster: it bootstraps, takes writes with two members killed, refuses them
//! (etcd's request timed out) with three killed, and converges once they are back, with
//! every acknowledged write on every member.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use etcd_client::{Client, ConnectOptions};

async fn client(endpoint: &str) -> Client {
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(15));
    Client::connect([endpoint], Some(opts))
        .await
        .expect("connect")
}

/// Put through `c` until it succeeds (a new leader may be being elected); its revision.
async fn put_until_ok(c: &mut Client, key: &str, what: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c.put(key, "v", None).await {
            Ok(r) => return r.header().unwrap().revision(),
            Err(e) => assert!(Instant::now() < deadline, "{what}: no write: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_survive_two_failures_and_stop_at_three() {
    let mut cluster = Cluster::start(5, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let mut acked = Vec::new();
    for m in 0..5 {
        let mut c = client(&cluster.members[m].endpoint()).await;
        let key = format!("before/{m}");
        acked.push((key.clone(), put_until_ok(&mut c, &key, "all five").await));
    }

    // Two members die, the leader among them: three of five still make a quorum.
    let killed = [leader, (leader + 1) % 5];
    for &k in &killed {
        cluster.members[k].kill();
    }
    let alive: Vec<usize> = (0..5).filter(|i| !killed.contains(i)).collect();
    for &m in &alive {
        let mut c = client(&cluster.members[m].endpoint()).await;
        let key = format!("two-down/{m}");
        acked.push((key.clone(), put_until_ok(&mut c, &key, "two down").await));
    }

    // A third dies: two of five are no quorum; a write times out as etcd's does.
    let third = alive[0];
    cluster.members[third].kill();
    let mut c = client(&cluster.members[alive[1]].endpoint()).await;
    let err = c.put("three-down", "x", None).await.unwrap_err();
    assert!(
        err.to_string().contains("etcdserver: request timed out"),
        "{err}"
    );

    // All back: the cluster converges on every acknowledged write. (The refused write's
    // outcome is unknown, as with etcd: a leader among the two may hold it uncommitted,
    // and commit it once the others are back.)
    for k in [killed[0], killed[1], third] {
        cluster.restart(k);
    }
    let mut c = client(&cluster.members[killed[0]].endpoint()).await;
    acked.push((
        "after".into(),
        put_until_ok(&mut c, "after", "all back").await,
    ));
    let (revision, kvs) = cluster.converged(Duration::from_secs(30)).await;
    for (k, rev) in &acked {
        assert!(
            kvs.iter().any(|(key, _, r)| key == k && r == rev),
            "acknowledged write {k} at revision {rev} is missing"
        );
    }
    assert!(revision >= acked.last().unwrap().1);
}

//! Members paused with SIGSTOP: a member cut off from the majority refuses writes and never
//! serves a stale linearizable read, and the cluster converges once it is back.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use etcd_client::{Client, ConnectOptions, GetOptions};

async fn client(endpoint: &str) -> Client {
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(15));
    Client::connect([endpoint], Some(opts))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_a_quorum_refuses_writes_and_linearizable_reads() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let mut lc = client(&cluster.members[leader].endpoint()).await;
    lc.put("before", "1", None).await.expect("put");

    // Both followers paused: the leader is a minority of one.
    for (i, m) in cluster.members.iter().enumerate() {
        if i != leader {
            m.pause();
        }
    }
    let started = Instant::now();
    let put = lc.put("during", "x", None).await;
    assert!(put.is_err(), "a minority acknowledged a write: {put:?}");
    eprintln!(
        "write refused after {:?}: {}",
        started.elapsed(),
        put.unwrap_err()
    );
    let read = lc.get("before", None).await;
    assert!(
        read.is_err(),
        "a minority served a linearizable read: {read:?}"
    );
    // A serializable read is local and still answers.
    let local = lc
        .get("before", Some(GetOptions::new().with_serializable()))
        .await
        .expect("serializable read");
    assert_eq!(local.kvs()[0].value(), b"1");

    for (i, m) in cluster.members.iter().enumerate() {
        if i != leader {
            m.resume();
        }
    }
    // Back to a quorum: writes and reads succeed on every member, and the refused write
    // never shows up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while lc.put("after", "2", None).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "no write after the quorum returned"
        );
    }
    for m in &cluster.members {
        let mut c = client(&m.endpoint()).await;
        let r = c.get("after", None).await.expect("read after healing");
        assert_eq!(r.kvs()[0].value(), b"2");
        let r = c.get("during", None).await.unwrap();
        assert!(r.kvs().is_empty(), "the refused write was applied");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_serves_no_stale_read_when_it_wakes() {
    let cluster = Cluster::start(3, &[]);
    let old = cluster.leader(Duration::from_secs(10)).await;
    let mut oc = client(&cluster.members[old].endpoint()).await;
    oc.put("k", "old", None).await.expect("put");

    cluster.members[old].pause();
    // The majority elects a new leader and takes a write.
    let other = (old + 1) % 3;
    let mut nc = client(&cluster.members[other].endpoint()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let rev = loop {
        match nc.put("k", "new", None).await {
            Ok(r) => break r.header().unwrap().revision(),
            Err(_) => assert!(Instant::now() < deadline, "the majority took no write"),
        }
    };

    // The old leader wakes still believing it leads: its linearizable read must see the
    // majority's write (or fail), never the old value.
    cluster.members[old].resume();
    match oc.get("k", None).await {
        Ok(r) => {
            assert_eq!(r.kvs()[0].value(), b"new", "stale linearizable read");
            assert!(r.header().unwrap().revision() >= rev);
        }
        Err(e) => eprintln!("read on the woken leader refused: {e}"),
    }
    // And it converges.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = oc
            .get("k", Some(GetOptions::new().with_serializable()))
            .await
        {
            if r.kvs()[0].value() == b"new" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the old leader did not converge");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

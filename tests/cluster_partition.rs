//! Members paused with SIGSTOP or cut off from their peers by our proxies (a network
//! partition): a member without the majority refuses writes with etcd's error after etcd's
//! request timeout and never serves a stale linearizable read, and the cluster converges
//! (identical keyspace and revision on every member) once the partition heals.

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
    // Back to a quorum: writes and reads succeed on every member. The timed-out write is
    // unknown, as etcd's "request timed out" is: the leader had appended it to its log, so
    // it may commit once the followers return. Either way every member agrees on it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while lc.put("after", "2", None).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "no write after the quorum returned"
        );
    }
    let mut during = Vec::new();
    for m in &cluster.members {
        let mut c = client(&m.endpoint()).await;
        let r = c.get("after", None).await.expect("read after healing");
        assert_eq!(r.kvs()[0].value(), b"2");
        let r = c.get("during", None).await.unwrap();
        during.push(
            r.kvs()
                .iter()
                .map(|kv| kv.mod_revision())
                .collect::<Vec<_>>(),
        );
    }
    assert!(
        during.windows(2).all(|w| w[0] == w[1]),
        "the members disagree on the timed-out write: {during:?}"
    );
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

/// etcd's request timeout for the test clusters' election timeout: 5s + 2 * election.
fn request_timeout() -> Duration {
    Duration::from_secs(5) + 2 * Duration::from_millis(common::cluster::ELECTION_MS)
}

/// A write on a member without a quorum: refused with etcd's `request timed out`, after
/// about etcd's request timeout.
async fn assert_write_refused(c: &mut Client, key: &str) {
    let started = Instant::now();
    let put = c.put(key, "x", None).await;
    let took = started.elapsed();
    let err = put.expect_err("a minority acknowledged a write");
    assert!(
        err.to_string().contains("etcdserver: request timed out"),
        "{err}"
    );
    assert!(
        took >= request_timeout() - Duration::from_millis(500)
            && took < request_timeout() + Duration::from_secs(3),
        "refused after {took:?}"
    );
}

#[test]
fn the_proxy_knows_which_process_opened_a_connection() {
    let net = common::proxy::Net::new();
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = net.proxy(1, upstream.local_addr().unwrap().port());
    // This process plays member 0: a cut between 0 and 1 holds its new connection.
    net.set_pid(0, std::process::id());
    net.partition(&[0], &[1]);
    let mut held = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    upstream.set_nonblocking(true).unwrap();
    std::io::Write::write_all(&mut held, b"lost").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(upstream.accept().is_err(), "a cut connection was forwarded");
    // Healed: the held connection is closed, and a new one is forwarded.
    net.heal();
    let mut buf = [0u8; 4];
    assert_eq!(std::io::Read::read(&mut held, &mut buf).unwrap_or(0), 0);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut c, b"ping").unwrap();
    upstream.set_nonblocking(false).unwrap();
    let (mut s, _) = upstream.accept().unwrap();
    std::io::Read::read_exact(&mut s, &mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    net.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_by_the_network_refuses_writes_and_stale_reads() {
    let cluster = Cluster::start_proxied(3, &[]);
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let cut = (leader + 1) % 3;
    let mut lc = client(&cluster.members[leader].endpoint()).await;
    let mut fc = client(&cluster.members[cut].endpoint()).await;
    lc.put("k", "old", None).await.expect("put");
    let deadline = Instant::now() + Duration::from_secs(10);
    while fc.get("k", None).await.map(|r| r.kvs().len()).unwrap_or(0) != 1 {
        assert!(Instant::now() < deadline, "the follower never caught up");
    }

    cluster.isolate(cut);
    // The majority goes on.
    let deadline = Instant::now() + Duration::from_secs(20);
    let rev = loop {
        match lc.put("k", "new", None).await {
            Ok(r) => break r.header().unwrap().revision(),
            Err(e) => assert!(Instant::now() < deadline, "the majority took no write: {e}"),
        }
    };
    // The cut-off member: a write times out as etcd's does, a linearizable read never
    // answers the old value, a serializable read is local (and may be stale).
    assert_write_refused(&mut fc, "minority").await;
    match fc.get("k", None).await {
        Ok(r) => panic!("a cut-off member served a linearizable read: {:?}", r.kvs()),
        Err(e) => eprintln!("linearizable read on the cut-off member: {e}"),
    }
    let local = fc
        .get("k", Some(GetOptions::new().with_serializable()))
        .await
        .expect("serializable read");
    assert_eq!(local.kvs()[0].value(), b"old");

    cluster.heal();
    let (revision, kvs) = cluster.converged(Duration::from_secs(30)).await;
    assert!(revision >= rev);
    assert!(kvs.iter().any(|(k, v, _)| k == "k" && v == "new"));
    assert!(
        !kvs.iter().any(|(k, _, _)| k == "minority"),
        "the refused write was applied"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match fc.get("k", None).await {
            Ok(r) => {
                assert_eq!(r.kvs()[0].value(), b"new");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no read after healing: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_by_the_network_loses_its_writes_to_the_majority() {
    let cluster = Cluster::start_proxied(3, &[]);
    let old = cluster.leader(Duration::from_secs(10)).await;
    let mut oc = client(&cluster.members[old].endpoint()).await;
    oc.put("k", "old", None).await.expect("put");

    cluster.isolate(old);
    // The majority elects a leader of its own and takes a write.
    let other = (old + 1) % 3;
    let mut nc = client(&cluster.members[other].endpoint()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let rev = loop {
        match nc.put("k", "new", None).await {
            Ok(r) => break r.header().unwrap().revision(),
            Err(e) => assert!(Instant::now() < deadline, "the majority took no write: {e}"),
        }
    };
    // The old leader, a minority of one: no write, no stale linearizable read.
    assert_write_refused(&mut oc, "minority").await;
    if let Ok(r) = oc.get("k", None).await {
        panic!(
            "the cut-off leader served a linearizable read: {:?}",
            r.kvs()
        );
    }

    cluster.heal();
    let (revision, kvs) = cluster.converged(Duration::from_secs(30)).await;
    assert!(revision >= rev);
    assert!(kvs.iter().any(|(k, v, _)| k == "k" && v == "new"));
    assert!(
        !kvs.iter().any(|(k, _, _)| k == "minority"),
        "the refused write was applied"
    );
}

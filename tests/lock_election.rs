//! The Lock and Election services through the etcd-client crate: mutual exclusion under
//! contention, locks released by a revoked or expired lease, a waiter whose own lease
//! expires, a cancelled waiter's key removed, and an election's campaign, proclaim,
//! leader, observe and resign.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Kind, Server};
use etcd_client::{
    Client, GetOptions, LeaderKey, LockOptions, ObserveStream, ProclaimOptions, ResignOptions,
};

const DEADLINE: Duration = Duration::from_secs(20);

async fn connect(s: &Server) -> Client {
    Client::connect([s.endpoint.as_str()], None).await.unwrap()
}

async fn lease(c: &mut Client, ttl: i64) -> i64 {
    c.lease_grant(ttl, None).await.unwrap().id()
}

/// Poll `f` until it holds, or fail after the deadline.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + DEADLINE;
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn keys_under(c: &mut Client, prefix: &str) -> usize {
    c.get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap()
        .kvs()
        .len()
}

async fn next_value(obs: &mut ObserveStream) -> String {
    let r = tokio::time::timeout(DEADLINE, obs.message())
        .await
        .expect("observe answers")
        .unwrap()
        .expect("observe goes on");
    r.kv().unwrap().value_str().unwrap().to_string()
}

fn status(e: etcd_client::Error) -> (tonic::Code, String) {
    match e {
        etcd_client::Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        e => panic!("not a gRPC status: {e}"),
    }
}

/// Ten clients take one lock in turns; each increments a counter kept in the store with a
/// plain get and put, and checks no one else holds the lock meanwhile. Every increment
/// survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_clients_contending_for_one_lock_exclude_each_other() {
    const CLIENTS: usize = 10;
    const ROUNDS: usize = 3;
    let s = Server::start(Kind::Metastore, &[]);
    let held = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = connect(&s).await;
        let held = held.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let id = lease(&mut c, 60).await;
                let key = c
                    .lock("mutex", Some(LockOptions::new().with_lease(id)))
                    .await
                    .unwrap()
                    .key()
                    .to_vec();
                assert!(key.starts_with(b"mutex/"));
                assert!(!held.swap(true, Ordering::SeqCst), "two holders at once");
                let n: usize = match c.get("counter", None).await.unwrap().kvs().first() {
                    Some(kv) => kv.value_str().unwrap().parse().unwrap(),
                    None => 0,
                };
                tokio::task::yield_now().await;
                c.put("counter", (n + 1).to_string(), None).await.unwrap();
                held.store(false, Ordering::SeqCst);
                c.unlock(key).await.unwrap();
                c.lease_revoke(id).await.unwrap();
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("lock contention finished")
            .unwrap();
    }
    let mut c = connect(&s).await;
    let kvs = c.get("counter", None).await.unwrap();
    assert_eq!(
        kvs.kvs()[0].value_str().unwrap(),
        (CLIENTS * ROUNDS).to_string()
    );
    assert_eq!(keys_under(&mut c, "mutex/").await, 0);
}

/// A lock whose holder's lease is revoked, and one whose holder's lease expires, passes to
/// the waiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_releases_the_lock_to_a_waiter() {
    let s = Server::start(Kind::Metastore, &[]);
    let mut a = connect(&s).await;
    let la = lease(&mut a, 60).await;
    let ka = a
        .lock("l", Some(LockOptions::new().with_lease(la)))
        .await
        .unwrap()
        .key()
        .to_vec();
    assert_eq!(ka, format!("l/{la:x}").into_bytes());
    // the same lease locks again at once: it already holds the lock
    let again = a.lock("l", Some(LockOptions::new().with_lease(la))).await;
    assert_eq!(again.unwrap().key(), &ka[..]);

    let mut b = connect(&s).await;
    let lb = lease(&mut b, 60).await;
    let waiter = tokio::spawn(async move {
        b.lock("l", Some(LockOptions::new().with_lease(lb)))
            .await
            .map(|r| r.key().to_vec())
    });
    eventually("the waiter's key", || {
        let mut a = a.clone();
        async move { keys_under(&mut a, "l/").await == 2 }
    })
    .await;
    assert!(!waiter.is_finished(), "took a held lock");
    a.lease_revoke(la).await.unwrap();
    let kb = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("the waiter gets the lock")
        .unwrap()
        .unwrap();
    assert_eq!(kb, format!("l/{lb:x}").into_bytes());

    // an expiring lease (no keep-alive) hands the lock on too
    let mut d = connect(&s).await;
    let short = lease(&mut d, 2).await;
    d.lock("m", Some(LockOptions::new().with_lease(short)))
        .await
        .unwrap();
    let mut c = connect(&s).await;
    let lc = lease(&mut c, 60).await;
    let waiter = tokio::spawn(async move {
        c.lock("m", Some(LockOptions::new().with_lease(lc)))
            .await
            .map(|r| r.key().to_vec())
    });
    let kc = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("the lease expiry hands the lock on")
        .unwrap()
        .unwrap();
    assert_eq!(kc, format!("m/{lc:x}").into_bytes());
    assert_eq!(keys_under(&mut d, "m/").await, 1);
}

/// A lock with a missing lease fails with etcd's error and leaves nothing; a waiter whose
/// own lease expires gets etcd's "session is expired"; a waiter that goes away has its key
/// removed; without a lease the lock gets a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_errors_expiry_and_cancel() {
    let s = Server::start(Kind::Metastore, &[]);
    let mut a = connect(&s).await;
    let err = a
        .lock("x", Some(LockOptions::new().with_lease(0x1234)))
        .await
        .unwrap_err();
    assert_eq!(
        status(err),
        (
            tonic::Code::Unknown,
            "etcdserver: requested lease not found".to_string()
        )
    );
    assert_eq!(keys_under(&mut a, "x/").await, 0);
    let err = a.unlock("").await.unwrap_err();
    assert_eq!(
        status(err),
        (
            tonic::Code::Unknown,
            "etcdserver: key is not provided".to_string()
        )
    );

    // no lease: the server grants one (etcd's session TTL, 60 s) and binds the key to it
    let before = a.leases().await.unwrap().leases().len();
    let k = a.lock("x", None).await.unwrap().key().to_vec();
    let leases = a.leases().await.unwrap();
    assert_eq!(leases.leases().len(), before + 1);
    let got = a.get(k.clone(), None).await.unwrap();
    let id = got.kvs()[0].lease();
    assert_eq!(k, format!("x/{id:x}").into_bytes());
    let ttl = a.lease_time_to_live(id, None).await.unwrap();
    assert!(ttl.granted_ttl() == 60, "{}", ttl.granted_ttl());

    // a waiter whose lease expires while waiting
    let mut b = connect(&s).await;
    let short = lease(&mut b, 2).await;
    let waiter = tokio::spawn(async move {
        b.lock("x", Some(LockOptions::new().with_lease(short)))
            .await
            .map(|r| r.key().to_vec())
    });
    eventually("the waiter's key, then its expiry", {
        let a = a.clone();
        let seen = Arc::new(AtomicBool::new(false));
        move || {
            let mut a = a.clone();
            let seen = seen.clone();
            async move {
                let n = keys_under(&mut a, "x/").await;
                if n == 2 {
                    seen.store(true, Ordering::SeqCst);
                }
                seen.load(Ordering::SeqCst) && n == 1
            }
        }
    })
    .await;
    a.unlock(k).await.unwrap();
    let err = tokio::time::timeout(DEADLINE, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        status(err),
        (
            tonic::Code::Unknown,
            "mutex: session is expired".to_string()
        )
    );

    // a waiter that goes away: its key is deleted
    let lh = lease(&mut a, 60).await;
    a.lock("y", Some(LockOptions::new().with_lease(lh)))
        .await
        .unwrap();
    let mut c = connect(&s).await;
    let lc = lease(&mut c, 60).await;
    let waiter =
        tokio::spawn(async move { c.lock("y", Some(LockOptions::new().with_lease(lc))).await });
    eventually("the waiter's key", || {
        let mut a = a.clone();
        async move { keys_under(&mut a, "y/").await == 2 }
    })
    .await;
    waiter.abort();
    eventually("the cancelled waiter's key to go", || {
        let mut a = a.clone();
        async move { keys_under(&mut a, "y/").await == 1 }
    })
    .await;
}

/// Observe from before any leader; campaign, a second candidate waiting, proclaim,
/// proclaim and resign by a non-leader, resign handing over, and no leader at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_proclaim_leader_observe_resign() {
    let s = Server::start(Kind::Metastore, &[]);
    let mut a = connect(&s).await;
    let err = a.leader("e").await.unwrap_err();
    assert_eq!(
        status(err),
        (tonic::Code::Unknown, "election: no leader".to_string())
    );
    let mut obs = a.observe("e").await.unwrap();

    let la = lease(&mut a, 60).await;
    let ca = a.campaign("e", "a", la).await.unwrap();
    let leader_a = ca.leader().unwrap().clone();
    assert_eq!(leader_a.key(), format!("e/{la:x}").as_bytes());
    assert_eq!(leader_a.lease(), la);
    assert_eq!(next_value(&mut obs).await, "a");
    let l = a.leader("e").await.unwrap();
    assert_eq!(l.kv().unwrap().value_str().unwrap(), "a");
    assert_eq!(l.kv().unwrap().create_revision(), leader_a.rev());

    let mut b = connect(&s).await;
    let lb = lease(&mut b, 60).await;
    let candidate = tokio::spawn(async move { b.campaign("e", "b", lb).await });
    eventually("the second candidate's key", || {
        let mut a = a.clone();
        async move { keys_under(&mut a, "e/").await == 2 }
    })
    .await;
    assert!(!candidate.is_finished(), "elected while a leader holds");

    a.proclaim(
        "a2",
        Some(ProclaimOptions::new().with_leader(leader_a.clone())),
    )
    .await
    .unwrap();
    assert_eq!(next_value(&mut obs).await, "a2");
    assert_eq!(
        a.leader("e")
            .await
            .unwrap()
            .kv()
            .unwrap()
            .value_str()
            .unwrap(),
        "a2"
    );

    // the waiting candidate is not the leader
    let not_leader = LeaderKey::new()
        .with_name("e")
        .with_key(format!("e/{lb:x}"))
        .with_rev(leader_a.rev() + 1_000)
        .with_lease(lb);
    let err = a
        .proclaim(
            "b?",
            Some(ProclaimOptions::new().with_leader(not_leader.clone())),
        )
        .await
        .unwrap_err();
    assert_eq!(
        status(err),
        (tonic::Code::Unknown, "election: not leader".to_string())
    );
    // etcd: a resign by a non-leader changes nothing and is no error
    a.resign(Some(ResignOptions::new().with_leader(not_leader)))
        .await
        .unwrap();
    assert_eq!(keys_under(&mut a, "e/").await, 2);
    let err = a.proclaim("x", None).await.unwrap_err();
    assert_eq!(
        status(err),
        (
            tonic::Code::Unknown,
            "\"leader\" field must be provided".to_string()
        )
    );

    a.resign(Some(ResignOptions::new().with_leader(leader_a)))
        .await
        .unwrap();
    let cb = tokio::time::timeout(DEADLINE, candidate)
        .await
        .expect("the candidate is elected")
        .unwrap()
        .unwrap();
    let leader_b = cb.leader().unwrap().clone();
    assert_eq!(next_value(&mut obs).await, "b");
    assert_eq!(
        a.leader("e")
            .await
            .unwrap()
            .kv()
            .unwrap()
            .value_str()
            .unwrap(),
        "b"
    );
    a.resign(Some(ResignOptions::new().with_leader(leader_b)))
        .await
        .unwrap();
    let err = a.leader("e").await.unwrap_err();
    assert_eq!(
        status(err),
        (tonic::Code::Unknown, "election: no leader".to_string())
    );
}

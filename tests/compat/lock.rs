//! Lock and Election scenarios side by side through the etcd-client crate: keys, revisions,
//! values and errors of lock/unlock and campaign/proclaim/leader/observe/resign, with each
//! server's lease ids replaced by their order of appearance.

use std::time::Duration;

use etcd_client::{
    Client, GetOptions, KeyValue, LeaderKey, LockOptions, ObserveStream, ProclaimOptions,
    ResignOptions, ResponseHeader,
};

use crate::{Fut, Obs, Pair, Report};

/// The observations of one scenario, with lease ids (hex in keys, decimal elsewhere)
/// replaced by L0, L1, ... in the order the scenario granted them.
#[derive(Default)]
struct Seen {
    leases: Vec<i64>,
    out: Obs,
}

impl Seen {
    async fn grant(&mut self, c: &mut Client, ttl: i64) -> i64 {
        let id = c.lease_grant(ttl, None).await.unwrap().id();
        self.leases.push(id);
        id
    }

    fn push(&mut self, s: String) {
        let mut s = s;
        for (i, id) in self.leases.iter().enumerate() {
            s = s
                .replace(&format!("{id:x}"), &format!("L{i}"))
                .replace(&id.to_string(), &format!("L{i}"));
        }
        self.out.push(s);
    }

    fn result<T>(
        &mut self,
        step: &str,
        r: Result<T, etcd_client::Error>,
        f: impl Fn(&T) -> String,
    ) {
        let s = match &r {
            Ok(v) => format!("{step}: {}", f(v)),
            Err(etcd_client::Error::GRpcStatus(s)) => {
                format!("{step}: error {:?}: {}", s.code(), s.message())
            }
            Err(e) => format!("{step}: client error {e}"),
        };
        self.push(s);
    }
}

fn rev(h: Option<&ResponseHeader>) -> String {
    h.map_or("no header".into(), |h| format!("rev {}", h.revision()))
}

fn kv(kv: Option<&KeyValue>) -> String {
    match kv {
        None => "no kv".into(),
        Some(kv) => format!(
            "{}={} create {} mod {} version {} lease {}",
            String::from_utf8_lossy(kv.key()),
            String::from_utf8_lossy(kv.value()),
            kv.create_revision(),
            kv.mod_revision(),
            kv.version(),
            kv.lease()
        ),
    }
}

fn leader_key(l: Option<&LeaderKey>) -> String {
    l.map_or("no leader key".into(), |l| {
        format!(
            "{} {} rev {} lease {}",
            String::from_utf8_lossy(l.name()),
            String::from_utf8_lossy(l.key()),
            l.rev(),
            l.lease()
        )
    })
}

async fn keys(seen: &mut Seen, c: &mut Client, prefix: &str) {
    let r = c.get(prefix, Some(GetOptions::new().with_prefix())).await;
    seen.result("keys", r, |r| {
        r.kvs()
            .iter()
            .map(|k| kv(Some(k)))
            .collect::<Vec<_>>()
            .join("; ")
    });
}

/// Poll until `n` keys are under `prefix` (or 10 s have passed).
async fn wait_for_keys(c: &mut Client, prefix: &str, n: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let count = c
            .get(
                prefix,
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .unwrap()
            .count();
        if count == n || std::time::Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next leader an observe stream tells, or "nothing" after 10 s.
async fn next(s: &mut Seen, stream: &mut ObserveStream, step: &str) {
    let m = tokio::time::timeout(Duration::from_secs(10), stream.message()).await;
    match m {
        Ok(r) => s.result(step, r, |r| match r {
            Some(r) => format!("{} {}", kv(r.kv()), rev(r.header())),
            None => "end".into(),
        }),
        Err(_) => s.push(format!("{step}: nothing")),
    }
}

fn lock_and_unlock(c: &mut Client, p: String) -> Fut<'_> {
    Box::pin(async move {
        let mut s = Seen::default();
        let name = format!("{p}l");
        let r = c
            .lock(name.clone(), Some(LockOptions::new().with_lease(0x1234)))
            .await;
        s.result("lock with a missing lease", r, |r| rev(r.header()));
        keys(&mut s, c, &p).await;
        let id = s.grant(c, 60).await;
        let r = c
            .lock(name.clone(), Some(LockOptions::new().with_lease(id)))
            .await;
        let key = r.as_ref().map(|r| r.key().to_vec()).unwrap_or_default();
        s.result("lock", r, |r| {
            format!("{} {}", String::from_utf8_lossy(r.key()), rev(r.header()))
        });
        let r = c
            .lock(name.clone(), Some(LockOptions::new().with_lease(id)))
            .await;
        s.result("lock again, same lease", r, |r| {
            format!("{} {}", String::from_utf8_lossy(r.key()), rev(r.header()))
        });
        keys(&mut s, c, &p).await;
        let r = c.unlock(key.clone()).await;
        s.result("unlock", r, |r| rev(r.header()));
        let r = c.unlock(key).await;
        s.result("unlock again", r, |r| rev(r.header()));
        let r = c.unlock("").await;
        s.result("unlock no key", r, |r| rev(r.header()));
        keys(&mut s, c, &p).await;
        s.out
    })
}

fn lock_waits_for_revoke(c: &mut Client, p: String) -> Fut<'_> {
    Box::pin(async move {
        let mut s = Seen::default();
        let name = format!("{p}w");
        let la = s.grant(c, 60).await;
        let lb = s.grant(c, 60).await;
        let r = c
            .lock(name.clone(), Some(LockOptions::new().with_lease(la)))
            .await;
        s.result("lock a", r, |r| {
            String::from_utf8_lossy(r.key()).into_owned()
        });
        let mut b = c.clone();
        let waiter =
            tokio::spawn(
                async move { b.lock(name, Some(LockOptions::new().with_lease(lb))).await },
            );
        // wait for the waiter's key: then it is queued behind a
        wait_for_keys(c, &p, 2).await;
        s.push(format!("waiting: {}", !waiter.is_finished()));
        keys(&mut s, c, &p).await;
        let r = c.lease_revoke(la).await;
        s.result("revoke a", r, |r| rev(r.header()));
        let r = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiter is granted the lock")
            .unwrap();
        s.result("lock b", r, |r| {
            format!("{} {}", String::from_utf8_lossy(r.key()), rev(r.header()))
        });
        keys(&mut s, c, &p).await;
        // no key left to expire during a later scenario
        c.lease_revoke(lb).await.unwrap();
        s.out
    })
}

fn election(c: &mut Client, p: String) -> Fut<'_> {
    Box::pin(async move {
        let mut s = Seen::default();
        let name = format!("{p}e");
        let r = c.leader(name.clone()).await;
        s.result("leader of none", r, |r| kv(r.kv()));
        let r = c.campaign(name.clone(), "a", 0x1234).await;
        s.result("campaign with a missing lease", r, |r| {
            leader_key(r.leader())
        });
        let la = s.grant(c, 60).await;
        let r = c.campaign(name.clone(), "a", la).await;
        let leader = r.as_ref().ok().and_then(|r| r.leader().cloned());
        s.result("campaign", r, |r| {
            format!("{} {}", leader_key(r.leader()), rev(r.header()))
        });
        let leader = leader.unwrap_or_default();
        let r = c.campaign(name.clone(), "a1", la).await;
        s.result("campaign again, new value", r, |r| {
            format!("{} {}", leader_key(r.leader()), rev(r.header()))
        });
        let r = c.leader(name.clone()).await;
        s.result("leader", r, |r| {
            format!("{} {}", kv(r.kv()), rev(r.header()))
        });
        let r = c
            .proclaim(
                "a2",
                Some(ProclaimOptions::new().with_leader(leader.clone())),
            )
            .await;
        s.result("proclaim", r, |r| rev(r.header()));
        let other = leader.clone().with_rev(leader.rev() + 100);
        let r = c
            .proclaim("x", Some(ProclaimOptions::new().with_leader(other.clone())))
            .await;
        s.result("proclaim by a non-leader", r, |r| rev(r.header()));
        let r = c
            .resign(Some(ResignOptions::new().with_leader(other)))
            .await;
        s.result("resign by a non-leader", r, |r| rev(r.header()));
        let r = c.proclaim("x", None).await;
        s.result("proclaim without a leader", r, |r| rev(r.header()));
        let r = c.resign(None).await;
        s.result("resign without a leader", r, |r| rev(r.header()));
        let r = c.leader(name.clone()).await;
        s.result("leader", r, |r| {
            format!("{} {}", kv(r.kv()), rev(r.header()))
        });
        let r = c
            .resign(Some(ResignOptions::new().with_leader(leader)))
            .await;
        s.result("resign", r, |r| rev(r.header()));
        let r = c.leader(name).await;
        s.result("leader after resign", r, |r| kv(r.kv()));
        s.out
    })
}

fn observe(c: &mut Client, p: String) -> Fut<'_> {
    Box::pin(async move {
        let mut s = Seen::default();
        let name = format!("{p}o");
        let la = s.grant(c, 60).await;
        let lb = s.grant(c, 60).await;
        let ca = c.campaign(name.clone(), "a", la).await.unwrap();
        let leader = ca.leader().unwrap().clone();
        // etcd answers an Observe call (its response headers) only with the first leader,
        // so the stream is opened once there is one
        let mut stream = c.observe(name.clone()).await.unwrap();
        let mut b = c.clone();
        let n = name.clone();
        let candidate = tokio::spawn(async move { b.campaign(n, "b", lb).await });
        wait_for_keys(c, &p, 2).await;
        c.proclaim(
            "a2",
            Some(ProclaimOptions::new().with_leader(leader.clone())),
        )
        .await
        .unwrap();
        next(&mut s, &mut stream, "first leader").await;
        next(&mut s, &mut stream, "proclaimed").await;
        c.resign(Some(ResignOptions::new().with_leader(leader)))
            .await
            .unwrap();
        let elected = tokio::time::timeout(Duration::from_secs(10), candidate)
            .await
            .expect("the candidate is elected")
            .unwrap();
        s.result("second campaign", elected, |r| leader_key(r.leader()));
        next(&mut s, &mut stream, "next leader").await;
        c.lease_revoke(lb).await.unwrap();
        s.out
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_election_through_etcd_client() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    crate::client::run(&pair, &mut rep, "lock-unlock", lock_and_unlock).await;
    crate::client::run(&pair, &mut rep, "lock-wait-revoke", lock_waits_for_revoke).await;
    crate::client::run(&pair, &mut rep, "election", election).await;
    crate::client::run(&pair, &mut rep, "observe", observe).await;
    rep.finish("lock_and_election_through_etcd_client");
}

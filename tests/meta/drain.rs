//! `meta::drain`: the capture drain HTTP answers, epochs under racing drains, reports that
//! are stale or from the wrong node, liveness bound to leases and only moving forward, and
//! the election a draining node may not enter.

use std::time::Duration;

use metastore::meta::drain::{self, election, liveness, Liveness, Load, Refusal, Report, Status};
use metastore::meta::Client;
use rand::{Rng, SeedableRng};

use crate::{eventually, http, serve_meta_http, Env};

/// Grant a lease of `ttl` seconds and register `node` as Alive with it.
async fn register(env: &Env, node: &str, ttl: i64) -> i64 {
    let mut c = env.client.clone();
    let lease = c.lease_grant(ttl, None).await.unwrap().id();
    liveness::register(&mut c, &env.layout, node, lease)
        .await
        .unwrap()
        .unwrap();
    lease
}

/// Register `node` with a long lease and publish its load.
async fn register_with_load(env: &Env, node: &str, maintainers: u64, dispatchers: u64) -> i64 {
    let lease = register(env, node, 600).await;
    let load = Load {
        maintainer_count: maintainers,
        dispatcher_count: dispatchers,
    };
    let mut c = env.client.clone();
    drain::publish_load(&mut c, &env.layout, node, lease, load)
        .await
        .unwrap()
        .unwrap();
    lease
}

fn load(maintainers: u64, dispatchers: u64) -> Load {
    Load {
        maintainer_count: maintainers,
        dispatcher_count: dispatchers,
    }
}

async fn report(env: &Env, node: &str, epoch: u64, left: Load) -> Result<Status, Refusal> {
    let r = Report {
        node: node.into(),
        epoch,
        remaining: left,
    };
    drain::report(&mut env.client.clone(), &env.layout, &r)
        .await
        .unwrap()
}

/// One HTTP request without a body; the status code and the body as JSON.
async fn request(addr: &str, method: &str, path: &str) -> (u16, serde_json::Value) {
    let (code, body) = http(addr, method, path, None).await;
    (
        code,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn drain_body(m: u64, d: u64) -> serde_json::Value {
    serde_json::json!({
        "remaining_maintainer_count": m,
        "remaining_dispatcher_count": d,
        "current_table_count": m + d,
    })
}

async fn drain_http_answers(env: &mut Env) {
    register_with_load(env, "a", 2, 3).await;
    register_with_load(env, "b", 0, 0).await;
    register(env, "c", 600).await;
    let (addr, server) = serve_meta_http(env, Default::default()).await;
    let path = |id: &str| format!("/api/v2/captures/{id}/drain");

    assert_eq!(request(&addr, "PUT", &path("nobody")).await.0, 404);
    assert_eq!(
        request(&addr, "GET", &path("a")).await.0,
        404,
        "a is not draining"
    );
    assert_eq!(
        request(&addr, "PUT", &path("a")).await,
        (202, drain_body(2, 3))
    );
    assert_eq!(
        request(&addr, "POST", &path("a")).await,
        (202, drain_body(2, 3))
    );
    assert_eq!(
        request(&addr, "GET", &path("a")).await,
        (202, drain_body(2, 3))
    );
    assert_eq!(request(&addr, "PUT", &path("b")).await.0, 409);
    assert_eq!(request(&addr, "POST", &path("c")).await.0, 409);

    assert!(report(env, "a", 1, load(0, 1)).await.is_ok());
    assert_eq!(
        request(&addr, "GET", &path("a")).await,
        (202, drain_body(0, 1))
    );
    assert_eq!(report(env, "a", 1, load(0, 0)).await, Ok(Status::Drained));
    assert_eq!(
        request(&addr, "GET", &path("a")).await,
        (200, drain_body(0, 0))
    );
    assert_eq!(
        request(&addr, "PUT", &path("a")).await,
        (200, drain_body(0, 0))
    );

    // no work: the drain starts and completes at once; no load published counts as none
    assert_eq!(
        request(&addr, "PUT", &path("b")).await,
        (200, drain_body(0, 0))
    );
    assert_eq!(
        request(&addr, "PUT", &path("c")).await,
        (200, drain_body(0, 0))
    );
    let mut c = env.client.clone();
    assert_eq!(drain::last_epoch(&mut c, &env.layout).await.unwrap(), 3);
    assert_eq!(drain::current(&mut c, &env.layout).await.unwrap(), None);
    let b = liveness::get(&mut c, &env.layout, "b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.state, Liveness::Draining);

    if env.kind == crate::common::Kind::Metastore {
        // metastore serves the same paths on its client port (the default root holds no node)
        assert_eq!(request(&env.endpoint, "PUT", &path("a")).await.0, 404);
    }
    env.stop().await;
    let (code, body) = request(&addr, "PUT", &path("a")).await;
    assert_eq!(code, 503, "{body}");
    server.abort();
}
meta_test!(drain_http_answers);

/// Many tasks race to drain nodes, round after round: in each round exactly one drain
/// starts, everyone who wins or joins it sees its epoch, and the epoch rises by one.
async fn racing_drains_keep_epochs_monotonic(env: &mut Env) {
    let seed: u64 = match std::env::var("DRAIN_SEED") {
        Ok(s) => s.parse().expect("DRAIN_SEED is a number"),
        Err(_) => rand::random(),
    };
    println!("racing drains: DRAIN_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut clients: Vec<Client> = Vec::new();
    for _ in 0..8 {
        clients.push(env.connect().await);
    }
    for round in 1..=4u64 {
        let nodes: Vec<String> = (0..4).map(|i| format!("r{round}n{i}")).collect();
        for n in &nodes {
            register_with_load(env, n, 1, 1).await;
        }
        let mut tasks = Vec::new();
        for i in 0..16 {
            let mut c = clients[i % clients.len()].clone();
            let (layout, node) = (
                env.layout.clone(),
                nodes[rng.gen_range(0..nodes.len())].clone(),
            );
            tasks.push(tokio::spawn(async move {
                (
                    node.clone(),
                    drain::start(&mut c, &layout, &node).await.unwrap(),
                )
            }));
        }
        let mut winner = None;
        for t in tasks {
            let (node, outcome) = t.await.unwrap();
            match outcome {
                Ok(Status::Draining(r)) => {
                    assert_eq!(r.epoch, round, "seed {seed}");
                    assert_eq!(r.target, node, "seed {seed}");
                    assert!(winner.replace(node.clone()).is_none_or(|w| w == node));
                }
                Err(Refusal::Conflict { draining }) => assert_ne!(draining, node),
                other => panic!("seed {seed}: unexpected {other:?}"),
            }
        }
        let winner = winner.expect("one drain started");
        let mut c = env.client.clone();
        assert_eq!(drain::last_epoch(&mut c, &env.layout).await.unwrap(), round);
        assert_eq!(
            report(env, &winner, round, load(0, 0)).await,
            Ok(Status::Drained)
        );
    }
}
meta_test!(racing_drains_keep_epochs_monotonic);

async fn stale_epoch_reports_change_nothing(env: &mut Env) {
    register_with_load(env, "a", 4, 4).await;
    register_with_load(env, "b", 3, 2).await;
    let mut c = env.client.clone();
    assert_eq!(report(env, "a", 1, load(0, 0)).await, Err(Refusal::NoDrain));
    drain::start(&mut c, &env.layout, "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report(env, "a", 1, load(0, 0)).await, Ok(Status::Drained));
    let Status::Draining(current) = drain::start(&mut c, &env.layout, "b")
        .await
        .unwrap()
        .unwrap()
    else {
        panic!("b has work left")
    };
    assert_eq!(current.epoch, 2);
    let before = env.revision().await;

    let refused = [
        (report(env, "b", 1, load(0, 0)).await, "an old epoch"),
        (report(env, "b", 3, load(0, 0)).await, "a future epoch"),
        (report(env, "a", 2, load(0, 0)).await, "not the reporter"),
    ];
    assert_eq!(
        refused.map(|(r, _)| r),
        [
            Err(Refusal::StaleEpoch {
                reported: 1,
                current: 2
            }),
            Err(Refusal::StaleEpoch {
                reported: 3,
                current: 2
            }),
            Err(Refusal::NotReporter {
                node: "a".into(),
                reporter: "b".into()
            }),
        ]
    );
    assert_eq!(
        env.revision().await,
        before,
        "a refused report wrote nothing"
    );
    assert_eq!(
        drain::current(&mut c, &env.layout).await.unwrap(),
        Some(current)
    );
}
meta_test!(stale_epoch_reports_change_nothing);

/// A node that stops keeping its lease alive loses its liveness and load, and its
/// unfinished drain no longer blocks another.
async fn liveness_goes_with_the_lease(env: &mut Env) {
    let mut c = env.client.clone();
    let lease = register(env, "short", 3).await;
    drain::publish_load(&mut c, &env.layout, "short", lease, load(1, 0))
        .await
        .unwrap()
        .unwrap();
    register_with_load(env, "other", 1, 1).await;
    let started = drain::start(&mut c, &env.layout, "short").await.unwrap();
    assert!(matches!(started, Ok(Status::Draining(_))), "{started:?}");
    let conflict = drain::start(&mut c, &env.layout, "other").await.unwrap();
    assert_eq!(
        conflict,
        Err(Refusal::Conflict {
            draining: "short".into()
        })
    );

    let (layout, probe) = (env.layout.clone(), c.clone());
    eventually(Duration::from_secs(20), "the short lease to expire", || {
        let (layout, mut probe) = (layout.clone(), probe.clone());
        async move {
            liveness::get(&mut probe, &layout, "short")
                .await
                .unwrap()
                .is_none()
        }
    })
    .await;
    let load_key = format!("{}load/short", env.layout.namespace("drain"));
    assert!(c.get(load_key, None).await.unwrap().kvs().is_empty());
    let gone = drain::status(&mut c, &env.layout, "short").await.unwrap();
    assert_eq!(gone, Err(Refusal::UnknownNode("short".into())));
    let Ok(Status::Draining(r)) = drain::start(&mut c, &env.layout, "other").await.unwrap() else {
        panic!("the dead node's drain still blocks")
    };
    assert_eq!((r.target.as_str(), r.epoch), ("other", 2));
}
meta_test!(liveness_goes_with_the_lease);

async fn liveness_never_goes_backwards(env: &mut Env) {
    let lease = register(env, "n", 600).await;
    let (mut c, layout) = (env.client.clone(), env.layout.clone());
    let again = liveness::register(&mut c, &layout, "n", lease)
        .await
        .unwrap();
    assert_eq!(again, Err(Refusal::AlreadyRegistered("n".into())));
    let unknown = liveness::advance(&mut c, &layout, "x", Liveness::Draining)
        .await
        .unwrap();
    assert_eq!(unknown, Err(Refusal::UnknownNode("x".into())));

    use Liveness::*;
    let steps = [
        (Draining, Ok(Draining)),
        (Alive, Err(Draining)),
        (Draining, Ok(Draining)),
        (Stopping, Ok(Stopping)),
        (Draining, Err(Stopping)),
        (Alive, Err(Stopping)),
    ];
    for (to, expected) in steps {
        let got = liveness::advance(&mut c, &layout, "n", to).await.unwrap();
        match expected {
            Ok(state) => assert_eq!(got, Ok(liveness::NodeLiveness { state, lease })),
            Err(from) => {
                let node = "n".into();
                assert_eq!(got, Err(Refusal::Backwards { node, from, to }));
            }
        }
        let now = liveness::get(&mut c, &layout, "n").await.unwrap().unwrap();
        assert_eq!(now.lease, lease, "liveness stays bound to the node's lease");
    }
}
meta_test!(liveness_never_goes_backwards);

async fn draining_node_cannot_campaign(env: &mut Env) {
    register(env, "a", 600).await;
    register_with_load(env, "b", 1, 1).await;
    let lease_c = register(env, "c", 600).await;
    let (mut c, layout) = (env.client.clone(), env.layout.clone());
    let owner = "owner";

    let a = election::campaign(&mut c, &layout, owner, "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.node, "a");
    let same = election::campaign(&mut c, &layout, owner, "a")
        .await
        .unwrap();
    assert_eq!(
        same,
        Ok(a.clone()),
        "campaigning while leading is idempotent"
    );
    let lost = election::campaign(&mut c, &layout, owner, "b")
        .await
        .unwrap();
    assert_eq!(lost, Err(Refusal::LeaderExists { leader: "a".into() }));

    let (mut w, wl, seen) = (env.connect().await, layout.clone(), a.clone());
    let waiter = tokio::spawn(async move {
        election::observe(&mut w, &wl, owner, Some(&seen))
            .await
            .unwrap()
    });
    drain::start(&mut c, &layout, "b").await.unwrap().unwrap();
    assert!(election::resign(&mut c, &layout, &a).await.unwrap());
    assert_eq!(waiter.await.unwrap(), None, "the observer sees a resign");
    assert!(!election::resign(&mut c, &layout, &a).await.unwrap());
    assert_eq!(
        election::leader(&mut c, &layout, owner).await.unwrap(),
        None
    );
    let refused = election::campaign(&mut c, &layout, owner, "b")
        .await
        .unwrap();
    let draining = Refusal::NotAlive {
        node: "b".into(),
        state: Liveness::Draining,
    };
    assert_eq!(refused, Err(draining));
    liveness::advance(&mut c, &layout, "a", Liveness::Stopping)
        .await
        .unwrap()
        .unwrap();
    let refused = election::campaign(&mut c, &layout, owner, "a")
        .await
        .unwrap();
    let stopping = Refusal::NotAlive {
        node: "a".into(),
        state: Liveness::Stopping,
    };
    assert_eq!(refused, Err(stopping));
    assert_eq!(
        election::leader(&mut c, &layout, owner).await.unwrap(),
        None
    );

    let won = election::campaign(&mut c, &layout, owner, "c")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        election::leader(&mut c, &layout, owner).await.unwrap(),
        Some(won)
    );
    c.lease_revoke(lease_c).await.unwrap();
    assert_eq!(
        election::leader(&mut c, &layout, owner).await.unwrap(),
        None,
        "bound to c's lease"
    );
}
meta_test!(draining_node_cannot_campaign);

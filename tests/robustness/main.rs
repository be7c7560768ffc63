//! Robustness: seeded random histories recorded under faults and checked (check.rs) for
//! linearizability, the watch guarantees and lost acknowledged writes.
//!
//! Each scenario starts a fresh cluster (1 or 3 members), runs the load of workload.rs (the
//! basic mix or the Kubernetes-shaped one, alternately) for a few seconds, injects one
//! fault in the middle (kill -9 of the leader or a follower with a restart, SIGSTOP/SIGCONT
//! of a member, the leader cut off from its peers, the leader's peer links delayed, a
//! follower dying at a failpoint of snapshot building, snapshot installing or compaction, a
//! member added and promoted and a follower removed), heals it, lets the watcher catch up
//! with the last revision and checks the history, including the members' final keyspace
//! against the replayed one.
//!
//! `robustness_short` (7 fixed seeds over both loads and the main fault kinds) runs in
//! `make test`;
//! `make robustness` runs `robustness_long`: `ROBUSTNESS_SCENARIOS` scenarios (default 40)
//! of `ROBUSTNESS_SECS` seconds of load each (default 4), seeded by `ROBUSTNESS_SEED`,
//! `ROBUSTNESS_JOBS` at a time (default 1).

#[path = "../common/mod.rs"]
mod common;

mod check;
mod history;
mod workload;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use workload::{Clock, Mode, Watched};

const CLIENTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    None,
    KillLeader,
    KillFollower,
    Pause,
    CutLeader,
    /// Every peer link of the leader slowed by 50 to 300 ms (with 50 ms of jitter).
    DelayLeader,
    /// A follower restarted with this failpoint armed to abort (snapshots every 300
    /// applies, compactions every 400 ms make it fire), then restarted without it. For an
    /// install failpoint, the follower is down for a second first, so that the leader has
    /// purged the log it missed (50 entries kept behind a snapshot) and sends a snapshot.
    Failpoint(&'static str),
    /// A new member added as a learner, promoted once in sync, then a follower removed.
    ReplaceFollower,
}

fn name(members: usize, fault: Fault, mode: Mode) -> String {
    format!("{members} member(s), {fault:?}, {mode:?}")
}

#[derive(Default, Debug)]
struct Tally {
    histories: usize,
    ops: usize,
    unknown: usize,
    events: usize,
    violations: usize,
    lost: usize,
    /// Histories whose failpoint fired (the member died there).
    fired: usize,
}

/// One scenario, checked.
async fn scenario(
    members: usize,
    fault: Fault,
    mode: Mode,
    seed: u64,
    secs: f64,
) -> check::Verdict {
    let mut c = match fault {
        Fault::CutLeader | Fault::DelayLeader => Cluster::start_proxied(members, &[]),
        Fault::Failpoint(_) => Cluster::start(
            members,
            &[
                "--snapshot-count",
                "300",
                "--experimental-snapshot-catchup-entries",
                "50",
            ],
        ),
        _ => Cluster::start(members, &[]),
    };
    let endpoints = c.endpoints();
    let clock = Clock(Instant::now());
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let target = Arc::new(AtomicI64::new(i64::MAX));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let watched = Arc::new(Watched::default());
    let reflections = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for id in 0..CLIENTS {
        tasks.push(tokio::spawn(workload::client(
            id,
            seed,
            mode,
            endpoints.clone(),
            clock,
            stop.clone(),
            calls.clone(),
        )));
    }
    match mode {
        Mode::Basic => tasks.push(tokio::spawn(workload::compactor(
            endpoints.clone(),
            stop.clone(),
            watched.clone(),
        ))),
        Mode::Kubernetes => {
            tasks.push(tokio::spawn(workload::kube_compactor(
                endpoints.clone(),
                stop.clone(),
                watched.clone(),
            )));
            tasks.push(tokio::spawn(workload::reflector(
                endpoints.clone(),
                stop.clone(),
                reflections.clone(),
            )));
        }
    }
    let watcher = tokio::spawn(workload::watcher(
        endpoints.clone(),
        done.clone(),
        target.clone(),
        watched.clone(),
    ));

    let third = Duration::from_secs_f64(secs / 3.0);
    tokio::time::sleep(third).await;
    let leader = c.leader(Duration::from_secs(20)).await;
    let victim = match fault {
        Fault::KillFollower | Fault::Pause | Fault::Failpoint(_) | Fault::ReplaceFollower
            if members > 1 =>
        {
            (leader + 1) % members
        }
        _ => leader,
    };
    let mut fired = false;
    match fault {
        Fault::None => {}
        Fault::KillLeader | Fault::KillFollower => c.members[victim].kill(),
        Fault::Pause => c.members[victim].pause(),
        Fault::CutLeader => c.isolate(victim),
        Fault::DelayLeader => {
            let latency = 50 + seed % 251;
            c.delay(
                victim,
                Duration::from_millis(latency),
                Duration::from_millis(50),
            );
        }
        Fault::ReplaceFollower => replace_follower(&mut c, victim).await,
        Fault::Failpoint(name) => {
            c.members[victim].kill();
            if name.starts_with("snapshot_install") {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            c.members[victim].env = vec![("METASTORE_FAILPOINTS".into(), format!("{name}=abort"))];
            c.spawn(victim);
            let until = Instant::now() + third;
            while Instant::now() < until {
                if c.members[victim].wait_exit(Duration::ZERO) {
                    fired = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tokio::time::sleep(third).await;
    match fault {
        Fault::None => {}
        Fault::KillLeader | Fault::KillFollower => c.restart(victim),
        Fault::Pause => c.members[victim].resume(),
        Fault::CutLeader | Fault::DelayLeader => c.heal(),
        Fault::Failpoint(_) => {
            c.members[victim].kill();
            c.members[victim].env.clear();
            c.restart(victim);
        }
        Fault::ReplaceFollower => {}
    }
    tokio::time::sleep(third).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }

    // every member the same; the watcher catches up with the last revision
    let space = c.converged(Duration::from_secs(30)).await;
    target.store(space.0, Ordering::SeqCst);
    done.store(true, Ordering::SeqCst);
    let caught_up = tokio::time::timeout(Duration::from_secs(30), watcher).await;

    let calls = calls.lock().unwrap().clone();
    let responses = watched.responses.lock().unwrap().clone();
    let reflections = reflections.lock().unwrap().clone();
    let (mut verdict, replayed) = check::check(&calls, &responses, &reflections, space.0);
    verdict.failpoint_fired = fired;
    if caught_up.is_err() {
        verdict.violations.push(format!(
            "the watch did not reach revision {} in 30 s",
            space.0
        ));
    }
    let members_have: BTreeMap<String, (String, i64)> = space
        .1
        .iter()
        .map(|(k, v, m)| (k.clone(), (v.clone(), *m)))
        .collect();
    if members_have != replayed {
        let keys: std::collections::BTreeSet<&String> =
            members_have.keys().chain(replayed.keys()).collect();
        let diff: Vec<String> = keys
            .into_iter()
            .filter(|k| members_have.get(*k) != replayed.get(*k))
            .map(|k| {
                let seen: Vec<(i64, bool, usize)> = responses
                    .iter()
                    .flat_map(|r| r.events.iter().map(move |e| (e, r.stream)))
                    .filter(|(e, _)| e.key == **k)
                    .map(|(e, stream)| (e.rev, e.value.is_some(), stream))
                    .collect();
                format!(
                    "{k}: members {:?}, replay {:?}, watched (revision, put, connection) {seen:?}",
                    members_have.get(k),
                    replayed.get(k)
                )
            })
            .collect();
        verdict.violations.push(format!(
            "the members' keyspace at {} is not the watch's replay: {}",
            space.0,
            diff.join("; ")
        ));
    }
    verdict
}

/// Add a member (a learner first, promoted once in sync, as etcd requires), then remove
/// the follower `victim` and stop its process, all under the load.
async fn replace_follower(c: &mut Cluster, victim: usize) {
    use etcd_client::MemberAddOptions;
    let mut admin = c.members[(victim + 1) % 3].client().await;
    let new = c.new_member();
    let peer = c.members[new].peer_url();
    let deadline = Instant::now() + Duration::from_secs(30);
    // retried while the cluster is young (--strict-reconfig-check's 5 s) or busy
    let id = loop {
        let opts = MemberAddOptions::new().with_is_learner();
        match admin.member_add([peer.as_str()], Some(opts)).await {
            Ok(r) => break r.member().expect("the added member").id(),
            Err(e) => assert!(Instant::now() < deadline, "member add: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    c.spawn_with(new, &["--initial-cluster-state", "existing"]);
    c.wait_ready(new, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    loop {
        match admin.member_promote(id).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "member promote: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let name = c.members[victim].name.clone();
    let list = admin.member_list().await.expect("member list");
    let gone = list
        .members()
        .iter()
        .find(|m| m.name() == name)
        .expect("the victim is listed")
        .id();
    loop {
        match admin.member_remove(gone).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "member remove: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.members[victim].kill();
}

async fn run(
    plan: &[(usize, Fault, Mode)],
    seeds: &[u64],
    secs: f64,
    jobs: usize,
) -> BTreeMap<String, Tally> {
    use futures::StreamExt;
    let mut table: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    let runs = plan.iter().zip(seeds).enumerate().map(
        |(i, (&(members, fault, mode), &seed))| async move {
            let started = Instant::now();
            let v = tokio::spawn(scenario(members, fault, mode, seed, secs))
                .await
                .unwrap_or_else(|e| panic!("scenario {i} seed {seed}: {e}"));
            (i, members, fault, mode, seed, v, started.elapsed())
        },
    );
    let mut done = futures::stream::iter(runs).buffer_unordered(jobs.max(1));
    while let Some((i, members, fault, mode, seed, v, took)) = done.next().await {
        let name = name(members, fault, mode);
        eprintln!(
            "scenario {i}: {name} seed {seed}: {} ops ({} unknown), {} events ({} by leases), {} reflector lists and {} of their events, {} violations, {} lost, {:.1}s",
            v.ops,
            v.unknown,
            v.events,
            v.lease_deletes,
            v.reflector_lists,
            v.reflector_events,
            v.violations.len(),
            v.lost,
            took.as_secs_f64()
        );
        let t = table.entry(name.clone()).or_default();
        t.histories += 1;
        t.ops += v.ops;
        t.unknown += v.unknown;
        t.events += v.events;
        t.violations += v.violations.len();
        t.lost += v.lost;
        t.fired += usize::from(v.failpoint_fired);
        if !v.violations.is_empty() {
            failures.push(format!(
                "{name} seed {seed}:\n  {}",
                v.violations.join("\n  ")
            ));
        }
    }
    eprintln!(
        "\n{:<75} {:>9} {:>9} {:>8} {:>8} {:>10} {:>5} {:>6}",
        "fault", "histories", "ops", "unknown", "events", "violations", "lost", "fired"
    );
    for (name, t) in &table {
        eprintln!(
            "{name:<75} {:>9} {:>9} {:>8} {:>8} {:>10} {:>5} {:>6}",
            t.histories, t.ops, t.unknown, t.events, t.violations, t.lost, t.fired
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    table
}

const KINDS: [(usize, Fault); 15] = [
    (1, Fault::None),
    (1, Fault::KillLeader),
    (3, Fault::None),
    (3, Fault::KillLeader),
    (3, Fault::KillFollower),
    (3, Fault::Pause),
    (3, Fault::CutLeader),
    (3, Fault::Failpoint("snapshot_build_before_commit")),
    (3, Fault::Failpoint("snapshot_build_after_commit")),
    (3, Fault::Failpoint("compaction_step")),
    (3, Fault::ReplaceFollower),
    (3, Fault::DelayLeader),
    (3, Fault::Failpoint("snapshot_install_after_persist")),
    (3, Fault::Failpoint("snapshot_install_after_clear")),
    (3, Fault::Failpoint("snapshot_install_after_unmark")),
];

/// The plan of `n` scenarios over `kinds`: each kind with the basic load, then each with
/// the Kubernetes one, and again.
fn plan(n: usize, kinds: &[(usize, Fault)]) -> Vec<(usize, Fault, Mode)> {
    (0..n)
        .map(|i| {
            let (members, fault) = kinds[i % kinds.len()];
            let mode = if (i / kinds.len()).is_multiple_of(2) {
                Mode::Basic
            } else {
                Mode::Kubernetes
            };
            (members, fault, mode)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn robustness_short() {
    let plan = [
        (1, Fault::KillLeader, Mode::Basic),
        (3, Fault::KillLeader, Mode::Kubernetes),
        (3, Fault::Pause, Mode::Basic),
        (3, Fault::CutLeader, Mode::Kubernetes),
        (
            3,
            Fault::Failpoint("snapshot_build_before_commit"),
            Mode::Basic,
        ),
        (3, Fault::DelayLeader, Mode::Kubernetes),
        (
            3,
            Fault::Failpoint("snapshot_install_after_clear"),
            Mode::Kubernetes,
        ),
    ];
    let seeds = [11, 12, 13, 14, 15, 16, 17];
    let table = run(&plan, &seeds, 3.0, 2).await;
    let ops: usize = table.values().map(|t| t.ops).sum();
    assert!(ops > 500, "only {ops} operations checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long: make robustness"]
async fn robustness_long() {
    let n: usize = std::env::var("ROBUSTNESS_SCENARIOS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let secs: f64 = std::env::var("ROBUSTNESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0);
    let seed: u64 = common::seed_from_env("ROBUSTNESS_SEED");
    eprintln!("robustness: {n} scenarios of {secs} s, seed {seed} (ROBUSTNESS_SEED)");
    // ROBUSTNESS_KINDS: the fault kinds to run, as indices into KINDS (default all)
    let kinds: Vec<(usize, Fault)> = match std::env::var("ROBUSTNESS_KINDS") {
        Ok(list) if !list.is_empty() => list
            .split(',')
            .filter_map(|i| KINDS.get(i.trim().parse::<usize>().ok()?).copied())
            .collect(),
        _ => KINDS.to_vec(),
    };
    let jobs: usize = std::env::var("ROBUSTNESS_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let plan = plan(n, &kinds);
    let seeds: Vec<u64> = (0..n as u64).map(|i| seed.wrapping_add(i)).collect();
    run(&plan, &seeds, secs, jobs).await;
}

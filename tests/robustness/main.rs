//! Robustness: seeded random histories recorded under faults and checked (check.rs) for
//! linearizability, the watch guarantees and lost acknowledged writes.
//!
//! Each scenario starts a fresh cluster (1 or 3 members), runs the load of workload.rs for
//! a few seconds, injects one fault in the middle (kill -9 of the leader or a follower
//! with a restart, SIGSTOP/SIGCONT of a member, the leader cut off from its peers, a
//! follower dying at a failpoint of snapshot building or compaction, a member added and
//! promoted and a follower removed), heals
//! it, lets the watcher catch up with the last revision and checks the history, including
//! the members' final keyspace against the replayed one.
//!
//! `robustness_short` (fixed seeds, one scenario per fault kind) runs in `make test`;
//! `make robustness` runs `robustness_long`: `ROBUSTNESS_SCENARIOS` scenarios (default 40)
//! of `ROBUSTNESS_SECS` seconds of load each (default 4), seeded by `ROBUSTNESS_SEED`.

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
use workload::{Clock, Watched};

const CLIENTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    None,
    KillLeader,
    KillFollower,
    Pause,
    CutLeader,
    /// A follower restarted with this failpoint armed to abort (snapshots every 300
    /// applies, compactions every 400 ms make it fire), then restarted without it.
    Failpoint(&'static str),
    /// A new member added as a learner, promoted once in sync, then a follower removed.
    ReplaceFollower,
}

impl Fault {
    fn name(self, members: usize) -> String {
        format!("{members} member(s), {self:?}")
    }
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
async fn scenario(members: usize, fault: Fault, seed: u64, secs: f64) -> check::Verdict {
    let mut c = match fault {
        Fault::CutLeader => Cluster::start_proxied(members, &[]),
        Fault::Failpoint(_) => Cluster::start(members, &["--snapshot-count", "300"]),
        _ => Cluster::start(members, &[]),
    };
    let endpoints = c.endpoints();
    let clock = Clock(Instant::now());
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let target = Arc::new(AtomicI64::new(i64::MAX));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let watched = Arc::new(Watched::default());
    let mut tasks = Vec::new();
    for id in 0..CLIENTS {
        tasks.push(tokio::spawn(workload::client(
            id,
            seed,
            endpoints.clone(),
            clock,
            stop.clone(),
            calls.clone(),
        )));
    }
    tasks.push(tokio::spawn(workload::compactor(
        endpoints.clone(),
        stop.clone(),
        watched.clone(),
    )));
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
        Fault::ReplaceFollower => replace_follower(&mut c, victim).await,
        Fault::Failpoint(name) => {
            c.members[victim].kill();
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
        Fault::CutLeader => c.heal(),
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
    let (mut verdict, replayed) = check::check(&calls, &responses, space.0);
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
        verdict.violations.push(format!(
            "the members' keyspace at {} is not the watch's replay: {members_have:?} vs {replayed:?}",
            space.0
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

async fn run(plan: &[(usize, Fault)], seeds: &[u64], secs: f64) -> BTreeMap<String, Tally> {
    let mut table: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, ((members, fault), seed)) in plan.iter().zip(seeds).enumerate() {
        let started = Instant::now();
        let v = scenario(*members, *fault, *seed, secs).await;
        eprintln!(
            "scenario {i}: {} seed {seed}: {} ops ({} unknown), {} events, {} violations, {} lost, {:.1}s",
            fault.name(*members),
            v.ops,
            v.unknown,
            v.events,
            v.violations.len(),
            v.lost,
            started.elapsed().as_secs_f64()
        );
        let t = table.entry(fault.name(*members)).or_default();
        t.histories += 1;
        t.ops += v.ops;
        t.unknown += v.unknown;
        t.events += v.events;
        t.violations += v.violations.len();
        t.lost += v.lost;
        t.fired += usize::from(v.failpoint_fired);
        if !v.violations.is_empty() {
            failures.push(format!(
                "{} seed {seed}:\n  {}",
                fault.name(*members),
                v.violations.join("\n  ")
            ));
        }
    }
    eprintln!(
        "\n{:<60} {:>9} {:>9} {:>8} {:>8} {:>10} {:>5} {:>6}",
        "fault", "histories", "ops", "unknown", "events", "violations", "lost", "fired"
    );
    for (name, t) in &table {
        eprintln!(
            "{name:<60} {:>9} {:>9} {:>8} {:>8} {:>10} {:>5} {:>6}",
            t.histories, t.ops, t.unknown, t.events, t.violations, t.lost, t.fired
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    table
}

const KINDS: [(usize, Fault); 11] = [
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
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robustness_short() {
    let plan = [KINDS[1], KINDS[3], KINDS[5], KINDS[6], KINDS[7]];
    let seeds = [11, 12, 13, 14, 15];
    let table = run(&plan, &seeds, 3.0).await;
    let ops: usize = table.values().map(|t| t.ops).sum();
    assert!(ops > 500, "only {ops} operations checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    let seed: u64 = std::env::var("ROBUSTNESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("robustness: {n} scenarios of {secs} s, seed {seed} (ROBUSTNESS_SEED)");
    // ROBUSTNESS_KINDS: the fault kinds to run, as indices into KINDS (default all)
    let kinds: Vec<(usize, Fault)> = match std::env::var("ROBUSTNESS_KINDS") {
        Ok(list) if !list.is_empty() => list
            .split(',')
            .filter_map(|i| KINDS.get(i.trim().parse::<usize>().ok()?).copied())
            .collect(),
        _ => KINDS.to_vec(),
    };
    let plan: Vec<(usize, Fault)> = (0..n).map(|i| kinds[i % kinds.len()]).collect();
    let seeds: Vec<u64> = (0..n as u64).map(|i| seed.wrapping_add(i)).collect();
    run(&plan, &seeds, secs).await;
}

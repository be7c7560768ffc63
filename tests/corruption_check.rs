//! etcd's corruption check: a member whose store differs from its peers' (here made so by
//! the `mvcc-put-corrupt` failpoint, which stores another value than each put gave) is
//! refused at start by `--experimental-initial-corrupt-check` with etcd's "found data
//! inconsistency with peers", while a sound member passes the same check; and with
//! `--experimental-corrupt-check-time` the leader raises CORRUPT for it, after which the
//! cluster refuses writes with etcd's "etcdserver: corrupt cluster" until the bad member
//! is stopped and the alarm disarmed.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::etcdctl;
use serde_json::Value;

const CORRUPT_PUTS: (&str, &str) = ("METASTORE_FAILPOINTS", "mvcc-put-corrupt=error");

fn ctl(endpoint: &str, args: &[&str]) -> common::CtlOutput {
    etcdctl(endpoint, args, None)
}

fn ok(endpoint: &str, args: &[&str]) -> String {
    let out = ctl(endpoint, args);
    assert_eq!(out.code, 0, "etcdctl {args:?}: {}", out.stderr);
    out.stdout
}

/// The revision member `endpoint` has applied (a serializable read).
fn applied_rev(endpoint: &str) -> i64 {
    let out = ctl(endpoint, &["get", "x", "--consistency=s", "-w", "json"]);
    serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["header"]["revision"].as_i64())
        .unwrap_or(0)
}

fn member_id(endpoint: &str) -> u64 {
    let v: Value = serde_json::from_str(&ok(endpoint, &["endpoint", "status", "-w", "json"]))
        .expect("status json");
    v[0]["Status"]["header"]["member_id"]
        .as_u64()
        .expect("member id")
}

/// Member 2 restarted with every put it applies stored corrupted.
fn restart_member_two_corrupting(c: &mut Cluster) {
    c.members[2].kill();
    c.members[2].env = vec![(CORRUPT_PUTS.0.into(), CORRUPT_PUTS.1.into())];
    c.restart(2);
}

/// Then 20 puts, which member 2 applies too.
fn corrupt_member_two(c: &mut Cluster) {
    restart_member_two_corrupting(c);
    let first = c.members[0].endpoint();
    for i in 0..20 {
        ok(&first, &["put", &format!("k{i:02}"), &format!("v{i}")]);
    }
    let want = applied_rev(&first);
    let deadline = Instant::now() + Duration::from_secs(20);
    while applied_rev(&c.members[2].endpoint()) < want {
        assert!(
            Instant::now() < deadline,
            "member 2 never applied rev {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_initial_check_refuses_a_member_whose_data_differs_from_its_peers() {
    let mut c = Cluster::start(3, &[]);
    corrupt_member_two(&mut c);

    // Restarted without the failpoint, but with its corrupted store: refused.
    c.members[2].kill();
    c.members[2].env.clear();
    c.spawn_with(2, &["--experimental-initial-corrupt-check"]);
    let err = c
        .wait_ready(2, Duration::from_secs(30))
        .expect_err("a corrupted member must not start");
    assert!(
        err.contains("found data inconsistency with peers"),
        "member 2: {err}"
    );
    assert!(c.members[2]
        .log_text()
        .contains("found different hash values from remote peer"));

    // A sound member passes the same check (member 2, down, is skipped) and serves.
    c.members[1].kill();
    c.spawn_with(1, &["--experimental-initial-corrupt-check"]);
    c.wait_ready(1, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.members[1]
        .log_text()
        .contains("initial corruption checking passed; no corruption"));
    ok(&c.members[1].endpoint(), &["put", "after", "check"]);
}

#[test]
fn the_periodic_check_raises_corrupt_and_the_cluster_refuses_writes() {
    let mut c = Cluster::start(3, &["--experimental-corrupt-check-time", "300ms"]);
    let first = c.members[0].endpoint();
    // A sound cluster raises nothing, however many checks run.
    ok(&first, &["put", "a", "1"]);
    let checks = |c: &Cluster| -> usize {
        c.members
            .iter()
            .map(|m| {
                m.log_text()
                    .matches("finished peer corruption check")
                    .count()
            })
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while checks(&c) < 3 {
        assert!(Instant::now() < deadline, "the leader never checked");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ok(&first, &["alarm", "list"]).trim(), "");

    restart_member_two_corrupting(&mut c);
    let bad = member_id(&c.members[2].endpoint());
    // Puts are acknowledged until the leader's check finds member 2's store wrong and
    // raises CORRUPT; from then on every put is refused with etcd's error.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    let refused = loop {
        let out = ctl(&first, &["put", &format!("k{i}"), "v"]);
        if out.code != 0 {
            break out.stderr;
        }
        assert!(Instant::now() < deadline, "no put refused");
        i += 1;
    };
    assert!(refused.contains("etcdserver: corrupt cluster"), "{refused}");
    let listed = ok(&first, &["alarm", "list"]);
    // The leader is member 0 or 1 (member 2 was down when it last changed), so the
    // member named is member 2.
    let leader_is_two = ctl(
        &c.members[2].endpoint(),
        &["endpoint", "status", "-w", "json"],
    )
    .stdout
    .contains(&format!("\"leader\":{bad}"));
    if !leader_is_two {
        assert_eq!(listed.trim(), format!("memberID:{bad} alarm:CORRUPT"));
    }
    // Reads still work. With the bad member stopped, disarming lets writes in again
    // (the checks go on, and member 2, unreachable, is skipped).
    ok(&first, &["get", "k0"]);
    c.members[2].kill();
    ok(&first, &["alarm", "disarm"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ctl(&first, &["put", "after", "disarm"]).code != 0 {
        assert!(Instant::now() < deadline, "writes refused after disarm");
        std::thread::sleep(Duration::from_millis(20));
    }
}

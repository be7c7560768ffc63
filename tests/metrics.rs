//! `/metrics` against a real etcd 3.4: every metric metastore exports that etcd also has
//! comes with etcd's type, the ones dashboards need are all there, and under the same
//! load (puts, gets, deletes, txns, a lease, a refused put) the counters move on
//! metastore as their names say, the put and delete counts and the gRPC counts equal to
//! etcd's.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{require_etcd, Kind, Server};

/// Metric name -> type, and series (name with labels) -> value.
struct Scrape {
    types: BTreeMap<String, String>,
    values: BTreeMap<String, f64>,
}

fn scrape(s: &Server) -> Scrape {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("{}/metrics", s.endpoint))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut types = BTreeMap::new();
    let mut values = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split_whitespace();
            if let (Some(n), Some(t)) = (p.next(), p.next()) {
                types.insert(n.to_string(), t.to_string());
            }
        } else if !line.starts_with('#') {
            if let Some((series, v)) = line.rsplit_once(' ') {
                if let Ok(v) = v.parse() {
                    values.insert(series.to_string(), v);
                }
            }
        }
    }
    Scrape { types, values }
}

impl Scrape {
    fn get(&self, series: &str) -> f64 {
        self.values.get(series).copied().unwrap_or(0.0)
    }
}

/// What dashboards and alerts written for etcd read (issue list), all of which etcd 3.4
/// exports on a single member.
const REQUIRED: &[&str] = &[
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_server_slow_apply_total",
    "etcd_server_heartbeat_send_failures_total",
    "etcd_server_id",
    "etcd_server_version",
    "etcd_cluster_version",
    "etcd_server_quota_backend_bytes",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_disk_backend_snapshot_duration_seconds",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_mvcc_put_total",
    "etcd_mvcc_delete_total",
    "etcd_mvcc_range_total",
    "etcd_mvcc_txn_total",
    "etcd_debugging_mvcc_keys_total",
    "etcd_debugging_mvcc_watcher_total",
    "etcd_debugging_mvcc_slow_watcher_total",
    "etcd_debugging_lease_granted_total",
    "etcd_debugging_lease_revoked_total",
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
];

fn load(s: &Server) {
    let ok = |args: &[&str]| {
        let out = s.etcdctl(args, None);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        out.stdout
    };
    for i in 0..10 {
        ok(&["put", &format!("k{i}"), "v"]);
    }
    for i in 0..3 {
        ok(&["get", &format!("k{i}")]);
    }
    ok(&["del", "k0"]);
    ok(&["del", "k1"]);
    let lease = ok(&["lease", "grant", "600"]);
    let id = lease
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    ok(&["lease", "revoke", &id]);
    // refused: an empty key
    assert_ne!(s.etcdctl(&["put", "", "v"], None).code, 0);
}

const PUT_OK: &str = "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}";
const PUT_INVALID: &str = "grpc_server_handled_total{grpc_code=\"InvalidArgument\",grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}";
const PUT_STARTED: &str = "grpc_server_started_total{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}";

#[test]
fn metrics_have_etcds_names_and_types_and_move_as_etcds() {
    if !require_etcd() {
        return;
    }
    let etcd = Server::start(Kind::Etcd, &[]);
    let ms = Server::start(Kind::Metastore, &[]);
    let (e0, m0) = (scrape(&etcd), scrape(&ms));
    let mut missing = Vec::new();
    for name in REQUIRED {
        let theirs = e0
            .types
            .get(*name)
            .unwrap_or_else(|| panic!("etcd lacks {name}"));
        match m0.types.get(*name) {
            Some(ours) => assert_eq!(ours, theirs, "type of {name}"),
            None => missing.push(*name),
        }
    }
    assert!(missing.is_empty(), "missing on metastore: {missing:?}");
    // every metric of ours that etcd has too is of etcd's type
    let mut shared = 0;
    for (name, ty) in &m0.types {
        if let Some(theirs) = e0.types.get(name) {
            assert_eq!(ty, theirs, "type of {name}");
            shared += 1;
        }
    }
    let absent: Vec<&String> = e0
        .types
        .keys()
        .filter(|n| !m0.types.contains_key(*n))
        .collect();
    eprintln!(
        "metrics: {} of etcd's {} names exported with its type; not exported: {absent:?}",
        shared,
        e0.types.len()
    );

    load(&etcd);
    load(&ms);
    let (e1, m1) = (scrape(&etcd), scrape(&ms));
    let delta = |a: &Scrape, b: &Scrape, s: &str| b.get(s) - a.get(s);
    for series in [
        "etcd_mvcc_put_total",
        "etcd_mvcc_delete_total",
        "etcd_debugging_lease_granted_total",
        "etcd_debugging_lease_revoked_total",
        PUT_OK,
        PUT_INVALID,
        PUT_STARTED,
    ] {
        assert_eq!(
            delta(&m0, &m1, series),
            delta(&e0, &e1, series),
            "{series} moved otherwise than on etcd"
        );
    }
    assert_eq!(delta(&m0, &m1, "etcd_mvcc_put_total"), 10.0);
    assert_eq!(delta(&m0, &m1, PUT_OK), 10.0);
    assert_eq!(delta(&m0, &m1, PUT_INVALID), 1.0);
    assert!(delta(&m0, &m1, "etcd_mvcc_range_total") >= 3.0);
    assert!(delta(&m0, &m1, "etcd_disk_wal_fsync_duration_seconds_count") >= 10.0);
    assert_eq!(m1.get("etcd_debugging_mvcc_keys_total"), 8.0);
    assert_eq!(m1.get("etcd_server_has_leader"), 1.0);
    assert_eq!(m1.get("etcd_server_is_leader"), 1.0);
    assert!(m1.get("etcd_server_leader_changes_seen_total") >= 1.0);
    assert!(m1.get("process_resident_memory_bytes") > 0.0);
    assert!(
        m1.get("etcd_debugging_mvcc_current_revision") >= 13.0,
        "10 puts, 2 deletes and a revoke"
    );
}

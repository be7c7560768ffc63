//! `/metrics` against a real etcd 3.4: every metric metastore exports that etcd also has
//! comes with etcd's type, the ones dashboards need are all there, and under the same
//! load (puts, gets, deletes, txns, a lease, a refused put) the counters move on
//! metastore as their names say, the put and delete counts and the gRPC counts equal to
//! etcd's.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{require_etcd, Kind, Server};

/// Metric name -> type, and series (name with labels) -> value.
struct Scrape {
    types: BTreeMap<String, String>,
    values: BTreeMap<String, f64>,
}

fn scrape(s: &Server) -> Scrape {
    scrape_url(&s.endpoint)
}

fn scrape_url(endpoint: &str) -> Scrape {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("{endpoint}/metrics"))
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

/// The peer metrics etcd's rafthttp exports (types compared with a 3-member etcd).
const PEER: &[&str] = &[
    "etcd_network_peer_sent_bytes_total",
    "etcd_network_peer_received_bytes_total",
    "etcd_network_peer_round_trip_time_seconds",
];

/// Member ids in hex, by member, and the leader's index.
async fn ids(c: &Cluster) -> (Vec<String>, usize) {
    let leader = c.leader(Duration::from_secs(20)).await;
    let mut ids = Vec::new();
    for m in &c.members {
        let mut client = m.client().await;
        let st = client.status().await.expect("status");
        ids.push(format!("{:x}", st.header().expect("header").member_id()));
    }
    (ids, leader)
}

/// Put `n` keys through member 0.
async fn puts(c: &Cluster, n: usize) {
    let mut client = c.members[0].client().await;
    for i in 0..n {
        client.put(format!("m{i}"), "v", None).await.expect("put");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_metrics_move_in_a_cluster_and_extensive_times_grpc() {
    let c = Cluster::start(3, &["--metrics", "extensive"]);
    let (ids, leader) = ids(&c).await;
    puts(&c, 20).await;
    // the leader has sent appends to and heard from each follower, timing heartbeats
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let on_leader = scrape_url(&c.members[leader].endpoint());
        let followers: Vec<&String> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leader)
            .map(|(_, id)| id)
            .collect();
        let moved = followers.iter().all(|id| {
            on_leader.get(&format!(
                "etcd_network_peer_sent_bytes_total{{To=\"{id}\"}}"
            )) > 0.0
                && on_leader.get(&format!(
                    "etcd_network_peer_received_bytes_total{{From=\"{id}\"}}"
                )) > 0.0
                && on_leader.get(&format!(
                    "etcd_network_peer_round_trip_time_seconds_count{{To=\"{id}\"}}"
                )) > 0.0
        });
        let follower = (leader + 1) % 3;
        let on_follower = scrape_url(&c.members[follower].endpoint());
        let heard = on_follower.get(&format!(
            "etcd_network_peer_received_bytes_total{{From=\"{}\"}}",
            ids[leader]
        )) > 1000.0;
        if moved && heard {
            for name in PEER {
                assert!(on_leader.types.contains_key(*name), "{name}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "peer metrics did not move: {:?}",
            on_leader
                .values
                .keys()
                .filter(|k| k.starts_with("etcd_network"))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // --metrics extensive: every put through member 0 timed
    let m0 = scrape_url(&c.members[0].endpoint());
    assert_eq!(
        m0.types
            .get("grpc_server_handling_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    let timed = m0.get("grpc_server_handling_seconds_count{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}");
    assert!(timed >= 20.0, "{timed} puts timed");
    // basic (the default) has no handling-time histogram, as etcd's
    let basic = Server::start(Kind::Metastore, &[]);
    assert!(!scrape(&basic)
        .types
        .contains_key("grpc_server_handling_seconds"));
}

/// The peer metrics have etcd's types in a 3-member etcd cluster too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_metrics_have_etcds_types() {
    let Some(bin) = common::etcd_bin() else {
        return;
    };
    let etcd = Cluster::start_bin(3, &["--metrics", "extensive"], bin);
    let ms = Cluster::start(3, &["--metrics", "extensive"]);
    puts(&etcd, 5).await;
    puts(&ms, 5).await;
    // the leaders: metastore times the round trip of the leader's heartbeats
    let (le, lm) = (
        etcd.leader(Duration::from_secs(20)).await,
        ms.leader(Duration::from_secs(20)).await,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (e, m) = (
            scrape_url(&etcd.members[le].endpoint()),
            scrape_url(&ms.members[lm].endpoint()),
        );
        let both = PEER
            .iter()
            .chain(["grpc_server_handling_seconds"].iter())
            .all(|n| e.types.contains_key(*n) && m.types.contains_key(*n));
        if both {
            for n in PEER.iter().chain(["grpc_server_handling_seconds"].iter()) {
                assert_eq!(e.types[*n], m.types[*n], "type of {n}");
            }
            let ours: Vec<&String> = m
                .types
                .keys()
                .filter(|k| k.starts_with("etcd_network"))
                .collect();
            let theirs: Vec<&String> = e
                .types
                .keys()
                .filter(|k| k.starts_with("etcd_network"))
                .collect();
            eprintln!("network metrics: etcd {theirs:?}; metastore {ours:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "peer metrics missing: etcd {:?}, metastore {:?}",
            e.types
                .keys()
                .filter(|k| k.starts_with("etcd_network"))
                .collect::<Vec<_>>(),
            m.types
                .keys()
                .filter(|k| k.starts_with("etcd_network"))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

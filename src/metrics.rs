//! etcd's Prometheus metrics (the `prometheus` crate): the names, types, help texts and
//! buckets etcd 3.4 exports, so its dashboards and alerts work unchanged.
//!
//! Two kinds: counters and histograms that the layers move as things happen (a put, a
//! failed proposal, an fsync), held here as process-wide statics as etcd's are; and
//! gauges of the member's state (leader, sizes, revisions), which `/metrics` sets from the
//! member when it is scraped ([`gauges`]). A leaf: imports nothing of the crate, so every
//! layer may count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The registry `/metrics` exports (with the process collector on Linux).
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let r = Registry::new();
    #[cfg(target_os = "linux")]
    {
        let _ = r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
    }
    r
});

fn counter(name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("a valid counter");
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn gauge(name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("a valid gauge");
    REGISTRY
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

fn gauge_vec(name: &str, help: &str, label: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &[label]).expect("a valid gauge");
    REGISTRY
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter");
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn histogram(name: &str, help: &str, start: f64, count: usize) -> Histogram {
    let opts = HistogramOpts::new(name, help)
        .buckets(exponential_buckets(start, 2.0, count).expect("valid buckets"));
    let h = Histogram::with_opts(opts).expect("a valid histogram");
    REGISTRY
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
}

fn histogram_vec(name: &str, help: &str, buckets: Vec<f64>, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    let h = HistogramVec::new(opts, labels).expect("a valid histogram");
    REGISTRY
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
}

macro_rules! counters {
    ($($id:ident = $name:literal, $help:literal;)*) => {$(
        pub static $id: LazyLock<IntCounter> = LazyLock::new(|| counter($name, $help));
    )*};
}

macro_rules! gauges {
    ($($id:ident = $name:literal, $help:literal;)*) => {$(
        pub static $id: LazyLock<IntGauge> = LazyLock::new(|| gauge($name, $help));
    )*};
}

counters! {
    MVCC_PUT = "etcd_mvcc_put_total", "Total number of puts seen by this member.";
    MVCC_DELETE = "etcd_mvcc_delete_total", "Total number of deletes seen by this member.";
    MVCC_RANGE = "etcd_mvcc_range_total", "Total number of ranges seen by this member.";
    MVCC_TXN = "etcd_mvcc_txn_total", "Total number of txns seen by this member.";
    LEASE_GRANTED = "etcd_debugging_lease_granted_total", "The total number of granted leases.";
    LEASE_REVOKED = "etcd_debugging_lease_revoked_total", "The total number of revoked leases.";
    LEASE_RENEWED = "etcd_debugging_lease_renewed_total", "The number of renewed leases seen by the leader.";
    PROPOSALS_FAILED = "etcd_server_proposals_failed_total", "The total number of failed proposals seen.";
    LEADER_CHANGES = "etcd_server_leader_changes_seen_total", "The number of leader changes seen.";
    SLOW_APPLY = "etcd_server_slow_apply_total", "The total number of slow apply requests (likely overloaded from slow disk).";
    HEARTBEAT_SEND_FAILURES = "etcd_server_heartbeat_send_failures_total", "The total number of leader heartbeat send failures (likely overloaded from slow disk).";
    READ_INDEXES_FAILED = "etcd_server_read_indexes_failed_total", "The total number of failed read indexes seen.";
}

gauges! {
    HAS_LEADER = "etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.";
    IS_LEADER = "etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.";
    IS_LEARNER = "etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.";
    PROPOSALS_COMMITTED = "etcd_server_proposals_committed_total", "The total number of consensus proposals committed.";
    PROPOSALS_APPLIED = "etcd_server_proposals_applied_total", "The total number of consensus proposals applied.";
    PROPOSALS_PENDING = "etcd_server_proposals_pending", "The current number of pending proposals to commit.";
    QUOTA_BACKEND_BYTES = "etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.";
    DB_TOTAL_SIZE = "etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.";
    DB_TOTAL_SIZE_IN_USE = "etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.";
    DEBUGGING_DB_TOTAL_SIZE = "etcd_debugging_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.";
    KEYS_TOTAL = "etcd_debugging_mvcc_keys_total", "Total number of keys.";
    WATCHER_TOTAL = "etcd_debugging_mvcc_watcher_total", "Total number of watchers.";
    SLOW_WATCHER_TOTAL = "etcd_debugging_mvcc_slow_watcher_total", "Total number of unsynced slow watchers.";
    WATCH_STREAM_TOTAL = "etcd_debugging_mvcc_watch_stream_total", "Total number of watch streams.";
    CURRENT_REVISION = "etcd_debugging_mvcc_current_revision", "The current revision of store.";
    COMPACT_REVISION = "etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.";
    AUTH_REVISION = "etcd_debugging_auth_revision", "The current revision of auth store.";
    SERVER_TERM = "etcd_server_term", "The current raft term.";
}

/// `server_id` label: the member id in hex.
pub static SERVER_ID: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        "server_id",
    )
});

pub static SERVER_VERSION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        "server_version",
    )
});

pub static CLUSTER_VERSION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "etcd_cluster_version",
        "Which version is running. 1 for 'cluster_version' label with current cluster version",
        "cluster_version",
    )
});

/// One fsync of the raft log and state (one per group-committed batch): etcd counts its
/// WAL fsync and its backend commit; here they are the same sync.
pub static WAL_FSYNC_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
        0.001,
        14,
    )
});

pub static BACKEND_COMMIT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
        0.001,
        14,
    )
});

pub static BACKEND_SNAPSHOT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "etcd_disk_backend_snapshot_duration_seconds",
        "The latency distribution of backend snapshots.",
        0.01,
        17,
    )
});

/// `grpc_server_started_total` and `grpc_server_handled_total` (go-grpc-prometheus), by
/// service, method and type, and for handled by code.
pub static GRPC_STARTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "grpc_server_started_total",
        "Total number of RPCs started on the server.",
        &["grpc_method", "grpc_service", "grpc_type"],
    )
});

pub static GRPC_HANDLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "grpc_server_handled_total",
        "Total number of RPCs completed on the server, regardless of success or failure.",
        &["grpc_code", "grpc_method", "grpc_service", "grpc_type"],
    )
});

/// Bytes of raft messages (appends, votes, snapshot chunks) sent to each peer, by its id
/// in hex, as etcd's rafthttp counts them.
pub static PEER_SENT_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "etcd_network_peer_sent_bytes_total",
        "The total number of bytes sent to peers.",
        &["To"],
    )
});

pub static PEER_RECEIVED_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "etcd_network_peer_received_bytes_total",
        "The total number of bytes received from peers.",
        &["From"],
    )
});

pub static PEER_SENT_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "etcd_network_peer_sent_failures_total",
        "The total number of send failures from peers.",
        &["To"],
    )
});

pub static PEER_RECEIVED_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "etcd_network_peer_received_failures_total",
        "The total number of receive failures from peers.",
        &["From"],
    )
});

/// The round trip of each heartbeat to a peer (etcd times a probe every 5 s; here every
/// heartbeat is one).
pub static PEER_ROUND_TRIP_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "etcd_network_peer_round_trip_time_seconds",
        "Round-Trip-Time histogram between peers",
        exponential_buckets(0.0001, 2.0, 16).expect("valid buckets"),
        &["To"],
    )
});

pub static SNAPSHOT_SEND_SUCCESS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "etcd_network_snapshot_send_success",
        "Total number of successful snapshot sends",
        &["To"],
    )
});

pub static SNAPSHOT_SEND_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "etcd_network_snapshot_send_failures",
        "Total number of snapshot send failures",
        &["To"],
    )
});

pub static SNAPSHOT_RECEIVE_SUCCESS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "etcd_network_snapshot_receive_success",
        "Total number of successful snapshot receives",
        &["From"],
    )
});

pub static SNAPSHOT_RECEIVE_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "etcd_network_snapshot_receive_failures",
        "Total number of snapshot receive failures",
        &["From"],
    )
});

/// One snapshot chunk sent to (`sent`) or received from a peer (`label`, its id in hex):
/// the last chunk's success counts a snapshot, any failure counts one failure.
pub fn snapshot_chunk(sent: bool, label: &str, last: bool, ok: bool) {
    let (success, failures) = if sent {
        (&SNAPSHOT_SEND_SUCCESS, &SNAPSHOT_SEND_FAILURES)
    } else {
        (&SNAPSHOT_RECEIVE_SUCCESS, &SNAPSHOT_RECEIVE_FAILURES)
    };
    match (ok, last) {
        (true, true) => success.with_label_values(&[label]).inc(),
        (true, false) => {}
        (false, _) => failures.with_label_values(&[label]).inc(),
    }
}

/// `--metrics extensive`: go-grpc-prometheus' handling-time histogram, exported only then.
static EXTENSIVE: AtomicBool = AtomicBool::new(false);

pub static GRPC_HANDLING_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
        // prometheus.DefBuckets
        vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        &["grpc_method", "grpc_service", "grpc_type"],
    )
});

/// `--metrics`: `extensive` adds the gRPC handling-time histogram to `basic`.
pub fn set_level(level: &str) {
    let extensive = level == "extensive";
    EXTENSIVE.store(extensive, Ordering::Relaxed);
    if extensive {
        LazyLock::force(&GRPC_HANDLING_SECONDS);
    }
}

/// Whether `--metrics extensive` is on.
pub fn extensive() -> bool {
    EXTENSIVE.load(Ordering::Relaxed)
}

/// Make every metric exist, so that a scrape lists each one from the start (etcd's are
/// registered at init).
pub fn init() {
    for c in [
        &MVCC_PUT,
        &MVCC_DELETE,
        &MVCC_RANGE,
        &MVCC_TXN,
        &LEASE_GRANTED,
        &LEASE_REVOKED,
        &LEASE_RENEWED,
        &PROPOSALS_FAILED,
        &LEADER_CHANGES,
        &SLOW_APPLY,
        &HEARTBEAT_SEND_FAILURES,
        &READ_INDEXES_FAILED,
    ] {
        LazyLock::force(c);
    }
    for g in [
        &HAS_LEADER,
        &IS_LEADER,
        &IS_LEARNER,
        &PROPOSALS_COMMITTED,
        &PROPOSALS_APPLIED,
        &PROPOSALS_PENDING,
        &QUOTA_BACKEND_BYTES,
        &DB_TOTAL_SIZE,
        &DB_TOTAL_SIZE_IN_USE,
        &DEBUGGING_DB_TOTAL_SIZE,
        &KEYS_TOTAL,
        &WATCHER_TOTAL,
        &SLOW_WATCHER_TOTAL,
        &WATCH_STREAM_TOTAL,
        &CURRENT_REVISION,
        &COMPACT_REVISION,
        &AUTH_REVISION,
        &SERVER_TERM,
    ] {
        LazyLock::force(g);
    }
    for v in [&SERVER_ID, &SERVER_VERSION, &CLUSTER_VERSION] {
        LazyLock::force(v);
    }
    for h in [
        &WAL_FSYNC_SECONDS,
        &BACKEND_COMMIT_SECONDS,
        &BACKEND_SNAPSHOT_SECONDS,
    ] {
        LazyLock::force(h);
    }
    LazyLock::force(&GRPC_STARTED);
    LazyLock::force(&GRPC_HANDLED);
    for v in [
        &PEER_SENT_BYTES,
        &PEER_RECEIVED_BYTES,
        &PEER_SENT_FAILURES,
        &PEER_RECEIVED_FAILURES,
        &SNAPSHOT_SEND_SUCCESS,
        &SNAPSHOT_SEND_FAILURES,
        &SNAPSHOT_RECEIVE_SUCCESS,
        &SNAPSHOT_RECEIVE_FAILURES,
    ] {
        LazyLock::force(v);
    }
    LazyLock::force(&PEER_ROUND_TRIP_SECONDS);
}

/// Every metric in Prometheus' text format.
pub fn render() -> String {
    init();
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&REGISTRY.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_metric_is_listed_with_etcds_type() {
        super::MVCC_PUT.inc();
        let text = super::render();
        for (name, ty) in [
            ("etcd_mvcc_put_total", "counter"),
            ("etcd_server_has_leader", "gauge"),
            ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {ty}")),
                "{name} missing"
            );
        }
    }
}

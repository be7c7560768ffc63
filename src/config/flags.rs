//! THE table of etcd's flags: every flag that `etcd --help` lists in 3.4, 3.5 or 3.6, one
//! row each, with what it does here. Every row is accepted as `--flag`, as `ETCD_FLAG` and
//! as a `--config-file` key (the flag's name, or etcd's own YAML key where it differs).
//!
//! - [`Here::Serves`]: the flag does what etcd's does (the text says how).
//! - [`Here::NoEffect`]: the flag means nothing here; a member started with it logs that
//!   once, with the reason (docs/operations.md lists them).
//! - [`Here::Refused`]: a value other than the default would silently mislead (a discovery
//!   service we would not ask, a proxy we would not be): the member refuses to start,
//!   saying why.
//!
//! Flags with a typed field in [`super::Config`] keep it; the others are read with
//! [`super::Config::flag`] and its typed siblings.

/// How a flag's value is written (Go's flag types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Uint,
    Int,
    Float,
    /// A Go duration (`10m`, `500ms`); in YAML a bare integer is nanoseconds.
    Dur,
    Str,
    /// Comma-separated; a YAML sequence is joined with commas.
    List,
}

/// What a flag does here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Here {
    Serves(&'static str),
    NoEffect(&'static str),
    Refused(&'static str),
}

/// One etcd flag.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub name: &'static str,
    pub ty: Ty,
    /// etcd's default, as flag text ("" = none).
    pub default: &'static str,
    /// etcd's YAML key where it is not the flag's name (dotted for nested keys).
    pub yaml: &'static str,
    pub here: Here,
    /// A value for the table test; "" takes the type's sample.
    pub sample: &'static str,
}

impl Flag {
    /// `ETCD_` and the name in capitals, `-` as `_` (etcd's flags.SetFlagsFromEnv).
    pub fn env(&self) -> String {
        format!("ETCD_{}", self.name.to_uppercase().replace('-', "_"))
    }

    /// A value the table test starts a member with (for refused flags: one it refuses).
    pub fn sample(&self) -> &'static str {
        match (self.sample, self.ty) {
            ("", Ty::Bool) => "true",
            ("", Ty::Uint | Ty::Int) => "3",
            ("", Ty::Float) => "0.5",
            ("", Ty::Dur) => "3s",
            ("", Ty::Str | Ty::List) => "sample",
            (s, _) => s,
        }
    }
}

const fn row(name: &'static str, ty: Ty, default: &'static str, here: Here) -> Flag {
    Flag {
        name,
        ty,
        default,
        yaml: "",
        here,
        sample: "",
    }
}

const fn yaml(mut f: Flag, key: &'static str) -> Flag {
    f.yaml = key;
    f
}

const fn sample(mut f: Flag, value: &'static str) -> Flag {
    f.sample = value;
    f
}

use Here::{NoEffect, Refused, Serves};
use Ty::{Bool, Dur, Float, Int, List, Str, Uint};

const BBOLT: &str = "the store is sled: there is no bbolt database to tune";
const V2: &str = "the v2 API and its store are not served (etcd 3.6 removed them)";
const V2_PROXY: &str = "only modifies --proxy, which is refused";
const DISCOVERY: &str =
    "only modifies --discovery, --discovery-srv or --discovery-endpoints, which are refused";
const PEER_TLS: &str = "peers' client certificates are checked against the CA (and CN or host name when given), never against their address: the SAN check is always skipped";
const DOWNGRADE_CHECK: &str = "a downgrade job ends only by CANCEL: no member can be replaced in place by an older etcd, so there is nothing to check for";
const COMPACT_HASH: &str =
    "the compaction hash check is not built; the initial and periodic corruption checks are";
const TRACING: &str = "no OpenTelemetry exporter is built in";
const LOG_ROTATION: &str =
    "log files are not rotated by metastore; rotate them with logrotate's copytruncate";

/// Every etcd flag of 3.4, 3.5 and 3.6 (and 3.4's deprecated `--log-output`).
pub const ETCD_FLAGS: &[Flag] = &[
    // --- member
    sample(row("name", Str, "default", Serves("member name; with --initial-cluster-token it makes the member id")), "default"),
    row("data-dir", Str, "${name}.etcd", Serves("sled database in member/db, raft snapshots in member/snap")),
    sample(row("wal-dir", Str, "", NoEffect("the raft log is kept in the data directory's database; there are no WAL files")), "/tmp/metastore-unused-wal"),
    sample(row("snapshot-count", Uint, "100000", Serves("applied requests between raft snapshots")), "5000"),
    sample(row("heartbeat-interval", Uint, "100", Serves("openraft's heartbeat, in ms")), "100"),
    sample(row("election-timeout", Uint, "1000", Serves("openraft's election timeout, in ms (at least 5x the heartbeat)")), "1000"),
    row("initial-election-tick-advance", Bool, "true", NoEffect("openraft runs its own election timer from start; there are no ticks to fast-forward")),
    sample(row("listen-peer-urls", List, "http://localhost:2380", Serves("the member's peer URLs")), "http://127.0.0.1:23800"),
    sample(row("listen-client-urls", List, "http://localhost:2379", Serves("client listeners: http, https (both on one port), unix, unixs")), "http://127.0.0.1:23790"),
    row("max-snapshots", Uint, "5", NoEffect("metastore keeps its newest raft snapshot file only (each is a whole copy of the state)")),
    row("max-wals", Uint, "5", NoEffect("there are no WAL files: the raft log is in sled and purged after snapshots")),
    sample(row("quota-backend-bytes", Int, "0", Serves("backend size quota (0 = 2 GiB)")), "8589934592"),
    row("backend-batch-interval", Dur, "", NoEffect(BBOLT)),
    row("backend-batch-limit", Uint, "0", NoEffect(BBOLT)),
    sample(row("max-txn-ops", Uint, "128", Serves("operations allowed in one transaction")), "256"),
    sample(row("max-request-bytes", Uint, "1572864", Serves("largest client request")), "2097152"),
    sample(row("max-concurrent-streams", Uint, "4294967295", Serves("HTTP/2 streams per client connection")), "1000"),
    row("grpc-keepalive-min-time", Dur, "5s", NoEffect("the HTTP/2 server never refuses a client's pings, so there is no minimum to enforce")),
    row("grpc-keepalive-interval", Dur, "2h", Serves("an idle client connection is pinged after this long (0: never)")),
    row("grpc-keepalive-timeout", Dur, "20s", Serves("a connection whose ping is not answered within this is closed (0: never)")),
    // --- clustering
    sample(row("initial-advertise-peer-urls", List, "http://localhost:2380", Serves("peer URLs advertised; they name the member")), "http://127.0.0.1:23800"),
    sample(row("initial-cluster", Str, "default=http://localhost:2380", Serves("bootstrap membership")), "default=http://localhost:2380"),
    sample(row("initial-cluster-state", Str, "new", Serves("new; existing joins after member add")), "new"),
    row("initial-cluster-token", Str, "etcd-cluster", Serves("part of the member and cluster ids")),
    sample(row("advertise-client-urls", List, "http://localhost:2379", Serves("client URLs shown in member list")), "http://127.0.0.1:23790"),
    sample(row("discovery", Str, "", Refused("bootstrapping from a discovery service is not supported; list the members in --initial-cluster")), "https://discovery.etcd.io/abc"),
    sample(row("discovery-fallback", Str, "proxy", NoEffect(DISCOVERY)), "exit"),
    sample(row("discovery-proxy", Str, "", NoEffect(DISCOVERY)), "http://127.0.0.1:1"),
    sample(row("discovery-srv", Str, "", Refused("bootstrapping from DNS SRV records is not supported; list the members in --initial-cluster")), "example.com"),
    row("discovery-srv-name", Str, "", NoEffect(DISCOVERY)),
    sample(yaml(row("discovery-endpoints", List, "", Refused("bootstrapping from a v3 discovery service is not supported; list the members in --initial-cluster")), "discovery-config.endpoints"), "http://127.0.0.1:1"),
    yaml(row("discovery-token", Str, "", NoEffect(DISCOVERY)), "discovery-config.token"),
    yaml(row("discovery-dial-timeout", Dur, "2s", NoEffect(DISCOVERY)), "discovery-config.dial-timeout"),
    yaml(row("discovery-request-timeout", Dur, "5s", NoEffect(DISCOVERY)), "discovery-config.request-timeout"),
    yaml(row("discovery-keepalive-time", Dur, "2s", NoEffect(DISCOVERY)), "discovery-config.keepalive-time"),
    yaml(row("discovery-keepalive-timeout", Dur, "6s", NoEffect(DISCOVERY)), "discovery-config.keepalive-timeout"),
    yaml(row("discovery-insecure-transport", Bool, "true", NoEffect(DISCOVERY)), "discovery-config.secure.insecure-transport"),
    yaml(row("discovery-insecure-skip-tls-verify", Bool, "false", NoEffect(DISCOVERY)), "discovery-config.secure.insecure-skip-tls-verify"),
    yaml(row("discovery-cert", Str, "", NoEffect(DISCOVERY)), "discovery-config.secure.cert"),
    yaml(row("discovery-key", Str, "", NoEffect(DISCOVERY)), "discovery-config.secure.key"),
    yaml(row("discovery-cacert", Str, "", NoEffect(DISCOVERY)), "discovery-config.secure.cacert"),
    yaml(row("discovery-user", Str, "", NoEffect(DISCOVERY)), "discovery-config.auth.username"),
    yaml(row("discovery-password", Str, "", NoEffect(DISCOVERY)), "discovery-config.auth.password"),
    row("strict-reconfig-check", Bool, "true", Serves("refuse a member add or remove that would leave fewer started or connected voters than a quorum")),
    row("pre-vote", Bool, "true", NoEffect("openraft 0.9 has no pre-vote phase")),
    sample(row("auto-compaction-retention", Str, "0", Serves("periodic: hours or a duration; revision: revisions to keep")), "1h"),
    sample(row("auto-compaction-mode", Str, "periodic", Serves("periodic or revision")), "periodic"),
    row("enable-v2", Bool, "false", NoEffect(V2)),
    row("experimental-enable-v2v3", Str, "", NoEffect(V2)),
    sample(row("v2-deprecation", Str, "write-only", NoEffect(V2)), "write-only"),
    // --- security: the client port
    sample(yaml(row("cert-file", Str, "", Serves("client port certificate")), "client-transport-security.cert-file"), "/nonexistent/server.pem"),
    sample(yaml(row("key-file", Str, "", Serves("client port key")), "client-transport-security.key-file"), "/nonexistent/server-key.pem"),
    yaml(row("client-cert-auth", Bool, "false", Serves("client certificates required and verified")), "client-transport-security.client-cert-auth"),
    sample(row("client-crl-file", Str, "", Serves("client certificates in this CRL are refused")), "/nonexistent/crl.pem"),
    sample(yaml(row("client-cert-allowed-hostname", Str, "", Refused("client certificate host name checks are not enforced by this version of metastore")), "client-transport-security.allowed-hostname"), "client.example.com"),
    sample(yaml(row("trusted-ca-file", Str, "", Serves("CA that client certificates must chain to")), "client-transport-security.trusted-ca-file"), "/nonexistent/ca.pem"),
    yaml(row("auto-tls", Bool, "false", Serves("generated certificate for https client URLs")), "client-transport-security.auto-tls"),
    sample(yaml(row("client-cert-file", Str, "", NoEffect("etcd presents it when its own gRPC gateway dials the member; metastore's gateway calls the services in-process")), "client-transport-security.client-cert-file"), "/nonexistent/client.pem"),
    sample(yaml(row("client-key-file", Str, "", NoEffect("etcd presents it when its own gRPC gateway dials the member; metastore's gateway calls the services in-process")), "client-transport-security.client-key-file"), "/nonexistent/client-key.pem"),
    sample(row("self-signed-cert-validity", Uint, "1", Serves("years the --auto-tls certificate is valid")), "2"),
    sample(row("cipher-suites", List, "", Serves("TLS 1.2 suites allowed (etcd's Go names)")), "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    sample(row("tls-min-version", Str, "TLS1.2", Serves("TLS1.2 or TLS1.3")), "TLS1.2"),
    sample(row("tls-max-version", Str, "", Serves("TLS1.2 or TLS1.3 (empty: the newest)")), "TLS1.3"),
    sample(row("cors", List, "*", Serves("origins allowed by the CORS headers of plain-HTTP answers (gateway, /health, ...)")), "http://example.com"),
    sample(row("host-whitelist", List, "*", Serves("plain-HTTP requests naming another Host get etcd's 421 (gRPC and TLS are not checked)")), "localhost,127.0.0.1"),
    // --- security: the peer port
    sample(yaml(row("peer-cert-file", Str, "", Serves("the peer port's certificate, also presented when dialling peers")), "peer-transport-security.cert-file"), "/nonexistent/peer.pem"),
    sample(yaml(row("peer-key-file", Str, "", Serves("the peer certificate's key")), "peer-transport-security.key-file"), "/nonexistent/peer-key.pem"),
    yaml(row("peer-client-cert-auth", Bool, "false", Serves("peers must present a certificate of --peer-trusted-ca-file")), "peer-transport-security.client-cert-auth"),
    sample(yaml(row("peer-trusted-ca-file", Str, "", Serves("the CA that peers' certificates chain to")), "peer-transport-security.trusted-ca-file"), "/nonexistent/ca.pem"),
    yaml(row("peer-auto-tls", Bool, "false", Serves("generates <data-dir>/fixtures/peer/{cert,key}.pem once and reuses it; members do not verify auto-TLS peers, as etcd's")), "peer-transport-security.auto-tls"),
    yaml(row("peer-cert-allowed-cn", Str, "", Serves("only a peer whose certificate has this common name is let in")), "peer-transport-security.allowed-cn"),
    yaml(row("peer-cert-allowed-hostname", Str, "", Serves("only a peer whose certificate is valid for this host name is let in")), "peer-transport-security.allowed-hostname"),
    sample(row("peer-crl-file", Str, "", Serves("peer certificates revoked by this CRL are refused")), "/nonexistent/crl.pem"),
    sample(yaml(row("peer-client-cert-file", Str, "", Serves("the certificate presented when dialling peers (default: --peer-cert-file)")), "peer-transport-security.client-cert-file"), "/nonexistent/peer-client.pem"),
    sample(yaml(row("peer-client-key-file", Str, "", Serves("its key (default: --peer-key-file)")), "peer-transport-security.client-key-file"), "/nonexistent/peer-client-key.pem"),
    yaml(row("peer-skip-client-san-verification", Bool, "false", NoEffect(PEER_TLS)), "peer-transport-security.skip-client-san-verification"),
    row("experimental-peer-skip-client-san-verification", Bool, "false", NoEffect(PEER_TLS)),
    // --- auth
    sample(row("auth-token", Str, "simple", Serves("simple tokens, or jwt with etcd's options pub-key, priv-key, sign-method (RS256-512, PS256-512, ES256-512, EdDSA, HS256-512) and ttl")), "simple"),
    sample(row("bcrypt-cost", Uint, "10", Serves("bcrypt cost of the password hashes (4 to 31, else 10)")), "4"),
    sample(row("auth-token-ttl", Uint, "300", Serves("seconds a simple token lives without use")), "600"),
    // --- profiling and monitoring
    row("enable-pprof", Bool, "false", NoEffect("Go's runtime profiler does not exist in a Rust binary; /debug/pprof is not served")),
    sample(row("metrics", Str, "basic", Serves("extensive adds the gRPC handling-time histogram (grpc_server_handling_seconds)")), "extensive"),
    sample(row("listen-metrics-urls", List, "", Serves("extra listeners of /metrics, /health, /livez and /readyz")), "http://127.0.0.1:23810"),
    sample(row("listen-client-http-urls", List, "", Serves("HTTP-only client listeners (the client URLs then serve gRPC only)")), "http://127.0.0.1:23820"),
    // --- logging
    sample(row("logger", Str, "zap", Serves("zap: JSON lines; capnslog: etcd 3.4's text lines")), "zap"),
    sample(row("log-outputs", List, "default", Serves("stderr (default), stdout or file paths")), "stderr"),
    sample(row("log-output", List, "default", Serves("etcd 3.4's deprecated name of --log-outputs")), "stderr"),
    sample(row("log-level", Str, "info", Serves("debug, info, warn, error, panic or fatal")), "info"),
    sample(row("log-format", Str, "json", Serves("zap's encoding: json or console")), "json"),
    row("enable-log-rotation", Bool, "false", NoEffect(LOG_ROTATION)),
    sample(row("log-rotation-config-json", Str, r#"{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}"#, NoEffect(LOG_ROTATION)), r#"{"maxsize": 10}"#),
    sample(row("log-package-levels", Str, "", NoEffect("capnslog's per-package levels: --log-level applies to every package")), "etcdserver=DEBUG"),
    row("debug", Bool, "false", Serves("as --log-level debug")),
    // --- v2 proxy (etcd 3.4)
    sample(row("proxy", Str, "off", Refused("the v2 proxy is not supported: metastore always runs a member")), "on"),
    row("proxy-failure-wait", Uint, "5000", NoEffect(V2_PROXY)),
    row("proxy-refresh-interval", Uint, "30000", NoEffect(V2_PROXY)),
    row("proxy-dial-timeout", Uint, "1000", NoEffect(V2_PROXY)),
    row("proxy-write-timeout", Uint, "5000", NoEffect(V2_PROXY)),
    row("proxy-read-timeout", Uint, "0", NoEffect(V2_PROXY)),
    // --- experimental (3.4 and 3.5 names) and their 3.6 names
    row("experimental-initial-corrupt-check", Bool, "false", Serves("before serving, compare HashKV with the peers; a mismatch stops the member: found data inconsistency with peers")),
    row("experimental-corrupt-check-time", Dur, "0s", Serves("old name of --corrupt-check-time")),
    row("corrupt-check-time", Dur, "0s", Serves("how often the leader compares HashKV with its followers and raises CORRUPT on a mismatch")),
    row("experimental-compact-hash-check-enabled", Bool, "false", NoEffect(COMPACT_HASH)),
    row("experimental-compact-hash-check-time", Dur, "1m", NoEffect(COMPACT_HASH)),
    row("compact-hash-check-time", Dur, "1m", NoEffect(COMPACT_HASH)),
    sample(row("experimental-compaction-batch-limit", Uint, "1000", Serves("revisions deleted per compaction batch")), "500"),
    sample(row("compaction-batch-limit", Uint, "1000", Serves("revisions deleted per compaction batch")), "500"),
    sample(row("experimental-compaction-sleep-interval", Dur, "10ms", Serves("pause between two compaction batches")), "5ms"),
    sample(row("compaction-sleep-interval", Dur, "10ms", Serves("pause between two compaction batches")), "5ms"),
    sample(row("experimental-backend-bbolt-freelist-type", Str, "map", NoEffect(BBOLT)), "array"),
    sample(row("backend-bbolt-freelist-type", Str, "map", NoEffect(BBOLT)), "array"),
    row("experimental-bootstrap-defrag-threshold-megabytes", Uint, "0", NoEffect(BBOLT)),
    row("bootstrap-defrag-threshold-megabytes", Uint, "0", NoEffect(BBOLT)),
    row("experimental-txn-mode-write-with-shared-buffer", Bool, "true", NoEffect(BBOLT)),
    row("experimental-enable-distributed-tracing", Bool, "false", NoEffect(TRACING)),
    row("enable-distributed-tracing", Bool, "false", NoEffect(TRACING)),
    sample(row("experimental-distributed-tracing-address", Str, "localhost:4317", NoEffect(TRACING)), "127.0.0.1:4317"),
    sample(row("distributed-tracing-address", Str, "localhost:4317", NoEffect(TRACING)), "127.0.0.1:4317"),
    row("experimental-distributed-tracing-instance-id", Str, "", NoEffect(TRACING)),
    row("distributed-tracing-instance-id", Str, "", NoEffect(TRACING)),
    row("experimental-distributed-tracing-sampling-rate", Int, "0", NoEffect(TRACING)),
    row("distributed-tracing-sampling-rate", Int, "0", NoEffect(TRACING)),
    row("experimental-distributed-tracing-service-name", Str, "etcd", NoEffect(TRACING)),
    row("distributed-tracing-service-name", Str, "etcd", NoEffect(TRACING)),
    row("experimental-downgrade-check-time", Dur, "5s", NoEffect(DOWNGRADE_CHECK)),
    row("downgrade-check-time", Dur, "5s", NoEffect(DOWNGRADE_CHECK)),
    row("next-cluster-version-compatible", Bool, "false", NoEffect(DOWNGRADE_CHECK)),
    row("experimental-enable-lease-checkpoint", Bool, "false", NoEffect("lease remaining TTLs are not checkpointed: a new leader (or a restart) renews every lease to its full TTL, as etcd does without checkpoints")),
    row("experimental-enable-lease-checkpoint-persist", Bool, "false", NoEffect("lease remaining TTLs are not checkpointed: a new leader (or a restart) renews every lease to its full TTL, as etcd does without checkpoints")),
    row("experimental-memory-mlock", Bool, "false", NoEffect("the process's memory is not locked")),
    row("memory-mlock", Bool, "false", NoEffect("the process's memory is not locked")),
    sample(yaml(row("experimental-snapshot-catchup-entries", Uint, "5000", Serves("raft log entries kept after a snapshot for slow followers")), "experimental-snapshot-catch-up-entries"), "10000"),
    sample(row("snapshot-catchup-entries", Uint, "5000", Serves("raft log entries kept after a snapshot for slow followers")), "10000"),
    row("experimental-stop-grpc-service-on-defrag", Bool, "false", NoEffect("defragmentation does not stop serving, so there is no health change to announce")),
    sample(row("experimental-warning-apply-duration", Dur, "100ms", NoEffect("no slow-apply warnings are logged")), "200ms"),
    sample(row("warning-apply-duration", Dur, "100ms", NoEffect("no slow-apply warnings are logged")), "200ms"),
    sample(row("experimental-warning-unary-request-duration", Dur, "300ms", NoEffect("no slow-request warnings are logged")), "500ms"),
    sample(row("warning-unary-request-duration", Dur, "300ms", NoEffect("no slow-request warnings are logged")), "500ms"),
    sample(row("experimental-watch-progress-notify-interval", Dur, "10m", Serves("period of watch progress notifications")), "5m"),
    sample(row("watch-progress-notify-interval", Dur, "10m", Serves("period of watch progress notifications")), "5m"),
    // --- unsafe, and the rest of 3.5 and 3.6
    row("force-new-cluster", Bool, "false", Serves("restart the member as the only voter of its cluster, keeping its data")),
    row("unsafe-no-fsync", Bool, "false", Serves("no fdatasync of the data file: a write is acknowledged once sled's sync_file_range of it is done, which a crash of the process or the kernel does not lose and a power loss can")),
    row("enable-grpc-gateway", Bool, "true", Serves("serve the JSON gateway (POST /v3/...) on the client port")),
    row("max-learners", Uint, "1", Serves("most learners a cluster may have (member add --learner beyond it is refused)")),
    row("raft-read-timeout", Dur, "5s", NoEffect("peers are reached by openraft's gRPC network, not rafthttp's connections")),
    row("raft-write-timeout", Dur, "5s", NoEffect("peers are reached by openraft's gRPC network, not rafthttp's connections")),
    yaml(row("socket-reuse-address", Bool, "false", NoEffect("SO_REUSEADDR is always set on listeners")), "socket-options.reuse-address"),
    yaml(row("socket-reuse-port", Bool, "false", NoEffect("SO_REUSEPORT is not set: one process per port")), "socket-options.reuse-port"),
    sample(row("feature-gates", Str, "", Serves("InitialCorruptCheck=true is --experimental-initial-corrupt-check; etcd 3.6's other gates switch etcd internals that have no counterpart here")), "StopGRPCServiceOnDefrag=true"),
    sample(row("config-file", Str, "", Serves("etcd's YAML; flags and variables are then ignored")), "/dev/null"),
];

/// The row of `name`.
pub fn find(name: &str) -> Option<&'static Flag> {
    ETCD_FLAGS.iter().find(|f| f.name == name)
}

/// Whether `value` is a valid `ty`, as Go's flag package reads it.
pub fn check(ty: Ty, value: &str) -> Result<(), String> {
    let ok = match ty {
        Bool => parse_bool(value).is_some(),
        Uint => value.parse::<u64>().is_ok(),
        Int => value.parse::<i64>().is_ok(),
        Float => value.parse::<f64>().is_ok(),
        Dur => value.is_empty() || super::parse_duration(value).is_some(),
        Str | List => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value {value:?}"))
    }
}

/// Go's strconv.ParseBool.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Error};
    use super::*;

    /// Every flag `etcd --help` lists in 3.4 (3.4.23 and the release-3.4 branch), 3.5
    /// and 3.6 (the release branches' server/etcdmain/help.go).
    const ETCD_HELP: &str = "advertise-client-urls auth-token auth-token-ttl auto-compaction-mode \
        auto-compaction-retention auto-tls backend-batch-interval backend-batch-limit \
        backend-bbolt-freelist-type bcrypt-cost bootstrap-defrag-threshold-megabytes cert-file \
        cipher-suites client-cert-allowed-hostname client-cert-auth client-cert-file \
        client-crl-file client-key-file compact-hash-check-time compaction-batch-limit \
        compaction-sleep-interval corrupt-check-time cors data-dir debug discovery \
        discovery-cacert discovery-cert discovery-dial-timeout discovery-endpoints \
        discovery-fallback discovery-insecure-skip-tls-verify discovery-insecure-transport \
        discovery-keepalive-time discovery-keepalive-timeout discovery-key discovery-password \
        discovery-proxy discovery-request-timeout discovery-srv discovery-srv-name \
        discovery-token discovery-user distributed-tracing-address \
        distributed-tracing-instance-id distributed-tracing-sampling-rate \
        distributed-tracing-service-name downgrade-check-time election-timeout \
        enable-distributed-tracing enable-grpc-gateway enable-log-rotation enable-pprof \
        enable-v2 experimental-backend-bbolt-freelist-type \
        experimental-bootstrap-defrag-threshold-megabytes \
        experimental-compact-hash-check-enabled experimental-compact-hash-check-time \
        experimental-compaction-batch-limit experimental-compaction-sleep-interval \
        experimental-corrupt-check-time experimental-distributed-tracing-address \
        experimental-distributed-tracing-instance-id \
        experimental-distributed-tracing-sampling-rate \
        experimental-distributed-tracing-service-name experimental-downgrade-check-time \
        experimental-enable-distributed-tracing experimental-enable-lease-checkpoint \
        experimental-enable-lease-checkpoint-persist experimental-enable-v2v3 \
        experimental-initial-corrupt-check experimental-memory-mlock \
        experimental-peer-skip-client-san-verification experimental-snapshot-catchup-entries \
        experimental-stop-grpc-service-on-defrag \
        experimental-txn-mode-write-with-shared-buffer experimental-warning-apply-duration \
        experimental-warning-unary-request-duration \
        experimental-watch-progress-notify-interval feature-gates force-new-cluster \
        grpc-keepalive-interval grpc-keepalive-min-time grpc-keepalive-timeout \
        heartbeat-interval host-whitelist initial-advertise-peer-urls initial-cluster \
        initial-cluster-state initial-cluster-token initial-election-tick-advance key-file \
        listen-client-http-urls listen-client-urls listen-metrics-urls listen-peer-urls \
        log-format log-level log-outputs log-package-levels log-rotation-config-json logger \
        max-concurrent-streams max-learners max-request-bytes max-snapshots max-txn-ops \
        max-wals memory-mlock metrics name next-cluster-version-compatible peer-auto-tls \
        peer-cert-allowed-cn peer-cert-allowed-hostname peer-cert-file peer-client-cert-auth \
        peer-client-cert-file peer-client-key-file peer-crl-file peer-key-file \
        peer-skip-client-san-verification peer-trusted-ca-file pre-vote proxy \
        proxy-dial-timeout proxy-failure-wait proxy-read-timeout proxy-refresh-interval \
        proxy-write-timeout quota-backend-bytes raft-read-timeout raft-write-timeout \
        self-signed-cert-validity snapshot-catchup-entries snapshot-count \
        socket-reuse-address socket-reuse-port strict-reconfig-check tls-max-version \
        tls-min-version trusted-ca-file unsafe-no-fsync v2-deprecation wal-dir \
        warning-apply-duration warning-unary-request-duration watch-progress-notify-interval";

    #[test]
    fn every_etcd_flag_has_a_row() {
        let help: Vec<&str> = ETCD_HELP.split_whitespace().collect();
        assert_eq!(help.len(), 148);
        for name in help {
            assert!(find(name).is_some(), "--{name} has no row");
        }
    }

    /// docs/operations.md lists every row, with what it is here.
    #[test]
    fn operations_doc_lists_every_row() {
        let doc = include_str!("../../docs/operations.md");
        for f in ETCD_FLAGS {
            let start = format!("| `--{}`", f.name);
            let line = doc
                .lines()
                .find(|l| l.starts_with(&start))
                .unwrap_or_else(|| panic!("docs/operations.md has no row for --{}", f.name));
            let (label, text) = match f.here {
                Here::Serves(t) => ("| served |", t),
                Here::NoEffect(t) => ("| no effect |", t),
                Here::Refused(t) => ("| refused |", t),
            };
            assert!(line.contains(label) && line.contains(text), "{line}");
        }
    }

    #[test]
    fn rows_are_unique_and_samples_valid() {
        let mut names: Vec<&str> = ETCD_FLAGS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a flag has two rows");
        for f in ETCD_FLAGS {
            assert_eq!(check(f.ty, f.sample()), Ok(()), "{}", f.name);
            if !f.default.is_empty() {
                assert_eq!(check(f.ty, f.default), Ok(()), "{}", f.name);
            }
        }
    }

    /// `key: value` in YAML, nested along a dotted key.
    fn yaml_doc(key: &str, value: &str) -> String {
        let mut doc = String::new();
        let parts: Vec<&str> = key.split('.').collect();
        for (depth, part) in parts.iter().enumerate() {
            doc.push_str(&"  ".repeat(depth));
            doc.push_str(part);
            if depth + 1 == parts.len() {
                doc.push_str(&format!(": '{}'\n", value.replace('\'', "''")));
            } else {
                doc.push_str(":\n");
            }
        }
        doc
    }

    /// What a row promises for its sample: started with it, or its refusal.
    fn expect(f: &Flag, form: &str, res: Result<Config, Error>) {
        match (f.here, res) {
            (Here::Refused(why), Err(e)) => {
                assert!(e.to_string().contains(why), "{form} --{}: {e}", f.name)
            }
            (Here::Refused(_), Ok(_)) => panic!("{form} --{}: accepted", f.name),
            (_, Err(e)) => panic!("{form} --{}={}: {e}", f.name, f.sample()),
            (_, Ok(cfg)) => {
                if f.name == "config-file" && form == "yaml" {
                    return;
                }
                assert!(cfg.is_given(f.name), "{form} --{}: not seen", f.name);
                if cfg.etcd_flags.contains_key(f.name) {
                    assert_eq!(cfg.flag(f.name), f.sample(), "{form} --{}", f.name);
                }
                let no_effect = cfg.no_effect_flags().iter().any(|(n, _, _)| n == f.name);
                assert_eq!(
                    no_effect,
                    matches!(f.here, Here::NoEffect(_)),
                    "{form} --{}: logged as having no effect?",
                    f.name
                );
            }
        }
    }

    /// Every row, in its three forms: the flag, the ETCD_* variable and the config file's
    /// key (etcd's own YAML key where it has one, and the flag's name).
    #[test]
    fn every_row_in_every_form() {
        let argv = |args: &[String]| {
            std::iter::once("metastore".to_string())
                .chain(args.iter().cloned())
                .collect::<Vec<_>>()
        };
        for f in ETCD_FLAGS {
            let flag = format!("--{}={}", f.name, f.sample());
            expect(f, "flag", Config::from_args_env(argv(&[flag]), []));
            let split = [format!("--{}", f.name), f.sample().to_string()];
            expect(f, "flag value", Config::from_args_env(argv(&split), []));
            let env = [(f.env(), f.sample().to_string())];
            expect(f, "env", Config::from_args_env(argv(&[]), env));
            if f.name != "config-file" {
                let doc = yaml_doc(f.name, f.sample());
                expect(f, "yaml", Config::from_yaml(&doc).and_then(validated));
            }
            if !f.yaml.is_empty() {
                let doc = yaml_doc(f.yaml, f.sample());
                expect(f, "yaml", Config::from_yaml(&doc).and_then(validated));
            }
        }
    }

    fn validated(cfg: Config) -> Result<Config, Error> {
        cfg.validate()?;
        Ok(cfg)
    }

    #[test]
    fn a_flag_wins_over_its_variable_and_bad_values_are_refused() {
        let args = ["metastore", "--max-wals", "7"].map(String::from);
        let env = [("ETCD_MAX_WALS".to_string(), "9".to_string())];
        assert_eq!(
            Config::from_args_env(args, env).unwrap().flag("max-wals"),
            "7"
        );
        let env = [("ETCD_MAX_WALS".to_string(), "9".to_string())];
        let args = ["metastore"].map(String::from);
        assert_eq!(
            Config::from_args_env(args, env).unwrap().flag("max-wals"),
            "9"
        );
        for (flag, bad) in [
            ("max-wals", "x"),
            ("grpc-keepalive-interval", "5"),
            ("pre-vote", "maybe"),
        ] {
            let args = ["metastore".to_string(), format!("--{flag}={bad}")];
            assert!(Config::from_args_env(args, []).is_err(), "--{flag}={bad}");
        }
    }

    #[test]
    fn yaml_durations_in_nanoseconds() {
        let cfg = Config::from_yaml("grpc-keepalive-interval: 3000000000\n").unwrap();
        assert_eq!(
            cfg.grpc_keepalive_interval(),
            Some(std::time::Duration::from_secs(3))
        );
        let cfg = Config::from_yaml("experimental-watch-progress-notify-interval: 60000000000\n")
            .unwrap();
        assert_eq!(
            cfg.progress_notify_interval(),
            std::time::Duration::from_secs(60)
        );
    }
}

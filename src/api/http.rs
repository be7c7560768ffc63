//! Plain HTTP on the client port: `/health`, `/version`, `/metrics` (etcd: etcdhttp).

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::proto::etcdserverpb::RangeRequest;
use crate::server::Member;

pub fn router(member: Arc<Member>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(member)
}

fn json(status: StatusCode, body: String) -> axum::response::Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Healthy when there is a leader and a linearizable read succeeds (etcd 3.5's check).
async fn health(State(member): State<Arc<Member>>) -> axum::response::Response {
    let probe = RangeRequest {
        key: bytes::Bytes::from_static(b"health"),
        ..Default::default()
    };
    let res = tokio::time::timeout(Duration::from_secs(1), member.range(probe)).await;
    match res {
        Ok(Ok(_)) => json(StatusCode::OK, r#"{"health":"true","reason":""}"#.into()),
        Ok(Err(e)) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(r#"{{"health":"false","reason":"QGET ERROR:{e}"}}"#),
        ),
        Err(_) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"health":"false","reason":"QGET ERROR:timeout"}"#.into(),
        ),
    }
}

/// The server version we report and the cluster version (major.minor.0).
pub fn versions(member: &Member) -> (String, String) {
    let server = member.settings.report_version.clone();
    let mut parts = server.split('.');
    let cluster = format!(
        "{}.{}.0",
        parts.next().unwrap_or("3"),
        parts.next().unwrap_or("5")
    );
    (server, cluster)
}

async fn version(State(member): State<Arc<Member>>) -> axum::response::Response {
    let (server, cluster) = versions(&member);
    json(
        StatusCode::OK,
        format!(r#"{{"etcdserver":"{server}","etcdcluster":"{cluster}"}}"#),
    )
}

async fn metrics(State(member): State<Arc<Member>>) -> impl IntoResponse {
    let s = member.raft_status();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, v: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        f64::from(u8::from(s.leader != 0)),
    );
    gauge(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        f64::from(u8::from(s.leader == member.member_id)),
    );
    gauge(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        s.index as f64,
    );
    gauge(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        s.applied as f64,
    );
    gauge(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        s.db_size as f64,
    );
    gauge(
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store.",
        member.current_revision() as f64,
    );
    gauge("etcd_server_term", "The current raft term.", s.term as f64);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
}

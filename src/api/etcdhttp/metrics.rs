//! `/metrics`: etcd's Prometheus gauges that clients and dashboards read.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use crate::server::Member;

pub(super) async fn metrics(State(member): State<Arc<Member>>) -> impl IntoResponse {
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
    // /livez and /readyz checks, once some have run (labels in Prometheus' sorted order)
    let mut checks = super::checks::tallies();
    checks.sort_by_key(|((kind, name), _)| (*name, *kind));
    if !checks.is_empty() {
        out.push_str("# HELP etcd_server_healthcheck The result of each kind of healthcheck.\n");
        out.push_str("# TYPE etcd_server_healthcheck gauge\n");
        for ((kind, name), t) in &checks {
            let _ = writeln!(
                out,
                "etcd_server_healthcheck{{name=\"{name}\",type=\"{kind}\"}} {}",
                u8::from(t.last_ok)
            );
        }
        out.push_str(
            "# HELP etcd_server_healthchecks_total The total number of each kind of healthcheck.\n",
        );
        out.push_str("# TYPE etcd_server_healthchecks_total counter\n");
        for ((kind, name), t) in &checks {
            for (status, n) in [("error", t.error), ("success", t.success)] {
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "etcd_server_healthchecks_total{{name=\"{name}\",status=\"{status}\",type=\"{kind}\"}} {n}"
                    );
                }
            }
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
}

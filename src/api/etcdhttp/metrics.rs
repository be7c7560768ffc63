//! `/metrics`: etcd's Prometheus metrics (crate::metrics, the member's gauges set from it
//! at each scrape), and the /livez and /readyz tallies.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use crate::server::Member;

pub(super) async fn metrics(State(member): State<Arc<Member>>) -> impl IntoResponse {
    member.refresh_metrics();
    let mut out = crate::metrics::render();
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

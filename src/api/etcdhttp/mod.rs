//! etcd's plain HTTP paths on the client port (etcd: server/etcdserver/api/etcdhttp):
//! `/health` (health.rs), `/livez` and `/readyz` (checks.rs), `/version` (version.rs),
//! `/metrics` (metrics.rs).

mod checks;
mod health;
mod metrics;
mod version;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::server::Member;

pub use version::versions;

pub fn router(member: Arc<Member>) -> Router {
    let router = Router::new()
        .route("/health", get(health::health))
        .route("/version", get(version::version))
        .route("/metrics", get(metrics::metrics));
    checks::routes(router).with_state(member)
}

/// What a `--listen-metrics-urls` listener serves: `/metrics`, `/health`, `/livez` and
/// `/readyz` (etcd's HandleMetrics and HandleHealth).
pub fn metrics_router(member: Arc<Member>) -> Router {
    let router = Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics));
    checks::routes(router).with_state(member)
}

/// A JSON answer, as etcd's handlers write them.
fn json(status: StatusCode, body: String) -> axum::response::Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

//! `/version`: the server version we report and the cluster version.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;

use super::json;
use crate::server::Member;

/// The server version we report and the cluster version (major.minor.0).
pub fn versions(member: &Member) -> (String, String) {
    (
        member.settings.report_version.clone(),
        member.cluster_version(),
    )
}

pub(super) async fn version(State(member): State<Arc<Member>>) -> axum::response::Response {
    let (server, cluster) = versions(&member);
    json(
        StatusCode::OK,
        format!(r#"{{"etcdserver":"{server}","etcdcluster":"{cluster}"}}"#),
    )
}

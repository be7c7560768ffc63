//! `/health`: healthy when there is a leader and a linearizable read succeeds.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;

use super::json;
use crate::proto::etcdserverpb::RangeRequest;
use crate::server::Member;

/// Healthy when there is a leader and a linearizable read succeeds (etcd 3.5's check).
pub(super) async fn health(State(member): State<Arc<Member>>) -> axum::response::Response {
    let probe = RangeRequest {
        key: bytes::Bytes::from_static(b"health"),
        ..Default::default()
    };
    let res = tokio::time::timeout(
        Duration::from_secs(1),
        member.range(&crate::server::AuthInfo::member(), probe),
    )
    .await;
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

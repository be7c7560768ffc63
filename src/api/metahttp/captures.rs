//! The capture drain paths over `meta::drain`: `/api/v2/captures/{id}/drain`.
//!
//! `PUT` (and `POST`, the older form) starts draining node `{id}`, or says where its drain
//! stands when it is already under way; `GET` only says where it stands. The body is always
//! `{"remaining_maintainer_count": M, "remaining_dispatcher_count": D,
//! "current_table_count": M + D}`: 202 while work remains, 200 when none does. A drain's
//! first answer counts the node's published load record (none published counts as zero).
//! Refusals: 404 unknown node (or, for `GET`, one that is not being drained), 409 another
//! node drains, 400 an invalid id; 503 when the store cannot answer (no leader, down, or
//! no answer within `STORE_TIMEOUT`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use serde::Serialize;

use super::MetaHttp;
use crate::meta::drain::{self, Refusal, Status};

pub fn routes() -> Router<Arc<MetaHttp>> {
    Router::new().route(
        "/api/v2/captures/{id}/drain",
        put(start_drain).post(start_drain).get(drain_status),
    )
}

#[derive(Serialize)]
struct DrainBody {
    remaining_maintainer_count: u64,
    remaining_dispatcher_count: u64,
    current_table_count: u64,
}

async fn start_drain(State(ctx): State<Arc<MetaHttp>>, Path(id): Path<String>) -> Response {
    let outcome = ctx
        .call(move |mut c, layout| async move { drain::start(&mut c, &layout, &id).await })
        .await;
    answer(outcome)
}

async fn drain_status(State(ctx): State<Arc<MetaHttp>>, Path(id): Path<String>) -> Response {
    let outcome = ctx
        .call(move |mut c, layout| async move { drain::status(&mut c, &layout, &id).await })
        .await;
    answer(outcome)
}

fn answer(outcome: Result<drain::Outcome<Status>, (StatusCode, String)>) -> Response {
    match outcome {
        Ok(Ok(status)) => {
            let left = status.remaining();
            let body = DrainBody {
                remaining_maintainer_count: left.maintainer_count,
                remaining_dispatcher_count: left.dispatcher_count,
                current_table_count: left.maintainer_count.saturating_add(left.dispatcher_count),
            };
            let code = if left.is_zero() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            (code, Json(body)).into_response()
        }
        Ok(Err(refusal)) => error(refusal_status(&refusal), refusal.to_string()),
        Err((code, message)) => error(code, message),
    }
}

fn refusal_status(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::InvalidNode(_) => StatusCode::BAD_REQUEST,
        Refusal::UnknownNode(_) | Refusal::NotDraining(_) | Refusal::NoDrain => {
            StatusCode::NOT_FOUND
        }
        Refusal::Conflict { .. }
        | Refusal::AlreadyRegistered(_)
        | Refusal::LeaderExists { .. }
        | Refusal::Backwards { .. }
        | Refusal::StaleEpoch { .. }
        | Refusal::NotReporter { .. }
        | Refusal::NotAlive { .. }
        | Refusal::Contended(_) => StatusCode::CONFLICT,
    }
}

fn error(code: StatusCode, message: String) -> Response {
    (code, Json(serde_json::json!({ "error": message }))).into_response()
}

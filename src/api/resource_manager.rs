//! The resource manager's HTTP paths (`/resource-manager/api/v1/config/...`) over
//! `meta::resource_group`. Bodies are the resource manager's own JSON; `?keyspace_name=`
//! selects a keyspace (none: the null keyspace, which also reads the legacy path).
//!
//! Answers: `"Success!"` (a JSON string) for a write, the record as JSON for a read; 400 for
//! a bad body or an invalid group, 404 for an unknown group or keyspace, 409 for a group
//! that exists, 403 for the reserved `default` group, 412 for a writer in the wrong role
//! (the gRPC FailedPrecondition), 503 when the store cannot answer. Errors are plain text.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::meta_http::MetaHttp;
use crate::meta;
use crate::meta::resource_group::{
    Outcome, Refusal, ResourceGroup, ResourceGroups, NULL_KEYSPACE_ID,
};

const PREFIX: &str = "/resource-manager/api/v1/config";

pub fn routes() -> Router<Arc<MetaHttp>> {
    Router::new()
        .route(&format!("{PREFIX}/group"), post(add).put(modify))
        .route(
            &format!("{PREFIX}/group/{{name}}"),
            get(get_group).delete(delete_group),
        )
        .route(&format!("{PREFIX}/groups"), get(list))
        .route(
            &format!("{PREFIX}/controller"),
            get(get_controller).post(set_controller),
        )
        .route(
            &format!("{PREFIX}/keyspace/service-limit/{{keyspace_name}}"),
            get(get_service_limit).post(set_service_limit),
        )
}

#[derive(Deserialize)]
struct KeyspaceQuery {
    keyspace_name: Option<String>,
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

fn json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_string(v) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn success() -> Response {
    json(&"Success!")
}

fn store_error(e: meta::Error) -> Response {
    if e.is_unavailable() {
        text(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    } else {
        text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn refusal(r: Refusal) -> Response {
    let status = match r {
        Refusal::Invalid(_) => StatusCode::BAD_REQUEST,
        Refusal::NotFound(_) | Refusal::KeyspaceNotFound(_) => StatusCode::NOT_FOUND,
        Refusal::AlreadyExists(_) | Refusal::KeyspaceExists(_) | Refusal::Contended(_) => {
            StatusCode::CONFLICT
        }
        Refusal::Reserved => StatusCode::FORBIDDEN,
        Refusal::WrongRole { .. } => StatusCode::PRECONDITION_FAILED,
    };
    text(status, r.to_string())
}

/// The answer of a write.
fn answer<T>(outcome: meta::Result<Outcome<T>>, ok: impl FnOnce(T) -> Response) -> Response {
    match outcome {
        Ok(Ok(v)) => ok(v),
        Ok(Err(r)) => refusal(r),
        Err(e) => store_error(e),
    }
}

/// The store and the keyspace id a request addresses, or the answer that ends it.
async fn open(
    ctx: &MetaHttp,
    keyspace_name: Option<&str>,
) -> Result<(ResourceGroups, u32), Response> {
    let client = ctx.client().await.map_err(store_error)?;
    let groups = ResourceGroups::new(client, &ctx.layout, ctx.role);
    let Some(name) = keyspace_name else {
        return Ok((groups, NULL_KEYSPACE_ID));
    };
    match groups.keyspace(name).await {
        Ok(Some(ks)) => Ok((groups, ks.id)),
        Ok(None) => Err(refusal(Refusal::KeyspaceNotFound(name.into()))),
        Err(e) => Err(store_error(e)),
    }
}

/// A group from a request body, in the keyspace the request addresses.
fn parse_group(body: &[u8], keyspace: u32) -> Result<ResourceGroup, String> {
    let group: ResourceGroup =
        serde_json::from_slice(body).map_err(|e| format!("bad resource group: {e}"))?;
    match group.keyspace_id {
        Some(id) if id.value != keyspace => Err(format!(
            "the body's keyspace_id {} is not the requested keyspace's {keyspace}",
            id.value
        )),
        _ => Ok(group),
    }
}

async fn add(
    State(ctx): State<Arc<MetaHttp>>,
    Query(q): Query<KeyspaceQuery>,
    body: Bytes,
) -> Response {
    let (groups, ks) = match open(&ctx, q.keyspace_name.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match parse_group(&body, ks) {
        Ok(g) => answer(groups.add(ks, g).await, |_| success()),
        Err(msg) => text(StatusCode::BAD_REQUEST, msg),
    }
}

async fn modify(
    State(ctx): State<Arc<MetaHttp>>,
    Query(q): Query<KeyspaceQuery>,
    body: Bytes,
) -> Response {
    let (groups, ks) = match open(&ctx, q.keyspace_name.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match parse_group(&body, ks) {
        Ok(g) => answer(groups.modify(ks, g).await, |_| success()),
        Err(msg) => text(StatusCode::BAD_REQUEST, msg),
    }
}

async fn get_group(
    State(ctx): State<Arc<MetaHttp>>,
    Path(name): Path<String>,
    Query(q): Query<KeyspaceQuery>,
) -> Response {
    let (groups, ks) = match open(&ctx, q.keyspace_name.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match groups.get(ks, &name).await {
        Ok(Some(g)) => json(&g),
        Ok(None) => refusal(Refusal::NotFound(name)),
        Err(e) => store_error(e),
    }
}

async fn delete_group(
    State(ctx): State<Arc<MetaHttp>>,
    Path(name): Path<String>,
    Query(q): Query<KeyspaceQuery>,
) -> Response {
    let (groups, ks) = match open(&ctx, q.keyspace_name.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    answer(groups.delete(ks, &name).await, |_| success())
}

async fn list(State(ctx): State<Arc<MetaHttp>>, Query(q): Query<KeyspaceQuery>) -> Response {
    let (groups, ks) = match open(&ctx, q.keyspace_name.as_deref()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match groups.list(ks).await {
        Ok(all) => json(&all),
        Err(e) => store_error(e),
    }
}

async fn get_controller(State(ctx): State<Arc<MetaHttp>>) -> Response {
    let (groups, _) = match open(&ctx, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match groups.controller_config().await {
        Ok(c) => json(&c),
        Err(e) => store_error(e),
    }
}

async fn set_controller(State(ctx): State<Arc<MetaHttp>>, body: Bytes) -> Response {
    let (groups, _) = match open(&ctx, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let update: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad config: {e}")),
    };
    answer(groups.update_controller_config(update).await, |_| success())
}

async fn get_service_limit(
    State(ctx): State<Arc<MetaHttp>>,
    Path(keyspace): Path<String>,
) -> Response {
    let (groups, ks) = match open(&ctx, Some(&keyspace)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match groups.service_limit(ks).await {
        Ok(limit) => json(&serde_json::json!({ "service_limit": limit })),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceLimit {
    service_limit: f64,
}

async fn set_service_limit(
    State(ctx): State<Arc<MetaHttp>>,
    Path(keyspace): Path<String>,
    body: Bytes,
) -> Response {
    let (groups, ks) = match open(&ctx, Some(&keyspace)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let limit: ServiceLimit = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad service limit: {e}")),
    };
    answer(
        groups.set_service_limit(ks, limit.service_limit).await,
        |_| success(),
    )
}

//! The resource manager's HTTP paths (`/resource-manager/api/v1/config/...`) over
//! `meta::resource_group`. Bodies are the resource manager's own JSON; `?keyspace_name=`
//! selects a keyspace (none: the null keyspace, which also reads the legacy path).
//!
//! Answers: `"Success!"` (a JSON string) for a write, the record as JSON for a read; 400 for
//! a bad body or an invalid group, 404 for an unknown group or keyspace, 409 for a group
//! that exists or a write that kept losing races, 403 for the reserved `default` group, 412
//! for a writer in the wrong role (the gRPC FailedPrecondition), 503 when the store cannot
//! answer. Errors are plain text, as the resource manager's.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::MetaHttp;
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

/// The answer of a write: `ok` of its value, or its refusal.
fn answer<T>(outcome: Outcome<T>, ok: impl FnOnce(T) -> Response) -> Response {
    match outcome {
        Ok(v) => ok(v),
        Err(r) => refusal(r),
    }
}

/// Run a request's work on the store, in the keyspace it names (an unknown one is 404).
async fn run<F, Fut>(ctx: &MetaHttp, keyspace_name: Option<String>, work: F) -> Response
where
    F: FnOnce(ResourceGroups, u32) -> Fut,
    Fut: Future<Output = meta::Result<Response>>,
{
    let role = ctx.role;
    let done = ctx
        .call(|client, layout| async move {
            let groups = ResourceGroups::new(client, &layout, role);
            let keyspace = match keyspace_name {
                None => NULL_KEYSPACE_ID,
                Some(name) => match groups.keyspace(&name).await? {
                    Some(ks) => ks.id,
                    None => return Ok(refusal(Refusal::KeyspaceNotFound(name))),
                },
            };
            work(groups, keyspace).await
        })
        .await;
    done.unwrap_or_else(|(code, msg)| text(code, msg))
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

async fn add(ctx: State<Arc<MetaHttp>>, q: Query<KeyspaceQuery>, body: Bytes) -> Response {
    write_group(ctx, q, body, GroupWrite::Add).await
}

async fn modify(ctx: State<Arc<MetaHttp>>, q: Query<KeyspaceQuery>, body: Bytes) -> Response {
    write_group(ctx, q, body, GroupWrite::Modify).await
}

enum GroupWrite {
    Add,
    Modify,
}

/// POST and PUT of a group: the same body, a different write.
async fn write_group(
    State(ctx): State<Arc<MetaHttp>>,
    Query(q): Query<KeyspaceQuery>,
    body: Bytes,
    write: GroupWrite,
) -> Response {
    run(&ctx, q.keyspace_name, |groups, ks| async move {
        let group = match parse_group(&body, ks) {
            Ok(g) => g,
            Err(msg) => return Ok(text(StatusCode::BAD_REQUEST, msg)),
        };
        let outcome = match write {
            GroupWrite::Add => groups.add(ks, group).await?,
            GroupWrite::Modify => groups.modify(ks, group).await?,
        };
        Ok(answer(outcome, |_| success()))
    })
    .await
}

async fn get_group(
    State(ctx): State<Arc<MetaHttp>>,
    Path(name): Path<String>,
    Query(q): Query<KeyspaceQuery>,
) -> Response {
    run(&ctx, q.keyspace_name, |groups, ks| async move {
        Ok(match groups.get(ks, &name).await? {
            Some(g) => json(&g),
            None => refusal(Refusal::NotFound(name)),
        })
    })
    .await
}

async fn delete_group(
    State(ctx): State<Arc<MetaHttp>>,
    Path(name): Path<String>,
    Query(q): Query<KeyspaceQuery>,
) -> Response {
    run(&ctx, q.keyspace_name, |groups, ks| async move {
        Ok(answer(groups.delete(ks, &name).await?, |_| success()))
    })
    .await
}

async fn list(State(ctx): State<Arc<MetaHttp>>, Query(q): Query<KeyspaceQuery>) -> Response {
    run(&ctx, q.keyspace_name, |groups, ks| async move {
        Ok(json(&groups.list(ks).await?))
    })
    .await
}

async fn get_controller(State(ctx): State<Arc<MetaHttp>>) -> Response {
    run(&ctx, None, |groups, _| async move {
        Ok(json(&groups.controller_config().await?))
    })
    .await
}

async fn set_controller(State(ctx): State<Arc<MetaHttp>>, body: Bytes) -> Response {
    let update: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad config: {e}")),
    };
    run(&ctx, None, |groups, _| async move {
        Ok(answer(
            groups.update_controller_config(update).await?,
            |_| success(),
        ))
    })
    .await
}

async fn get_service_limit(
    State(ctx): State<Arc<MetaHttp>>,
    Path(keyspace): Path<String>,
) -> Response {
    run(&ctx, Some(keyspace), |groups, ks| async move {
        let limit = groups.service_limit(ks).await?;
        Ok(json(&serde_json::json!({ "service_limit": limit })))
    })
    .await
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
    let limit: ServiceLimit = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad service limit: {e}")),
    };
    run(&ctx, Some(keyspace), |groups, ks| async move {
        Ok(answer(
            groups.set_service_limit(ks, limit.service_limit).await?,
            |_| success(),
        ))
    })
    .await
}

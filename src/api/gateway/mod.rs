//! etcd's JSON gateway on the client port (etcd: grpc-gateway, registered by
//! embed/serve.go): every v3 RPC as `POST /v3/<path>` (and `/v3beta/<path>`, which etcd
//! 3.4 still serves) with a JSON body, answered in JSON (json.rs); streaming calls read and
//! write one JSON message after another (stream.rs).
//!
//! Each path calls the same service implementation the gRPC transport does (api::v3rpc),
//! with the metadata grpc-gateway forwards: the `Authorization` header (the auth token)
//! and every `Grpc-Metadata-<key>` header as `<key>`. Each call counts in
//! `grpc_server_*` as the gRPC call of its method, as etcd's gateway's calls do.

mod json;
mod stream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::codegen::BoxStream;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::{Code, Status};

use super::transport::{http_error, GatewayCall};
use super::v3rpc::{
    auth::AuthService, cluster::ClusterService, election::ElectionService, kv::KvService,
    lease::LeaseService, lock::LockService, maintenance::MaintenanceService,
};
use crate::proto::etcdserverpb::auth_server::Auth as _;
use crate::proto::etcdserverpb::cluster_server::Cluster as _;
use crate::proto::etcdserverpb::kv_server::Kv as _;
use crate::proto::etcdserverpb::lease_server::Lease as _;
use crate::proto::etcdserverpb::maintenance_server::Maintenance as _;
use crate::proto::etcdserverpb::{LeaseKeepAliveRequest, WatchRequest};
use crate::proto::v3electionpb::election_server::Election as _;
use crate::proto::v3lockpb::lock_server::Lock as _;
use crate::server::Member;

/// The path prefixes the gateway answers under.
const PREFIXES: [&str; 2] = ["/v3", "/v3beta"];

/// etcd 3.4's words when a TLS client with a certificate calls the gateway while auth is
/// on: the gateway would call as itself, so the certificate's name cannot be the user.
const CN_IGNORED: &str =
    "CommonName of client sending a request against gateway will be ignored and not used as expected";

type Routes = Router<Arc<Member>>;

/// Every gateway path, for the member.
pub fn router(member: Arc<Member>) -> Router {
    let mut r: Routes = Router::new();
    macro_rules! unary {
        ($path:literal, $svc:ident, $method:ident, $grpc:literal) => {
            r = add_unary(r, $path, $grpc, |member: Arc<Member>, req| async move {
                $svc { member }.$method(req).await
            });
        };
    }
    macro_rules! server_stream {
        ($path:literal, $svc:ident, $method:ident, $grpc:literal) => {
            r = add_server_stream(r, $path, $grpc, |member: Arc<Member>, req| async move {
                Ok($svc { member }.$method(req).await?.into_inner())
            });
        };
    }
    unary!("/kv/range", KvService, range, "/etcdserverpb.KV/Range");
    unary!("/kv/put", KvService, put, "/etcdserverpb.KV/Put");
    unary!(
        "/kv/deleterange",
        KvService,
        delete_range,
        "/etcdserverpb.KV/DeleteRange"
    );
    unary!("/kv/txn", KvService, txn, "/etcdserverpb.KV/Txn");
    unary!(
        "/kv/compaction",
        KvService,
        compact,
        "/etcdserverpb.KV/Compact"
    );
    r = add(r, "/watch", watch);
    unary!(
        "/lease/grant",
        LeaseService,
        lease_grant,
        "/etcdserverpb.Lease/LeaseGrant"
    );
    unary!(
        "/lease/revoke",
        LeaseService,
        lease_revoke,
        "/etcdserverpb.Lease/LeaseRevoke"
    );
    unary!(
        "/kv/lease/revoke",
        LeaseService,
        lease_revoke,
        "/etcdserverpb.Lease/LeaseRevoke"
    );
    r = add(r, "/lease/keepalive", keep_alive);
    unary!(
        "/lease/timetolive",
        LeaseService,
        lease_time_to_live,
        "/etcdserverpb.Lease/LeaseTimeToLive"
    );
    unary!(
        "/kv/lease/timetolive",
        LeaseService,
        lease_time_to_live,
        "/etcdserverpb.Lease/LeaseTimeToLive"
    );
    unary!(
        "/lease/leases",
        LeaseService,
        lease_leases,
        "/etcdserverpb.Lease/LeaseLeases"
    );
    unary!(
        "/kv/lease/leases",
        LeaseService,
        lease_leases,
        "/etcdserverpb.Lease/LeaseLeases"
    );
    unary!(
        "/cluster/member/add",
        ClusterService,
        member_add,
        "/etcdserverpb.Cluster/MemberAdd"
    );
    unary!(
        "/cluster/member/remove",
        ClusterService,
        member_remove,
        "/etcdserverpb.Cluster/MemberRemove"
    );
    unary!(
        "/cluster/member/update",
        ClusterService,
        member_update,
        "/etcdserverpb.Cluster/MemberUpdate"
    );
    unary!(
        "/cluster/member/list",
        ClusterService,
        member_list,
        "/etcdserverpb.Cluster/MemberList"
    );
    unary!(
        "/cluster/member/promote",
        ClusterService,
        member_promote,
        "/etcdserverpb.Cluster/MemberPromote"
    );
    unary!(
        "/maintenance/alarm",
        MaintenanceService,
        alarm,
        "/etcdserverpb.Maintenance/Alarm"
    );
    unary!(
        "/maintenance/status",
        MaintenanceService,
        status,
        "/etcdserverpb.Maintenance/Status"
    );
    unary!(
        "/maintenance/defragment",
        MaintenanceService,
        defragment,
        "/etcdserverpb.Maintenance/Defragment"
    );
    // HashKV shares Hash's path in etcd's proto; the gateway serves the first: Hash.
    unary!(
        "/maintenance/hash",
        MaintenanceService,
        hash,
        "/etcdserverpb.Maintenance/Hash"
    );
    server_stream!(
        "/maintenance/snapshot",
        MaintenanceService,
        snapshot,
        "/etcdserverpb.Maintenance/Snapshot"
    );
    unary!(
        "/maintenance/transfer-leadership",
        MaintenanceService,
        move_leader,
        "/etcdserverpb.Maintenance/MoveLeader"
    );
    unary!(
        "/maintenance/downgrade",
        MaintenanceService,
        downgrade,
        "/etcdserverpb.Maintenance/Downgrade"
    );
    unary!(
        "/auth/enable",
        AuthService,
        auth_enable,
        "/etcdserverpb.Auth/AuthEnable"
    );
    unary!(
        "/auth/disable",
        AuthService,
        auth_disable,
        "/etcdserverpb.Auth/AuthDisable"
    );
    unary!(
        "/auth/status",
        AuthService,
        auth_status,
        "/etcdserverpb.Auth/AuthStatus"
    );
    unary!(
        "/auth/authenticate",
        AuthService,
        authenticate,
        "/etcdserverpb.Auth/Authenticate"
    );
    unary!(
        "/auth/user/add",
        AuthService,
        user_add,
        "/etcdserverpb.Auth/UserAdd"
    );
    unary!(
        "/auth/user/get",
        AuthService,
        user_get,
        "/etcdserverpb.Auth/UserGet"
    );
    unary!(
        "/auth/user/list",
        AuthService,
        user_list,
        "/etcdserverpb.Auth/UserList"
    );
    unary!(
        "/auth/user/delete",
        AuthService,
        user_delete,
        "/etcdserverpb.Auth/UserDelete"
    );
    unary!(
        "/auth/user/changepw",
        AuthService,
        user_change_password,
        "/etcdserverpb.Auth/UserChangePassword"
    );
    unary!(
        "/auth/user/grant",
        AuthService,
        user_grant_role,
        "/etcdserverpb.Auth/UserGrantRole"
    );
    unary!(
        "/auth/user/revoke",
        AuthService,
        user_revoke_role,
        "/etcdserverpb.Auth/UserRevokeRole"
    );
    unary!(
        "/auth/role/add",
        AuthService,
        role_add,
        "/etcdserverpb.Auth/RoleAdd"
    );
    unary!(
        "/auth/role/get",
        AuthService,
        role_get,
        "/etcdserverpb.Auth/RoleGet"
    );
    unary!(
        "/auth/role/list",
        AuthService,
        role_list,
        "/etcdserverpb.Auth/RoleList"
    );
    unary!(
        "/auth/role/delete",
        AuthService,
        role_delete,
        "/etcdserverpb.Auth/RoleDelete"
    );
    unary!(
        "/auth/role/grant",
        AuthService,
        role_grant_permission,
        "/etcdserverpb.Auth/RoleGrantPermission"
    );
    unary!(
        "/auth/role/revoke",
        AuthService,
        role_revoke_permission,
        "/etcdserverpb.Auth/RoleRevokePermission"
    );
    unary!("/lock/lock", LockService, lock, "/v3lockpb.Lock/Lock");
    unary!("/lock/unlock", LockService, unlock, "/v3lockpb.Lock/Unlock");
    unary!(
        "/election/campaign",
        ElectionService,
        campaign,
        "/v3electionpb.Election/Campaign"
    );
    unary!(
        "/election/proclaim",
        ElectionService,
        proclaim,
        "/v3electionpb.Election/Proclaim"
    );
    unary!(
        "/election/leader",
        ElectionService,
        leader,
        "/v3electionpb.Election/Leader"
    );
    server_stream!(
        "/election/observe",
        ElectionService,
        observe,
        "/v3electionpb.Election/Observe"
    );
    unary!(
        "/election/resign",
        ElectionService,
        resign,
        "/v3electionpb.Election/Resign"
    );
    for prefix in PREFIXES {
        r = r.route(&format!("{prefix}/{{*rest}}"), any(not_found));
    }
    r.with_state(member)
}

/// Register `handler` under every prefix.
fn add<H, T>(mut r: Routes, path: &str, handler: H) -> Routes
where
    H: axum::handler::Handler<T, Arc<Member>>,
    T: 'static,
{
    for prefix in PREFIXES {
        r = r.route(&format!("{prefix}{path}"), any(handler.clone()));
    }
    r
}

fn add_unary<Req, Resp, F, Fut>(r: Routes, path: &str, grpc: &'static str, call: F) -> Routes
where
    Req: DeserializeOwned + Default + prost::Message + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Arc<Member>, tonic::Request<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>> + Send + 'static,
{
    add(
        r,
        path,
        move |State(member): State<Arc<Member>>, req: Request| async move {
            let (req, mut counted) = match accept::<Req>(&member, req, grpc).await {
                Ok(accepted) => accepted,
                Err(resp) => return *resp,
            };
            let answer = call(member, req).await;
            counted.finish(answer.as_ref().map_or_else(Status::code, |_| Code::Ok));
            match answer {
                Ok(resp) => json::message(resp.get_ref()),
                Err(status) => json::error(&status),
            }
        },
    )
}

fn add_server_stream<Req, Resp, F, Fut>(
    r: Routes,
    path: &str,
    grpc: &'static str,
    call: F,
) -> Routes
where
    Req: DeserializeOwned + Default + prost::Message + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Arc<Member>, tonic::Request<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<BoxStream<Resp>, Status>> + Send + 'static,
{
    add(
        r,
        path,
        move |State(member): State<Arc<Member>>, req: Request| async move {
            let (req, mut counted) = match accept::<Req>(&member, req, grpc).await {
                Ok(accepted) => accepted,
                Err(resp) => return *resp,
            };
            match call(member, req).await {
                Ok(answers) => stream::respond(stream::counted(answers, counted)).await,
                Err(status) => {
                    counted.finish(status.code());
                    json::error(&status)
                }
            }
        },
    )
}

/// `POST /v3/watch`: a watch stream over the request body.
async fn watch(State(member): State<Arc<Member>>, req: Request) -> Response {
    let (metadata, body) = match open_stream(&member, req).await {
        Ok(opened) => opened,
        Err(resp) => return *resp,
    };
    // etcd's gateway opens the call before it reads the first message
    let mut counted = GatewayCall::start("/etcdserverpb.Watch/Watch");
    let inbound = match stream::inbound::<WatchRequest>(body, request_limit(&member)).await {
        Ok(inbound) => inbound,
        Err(status) => {
            counted.finish(status.code());
            return json::error(&status);
        }
    };
    let opened = super::v3rpc::watch::Opened {
        token: super::v3rpc::auth::token_of(&metadata),
        cert_cn: None,
        require_leader: super::v3rpc::requires_leader(&metadata),
    };
    let answers = super::v3rpc::watch::serve(member, opened, inbound);
    stream::respond(stream::counted(answers, counted)).await
}

/// `POST /v3/lease/keepalive`: a keep-alive stream over the request body.
async fn keep_alive(State(member): State<Arc<Member>>, req: Request) -> Response {
    let (metadata, body) = match open_stream(&member, req).await {
        Ok(opened) => opened,
        Err(resp) => return *resp,
    };
    let mut counted = GatewayCall::start("/etcdserverpb.Lease/LeaseKeepAlive");
    let limit = request_limit(&member);
    let inbound = match stream::inbound::<LeaseKeepAliveRequest>(body, limit).await {
        Ok(inbound) => inbound,
        Err(status) => {
            counted.finish(status.code());
            return json::error(&status);
        }
    };
    let require_leader = super::v3rpc::requires_leader(&metadata);
    let answers = super::v3rpc::lease::keep_alive(member, inbound, require_leader);
    stream::respond(stream::counted(answers, counted)).await
}

/// The checks before a unary or server-streaming call; then the call's request and its
/// count as the gRPC call `grpc`.
async fn accept<Req>(
    member: &Member,
    req: Request,
    grpc: &'static str,
) -> Result<(tonic::Request<Req>, GatewayCall), Box<Response>>
where
    Req: DeserializeOwned + Default + prost::Message,
{
    let (metadata, body) = open_stream(member, req).await?;
    let limit = request_limit(member);
    // JSON is longer than the message it encodes (base64 by a third); the message itself
    // is then held to gRPC's limit, as etcd's gateway's call is.
    let too_large = |found: usize| {
        Box::new(json::error(&Status::resource_exhausted(format!(
            "grpc: received message larger than max ({found} vs. {limit})"
        ))))
    };
    let json_limit = limit.saturating_mul(2);
    let body = axum::body::to_bytes(body, json_limit)
        .await
        .map_err(|_| too_large(json_limit + 1))?;
    let msg = json::decode::<Req>(&body).map_err(|status| Box::new(json::error(&status)))?;
    let len = msg.encoded_len();
    if len > limit {
        return Err(too_large(len));
    }
    let req = tonic::Request::from_parts(metadata, Default::default(), msg);
    Ok((req, GatewayCall::start(grpc)))
}

/// The checks every gateway call passes first: POST only, etcd 3.4's refusal of client
/// certificates under auth, the required leader; then the call's metadata.
async fn open_stream(member: &Member, req: Request) -> Result<(MetadataMap, Body), Box<Response>> {
    let (parts, body) = req.into_parts();
    if parts.method != Method::POST {
        let resp = http_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        return Err(refuse(member, body, resp).await);
    }
    let cn = parts
        .extensions
        .get::<super::transport::ClientInfo>()
        .and_then(|c| c.common_name.as_ref())
        .is_some_and(|cn| !cn.is_empty());
    if cn && member.auth_enabled_now() {
        let resp = http_error(StatusCode::BAD_REQUEST, CN_IGNORED);
        return Err(refuse(member, body, resp).await);
    }
    let metadata = forwarded(&parts.headers);
    if super::v3rpc::requires_leader(&metadata) && !member.has_leader() {
        let resp = json::error(&crate::server::Error::NoLeader.into());
        return Err(refuse(member, body, resp).await);
    }
    Ok((metadata, body))
}

/// How long a refused request's remaining body is read before the refusal goes out.
const REFUSED_BODY_WAIT: Duration = Duration::from_millis(250);

/// A refusal, sent once the request's body has been read (bounded in bytes and time):
/// over HTTP/2 an answer sent while the client still uploads ends the stream with a
/// reset, and curl 7.88 then reports a failure (exit 92) instead of the answer.
async fn refuse(member: &Member, body: Body, resp: Response) -> Box<Response> {
    let limit = request_limit(member).saturating_mul(2);
    let _ = tokio::time::timeout(REFUSED_BODY_WAIT, axum::body::to_bytes(body, limit)).await;
    Box::new(resp)
}

/// The gRPC metadata grpc-gateway makes of a request's headers (its
/// DefaultHeaderMatcher): `Authorization`, and `Grpc-Metadata-<key>` as `<key>`.
fn forwarded(headers: &axum::http::HeaderMap) -> MetadataMap {
    let mut md = MetadataMap::new();
    for (name, value) in headers {
        let key = if name == header::AUTHORIZATION {
            "authorization"
        } else if let Some(key) = name.as_str().strip_prefix("grpc-metadata-") {
            key
        } else {
            continue;
        };
        let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_bytes()),
        ) else {
            continue;
        };
        md.append(key, value);
    }
    md
}

fn request_limit(member: &Member) -> usize {
    member.settings.max_request_bytes as usize + super::v3rpc::GRPC_OVERHEAD_BYTES
}

/// An unknown path under a gateway prefix: grpc-gateway's `Not Found`.
async fn not_found(req: Request) -> Response {
    let _ = req;
    http_error(StatusCode::NOT_FOUND, "Not Found")
}

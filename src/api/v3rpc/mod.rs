//! etcd's v3 gRPC services on the client port (etcd: server/etcdserver/api/v3rpc).
//!
//! A file per service, plus the shared pieces: the response header, the request checks
//! done before a request reaches the member, and the error table.

pub mod auth;
pub mod cluster;
mod concurrency;
pub mod election;
pub mod header;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod recv_error;
pub mod status;
pub mod validate;
pub mod watch;

use std::sync::Arc;

use crate::proto::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::server::Member;

/// etcd lets a gRPC message exceed --max-request-bytes by this much before gRPC refuses it,
/// so that the server can answer "request is too large" itself.
pub(crate) const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// etcd's WithRequireLeader: the gRPC metadata a client sets to be refused with
/// `no leader` while the member has none (etcd: rpctypes.MetadataRequireLeaderKey).
const REQUIRE_LEADER_KEY: &str = "hasleader";
const HAS_LEADER: &str = "true";

pub(crate) fn requires_leader(md: &tonic::metadata::MetadataMap) -> bool {
    md.get(REQUIRE_LEADER_KEY)
        .is_some_and(|v| v.as_bytes() == HAS_LEADER.as_bytes())
}

/// Refuses a request (or a new stream) that requires a leader while the member has none
/// (etcd: the unary and stream interceptors of v3rpc/interceptor.go).
#[derive(Clone)]
struct RequireLeader(Arc<Member>);

impl tonic::service::Interceptor for RequireLeader {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if requires_leader(req.metadata()) && !self.0.has_leader() {
            return Err(crate::server::Error::NoLeader.into());
        }
        Ok(req)
    }
}

/// Every etcd service of the member, each taking etcd's request limit and sending answers
/// of any size.
pub fn services(member: &Arc<Member>) -> tonic::service::Routes {
    let max = member.settings.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    macro_rules! service {
        ($server:ident, $svc:expr) => {
            tonic::service::interceptor::InterceptedService::new(
                $server::new($svc)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(usize::MAX),
                RequireLeader(member.clone()),
            )
        };
    }
    let m = || member.clone();
    tonic::service::Routes::new(service!(KvServer, kv::KvService { member: m() }))
        .add_service(service!(LeaseServer, lease::LeaseService { member: m() }))
        .add_service(service!(
            MaintenanceServer,
            maintenance::MaintenanceService { member: m() }
        ))
        .add_service(service!(
            ClusterServer,
            cluster::ClusterService { member: m() }
        ))
        .add_service(service!(WatchServer, watch::WatchService { member: m() }))
        .add_service(service!(AuthServer, auth::AuthService { member: m() }))
        .add_service(service!(LockServer, lock::LockService { member: m() }))
        .add_service(service!(
            ElectionServer,
            election::ElectionService { member: m() }
        ))
}

/// The response half of a long-lived stream (watch, lease keep-alive): what the stream's
/// task sends, until the member stops. Then it ends with etcd's "server stopped"
/// (Unavailable), which clients take as a reason to reconnect, not as the end of their
/// watch; a plain end of stream would look final to them. A stream whose client required
/// a leader (`hasleader`) also ends, with etcd's "no leader", once the member has lost its
/// leader (etcd's monitorLeader).
pub(crate) fn until_stopped<T: Send + 'static>(
    member: &Member,
    rx: tokio::sync::mpsc::Receiver<Result<T, tonic::Status>>,
    require_leader: bool,
) -> tonic::codegen::BoxStream<T> {
    use futures::FutureExt;
    let closing = member.closing().map(|()| crate::server::Error::Stopped);
    let ended: futures::future::BoxFuture<'static, crate::server::Error> = if require_leader {
        let lost = member
            .leader_lost()
            .map(|()| crate::server::Error::NoLeader);
        Box::pin(async move {
            tokio::select! {
                e = closing => e,
                e = lost => e,
            }
        })
    } else {
        Box::pin(closing)
    };
    Box::pin(futures::stream::unfold(
        Some((rx, ended)),
        |state| async move {
            let (mut rx, mut ended) = state?;
            tokio::select! {
                item = rx.recv() => item.map(|item| (item, Some((rx, ended)))),
                e = &mut ended => Some((Err(tonic::Status::from(e)), None)),
            }
        },
    ))
}

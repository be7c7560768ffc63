//! etcd's v3 gRPC services on the client port (etcd: server/etcdserver/api/v3rpc).
//!
//! A file per service, plus the shared pieces: the response header, the request checks
//! done before a request reaches the member, and the error table.

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
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::server::Member;

/// etcd lets a gRPC message exceed --max-request-bytes by this much before gRPC refuses it,
/// so that the server can answer "request is too large" itself.
pub(crate) const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Every etcd service of the member, each taking etcd's request limit and sending answers
/// of any size.
pub fn services(member: &Arc<Member>) -> tonic::service::Routes {
    let max = member.settings.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    macro_rules! service {
        ($server:ident, $svc:expr) => {
            $server::new($svc)
                .max_decoding_message_size(max)
                .max_encoding_message_size(usize::MAX)
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
        .add_service(service!(LockServer, lock::LockService { member: m() }))
        .add_service(service!(
            ElectionServer,
            election::ElectionService { member: m() }
        ))
}

/// The response half of a long-lived stream (watch, lease keep-alive): what the stream's
/// task sends, until the member stops. Then it ends with etcd's "server stopped"
/// (Unavailable), which clients take as a reason to reconnect, not as the end of their
/// watch; a plain end of stream would look final to them.
pub(crate) fn until_stopped<T: Send + 'static>(
    member: &Member,
    rx: tokio::sync::mpsc::Receiver<Result<T, tonic::Status>>,
) -> tonic::codegen::BoxStream<T> {
    let closing = Box::pin(member.closing());
    Box::pin(futures::stream::unfold(
        Some((rx, closing)),
        |state| async move {
            let (mut rx, mut closing) = state?;
            tokio::select! {
                item = rx.recv() => item.map(|item| (item, Some((rx, closing)))),
                _ = &mut closing => {
                    let stopped = tonic::Status::from(crate::server::Error::Stopped);
                    Some((Err(stopped), None))
                }
            }
        },
    ))
}

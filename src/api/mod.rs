//! The transport edge: tonic services, `/health` `/version` `/metrics`, the error table.
//!
//! Imports: `server`, `proto`. Must never: touch
//! raft, the stores or storage directly.

pub mod authority;
pub mod captures;
pub mod cluster;
pub mod header;
pub mod http;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod meta_http;
pub mod resource_manager;
pub mod status;
pub mod validate;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::proto::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::server::Member;

/// etcd lets a gRPC message exceed --max-request-bytes by this much before gRPC refuses it,
/// so that the server can answer "request is too large" itself.
pub(crate) const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// All client-port routes: gRPC services, plain HTTP and the metadata HTTP paths (which
/// reach the store through `meta`, a client of this very server), told apart by path.
pub fn routes(member: Arc<Member>, meta: Arc<meta_http::MetaHttp>) -> tonic::service::Routes {
    let max = member.settings.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    // Every service takes etcd's request limit and sends answers of any size.
    macro_rules! service {
        ($server:ident, $svc:expr) => {
            $server::new($svc)
                .max_decoding_message_size(max)
                .max_encoding_message_size(usize::MAX)
        };
    }
    let m = || member.clone();
    let grpc = tonic::service::Routes::new(service!(KvServer, kv::KvService { member: m() }))
        .add_service(service!(LeaseServer, lease::LeaseService { member: m() }))
        .add_service(service!(
            MaintenanceServer,
            maintenance::MaintenanceService { member: m() }
        ))
        .add_service(service!(
            ClusterServer,
            cluster::ClusterService { member: m() }
        ))
        .add_service(service!(WatchServer, watch::WatchService { member: m() }));
    let router = grpc
        .into_axum_router()
        .merge(http::router(member.clone()))
        .merge(meta_http::router(meta));
    tonic::service::Routes::from(router)
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

/// Bind every listen URL (a host name binds every address it resolves to).
pub async fn bind(urls: &[String]) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for url in urls {
        let hostport = url
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let hostport = hostport.split('/').next().unwrap_or(hostport);
        let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(hostport).await?.collect();
        addrs.dedup();
        for addr in addrs {
            out.push(TcpListener::bind(addr).await?);
        }
    }
    Ok(out)
}

/// Serve the client API on the listeners until `shutdown` resolves.
pub async fn serve(
    member: Arc<Member>,
    listeners: Vec<TcpListener>,
    max_concurrent_streams: u32,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    // the address a listener is bound to, not an advertised URL, which may name another host
    let self_url = match listeners.first().map(|l| l.local_addr()) {
        Some(Ok(mut addr)) => {
            if addr.ip().is_unspecified() {
                // a wildcard listener answers on loopback too
                addr.set_ip(match addr {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{addr}")
        }
        _ => member
            .settings
            .client_urls
            .first()
            .cloned()
            .unwrap_or_default(),
    };
    let shared = meta_http::MetaHttp::new(
        self_url,
        crate::meta::Layout::new(member.settings.meta_root.clone()),
        member
            .settings
            .meta_write_role
            .parse()
            .expect("the command line admits only the three roles"),
    );
    for l in listeners {
        let routes = routes(member.clone(), shared.clone());
        let mut rx = tx.subscribe();
        let server = tonic::transport::Server::builder()
            .accept_http1(true)
            .tcp_nodelay(true)
            .max_concurrent_streams(max_concurrent_streams)
            .add_routes(routes);
        tasks.push(tokio::spawn(async move {
            server
                .serve_with_incoming_shutdown(authority::incoming(l), async move {
                    let _ = rx.recv().await;
                })
                .await
        }));
    }
    shutdown.await;
    let _ = tx.send(());
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            return Err(e);
        }
    }
    Ok(())
}

//! The client port's transport: binding the listen URLs, serving every route on each
//! listener (HTTP/2 for gRPC, HTTP/1.1 for the plain paths), graceful shutdown.

pub mod authority;
pub mod cors;
mod grpc_metrics;
pub mod host_check;
mod not_found;

use std::sync::Arc;

use futures::TryStreamExt;
use tonic::service::Routes;

use authority::AuthorityFix;

pub use crate::tls::listener::{bind, ClientInfo, ClientListener};
pub use grpc_metrics::GatewayCall;
pub use not_found::http_error;

use super::{etcdhttp, metahttp, v3rpc};
use crate::server::Member;

/// All client-port routes: gRPC services, plain HTTP and the metadata HTTP paths (which
/// reach the store through `meta`, a client of this very server), told apart by path.
pub fn routes(
    member: Arc<Member>,
    meta: Arc<metahttp::MetaHttp>,
    options: &ServeOptions,
) -> Routes {
    let router = not_found::grpc_only(v3rpc::services(&member).into_axum_router())
        .merge(http_routes(member, meta, options));
    with_not_found(Routes::from(router))
}

/// Unknown paths answer as etcd's do: 404, or Unimplemented for a gRPC call.
fn with_not_found(routes: Routes) -> Routes {
    Routes::from(routes.into_axum_router().fallback(not_found::fallback))
}

/// The HTTP-only routes (etcd's `--listen-client-http-urls`), behind the Host check and
/// with CORS: the JSON gateway too unless `--enable-grpc-gateway=false`.
fn http_routes(
    member: Arc<Member>,
    meta: Arc<metahttp::MetaHttp>,
    options: &ServeOptions,
) -> axum::Router {
    let mut router = etcdhttp::router(member.clone()).merge(metahttp::router(meta));
    if options.gateway {
        router = router.merge(super::gateway::router(member));
    }
    options.hosts.guard(options.cors.guard(router))
}

/// What each group of listeners serves.
#[derive(Default)]
pub struct ClientPort {
    /// `--listen-client-urls`: gRPC and HTTP, or gRPC only when `http` is not empty.
    pub client: Vec<ClientListener>,
    /// `--listen-client-http-urls`: HTTP only.
    pub http: Vec<ClientListener>,
    /// `--listen-metrics-urls`: `/metrics` and `/health` only.
    pub metrics: Vec<ClientListener>,
    /// How the metadata paths reach this member as a client: a URL and, for a TLS-only
    /// port, the TLS to dial it with.
    pub self_client: Option<metahttp::OwnClient>,
}

/// How each client connection is served (etcd's `--max-concurrent-streams` and
/// `--grpc-keepalive-interval`/`--grpc-keepalive-timeout`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub max_concurrent_streams: u32,
    /// Ping an idle connection after this long (`None`: never).
    pub keepalive_interval: Option<std::time::Duration>,
    /// Close a connection whose ping is not answered within this.
    pub keepalive_timeout: Option<std::time::Duration>,
    /// `--host-whitelist`: the Host names plain-HTTP requests may name.
    pub hosts: host_check::HostWhitelist,
    /// `--enable-grpc-gateway`: serve the JSON gateway (`/v3/...`).
    pub gateway: bool,
    /// `--cors`: the origins plain-HTTP answers allow.
    pub cors: cors::Cors,
}

/// Serve the client port until `shutdown` resolves.
pub async fn serve(
    member: Arc<Member>,
    port: ClientPort,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    grpc_metrics::initialize();
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    let own = port.self_client.clone().unwrap_or_else(|| {
        metahttp::OwnClient::new(
            member
                .settings
                .client_urls
                .first()
                .cloned()
                .unwrap_or_default(),
        )
    });
    let shared = metahttp::MetaHttp::with_client(
        own,
        crate::meta::Layout::new(member.settings.meta_root.clone()),
        member
            .settings
            .meta_write_role
            .parse()
            .expect("the command line admits only the three roles"),
    );
    let grpc_only = !port.http.is_empty();
    let groups = [
        (port.client, Serves::Client { grpc_only }),
        (port.http, Serves::Http),
        (port.metrics, Serves::Metrics),
    ];
    for (listeners, serves) in groups {
        for l in listeners {
            let routes = match serves {
                Serves::Client { grpc_only: true } => with_not_found(Routes::from(
                    not_found::grpc_only(v3rpc::services(&member).into_axum_router()),
                )),
                Serves::Client { grpc_only: false } => {
                    routes(member.clone(), shared.clone(), &options)
                }
                Serves::Http => with_not_found(Routes::from(http_routes(
                    member.clone(),
                    shared.clone(),
                    &options,
                ))),
                Serves::Metrics => {
                    with_not_found(Routes::from(etcdhttp::metrics_router(member.clone())))
                }
            };
            let mut rx = tx.subscribe();
            let server = tonic::transport::Server::builder()
                .accept_http1(true)
                .tcp_nodelay(true)
                .max_concurrent_streams(options.max_concurrent_streams)
                .http2_keepalive_interval(options.keepalive_interval)
                .http2_keepalive_timeout(options.keepalive_timeout)
                // grpc-go's default: etcd takes request headers up to 16 MiB
                .http2_max_header_list_size(16 << 20)
                // outermost: it counts the code the client gets
                .layer(grpc_metrics::GrpcMetricsLayer)
                .layer(tower::util::MapResponseLayer::new(
                    v3rpc::recv_error::fix_response::<tonic::body::Body>,
                ))
                .add_routes(routes);
            tasks.push(tokio::spawn(async move {
                server
                    .serve_with_incoming_shutdown(
                        l.incoming().map_ok(AuthorityFix::new),
                        async move {
                            let _ = rx.recv().await;
                        },
                    )
                    .await
            }));
        }
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

#[derive(Clone, Copy)]
enum Serves {
    Client { grpc_only: bool },
    Http,
    Metrics,
}

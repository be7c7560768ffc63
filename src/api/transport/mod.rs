//! The client port's transport: binding the listen URLs, serving every route on each
//! listener (HTTP/2 for gRPC, HTTP/1.1 for the plain paths), graceful shutdown.

pub mod authority;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::{etcdhttp, metahttp, v3rpc};
use crate::server::Member;

/// All client-port routes: gRPC services, plain HTTP and the metadata HTTP paths (which
/// reach the store through `meta`, a client of this very server), told apart by path.
pub fn routes(member: Arc<Member>, meta: Arc<metahttp::MetaHttp>) -> tonic::service::Routes {
    let router = v3rpc::services(&member)
        .into_axum_router()
        .merge(etcdhttp::router(member.clone()))
        .merge(metahttp::router(meta));
    tonic::service::Routes::from(router)
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
    let shared = metahttp::MetaHttp::new(
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

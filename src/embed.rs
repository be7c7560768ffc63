//! Start a member in-process, like etcd's `embed` package: a host program gets a running
//! server on its client URLs and can stop it.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = metastore::config::Config::from_args(
//!     ["metastore", "--data-dir", "/tmp/m1", "--listen-client-urls", "http://127.0.0.1:0"].map(String::from),
//! )?;
//! let server = metastore::embed::Server::start(cfg).await?;
//! println!("serving on {}", server.client_url());
//! server.close().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::logline;
use crate::server::{compactor, lease_loop, Member};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config: {0}")]
    Config(#[from] crate::config::Error),
    #[error("member: {0}")]
    Member(#[from] crate::server::Error),
    #[error("listen: {0}")]
    Listen(#[from] std::io::Error),
}

pub struct Server {
    pub member: Arc<Member>,
    client_addrs: Vec<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    serve: JoinHandle<()>,
    compactor: Option<JoinHandle<()>>,
    lease_loop: JoinHandle<()>,
}

impl Server {
    pub async fn start(cfg: Config) -> Result<Server, Error> {
        let listeners = crate::api::bind(&cfg.client_urls()?).await?;
        let client_addrs: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let member = Member::start(&cfg).await?;
        let advertised = cfg.advertise_client_urls()?.join(" ");
        logline::info(
            &cfg.logger,
            "etcdserver",
            &format!(
                "published {{Name:{} ClientURLs:[{}]}} to cluster {:x}",
                cfg.name, advertised, member.cluster_id
            ),
            &[
                ("local-member-id", format!("{:x}", member.member_id)),
                (
                    "local-member-attributes",
                    format!("{{Name:{} ClientURLs:[{}]}}", cfg.name, advertised),
                ),
                ("cluster-id", format!("{:x}", member.cluster_id)),
            ],
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let serve_member = member.clone();
        let max_streams = cfg.max_concurrent_streams;
        let serve = tokio::spawn(async move {
            if let Err(e) = crate::api::serve(serve_member, listeners, max_streams, async move {
                let _ = stopped.await;
            })
            .await
            {
                tracing::error!(error = %e, "client server stopped");
            }
        });
        let (_, cluster_version) = crate::api::etcdhttp::versions(&member);
        let minor = cluster_version
            .rsplit_once('.')
            .map(|(v, _)| v.to_string())
            .unwrap_or(cluster_version);
        logline::info(
            &cfg.logger,
            "etcdserver/api",
            &format!("enabled capabilities for version {minor}"),
            &[("cluster-version", minor.clone())],
        );
        logline::info(&cfg.logger, "embed", "ready to serve client requests", &[]);
        for a in &client_addrs {
            logline::info(
                &cfg.logger,
                "embed",
                &format!("serving insecure client requests on {a}, this is strongly discouraged!"),
                &[("address", a.to_string())],
            );
        }
        let compactor = cfg
            .auto_compaction()?
            .map(|p| compactor::spawn(member.clone(), p));
        let lease_loop = lease_loop::spawn(member.clone());
        Ok(Server {
            lease_loop,
            member,
            client_addrs,
            stop: Some(stop),
            serve,
            compactor,
        })
    }

    /// The addresses the client listeners are bound to.
    pub fn client_addrs(&self) -> &[SocketAddr] {
        &self.client_addrs
    }

    /// `http://ip:port` of the first client listener.
    pub fn client_url(&self) -> String {
        format!("http://{}", self.client_addrs[0])
    }

    /// A client of this server over its first client URL (the one `meta` takes).
    pub async fn client(&self) -> Result<etcd_client::Client, etcd_client::Error> {
        etcd_client::Client::connect([self.client_url()], None).await
    }

    /// Stop serving and shut the member down.
    pub async fn close(mut self) {
        if let Some(c) = self.compactor.take() {
            c.abort();
        }
        self.lease_loop.abort();
        // watch and keep-alive streams never end by themselves: end them, or the graceful
        // shutdown below would wait for the clients forever
        self.member.close_streams();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.serve).await;
        self.member.shutdown().await;
    }
}

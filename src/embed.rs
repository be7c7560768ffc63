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

use crate::api::metahttp::OwnClient;
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
    #[error("{0}")]
    Tls(#[from] crate::tls::Error),
}

pub struct Server {
    pub member: Arc<Member>,
    client_addrs: Vec<SocketAddr>,
    /// A URL of each client listener that serves gRPC, as a client reaches it.
    client_urls: Vec<String>,
    /// How this server's own client reaches it: the first client URL, the TLS to dial a
    /// TLS-only port, and `--meta-user`'s credentials.
    own: crate::api::metahttp::OwnClient,
    stop: Option<oneshot::Sender<()>>,
    serve: JoinHandle<()>,
    compactor: Option<JoinHandle<()>>,
    lease_loop: JoinHandle<()>,
}

impl Server {
    pub async fn start(cfg: Config) -> Result<Server, Error> {
        let (port, own) = bind_client_port(&cfg).await?;
        let client_addrs: Vec<SocketAddr> =
            port.client.iter().filter_map(|l| l.local_addr()).collect();
        let client_urls: Vec<String> = port.client.iter().map(|l| l.reach_url()).collect();
        let serving: Vec<(String, bool)> = port
            .client
            .iter()
            .chain(port.http.iter())
            .map(|l| (l.reach_url(), l.serves_plain()))
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
        crate::metrics::set_level(cfg.flag("metrics"));
        let options = crate::api::ServeOptions {
            max_concurrent_streams: cfg.max_concurrent_streams,
            keepalive_interval: cfg.grpc_keepalive_interval(),
            keepalive_timeout: cfg.grpc_keepalive_timeout(),
            hosts: crate::api::transport::host_check::HostWhitelist::new(&cfg.host_whitelist()),
            gateway: cfg.enable_grpc_gateway,
            cors: crate::api::transport::cors::Cors::new(&cfg.cors()),
        };
        let serve = tokio::spawn(async move {
            if let Err(e) = crate::api::serve(serve_member, port, options, async move {
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
        for (url, plain) in &serving {
            let addr = url.split_once("://").map_or(url.as_str(), |(_, a)| a);
            let msg = if *plain {
                format!("serving insecure client requests on {addr}, this is strongly discouraged!")
            } else {
                format!("serving client requests on {addr}")
            };
            logline::info(&cfg.logger, "embed", &msg, &[("address", addr.to_string())]);
        }
        let compactor = cfg
            .auto_compaction()?
            .map(|p| compactor::spawn(member.clone(), p));
        let lease_loop = lease_loop::spawn(member.clone());
        Ok(Server {
            lease_loop,
            member,
            client_addrs,
            client_urls,
            own,
            stop: Some(stop),
            serve,
            compactor,
        })
    }

    /// The addresses the client listeners are bound to.
    pub fn client_addrs(&self) -> &[SocketAddr] {
        &self.client_addrs
    }

    /// The URL of the first client listener (`http://ip:port`, or `https://` for a
    /// listener that serves TLS only).
    pub fn client_url(&self) -> String {
        self.client_urls[0].clone()
    }

    /// A client of this server over its first client URL (the one `meta` takes), over
    /// TLS when that listener serves TLS only, authenticated as `meta_user` when auth is
    /// enabled (a client made while auth is off carries no credentials: ask again once
    /// it is on).
    pub async fn client(&self) -> Result<etcd_client::Client, etcd_client::Error> {
        Ok(self.own.connect().await?.0)
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

/// Bind every client-side listener the flags name, with the client port's TLS (a
/// generated certificate for `--auto-tls`), and say how the member reaches itself as a
/// client: for the metadata paths (a plain listener if there is one) and for
/// [`Server::client`] (the first listener).
async fn bind_client_port(
    cfg: &Config,
) -> Result<(crate::api::transport::ClientPort, OwnClient), Error> {
    let info = match cfg.client_tls()? {
        Some(mut info) => {
            if info.self_signed {
                let (cert, key) = crate::tls::self_signed(
                    &cfg.auto_tls_dir(),
                    &cfg.client_hosts()?,
                    cfg.self_signed_cert_validity,
                )?;
                info.cert_file = Some(cert);
                info.key_file = Some(key);
            }
            Some(info)
        }
        None => None,
    };
    let server = info.as_ref().map(crate::tls::server_config).transpose()?;
    let bind = crate::api::transport::bind;
    let port = crate::api::transport::ClientPort {
        client: bind(&cfg.client_urls()?, server.clone()).await?,
        http: bind(&cfg.client_http_urls()?, server.clone()).await?,
        metrics: bind(&cfg.metrics_urls()?, server).await?,
        self_client: None,
    };
    let client_tls = match &info {
        Some(info) => Some(dial_options(info)?),
        None => None,
    };
    let credentials = cfg.meta_credentials();
    let plain = port.client.iter().find(|l| l.serves_plain());
    let self_client = match (plain, port.client.first()) {
        (Some(l), _) => Some(OwnClient {
            url: l.reach_url(),
            tls: None,
            credentials: credentials.clone(),
        }),
        (None, Some(l)) => Some(OwnClient {
            url: l.reach_url(),
            tls: client_tls.clone(),
            credentials: credentials.clone(),
        }),
        (None, None) => None,
    };
    let own = OwnClient {
        url: port
            .client
            .first()
            .map(|l| l.reach_url())
            .unwrap_or_default(),
        tls: client_tls,
        credentials,
    };
    Ok((
        crate::api::transport::ClientPort {
            self_client,
            ..port
        },
        own,
    ))
}

/// How a client of this member dials its TLS: trusting the member's CA (or its own
/// generated certificate), presenting the member's certificate as the client's.
fn dial_options(info: &crate::tls::TlsInfo) -> Result<etcd_client::TlsOptions, Error> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| crate::tls::Error::File(format!("read {}: {e}", p.display())))
    };
    let cert_file = info.cert_file.as_deref().expect("TLS has a certificate");
    let key_file = info.key_file.as_deref().expect("TLS has a key");
    let ca = match &info.trusted_ca_file {
        Some(ca) => read(ca)?,
        None => read(cert_file)?,
    };
    Ok(etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(ca))
        .identity(etcd_client::Identity::from_pem(
            read(cert_file)?,
            read(key_file)?,
        )))
}

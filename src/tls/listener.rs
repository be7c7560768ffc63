//! The client port's listeners, as etcd's: several URLs, `http://` and `https://` on one
//! address (told apart by the connection's first byte: a TLS handshake starts with 0x16,
//! no HTTP request does), and `unix://` / `unixs://` sockets.
//!
//! TLS is terminated here, before the `:authority` repair and the routes see the bytes,
//! and the verified client certificate's common name travels with the connection
//! ([`ClientInfo`], which tonic hands every request in its extensions).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::Connected;

/// How long a new connection may take to send its first byte and finish a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections whose first byte and handshake are awaited at once.
const HANDSHAKES: usize = 128;

/// What a connection serves: plain, TLS, or both (on one address).
#[derive(Clone, Default)]
pub struct Schemes {
    pub plain: bool,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Over TLS, only a client certificate with this common name is let in (etcd's
    /// `--peer-cert-allowed-cn`).
    pub allowed_cn: Option<String>,
    /// Over TLS, only a client certificate valid for this host name is let in (etcd's
    /// `--peer-cert-allowed-hostname`).
    pub allowed_hostname: Option<String>,
}

impl Schemes {
    /// Whether a verified client certificate (`leaf`) passes the CN and host name checks
    /// (etcd: TLSInfo's VerifyPeerCertificate for AllowedCN/AllowedHostname).
    fn admits(&self, leaf: Option<&[u8]>) -> io::Result<()> {
        let refused = |why: String| Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
        if let Some(cn) = &self.allowed_cn {
            let got = leaf.and_then(super::common_name);
            if got.as_deref() != Some(cn.as_str()) {
                return refused(format!(
                    "client certificate authentication failed: common name {got:?} is not {cn:?}"
                ));
            }
        }
        if let Some(host) = &self.allowed_hostname {
            if !leaf.is_some_and(|der| super::matches_hostname(der, host)) {
                return refused(format!(
                    "client certificate authentication failed: not valid for {host:?}"
                ));
            }
        }
        Ok(())
    }
}

/// One bound socket and what it serves.
pub struct ClientListener {
    socket: Socket,
    schemes: Schemes,
    url: String,
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// Who is at the other end of a connection: its address and, over TLS with a client
/// certificate, the certificate's common name.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub remote: Option<SocketAddr>,
    pub common_name: Option<String>,
    pub tls: bool,
}

impl ClientListener {
    /// The bound address of a TCP listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Socket::Tcp(l) => l.local_addr().ok(),
            Socket::Unix(..) => None,
        }
    }

    /// A URL that reaches this listener: its scheme (`https` when it serves TLS only)
    /// and its bound address, loopback for a wildcard.
    pub fn reach_url(&self) -> String {
        match (&self.socket, self.serves_plain()) {
            (Socket::Tcp(l), plain) => {
                let mut addr = l.local_addr().expect("a bound listener has an address");
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                let scheme = if plain { "http" } else { "https" };
                format!("{scheme}://{addr}")
            }
            (Socket::Unix(_, path), plain) => {
                let scheme = if plain { "unix" } else { "unixs" };
                format!("{scheme}://{}", path.display())
            }
        }
    }

    /// Over TLS, let in only client certificates with this common name and valid for this
    /// host name (each when given).
    pub fn admit_only(mut self, cn: Option<String>, hostname: Option<String>) -> Self {
        self.schemes.allowed_cn = cn;
        self.schemes.allowed_hostname = hostname;
        self
    }

    pub fn serves_plain(&self) -> bool {
        self.schemes.plain
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The accepted connections, handshakes done, ready for the HTTP server. Up to
    /// `HANDSHAKES` connections wait for their first byte and handshake at once, so a slow
    /// or silent client holds up no other. The stream owns the socket: when the server
    /// drops it, the address is free to bind again.
    pub fn incoming(self) -> impl futures::Stream<Item = io::Result<ClientConn>> {
        use futures::StreamExt;
        let schemes = self.schemes.clone();
        futures::stream::unfold(self, |l| async move {
            let accepted = l.accept().await;
            Some((accepted, l))
        })
        .map(move |accepted| {
            let schemes = schemes.clone();
            async move {
                let (stream, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => return Some(Err(e)),
                };
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, open(stream, remote, &schemes)).await
                {
                    Ok(Ok(conn)) => Some(Ok(conn)),
                    Ok(Err(e)) if e.kind() == io::ErrorKind::PermissionDenied => {
                        tracing::warn!(error = %e, "connection refused");
                        None
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "client connection refused");
                        None
                    }
                    Err(_) => {
                        tracing::debug!("client connection handshake timed out");
                        None
                    }
                }
            }
        })
        .buffer_unordered(HANDSHAKES)
        .filter_map(std::future::ready)
    }

    /// The next connection; out of file descriptors and the like, wait and try again, as
    /// Go's server does.
    async fn accept(&self) -> io::Result<(Box<dyn Io>, Option<SocketAddr>)> {
        loop {
            let accepted = match &self.socket {
                Socket::Tcp(l) => l.accept().await.map(|(s, addr)| {
                    // tonic's tcp_nodelay applies to its own listener only; without it
                    // small answers wait for the client's delayed ACK (Nagle)
                    let _ = s.set_nodelay(true);
                    (Box::new(s) as Box<dyn Io>, Some(addr))
                }),
                Socket::Unix(l, _) => l
                    .accept()
                    .await
                    .map(|(s, _)| (Box::new(s) as Box<dyn Io>, None)),
            };
            match accepted {
                Err(e) if is_transient(&e) => tokio::time::sleep(Duration::from_millis(50)).await,
                other => return other,
            }
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(24)
        || e.raw_os_error() == Some(23)
}

/// Tell plain from TLS by the first byte, then finish the TLS handshake.
async fn open(
    mut stream: Box<dyn Io>,
    remote: Option<SocketAddr>,
    schemes: &Schemes,
) -> io::Result<ClientConn> {
    let info = ClientInfo {
        remote,
        ..Default::default()
    };
    let (tls, first) = match (&schemes.tls, schemes.plain) {
        (None, _) => {
            return Ok(ClientConn { io: stream, info });
        }
        (Some(tls), false) => (tls, Bytes::new()),
        (Some(tls), true) => {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let first = Bytes::copy_from_slice(&byte);
            if byte[0] != 0x16 {
                return Ok(ClientConn {
                    io: Box::new(Rewind::new(stream, first)),
                    info,
                });
            }
            (tls, first)
        }
    };
    let tls = TlsAcceptor::from(tls.clone())
        .accept(Rewind::new(stream, first))
        .await?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first());
    schemes.admits(leaf.map(|der| der.as_ref()))?;
    let common_name = leaf.and_then(|der| super::common_name(der));
    let info = ClientInfo {
        common_name,
        tls: true,
        ..info
    };
    Ok(ClientConn {
        io: Box::new(tls),
        info,
    })
}

/// Bind every listen URL; URLs naming one address share a listener that serves each of
/// their schemes. A host name binds every address it resolves to. `tls` is what an
/// `https://` or `unixs://` URL serves.
pub async fn bind(
    urls: &[String],
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<Vec<ClientListener>> {
    let mut tcp: BTreeMap<SocketAddr, (Schemes, String)> = BTreeMap::new();
    let mut unix: BTreeMap<String, (Schemes, String)> = BTreeMap::new();
    let want_tls = |scheme_tls: bool, schemes: &mut Schemes| -> io::Result<()> {
        if scheme_tls {
            schemes.tls = Some(tls.clone().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "a TLS URL needs a certificate")
            })?);
        } else {
            schemes.plain = true;
        }
        Ok(())
    };
    for url in urls {
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url.as_str()));
        match scheme {
            "unix" | "unixs" => {
                let entry = unix
                    .entry(rest.to_string())
                    .or_insert_with(|| (Schemes::default(), url.clone()));
                want_tls(scheme == "unixs", &mut entry.0)?;
            }
            _ => {
                let hostport = rest.split('/').next().unwrap_or(rest);
                let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(hostport).await?.collect();
                addrs.dedup();
                for addr in addrs {
                    let entry = tcp
                        .entry(addr)
                        .or_insert_with(|| (Schemes::default(), url.clone()));
                    want_tls(scheme == "https", &mut entry.0)?;
                }
            }
        }
    }
    let mut out = Vec::new();
    for (addr, (schemes, url)) in tcp {
        out.push(ClientListener {
            socket: Socket::Tcp(TcpListener::bind(addr).await?),
            schemes,
            url,
        });
    }
    for (path, (schemes, url)) in unix {
        // etcd removes a stale socket file before it listens
        let _ = std::fs::remove_file(&path);
        out.push(ClientListener {
            socket: Socket::Unix(UnixListener::bind(&path)?, PathBuf::from(path)),
            schemes,
            url,
        });
    }
    Ok(out)
}

/// A connection's bytes, whatever carries them (TCP, a unix socket, TLS over either).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection with bytes already read from it put back in front.
struct Rewind<S> {
    head: Bytes,
    io: S,
}

impl<S> Rewind<S> {
    fn new(io: S, head: Bytes) -> Self {
        Rewind { head, io }
    }
}

/// One client connection, plain or TLS, and who is at its other end.
pub struct ClientConn {
    io: Box<dyn Io>,
    info: ClientInfo,
}

impl Connected for ClientConn {
    type ConnectInfo = ClientInfo;

    fn connect_info(&self) -> ClientInfo {
        self.info.clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.head.is_empty() {
            let n = this.head.len().min(buf.remaining());
            buf.put_slice(&this.head[..n]);
            this.head.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncRead for ClientConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

super::write_through!([] Rewind<Box<dyn Io>>);
super::write_through!([] ClientConn);

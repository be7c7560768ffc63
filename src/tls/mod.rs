//! TLS for the client and peer ports, as etcd's `client/pkg/transport` TLSInfo: one
//! description of what a port's TLS is ([`TlsInfo`]), from which the server side
//! ([`server_config`]), the dialling side ([`client_config`]) and generated certificates
//! ([`self_signed`], for `--auto-tls`) are made. rustls with ring does the TLS.
//!
//! A leaf of the crate: imports nothing of it.

/// `AsyncWrite` for a connection wrapper whose writes go straight to its `io` field
/// (the wrappers change only what is read).
macro_rules! write_through {
    ([$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
            }
            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
            }
            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
            }
            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
            }
        }
    };
}
pub(crate) use write_through;

mod cipher;
mod client;
mod identity;
pub mod listener;
mod pem;
mod self_signed;
mod server;

use std::path::PathBuf;

pub use cipher::{parse_cipher_suites, parse_version, TlsVersion};
pub use client::{client_config, connector};
pub use identity::{common_name, matches_hostname};
pub use self_signed::self_signed;
pub use server::server_config;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file named by a flag could not be read, or holds no usable PEM.
    #[error("{0}")]
    File(String),
    /// A flag's value cannot be honoured.
    #[error("{0}")]
    Invalid(String),
    /// rustls refused the configuration.
    #[error("{0}")]
    Tls(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What one port's TLS is (etcd: transport.TLSInfo).
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The CA that client (or peer) certificates must chain to.
    pub trusted_ca_file: Option<PathBuf>,
    /// Require and verify a client certificate.
    pub client_cert_auth: bool,
    /// Certificates revoked by this CRL are refused.
    pub crl_file: Option<PathBuf>,
    /// Only a client certificate with this common name is let in (peers).
    pub allowed_cn: Option<String>,
    /// Only a client certificate valid for this host name is let in (peers).
    pub allowed_hostname: Option<String>,
    /// TLS 1.2 suites offered (empty: rustls' defaults). TLS 1.3 suites are always all
    /// offered, as Go's crypto/tls does.
    pub cipher_suites: Vec<rustls::SupportedCipherSuite>,
    pub min_version: TlsVersion,
    /// `None`: the newest rustls knows.
    pub max_version: Option<TlsVersion>,
    /// Whether the certificate was generated (`--auto-tls`): dialling peers of an
    /// auto-TLS cluster do not verify it, as etcd's do not.
    pub self_signed: bool,
}

impl TlsInfo {
    /// Whether this describes any TLS at all (a certificate to serve).
    pub fn is_enabled(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }
}

/// ring, the one crypto provider, with the suites `info` allows.
fn provider(info: &TlsInfo) -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !info.cipher_suites.is_empty() {
        provider
            .cipher_suites
            .retain(|s| s.version() == &rustls::version::TLS13 || info.cipher_suites.contains(s));
    }
    std::sync::Arc::new(provider)
}

fn versions(info: &TlsInfo) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let max = info.max_version.unwrap_or(TlsVersion::Tls13);
    [TlsVersion::Tls12, TlsVersion::Tls13]
        .into_iter()
        .filter(|v| *v >= info.min_version && *v <= max)
        .map(TlsVersion::rustls)
        .collect()
}

//! The client and peer ports' TLS as etcd's flags describe them (etcd: ClientTLSInfo and
//! PeerTLSInfo). `--cipher-suites` and the TLS versions apply to both ports, as in etcd.

use std::path::{Path, PathBuf};

use crate::tls::{TlsInfo, TlsVersion};

use super::{Config, Error};

/// What both ports share: the TLS 1.2 suites and the version range.
struct Shared {
    cipher_suites: Vec<rustls::SupportedCipherSuite>,
    min_version: TlsVersion,
    max_version: Option<TlsVersion>,
}

impl Config {
    fn tls_shared(&self) -> Result<Shared, Error> {
        let tls_err = |e: crate::tls::Error| Error::Invalid(e.to_string());
        let cipher_suites = match &self.cipher_suites {
            Some(list) => crate::tls::parse_cipher_suites(list).map_err(tls_err)?,
            None => Vec::new(),
        };
        let min_version = crate::tls::parse_version("tls-min-version", &self.tls_min_version)
            .map_err(tls_err)?
            .unwrap_or_default();
        let max_version =
            crate::tls::parse_version("tls-max-version", &self.tls_max_version).map_err(tls_err)?;
        if max_version.is_some_and(|max| max < min_version) {
            return Err(Error::Invalid(
                "--tls-max-version must be greater than or equal to --tls-min-version".into(),
            ));
        }
        if min_version == TlsVersion::Tls13 && !cipher_suites.is_empty() {
            return Err(Error::Invalid(
                "cipher suites cannot be configured when only TLS1.3 or greater is supported"
                    .into(),
            ));
        }
        Ok(Shared {
            cipher_suites,
            min_version,
            max_version,
        })
    }

    /// The client port's TLS, as the flags describe it (etcd: ClientTLSInfo), or `None`
    /// when no client URL is `https://` or `unixs://`. With `--auto-tls` and no
    /// certificate given, the certificate is generated at start (`auto_tls_dir`). An
    /// `https://` URL with neither is etcd's fatal start error.
    pub fn client_tls(&self) -> Result<Option<TlsInfo>, Error> {
        let urls: Vec<String> = self
            .client_urls()?
            .into_iter()
            .chain(self.client_http_urls()?)
            .chain(self.metrics_urls()?)
            .collect();
        let shared = self.tls_shared()?;
        let Some(secure) = urls
            .iter()
            .find(|u| u.starts_with("https://") || u.starts_with("unixs://"))
        else {
            return Ok(None);
        };
        let given = self.cert_file.is_some() || self.key_file.is_some();
        if !given && !self.auto_tls {
            return Err(Error::Invalid(format!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url {secure} with HTTPS scheme"
            )));
        }
        if given && (self.cert_file.is_none() || self.key_file.is_none()) {
            return Err(Error::Invalid(
                "--cert-file and --key-file must be given together".into(),
            ));
        }
        Ok(Some(TlsInfo {
            cert_file: path(&self.cert_file),
            key_file: path(&self.key_file),
            trusted_ca_file: path(&self.trusted_ca_file),
            client_cert_auth: self.client_cert_auth,
            crl_file: path(&self.client_crl_file),
            allowed_cn: None,
            allowed_hostname: None,
            cipher_suites: shared.cipher_suites,
            min_version: shared.min_version,
            max_version: shared.max_version,
            self_signed: !given,
        }))
    }

    /// The peer port's TLS (etcd: PeerTLSInfo), or `None` when no peer URL, listened on or
    /// advertised, is `https://`. With `--peer-auto-tls` and no certificate given, the
    /// certificate is generated at start (`peer_auto_tls_dir`); with neither, etcd's
    /// start error. Members dial `https://` peers with the same certificate as their
    /// client certificate, trusting `--peer-trusted-ca-file` (or, self-signed, nothing).
    pub fn peer_tls(&self) -> Result<Option<TlsInfo>, Error> {
        let shared = self.tls_shared()?;
        let listen = self.listen_peer_urls()?;
        let Some(secure) = listen
            .iter()
            .chain(&self.peer_urls()?)
            .find(|u| u.starts_with("https://"))
            .cloned()
        else {
            return Ok(None);
        };
        let given = self.peer_cert_file.is_some() || self.peer_key_file.is_some();
        if !given && !self.peer_auto_tls {
            let addr = secure.trim_start_matches("https://");
            return Err(Error::Invalid(format!(
                "cannot listen on TLS for {addr}: KeyFile and CertFile are not presented"
            )));
        }
        if given && (self.peer_cert_file.is_none() || self.peer_key_file.is_none()) {
            return Err(Error::Invalid(
                "--peer-cert-file and --peer-key-file must be given together".into(),
            ));
        }
        if self.peer_client_cert_auth && self.peer_trusted_ca_file.is_none() {
            return Err(Error::Invalid(
                "--peer-client-cert-auth needs --peer-trusted-ca-file".into(),
            ));
        }
        let flag = |name: &str| Some(self.flag(name).to_string()).filter(|v| !v.is_empty());
        Ok(Some(TlsInfo {
            cert_file: path(&self.peer_cert_file),
            key_file: path(&self.peer_key_file),
            trusted_ca_file: path(&self.peer_trusted_ca_file),
            client_cert_auth: self.peer_client_cert_auth,
            crl_file: path(&flag("peer-crl-file")),
            allowed_cn: self.peer_cert_allowed_cn.clone().filter(|v| !v.is_empty()),
            allowed_hostname: flag("peer-cert-allowed-hostname"),
            cipher_suites: shared.cipher_suites,
            min_version: shared.min_version,
            max_version: shared.max_version,
            self_signed: !given,
        }))
    }

    /// `--peer-client-cert-file` and `--peer-client-key-file`, when both are given: the
    /// certificate a member presents when it dials its peers.
    pub fn peer_client_cert(&self) -> Option<(PathBuf, PathBuf)> {
        let cert = self.flag("peer-client-cert-file");
        let key = self.flag("peer-client-key-file");
        (!cert.is_empty() && !key.is_empty()).then(|| (PathBuf::from(cert), PathBuf::from(key)))
    }

    /// Where `--auto-tls` keeps the generated client certificate (etcd's place).
    pub fn auto_tls_dir(&self) -> PathBuf {
        Path::new(&self.data_dir()).join("fixtures").join("client")
    }

    /// Where `--peer-auto-tls` keeps the generated peer certificate (etcd's place).
    pub fn peer_auto_tls_dir(&self) -> PathBuf {
        Path::new(&self.data_dir()).join("fixtures").join("peer")
    }

    /// The hosts of the listen client URLs, for a generated certificate.
    pub fn client_hosts(&self) -> Result<Vec<String>, Error> {
        Ok(hosts(&self.client_urls()?))
    }

    /// The hosts of the listen and advertised peer URLs, for a generated certificate.
    pub fn peer_hosts(&self) -> Result<Vec<String>, Error> {
        let mut urls = self.listen_peer_urls()?;
        urls.extend(self.peer_urls()?);
        Ok(hosts(&urls))
    }
}

fn path(p: &Option<String>) -> Option<PathBuf> {
    p.as_ref().map(PathBuf::from)
}

/// The host of each URL (no port, no IPv6 brackets).
fn hosts(urls: &[String]) -> Vec<String> {
    urls.iter()
        .filter_map(|u| {
            let rest = u.split_once("://")?.1;
            let hostport = rest.split('/').next()?;
            let host = match hostport.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
                _ => hostport,
            };
            Some(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
        })
        .collect()
}

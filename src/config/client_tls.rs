//! The client port's TLS as etcd's flags describe it (etcd: ClientTLSInfo).

use super::{Config, Error};

impl Config {
    /// The client port's TLS, as the flags describe it (etcd: ClientTLSInfo), or `None`
    /// when no client URL is `https://` or `unixs://`. With `--auto-tls` and no
    /// certificate given, the certificate is generated at start (`auto_tls_dir`). An
    /// `https://` URL with neither is etcd's fatal start error.
    pub fn client_tls(&self) -> Result<Option<crate::tls::TlsInfo>, Error> {
        let urls: Vec<String> = self
            .client_urls()?
            .into_iter()
            .chain(self.client_http_urls()?)
            .chain(self.metrics_urls()?)
            .collect();
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
        if min_version == crate::tls::TlsVersion::Tls13 && !cipher_suites.is_empty() {
            return Err(Error::Invalid(
                "cipher suites cannot be configured when only TLS1.3 or greater is supported"
                    .into(),
            ));
        }
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
        let path = |p: &Option<String>| p.as_ref().map(std::path::PathBuf::from);
        Ok(Some(crate::tls::TlsInfo {
            cert_file: path(&self.cert_file),
            key_file: path(&self.key_file),
            trusted_ca_file: path(&self.trusted_ca_file),
            client_cert_auth: self.client_cert_auth,
            crl_file: path(&self.client_crl_file),
            allowed_cn: None,
            allowed_hostname: None,
            cipher_suites,
            min_version,
            max_version,
            self_signed: !given,
        }))
    }

    /// Where `--auto-tls` keeps the generated client certificate (etcd's place).
    pub fn auto_tls_dir(&self) -> std::path::PathBuf {
        std::path::Path::new(&self.data_dir())
            .join("fixtures")
            .join("client")
    }

    /// The hosts of the listen client URLs, for a generated certificate.
    pub fn client_hosts(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .client_urls()?
            .iter()
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
            .collect())
    }
}

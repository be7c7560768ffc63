//! The serving side of a port's TLS.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use super::{pem, provider, versions, Error, Result, TlsInfo};

/// rustls' server configuration for `info`: its certificate, the client verification
/// `--client-cert-auth` asks for (against the trusted CA, minus the CRL), the allowed
/// suites and versions, and ALPN for both HTTP/2 (gRPC) and HTTP/1.1.
pub fn server_config(info: &TlsInfo) -> Result<Arc<ServerConfig>> {
    let (Some(cert_file), Some(key_file)) = (&info.cert_file, &info.key_file) else {
        return Err(Error::Invalid(
            "TLS needs both a certificate and a key file".into(),
        ));
    };
    let certs = pem::certs(cert_file)?;
    let key = pem::key(key_file)?;
    let provider = provider(info);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(info))
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = if info.client_cert_auth {
        let Some(ca) = &info.trusted_ca_file else {
            return Err(Error::Invalid(
                "client certificate authentication needs a trusted CA file (--trusted-ca-file)"
                    .into(),
            ));
        };
        let mut verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(pem::roots(ca)?), provider);
        if let Some(crl) = &info.crl_file {
            verifier = verifier.with_crls(pem::crls(crl)?);
        }
        let verifier = verifier.build().map_err(|e| Error::Tls(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

//! Certificates, keys and CRLs from the PEM files etcd's flags name.

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::{Error, Result};

fn file_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File(format!("{what} {}: {e}", path.display()))
}

/// Every certificate in a PEM file (a chain: the leaf first).
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error("open certificate file", path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| file_error("read certificate file", path, e))?;
    if certs.is_empty() {
        return Err(file_error(
            "read certificate file",
            path,
            "no certificate in it",
        ));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error("read key file", path, e))
}

/// The CA certificates of a trusted-CA file.
pub fn roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certs(path)? {
        roots
            .add(cert)
            .map_err(|e| file_error("add trusted CA from", path, e))?;
    }
    Ok(roots)
}

/// The revocation lists of a CRL file: PEM (`X509 CRL`) or, as etcd also takes, DER.
pub fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let raw = std::fs::read(path).map_err(|e| file_error("read CRL file", path, e))?;
    let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&raw)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| file_error("read CRL file", path, e))?;
    if pem.is_empty() {
        return Ok(vec![CertificateRevocationListDer::from(raw)]);
    }
    Ok(pem)
}

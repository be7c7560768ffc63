//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate for the member's hosts,
//! generated once into the data dir and reused after (etcd: transport.SelfCert, which
//! writes `<data-dir>/fixtures/client` and `.../peer`).

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

use super::{Error, Result};

/// The certificate and key files in `dir`, made for `hosts` (host names or IPs, from
/// the advertised URLs) and valid for `validity_years`, unless they exist already.
pub fn self_signed(
    dir: &Path,
    hosts: &[String],
    validity_years: u32,
) -> Result<(PathBuf, PathBuf)> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let io = |e: std::io::Error| {
        Error::File(format!(
            "write self-signed certificate in {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let gen = |e: rcgen::Error| Error::Tls(format!("generate a self-signed certificate: {e}"));
    let mut sans: Vec<String> = hosts.to_vec();
    sans.sort();
    sans.dedup();
    let mut params = CertificateParams::new(sans).map_err(gen)?;
    params
        .distinguished_name
        .push(DnType::OrganizationName, "etcd");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365 * i64::from(validity_years.max(1)));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(gen)?;
    let cert = params.self_signed(&key).map_err(gen)?;
    write_private(&key_path, key.serialize_pem().as_bytes()).map_err(io)?;
    std::fs::write(&cert_path, cert.pem()).map_err(io)?;
    Ok((cert_path, key_path))
}

/// A file only its owner can read (the key).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let (cert, key) = self_signed(dir.path(), &hosts, 1).unwrap();
        let first = std::fs::read(&cert).unwrap();
        let der = super::super::pem::certs(&cert).unwrap().remove(0);
        assert!(super::super::matches_hostname(&der, "127.0.0.1"));
        assert!(super::super::matches_hostname(&der, "localhost"));
        super::super::pem::key(&key).unwrap();
        let (again, _) = self_signed(dir.path(), &hosts, 1).unwrap();
        assert_eq!(std::fs::read(again).unwrap(), first);
    }
}

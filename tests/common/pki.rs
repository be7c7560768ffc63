//! Test certificates made per run with rcgen: a CA, leaves it signs (server and client
//! use), and a CRL, written as PEM files into a directory.
#![allow(dead_code)]

use std::path::Path;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams, DnType,
    IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};

/// A CA: its certificate and key.
pub struct Ca {
    pub cert: Certificate,
    pub key: KeyPair,
}

fn write(dir: &Path, name: &str, data: String) {
    std::fs::write(dir.join(name), data).unwrap();
}

/// A self-signed CA with common name `cn`, written as `<file>.pem`.
pub fn ca(dir: &Path, file: &str, cn: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    write(dir, &format!("{file}.pem"), cert.pem());
    Ca { cert, key }
}

/// A certificate signed by `ca` for server and client use, with common name `cn`, the
/// subject alternative names `sans` and `serial`, written as `<name>.pem` and
/// `<name>-key.pem`.
pub fn leaf(dir: &Path, ca: &Ca, name: &str, cn: &str, sans: &[&str], serial: u64) {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(sans).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    write(dir, &format!("{name}.pem"), cert.pem());
    write(dir, &format!("{name}-key.pem"), key.serialize_pem());
}

/// A CRL of `ca` revoking the certificate with serial `revoked`, written as `crl.pem`.
pub fn crl(dir: &Path, ca: &Ca, revoked: u64) {
    let now = time::OffsetDateTime::now_utc();
    let crl = CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(30),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(revoked),
            revocation_time: now - time::Duration::hours(1),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.cert, &ca.key)
    .unwrap();
    write(dir, "crl.pem", crl.pem().unwrap());
}

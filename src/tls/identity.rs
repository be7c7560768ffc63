//! What a verified certificate says about its holder: the common name (etcd takes it as
//! the user name under `--client-cert-auth`, and checks it against
//! `--peer-cert-allowed-cn`) and the host names it is valid for
//! (`--peer-cert-allowed-hostname`).

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The subject's common name, if the certificate parses and has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Whether the certificate is valid for `host` (an IP address or a DNS name, `*.`
/// wildcards in the certificate matching one label), as Go's VerifyHostname.
pub fn matches_hostname(der: &[u8], host: &str) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    let ip: Option<IpAddr> = host.parse().ok();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    san.value.general_names.iter().any(|name| match (name, ip) {
        (GeneralName::IPAddress(raw), Some(ip)) => match ip {
            IpAddr::V4(v4) => *raw == v4.octets(),
            IpAddr::V6(v6) => *raw == v6.octets(),
        },
        (GeneralName::DNSName(dns), None) => dns_matches(dns, &host),
        _ => false,
    })
}

fn dns_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_a_generated_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["node1.example.com".into(), "127.0.0.1".into()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "root");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der();
        assert_eq!(common_name(der).as_deref(), Some("root"));
        assert!(matches_hostname(der, "node1.example.com"));
        assert!(matches_hostname(der, "127.0.0.1"));
        assert!(!matches_hostname(der, "node2.example.com"));
        assert!(!matches_hostname(der, "127.0.0.2"));
        assert!(dns_matches("*.example.com", "a.example.com"));
        assert!(!dns_matches("*.example.com", "a.b.example.com"));
    }
}

//! etcd's `--cipher-suites` (Go's crypto/tls names) and `--tls-min-version` /
//! `--tls-max-version`, mapped to what rustls offers.

use rustls::crypto::ring::cipher_suite as suite;
use rustls::SupportedCipherSuite;

use super::{Error, Result};

/// Go's TLS 1.2 suite names (etcd: tlsutil.cipherSuites) that rustls offers. Go knows two
/// names for each ChaCha20 suite.
const OFFERED: &[(&str, SupportedCipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Go's names that etcd takes and rustls does not offer: CBC, RC4 and 3DES ciphers and
/// RSA key exchange, which rustls leaves out as unsafe.
const NOT_OFFERED: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// A comma-separated `--cipher-suites` list. Unknown names get etcd's message; a name
/// etcd takes and rustls cannot honour is refused, saying so, rather than dropped.
pub fn parse_cipher_suites(list: &str) -> Result<Vec<SupportedCipherSuite>> {
    let mut out = Vec::new();
    // etcd neither trims nor folds case: "A, B" fails on " B"
    for name in list.split(',') {
        if let Some((_, s)) = OFFERED.iter().find(|(n, _)| *n == name) {
            if !out.contains(s) {
                out.push(*s);
            }
        } else if NOT_OFFERED.contains(&name) {
            return Err(Error::Invalid(format!(
                "--cipher-suites: {name} is not offered by metastore's TLS library (rustls offers \
                 only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305)"
            )));
        } else {
            return Err(Error::Invalid(format!(
                "unexpected TLS cipher suite {name:?}"
            )));
        }
    }
    Ok(out)
}

/// A protocol version as etcd's flags name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub(super) fn rustls(self) -> &'static rustls::SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }
}

/// `--tls-min-version` / `--tls-max-version`: "" is the default (`None`); TLS 1.0 and
/// 1.1, which etcd takes, are refused, since rustls does not speak them.
pub fn parse_version(flag: &str, v: &str) -> Result<Option<TlsVersion>> {
    match v {
        "" => Ok(None),
        "TLS1.2" => Ok(Some(TlsVersion::Tls12)),
        "TLS1.3" => Ok(Some(TlsVersion::Tls13)),
        "TLS1.0" | "TLS1.1" => Err(Error::Invalid(format!(
            "--{flag} {v}: metastore's TLS library (rustls) speaks TLS1.2 and TLS1.3 only"
        ))),
        _ => Err(Error::Invalid(format!(
            "unexpected TLS version {v:?} (must be one of: TLS1.2, TLS1.3)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_go_name_is_taken_or_refused_with_a_reason() {
        let all = parse_cipher_suites(
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        )
        .unwrap();
        assert_eq!(all.len(), 2);
        for name in NOT_OFFERED {
            let e = parse_cipher_suites(name).unwrap_err().to_string();
            assert!(e.contains("not offered"), "{name}: {e}");
        }
        let e = parse_cipher_suites("BOGUS").unwrap_err().to_string();
        assert_eq!(e, "unexpected TLS cipher suite \"BOGUS\"");
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("tls-min-version", "").unwrap(), None);
        assert_eq!(
            parse_version("tls-min-version", "TLS1.3").unwrap(),
            Some(TlsVersion::Tls13)
        );
        assert!(parse_version("tls-min-version", "TLS1.1").is_err());
        assert!(parse_version("tls-min-version", "bogus").is_err());
    }
}

//! JWTs signed ES512 (ECDSA over P-521 with SHA-512, RFC 7518 3.4), which etcd offers and
//! our JWT crate does not: the JWS compact form written here, the curve arithmetic from
//! the `p521` crate. The signature is r || s, 66 bytes each, as the RFC fixes it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p521::ecdsa::signature::{Signer, Verifier};
use p521::ecdsa::{Signature, SigningKey, VerifyingKey};
use p521::pkcs8::{DecodePrivateKey, DecodePublicKey};

/// The JOSE header of every token: `{"alg":"ES512","typ":"JWT"}`.
const HEADER: &str = r#"{"alg":"ES512","typ":"JWT"}"#;

pub struct Es512 {
    signing: Option<SigningKey>,
    verifying: VerifyingKey,
}

fn secret(pem: &str) -> Result<p521::SecretKey, String> {
    p521::SecretKey::from_pkcs8_pem(pem)
        .or_else(|_| p521::SecretKey::from_sec1_pem(pem))
        .map_err(|e| format!("priv-key: not a P-521 private key: {e}"))
}

impl Es512 {
    /// From PEM: a private key (PKCS#8 or SEC1), a public key (SPKI), or both.
    pub fn new(public: Option<&str>, private: Option<&str>) -> Result<Self, String> {
        let signing = match private {
            Some(pem) => Some(
                SigningKey::from_bytes(&secret(pem)?.to_bytes())
                    .map_err(|e| format!("priv-key: {e}"))?,
            ),
            None => None,
        };
        let verifying = match (public, &signing) {
            (Some(pem), _) => {
                let pk = p521::PublicKey::from_public_key_pem(pem)
                    .map_err(|e| format!("pub-key: not a P-521 public key: {e}"))?;
                VerifyingKey::from_sec1_bytes(&pk.to_sec1_bytes())
                    .map_err(|e| format!("pub-key: {e}"))?
            }
            (None, Some(s)) => VerifyingKey::from(s),
            (None, None) => return Err(super::jwt_token::ERR_MISSING_KEY.into()),
        };
        Ok(Es512 { signing, verifying })
    }

    pub fn can_sign(&self) -> bool {
        self.signing.is_some()
    }

    /// A token of `claims` (JSON); `None` on a verify-only member.
    pub fn sign(&self, claims: &[u8]) -> Option<String> {
        let key = self.signing.as_ref()?;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let sig: Signature = key.sign(input.as_bytes());
        Some(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(sig.to_bytes())
        ))
    }

    /// The claims (JSON) of a token signed ES512 with our key.
    pub fn verify(&self, token: &str) -> Option<Vec<u8>> {
        let (input, sig) = token.rsplit_once('.')?;
        let (header, claims) = input.split_once('.')?;
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header["alg"] != "ES512" {
            return None;
        }
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).ok()?).ok()?;
        self.verifying.verify(input.as_bytes(), &sig).ok()?;
        URL_SAFE_NO_PAD.decode(claims).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Es512 {
        let sk = p521::SecretKey::random(&mut p521::elliptic_curve::rand_core::OsRng);
        let signing = SigningKey::from_bytes(&sk.to_bytes()).unwrap();
        Es512 {
            verifying: VerifyingKey::from(&signing),
            signing: Some(signing),
        }
    }

    #[test]
    fn tokens_verify_with_the_key_only_and_untampered() {
        let (k, other) = (keys(), keys());
        let token = k.sign(br#"{"username":"a"}"#).unwrap();
        assert_eq!(
            token
                .split('.')
                .nth(2)
                .map(|s| URL_SAFE_NO_PAD.decode(s).unwrap().len()),
            Some(132)
        );
        assert_eq!(k.verify(&token).unwrap(), br#"{"username":"a"}"#);
        assert!(other.verify(&token).is_none());
        let (head, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = format!(
            "{head}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(br#"{"username":"root"}"#)
        );
        assert!(k.verify(&forged).is_none());
    }
}

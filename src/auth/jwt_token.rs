//! etcd's JWT tokens (auth/jwt.go, `--auth-token jwt,...`): a token is a signed JWT with
//! the claims `username`, `revision` (the auth revision at Authenticate) and `exp`, so any
//! member holding the key verifies a token another member issued. Signed and verified
//! with the `jsonwebtoken` crate.
//!
//! A member given only the public key verifies but cannot issue ("auth: token signing
//! attempted with verify-only key", as etcd). A token carries its auth revision: after an
//! auth change it is refused as old (`revision of auth store is old`) and clients
//! authenticate again, as with etcd. Nothing revokes a JWT before it expires but that.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::es512::Es512;

/// etcd's errors for JWT options and keys (auth/jwt.go, auth/options.go).
pub const ERR_INVALID_METHOD: &str = "auth: invalid auth signature method";
pub const ERR_MISSING_KEY: &str = "auth: missing key data";
pub const ERR_KEY_MISMATCH: &str = "auth: public and private keys don't match";
pub const ERR_VERIFY_ONLY: &str = "auth: token signing attempted with verify-only key";

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// How tokens are signed and verified.
enum Keys {
    /// Every method but ES512, by the `jsonwebtoken` crate; `signing` is None on a
    /// verify-only member.
    Crate {
        algorithm: Algorithm,
        signing: Option<EncodingKey>,
        verifying: DecodingKey,
    },
    Es512(Box<Es512>),
}

pub struct JwtTokens {
    keys: Keys,
    ttl: Duration,
}

/// The algorithm of etcd's `sign-method` name.
fn algorithm(name: &str) -> Result<Algorithm, String> {
    Ok(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        _ => return Err(ERR_INVALID_METHOD.into()),
    })
}

/// The public key of a PKCS#8 private key, as a PEM `PUBLIC KEY`.
fn public_of(private_pem: &str) -> Result<String, String> {
    let pair = rcgen::KeyPair::from_pem(private_pem)
        .map_err(|e| format!("priv-key: {e} (give pub-key too, or priv-key in PKCS#8 form)"))?;
    Ok(pair.public_key_pem())
}

impl JwtTokens {
    /// Tokens signed with `sign_method` (etcd's names: RS256..PS512, ES256..ES512, EdDSA,
    /// HS256..HS512) from the PEM files' contents. For HS*, `priv_key` is the secret.
    pub fn new(
        sign_method: &str,
        pub_key: Option<&[u8]>,
        priv_key: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<Self, String> {
        let keys = if sign_method == "ES512" {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            Keys::Es512(Box::new(Es512::new(
                pub_key.map(text).as_deref(),
                priv_key.map(text).as_deref(),
            )?))
        } else {
            crate_keys(algorithm(sign_method)?, pub_key, priv_key)?
        };
        let tokens = JwtTokens { keys, ttl };
        // Both keys given: they must be a pair (etcd checks the same).
        let can_sign = match &tokens.keys {
            Keys::Crate { signing, .. } => signing.is_some(),
            Keys::Es512(k) => k.can_sign(),
        };
        if can_sign {
            let probe = tokens.sign("probe", 0, Duration::from_secs(60))?;
            if tokens.info(&probe).is_none() {
                return Err(ERR_KEY_MISMATCH.into());
            }
        }
        Ok(tokens)
    }

    /// A token for `user` at auth revision `revision`, expiring after the TTL.
    pub fn assign(&self, user: &str, revision: u64) -> Result<String, String> {
        self.sign(user, revision, self.ttl)
    }

    fn sign(&self, user: &str, revision: u64, ttl: Duration) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp: (now + ttl).as_secs(),
        };
        match &self.keys {
            Keys::Crate {
                algorithm, signing, ..
            } => {
                let key = signing.as_ref().ok_or(ERR_VERIFY_ONLY)?;
                jsonwebtoken::encode(&Header::new(*algorithm), &claims, key)
                    .map_err(|e| e.to_string())
            }
            Keys::Es512(k) => {
                let json = serde_json::to_vec(&claims).map_err(|e| e.to_string())?;
                k.sign(&json).ok_or_else(|| ERR_VERIFY_ONLY.to_string())
            }
        }
    }

    /// The user and auth revision of a token signed with our key and not expired.
    pub fn info(&self, token: &str) -> Option<(String, u64)> {
        let claims = match &self.keys {
            Keys::Crate {
                algorithm,
                verifying,
                ..
            } => {
                let mut v = Validation::new(*algorithm);
                // jwt-go checks `exp` without leeway
                v.leeway = 0;
                jsonwebtoken::decode::<Claims>(token, verifying, &v)
                    .map(|t| t.claims)
                    .map_err(|e| e.to_string())
            }
            Keys::Es512(k) => k
                .verify(token)
                .ok_or_else(|| "invalid signature".to_string())
                .and_then(|json| serde_json::from_slice::<Claims>(&json).map_err(|e| e.to_string()))
                .and_then(|c| {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs();
                    if c.exp < now {
                        Err("token is expired".to_string())
                    } else {
                        Ok(c)
                    }
                }),
        };
        match claims {
            Ok(c) => Some((c.username, c.revision)),
            Err(err) => {
                tracing::warn!(error = %err, "failed to parse a JWT token");
                None
            }
        }
    }
}

/// The `jsonwebtoken` keys of `algorithm` from the PEM files' contents.
fn crate_keys(
    algorithm: Algorithm,
    pub_key: Option<&[u8]>,
    priv_key: Option<&[u8]>,
) -> Result<Keys, String> {
    let e = |e: jsonwebtoken::errors::Error| e.to_string();
    let (signing, verifying) = match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            let secret = priv_key.ok_or(ERR_MISSING_KEY)?;
            (
                Some(EncodingKey::from_secret(secret)),
                DecodingKey::from_secret(secret),
            )
        }
        _ => {
            type Enc = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;
            type Dec = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;
            let (enc, dec): (Enc, Dec) = match algorithm {
                Algorithm::ES256 | Algorithm::ES384 => {
                    (EncodingKey::from_ec_pem, DecodingKey::from_ec_pem)
                }
                Algorithm::EdDSA => (EncodingKey::from_ed_pem, DecodingKey::from_ed_pem),
                _ => (EncodingKey::from_rsa_pem, DecodingKey::from_rsa_pem),
            };
            let public = match (pub_key, priv_key) {
                (Some(p), _) => p.to_vec(),
                (None, Some(k)) => public_of(&String::from_utf8_lossy(k))?.into_bytes(),
                (None, None) => return Err(ERR_MISSING_KEY.into()),
            };
            let signing = priv_key.map(enc).transpose().map_err(e)?;
            (signing, dec(&public).map_err(e)?)
        }
    };
    Ok(Keys::Crate {
        algorithm,
        signing,
        verifying,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
        let k = rcgen::KeyPair::generate_for(alg).unwrap();
        (k.serialize_pem(), k.public_key_pem())
    }

    #[test]
    fn every_method_signs_and_verifies_and_refuses_tampering() {
        let ttl = Duration::from_secs(60);
        let ec256 = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let ec384 = pair(&rcgen::PKCS_ECDSA_P384_SHA384);
        let ed = pair(&rcgen::PKCS_ED25519);
        let secret = ("s3cret".to_string(), String::new());
        for (method, (private, public)) in [
            ("ES256", &ec256),
            ("ES384", &ec384),
            ("EdDSA", &ed),
            ("HS256", &secret),
            ("HS512", &secret),
        ] {
            let public = (!public.is_empty()).then_some(public.as_bytes());
            let t = JwtTokens::new(method, public, Some(private.as_bytes()), ttl).unwrap();
            let token = t.assign("alice", 7).unwrap();
            assert_eq!(t.info(&token), Some(("alice".into(), 7)), "{method}");
            // another signature, or claims changed under the signature
            let mut parts: Vec<String> = token.split('.').map(String::from).collect();
            parts[1] = parts[1].chars().rev().collect();
            assert_eq!(t.info(&parts.join(".")), None, "{method} tampered");
        }
        // verify-only: no signing, but tokens of the key holder verify
        let signer = JwtTokens::new("ES256", None, Some(ec256.0.as_bytes()), ttl).unwrap();
        let verifier = JwtTokens::new("ES256", Some(ec256.1.as_bytes()), None, ttl).unwrap();
        let token = signer.assign("bob", 3).unwrap();
        assert_eq!(verifier.info(&token), Some(("bob".into(), 3)));
        assert_eq!(verifier.assign("bob", 3).unwrap_err(), ERR_VERIFY_ONLY);
        // another key's token is refused
        let other = JwtTokens::new("ES256", None, Some(ec384.0.as_bytes()), ttl);
        assert!(other.is_err(), "an ES384 key is not an ES256 key");
        let stranger = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let stranger = JwtTokens::new("ES256", None, Some(stranger.0.as_bytes()), ttl).unwrap();
        assert_eq!(stranger.info(&token), None);
    }

    #[test]
    fn bad_options_get_etcds_errors() {
        let ttl = Duration::from_secs(60);
        let ec = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let other = pair(&rcgen::PKCS_ECDSA_P256_SHA256);
        let err = |r: Result<JwtTokens, String>| r.err().unwrap();
        assert_eq!(
            err(JwtTokens::new("XX1", None, None, ttl)),
            ERR_INVALID_METHOD
        );
        assert_eq!(
            err(JwtTokens::new("ES256", None, None, ttl)),
            ERR_MISSING_KEY
        );
        assert_eq!(
            err(JwtTokens::new("HS256", None, None, ttl)),
            ERR_MISSING_KEY
        );
        assert_eq!(
            err(JwtTokens::new(
                "ES256",
                Some(other.1.as_bytes()),
                Some(ec.0.as_bytes()),
                ttl
            )),
            ERR_KEY_MISMATCH
        );
        assert_eq!(
            err(JwtTokens::new("ES512", None, None, ttl)),
            ERR_MISSING_KEY
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let t = JwtTokens::new("HS256", None, Some(b"k"), Duration::ZERO).unwrap();
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        let past = Claims {
            username: "a".into(),
            revision: 1,
            exp: 1,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &past,
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert_eq!(t.info(&token), None);
    }
}

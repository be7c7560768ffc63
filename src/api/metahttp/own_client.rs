//! How the member's own clients reach its store: the typed-metadata HTTP paths and
//! `embed::Server::client()`, over the member's client URL (with its TLS when the port
//! serves TLS only), authenticated as `--meta-user` once auth is enabled.
//!
//! etcd-client authenticates when it connects, and fails to connect with credentials
//! while auth is off ("authentication is not enabled"); so with credentials configured
//! and auth off, a client without them is used, and not kept: the next connection tries
//! the credentials again, in case auth has been enabled since.

use etcd_client::{Client, ConnectOptions, TlsOptions};

#[derive(Clone, Default)]
pub struct OwnClient {
    pub url: String,
    pub tls: Option<TlsOptions>,
    /// `--meta-user` as (name, password).
    pub credentials: Option<(String, String)>,
}

impl OwnClient {
    pub fn new(url: impl Into<String>) -> Self {
        OwnClient {
            url: url.into(),
            ..Default::default()
        }
    }

    fn options(&self, with_credentials: bool) -> Option<ConnectOptions> {
        let creds = self.credentials.clone().filter(|_| with_credentials);
        if self.tls.is_none() && creds.is_none() {
            return None;
        }
        let mut o = ConnectOptions::new();
        if let Some(tls) = self.tls.clone() {
            o = o.with_tls(tls);
        }
        if let Some((name, password)) = creds {
            // a simple token expires after --auth-token-ttl of disuse: authenticate again
            o = o.with_user(name, password).with_auto_token_refresh(true);
        }
        Some(o)
    }

    /// A connected client, and whether it may be kept (it carries the credentials, or
    /// none are configured).
    pub async fn connect(&self) -> Result<(Client, bool), etcd_client::Error> {
        if self.credentials.is_some() {
            match Client::connect([self.url.as_str()], self.options(true)).await {
                Ok(c) => return Ok((c, true)),
                Err(e) if e.to_string().contains("authentication is not enabled") => {}
                Err(e) => return Err(e),
            }
        }
        let c = Client::connect([self.url.as_str()], self.options(false)).await?;
        Ok((c, self.credentials.is_none()))
    }
}

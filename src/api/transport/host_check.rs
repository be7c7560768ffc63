//! `--host-whitelist` (etcd's accessController, CVE-2018-5702): an HTTP request that did
//! not come over TLS is answered `421 Misdirected Request` unless its Host (without the
//! port) is listed. `*` or an empty list lets every host in. gRPC is not checked, as etcd
//! does not check it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ClientInfo;

/// The listed host names; `None` lets every host in.
#[derive(Debug, Clone, Default)]
pub struct HostWhitelist(Option<Arc<Vec<String>>>);

impl HostWhitelist {
    /// From the flag's list (`*` anywhere, or nothing, lets every host in).
    pub fn new(hosts: &[String]) -> HostWhitelist {
        if hosts.is_empty() || hosts.iter().any(|h| h == "*") {
            HostWhitelist(None)
        } else {
            HostWhitelist(Some(Arc::new(hosts.to_vec())))
        }
    }

    fn allows(&self, host: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|hosts| hosts.iter().any(|h| h == host))
    }

    /// Put the check in front of `router`'s routes.
    pub fn guard<S: Clone + Send + Sync + 'static>(
        &self,
        router: axum::Router<S>,
    ) -> axum::Router<S> {
        if self.0.is_none() {
            return router;
        }
        router.layer(axum::middleware::from_fn_with_state(self.clone(), check))
    }
}

async fn check(State(list): State<HostWhitelist>, req: Request, next: Next) -> Response {
    let tls = req.extensions().get::<ClientInfo>().is_some_and(|c| c.tls);
    if tls {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let host = hostname(&host);
    if list.allows(&host) {
        return next.run(req).await;
    }
    tracing::warn!(host = %host, "rejecting HTTP request to prevent DNS rebinding attacks");
    // etcd's errCVE20185702, and the newline http.Error adds
    let body = format!(
        "\netcd received your request, but the Host header was unrecognized.\n\n\
         To fix this, choose one of the following options:\n\
         - Enable TLS, then any HTTPS request will be allowed.\n\
         - Add the hostname you want to use to the whitelist in settings.\n  \
         - e.g. etcd --host-whitelist {host:?}\n\n\
         This requirement has been added to help prevent \"DNS Rebinding\" attacks \
         (CVE-2018-5702).\n\n"
    );
    (
        StatusCode::MISDIRECTED_REQUEST,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The host without its port, as Go's net.SplitHostPort leaves it (a host with no port
/// stays as it is).
fn hostname(host: &str) -> String {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, port)) = rest.split_once("]:") {
            if !port.contains(':') {
                return h.to_string();
            }
        }
        return host.to_string();
    }
    match host.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h.to_string(),
        _ => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(hostname("example.com:2379"), "example.com");
        assert_eq!(hostname("example.com"), "example.com");
        assert_eq!(hostname("[::1]:2379"), "::1");
        assert_eq!(hostname("[::1]"), "[::1]");
        let list = HostWhitelist::new(&["example.com".into()]);
        assert!(list.allows("example.com") && !list.allows("evil.com"));
        assert!(HostWhitelist::new(&["*".into(), "a".into()]).allows("evil.com"));
        assert!(HostWhitelist::new(&[]).allows("evil.com"));
    }
}

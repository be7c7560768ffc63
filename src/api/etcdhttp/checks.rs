//! `/livez` and `/readyz` as etcd 3.5.11+ and 3.6 serve them (etcd:
//! server/etcdserver/api/etcdhttp/health.go, CheckRegistry): named checks, each also on
//! its own sub-path (`/readyz/linearizable_read`), `?exclude=NAME` (repeatable) to skip
//! some, `?verbose` to list every check's result.
//!
//! Answers are etcd's: `200 ok\n` (with `?verbose`, the `[+]name ok` lines first); on any
//! failure `503` and the lines (`[-]name failed: error`), whether verbose or not; `405
//! Method Not Allowed` for anything but GET. Checks run in the order listed below (etcd
//! runs them in Go's map order, which varies).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use crate::proto::etcdserverpb::{AlarmType, RangeRequest};
use crate::server::Member;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
    NonLearner,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
            Check::NonLearner => "non_learner",
        }
    }

    /// `Err` with the text etcd prints after `failed: `.
    async fn run(self, member: &Member) -> Result<(), String> {
        match self {
            Check::DataCorruption => {
                if member.alarm_raised(AlarmType::Corrupt) {
                    return Err("alarm activated: CORRUPT".into());
                }
                Ok(())
            }
            Check::SerializableRead => read(member, true).await,
            Check::LinearizableRead => read(member, false).await,
            Check::NonLearner => {
                if member.is_learner() {
                    return Err("not supported for learner".into());
                }
                Ok(())
            }
        }
    }
}

const LIVEZ: &[Check] = &[Check::SerializableRead];
const READYZ: &[Check] = &[
    Check::DataCorruption,
    Check::SerializableRead,
    Check::LinearizableRead,
    Check::NonLearner,
];

/// A one-key read, as etcd's readCheck (keys only, limit 1). etcd waits as long as the
/// request does; here a read that has not answered within etcd's request timeout (5 s
/// plus two election timeouts) fails the check.
async fn read(member: &Member, serializable: bool) -> Result<(), String> {
    let probe = RangeRequest {
        key: bytes::Bytes::from_static(b"health"),
        keys_only: true,
        limit: 1,
        serializable,
        ..Default::default()
    };
    let timeout =
        Duration::from_secs(5) + 2 * Duration::from_millis(member.settings.election_timeout_ms);
    match tokio::time::timeout(
        timeout,
        member.range(&crate::server::AuthInfo::member(), probe),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        // etcd's server errors carry their package prefix: "etcdserver: request timed out"
        Ok(Err(e)) => Err(format!("{}{e}", crate::rpctypes::PREFIX)),
        Err(_) => Err(format!(
            "{}{}",
            crate::rpctypes::PREFIX,
            crate::rpctypes::TIMEOUT
        )),
    }
}

/// `/livez`, `/readyz` and a sub-path per check.
pub(super) fn routes(router: Router<Arc<Member>>) -> Router<Arc<Member>> {
    let mut router = router
        .route("/livez", any(|s, r| root(s, r, "livez", LIVEZ)))
        .route("/readyz", any(|s, r| root(s, r, "readyz", READYZ)));
    for (kind, checks) in [("livez", LIVEZ), ("readyz", READYZ)] {
        for &check in checks {
            router = router.route(
                &format!("/{kind}/{}", check.name()),
                any(move |s, r| one(s, r, kind, check)),
            );
        }
    }
    router
}

async fn root(
    State(member): State<Arc<Member>>,
    req: Request,
    kind: &'static str,
    checks: &[Check],
) -> Response {
    if req.method() != Method::GET {
        return not_allowed();
    }
    let query = Query::parse(req.uri().query());
    let excluded: Vec<&str> = query.values("exclude");
    let run: Vec<Check> = checks
        .iter()
        .copied()
        .filter(|c| !excluded.contains(&c.name()))
        .collect();
    let missing: Vec<&&str> = excluded
        .iter()
        .filter(|e| !checks.iter().any(|c| c.name() == **e))
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            missing_health_checks = ?missing,
            "some health checks cannot be excluded"
        );
    }
    answer(&member, kind, &run, query.has("verbose")).await
}

async fn one(
    State(member): State<Arc<Member>>,
    req: Request,
    kind: &'static str,
    check: Check,
) -> Response {
    if req.method() != Method::GET {
        return not_allowed();
    }
    let verbose = Query::parse(req.uri().query()).has("verbose");
    answer(&member, kind, &[check], verbose).await
}

async fn answer(member: &Member, kind: &'static str, checks: &[Check], verbose: bool) -> Response {
    let mut failed = false;
    let mut reason = String::new();
    for check in checks {
        let result = check.run(member).await;
        record(kind, check.name(), result.is_ok());
        match result {
            Ok(()) => reason.push_str(&format!("[+]{} ok\n", check.name())),
            Err(e) => {
                failed = true;
                reason.push_str(&format!("[-]{} failed: {e}\n", check.name()));
            }
        }
    }
    if failed {
        // Go's http.Error: the text and a newline
        return text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n"));
    }
    let body = if verbose {
        format!("{reason}ok\n")
    } else {
        "ok\n".to_string()
    };
    text(StatusCode::OK, body)
}

/// Per (type, check): the last result and the counts of successes and errors (etcd's
/// `etcd_server_healthcheck` and `etcd_server_healthchecks_total`; process-wide, as
/// Prometheus' default registry is).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub last_ok: bool,
    pub success: u64,
    pub error: u64,
}

type Tallies = std::collections::BTreeMap<(&'static str, &'static str), Tally>;

static TALLIES: std::sync::Mutex<Tallies> = std::sync::Mutex::new(Tallies::new());

fn record(kind: &'static str, name: &'static str, ok: bool) {
    let mut all = TALLIES.lock().unwrap_or_else(|e| e.into_inner());
    let t = all.entry((kind, name)).or_default();
    t.last_ok = ok;
    if ok {
        t.success += 1;
    } else {
        t.error += 1;
    }
}

/// Every check run so far, by (type, name).
pub(super) fn tallies() -> Vec<((&'static str, &'static str), Tally)> {
    let all = TALLIES.lock().unwrap_or_else(|e| e.into_inner());
    all.iter().map(|(k, v)| (*k, *v)).collect()
}

fn not_allowed() -> Response {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed\n".into(),
    );
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
    r
}

/// A plain-text answer with the headers Go's handlers (and http.Error) set.
fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A URL query, as Go's url.ParseQuery reads it (`+` is a space, `%XX` a byte).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let pairs = query
            .unwrap_or_default()
            .split(['&', ';'])
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (unescape(k), unescape(v))
            })
            .collect();
        Query(pairs)
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The non-empty values of `key` (etcd's getQuerySet skips empty ones).
    fn values(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn unescape(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = Query::parse(Some("verbose&exclude=a&exclude=&exclude=b%5Fc+d"));
        assert!(q.has("verbose"));
        assert!(!q.has("exclude=a"));
        assert_eq!(q.values("exclude"), vec!["a", "b_c d"]);
        assert!(!Query::parse(None).has("verbose"));
        assert_eq!(unescape("%zz%4"), "%zz%4");
    }
}

//! `--cors` (etcd's accessController): every plain-HTTP answer on the client port carries
//! the CORS headers when the origin is allowed (every origin with `*`, the default, or an
//! empty list; else only the listed ones, echoed back), and an `OPTIONS` preflight is
//! answered `200` at once. Runs behind the Host check, as etcd's does.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The allowed origins; `None` allows every origin.
#[derive(Debug, Clone, Default)]
pub struct Cors(Option<Arc<Vec<String>>>);

impl Cors {
    pub fn new(origins: &[String]) -> Cors {
        if origins.is_empty() || origins.iter().any(|o| o == "*") {
            Cors(None)
        } else {
            Cors(Some(Arc::new(origins.to_vec())))
        }
    }

    /// The `Access-Control-Allow-Origin` a request gets, if any.
    fn allowed(&self, req: &Request) -> Option<HeaderValue> {
        let Some(origins) = &self.0 else {
            return Some(HeaderValue::from_static("*"));
        };
        let origin = req.headers().get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        origins.iter().any(|o| o == text).then(|| origin.clone())
    }

    /// Put the headers on every answer of `router`.
    pub fn guard<S: Clone + Send + Sync + 'static>(
        &self,
        router: axum::Router<S>,
    ) -> axum::Router<S> {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), apply))
    }
}

async fn apply(State(cors): State<Cors>, req: Request, next: Next) -> Response {
    let origin = cors.allowed(&req);
    let mut resp = if req.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(req).await
    };
    if let Some(origin) = origin {
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
        );
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("accept, content-type, authorization"),
        );
    }
    resp
}

//! What a path no route serves gets, as etcd answers it.
//!
//! etcd's client port hands a request to gRPC only when it is HTTP/2 with a gRPC content
//! type; everything else goes to its HTTP mux, where an unknown path gets Go's
//! `http.NotFound`: `404`, `text/plain; charset=utf-8`, `404 page not found`. A gRPC call
//! of a service nobody registered gets gRPC's `Unimplemented` ("unknown service X"). A
//! health probe must never read an unknown path as a success.

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};

fn is_grpc(req: &Request<Body>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The gRPC services' routes answer gRPC only; anything else there is an unknown path.
pub fn grpc_only(router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        |req: Request<Body>, next: axum::middleware::Next| async move {
            if is_grpc(&req) {
                next.run(req).await
            } else {
                not_found()
            }
        },
    ))
}

/// The fallback of every router on the client port.
pub async fn fallback(req: Request<Body>) -> Response<Body> {
    if is_grpc(&req) {
        let service = req
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let status = tonic::Status::unimplemented(format!("unknown service {service}"));
        let (parts, ()) = status.into_http::<()>().into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    not_found()
}

/// Go's `http.NotFound`.
fn not_found() -> Response<Body> {
    let mut resp = Response::new(Body::from("404 page not found\n"));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_paths_get_404_and_grpc_gets_unimplemented() {
        let req = Request::get("/nonexistent").body(Body::empty()).unwrap();
        let resp = fallback(req).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let req = Request::post("/etcdserverpb.Nope/Do")
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(Body::empty())
            .unwrap();
        let resp = fallback(req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["grpc-status"], "12");
    }
}

//! What a path no route serves gets, as etcd answers it.
//!
//! etcd's client port hands a request to gRPC only when it is HTTP/2 with a gRPC content
//! type; everything else goes to its HTTP mux, where an unknown path gets Go's
//! `http.NotFound`: `404`, `text/plain; charset=utf-8`, `404 page not found`. A gRPC call
//! of a service nobody registered gets gRPC's `Unimplemented` ("unknown service X"). A
//! health probe must never read an unknown path as a success.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Uri};

/// HTTP/2 with a gRPC content type, as etcd's cmux picks gRPC: an HTTP/1 request with a
/// gRPC content type is an HTTP request (found by the fuzzer: such a request to an
/// unknown path got gRPC's `200` with `Unimplemented` where etcd answers `404`).
fn is_grpc(req: &Request<Body>) -> bool {
    req.version() == axum::http::Version::HTTP_2
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The gRPC services' routes answer gRPC only; anything else there is an unknown path.
/// An unknown method of a known service gets grpc-go's words (tonic sends none).
pub fn grpc_only(router: axum::Router) -> axum::Router {
    router.layer(GrpcOnlyLayer)
}

/// A tower layer rather than axum's `from_fn`: this runs on every request, and `from_fn`
/// clones the inner service and boxes a future per request (about 2% of a put's
/// instructions under callgrind).
#[derive(Debug, Clone, Copy, Default)]
struct GrpcOnlyLayer;

impl<S> tower::Layer<S> for GrpcOnlyLayer {
    type Service = GrpcOnly<S>;

    fn layer(&self, inner: S) -> GrpcOnly<S> {
        GrpcOnly { inner }
    }
}

#[derive(Debug, Clone)]
struct GrpcOnly<S> {
    inner: S,
}

impl<S> tower::Service<Request<Body>> for GrpcOnly<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = GrpcOnlyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if !is_grpc(&req) {
            return GrpcOnlyFuture::Done {
                resp: Some(not_found()),
            };
        }
        // A Uri clone shares its bytes: no allocation.
        let uri = req.uri().clone();
        GrpcOnlyFuture::Inner {
            fut: self.inner.call(req),
            uri,
        }
    }
}

pin_project_lite::pin_project! {
    #[project = GrpcOnlyProj]
    enum GrpcOnlyFuture<F> {
        Done { resp: Option<Response<Body>> },
        Inner { #[pin] fut: F, uri: Uri },
    }
}

impl<F> Future for GrpcOnlyFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GrpcOnlyProj::Done { resp } => Poll::Ready(Ok(resp
                .take()
                .expect("GrpcOnlyFuture polled after completion"))),
            GrpcOnlyProj::Inner { fut, uri } => {
                let mut resp = ready!(fut.poll(cx))?;
                name_unknown_method(uri.path(), &mut resp);
                Poll::Ready(Ok(resp))
            }
        }
    }
}

/// A silent Unimplemented (tonic's answer to a method it does not know) gets grpc-go's
/// message.
fn name_unknown_method(path: &str, resp: &mut Response<Body>) {
    let unimplemented = resp
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"12");
    let silent = resp
        .headers()
        .get("grpc-message")
        .is_none_or(|v| v.is_empty());
    if unimplemented && silent {
        let (service, method) = service_and_method(path);
        let status =
            tonic::Status::unimplemented(format!("unknown method {method} for service {service}"));
        let headers = resp.headers_mut();
        headers.remove("grpc-status");
        headers.remove("grpc-message");
        let _ = status.add_header(headers);
    }
}

/// "/pkg.Service/Method" as ("pkg.Service", "Method").
fn service_and_method(path: &str) -> (&str, &str) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    (service, parts.next().unwrap_or_default())
}

/// The fallback of every router on the client port.
pub async fn fallback(req: Request<Body>) -> Response<Body> {
    if is_grpc(&req) {
        let service = service_and_method(req.uri().path()).0.to_string();
        let status = tonic::Status::unimplemented(format!("unknown service {service}"));
        let (parts, ()) = status.into_http::<()>().into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    not_found()
}

/// Go's `http.NotFound`.
fn not_found() -> Response<Body> {
    http_error(StatusCode::NOT_FOUND, "404 page not found")
}

/// A plain-text answer as Go's `http.Error` writes it: the text and a newline.
pub fn http_error(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(format!("{text}\n")));
    *resp.status_mut() = status;
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
            .version(axum::http::Version::HTTP_2)
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(Body::empty())
            .unwrap();
        let resp = fallback(req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["grpc-status"], "12");
    }

    #[tokio::test]
    async fn http1_with_a_grpc_content_type_is_http() {
        let req = Request::post("/V3/KV/RANGE")
            .version(axum::http::Version::HTTP_11)
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(Body::empty())
            .unwrap();
        let resp = fallback(req).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
}

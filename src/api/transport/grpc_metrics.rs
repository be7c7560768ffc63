//! `grpc_server_started_total` and `grpc_server_handled_total` as etcd's
//! go-grpc-prometheus counts them: started when a call arrives, handled with its status
//! code when it ends. The code is in the response headers for a call that failed at once
//! (a trailers-only response), else in the trailers at the end of the body; a body dropped
//! before its trailers (the client went away) counts as Canceled.
//!
//! A tower layer rather than axum's `from_fn`, as `not_found`'s: no boxing per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{HeaderMap, Request, Response};
use http_body::{Body as HttpBody, Frame};
use prometheus::IntCounter;

use crate::metrics::{GRPC_HANDLED, GRPC_HANDLING_SECONDS, GRPC_STARTED};

/// Every method etcd 3.4 registers up front (go-grpc-prometheus InitializeMetrics): its
/// counters are listed at 0 from the start. Lock and Election are counted once called.
const METHODS: &[(&str, &[&str])] = &[
    (
        "etcdserverpb.Auth",
        &[
            "AuthDisable",
            "AuthEnable",
            "Authenticate",
            "RoleAdd",
            "RoleDelete",
            "RoleGet",
            "RoleGrantPermission",
            "RoleList",
            "RoleRevokePermission",
            "UserAdd",
            "UserChangePassword",
            "UserDelete",
            "UserGet",
            "UserGrantRole",
            "UserList",
            "UserRevokeRole",
        ],
    ),
    (
        "etcdserverpb.Cluster",
        &[
            "MemberAdd",
            "MemberList",
            "MemberPromote",
            "MemberRemove",
            "MemberUpdate",
        ],
    ),
    (
        "etcdserverpb.KV",
        &["Compact", "DeleteRange", "Put", "Range", "Txn"],
    ),
    (
        "etcdserverpb.Lease",
        &[
            "LeaseGrant",
            "LeaseKeepAlive",
            "LeaseLeases",
            "LeaseRevoke",
            "LeaseTimeToLive",
        ],
    ),
    (
        "etcdserverpb.Maintenance",
        &[
            "Alarm",
            "Defragment",
            "Hash",
            "HashKV",
            "MoveLeader",
            "Snapshot",
            "Status",
        ],
    ),
    ("etcdserverpb.Watch", &["Watch"]),
];

/// gRPC's status code names, by number, as go-grpc-prometheus labels them.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// go-grpc-prometheus' type of a method.
fn kind(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") | ("v3electionpb.Election", "Observe") => {
            "server_stream"
        }
        _ => "unary",
    }
}

/// List every method's counters at 0.
pub fn initialize() {
    for (service, methods) in METHODS {
        for method in *methods {
            let ty = kind(service, method);
            GRPC_STARTED.with_label_values(&[method, service, ty]);
            for code in CODES {
                GRPC_HANDLED.with_label_values(&[code, method, service, ty]);
            }
        }
    }
}

/// A call's labels: its handled counters are looked up once the code is known.
#[derive(Clone)]
struct Call {
    /// The request's URI (a clone shares its bytes): the labels are sliced from its path,
    /// so counting allocates nothing per call.
    uri: http::Uri,
    ty: &'static str,
    /// When it started, under `--metrics extensive` (for the handling-time histogram).
    start: Option<std::time::Instant>,
}

impl Call {
    fn from_uri(uri: &http::Uri) -> Option<Call> {
        let (service, method) = split(uri.path())?;
        Some(Call {
            ty: kind(service, method),
            uri: uri.clone(),
            start: crate::metrics::extensive().then(std::time::Instant::now),
        })
    }

    fn labels(&self) -> (&str, &str) {
        split(self.uri.path()).unwrap_or_default()
    }

    fn started(&self) {
        let (service, method) = self.labels();
        GRPC_STARTED
            .with_label_values(&[method, service, self.ty])
            .inc();
    }

    /// The call ended with `code`: count it, and time it under `--metrics extensive`.
    fn handled(&self, code: usize) -> IntCounter {
        let code = CODES.get(code).copied().unwrap_or("Unknown");
        let (service, method) = self.labels();
        if let Some(start) = self.start {
            GRPC_HANDLING_SECONDS
                .with_label_values(&[method, service, self.ty])
                .observe(start.elapsed().as_secs_f64());
        }
        GRPC_HANDLED.with_label_values(&[code, method, service, self.ty])
    }
}

/// A call that came through the JSON gateway, counted as etcd counts it: etcd's gateway
/// dials its own gRPC port, so every gateway call is a gRPC call of its method. Started
/// when made; handled with the code given to [`GatewayCall::finish`], or Canceled if it is
/// dropped unfinished (the HTTP client went away).
pub struct GatewayCall {
    call: Call,
    code: Option<tonic::Code>,
}

impl GatewayCall {
    /// `grpc_path` is the method's gRPC path, `/etcdserverpb.KV/Range`.
    pub fn start(grpc_path: &'static str) -> GatewayCall {
        let call = Call::from_uri(&http::Uri::from_static(grpc_path))
            .expect("a gRPC path is /service/method");
        call.started();
        GatewayCall { call, code: None }
    }

    pub fn finish(&mut self, code: tonic::Code) {
        self.code.get_or_insert(code);
    }
}

impl Drop for GatewayCall {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(tonic::Code::Cancelled);
        self.call.handled(code as usize).inc();
    }
}

/// `/service/method` as (service, method).
fn split(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix('/')?.split_once('/')
}

/// The status code a header map carries, if any.
fn code_of(h: &HeaderMap) -> Option<usize> {
    h.get("grpc-status")?.to_str().ok()?.parse().ok()
}

#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<Request<B>, Response = Response<tonic::body::Body>>,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = GrpcMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // gRPC is HTTP/2 with a gRPC content type (an HTTP/1 request is answered 404)
        let grpc = req.version() == http::Version::HTTP_2
            && req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let call = grpc.then(|| Call::from_uri(req.uri())).flatten();
        if let Some(c) = &call {
            c.started();
        }
        GrpcMetricsFuture {
            fut: self.inner.call(req),
            call,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct GrpcMetricsFuture<F> {
        #[pin]
        fut: F,
        call: Option<Call>,
    }
}

impl<F, E> Future for GrpcMetricsFuture<F>
where
    F: Future<Output = Result<Response<tonic::body::Body>, E>>,
{
    type Output = Result<Response<tonic::body::Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = ready!(this.fut.poll(cx))?;
        let Some(call) = this.call.take() else {
            return Poll::Ready(Ok(resp));
        };
        if let Some(code) = code_of(resp.headers()) {
            call.handled(code).inc();
            return Poll::Ready(Ok(resp));
        }
        Poll::Ready(Ok(resp.map(|body| {
            tonic::body::Body::new(CountedBody {
                inner: body,
                call: Some(call),
            })
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its call handled when its trailers pass, or when it is
    /// dropped without them.
    struct CountedBody {
        #[pin]
        inner: tonic::body::Body,
        call: Option<Call>,
    }

    impl PinnedDrop for CountedBody {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                call.handled(1).inc();
            }
        }
    }
}

impl HttpBody for CountedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(code) = f.trailers_ref().and_then(code_of) {
                    if let Some(call) = this.call.take() {
                        call.handled(code).inc();
                    }
                }
            }
            // the body failed, or ended without trailers
            Some(Err(_)) | None => {
                if let Some(call) = this.call.take() {
                    call.handled(2).inc();
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

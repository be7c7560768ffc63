//! The gateway's JSON, as etcd's grpc-gateway (v1.9.5 in etcd 3.4, `JSONPb{OrigName:
//! true}`) writes it: messages in protobuf's JSON mapping with etcd's proto field names
//! (the serde impls pbjson-build generates, src/proto.rs), errors as grpc-gateway's error
//! body with the HTTP status it gives each gRPC code.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Code, Status};

const JSON: &str = "application/json";

/// grpc-gateway v1.9.5's HTTPStatusFromCode (FailedPrecondition is still 412 there).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// grpc-gateway's `errorBody`, fields in its order.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    code: i32,
}

/// grpc-gateway's `StreamError`: how a stream that already answered reports its end.
#[derive(Serialize)]
struct StreamError<'a> {
    grpc_code: i32,
    http_code: u16,
    message: &'a str,
    http_status: &'a str,
}

/// The answer to a call that failed before it sent anything.
pub fn error(status: &Status) -> Response {
    let body = ErrorBody {
        error: status.message(),
        message: status.message(),
        code: status.code() as i32,
    };
    let body = serde_json::to_vec(&body).expect("plain structs serialize");
    with_json(http_status(status.code()), Body::from(body))
}

/// A decoding failure of the request body. A unary call's is InvalidArgument (grpc-gateway
/// answers before calling); a stream's first message's is Unknown (it fails inside the
/// call). The words are serde_json's, not Go's.
pub fn bad_body(e: &serde_json::Error, code: Code) -> Status {
    Status::new(code, e.to_string())
}

/// One message of a unary answer.
pub fn message<T: Serialize>(msg: &T) -> Response {
    match serde_json::to_vec(msg) {
        Ok(body) => {
            let mut resp = with_json(StatusCode::OK, Body::from(body));
            forwarded_metadata(&mut resp);
            resp
        }
        Err(e) => error(&Status::internal(e.to_string())),
    }
}

/// A stream's item: `{"result":…}` and a newline, as grpc-gateway delimits them.
pub fn chunk<T: Serialize>(item: Result<T, Status>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Result<'a, T> {
        result: &'a T,
    }
    #[derive(Serialize)]
    struct Error<'a> {
        error: StreamError<'a>,
    }
    let encoded = match &item {
        Ok(msg) => serde_json::to_vec(&Result { result: msg }),
        Err(status) => {
            let http = http_status(status.code());
            serde_json::to_vec(&Error {
                error: StreamError {
                    grpc_code: status.code() as i32,
                    http_code: http.as_u16(),
                    message: status.message(),
                    http_status: http.canonical_reason().unwrap_or_default(),
                },
            })
        }
    };
    let mut out = encoded.unwrap_or_else(|e| {
        format!(
            "{{\"error\":{{\"grpc_code\":13,\"message\":{:?}}}}}",
            e.to_string()
        )
        .into_bytes()
    });
    out.push(b'\n');
    out
}

/// A unary request's body: the first JSON value (grpc-gateway's decoder reads one and
/// leaves the rest), or the empty message for an empty body.
pub fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    match serde_json::Deserializer::from_slice(body)
        .into_iter::<T>()
        .next()
    {
        Some(Ok(msg)) => Ok(msg),
        Some(Err(e)) => Err(bad_body(&e, Code::InvalidArgument)),
        None => Ok(T::default()),
    }
}

pub fn with_json(status: StatusCode, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

/// grpc-gateway forwards the call's response headers as `Grpc-Metadata-*`.
pub fn forwarded_metadata(resp: &mut Response) {
    resp.headers_mut().insert(
        "grpc-metadata-content-type",
        HeaderValue::from_static("application/grpc"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{
        compare, request_op, Compare, RangeRequest, RangeResponse, RequestOp, ResponseHeader,
        StatusResponse, TxnRequest,
    };
    use crate::proto::mvccpb::KeyValue;

    /// The bodies etcd 3.4.23's gateway wrote for these messages.
    #[test]
    fn encodes_as_etcds_gateway() {
        let resp = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 14841639068965178418,
                member_id: 10276657743932975437,
                revision: 2,
                raft_term: 2,
            }),
            kvs: vec![KeyValue {
                key: "foo".into(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: "bar".into(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#
        );
        let status = StatusResponse {
            version: "3.4.23".into(),
            db_size: 24576,
            leader: 10276657743932975437,
            raft_index: 8,
            raft_term: 2,
            raft_applied_index: 8,
            db_size_in_use: 16384,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            r#"{"version":"3.4.23","dbSize":"24576","leader":"10276657743932975437","raftIndex":"8","raftTerm":"2","raftAppliedIndex":"8","dbSizeInUse":"16384"}"#
        );
    }

    #[test]
    fn decodes_names_numbers_and_strings() {
        let txn: TxnRequest = decode(
            br#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],"success":[{"request_range":{"key":"Zm9v","limit":"2"}}],"bogus":1}"#,
        )
        .unwrap();
        assert_eq!(txn.compare[0].key.as_ref(), b"foo");
        assert_eq!(
            txn.compare[0].target_union,
            Some(compare::TargetUnion::Value("bar".into()))
        );
        let Some(RequestOp {
            request: Some(request_op::Request::RequestRange(r)),
        }) = txn.success.first()
        else {
            panic!("a range op: {txn:?}")
        };
        assert_eq!(r.limit, 2);
        let _: Compare = decode(br#"{"result":1,"target":3}"#).unwrap();
        let empty: RangeRequest = decode(b"  ").unwrap();
        assert_eq!(empty, RangeRequest::default());
        let e = decode::<RangeRequest>(b"{bad").unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = decode::<RangeRequest>(br#"{"key":"Zm9v!"}"#).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
    }

    #[test]
    fn errors_as_grpc_gateway() {
        let resp = error(&Status::failed_precondition(
            "etcdserver: authentication is not enabled",
        ));
        assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
        let chunk = chunk::<RangeResponse>(Err(Status::unavailable("etcdserver: server stopped")));
        assert_eq!(
            String::from_utf8(chunk).unwrap(),
            "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: server stopped\",\"http_status\":\"Service Unavailable\"}}\n"
        );
    }
}

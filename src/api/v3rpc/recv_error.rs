//! Errors raised while a request is read, before any service sees it, worded and coded
//! as grpc-go (etcd's gRPC server) words them.
//!
//! tonic refuses a message over the receive limit with `OUT_OF_RANGE` and its own text;
//! grpc-go answers `RESOURCE_EXHAUSTED` "grpc: received message larger than max (N vs.
//! M)", and clients branch on the code. Unary calls get it rewritten in their
//! trailers-only response ([`fix_response`]); streams map what their reader returns
//! ([`as_etcd`]). A request whose `grpc-timeout` runs out is `DEADLINE_EXCEEDED` "context
//! deadline exceeded" (tonic says CANCELLED "Timeout expired"). A message that does not
//! decode is already grpc-go's `INTERNAL` (the codec in proto/codec.rs).

use tonic::{Code, Status};

use crate::proto::codec::UNMARSHAL_FAILED;

/// grpc-go's words for a unary request that does not unmarshal.
pub const UNMARSHAL_REQUEST_FAILED: &str = "grpc: error unmarshalling request";

/// tonic's "Error, decoded message length too large: found N bytes, the limit is: M bytes".
fn too_large(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix("Error, decoded message length too large: found ")?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

/// `status` as grpc-go would have raised it.
pub fn as_etcd(status: Status) -> Status {
    // tonic's `grpc-timeout` ran out: etcd returns the context's error, which grpc-go
    // sends as DEADLINE_EXCEEDED
    if status.code() == Code::Cancelled && status.message() == "Timeout expired" {
        return Status::deadline_exceeded("context deadline exceeded");
    }
    if status.code() == Code::OutOfRange {
        if let Some((found, limit)) = too_large(status.message()) {
            return Status::resource_exhausted(format!(
                "grpc: received message larger than max ({found} vs. {limit})"
            ));
        }
    }
    status
}

/// A response whose status (in its headers: a trailers-only response) tonic raised
/// while reading the request, re-coded as grpc-go's.
pub fn fix_response<B>(mut resp: http::Response<B>) -> http::Response<B> {
    // OUT_OF_RANGE (over the receive limit), CANCELLED (the deadline ran out) or INTERNAL
    // (the request did not decode)
    let raised_by_tonic = resp
        .headers()
        .get("grpc-status")
        .is_some_and(|v| matches!(v.as_bytes(), b"11" | b"1" | b"13"));
    if !raised_by_tonic {
        return resp;
    }
    let Some(status) = Status::from_header_map(resp.headers()) else {
        return resp;
    };
    let (code, message) = (status.code(), status.message().to_string());
    let fixed = if code == Code::Internal && message == UNMARSHAL_FAILED {
        // grpc-go words it so for a unary request (and appends Go's protobuf error)
        Status::internal(UNMARSHAL_REQUEST_FAILED)
    } else {
        as_etcd(status)
    };
    if fixed.code() != code || fixed.message() != message {
        let headers = resp.headers_mut();
        headers.remove("grpc-status");
        headers.remove("grpc-message");
        // the code and a plain-ASCII message always encode
        let _ = fixed.add_header(headers);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_messages_get_grpc_gos_code_and_words() {
        let s = Status::out_of_range(
            "Error, decoded message length too large: found 2097190 bytes, the limit is: 2097152 bytes",
        );
        let e = as_etcd(s);
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert_eq!(
            e.message(),
            "grpc: received message larger than max (2097190 vs. 2097152)"
        );
        let late = as_etcd(Status::cancelled("Timeout expired"));
        assert_eq!(late.code(), Code::DeadlineExceeded);
        assert_eq!(late.message(), "context deadline exceeded");
        let other = as_etcd(Status::out_of_range(
            "etcdserver: mvcc: required revision is a future revision",
        ));
        assert_eq!(other.code(), Code::OutOfRange);
    }

    #[test]
    fn a_trailers_only_response_is_rewritten() {
        let s = Status::out_of_range(
            "Error, decoded message length too large: found 10 bytes, the limit is: 5 bytes",
        );
        let resp = s.into_http::<()>();
        let fixed = fix_response(resp);
        let st = Status::from_header_map(fixed.headers()).unwrap();
        assert_eq!(st.code(), Code::ResourceExhausted);
        assert_eq!(
            st.message(),
            "grpc: received message larger than max (10 vs. 5)"
        );
    }
}

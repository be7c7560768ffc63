//! THE error table: `server::Error` -> gRPC status with etcd's exact code and message
//! (etcd: api/v3rpc/rpctypes/error.go). Clients match on the message text.

use tonic::{Code, Status};

use crate::server::Error;

/// The code and message etcd sends for each error.
pub fn code_and_message(e: &Error) -> (Code, String) {
    let (code, msg) = match e {
        Error::EmptyKey => (Code::InvalidArgument, "etcdserver: key is not provided"),
        Error::KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found"),
        Error::ValueProvided => (Code::InvalidArgument, "etcdserver: value is provided"),
        Error::LeaseProvided => (Code::InvalidArgument, "etcdserver: lease is provided"),
        Error::TooManyOps => (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        ),
        Error::DuplicateKey => (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        ),
        Error::InvalidSortOption => (Code::InvalidArgument, "etcdserver: invalid sort option"),
        Error::Compacted => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        Error::FutureRev => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        Error::LeaseNotFound => (Code::NotFound, "etcdserver: requested lease not found"),
        Error::LeaseExists => (Code::FailedPrecondition, "etcdserver: lease already exists"),
        Error::LeaseTtlTooLarge => (Code::OutOfRange, "etcdserver: too large lease TTL"),
        Error::RequestTooLarge => (Code::InvalidArgument, "etcdserver: request is too large"),
        Error::NoSpace => (
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded",
        ),
        Error::NoLeader => (Code::Unavailable, "etcdserver: no leader"),
        Error::Stopped => (Code::Unavailable, "etcdserver: server stopped"),
        Error::Timeout => (Code::Unavailable, "etcdserver: request timed out"),
        Error::TooManyRequests => (Code::ResourceExhausted, "etcdserver: too many requests"),
        Error::Internal(m) => return (Code::Unknown, m.clone()),
    };
    (code, msg.to_string())
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let (code, msg) = code_and_message(&e);
        Status::new(code, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden table from etcd's rpctypes.
    #[test]
    fn every_error_has_etcds_code_and_message() {
        let table = [
            (
                Error::EmptyKey,
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                Error::TooManyOps,
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                Error::DuplicateKey,
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                Error::Compacted,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                Error::FutureRev,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                Error::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                Error::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (Error::NoLeader, Code::Unavailable, "etcdserver: no leader"),
            (
                Error::TooManyRequests,
                Code::ResourceExhausted,
                "etcdserver: too many requests",
            ),
        ];
        for (e, code, msg) in table {
            let s: Status = e.into();
            assert_eq!((s.code(), s.message()), (code, msg));
        }
    }
}

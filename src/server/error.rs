//! `server::Error`: one flat variant per condition a client can see (etcd's rpctypes is a
//! flat list). Lower layers convert in; `api::status` maps each variant to etcd's code and
//! message, in one exhaustive match.

use crate::apply::Refusal;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("key is not provided")]
    EmptyKey,
    #[error("key not found")]
    KeyNotFound,
    #[error("value is provided")]
    ValueProvided,
    #[error("lease is provided")]
    LeaseProvided,
    #[error("too many operations in txn request")]
    TooManyOps,
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    #[error("invalid sort option")]
    InvalidSortOption,
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    #[error("requested lease not found")]
    LeaseNotFound,
    #[error("lease already exists")]
    LeaseExists,
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("mvcc: database space exceeded")]
    NoSpace,
    #[error("request is too large")]
    RequestTooLarge,
    #[error("no leader")]
    NoLeader,
    #[error("server stopped")]
    Stopped,
    #[error("request timed out")]
    Timeout,
    #[error("too many requests")]
    TooManyRequests,
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Compacted => Error::Compacted,
            Refusal::FutureRev => Error::FutureRev,
            Refusal::KeyNotFound => Error::KeyNotFound,
            Refusal::LeaseNotFound => Error::LeaseNotFound,
            Refusal::LeaseExists => Error::LeaseExists,
            Refusal::LeaseTtlTooLarge => Error::LeaseTtlTooLarge,
            Refusal::NoSpace => Error::NoSpace,
        }
    }
}

impl From<crate::apply::Error> for Error {
    fn from(e: crate::apply::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

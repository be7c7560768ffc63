//! `server::Error`: one flat variant per condition a client can see (etcd's rpctypes is a
//! flat list). Lower layers convert in; `api::v3rpc::status` maps each variant to etcd's code,
//! in one exhaustive match, and sends `etcdserver: ` + this `Display` (whose text is
//! `rpctypes`').

use crate::apply::Refusal;
use crate::rpctypes;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{}", rpctypes::EMPTY_KEY)]
    EmptyKey,
    #[error("{}", rpctypes::KEY_NOT_FOUND)]
    KeyNotFound,
    #[error("{}", rpctypes::VALUE_PROVIDED)]
    ValueProvided,
    #[error("{}", rpctypes::LEASE_PROVIDED)]
    LeaseProvided,
    #[error("{}", rpctypes::TOO_MANY_OPS)]
    TooManyOps,
    #[error("{}", rpctypes::DUPLICATE_KEY)]
    DuplicateKey,
    #[error("{}", rpctypes::INVALID_SORT_OPTION)]
    InvalidSortOption,
    #[error("{}", rpctypes::COMPACTED)]
    Compacted,
    #[error("{}", rpctypes::FUTURE_REV)]
    FutureRev,
    #[error("{}", rpctypes::LEASE_NOT_FOUND)]
    LeaseNotFound,
    #[error("{}", rpctypes::LEASE_EXISTS)]
    LeaseExists,
    #[error("{}", rpctypes::LEASE_TTL_TOO_LARGE)]
    LeaseTtlTooLarge,
    #[error("{}", rpctypes::NO_SPACE)]
    NoSpace,
    #[error("{}", rpctypes::CORRUPT)]
    Corrupt,
    #[error("{}", rpctypes::REQUEST_TOO_LARGE)]
    RequestTooLarge,
    #[error("{}", rpctypes::NO_LEADER)]
    NoLeader,
    #[error("{}", rpctypes::STOPPED)]
    Stopped,
    #[error("{}", rpctypes::TIMEOUT)]
    Timeout,
    #[error("{}", rpctypes::TOO_MANY_REQUESTS)]
    TooManyRequests,
    #[error("{}", rpctypes::MEMBER_NOT_FOUND)]
    MemberNotFound,
    #[error("{}", rpctypes::MEMBER_BAD_URLS)]
    MemberBadUrls,
    #[error("{}", rpctypes::PEER_URL_EXIST)]
    PeerUrlExists,
    #[error("{}", rpctypes::TOO_MANY_LEARNERS)]
    TooManyLearners,
    #[error("{}", rpctypes::MEMBER_NOT_LEARNER)]
    MemberNotLearner,
    #[error("{}", rpctypes::LEARNER_NOT_READY)]
    LearnerNotReady,
    /// etcd's auth errors (rpctypes ErrGRPCRootUserNotExist ... ErrGRPCAuthOldRevision).
    #[error("{0}")]
    Auth(crate::auth::Error),
    /// An auth error as etcd 3.4's Maintenance service sends it: the `auth` package's
    /// own text with code Unknown (`auth: permission denied`).
    #[error("{}", .0.raw())]
    AuthRaw(crate::auth::Error),
    #[error("{}", rpctypes::NOT_ENOUGH_STARTED)]
    NotEnoughStarted,
    #[error("{}", rpctypes::UNHEALTHY)]
    Unhealthy,
    #[error("{}", rpctypes::NOT_LEADER)]
    NotLeader,
    #[error("{}", rpctypes::BAD_LEADER_TRANSFEREE)]
    BadLeaderTransferee,
    #[error("{}", rpctypes::LEADER_TRANSFER_TIMEOUT)]
    LeaderTransferTimeout,
    #[error("{}", rpctypes::ELECTION_NOT_LEADER)]
    ElectionNotLeader,
    #[error("{}", rpctypes::ELECTION_NO_LEADER)]
    ElectionNoLeader,
    #[error("{}", rpctypes::MISSING_LEADER_KEY)]
    MissingLeaderKey,
    #[error("{}", rpctypes::SESSION_EXPIRED)]
    SessionExpired,
    #[error("{}", rpctypes::LOST_WATCHER)]
    LostWatcher,
    #[error("{}", rpctypes::WRONG_DOWNGRADE_VERSION_FORMAT)]
    WrongDowngradeVersionFormat,
    #[error("{}", rpctypes::INVALID_DOWNGRADE_TARGET_VERSION)]
    InvalidDowngradeTargetVersion,
    #[error("{}", rpctypes::DOWNGRADE_IN_PROCESS)]
    DowngradeInProcess,
    #[error("{}", rpctypes::NO_INFLIGHT_DOWNGRADE)]
    NoInflightDowngrade,
    /// A request with an action this server does not know (etcd's ErrUnknownMethod).
    #[error("{}", rpctypes::UNKNOWN_METHOD)]
    UnknownMethod,
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
            Refusal::Corrupt => Error::Corrupt,
            Refusal::Auth(e) => Error::Auth(e),
        }
    }
}

impl From<crate::apply::Error> for Error {
    fn from(e: crate::apply::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

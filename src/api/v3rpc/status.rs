//! THE error table: `server::Error` -> gRPC status with etcd's exact code and message
//! (etcd: api/v3rpc/rpctypes/error.go). Clients match on the message text, which is
//! `etcdserver: ` followed by the error's `Display` (its text lives in `crate::rpctypes`).

use tonic::{Code, Status};

use crate::rpctypes;
use crate::server::AuthError;
use crate::server::Error;

/// etcd's Lock and Election servers reach the member through its client library, whose
/// toErr turns each of etcd's errors into a plain Go error (rpctypes.EtcdError): their
/// clients get it with code Unknown and the same text (etcd 3.4:
/// `lock with a missing lease` -> Unknown "etcdserver: requested lease not found").
/// Any other status is passed on as it is.
pub fn through_client(s: Status) -> Status {
    if s.message().starts_with(rpctypes::PREFIX) {
        Status::new(Code::Unknown, s.message())
    } else {
        s
    }
}

/// The code and message etcd sends for each error.
pub fn code_and_message(e: &Error) -> (Code, String) {
    let code = match e {
        Error::EmptyKey => Code::InvalidArgument,
        Error::KeyNotFound => Code::InvalidArgument,
        Error::ValueProvided => Code::InvalidArgument,
        Error::LeaseProvided => Code::InvalidArgument,
        Error::TooManyOps => Code::InvalidArgument,
        Error::DuplicateKey => Code::InvalidArgument,
        Error::InvalidSortOption => Code::InvalidArgument,
        Error::Compacted => Code::OutOfRange,
        Error::FutureRev => Code::OutOfRange,
        Error::LeaseNotFound => Code::NotFound,
        Error::LeaseExists => Code::FailedPrecondition,
        Error::LeaseTtlTooLarge => Code::OutOfRange,
        Error::RequestTooLarge => Code::InvalidArgument,
        Error::NoSpace => Code::ResourceExhausted,
        Error::Corrupt => Code::DataLoss,
        Error::NoLeader => Code::Unavailable,
        Error::Stopped => Code::Unavailable,
        Error::Timeout => Code::Unavailable,
        Error::TooManyRequests => Code::ResourceExhausted,
        Error::MemberNotFound => Code::NotFound,
        Error::MemberBadUrls => Code::InvalidArgument,
        Error::PeerUrlExists => Code::FailedPrecondition,
        Error::TooManyLearners => Code::FailedPrecondition,
        Error::MemberNotLearner => Code::FailedPrecondition,
        Error::LearnerNotReady => Code::FailedPrecondition,
        // not in etcd's rpctypes: its own text, code Unknown (etcd's togRPCError)
        Error::Auth(AuthError::NoPasswordUser) => {
            return (Code::Unknown, AuthError::NoPasswordUser.raw().to_string())
        }
        Error::Auth(a) => auth_code(*a),
        Error::AuthRaw(a) => return (Code::Unknown, a.raw().to_string()),
        Error::NotEnoughStarted => Code::FailedPrecondition,
        Error::Unhealthy => Code::Unavailable,
        Error::NotLeader => Code::FailedPrecondition,
        Error::BadLeaderTransferee => Code::FailedPrecondition,
        // not in etcd's rpctypes: togRPCError sends it as Unknown
        Error::LeaderTransferTimeout => Code::Unknown,
        // the Lock and Election services' own errors: plain errors in etcd, so code
        // Unknown and no prefix
        Error::ElectionNotLeader
        | Error::ElectionNoLeader
        | Error::MissingLeaderKey
        | Error::SessionExpired
        | Error::LostWatcher => return (Code::Unknown, e.to_string()),
        Error::WrongDowngradeVersionFormat => Code::InvalidArgument,
        Error::InvalidDowngradeTargetVersion => Code::InvalidArgument,
        Error::DowngradeInProcess => Code::FailedPrecondition,
        Error::NoInflightDowngrade => Code::FailedPrecondition,
        // not in etcd's rpctypes: togRPCError sends it as Unknown
        Error::UnknownMethod => Code::Unknown,
        Error::Internal(m) => return (Code::Unknown, m.clone()),
    };
    (code, format!("{}{e}", rpctypes::PREFIX))
}

/// The code etcd sends with each auth error (rpctypes ErrGRPCRootUserNotExist ...).
fn auth_code(e: AuthError) -> Code {
    match e {
        AuthError::RootUserNotExist => Code::FailedPrecondition,
        AuthError::RootRoleNotExist => Code::FailedPrecondition,
        AuthError::UserAlreadyExist => Code::FailedPrecondition,
        AuthError::UserEmpty => Code::InvalidArgument,
        AuthError::UserNotFound => Code::FailedPrecondition,
        AuthError::RoleAlreadyExist => Code::FailedPrecondition,
        AuthError::RoleNotFound => Code::FailedPrecondition,
        AuthError::RoleEmpty => Code::InvalidArgument,
        AuthError::AuthFailed => Code::InvalidArgument,
        AuthError::PermissionDenied => Code::PermissionDenied,
        AuthError::RoleNotGranted => Code::FailedPrecondition,
        AuthError::PermissionNotGranted => Code::FailedPrecondition,
        AuthError::AuthNotEnabled => Code::FailedPrecondition,
        AuthError::InvalidAuthToken => Code::Unauthenticated,
        AuthError::InvalidAuthMgmt => Code::InvalidArgument,
        AuthError::AuthOldRevision => Code::InvalidArgument,
        AuthError::PermissionNotGiven => Code::InvalidArgument,
        AuthError::NoPasswordUser => Code::Unknown,
    }
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

    /// One row per variant of `server::Error`: `pattern => value, etcd's code, etcd's message`.
    /// The patterns are also the arms of a match with no wildcard, so a variant without a
    /// row does not compile, and each value must match its own row's pattern (checked
    /// below), so every variant is built and sent through the table once.
    macro_rules! golden {
        ($($pat:pat => $value:expr, $code:expr, $msg:expr;)*) => {{
            #[deny(unreachable_patterns)]
            fn _every_variant_has_a_row(e: &Error) {
                match e {
                    $($pat => {})*
                }
            }
            vec![$((
                stringify!($pat),
                $value,
                matches!($value, $pat),
                $code,
                $msg,
            )),*]
        }};
    }

    /// Codes and messages copied from etcd's rpctypes (api/v3rpc/rpctypes/error.go, as in
    /// 3.4); the InvalidArgument, FailedPrecondition, NotFound and OutOfRange rows were also
    /// checked against etcd 3.4.23's answers through its JSON gateway.
    fn golden_table() -> Vec<(&'static str, Error, bool, Code, &'static str)> {
        golden! {
            Error::EmptyKey => Error::EmptyKey,
                Code::InvalidArgument, "etcdserver: key is not provided";
            Error::KeyNotFound => Error::KeyNotFound,
                Code::InvalidArgument, "etcdserver: key not found";
            Error::ValueProvided => Error::ValueProvided,
                Code::InvalidArgument, "etcdserver: value is provided";
            Error::LeaseProvided => Error::LeaseProvided,
                Code::InvalidArgument, "etcdserver: lease is provided";
            Error::TooManyOps => Error::TooManyOps,
                Code::InvalidArgument, "etcdserver: too many operations in txn request";
            Error::DuplicateKey => Error::DuplicateKey,
                Code::InvalidArgument, "etcdserver: duplicate key given in txn request";
            // not in etcd's rpctypes (etcd 3.4 does not check sort fields): ours
            Error::InvalidSortOption => Error::InvalidSortOption,
                Code::InvalidArgument, "etcdserver: invalid sort option";
            Error::Compacted => Error::Compacted,
                Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted";
            Error::FutureRev => Error::FutureRev,
                Code::OutOfRange, "etcdserver: mvcc: required revision is a future revision";
            Error::LeaseNotFound => Error::LeaseNotFound,
                Code::NotFound, "etcdserver: requested lease not found";
            Error::LeaseExists => Error::LeaseExists,
                Code::FailedPrecondition, "etcdserver: lease already exists";
            Error::LeaseTtlTooLarge => Error::LeaseTtlTooLarge,
                Code::OutOfRange, "etcdserver: too large lease TTL";
            Error::RequestTooLarge => Error::RequestTooLarge,
                Code::InvalidArgument, "etcdserver: request is too large";
            Error::NoSpace => Error::NoSpace,
                Code::ResourceExhausted, "etcdserver: mvcc: database space exceeded";
            Error::Corrupt => Error::Corrupt,
                Code::DataLoss, "etcdserver: corrupt cluster";
            Error::NoLeader => Error::NoLeader,
                Code::Unavailable, "etcdserver: no leader";
            Error::Stopped => Error::Stopped,
                Code::Unavailable, "etcdserver: server stopped";
            Error::Timeout => Error::Timeout,
                Code::Unavailable, "etcdserver: request timed out";
            Error::TooManyRequests => Error::TooManyRequests,
                Code::ResourceExhausted, "etcdserver: too many requests";
            Error::MemberNotFound => Error::MemberNotFound,
                Code::NotFound, "etcdserver: member not found";
            Error::MemberBadUrls => Error::MemberBadUrls,
                Code::InvalidArgument, "etcdserver: given member URLs are invalid";
            Error::PeerUrlExists => Error::PeerUrlExists,
                Code::FailedPrecondition, "etcdserver: Peer URLs already exists";
            Error::TooManyLearners => Error::TooManyLearners,
                Code::FailedPrecondition, "etcdserver: too many learner members in cluster";
            Error::MemberNotLearner => Error::MemberNotLearner,
                Code::FailedPrecondition, "etcdserver: can only promote a learner member";
            Error::LearnerNotReady => Error::LearnerNotReady,
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader";
            Error::Auth(_) => Error::Auth(AuthError::PermissionDenied),
                Code::PermissionDenied, "etcdserver: permission denied";
            Error::AuthRaw(_) => Error::AuthRaw(AuthError::PermissionDenied),
                Code::Unknown, "auth: permission denied";
            Error::NotEnoughStarted => Error::NotEnoughStarted,
                Code::FailedPrecondition,
                "etcdserver: re-configuration failed due to not enough started members";
            Error::Unhealthy => Error::Unhealthy,
                Code::Unavailable, "etcdserver: unhealthy cluster";
            Error::NotLeader => Error::NotLeader,
                Code::FailedPrecondition, "etcdserver: not leader";
            // etcd 3.5/3.6's downgrade errors (3.5.x: rpctypes error.go)
            Error::WrongDowngradeVersionFormat => Error::WrongDowngradeVersionFormat,
                Code::InvalidArgument, "etcdserver: wrong downgrade target version format";
            Error::InvalidDowngradeTargetVersion => Error::InvalidDowngradeTargetVersion,
                Code::InvalidArgument, "etcdserver: invalid downgrade target version";
            Error::DowngradeInProcess => Error::DowngradeInProcess,
                Code::FailedPrecondition, "etcdserver: cluster has a downgrade job in progress";
            Error::NoInflightDowngrade => Error::NoInflightDowngrade,
                Code::FailedPrecondition, "etcdserver: no inflight downgrade job";
            Error::UnknownMethod => Error::UnknownMethod,
                Code::Unknown, "etcdserver: unknown method";
            Error::BadLeaderTransferee => Error::BadLeaderTransferee,
                Code::FailedPrecondition, "etcdserver: bad leader transferee";
            Error::LeaderTransferTimeout => Error::LeaderTransferTimeout,
                Code::Unknown, "etcdserver: request timed out, leader transfer took too long";
            // plain errors of etcd's v3lock/v3election servers and concurrency package
            Error::ElectionNotLeader => Error::ElectionNotLeader,
                Code::Unknown, "election: not leader";
            Error::ElectionNoLeader => Error::ElectionNoLeader,
                Code::Unknown, "election: no leader";
            Error::MissingLeaderKey => Error::MissingLeaderKey,
                Code::Unknown, "\"leader\" field must be provided";
            Error::SessionExpired => Error::SessionExpired,
                Code::Unknown, "mutex: session is expired";
            Error::LostWatcher => Error::LostWatcher,
                Code::Unknown, "lost watcher waiting for delete";
            // etcd's togRPCError sends an unknown error's own text with code Unknown
            Error::Internal(_) => Error::Internal("disk on fire".into()),
                Code::Unknown, "disk on fire";
        }
    }

    /// Every auth error against etcd's rpctypes (3.4's error.go, plus 3.5's
    /// ErrGRPCPermissionNotGiven).
    #[test]
    fn every_auth_error_has_etcds_code_and_message() {
        let table = [
            (
                AuthError::RootUserNotExist,
                Code::FailedPrecondition,
                "etcdserver: root user does not exist",
            ),
            (
                AuthError::RootRoleNotExist,
                Code::FailedPrecondition,
                "etcdserver: root user does not have root role",
            ),
            (
                AuthError::UserAlreadyExist,
                Code::FailedPrecondition,
                "etcdserver: user name already exists",
            ),
            (
                AuthError::UserEmpty,
                Code::InvalidArgument,
                "etcdserver: user name is empty",
            ),
            (
                AuthError::UserNotFound,
                Code::FailedPrecondition,
                "etcdserver: user name not found",
            ),
            (
                AuthError::RoleAlreadyExist,
                Code::FailedPrecondition,
                "etcdserver: role name already exists",
            ),
            (
                AuthError::RoleNotFound,
                Code::FailedPrecondition,
                "etcdserver: role name not found",
            ),
            (
                AuthError::RoleEmpty,
                Code::InvalidArgument,
                "etcdserver: role name is empty",
            ),
            (
                AuthError::AuthFailed,
                Code::InvalidArgument,
                "etcdserver: authentication failed, invalid user ID or password",
            ),
            (
                AuthError::PermissionDenied,
                Code::PermissionDenied,
                "etcdserver: permission denied",
            ),
            (
                AuthError::RoleNotGranted,
                Code::FailedPrecondition,
                "etcdserver: role is not granted to the user",
            ),
            (
                AuthError::PermissionNotGranted,
                Code::FailedPrecondition,
                "etcdserver: permission is not granted to the role",
            ),
            (
                AuthError::AuthNotEnabled,
                Code::FailedPrecondition,
                "etcdserver: authentication is not enabled",
            ),
            (
                AuthError::InvalidAuthToken,
                Code::Unauthenticated,
                "etcdserver: invalid auth token",
            ),
            (
                AuthError::InvalidAuthMgmt,
                Code::InvalidArgument,
                "etcdserver: invalid auth management",
            ),
            (
                AuthError::AuthOldRevision,
                Code::InvalidArgument,
                "etcdserver: revision of auth store is old",
            ),
            (
                AuthError::PermissionNotGiven,
                Code::InvalidArgument,
                "etcdserver: permission not given",
            ),
        ];
        let nopw: Status = Error::Auth(AuthError::NoPasswordUser).into();
        assert_eq!(
            (nopw.code(), nopw.message()),
            (
                Code::Unknown,
                "auth: authentication failed, password was given for no password user"
            )
        );
        for (e, code, msg) in table {
            let s: Status = Error::Auth(e).into();
            assert_eq!((s.code(), s.message()), (code, msg), "{e:?}");
        }
    }

    #[test]
    fn every_error_has_etcds_code_and_message() {
        for (row, e, matches_row, code, msg) in golden_table() {
            assert!(matches_row, "the value of row {row} is {e:?}");
            let s: Status = e.into();
            assert_eq!((s.code(), s.message()), (code, msg), "{row}");
        }
    }

    #[test]
    fn through_client_makes_etcd_errors_unknown() {
        let s = through_client(Error::LeaseNotFound.into());
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(s.message(), "etcdserver: requested lease not found");
        let s = through_client(Status::cancelled("context canceled"));
        assert_eq!(s.code(), Code::Cancelled);
        let s = through_client(Error::ElectionNotLeader.into());
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unknown, "election: not leader")
        );
    }
}

//! etcd's client-visible error messages, each written once (etcd: api/v3rpc/rpctypes/error.go).
//!
//! Clients match on this text, so it is etcd's, verbatim. Each constant is the message
//! without the `etcdserver: ` prefix, the way etcd's own packages spell their errors
//! (`mvcc.ErrCompacted` is "mvcc: required revision has been compacted"): the error enums'
//! `Display` (`mvcc::Error`, `apply::Refusal`, `server::Error`) use these constants, and
//! `api::v3rpc::status` sends [`PREFIX`] followed by `server::Error`'s `Display`.
//!
//! A leaf: imports nothing, so every layer may use it.

/// What etcd puts before every message it sends a client.
pub const PREFIX: &str = "etcdserver: ";

pub const EMPTY_KEY: &str = "key is not provided";
pub const KEY_NOT_FOUND: &str = "key not found";
pub const VALUE_PROVIDED: &str = "value is provided";
pub const LEASE_PROVIDED: &str = "lease is provided";
pub const TOO_MANY_OPS: &str = "too many operations in txn request";
pub const DUPLICATE_KEY: &str = "duplicate key given in txn request";
/// Ours, not in etcd's rpctypes: etcd 3.4 does not check the sort fields (3.4.23 panics on
/// a Range with an unknown sort order).
pub const INVALID_SORT_OPTION: &str = "invalid sort option";
pub const COMPACTED: &str = "mvcc: required revision has been compacted";
pub const FUTURE_REV: &str = "mvcc: required revision is a future revision";
pub const LEASE_NOT_FOUND: &str = "requested lease not found";
pub const LEASE_EXISTS: &str = "lease already exists";
pub const LEASE_TTL_TOO_LARGE: &str = "too large lease TTL";
pub const REQUEST_TOO_LARGE: &str = "request is too large";
pub const TOO_MANY_REQUESTS: &str = "too many requests";
pub const NO_SPACE: &str = "mvcc: database space exceeded";
pub const CORRUPT: &str = "corrupt cluster";
pub const NO_LEADER: &str = "no leader";
pub const STOPPED: &str = "server stopped";
pub const TIMEOUT: &str = "request timed out";
pub const MEMBER_NOT_FOUND: &str = "member not found";
pub const MEMBER_BAD_URLS: &str = "given member URLs are invalid";
pub const PEER_URL_EXIST: &str = "Peer URLs already exists";
pub const TOO_MANY_LEARNERS: &str = "too many learner members in cluster";
pub const MEMBER_NOT_LEARNER: &str = "can only promote a learner member";
pub const NOT_ENOUGH_STARTED: &str = "re-configuration failed due to not enough started members";
pub const UNHEALTHY: &str = "unhealthy cluster";
pub const NOT_LEADER: &str = "not leader";
pub const BAD_LEADER_TRANSFEREE: &str = "bad leader transferee";
pub const LEADER_TRANSFER_TIMEOUT: &str = "request timed out, leader transfer took too long";
pub const WRONG_DOWNGRADE_VERSION_FORMAT: &str = "wrong downgrade target version format";
pub const INVALID_DOWNGRADE_TARGET_VERSION: &str = "invalid downgrade target version";
pub const DOWNGRADE_IN_PROCESS: &str = "cluster has a downgrade job in progress";
pub const NO_INFLIGHT_DOWNGRADE: &str = "no inflight downgrade job";
pub const UNKNOWN_METHOD: &str = "unknown method";
pub const LEARNER_NOT_READY: &str =
    "can only promote a learner member which is in sync with leader";

// Auth (etcd's ErrGRPCRootUserNotExist ... ErrGRPCAuthOldRevision).
pub const ROOT_USER_NOT_EXIST: &str = "root user does not exist";
pub const ROOT_ROLE_NOT_EXIST: &str = "root user does not have root role";
pub const USER_ALREADY_EXIST: &str = "user name already exists";
pub const USER_EMPTY: &str = "user name is empty";
pub const USER_NOT_FOUND: &str = "user name not found";
pub const ROLE_ALREADY_EXIST: &str = "role name already exists";
pub const ROLE_NOT_FOUND: &str = "role name not found";
pub const ROLE_EMPTY: &str = "role name is empty";
pub const AUTH_FAILED: &str = "authentication failed, invalid user ID or password";
pub const PERMISSION_DENIED: &str = "permission denied";
pub const ROLE_NOT_GRANTED: &str = "role is not granted to the user";
pub const PERMISSION_NOT_GRANTED: &str = "permission is not granted to the role";
pub const AUTH_NOT_ENABLED: &str = "authentication is not enabled";
pub const INVALID_AUTH_TOKEN: &str = "invalid auth token";
pub const INVALID_AUTH_MGMT: &str = "invalid auth management";
pub const AUTH_OLD_REVISION: &str = "revision of auth store is old";
/// etcd 3.5's ErrGRPCPermissionNotGiven (a RoleGrantPermission without a permission).
pub const PERMISSION_NOT_GIVEN: &str = "permission not given";
/// The Lock and Election services' own errors (etcd: client/v3/concurrency and
/// api/v3election). etcd's servers return them as plain Go errors, so clients get them with
/// code Unknown and without the [`PREFIX`].
pub const ELECTION_NOT_LEADER: &str = "election: not leader";
pub const ELECTION_NO_LEADER: &str = "election: no leader";
pub const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";
pub const SESSION_EXPIRED: &str = "mutex: session is expired";
pub const LOST_WATCHER: &str = "lost watcher waiting for delete";

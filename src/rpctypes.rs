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
pub const LEARNER_NOT_READY: &str =
    "can only promote a learner member which is in sync with leader";

/// The Lock and Election services' own errors (etcd: client/v3/concurrency and
/// api/v3election). etcd's servers return them as plain Go errors, so clients get them with
/// code Unknown and without the [`PREFIX`].
pub const ELECTION_NOT_LEADER: &str = "election: not leader";
pub const ELECTION_NO_LEADER: &str = "election: no leader";
pub const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";
pub const SESSION_EXPIRED: &str = "mutex: session is expired";
pub const LOST_WATCHER: &str = "lost watcher waiting for delete";

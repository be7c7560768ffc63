//! The member, independent of transport: proposals, the linearizable read barrier, ids,
//! auto-compaction.
//!
//! Imports: `raft`, `apply`, `mvcc`, `storage`, `config`, `proto`. Must never: import `api`.

mod auth;
pub mod compactor;
mod corrupt;
mod defrag;
mod downgrade;
pub mod error;
mod forward;
mod hash;
pub mod ids;
pub mod lease_loop;
pub mod member;
#[cfg(test)]
mod member_tests;
mod metrics;
mod move_leader;
mod peers;
pub mod propose;
mod quota;
mod raft_tasks;
pub mod restore;
pub mod snapshot;

pub use crate::auth::{AuthInfo, Error as AuthError};
/// Key ranges by etcd's `range_end` rules, for request checks at the edge.
pub use crate::mvcc::KeyRange;
/// Watch types the stream protocol at the edge needs.
pub use crate::mvcc::{Notice, WatchSpec, WatchStream, WatcherId};
pub use error::{Error, Result};
pub use member::{Member, MemberRecord, RaftStatus};

//! openraft 0.9 (storage-v2) glue: type config, log store, state machine, peer network.
//!
//! Imports: `apply`, `mvcc`, `lease`, `membership`, `alarm`, `storage`, `proto`. Must never: import `server` or `api`.

// openraft's traits fix the error types (`StorageError`, `RPCError`), which are large.
#![allow(clippy::result_large_err)]

pub mod codec;
pub mod log_store;
pub mod member_change;
pub mod network;
pub mod peer_message;
pub mod peer_service;
mod recent_entries;
pub mod snapshot;
pub mod snapshot_io;
pub mod snapshotter;
pub mod state_machine;
pub mod types;

pub use log_store::LogStore;
pub use network::{Network, PeerHash};
pub use state_machine::{SharedState, StateMachine};
pub use types::{MemberNode, NodeId, Raft, TypeConfig};

#[cfg(test)]
mod suite_test;

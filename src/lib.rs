//! metastore: an etcd-v3-compatible metadata server on openraft and sled.
//!
//! Layers, data flowing down; a module imports only modules below it:
//!
//! ```text
//! api -> server -> raft -> apply -> mvcc -> storage
//! ```
//!
//! `meta` (typed metadata over etcd's public API) sits beside them: it speaks to any etcd
//! endpoint through etcd-client and imports nothing of the server; `api` serves its HTTP
//! paths and `embed` hands out the client it needs.
//!
//! `proto` and `config` are leaves. A lower layer signals upward only through a channel or
//! trait it defines itself (the state machine's `EventSink`). `tests/layering.rs` checks it.

pub mod alarm;
pub mod api;
pub mod apply;
pub mod bench;
pub mod bench_lease;
pub mod bench_watch;
pub mod config;
pub mod embed;
pub mod lease;
pub mod logline;
pub mod membership;
pub mod meta;
pub mod mvcc;
pub mod proto;
pub mod raft;
pub mod server;
pub mod storage;

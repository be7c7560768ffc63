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
//! `proto`, `config`, `rpctypes` (etcd's error messages) and `tls` (the ports' TLS) are
//! leaves. A lower layer signals upward only through a channel or trait it defines itself
//! (the state machine's `EventSink`). `scripts/check-layering.sh` checks it.

pub mod alarm;
pub mod api;
pub mod apply;
pub mod auth;
pub mod config;
pub mod embed;
pub mod failpoint;
pub mod lease;
pub mod logline;
pub mod membership;
pub mod meta;
pub mod metrics;
pub mod mvcc;
pub mod proto;
pub mod raft;
pub mod rpctypes;
pub mod server;
pub mod snapshot;
pub mod storage;
pub mod tls;

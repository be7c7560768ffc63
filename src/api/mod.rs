//! The client port: everything a client reaches, by transport and by what it serves.
//!
//! - [`v3rpc`]: etcd's gRPC services (KV, Watch, Lease, Cluster, Maintenance) and THE
//!   error table mapping `server::Error` to etcd's codes and messages.
//! - [`gateway`]: etcd's JSON gateway (`POST /v3/...`), calling the same services.
//! - [`etcdhttp`]: etcd's plain HTTP paths (`/health`, `/version`, `/metrics`).
//! - [`metahttp`]: our product's HTTP paths over `meta` (resource manager, captures).
//! - [`transport`]: listeners, the connection wrapper that repairs `:authority`, and
//!   the routes that put the three above on one port.
//!
//! Imports: `server`, `proto`, `meta` (metahttp only). Must never: touch raft, the stores
//! or storage directly.

pub mod etcdhttp;
pub mod gateway;
pub mod metahttp;
pub mod transport;
pub mod v3rpc;

pub use transport::{bind, routes, serve, ServeOptions};

//! Leases (etcd: lease/lessor.go): the replicated lease table and the keys attached to each
//! lease.
//!
//! Owns: which leases exist, their granted TTL, and their attached keys (replicated, changed
//! only by the apply layer), plus each lease's expiry time (local to the member: only the
//! leader's matters, and a new leader renews every lease by its full TTL before expiring any).
//! Imports: `storage`. Must never: decide to revoke a lease itself; `server` proposes revokes.

mod lessor;

pub use lessor::{Lease, LeaseId, Lessor, MAX_LEASE_TTL};

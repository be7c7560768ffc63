//! Deterministic execution of committed commands: no clock, no IO but the batch.
//!
//! Owns: the [`Command`] replicated through raft, its result [`Applied`], and the rules of
//! each command (etcd: etcdserver/apply.go, txn/txn.go). Imports: `mvcc`, `storage`, `proto`.
//! Must never: import `raft`, `server` or `api`, read a clock, or wait on anything.

pub mod kv;
pub mod txn;

use serde::{Deserialize, Serialize};

use crate::lease::{Lessor, MAX_LEASE_TTL};
use crate::mvcc::{self, KvStore};
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutRequest,
    PutResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::Event;
use crate::storage::WriteBatch;

/// A command replicated through the raft log (etcd's InternalRaftRequest).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compaction(CompactionRequest),
    /// A grant; the server has chosen the id when the client did not.
    LeaseGrant(LeaseGrantRequest),
    /// A revoke, asked by a client or by the leader's expiry loop.
    LeaseRevoke(LeaseRevokeRequest),
    /// Commands that waited together, proposed as one log entry (group commit); each is
    /// applied as its own write transaction with its own revision, in order.
    Batch(Vec<Command>),
}

/// A command's outcome that the client sees. Refusals are values: the log entry is applied
/// (it consumed an index) but the store did not change.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub enum Applied {
    #[default]
    None,
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Refused(Refusal),
    /// The results of a [`Command::Batch`], in order.
    Batch(Vec<Applied>),
}

/// Why a committed command was refused; each maps to one etcd error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    #[error("key not found")]
    KeyNotFound,
    #[error("requested lease not found")]
    LeaseNotFound,
    #[error("lease already exists")]
    LeaseExists,
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
}

/// Failures that stop the member: the store cannot be trusted to go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Mvcc(mvcc::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Splits an mvcc error into a refusal (expected) or a fail-stop error.
pub(crate) fn refuse(e: mvcc::Error) -> Result<Refusal> {
    match e {
        mvcc::Error::Compacted => Ok(Refusal::Compacted),
        mvcc::Error::FutureRev => Ok(Refusal::FutureRev),
        other => Err(Error::Mvcc(other)),
    }
}

/// The result of applying one command.
pub struct Output {
    pub applied: Applied,
    /// Events of each revision the command created, in order.
    pub events: Vec<(i64, Vec<Event>)>,
}

/// Applies commands to the stores, adding their writes to one batch.
pub struct Applier<'a> {
    pub kv: &'a mut KvStore,
    pub leases: &'a mut Lessor,
    pub batch: &'a mut WriteBatch,
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl Applier<'_> {
    fn apply_batch(&mut self, cmds: Vec<Command>) -> Result<Output> {
        let mut results = Vec::with_capacity(cmds.len());
        let mut events = Vec::new();
        for c in cmds {
            let out = self.apply(c)?;
            results.push(out.applied);
            events.extend(out.events);
        }
        Ok(Output {
            applied: Applied::Batch(results),
            events,
        })
    }

    pub fn apply(&mut self, cmd: Command) -> Result<Output> {
        let before = self.kv.current_rev();
        let (applied, events) =
            match cmd {
                Command::Put(req) => self
                    .write(|txn, leases| kv::put(txn, leases, req).map(|r| r.map(Applied::Put)))?,
                Command::DeleteRange(req) => self.write(|txn, leases| {
                    kv::delete_range(txn, leases, req).map(|r| r.map(Applied::DeleteRange))
                })?,
                Command::Txn(req) => self
                    .write(|txn, leases| txn::txn(txn, leases, req).map(|r| r.map(Applied::Txn)))?,
                Command::Batch(cmds) => return self.apply_batch(cmds),
                Command::LeaseGrant(req) => {
                    let applied = if req.ttl > MAX_LEASE_TTL {
                        Applied::Refused(Refusal::LeaseTtlTooLarge)
                    } else if self.leases.contains(req.id) {
                        Applied::Refused(Refusal::LeaseExists)
                    } else {
                        let ttl = self.leases.grant(req.id, req.ttl, self.batch);
                        let hdr = header(self.kv.current_rev());
                        Applied::LeaseGrant(LeaseGrantResponse {
                            header: hdr,
                            id: req.id,
                            ttl,
                            error: String::new(),
                        })
                    };
                    (applied, Vec::new())
                }
                Command::LeaseRevoke(req) => {
                    self.write(|txn, leases| kv::revoke(txn, leases, req.id))?
                }
                Command::Compaction(req) => {
                    let applied = match self.kv.compact(req.revision, self.batch) {
                        Ok(()) => Applied::Compaction(CompactionResponse {
                            header: header(self.kv.current_rev()),
                        }),
                        Err(e) => Applied::Refused(refuse(e)?),
                    };
                    (applied, Vec::new())
                }
            };
        let revision = self.kv.current_rev();
        debug_assert!(revision >= before);
        let events = if events.is_empty() {
            Vec::new()
        } else {
            vec![(revision, events)]
        };
        Ok(Output { applied, events })
    }

    /// Runs `f` in one write transaction. A refusal must come before any change.
    fn write(
        &mut self,
        f: impl FnOnce(
            &mut mvcc::WriteTxn<'_>,
            &mut Lessor,
        ) -> Result<std::result::Result<Applied, Refusal>>,
    ) -> Result<(Applied, Vec<Event>)> {
        let mut txn = self.kv.write(self.batch);
        let out = f(&mut txn, self.leases)?;
        let (_, events) = txn.end();
        match out {
            Ok(applied) => Ok((applied, events)),
            Err(refusal) => {
                assert!(events.is_empty(), "a refused command changed the store");
                Ok((Applied::Refused(refusal), events))
            }
        }
    }
}

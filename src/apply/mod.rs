//! Deterministic execution of committed commands: no clock, no IO but the batch.
//!
//! Owns: the [`Command`] replicated through raft, its result [`Applied`], and the rules of
//! each command (etcd: etcdserver/apply.go, txn/txn.go). Imports: `mvcc`, `lease`, `membership`,
//! `alarm`, `storage`, `proto`.
//! Must never: import `raft`, `server` or `api`, read a clock, or wait on anything.

pub mod auth;
pub mod command;
pub mod kv;
pub mod txn;

pub use command::{
    decode_versioned, decode_versioned_nested, encode_versioned, Command, DecodeError, Request,
    FORMAT_VERSION,
};

use crate::alarm::AlarmStore;
use crate::auth::AuthStore;
use crate::lease::{Lessor, MAX_LEASE_TTL};
use crate::membership::Members;
use crate::mvcc::{self, KvStore};
use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, request_op, AlarmRequest, AlarmResponse, AlarmType,
    CompactionResponse, DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::Event;
use crate::storage::WriteBatch;

/// A command's outcome that the client sees. Refusals are values: the log entry is applied
/// (it consumed an index) but the store did not change.
#[derive(Debug, Clone, Default)]
pub enum Applied {
    #[default]
    None,
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Alarm(AlarmResponse),
    Refused(Refusal),
    /// The results of a batch command, in order.
    Batch(Vec<Applied>),
}

/// Why a committed command was refused; each maps to one etcd error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{}", crate::rpctypes::COMPACTED)]
    Compacted,
    #[error("{}", crate::rpctypes::FUTURE_REV)]
    FutureRev,
    #[error("{}", crate::rpctypes::KEY_NOT_FOUND)]
    KeyNotFound,
    #[error("{}", crate::rpctypes::LEASE_NOT_FOUND)]
    LeaseNotFound,
    #[error("{}", crate::rpctypes::LEASE_EXISTS)]
    LeaseExists,
    #[error("{}", crate::rpctypes::LEASE_TTL_TOO_LARGE)]
    LeaseTtlTooLarge,
    /// A NOSPACE alarm is raised: writes that add data are refused (etcd's capped applier).
    #[error("{}", crate::rpctypes::NO_SPACE)]
    NoSpace,
    /// A CORRUPT alarm is raised: every write is refused (etcd's applierV3Corrupt).
    #[error("{}", crate::rpctypes::CORRUPT)]
    Corrupt,
    /// Refused by the auth store: no permission, or an auth change against its rules.
    #[error("{0}")]
    Auth(crate::auth::Error),
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
    pub members: &'a mut Members,
    pub alarms: &'a mut AlarmStore,
    pub auth: &'a mut AuthStore,
    pub batch: &'a mut WriteBatch,
}

/// The outcome of an auth change.
fn auth_done(r: crate::auth::Result<()>) -> Applied {
    match r {
        Ok(()) => Applied::None,
        Err(e) => Applied::Refused(Refusal::Auth(e)),
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// Whether a txn would add data: some op, in either branch, nested or not, is a put
/// (etcd: the quota's cost of a txn, which the capped applier refuses when non-zero).
fn txn_adds_data(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(r.failure.iter())
        .any(|op| match &op.request {
            Some(request_op::Request::RequestPut(_)) => true,
            Some(request_op::Request::RequestTxn(t)) => txn_adds_data(t),
            _ => false,
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

    /// A NOSPACE alarm refuses what adds data (etcd's applierV3Capped).
    fn capped(&self, req: &Request) -> bool {
        let adds = match req {
            Request::Put(_) | Request::LeaseGrant(_) => true,
            Request::Txn(t) => txn_adds_data(t),
            _ => false,
        };
        adds && self.alarms.is_raised(AlarmType::Nospace)
    }

    /// A CORRUPT alarm refuses every KV and lease request that goes through the log
    /// (etcd's applierV3Corrupt, which the capped applier wraps); alarms, auth and member
    /// changes still apply, and reads are served without the log, as in etcd.
    fn corrupt(&self, req: &Request) -> bool {
        let refused = matches!(
            req,
            Request::Put(_)
                | Request::DeleteRange(_)
                | Request::Txn(_)
                | Request::Compaction(_)
                | Request::LeaseGrant(_)
                | Request::LeaseRevoke(_)
        );
        refused && self.alarms.is_raised(AlarmType::Corrupt)
    }

    pub fn apply(&mut self, cmd: Command) -> Result<Output> {
        let before = self.kv.current_rev();
        let Some(req) = cmd.request else {
            // An envelope with no request changes nothing (a newer kind this build does
            // not know would decode this way, and must not be half-applied).
            return Ok(Output {
                applied: Applied::None,
                events: Vec::new(),
            });
        };
        if self.capped(&req) {
            return Ok(Output {
                applied: Applied::Refused(Refusal::NoSpace),
                events: Vec::new(),
            });
        }
        if self.corrupt(&req) {
            return Ok(Output {
                applied: Applied::Refused(Refusal::Corrupt),
                events: Vec::new(),
            });
        }
        let ai = auth::caller(cmd.header.as_ref());
        if let Err(e) = auth::check(self.auth, self.leases, &ai, &req) {
            return Ok(Output {
                applied: Applied::Refused(Refusal::Auth(e)),
                events: Vec::new(),
            });
        }
        let (applied, events) =
            match req {
                Request::Put(req) => self
                    .write(|txn, leases| kv::put(txn, leases, req).map(|r| r.map(Applied::Put)))?,
                Request::DeleteRange(req) => self.write(|txn, leases| {
                    kv::delete_range(txn, leases, req).map(|r| r.map(Applied::DeleteRange))
                })?,
                Request::Txn(req) => self
                    .write(|txn, leases| txn::txn(txn, leases, req).map(|r| r.map(Applied::Txn)))?,
                Request::Batch(b) => return self.apply_batch(b.requests),
                Request::LeaseGrant(req) => (self.lease_grant(&req), Vec::new()),
                Request::LeaseRevoke(req) => {
                    self.write(|txn, leases| kv::revoke(txn, leases, req.id))?
                }
                Request::LeaseCheckpoint(req) => {
                    for c in req.checkpoints {
                        self.leases.checkpoint(c.id, c.remaining_ttl, self.batch);
                    }
                    (Applied::None, Vec::new())
                }
                Request::Compaction(req) => {
                    let applied = match self.kv.compact(req.revision, self.batch) {
                        Ok(()) => Applied::Compaction(CompactionResponse {
                            header: header(self.kv.current_rev()),
                        }),
                        Err(e) => Applied::Refused(refuse(e)?),
                    };
                    (applied, Vec::new())
                }
                Request::Alarm(req) => (Applied::Alarm(self.alarm(&req)), Vec::new()),
                Request::AuthEnable(_) => (auth_done(self.auth.enable(self.batch)), Vec::new()),
                Request::AuthDisable(_) => {
                    self.auth.disable(self.batch);
                    (Applied::None, Vec::new())
                }
                Request::AuthUserAdd(r) => {
                    let done = self.auth.user_add(
                        &r.name,
                        r.hashed_password.as_bytes(),
                        r.options,
                        self.batch,
                    );
                    (auth_done(done), Vec::new())
                }
                Request::AuthUserDelete(r) => (
                    auth_done(self.auth.user_delete(&r.name, self.batch)),
                    Vec::new(),
                ),
                Request::AuthUserChangePassword(r) => {
                    let done = self.auth.user_change_password(
                        &r.name,
                        r.hashed_password.as_bytes(),
                        self.batch,
                    );
                    (auth_done(done), Vec::new())
                }
                Request::AuthUserGrantRole(r) => {
                    let done = self.auth.user_grant_role(&r.user, &r.role, self.batch);
                    (auth_done(done), Vec::new())
                }
                Request::AuthUserRevokeRole(r) => {
                    let done = self.auth.user_revoke_role(&r.name, &r.role, self.batch);
                    (auth_done(done), Vec::new())
                }
                Request::AuthRoleAdd(r) => (
                    auth_done(self.auth.role_add(&r.name, self.batch)),
                    Vec::new(),
                ),
                Request::AuthRoleDelete(r) => (
                    auth_done(self.auth.role_delete(&r.role, self.batch)),
                    Vec::new(),
                ),
                Request::AuthRoleGrantPermission(r) => {
                    let done = self.auth.role_grant_permission(&r.name, r.perm, self.batch);
                    (auth_done(done), Vec::new())
                }
                Request::AuthRoleRevokePermission(r) => {
                    let done =
                        self.auth
                            .role_revoke_permission(&r.role, &r.key, &r.range_end, self.batch);
                    (auth_done(done), Vec::new())
                }
                Request::MemberAttrSet(req) => {
                    let attrs = req.member_attributes.unwrap_or_default();
                    self.members.set_attributes(
                        req.member_id,
                        attrs.name,
                        attrs.client_urls,
                        self.batch,
                    );
                    (Applied::None, Vec::new())
                }
                Request::DowngradeInfoSet(req) => {
                    let target = req.enabled.then_some(req.ver);
                    self.members.set_downgrade(target, self.batch);
                    (Applied::None, Vec::new())
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

    fn lease_grant(&mut self, req: &LeaseGrantRequest) -> Applied {
        if req.ttl > MAX_LEASE_TTL {
            Applied::Refused(Refusal::LeaseTtlTooLarge)
        } else if self.leases.contains(req.id) {
            Applied::Refused(Refusal::LeaseExists)
        } else {
            let ttl = self.leases.grant(req.id, req.ttl, self.batch);
            Applied::LeaseGrant(LeaseGrantResponse {
                header: header(self.kv.current_rev()),
                id: req.id,
                ttl,
                error: String::new(),
            })
        }
    }

    /// etcd's applierV3backend.Alarm: GET lists (all alarms for NONE), ACTIVATE raises and
    /// answers the alarm, DEACTIVATE clears and answers it if it was raised.
    fn alarm(&mut self, req: &AlarmRequest) -> AlarmResponse {
        let mut resp = AlarmResponse {
            header: None,
            alarms: Vec::new(),
        };
        match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => resp.alarms = self.alarms.get(req.alarm),
            Ok(AlarmAction::Activate) => {
                if req.alarm != AlarmType::None as i32 {
                    let m = self.alarms.activate(req.member_id, req.alarm, self.batch);
                    resp.alarms.push(m);
                }
            }
            Ok(AlarmAction::Deactivate) => {
                if let Some(m) = self.alarms.deactivate(req.member_id, req.alarm, self.batch) {
                    resp.alarms.push(m);
                }
            }
            Err(_) => {}
        }
        resp
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

#[cfg(test)]
mod tests;

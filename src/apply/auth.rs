//! Auth at apply time (etcd: etcdserver/apply_auth.go): every write is checked against the
//! auth store as it is when the write applies, for the user and auth revision its header
//! carries, so a permission revoked between the proposer's check and the apply still
//! denies (a header older than the store's revision is refused with etcd's
//! ErrAuthOldRevision). Auth changes need the root role.

use super::Request;
use crate::auth::{self, AuthInfo, AuthStore};
use crate::lease::Lessor;
use crate::proto::etcdserverpb::{request_op, RequestOp, TxnRequest};
use crate::proto::metastorepb::RequestHeader;

/// Who the header says proposed the command (no header: no credentials).
pub fn caller(header: Option<&RequestHeader>) -> AuthInfo {
    header
        .map(|h| AuthInfo {
            username: h.username.clone(),
            revision: h.auth_revision,
        })
        .unwrap_or_default()
}

/// etcd's checkLeasePuts: writing to (or revoking) a lease needs write permission on
/// every key already attached to it.
fn check_lease_puts(
    store: &AuthStore,
    leases: &Lessor,
    ai: &AuthInfo,
    lease: i64,
) -> auth::Result<()> {
    if let Some(l) = leases.get(lease) {
        for key in &l.keys {
            store.is_put_permitted(ai, key)?;
        }
    }
    Ok(())
}

/// etcd's checkTxnReqsPermission, nested txns included (etcd 3.4 skips them; 3.5 checks).
fn check_ops(store: &AuthStore, ai: &AuthInfo, ops: &[RequestOp]) -> auth::Result<()> {
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => {
                store.is_range_permitted(ai, &r.key, &r.range_end)?
            }
            Some(request_op::Request::RequestPut(r)) => {
                store.is_put_permitted(ai, &r.key)?;
                if r.prev_kv {
                    store.is_range_permitted(ai, &r.key, &[])?;
                }
            }
            Some(request_op::Request::RequestDeleteRange(r)) => {
                if r.prev_kv {
                    store.is_range_permitted(ai, &r.key, &r.range_end)?;
                }
                store.is_delete_range_permitted(ai, &r.key, &r.range_end)?;
            }
            Some(request_op::Request::RequestTxn(t)) => check_txn(store, ai, t)?,
            None => {}
        }
    }
    Ok(())
}

/// etcd's checkTxnAuth: read permission on every compared key, then every operation of
/// both branches.
pub fn check_txn(store: &AuthStore, ai: &AuthInfo, t: &TxnRequest) -> auth::Result<()> {
    for c in &t.compare {
        store.is_range_permitted(ai, &c.key, &c.range_end)?;
    }
    check_ops(store, ai, &t.success)?;
    check_ops(store, ai, &t.failure)
}

/// The permission a command needs, checked before it changes anything.
pub fn check(store: &AuthStore, leases: &Lessor, ai: &AuthInfo, req: &Request) -> auth::Result<()> {
    match req {
        Request::Put(r) => {
            store.is_put_permitted(ai, &r.key)?;
            check_lease_puts(store, leases, ai, r.lease)?;
            if r.prev_kv {
                store.is_range_permitted(ai, &r.key, &[])?;
            }
            Ok(())
        }
        Request::DeleteRange(r) => {
            store.is_delete_range_permitted(ai, &r.key, &r.range_end)?;
            if r.prev_kv {
                store.is_range_permitted(ai, &r.key, &r.range_end)?;
            }
            Ok(())
        }
        Request::Txn(t) => check_txn(store, ai, t),
        Request::LeaseRevoke(r) => check_lease_puts(store, leases, ai, r.id),
        Request::AuthEnable(_)
        | Request::AuthDisable(_)
        | Request::AuthUserAdd(_)
        | Request::AuthUserDelete(_)
        | Request::AuthUserChangePassword(_)
        | Request::AuthUserGrantRole(_)
        | Request::AuthUserRevokeRole(_)
        | Request::AuthRoleAdd(_)
        | Request::AuthRoleDelete(_)
        | Request::AuthRoleGrantPermission(_)
        | Request::AuthRoleRevokePermission(_) => store.is_admin_permitted(Some(ai)),
        // as etcd: compaction, lease grants and checkpoints, alarms, member attributes
        // and the downgrade job are not checked (Maintenance checks the caller first)
        Request::Compaction(_)
        | Request::LeaseGrant(_)
        | Request::LeaseCheckpoint(_)
        | Request::Alarm(_)
        | Request::MemberAttrSet(_)
        | Request::DowngradeInfoSet(_)
        | Request::Batch(_) => Ok(()),
    }
}

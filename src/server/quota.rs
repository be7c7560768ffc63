//! The backend quota (etcd: etcdserver/quota.go and v3rpc/quota.go).
//!
//! Before a put, a txn or a lease grant is proposed, the member checks that the backend
//! plus the request's cost stays under `--quota-backend-bytes` (2 GiB by default). If not,
//! it raises NOSPACE for itself through the log (every member then refuses what adds
//! data, in apply) and refuses the request with `etcdserver: mvcc: database space
//! exceeded`. As in etcd, any txn is checked, even one without puts (its cost is 0, so it
//! is refused only when the backend is already at the quota).

use prost::Message;

use super::error::{Error, Result};
use super::member::Member;
use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, request_op, AlarmRequest, AlarmType, LeaseGrantRequest, PutRequest,
    TxnRequest,
};

/// What etcd adds to a put's size for the index and bucket overhead (quota.go kvOverhead).
const KV_OVERHEAD: usize = 256;
/// etcd's leaseOverhead.
const LEASE_OVERHEAD: usize = 64;

pub(super) fn cost_put(r: &PutRequest) -> usize {
    KV_OVERHEAD + r.encoded_len()
}

/// The larger branch's puts (etcd's costTxn; nested txns count nothing, as in etcd).
pub(super) fn cost_txn(r: &TxnRequest) -> usize {
    let branch = |ops: &[crate::proto::etcdserverpb::RequestOp]| -> usize {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => cost_put(p),
                _ => 0,
            })
            .sum()
    };
    branch(&r.success).max(branch(&r.failure))
}

pub(super) fn cost_lease_grant(r: &LeaseGrantRequest) -> usize {
    LEASE_OVERHEAD + r.encoded_len()
}

impl Member {
    /// etcd's quota check: fine while the backend and `cost` stay under the quota; past
    /// it, NOSPACE is raised on this member and the request refused.
    pub(super) async fn check_quota(&self, cost: usize) -> Result<()> {
        let quota = self.settings.quota_backend_bytes;
        let size = self.backend.size();
        if size.saturating_add(cost as u64) < quota {
            return Ok(());
        }
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        // etcd raises the alarm and refuses whatever became of the raise.
        if let Err(e) = self.alarm(raise).await {
            tracing::warn!(error = %e, "failed to raise the NOSPACE alarm");
        }
        Err(Error::NoSpace)
    }
}

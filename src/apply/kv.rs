//! Range, Put and DeleteRange as etcd's applier runs them (etcd: etcdserver/apply.go).

use std::cmp::Ordering;

use super::{header, refuse, Applied, Refusal, Result};
use crate::lease::{LeaseId, Lessor};
use crate::mvcc::{KeyRange, RangeOptions, RangeResult, ReadView, RevFilter, WriteTxn};
use crate::proto::etcdserverpb::{
    range_request::{SortOrder, SortTarget},
    DeleteRangeRequest, DeleteRangeResponse, LeaseRevokeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse,
};
use crate::proto::mvccpb::KeyValue;

pub type Outcome<T> = Result<std::result::Result<T, Refusal>>;

/// How a `RangeRequest` is read from the store, and what is left to do to the result.
///
/// etcd (etcdserver/apply.go Range) fetches every key when the request sorts or filters,
/// then filters, sorts, and truncates to `limit`; otherwise it fetches `limit + 1` keys in
/// key order. `count` is always every key of the range. The store here filters by mod and
/// create revision from the index and walks keys in either order, so only a sort on a
/// target other than the key still needs every value; every other request reads at most
/// `limit + 1` values, with the same answer as etcd's.
#[derive(Debug, Clone)]
pub struct RangePlan {
    pub range: KeyRange,
    pub opts: RangeOptions,
    /// Sort the fetched keys by a target other than the key.
    sort: Option<(SortTarget, SortOrder)>,
    limit: usize,
    keys_only: bool,
}

pub fn range_plan(r: &RangeRequest) -> RangePlan {
    let raw_order = SortOrder::try_from(r.sort_order).unwrap_or(SortOrder::None);
    let target = SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key);
    let filter = RevFilter {
        min_mod: r.min_mod_revision,
        max_mod: r.max_mod_revision,
        min_create: r.min_create_revision,
        max_create: r.max_create_revision,
    };
    // etcd sorts ascending when a target other than the key is named without an order.
    let order = match (target, raw_order) {
        (t, SortOrder::None) if t != SortTarget::Key => SortOrder::Ascend,
        (_, o) => o,
    };
    let limit = usize::try_from(r.limit.max(0)).unwrap_or(usize::MAX);
    let sort = (target != SortTarget::Key && order != SortOrder::None).then_some((target, order));
    // With a sort on another target, etcd reads everything if it sorts or filters, else it
    // sorts the first `limit + 1` keys only (and so does this).
    let fetch_all = sort.is_some() && (raw_order != SortOrder::None || !filter.is_empty());
    let store_limit = if fetch_all || limit == 0 {
        0
    } else {
        limit.saturating_add(1)
    };
    RangePlan {
        range: KeyRange::new(r.key.clone(), r.range_end.clone()),
        opts: RangeOptions {
            limit: store_limit,
            rev: r.revision,
            count_only: r.count_only,
            keys_only: r.keys_only && sort != Some((SortTarget::Value, order)),
            descend: target == SortTarget::Key && order == SortOrder::Descend,
            filter,
        },
        sort,
        limit,
        keys_only: r.keys_only,
    }
}

impl RangePlan {
    /// The response from what the store returned for [`RangePlan::opts`].
    pub fn response(&self, mut rr: RangeResult) -> RangeResponse {
        if let Some((target, order)) = self.sort {
            let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
                match target {
                    SortTarget::Key => a.key.cmp(&b.key),
                    SortTarget::Version => a.version.cmp(&b.version),
                    SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                    SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                    SortTarget::Value => a.value.cmp(&b.value),
                }
            };
            if order == SortOrder::Descend {
                rr.kvs.sort_by(|a, b| cmp(b, a));
            } else {
                rr.kvs.sort_by(cmp);
            }
        }
        let mut more = false;
        if self.limit > 0 && rr.kvs.len() > self.limit {
            rr.kvs.truncate(self.limit);
            more = true;
        }
        if self.keys_only {
            for kv in &mut rr.kvs {
                kv.value = Default::default();
            }
        }
        RangeResponse {
            header: header(rr.rev),
            kvs: rr.kvs,
            more,
            count: i64::try_from(rr.count).expect("count fits i64"),
        }
    }
}

/// A range read with etcd's filters, sort and limit, over any read view.
pub fn range(view: &impl ReadView, r: &RangeRequest) -> Outcome<RangeResponse> {
    crate::metrics::MVCC_RANGE.inc();
    let plan = range_plan(r);
    match view.range(&plan.range, plan.opts) {
        Ok(rr) => Ok(Ok(plan.response(rr))),
        Err(e) => Ok(Err(refuse(e)?)),
    }
}

/// Checks a put against the state before it changes anything (etcd: checkPut).
pub fn check_put(view: &impl ReadView, leases: &Lessor, p: &PutRequest) -> Outcome<()> {
    if p.ignore_value || p.ignore_lease {
        let rr = match view.range(&KeyRange::Single(p.key.clone()), RangeOptions::default()) {
            Ok(rr) => rr,
            Err(e) => return Ok(Err(refuse(e)?)),
        };
        if rr.kvs.is_empty() {
            return Ok(Err(Refusal::KeyNotFound));
        }
    }
    if p.lease != 0 && !leases.contains(p.lease) {
        return Ok(Err(Refusal::LeaseNotFound));
    }
    Ok(Ok(()))
}

pub fn put(txn: &mut WriteTxn<'_>, leases: &mut Lessor, p: PutRequest) -> Outcome<PutResponse> {
    if let Err(refusal) = check_put(txn, leases, &p)? {
        return Ok(Err(refusal));
    }
    Ok(Ok(put_checked(txn, leases, p)?))
}

/// A put whose checks have passed (inside a txn they run before any op).
pub fn put_checked(
    txn: &mut WriteTxn<'_>,
    leases: &mut Lessor,
    p: PutRequest,
) -> Result<PutResponse> {
    let prev = if p.ignore_value || p.ignore_lease || p.prev_kv {
        txn.get(&p.key).map_err(super::Error::Mvcc)?
    } else {
        None
    };
    let mut value = p.value;
    let mut lease = p.lease;
    if let Some(prev) = &prev {
        if p.ignore_value {
            value = prev.value.clone();
        }
        if p.ignore_lease {
            lease = prev.lease;
        }
    }
    let kv = txn.put(p.key, value, lease);
    crate::metrics::MVCC_PUT.inc();
    leases.attach(&kv.key, lease);
    Ok(PutResponse {
        header: header(kv.mod_revision),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}

pub fn delete_range(
    txn: &mut WriteTxn<'_>,
    leases: &mut Lessor,
    d: DeleteRangeRequest,
) -> Outcome<DeleteRangeResponse> {
    let range = KeyRange::new(d.key, d.range_end);
    let deleted = txn.delete_range(&range).map_err(super::Error::Mvcc)?;
    crate::metrics::MVCC_DELETE.inc();
    for kv in &deleted {
        leases.detach(&kv.key);
    }
    let n = i64::try_from(deleted.len()).expect("count fits i64");
    Ok(Ok(DeleteRangeResponse {
        header: header(txn.read_rev()),
        deleted: n,
        prev_kvs: if d.prev_kv { deleted } else { Vec::new() },
    }))
}

/// Revoke a lease: every attached key is deleted in this one revision (etcd: lessor Revoke).
pub fn revoke(txn: &mut WriteTxn<'_>, leases: &mut Lessor, id: LeaseId) -> Outcome<Applied> {
    let Some(keys) = leases.revoke(id, txn.batch_mut()) else {
        return Ok(Err(Refusal::LeaseNotFound));
    };
    for key in keys {
        txn.delete_range(&KeyRange::Single(key))
            .map_err(super::Error::Mvcc)?;
    }
    Ok(Ok(Applied::LeaseRevoke(LeaseRevokeResponse {
        header: header(txn.read_rev()),
    })))
}

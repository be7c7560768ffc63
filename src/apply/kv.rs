//! Range, Put and DeleteRange as etcd's applier runs them (etcd: etcdserver/apply.go).

use std::cmp::Ordering;

use super::{header, refuse, Applied, Refusal, Result};
use crate::lease::{LeaseId, Lessor};
use crate::mvcc::{KeyRange, RangeOptions, ReadView, WriteTxn};
use crate::proto::etcdserverpb::{
    range_request::{SortOrder, SortTarget},
    DeleteRangeRequest, DeleteRangeResponse, LeaseRevokeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse,
};
use crate::proto::mvccpb::KeyValue;

pub type Outcome<T> = Result<std::result::Result<T, Refusal>>;

/// A range read with etcd's filters, sort and limit, over any read view.
pub fn range(view: &impl ReadView, r: &RangeRequest) -> Outcome<RangeResponse> {
    let sort_order = SortOrder::try_from(r.sort_order).unwrap_or(SortOrder::None);
    let sort_target = SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key);
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    // Fetch everything when sorting or filtering; one extra to know whether there is more.
    let mut limit = if sort_order != SortOrder::None || filtered {
        0
    } else {
        r.limit.max(0)
    };
    if limit > 0 {
        limit += 1;
    }
    let opts = RangeOptions {
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        rev: r.revision,
        count_only: r.count_only,
    };
    let range = KeyRange::new(r.key.clone(), r.range_end.clone());
    let mut rr = match view.range(&range, opts) {
        Ok(rr) => rr,
        Err(e) => return Ok(Err(refuse(e)?)),
    };
    let keep = |kv: &KeyValue| {
        !(r.max_mod_revision != 0 && kv.mod_revision > r.max_mod_revision
            || r.min_mod_revision != 0 && kv.mod_revision < r.min_mod_revision
            || r.max_create_revision != 0 && kv.create_revision > r.max_create_revision
            || r.min_create_revision != 0 && kv.create_revision < r.min_create_revision)
    };
    rr.kvs.retain(keep);

    // The store returns keys in ascending order: sort only when that is not what was asked.
    let order = match (sort_target, sort_order) {
        (SortTarget::Key, SortOrder::Ascend) => SortOrder::None,
        (t, SortOrder::None) if t != SortTarget::Key => SortOrder::Ascend,
        (_, o) => o,
    };
    if order != SortOrder::None {
        let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
            match sort_target {
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
    if let Ok(l) = usize::try_from(r.limit) {
        if l > 0 && rr.kvs.len() > l {
            rr.kvs.truncate(l);
            more = true;
        }
    }
    if r.keys_only {
        for kv in &mut rr.kvs {
            kv.value = Default::default();
        }
    }
    Ok(Ok(RangeResponse {
        header: header(rr.rev),
        kvs: rr.kvs,
        more,
        count: i64::try_from(rr.count).expect("count fits i64"),
    }))
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

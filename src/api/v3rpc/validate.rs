//! Request checks made before anything is proposed (etcd: api/v3rpc/key.go).

use std::collections::HashSet;

use bytes::Bytes;

use crate::proto::etcdserverpb::{
    range_request::{SortOrder, SortTarget},
    request_op::Request,
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use crate::proto::nested::MAX_TXN_DEPTH;
use crate::server::{Error, Result};

pub fn check_range(r: &RangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if SortOrder::try_from(r.sort_order).is_err() || SortTarget::try_from(r.sort_target).is_err() {
        return Err(Error::InvalidSortOption);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(r: &DeleteRangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// etcd's checkTxnRequest followed by checkIntervals on both branches.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<()> {
    check_txn_ops(r, max_txn_ops as i64, 1)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

/// A nested txn counts against what its parent has left: its ops may number at most the
/// parent's budget less the parent's own op count (etcd: `maxTxnOps-opc`). A txn deeper
/// than the decoder keeps (`nested::MAX_TXN_DEPTH`, far past what the default budget
/// allows) is refused the same way.
fn check_txn_ops(r: &TxnRequest, budget: i64, depth: usize) -> Result<()> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len()) as i64;
    if opc > budget || depth > MAX_TXN_DEPTH {
        return Err(Error::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::EmptyKey);
    }
    for op in r.success.iter().chain(r.failure.iter()) {
        check_request_op(op, budget - opc, depth)?;
    }
    Ok(())
}

fn check_request_op(op: &RequestOp, budget: i64, depth: usize) -> Result<()> {
    match &op.request {
        Some(Request::RequestRange(r)) => check_range(r),
        Some(Request::RequestPut(r)) => check_put(r),
        Some(Request::RequestDeleteRange(r)) => check_delete(r),
        Some(Request::RequestTxn(t)) => check_txn_ops(t, budget, depth + 1),
        None => Err(Error::KeyNotFound),
    }
}

/// A delete as etcd's overlap check sees it (adt's string-affine intervals): a single key,
/// or `[key, range_end)` compared as plain bytes, so `range_end` "\0" (every key from
/// `key` on, when deleting) covers no put here, exactly as in etcd.
#[derive(Clone)]
struct Del {
    key: Bytes,
    end: Option<Bytes>,
}

impl Del {
    fn covers(&self, k: &[u8]) -> bool {
        match &self.end {
            None => self.key.as_ref() == k,
            Some(end) => self.key.as_ref() <= k && k < end.as_ref(),
        }
    }
}

/// Puts and deletes of one branch may not touch the same key (etcd: checkIntervals). The
/// two branches of a nested txn exclude each other, so a key put in both is allowed.
fn check_intervals(ops: &[RequestOp]) -> Result<(HashSet<Bytes>, Vec<Del>)> {
    let mut dels: Vec<Del> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(Del {
                key: d.key.clone(),
                end: (!d.range_end.is_empty()).then(|| d.range_end.clone()),
            }),
            _ => None,
        })
        .collect();
    let hits = |dels: &[Del], k: &Bytes| dels.iter().any(|d| d.covers(k));
    let mut puts: HashSet<Bytes> = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || hits(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || hits(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        // etcd unions the children's deletes that overlap ["\0", +inf): all but those
        // ending at "\0" (which cover nothing anyway).
        let kept = |d: &Del| d.end.as_deref() != Some(&b"\0"[..]);
        dels.extend(dels_then.into_iter().filter(kept));
        dels.extend(dels_else.into_iter().filter(kept));
    }
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || hits(&dels, &p.key) {
            return Err(Error::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: Bytes::copy_from_slice(k.as_bytes()),
                ..Default::default()
            })),
        }
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: Bytes::copy_from_slice(k.as_bytes()),
                range_end: Bytes::copy_from_slice(end.as_bytes()),
                ..Default::default()
            })),
        }
    }
    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestTxn(TxnRequest {
                compare: vec![],
                success,
                failure,
            })),
        }
    }
    fn check(success: Vec<RequestOp>) -> Result<()> {
        check_txn(
            &TxnRequest {
                compare: vec![],
                success,
                failure: vec![],
            },
            128,
        )
    }

    #[test]
    fn duplicate_rules_follow_etcd() {
        assert_eq!(check(vec![put("a"), put("a")]), Err(Error::DuplicateKey));
        assert_eq!(check(vec![put("a"), put("b")]), Ok(()));
        assert_eq!(
            check(vec![put("b"), del("a", "c")]),
            Err(Error::DuplicateKey)
        );
        assert_eq!(check(vec![del("a", "c"), del("b", "")]), Ok(()));
        assert_eq!(check(vec![txn(vec![put("a")], vec![put("a")])]), Ok(()));
        assert_eq!(
            check(vec![txn(vec![put("a")], vec![]), put("a")]),
            Err(Error::DuplicateKey)
        );
        assert_eq!(
            check(vec![txn(vec![del("a", "")], vec![]), put("a")]),
            Err(Error::DuplicateKey)
        );
        // "\0" as range end is no open range to etcd's check
        assert_eq!(check(vec![del("y", "\0"), put("z")]), Ok(()));
        assert_eq!(check(vec![del("y", "\0"), put("y")]), Ok(()));
        assert_eq!(
            check(vec![del("y", "~"), put("z")]),
            Err(Error::DuplicateKey)
        );
        // an inverted range covers nothing
        assert_eq!(check(vec![del("m", "c"), put("d")]), Ok(()));
    }

    #[test]
    fn nested_txns_spend_the_parents_budget() {
        let puts = |n: usize, p: &str| -> Vec<RequestOp> {
            (0..n).map(|i| put(&format!("{p}{i}"))).collect()
        };
        // 120 puts and the nested txn are 121 ops, which leave 7 of 128: 9 is too many
        let mut ops = puts(120, "a");
        ops.push(txn(puts(9, "b"), vec![]));
        assert_eq!(check(ops), Err(Error::TooManyOps));
        let mut ops = puts(120, "a");
        ops.push(txn(puts(7, "b"), vec![]));
        assert_eq!(check(ops), Ok(()));
        // each level of a chain of one-op txns spends one
        let chain = |depth: usize| {
            let mut t = txn(vec![], vec![]);
            for _ in 1..depth {
                t = txn(vec![t], vec![]);
            }
            vec![t]
        };
        assert_eq!(check(chain(128)), Ok(()));
        assert_eq!(check(chain(129)), Err(Error::TooManyOps));
    }

    #[test]
    fn too_many_ops_and_empty_op() {
        let ops: Vec<RequestOp> = (0..129).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(check(ops), Err(Error::TooManyOps));
        assert_eq!(
            check(vec![RequestOp { request: None }]),
            Err(Error::KeyNotFound)
        );
    }
}

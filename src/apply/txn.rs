//! Txn: compares, then the taken branch, all in one revision (etcd: etcdserver/apply.go
//! applyTxn, compareToPath, checkRequests).
//!
//! Every check of the taken path (puts that need a previous key, ranges at a revision) runs
//! against the state before the txn and before any change, so a refused txn changes nothing.

use std::cmp::Ordering;

use super::kv::{self, Outcome};
use super::{header, refuse, Refusal, Result};
use crate::lease::Lessor;
use crate::mvcc::{KeyRange, RangeOptions, ReadView, WriteTxn};
use crate::proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request,
    response_op::Response,
    Compare, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::KeyValue;

/// Whether one compare holds (etcd: applyCompare). A value compare on a missing key fails.
pub fn compare(view: &impl ReadView, c: &Compare) -> Result<bool> {
    let range = KeyRange::new(c.key.clone(), c.range_end.clone());
    let rr = match view.range(&range, RangeOptions::default()) {
        Ok(rr) => rr,
        Err(e) => {
            refuse(e)?;
            return Ok(false);
        }
    };
    // etcd: an unknown target compares as equal, an unknown result holds.
    let target = CompareTarget::try_from(c.target).ok();
    if rr.kvs.is_empty() {
        if target == Some(CompareTarget::Value) {
            return Ok(false);
        }
        return Ok(compare_kv(c, target, &KeyValue::default()));
    }
    Ok(rr.kvs.iter().all(|kv| compare_kv(c, target, kv)))
}

fn compare_kv(c: &Compare, target: Option<CompareTarget>, kv: &KeyValue) -> bool {
    let Some(target) = target else {
        return compare_result(c, Ordering::Equal);
    };
    let ord = match (target, &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => kv.value.as_ref().cmp(v.as_ref()),
        (CompareTarget::Value, _) => kv.value.as_ref().cmp(&[][..]),
        (CompareTarget::Create, u) => kv.create_revision.cmp(&int_target(u, |u| match u {
            TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        (CompareTarget::Mod, u) => kv.mod_revision.cmp(&int_target(u, |u| match u {
            TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        (CompareTarget::Version, u) => kv.version.cmp(&int_target(u, |u| match u {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        (CompareTarget::Lease, u) => kv.lease.cmp(&int_target(u, |u| match u {
            TargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
    };
    compare_result(c, ord)
}

fn compare_result(c: &Compare, ord: Ordering) -> bool {
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

fn int_target(u: &Option<TargetUnion>, f: impl Fn(&TargetUnion) -> Option<i64>) -> i64 {
    u.as_ref().and_then(f).unwrap_or(0)
}

/// The branch each (nested) txn takes, in depth-first order (etcd: compareToPath).
fn compare_to_path(view: &impl ReadView, r: &TxnRequest, path: &mut Vec<bool>) -> Result<()> {
    let mut ok = true;
    for c in &r.compare {
        if !compare(view, c)? {
            ok = false;
            break;
        }
    }
    path.push(ok);
    for op in branch(r, ok) {
        if let Some(Request::RequestTxn(t)) = &op.request {
            compare_to_path(view, t, path)?;
        }
    }
    Ok(())
}

fn branch(r: &TxnRequest, ok: bool) -> &[RequestOp] {
    if ok {
        &r.success
    } else {
        &r.failure
    }
}

/// Checks every op on the taken path before anything changes (etcd: checkRequests).
fn check_path(
    view: &impl ReadView,
    leases: &Lessor,
    r: &TxnRequest,
    path: &[bool],
    at: &mut usize,
) -> Outcome<()> {
    let ok = path[*at];
    *at += 1;
    for op in branch(r, ok) {
        let res = match &op.request {
            Some(Request::RequestPut(p)) => kv::check_put(view, leases, p)?,
            Some(Request::RequestRange(g)) if g.revision != 0 => {
                if g.revision > view.rev() {
                    Err(Refusal::FutureRev)
                } else if g.revision < view.first_rev() {
                    Err(Refusal::Compacted)
                } else {
                    Ok(())
                }
            }
            Some(Request::RequestTxn(t)) => check_path(view, leases, t, path, at)?,
            _ => Ok(()),
        };
        if res.is_err() {
            return Ok(res);
        }
    }
    Ok(Ok(()))
}

pub fn txn(txn: &mut WriteTxn<'_>, leases: &mut Lessor, r: TxnRequest) -> Outcome<TxnResponse> {
    crate::metrics::MVCC_TXN.inc();
    let mut path = Vec::new();
    compare_to_path(txn, &r, &mut path)?;
    if let Err(refusal) = check_path(txn, leases, &r, &path, &mut 0)? {
        return Ok(Err(refusal));
    }
    let mut resp = apply_path(txn, leases, r, &path, &mut 0)?;
    resp.header = header(txn.read_rev());
    Ok(Ok(resp))
}

/// A txn of ranges only (etcd: isTxnReadonly), run as a read over `view`: it takes no
/// revision and needs no write lock. A refusal can come at any op, since nothing changes.
pub fn txn_read_only(view: &impl ReadView, r: &TxnRequest) -> Outcome<TxnResponse> {
    crate::metrics::MVCC_TXN.inc();
    let mut path = Vec::new();
    compare_to_path(view, r, &mut path)?;
    let mut resp = match read_path(view, r, &path, &mut 0)? {
        Ok(resp) => resp,
        Err(refusal) => return Ok(Err(refusal)),
    };
    resp.header = header(view.rev());
    Ok(Ok(resp))
}

fn read_path(
    view: &impl ReadView,
    r: &TxnRequest,
    path: &[bool],
    at: &mut usize,
) -> Outcome<TxnResponse> {
    let ok = path[*at];
    *at += 1;
    let mut responses = Vec::new();
    for op in branch(r, ok) {
        let response = match &op.request {
            Some(Request::RequestRange(g)) => match kv::range(view, g)? {
                Ok(rr) => Response::ResponseRange(rr),
                Err(refusal) => return Ok(Err(refusal)),
            },
            Some(Request::RequestTxn(t)) => match read_path(view, t, path, at)? {
                Ok(mut tr) => {
                    tr.header = Some(Default::default());
                    Response::ResponseTxn(tr)
                }
                Err(refusal) => return Ok(Err(refusal)),
            },
            Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => {
                panic!("txn_read_only called with a write op")
            }
            None => continue,
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(Ok(TxnResponse {
        header: None,
        succeeded: ok,
        responses,
    }))
}

fn apply_path(
    txn: &mut WriteTxn<'_>,
    leases: &mut Lessor,
    r: TxnRequest,
    path: &[bool],
    at: &mut usize,
) -> Result<TxnResponse> {
    let ok = path[*at];
    *at += 1;
    let ops = if ok { r.success } else { r.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match op.request {
            Some(Request::RequestRange(g)) => match kv::range(txn, &g)? {
                Ok(rr) => Response::ResponseRange(rr),
                Err(refusal) => unreachable_refusal(refusal),
            },
            Some(Request::RequestPut(p)) => Response::ResponsePut(kv::put_checked(txn, leases, p)?),
            Some(Request::RequestDeleteRange(d)) => match kv::delete_range(txn, leases, d)? {
                Ok(dr) => Response::ResponseDeleteRange(dr),
                Err(refusal) => unreachable_refusal(refusal),
            },
            Some(Request::RequestTxn(t)) => {
                // etcd leaves a nested txn's header empty.
                let mut tr = apply_path(txn, leases, t, path, at)?;
                tr.header = Some(Default::default());
                Response::ResponseTxn(tr)
            }
            None => continue,
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(TxnResponse {
        header: None,
        succeeded: ok,
        responses,
    })
}

/// Ranges and deletes inside a txn cannot be refused once the path checks passed; a refusal
/// here would mean a write txn stopped half way, which etcd treats as fatal too.
fn unreachable_refusal(refusal: Refusal) -> ! {
    panic!("txn op refused after its checks passed: {refusal}")
}

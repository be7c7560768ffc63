//! The pieces of etcd's client-side concurrency package (client/v3/concurrency: session.go,
//! key.go) that its Lock and Election servers are built on, run here on the member's own
//! paths: txns and ranges through the member (checked as the KV service checks them),
//! waits on the member's watchable store.

use std::sync::Arc;

use bytes::Bytes;
use tonic::Status;

use super::validate;
use crate::proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op, response_op, Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest,
    RangeRequest, RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::event::EventType;
use crate::server::AuthInfo;
use crate::server::{Error, KeyRange, Member, Notice, WatchSpec};

/// etcd's default session TTL, in seconds: a request without a lease gets a new one.
const SESSION_TTL: i64 = 60;

/// The lease of etcd's session for a request: the given one, or a new lease of
/// [`SESSION_TTL`] when none is given (etcd's NewSession grants one for lease 0). A missing
/// lease is found out by the first put that names it, as in etcd.
pub(super) async fn session_lease(member: &Member, lease: i64) -> Result<i64, Status> {
    if lease != 0 {
        return Ok(lease);
    }
    let resp = member
        .lease_grant(LeaseGrantRequest {
            ttl: SESSION_TTL,
            id: 0,
        })
        .await?;
    Ok(resp.id)
}

/// `<prefix><lease in hex>`, as Go's `%x` prints an int64 (a minus sign, then the digits).
pub(super) fn lease_key(prefix: &[u8], lease: i64) -> Bytes {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    let mut key = prefix.to_vec();
    key.extend_from_slice(hex.as_bytes());
    Bytes::from(key)
}

/// `name` followed by `/`: the prefix of every key of a lock or an election.
pub(super) fn key_prefix(name: &[u8]) -> Bytes {
    let mut p = name.to_vec();
    p.push(b'/');
    Bytes::from(p)
}

/// The end of the range of every key starting with `prefix` (etcd: GetPrefixRangeEnd).
pub(super) fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    Bytes::from_static(&[0])
}

/// The first-created key under `prefix` (etcd: WithFirstCreate).
pub(super) fn first_created(prefix: &Bytes) -> RangeRequest {
    RangeRequest {
        key: prefix.clone(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// One key.
pub(super) fn get(key: &Bytes) -> RangeRequest {
    RangeRequest {
        key: key.clone(),
        ..Default::default()
    }
}

pub(super) fn op_range(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

pub(super) fn op_put(key: &Bytes, value: Bytes, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.clone(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

pub(super) fn op_delete(key: &Bytes) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.clone(),
                ..Default::default()
            },
        )),
    }
}

/// `create_revision(key) == rev`.
pub(super) fn created_at(key: &Bytes, rev: i64) -> Compare {
    Compare {
        key: key.clone(),
        target: CompareTarget::Create as i32,
        result: CompareResult::Equal as i32,
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

/// A txn as `ai`, checked as the KV service checks one.
pub(super) async fn txn(
    member: &Member,
    ai: &AuthInfo,
    req: TxnRequest,
) -> Result<TxnResponse, Status> {
    validate::check_txn(&req, member.settings.max_txn_ops as usize)?;
    Ok(member.txn(ai, req).await?)
}

/// A linearizable range as `ai`, checked as the KV service checks one.
pub(super) async fn range(
    member: &Member,
    ai: &AuthInfo,
    req: RangeRequest,
) -> Result<RangeResponse, Status> {
    validate::check_range(&req)?;
    Ok(member.range(ai, req).await?)
}

/// A delete of one key, checked as the KV service checks one; the response header.
pub(super) async fn delete(
    member: &Member,
    ai: &AuthInfo,
    key: &Bytes,
) -> Result<ResponseHeader, Status> {
    let req = DeleteRangeRequest {
        key: key.clone(),
        ..Default::default()
    };
    validate::check_delete(&req)?;
    let mut resp = member.delete_range(ai, req).await?;
    super::header::fill(member, &mut resp.header);
    Ok(resp.header.unwrap_or_default())
}

/// The kvs of the `i`th response of a txn, if it is a range.
pub(super) fn range_kvs(resp: &TxnResponse, i: usize) -> &[crate::proto::mvccpb::KeyValue] {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

/// The revision a response's header carries (0 if none).
pub(super) fn header_rev(h: &Option<ResponseHeader>) -> i64 {
    h.as_ref().map_or(0, |h| h.revision)
}

/// Wait until every key under `prefix` created at or before `max_create_rev` is deleted
/// (etcd: waitDeletes): find the last-created such key, wait for its delete, again. The
/// header of the last range, which found none.
pub(super) async fn wait_deletes(
    member: &Arc<Member>,
    ai: &AuthInfo,
    prefix: &Bytes,
    max_create_rev: i64,
) -> Result<ResponseHeader, Status> {
    loop {
        let req = RangeRequest {
            sort_order: SortOrder::Descend as i32,
            max_create_revision: max_create_rev,
            ..first_created(prefix)
        };
        let mut resp = range(member, ai, req).await?;
        let Some(last) = resp.kvs.first() else {
            super::header::fill(member, &mut resp.header);
            return Ok(resp.header.unwrap_or_default());
        };
        wait_delete(member, last.key.clone(), header_rev(&resp.header)).await?;
    }
}

/// Wait for a delete of `key` at or after `rev` (etcd: waitDelete), on a watcher of the
/// member's watchable store.
async fn wait_delete(member: &Member, key: Bytes, rev: i64) -> Result<(), Status> {
    let (stream, mut notices) = member.new_watch_stream(16);
    stream.watch(WatchSpec {
        watch_id: 0,
        range: KeyRange::new(key, Bytes::new()),
        start_rev: rev,
        no_put: true,
        no_delete: false,
    });
    while let Some(n) = notices.recv().await {
        match n {
            Notice::Events { events, .. } => {
                if events.iter().any(|e| e.r#type == EventType::Delete as i32) {
                    return Ok(());
                }
            }
            Notice::Compacted { .. } => return Err(Error::Compacted.into()),
            Notice::Progress { .. } => {}
        }
    }
    Err(Error::LostWatcher.into())
}

/// A txn that undoes a waiter's key unless disarmed: run at once (`now`), or in the
/// background when the waiting request is dropped (the client went away), as etcd's
/// servers clean up after a cancelled wait.
pub(super) struct Cleanup {
    member: Arc<Member>,
    ai: AuthInfo,
    txn: Option<TxnRequest>,
}

impl Cleanup {
    pub(super) fn new(member: &Arc<Member>, ai: &AuthInfo, txn: TxnRequest) -> Self {
        Cleanup {
            member: member.clone(),
            ai: ai.clone(),
            txn: Some(txn),
        }
    }

    pub(super) fn disarm(&mut self) {
        self.txn = None;
    }

    pub(super) async fn now(&mut self) {
        if let Some(t) = self.txn.take() {
            let _ = txn(&self.member, &self.ai, t).await;
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(t) = self.txn.take() else { return };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (member, ai) = (self.member.clone(), self.ai.clone());
            rt.spawn(async move {
                let _ = txn(&member, &ai, t).await;
            });
        }
    }
}

/// Run `f` until the member stops; then etcd's "server stopped".
pub(super) async fn until_stopped<T>(
    member: &Member,
    f: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::select! {
        r = f => r,
        _ = member.closing() => Err(Error::Stopped.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_as_etcd() {
        assert_eq!(prefix_end(b"a/"), Bytes::from_static(b"a0"));
        assert_eq!(prefix_end(b"a\xff"), Bytes::from_static(b"b"));
        assert_eq!(prefix_end(b"\xff\xff"), Bytes::from_static(&[0]));
    }

    #[test]
    fn lease_keys_print_hex_as_go() {
        assert_eq!(
            lease_key(b"l/", 0x694d7e0a1b2c),
            Bytes::from_static(b"l/694d7e0a1b2c")
        );
        assert_eq!(lease_key(b"l/", -1), Bytes::from_static(b"l/-1"));
        assert_eq!(key_prefix(b"l"), Bytes::from_static(b"l/"));
    }
}

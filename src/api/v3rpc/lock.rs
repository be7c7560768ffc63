//! The Lock service (etcd: api/v3lock/lock.go on client/v3/concurrency/mutex.go): a lock
//! named N is held by the first-created key under `N/`; each waiter puts its own key
//! `N/<lease hex>`, bound to its lease, and waits for the delete of every key created
//! before its own. Unlock deletes the key.

use std::sync::Arc;

use bytes::Bytes;
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::concurrency::{self as cc, header_rev, range_kvs};
use super::header::fill;
use super::status::through_client;
use crate::proto::etcdserverpb::TxnRequest;
use crate::proto::v3lockpb::{
    lock_server::Lock, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};
use crate::server::AuthInfo;
use crate::server::{Error, Member};

pub struct LockService {
    pub member: Arc<Member>,
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let r = req.into_inner();
        let member = &self.member;
        let resp = cc::until_stopped(member, acquire(member, &ai, r.name, r.lease))
            .await
            .map_err(through_client)?;
        Ok(Response::new(resp))
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let key = req.into_inner().key;
        let header = cc::delete(&self.member, &ai, &key)
            .await
            .map_err(through_client)?;
        Ok(Response::new(UnlockResponse {
            header: Some(header),
        }))
    }
}

/// etcd's Mutex.Lock.
async fn acquire(
    member: &Arc<Member>,
    ai: &AuthInfo,
    name: Bytes,
    lease: i64,
) -> Result<LockResponse, Status> {
    let lease = cc::session_lease(member, lease).await?;
    let prefix = cc::key_prefix(&name);
    let key = cc::lease_key(&prefix, lease);
    // put our key unless this lease already has one, and fetch the owner
    let mut resp = cc::txn(
        member,
        ai,
        TxnRequest {
            compare: vec![cc::created_at(&key, 0)],
            success: vec![
                cc::op_put(&key, Bytes::new(), lease),
                cc::op_range(cc::first_created(&prefix)),
            ],
            failure: vec![
                cc::op_range(cc::get(&key)),
                cc::op_range(cc::first_created(&prefix)),
            ],
        },
    )
    .await?;
    let my_rev = if resp.succeeded {
        header_rev(&resp.header)
    } else {
        range_kvs(&resp, 0)
            .first()
            .map_or(0, |kv| kv.create_revision)
    };
    let owner = range_kvs(&resp, 1).first().map(|kv| kv.create_revision);
    if owner.is_none_or(|rev| rev == my_rev) {
        fill(member, &mut resp.header);
        return Ok(LockResponse {
            header: resp.header,
            key,
        });
    }
    // Wait for every key created before ours. On failure, or when the client goes away
    // (the future is dropped), our key is deleted, as etcd's Unlock after a failed wait.
    let mut release = cc::Cleanup::new(
        member,
        ai,
        TxnRequest {
            success: vec![cc::op_delete(&key)],
            ..Default::default()
        },
    );
    if let Err(e) = cc::wait_deletes(member, ai, &prefix, my_rev - 1).await {
        release.now().await;
        return Err(e);
    }
    // our key may be gone with its lease while we waited
    let mut got = match cc::range(member, ai, cc::get(&key)).await {
        Ok(got) => got,
        Err(e) => {
            release.now().await;
            return Err(e);
        }
    };
    release.disarm();
    if got.kvs.is_empty() {
        return Err(Error::SessionExpired.into());
    }
    fill(member, &mut got.header);
    Ok(LockResponse {
        header: got.header,
        key,
    })
}

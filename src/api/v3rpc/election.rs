//! The Election service (etcd: api/v3election/election.go on
//! client/v3/concurrency/election.go): the leader of election N is the first-created key
//! under `N/`; a candidate puts `N/<lease hex>` with its value, bound to its lease, and is
//! elected once every key created before its own is deleted. Proclaim and Resign act only
//! while the leader's key still has the create revision it was elected with.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::auth::caller;
use super::concurrency::{self as cc, header_rev, range_kvs};
use super::header::fill;
use super::status::through_client;
use crate::proto::etcdserverpb::{ResponseHeader, TxnRequest};
use crate::proto::mvccpb::{event::EventType, KeyValue};
use crate::proto::v3electionpb::{
    election_server::Election, CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest,
    LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest, ResignResponse,
};
use crate::server::AuthInfo;
use crate::server::{Error, KeyRange, Member, Notice, WatchSpec};

pub struct ElectionService {
    pub member: Arc<Member>,
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let r = req.into_inner();
        let resp = cc::until_stopped(&self.member, campaign(&self.member, &ai, r))
            .await
            .map_err(through_client)?;
        Ok(Response::new(resp))
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let r = req.into_inner();
        let leader = r.leader.ok_or(Error::MissingLeaderKey)?;
        let header = async {
            let lease = cc::session_lease(&self.member, leader.lease).await?;
            proclaim(&self.member, &ai, &leader.key, leader.rev, lease, r.value).await
        }
        .await
        .map_err(through_client)?;
        Ok(Response::new(ProclaimResponse {
            header: Some(header),
        }))
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let prefix = cc::key_prefix(&req.into_inner().name);
        let mut resp = cc::range(&self.member, &ai, cc::first_created(&prefix))
            .await
            .map_err(through_client)?;
        let kv = resp.kvs.drain(..).next().ok_or(Error::ElectionNoLeader)?;
        fill(&self.member, &mut resp.header);
        Ok(Response::new(LeaderResponse {
            header: resp.header,
            kv: Some(kv),
        }))
    }

    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<BoxStream<LeaderResponse>>, Status> {
        let require_leader = super::requires_leader(req.metadata());
        let ai = caller(&self.member, &req)?;
        let prefix = cc::key_prefix(&req.into_inner().name);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(observe(self.member.clone(), ai, prefix, tx));
        Ok(Response::new(super::until_stopped(
            &self.member,
            rx,
            require_leader,
        )))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let leader = req.into_inner().leader.ok_or(Error::MissingLeaderKey)?;
        // etcd opens a session (granting a lease for lease 0) before it resigns
        let mut resp = async {
            cc::session_lease(&self.member, leader.lease).await?;
            cc::txn(&self.member, &ai, resign_txn(&leader.key, leader.rev)).await
        }
        .await
        .map_err(through_client)?;
        fill(&self.member, &mut resp.header);
        Ok(Response::new(ResignResponse {
            header: resp.header,
        }))
    }
}

/// Delete the leader's key if it is still the one elected at `rev`; a key that is not
/// is left alone, and that is no error (etcd's Resign).
fn resign_txn(key: &Bytes, rev: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![cc::created_at(key, rev)],
        success: vec![cc::op_delete(key)],
        failure: vec![],
    }
}

/// Put a new value on the leader's key if it is still the one elected at `rev`
/// (etcd's Proclaim).
async fn proclaim(
    member: &Member,
    ai: &AuthInfo,
    key: &Bytes,
    rev: i64,
    lease: i64,
    value: Bytes,
) -> Result<ResponseHeader, Status> {
    let mut resp = cc::txn(
        member,
        ai,
        TxnRequest {
            compare: vec![cc::created_at(key, rev)],
            success: vec![cc::op_put(key, value, lease)],
            failure: vec![],
        },
    )
    .await?;
    if !resp.succeeded {
        return Err(Error::ElectionNotLeader.into());
    }
    fill(member, &mut resp.header);
    Ok(resp.header.unwrap_or_default())
}

/// etcd's Election.Campaign: blocks until elected.
async fn campaign(
    member: &Arc<Member>,
    ai: &AuthInfo,
    r: CampaignRequest,
) -> Result<CampaignResponse, Status> {
    let lease = cc::session_lease(member, r.lease).await?;
    let prefix = cc::key_prefix(&r.name);
    let key = cc::lease_key(&prefix, lease);
    let mut resp = cc::txn(
        member,
        ai,
        TxnRequest {
            compare: vec![cc::created_at(&key, 0)],
            success: vec![cc::op_put(&key, r.value.clone(), lease)],
            failure: vec![cc::op_range(cc::get(&key))],
        },
    )
    .await?;
    let mut rev = header_rev(&resp.header);
    if !resp.succeeded {
        // this lease already campaigns: keep its place, with the new value
        let kv = range_kvs(&resp, 0).first().cloned().unwrap_or_default();
        rev = kv.create_revision;
        if kv.value != r.value {
            if let Err(e) = proclaim(member, ai, &key, rev, lease, r.value.clone()).await {
                let _ = cc::txn(member, ai, resign_txn(&key, rev)).await;
                return Err(e);
            }
        }
    }
    // A client that goes away while waiting resigns (etcd resigns on a cancelled context);
    // any other failure leaves the key.
    let mut resign = cc::Cleanup::new(member, ai, resign_txn(&key, rev));
    let waited = cc::wait_deletes(member, ai, &prefix, rev - 1).await;
    resign.disarm();
    waited?;
    fill(member, &mut resp.header);
    Ok(CampaignResponse {
        header: resp.header,
        leader: Some(LeaderKey {
            name: r.name,
            key,
            rev,
            lease,
        }),
    })
}

/// etcd's Election.observe: the current leader (or the first put, if none), then every put
/// on the leader's key until it is deleted, then the next leader; ends when the client goes
/// away or a watch is lost (compaction).
async fn observe(
    member: Arc<Member>,
    ai: AuthInfo,
    prefix: Bytes,
    tx: mpsc::Sender<Result<LeaderResponse, Status>>,
) {
    let send = |rev: i64, kv: KeyValue| {
        let resp = LeaderResponse {
            header: Some(member.header(rev)),
            kv: Some(kv),
        };
        tx.send(Ok(resp))
    };
    loop {
        let resp = match cc::range(&member, &ai, cc::first_created(&prefix)).await {
            Ok(resp) => resp,
            // a refusal (permission denied) reaches the client; the stream ends
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let from = header_rev(&resp.header);
        let (rev, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (from, kv),
            None => {
                // no leader: wait for the first put under the prefix
                let range = KeyRange::new(prefix.clone(), cc::prefix_end(&prefix));
                let mut w = Watch::new(&member, range, from, true);
                let first_put = loop {
                    let Some((_, events)) = w.next(&tx).await else {
                        return;
                    };
                    if let Some(kv) = events
                        .into_iter()
                        .find(|(t, _)| *t == EventType::Put)
                        .map(|(_, kv)| kv)
                    {
                        break kv;
                    }
                };
                (first_put.mod_revision, first_put)
            }
        };
        let key = kv.key.clone();
        if send(rev, kv).await.is_err() {
            return;
        }
        // follow the leader's key until it is deleted
        let mut w = Watch::new(&member, KeyRange::new(key, Bytes::new()), rev + 1, false);
        'follow: loop {
            let Some((rev, events)) = w.next(&tx).await else {
                return;
            };
            for (t, kv) in events {
                if t == EventType::Delete {
                    break 'follow;
                }
                if send(rev, kv).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One watcher on the member's watchable store, for observe.
struct Watch {
    _stream: crate::server::WatchStream,
    notices: mpsc::Receiver<Notice>,
}

impl Watch {
    fn new(member: &Member, range: KeyRange, start_rev: i64, no_delete: bool) -> Self {
        let (stream, notices) = member.new_watch_stream(64);
        stream.watch(WatchSpec {
            watch_id: 0,
            range,
            start_rev,
            no_put: false,
            no_delete,
        });
        Watch {
            _stream: stream,
            notices,
        }
    }

    /// The next batch of events (their revision, each event's type and kv); `None` once
    /// the watch is lost or the client went away.
    async fn next<T>(&mut self, tx: &mpsc::Sender<T>) -> Option<(i64, Vec<(EventType, KeyValue)>)> {
        loop {
            let n = tokio::select! {
                n = self.notices.recv() => n?,
                _ = tx.closed() => return None,
            };
            match n {
                Notice::Events { rev, events, .. } => {
                    let events = events
                        .iter()
                        .filter_map(|e| {
                            let t = EventType::try_from(e.r#type).ok()?;
                            Some((t, e.kv.clone()?))
                        })
                        .collect();
                    return Some((rev, events));
                }
                Notice::Compacted { .. } => return None,
                Notice::Progress { .. } => {}
            }
        }
    }
}

//! The Lease service (etcd: api/v3rpc/lease.go): grant, revoke, keep-alive stream,
//! time-to-live and list, with etcd's answers for a missing lease (keep-alive: TTL 0,
//! time-to-live: TTL -1, revoke: NotFound).

use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use super::header::fill;
use crate::proto::etcdserverpb::{
    lease_server::Lease, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::server::{Error, Member};

pub struct LeaseService {
    pub member: Arc<Member>,
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut resp = self.member.lease_grant(req.into_inner()).await?;
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let ai = super::auth::caller(&self.member, &req)?;
        let mut resp = self.member.lease_revoke(&ai, req.into_inner().id).await?;
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<BoxStream<LeaseKeepAliveResponse>>, Status> {
        let require_leader = super::requires_leader(req.metadata());
        Ok(Response::new(keep_alive(
            self.member.clone(),
            req.into_inner(),
            require_leader,
        )))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let ai = super::auth::caller_opt(&self.member, &req)?;
        let r = req.into_inner();
        let mut resp = match self
            .member
            .lease_time_to_live(ai.as_ref(), r.id, r.keys)
            .await
        {
            Ok((ttl, granted, keys)) => LeaseTimeToLiveResponse {
                header: None,
                id: r.id,
                ttl,
                granted_ttl: granted,
                keys,
            },
            Err(Error::LeaseNotFound) => LeaseTimeToLiveResponse {
                header: None,
                id: r.id,
                ttl: -1,
                ..Default::default()
            },
            Err(e) => return Err(e.into()),
        };
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = self
            .member
            .lease_leases()
            .await?
            .into_iter()
            .map(|id| LeaseStatus { id })
            .collect();
        let mut resp = LeaseLeasesResponse {
            header: None,
            leases,
        };
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }
}

/// Serve one keep-alive stream: requests from `inbound` (gRPC's stream, or the JSON
/// gateway's decoded body), an answer per request in the returned stream.
pub fn keep_alive<S>(
    member: Arc<Member>,
    mut inbound: S,
    require_leader: bool,
) -> BoxStream<LeaseKeepAliveResponse>
where
    S: Stream<Item = Result<LeaseKeepAliveRequest, Status>> + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let renewing = member.clone();
    tokio::spawn(async move {
        let member = renewing;
        loop {
            let r = match inbound.next().await {
                Some(Ok(r)) => r,
                // the client closed its side: etcd ends the stream once answered
                None => return,
                // etcd ends the stream with the read error (INTERNAL for a message that
                // does not decode), not with OK
                Some(Err(status)) => {
                    let _ = tx.send(Err(super::recv_error::as_etcd(status))).await;
                    return;
                }
            };
            let ttl = match member.lease_renew(r.id).await {
                Ok(ttl) => ttl,
                Err(Error::LeaseNotFound) => 0,
                Err(e) => {
                    let _ = tx.send(Err(Status::from(e))).await;
                    return;
                }
            };
            let mut resp = LeaseKeepAliveResponse {
                header: None,
                id: r.id,
                ttl,
            };
            fill(&member, &mut resp.header);
            if tx.send(Ok(resp)).await.is_err() {
                return;
            }
        }
    });
    super::until_stopped(&member, rx, require_leader)
}

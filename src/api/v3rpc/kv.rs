//! The KV service: check, delegate to the member, fill the header (etcd: v3rpc/key.go).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::caller;
use super::{header::fill, validate};
use crate::proto::etcdserverpb::{
    kv_server::Kv, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::server::Member;

pub struct KvService {
    pub member: Arc<Member>,
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let r = req.into_inner();
        validate::check_range(&r)?;
        let mut resp = self.member.range(&ai, r).await?;
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let r = req.into_inner();
        validate::check_put(&r)?;
        let mut resp = self.member.put(&ai, r).await?;
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let r = req.into_inner();
        validate::check_delete(&r)?;
        let mut resp = self.member.delete_range(&ai, r).await?;
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let r = req.into_inner();
        validate::check_txn(&r, self.member.settings.max_txn_ops as usize)?;
        let mut resp = self.member.txn(&ai, r).await?;
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let mut resp = self.member.compact(&ai, req.into_inner()).await?;
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }
}

//! The Cluster service (etcd: v3rpc/member.go): the member list from the replicated member
//! records, and membership changes made by the leader (`server::Member::member_*`).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::{
    cluster_server::Cluster, Member as PbMember, MemberAddRequest, MemberAddResponse,
    MemberListRequest, MemberListResponse, MemberPromoteRequest, MemberPromoteResponse,
    MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use crate::server::{Error, Member, MemberRecord};

pub struct ClusterService {
    pub member: Arc<Member>,
}

fn to_pb(m: MemberRecord) -> PbMember {
    PbMember {
        id: m.id,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

/// etcd's types.NewURLs check of member peer URLs: `scheme://host:port`, no path.
fn check_urls(urls: &[String]) -> Result<(), Status> {
    let valid = |u: &str| {
        let Some((scheme, rest)) = u.split_once("://") else {
            return false;
        };
        let host_port = matches!(scheme, "http" | "https")
            && !rest.contains('/')
            && rest
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        let unix = matches!(scheme, "unix" | "unixs") && !rest.is_empty();
        host_port || unix
    };
    if urls.is_empty() || !urls.iter().all(|u| valid(u)) {
        return Err(Error::MemberBadUrls.into());
    }
    Ok(())
}

impl ClusterService {
    fn members(&self) -> Vec<PbMember> {
        self.member.members().into_iter().map(to_pb).collect()
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let ai = super::auth::caller_opt(&self.member, &req)?;
        let req = req.into_inner();
        check_urls(&req.peer_ur_ls)?;
        self.member.check_admin(ai.as_ref())?;
        let added = self
            .member
            .member_add(req.peer_ur_ls, req.is_learner)
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.member.header(0)),
            member: Some(to_pb(added)),
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let ai = super::auth::caller_opt(&self.member, &req)?;
        self.member.check_admin(ai.as_ref())?;
        self.member.member_remove(req.into_inner().id).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.member.header(0)),
            members: self.members(),
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let ai = super::auth::caller_opt(&self.member, &req)?;
        let req = req.into_inner();
        check_urls(&req.peer_ur_ls)?;
        self.member.check_admin(ai.as_ref())?;
        self.member.member_update(req.id, req.peer_ur_ls).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.member.header(0)),
            members: self.members(),
        }))
    }

    async fn member_list(
        &self,
        _req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        // etcd's cluster service header carries no revision.
        Ok(Response::new(MemberListResponse {
            header: Some(self.member.header(0)),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let ai = super::auth::caller_opt(&self.member, &req)?;
        self.member.check_admin(ai.as_ref())?;
        self.member.member_promote(req.into_inner().id).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.member.header(0)),
            members: self.members(),
        }))
    }
}

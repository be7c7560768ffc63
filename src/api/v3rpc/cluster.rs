//! The Cluster service: the member list from the replicated member records (etcd:
//! v3rpc/member.go). Membership changes need the multi-member transport and answer
//! `Unimplemented` until then.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::{
    cluster_server::Cluster, Member as PbMember, MemberListRequest, MemberListResponse,
};
use crate::server::Member;

pub struct ClusterService {
    pub member: Arc<Member>,
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        _req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let members = self
            .member
            .members()
            .into_iter()
            .map(|m| PbMember {
                id: m.id,
                name: m.name,
                peer_ur_ls: m.peer_urls,
                client_ur_ls: m.client_urls,
                is_learner: m.is_learner,
            })
            .collect();
        // etcd's cluster service header carries no revision.
        let resp = MemberListResponse {
            header: Some(self.member.header(0)),
            members,
        };
        Ok(Response::new(resp))
    }
}

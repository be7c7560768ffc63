//! The Maintenance service: status, alarms, defragment, hashes (etcd: v3rpc/maintenance.go).
//! RPCs not overridden here answer `Unimplemented`; docs/compat.md lists them.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::header::fill;
use crate::proto::etcdserverpb::{
    maintenance_server::Maintenance, AlarmRequest, AlarmResponse, DefragmentRequest,
    DefragmentResponse, MoveLeaderRequest, MoveLeaderResponse, StatusRequest, StatusResponse,
};
use crate::server::Member;

/// etcd 3.4's authMaintenanceServer: Defragment, Snapshot, Hash, HashKV and MoveLeader need
/// the root role, and a refusal goes out as the auth package's own error (code Unknown,
/// `auth: permission denied`), not as the `etcdserver:` one the other services send.
pub fn admin_only<T>(member: &Member, req: &Request<T>) -> Result<(), Status> {
    let raw = |e: crate::server::Error| match e {
        crate::server::Error::Auth(a) => crate::server::Error::AuthRaw(a),
        other => other,
    };
    let ai = super::auth::caller_opt(member, req).map_err(|s| {
        if s.code() == tonic::Code::Unauthenticated {
            Status::from(crate::server::Error::AuthRaw(
                crate::server::AuthError::InvalidAuthToken,
            ))
        } else {
            s
        }
    })?;
    member.check_admin(ai.as_ref()).map_err(raw)?;
    Ok(())
}

pub struct MaintenanceService {
    pub member: Arc<Member>,
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let s = self.member.raft_status();
        let db = i64::try_from(s.db_size).unwrap_or(i64::MAX);
        let mut resp = StatusResponse {
            header: None,
            version: self.member.settings.report_version.clone(),
            db_size: db,
            leader: s.leader,
            raft_index: s.index,
            raft_term: s.term,
            raft_applied_index: s.applied,
            errors: Vec::new(),
            db_size_in_use: db,
            is_learner: self.member.is_learner(),
            ..Default::default()
        };
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        // etcd 3.4 answers an alarm request with no header (3.5 fills one in).
        let resp = self.member.alarm(req.into_inner()).await?;
        Ok(Response::new(resp))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.member.move_leader(req.into_inner().target_id).await?;
        let mut resp = MoveLeaderResponse { header: None };
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn defragment(
        &self,
        req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        admin_only(&self.member, &req)?;
        self.member.defragment()?;
        let mut resp = DefragmentResponse { header: None };
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }
}

//! The Maintenance service: status, alarms, defragment, hashes (etcd: v3rpc/maintenance.go).
//! Every RPC of etcd 3.6's Maintenance service is served.

use std::io::Read;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::header::fill;
use crate::proto::etcdserverpb::{
    maintenance_server::Maintenance, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest,
    DefragmentResponse, DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse,
    HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, ResponseHeader,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::server::snapshot::SnapshotDb;
use crate::server::Member;

/// Bytes of the database per snapshot message (etcd's snapshotSendBufferSize).
const SNAPSHOT_CHUNK: u64 = 32 * 1024;

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

/// The storage version etcd 3.6 reports: the cluster version's `major.minor.0`.
fn storage_version(version: &str) -> String {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}.0"),
        _ => String::new(),
    }
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
        let version = self.member.settings.report_version.clone();
        let mut errors = Vec::new();
        if s.leader == 0 {
            errors.push(format!("etcdserver: {}", crate::rpctypes::NO_LEADER));
        }
        // etcd lists each alarm as its proto's compact text form.
        for a in self.member.alarms() {
            let name = AlarmType::try_from(a.alarm).map_or("NONE", |t| t.as_str_name());
            errors.push(format!("memberID:{} alarm:{name} ", a.member_id));
        }
        let mut resp = StatusResponse {
            header: None,
            storage_version: storage_version(&version),
            version,
            db_size: db,
            leader: s.leader,
            raft_index: s.index,
            raft_term: s.term,
            raft_applied_index: s.applied,
            errors,
            db_size_in_use: db,
            is_learner: self.member.is_learner(),
            db_size_quota: i64::try_from(self.member.settings.quota_backend_bytes)
                .unwrap_or(i64::MAX),
            downgrade_info: Some(self.member.downgrade_info()),
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

    /// etcd's HashKV: the header carries the current revision, `hash_revision` (3.6) the
    /// one hashed, `compact_revision` -1 before any compaction.
    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        admin_only(&self.member, &req)?;
        let h = self.member.hash_kv(req.into_inner().revision).await?;
        let mut resp = HashKvResponse {
            header: Some(ResponseHeader {
                revision: h.current_rev,
                ..Default::default()
            }),
            hash: h.hash,
            compact_revision: h.compact_rev,
            hash_revision: h.hash_rev,
        };
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        admin_only(&self.member, &req)?;
        let (hash, rev) = self.member.hash_state().await?;
        let mut resp = HashResponse {
            header: Some(ResponseHeader {
                revision: rev,
                ..Default::default()
            }),
            hash,
        };
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }

    /// etcd's Snapshot: the database in chunks, each with the bytes still to come, then
    /// its SHA-256 in a message of its own. The file is read on a blocking thread and
    /// removed when the stream ends, however it ends.
    async fn snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<BoxStream<SnapshotResponse>>, Status> {
        admin_only(&self.member, &req)?;
        let db = self.member.snapshot_db().await?;
        tracing::info!(
            total_bytes = db.size,
            revision = db.revision,
            "sending database snapshot to client"
        );
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = send_snapshot(&db, &tx) {
                let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn defragment(
        &self,
        req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        admin_only(&self.member, &req)?;
        self.member.defragment().await?;
        // etcd answers a defragment with no header.
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    /// etcd 3.5/3.6's Downgrade (server/downgrade.rs). Only etcd 3.5+ has it, and there a
    /// refused caller gets the `etcdserver:` auth error (3.6's isPermitted), not 3.4's raw
    /// one.
    async fn downgrade(
        &self,
        req: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        let ai = super::auth::caller_opt(&self.member, &req)?;
        self.member.check_admin(ai.as_ref())?;
        let req = req.into_inner();
        let mut resp = self.member.downgrade(req.action, &req.version).await?;
        fill(&self.member, &mut resp.header);
        Ok(Response::new(resp))
    }
}

/// Stream `db` to `tx` (a client gone away ends it quietly).
fn send_snapshot(
    db: &SnapshotDb,
    tx: &mpsc::Sender<Result<SnapshotResponse, Status>>,
) -> std::io::Result<()> {
    let mut f = std::fs::File::open(db.file.path())?;
    let mut h = Sha256::new();
    let mut sent = 0u64;
    while sent < db.size {
        let n = SNAPSHOT_CHUNK.min(db.size - sent);
        let mut buf = vec![0u8; n as usize];
        f.read_exact(&mut buf)?;
        h.update(&buf);
        sent += n;
        let resp = SnapshotResponse {
            remaining_bytes: db.size - sent,
            blob: buf.into(),
            ..Default::default()
        };
        if tx.blocking_send(Ok(resp)).is_err() {
            return Ok(());
        }
    }
    let resp = SnapshotResponse {
        remaining_bytes: 0,
        blob: h.finalize().to_vec().into(),
        ..Default::default()
    };
    let _ = tx.blocking_send(Ok(resp));
    Ok(())
}

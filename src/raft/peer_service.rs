//! The peer gRPC service on `--listen-peer-urls` (etcd's rafthttp handlers): openraft's
//! RPCs from other members, and a follower's forwarded proposals, read-index requests and
//! lease keep-alives, answered by this member's raft.
//!
//! To ensure correctness: every request names its cluster and its target member; a request
//! from another cluster or for another member is refused (`network::REFUSED`) and logged, so
//! two clusters never mix logs even if their peer URLs meet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use tonic::{Request, Response, Status};

use super::member_change::{change_on_leader, Change, ChangeError, ClusterHealth, Limits};
use super::network::{removed_message, PeerActivity, MAX_MESSAGE_BYTES, RAFT_FAILED, REFUSED};
use super::peer_message as msg;
use super::types::{NodeId, Raft};
use super::SharedState;
use crate::proto::metastorepb::{self as pb, peer_server::PeerServer};

pub struct PeerService {
    raft: Raft,
    state: Arc<SharedState>,
    me: NodeId,
    cluster_id: u64,
    health: ClusterHealth,
    /// When a refusal of each remote was last logged: a refused peer retries at every
    /// heartbeat, its log line does not repeat more than once every 10 s.
    refusals_logged: Mutex<HashMap<NodeId, Instant>>,
}

impl PeerService {
    pub fn new(
        raft: Raft,
        state: Arc<SharedState>,
        me: NodeId,
        cluster_id: u64,
        activity: PeerActivity,
    ) -> Self {
        PeerService {
            health: ClusterHealth {
                activity,
                state: state.clone(),
            },
            raft,
            state,
            me,
            cluster_id,
            refusals_logged: Mutex::new(HashMap::new()),
        }
    }

    /// The tonic service, accepting messages as large as peers send.
    pub fn into_server(self) -> PeerServer<PeerService> {
        PeerServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn check(&self, header: Option<&pb::PeerHeader>) -> Result<(), Status> {
        let h = header.ok_or_else(|| Status::invalid_argument("peer request without header"))?;
        if h.cluster_id != self.cluster_id {
            if self.log_due(h.from) {
                tracing::error!(
                local_member_id = %format!("{:x}", self.me),
                local_member_cluster_id = %format!("{:x}", self.cluster_id),
                remote_peer_id = %format!("{:x}", h.from),
                remote_peer_cluster_id = %format!("{:x}", h.cluster_id),
                "request sent was ignored due to cluster ID mismatch"
                );
            }
            return Err(Status::new(
                REFUSED,
                format!(
                    "cluster ID mismatch: member {:x} is in cluster {:x}, the request is from cluster {:x}",
                    self.me, self.cluster_id, h.cluster_id
                ),
            ));
        }
        let removed = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let nodes = m.membership_config.membership();
            nodes.nodes().next().is_some() && nodes.get_node(&h.from).is_none()
        };
        if removed {
            if self.log_due(h.from) {
                tracing::error!(
                    local_member_id = %format!("{:x}", self.me),
                    remote_peer_id = %format!("{:x}", h.from),
                    "rejected a request from a member that is not (or no longer) in the cluster"
                );
            }
            return Err(Status::new(REFUSED, removed_message(h.from)));
        }
        if h.to != self.me {
            if self.log_due(h.from) {
                tracing::error!(
                    local_member_id = %format!("{:x}", self.me),
                    remote_peer_id = %format!("{:x}", h.from),
                    target_member_id = %format!("{:x}", h.to),
                    "request sent was ignored: it is for another member"
                );
            }
            return Err(Status::new(
                REFUSED,
                format!(
                    "member ID mismatch: this is member {:x}, the request is for {:x}",
                    self.me, h.to
                ),
            ));
        }
        Ok(())
    }

    fn log_due(&self, from: NodeId) -> bool {
        let now = Instant::now();
        let mut logged = self.refusals_logged.lock().expect("refusals lock");
        let due = logged
            .get(&from)
            .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(10));
        if due {
            logged.insert(from, now);
        }
        due
    }

    fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    fn not_leader(&self) -> pb::NotLeader {
        pb::NotLeader {
            leader_id: self.leader().unwrap_or(0),
        }
    }
}

/// A raft message received from a peer, for the peer metrics: its bytes count as
/// received from the sender, the answer's as sent to it, a refusal as a receive failure.
struct Received {
    label: String,
}

impl Received {
    fn of<T: prost::Message>(header: Option<&pb::PeerHeader>, req: &T) -> Received {
        let label = format!("{:x}", header.map_or(0, |h| h.from));
        crate::metrics::PEER_RECEIVED_BYTES
            .with_label_values(&[label.as_str()])
            .inc_by(req.encoded_len() as u64);
        Received { label }
    }

    fn answered<T: prost::Message>(
        &self,
        answer: Result<Response<T>, Status>,
    ) -> Result<Response<T>, Status> {
        let label = [self.label.as_str()];
        match &answer {
            Ok(r) => crate::metrics::PEER_SENT_BYTES
                .with_label_values(&label)
                .inc_by(r.get_ref().encoded_len() as u64),
            Err(_) => crate::metrics::PEER_RECEIVED_FAILURES
                .with_label_values(&label)
                .inc(),
        }
        answer
    }
}

fn malformed(e: msg::Malformed) -> Status {
    Status::invalid_argument(e.to_string())
}

fn raft_failed<E: std::fmt::Display>(e: E) -> Status {
    Status::new(RAFT_FAILED, format!("raft: {e}"))
}

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    async fn append_entries(
        &self,
        req: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        let req = req.into_inner();
        // a request refused here (another cluster, a removed member) is not counted: its
        // sender id is anyone's to make up
        self.check(req.header.as_ref())?;
        let from = Received::of(req.header.as_ref(), &req);
        let answer = async {
            let rpc = msg::append_from_pb(req).map_err(malformed)?;
            let resp = self.raft.append_entries(rpc).await.map_err(raft_failed)?;
            Ok(Response::new(msg::append_resp_to_pb(&resp)))
        };
        from.answered(answer.await)
    }

    async fn vote(
        &self,
        req: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        let req = req.into_inner();
        // a request refused here (another cluster, a removed member) is not counted: its
        // sender id is anyone's to make up
        self.check(req.header.as_ref())?;
        let from = Received::of(req.header.as_ref(), &req);
        let answer = async {
            let rpc = msg::vote_req_from_pb(req).map_err(malformed)?;
            let resp = self.raft.vote(rpc).await.map_err(raft_failed)?;
            Ok(Response::new(msg::vote_resp_to_pb(&resp)))
        };
        from.answered(answer.await)
    }

    async fn install_snapshot(
        &self,
        req: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let req = req.into_inner();
        self.check(req.header.as_ref())?;
        let from = Received::of(req.header.as_ref(), &req);
        let done = req.done;
        let answer = async {
            let rpc = msg::snapshot_from_pb(req).map_err(malformed)?;
            let resp = match self.raft.install_snapshot(rpc).await {
                Ok(r) => Ok(r),
                Err(RaftError::APIError(
                    openraft::error::InstallSnapshotError::SnapshotMismatch(m),
                )) => Err(m),
                Err(RaftError::Fatal(f)) => return Err(raft_failed(f)),
            };
            Ok(Response::new(msg::snapshot_resp_to_pb(resp)))
        };
        let answer = answer.await;
        crate::metrics::snapshot_chunk(false, &from.label, done, answer.is_ok());
        from.answered(answer)
    }

    async fn forward(
        &self,
        req: Request<pb::ForwardRequest>,
    ) -> Result<Response<pb::ForwardResponse>, Status> {
        use pb::forward_response::Result as R;
        let req = req.into_inner();
        self.check(req.header.as_ref())?;
        let cmd = req
            .command
            .ok_or_else(|| Status::invalid_argument("forward without a command"))?;
        let result = match self.raft.client_write(cmd).await {
            Ok(resp) => R::Applied(resp.data.into()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                R::NotLeader(pb::NotLeader {
                    leader_id: f.leader_id.unwrap_or(0),
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                return Err(Status::failed_precondition(e.to_string()))
            }
            Err(RaftError::Fatal(f)) => return Err(raft_failed(f)),
        };
        Ok(Response::new(pb::ForwardResponse {
            result: Some(result),
        }))
    }

    async fn read_index(
        &self,
        req: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        use pb::read_index_response::Result as R;
        let req = req.into_inner();
        self.check(req.header.as_ref())?;
        let result = match self.raft.get_read_log_id().await {
            Ok((read, _applied)) => R::ReadLogId(pb::OptionalLogId {
                log_id: read.as_ref().map(super::codec::log_id_to_pb),
            }),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                R::NotLeader(pb::NotLeader {
                    leader_id: f.leader_id.unwrap_or(0),
                })
            }
            // The leader could not confirm its leadership with a quorum: it may be cut off.
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                return Err(Status::unavailable(e.to_string()))
            }
            Err(RaftError::Fatal(f)) => return Err(raft_failed(f)),
        };
        Ok(Response::new(pb::ReadIndexResponse {
            result: Some(result),
        }))
    }

    async fn member_change(
        &self,
        req: Request<pb::MemberChangeRequest>,
    ) -> Result<Response<pb::MemberChangeResponse>, Status> {
        use pb::member_change_response::Result as R;
        let req = req.into_inner();
        self.check(req.header.as_ref())?;
        let change = req
            .change
            .ok_or_else(|| Status::invalid_argument("member change without a change"))?;
        let change = Change::from_pb(change, req.new_member_id);
        let limits = Limits {
            max_learners: req.max_learners,
            strict: req.strict_reconfig_check,
        };
        let result = match change_on_leader(&self.raft, change, limits, &self.health).await {
            Ok(id) => R::MemberId(id),
            Err(ChangeError::NotLeader(l)) => R::NotLeader(pb::NotLeader {
                leader_id: l.unwrap_or(0),
            }),
            Err(e) => match e.to_pb() {
                Some(r) => R::Refused(r as i32),
                None => return Err(Status::new(RAFT_FAILED, e.to_string())),
            },
        };
        Ok(Response::new(pb::MemberChangeResponse {
            result: Some(result),
        }))
    }

    async fn cluster_members(
        &self,
        _req: Request<pb::ClusterMembersRequest>,
    ) -> Result<Response<pb::ClusterMembersResponse>, Status> {
        let members = self.state.members.read().expect("members lock").list();
        Ok(Response::new(pb::ClusterMembersResponse {
            cluster_id: self.cluster_id,
            members,
        }))
    }

    async fn lease_renew(
        &self,
        req: Request<pb::LeaseRenewRequest>,
    ) -> Result<Response<pb::LeaseRenewResponse>, Status> {
        use pb::lease_renew_response::Result as R;
        let req = req.into_inner();
        self.check(req.header.as_ref())?;
        let result = if self.leader() != Some(self.me) {
            R::NotLeader(self.not_leader())
        } else {
            let mut leases = self.state.leases.lock().expect("leases lock");
            let ttl = if req.only_remaining {
                leases.remaining(req.id)
            } else {
                leases.renew(req.id)
            };
            match ttl {
                Some(ttl) => R::Ttl(ttl),
                None => R::NotFound(pb::Empty {}),
            }
        };
        Ok(Response::new(pb::LeaseRenewResponse {
            result: Some(result),
        }))
    }

    /// MoveLeader's last step, on the transferee: stand for election now.
    async fn elect(
        &self,
        req: Request<pb::ElectRequest>,
    ) -> Result<Response<pb::ElectResponse>, Status> {
        let req = req.into_inner();
        self.check(req.header.as_ref())?;
        tracing::info!(from = %format!("{:x}", req.header.map_or(0, |h| h.from)), "asked to stand for election (move-leader)");
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| Status::new(RAFT_FAILED, e.to_string()))?;
        Ok(Response::new(pb::ElectResponse {}))
    }

    /// The corruption check of a peer: this member's HashKV at the asked revision.
    async fn hash_kv(
        &self,
        req: Request<pb::PeerHashKvRequest>,
    ) -> Result<Response<pb::PeerHashKvResponse>, Status> {
        let req = req.into_inner();
        self.check(req.header.as_ref())?;
        use pb::peer_hash_kv_response::Result as R;
        let result = match self.state.hash_kv(req.revision).await {
            Ok(h) => R::Hash(crate::proto::etcdserverpb::HashKvResponse {
                header: Some(crate::proto::etcdserverpb::ResponseHeader {
                    member_id: self.me,
                    cluster_id: self.cluster_id,
                    revision: h.current_rev,
                    ..Default::default()
                }),
                hash: h.hash,
                compact_revision: h.compact_rev,
                hash_revision: h.hash_rev,
            }),
            Err(crate::mvcc::Error::Compacted) => R::Compacted(pb::Empty {}),
            Err(crate::mvcc::Error::FutureRev) => R::FutureRev(pb::Empty {}),
            Err(e) => return Err(Status::internal(e.to_string())),
        };
        Ok(Response::new(pb::PeerHashKvResponse {
            result: Some(result),
        }))
    }
}

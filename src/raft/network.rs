//! The peer network client (etcd's rafthttp transport, as gRPC): openraft's RPCs to other
//! members over the `metastorepb.Peer` service on their peer URLs, in protobuf
//! (`peer_message`), plus the calls a follower makes to its leader: forwarded proposals,
//! read indexes and lease keep-alives.
//!
//! To ensure correctness:
//! - an append request carries at most [`MAX_APPEND_BYTES`] of entries (etcd's
//!   MaxSizePerMsg) as well as openraft's entry limit: a longer one is cut, and the remote's
//!   success is reported as a partial success up to the last entry sent, so openraft sends
//!   the rest next; one entry always goes, whatever its size;
//! - a failure to reach the peer is `Unreachable` (openraft backs off), a timeout is a
//!   `Network` error, and a refusal by the peer (another cluster, or its raft stopped) is a
//!   `RemoteError`, never mistaken for an unreachable peer;
//! - one gRPC channel per peer address is shared by every stream to it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tonic::transport::Channel;

use super::codec;
use super::member_change::{Change, ChangeError, Limits};
use super::peer_message as msg;
use super::types::{LogId, MemberNode, NodeId, TypeConfig};
use crate::apply::{Applied, Command};
use crate::proto::metastorepb::{self as pb, peer_client::PeerClient};

/// Bytes of entries in one append request (etcd's MaxSizePerMsg).
pub const MAX_APPEND_BYTES: usize = 1 << 20;
/// The largest peer message either side accepts: one entry may be a whole group-committed
/// batch (up to `max-request-bytes` per request, several MiB per batch).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// The gRPC status a member answers when it refuses a peer's request (another cluster, a
/// request for another member); the sender reports it as a `RemoteError`.
pub const REFUSED: tonic::Code = tonic::Code::FailedPrecondition;
/// The status of a request the peer's raft could not serve (stopped, fatal error).
pub const RAFT_FAILED: tonic::Code = tonic::Code::Aborted;

/// How a member refuses a peer that was removed from the cluster.
pub fn removed_message(member: NodeId) -> String {
    format!("the member {member:x} has been permanently removed from the cluster")
}

/// Opens peer connections for openraft and for the member's own calls to its leader.
#[derive(Clone)]
pub struct Network {
    links: Arc<Links>,
    activity: PeerActivity,
}

/// Since when each peer has answered this member's raft messages without a failure in
/// between (etcd's transport ActiveSince); a peer that failed last has no entry.
#[derive(Clone, Default)]
pub struct PeerActivity {
    since: Arc<Mutex<HashMap<NodeId, Instant>>>,
}

impl PeerActivity {
    pub fn active_since(&self, id: NodeId) -> Option<Instant> {
        self.since.lock().expect("activity lock").get(&id).copied()
    }

    fn answered(&self, id: NodeId, ok: bool) {
        let mut since = self.since.lock().expect("activity lock");
        if ok {
            since.entry(id).or_insert_with(Instant::now);
        } else {
            since.remove(&id);
        }
    }
}

struct Links {
    me: NodeId,
    cluster_id: u64,
    channels: Mutex<HashMap<String, Channel>>,
    /// How `https://` peers are dialled (`--peer-*` TLS flags); `None`: no peer TLS.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// When a refusal by each peer was last logged (a refused peer is retried at every
    /// heartbeat; its log line is not).
    refusals_logged: Mutex<HashMap<NodeId, Instant>>,
    /// The peers that refused this member as removed from the cluster: a removed follower
    /// may never receive the entry that removed it (the leader stops replicating to it),
    /// and learns it from the others' refusals, as etcd's does from their `410 Gone`.
    removed: tokio::sync::watch::Sender<HashSet<NodeId>>,
}

/// Why a call to a peer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached, or did not answer in time; whether it got the
    /// request is unknown.
    #[error("peer {0:x} unreachable: {1}")]
    Unreachable(NodeId, String),
    /// The peer refused the request (another cluster, its raft stopped).
    #[error("peer {0:x} refused the request: {1}")]
    Refused(NodeId, String),
    /// The peer did not answer in time; whether it got the request is unknown.
    #[error("peer {0:x} did not answer in time: {1}")]
    Timeout(NodeId, String),
    /// The peer is not the leader; it names the leader it knows.
    #[error("peer {0:x} is not the leader")]
    NotLeader(NodeId, Option<NodeId>),
    #[error("peer {0:x}: {1}")]
    Malformed(NodeId, String),
}

impl Network {
    pub fn new(me: NodeId, cluster_id: u64, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Network {
            links: Arc::new(Links {
                me,
                cluster_id,
                channels: Mutex::new(HashMap::new()),
                tls,
                refusals_logged: Mutex::new(HashMap::new()),
                removed: tokio::sync::watch::Sender::new(HashSet::new()),
            }),
            activity: PeerActivity::default(),
        }
    }

    /// The peers that have refused this member as removed from the cluster.
    pub fn removed(&self) -> tokio::sync::watch::Receiver<HashSet<NodeId>> {
        self.links.removed.subscribe()
    }

    /// How long each peer has answered this member's raft messages.
    pub fn activity(&self) -> PeerActivity {
        self.activity.clone()
    }

    fn header(&self, to: NodeId) -> pb::PeerHeader {
        pb::PeerHeader {
            cluster_id: self.links.cluster_id,
            from: self.links.me,
            to,
        }
    }

    fn client(&self, node: &MemberNode) -> Result<PeerClient<Channel>, String> {
        let addr = node
            .peer_urls
            .first()
            .ok_or_else(|| format!("member {} has no peer URL", node.name))?;
        let mut channels = self.links.channels.lock().expect("channels lock");
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                // an https:// peer is dialled by our TLS connector; tonic sees plain http
                let (tls, rest) = match addr.strip_prefix("https://") {
                    Some(rest) => (true, rest),
                    None => (false, addr.strip_prefix("http://").unwrap_or(addr)),
                };
                let ep = Channel::from_shared(format!("http://{rest}"))
                    .map_err(|e| format!("peer URL {addr}: {e}"))?
                    .connect_timeout(Duration::from_secs(1))
                    .tcp_nodelay(true);
                let c = match (tls, &self.links.tls) {
                    (false, _) => ep.connect_lazy(),
                    (true, Some(cfg)) => {
                        ep.connect_with_connector_lazy(crate::tls::connector(cfg.clone()))
                    }
                    (true, None) => {
                        return Err(format!(
                            "peer URL {addr} is https:// but this member has no peer TLS"
                        ))
                    }
                };
                channels.insert(addr.clone(), c.clone());
                c
            }
        };
        Ok(PeerClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// Classify a failed call, logging a refusal (at most once every 10 s per peer).
    fn failed(&self, to: NodeId, status: tonic::Status) -> PeerError {
        match status.code() {
            REFUSED | RAFT_FAILED => {
                if status.code() == REFUSED && status.message() == removed_message(self.links.me) {
                    self.links
                        .removed
                        .send_if_modified(|peers| peers.insert(to));
                }
                let now = Instant::now();
                let mut logged = self.links.refusals_logged.lock().expect("refusals lock");
                let due = logged
                    .get(&to)
                    .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(10));
                if due {
                    logged.insert(to, now);
                    tracing::error!(
                        local_member_id = %format!("{:x}", self.links.me),
                        remote_peer_id = %format!("{to:x}"),
                        local_member_cluster_id = %format!("{:x}", self.links.cluster_id),
                        error = status.message(),
                        "peer refused the request"
                    );
                }
                PeerError::Refused(to, status.message().to_string())
            }
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => {
                PeerError::Timeout(to, status.to_string())
            }
            _ => PeerError::Unreachable(to, status.to_string()),
        }
    }

    fn connection(&self, target: NodeId, node: &MemberNode) -> PeerConnection {
        PeerConnection {
            net: self.clone(),
            target,
            node: node.clone(),
            label: format!("{target:x}"),
        }
    }

    /// Hand a command to the leader `to`, which proposes it and answers its result.
    pub async fn forward(
        &self,
        to: NodeId,
        node: &MemberNode,
        command: Command,
        timeout: Duration,
    ) -> Result<Applied, PeerError> {
        let mut client = self
            .client(node)
            .map_err(|e| PeerError::Unreachable(to, e))?;
        let mut req = tonic::Request::new(pb::ForwardRequest {
            header: Some(self.header(to)),
            command: Some(command),
        });
        req.set_timeout(timeout);
        let resp = client
            .forward(req)
            .await
            .map_err(|s| self.failed(to, s))?
            .into_inner();
        use pb::forward_response::Result as R;
        match resp.result {
            Some(R::Applied(a)) => {
                Applied::try_from(a).map_err(|e| PeerError::Malformed(to, e.to_string()))
            }
            Some(R::NotLeader(n)) => Err(PeerError::NotLeader(to, nonzero(n.leader_id))),
            None => Err(PeerError::Malformed(to, "empty forward answer".into())),
        }
    }

    /// Ask the leader `to` for the read index of a linearizable read.
    pub async fn read_index(
        &self,
        to: NodeId,
        node: &MemberNode,
        timeout: Duration,
    ) -> Result<Option<LogId>, PeerError> {
        let mut client = self
            .client(node)
            .map_err(|e| PeerError::Unreachable(to, e))?;
        let mut req = tonic::Request::new(pb::ReadIndexRequest {
            header: Some(self.header(to)),
        });
        req.set_timeout(timeout);
        let resp = client
            .read_index(req)
            .await
            .map_err(|s| self.failed(to, s))?
            .into_inner();
        use pb::read_index_response::Result as R;
        match resp.result {
            Some(R::ReadLogId(l)) => Ok(l.log_id.as_ref().map(codec::log_id_from_pb)),
            Some(R::NotLeader(n)) => Err(PeerError::NotLeader(to, nonzero(n.leader_id))),
            None => Err(PeerError::Malformed(to, "empty read index answer".into())),
        }
    }

    /// Renew lease `id` on the leader `to`: its TTL from now, `None` for no such lease.
    /// Renew lease `id` on the leader `to` (or, `only_remaining`, ask its remaining TTL).
    pub async fn lease_renew(
        &self,
        to: NodeId,
        node: &MemberNode,
        id: i64,
        only_remaining: bool,
        timeout: Duration,
    ) -> Result<Option<i64>, PeerError> {
        let mut client = self
            .client(node)
            .map_err(|e| PeerError::Unreachable(to, e))?;
        let mut req = tonic::Request::new(pb::LeaseRenewRequest {
            header: Some(self.header(to)),
            id,
            only_remaining,
        });
        req.set_timeout(timeout);
        let resp = client
            .lease_renew(req)
            .await
            .map_err(|s| self.failed(to, s))?
            .into_inner();
        use pb::lease_renew_response::Result as R;
        match resp.result {
            Some(R::Ttl(t)) => Ok(Some(t)),
            Some(R::NotFound(_)) => Ok(None),
            Some(R::NotLeader(n)) => Err(PeerError::NotLeader(to, nonzero(n.leader_id))),
            None => Err(PeerError::Malformed(to, "empty lease answer".into())),
        }
    }
}

/// A peer's answer to the corruption check's HashKV (etcd's peerHashKVResp).
#[derive(Debug, Clone)]
pub enum PeerHash {
    /// Its header carries the peer's id and current revision.
    Hash(crate::proto::etcdserverpb::HashKvResponse),
    /// The revision is compacted on the peer (etcd's ErrCompacted).
    Compacted,
    /// The peer has not reached the revision (etcd's ErrFutureRev).
    FutureRev,
}

impl Network {
    /// Member `to`'s HashKV at `rev`, for the corruption check.
    pub async fn hash_kv(
        &self,
        to: NodeId,
        node: &MemberNode,
        rev: i64,
        timeout: Duration,
    ) -> Result<PeerHash, PeerError> {
        let mut client = self
            .client(node)
            .map_err(|e| PeerError::Unreachable(to, e))?;
        let mut req = tonic::Request::new(pb::PeerHashKvRequest {
            header: Some(self.header(to)),
            revision: rev,
        });
        req.set_timeout(timeout);
        let resp = client
            .hash_kv(req)
            .await
            .map_err(|s| self.failed(to, s))?
            .into_inner();
        use pb::peer_hash_kv_response::Result as R;
        match resp.result {
            Some(R::Hash(h)) => Ok(PeerHash::Hash(h)),
            Some(R::Compacted(_)) => Ok(PeerHash::Compacted),
            Some(R::FutureRev(_)) => Ok(PeerHash::FutureRev),
            None => Err(PeerError::Malformed(to, "empty hash answer".into())),
        }
    }
}

impl Network {
    /// Ask the leader `to` to make a membership change.
    /// Ask member `to` to stand for election now (MoveLeader).
    pub async fn elect(
        &self,
        to: NodeId,
        node: &MemberNode,
        timeout: Duration,
    ) -> Result<(), PeerError> {
        let mut client = self
            .client(node)
            .map_err(|e| PeerError::Unreachable(to, e))?;
        let mut req = tonic::Request::new(pb::ElectRequest {
            header: Some(self.header(to)),
        });
        req.set_timeout(timeout);
        client.elect(req).await.map_err(|s| self.failed(to, s))?;
        Ok(())
    }

    pub async fn member_change(
        &self,
        to: NodeId,
        node: &MemberNode,
        change: &Change,
        limits: Limits,
        timeout: Duration,
    ) -> Result<Result<NodeId, ChangeError>, PeerError> {
        let mut client = self
            .client(node)
            .map_err(|e| PeerError::Unreachable(to, e))?;
        let mut req = tonic::Request::new(pb::MemberChangeRequest {
            header: Some(self.header(to)),
            change: Some(change.to_pb()),
            max_learners: limits.max_learners,
            strict_reconfig_check: limits.strict,
            new_member_id: change.new_member_id(),
        });
        req.set_timeout(timeout);
        let resp = client
            .member_change(req)
            .await
            .map_err(|s| self.failed(to, s))?
            .into_inner();
        use pb::member_change_response::Result as R;
        match resp.result {
            Some(R::MemberId(id)) => Ok(Ok(id)),
            Some(R::Refused(code)) => {
                let r = pb::MemberChangeRefusal::try_from(code)
                    .map_err(|e| PeerError::Malformed(to, e.to_string()))?;
                Ok(Err(ChangeError::from_pb(r)))
            }
            Some(R::NotLeader(n)) => Err(PeerError::NotLeader(to, nonzero(n.leader_id))),
            None => Err(PeerError::Malformed(
                to,
                "empty member change answer".into(),
            )),
        }
    }
}

/// Ask the member at peer URL `url` for its cluster id and members (a member joining an
/// existing cluster does, before it knows its own id).
pub async fn cluster_members(
    url: &str,
    timeout: Duration,
) -> Result<pb::ClusterMembersResponse, String> {
    let ep = Channel::from_shared(url.to_string())
        .map_err(|e| format!("peer URL {url}: {e}"))?
        .connect_timeout(timeout);
    let channel = ep.connect().await.map_err(|e| format!("{url}: {e}"))?;
    let mut client = PeerClient::new(channel);
    let mut req = tonic::Request::new(pb::ClusterMembersRequest {});
    req.set_timeout(timeout);
    client
        .cluster_members(req)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| format!("{url}: {}", s.message()))
}

fn nonzero(id: u64) -> Option<NodeId> {
    (id != 0).then_some(id)
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &MemberNode) -> PeerConnection {
        self.connection(target, node)
    }
}

pub struct PeerConnection {
    net: Network,
    target: NodeId,
    node: MemberNode,
    /// The peer's id in hex: the `To`/`From` label of the peer metrics.
    label: String,
}

type RpcErr<E> = RPCError<NodeId, MemberNode, RaftError<NodeId, E>>;

impl PeerConnection {
    fn to_rpc_err<E: std::error::Error>(&self, e: PeerError) -> RpcErr<E> {
        match e {
            PeerError::Refused(..) => RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                RaftError::Fatal(Fatal::Stopped),
            )),
            PeerError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
            PeerError::Timeout(..) | PeerError::NotLeader(..) | PeerError::Malformed(..) => {
                RPCError::Network(NetworkError::new(&e))
            }
        }
    }

    fn client<E: std::error::Error>(&self) -> Result<PeerClient<Channel>, RpcErr<E>> {
        self.net
            .client(&self.node)
            .map_err(|e| self.to_rpc_err(PeerError::Unreachable(self.target, e)))
    }

    fn status<E: std::error::Error>(&self, s: tonic::Status) -> RpcErr<E> {
        self.to_rpc_err(self.net.failed(self.target, s))
    }

    fn malformed<E: std::error::Error>(&self, e: msg::Malformed) -> RpcErr<E> {
        self.to_rpc_err(PeerError::Malformed(self.target, e.to_string()))
    }

    /// Count one exchange with the peer: the request's bytes sent and the answer's bytes
    /// received, or a send failure.
    fn count<T: prost::Message>(
        &self,
        sent: usize,
        resp: &Result<tonic::Response<T>, tonic::Status>,
    ) {
        let to = [self.label.as_str()];
        match resp {
            Ok(r) => {
                crate::metrics::PEER_SENT_BYTES
                    .with_label_values(&to)
                    .inc_by(sent as u64);
                crate::metrics::PEER_RECEIVED_BYTES
                    .with_label_values(&to)
                    .inc_by(r.get_ref().encoded_len() as u64)
            }
            Err(_) => crate::metrics::PEER_SENT_FAILURES
                .with_label_values(&to)
                .inc(),
        }
    }
}

/// How many of `sizes` (leading entries) fit in `limit` bytes; at least one.
fn entries_within(sizes: impl Iterator<Item = usize>, limit: usize) -> usize {
    let mut total = 0;
    let mut n = 0;
    for s in sizes {
        if n > 0 && total + s > limit {
            break;
        }
        total += s;
        n += 1;
    }
    n
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        let mut encoded: Vec<Bytes> = rpc
            .entries
            .iter()
            .map(|e| Bytes::from(codec::encode_entry(e)))
            .collect();
        let keep = entries_within(encoded.iter().map(Bytes::len), MAX_APPEND_BYTES);
        let cut = keep < encoded.len();
        encoded.truncate(keep);
        let last_sent = rpc.entries.get(keep.wrapping_sub(1)).map(|e| e.log_id);
        let req = msg::append_to_pb(self.net.header(self.target), &rpc, encoded);
        let sent = prost::Message::encoded_len(&req);
        let mut client = self.client()?;
        let mut request = tonic::Request::new(req);
        request.set_timeout(option.hard_ttl());
        let heartbeat = rpc.entries.is_empty();
        let start = std::time::Instant::now();
        let resp = client.append_entries(request).await;
        self.net.activity.answered(self.target, resp.is_ok());
        self.count(sent, &resp);
        if heartbeat && resp.is_err() {
            crate::metrics::HEARTBEAT_SEND_FAILURES.inc();
        }
        if heartbeat && resp.is_ok() {
            crate::metrics::PEER_ROUND_TRIP_SECONDS
                .with_label_values(&[self.label.as_str()])
                .observe(start.elapsed().as_secs_f64());
        }
        let resp = resp.map_err(|s| self.status(s))?.into_inner();
        let resp = msg::append_resp_from_pb(resp).map_err(|e| self.malformed(e))?;
        Ok(match resp {
            AppendEntriesResponse::Success if cut => {
                AppendEntriesResponse::PartialSuccess(last_sent)
            }
            other => other,
        })
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let done = rpc.done;
        let req = msg::snapshot_to_pb(self.net.header(self.target), rpc);
        let sent = prost::Message::encoded_len(&req);
        let mut client = self.client()?;
        let mut request = tonic::Request::new(req);
        request.set_timeout(option.hard_ttl());
        let resp = client.install_snapshot(request).await;
        self.net.activity.answered(self.target, resp.is_ok());
        self.count(sent, &resp);
        crate::metrics::snapshot_chunk(true, &self.label, done, resp.is_ok());
        let resp = resp.map_err(|s| self.status(s))?.into_inner();
        match msg::snapshot_resp_from_pb(resp).map_err(|e| self.malformed(e))? {
            Ok(r) => Ok(r),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                RaftError::APIError(e),
            ))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        let req = msg::vote_req_to_pb(self.net.header(self.target), &rpc);
        let sent = prost::Message::encoded_len(&req);
        let mut client = self.client()?;
        let mut request = tonic::Request::new(req);
        request.set_timeout(option.hard_ttl());
        let resp = client.vote(request).await;
        self.net.activity.answered(self.target, resp.is_ok());
        self.count(sent, &resp);
        let resp = resp.map_err(|s| self.status(s))?.into_inner();
        msg::vote_resp_from_pb(resp).map_err(|e| self.malformed(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_is_cut_at_the_byte_bound_but_always_carries_one_entry() {
        let mib = MAX_APPEND_BYTES;
        assert_eq!(entries_within([10, 10, 10].into_iter(), mib), 3);
        assert_eq!(entries_within([mib / 2, mib / 2, 1].into_iter(), mib), 2);
        assert_eq!(entries_within([3 * mib, 1].into_iter(), mib), 1);
        assert_eq!(entries_within(std::iter::empty(), mib), 0);
    }
}

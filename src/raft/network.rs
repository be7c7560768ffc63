//! The peer network client: openraft RPCs to other members over the `metastorepb.Peer`
//! gRPC service on their peer URLs, payloads in bincode.

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;

use super::types::{MemberNode, NodeId, TypeConfig};
use crate::proto::metastorepb::{peer_client::PeerClient, PeerMessage};

#[derive(Clone, Default)]
pub struct Network;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &MemberNode) -> PeerConnection {
        PeerConnection {
            target,
            addr: node.peer_urls.first().cloned().unwrap_or_default(),
            client: None,
        }
    }
}

pub struct PeerConnection {
    target: NodeId,
    addr: String,
    client: Option<PeerClient<Channel>>,
}

type RpcErr<E> = RPCError<NodeId, MemberNode, RaftError<NodeId, E>>;

impl PeerConnection {
    fn client<E: std::error::Error>(&mut self) -> Result<PeerClient<Channel>, RpcErr<E>> {
        if self.client.is_none() {
            let ep = Channel::from_shared(self.addr.clone())
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            self.client = Some(PeerClient::new(ep.connect_lazy()));
        }
        Ok(self.client.clone().expect("client set above"))
    }

    /// Sends one request; the answer is the remote's `Result<Resp, RaftError<E>>`.
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RpcErr<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let data = bincode::serialize(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = self.client()?;
        let mut request = tonic::Request::new(PeerMessage { data: data.into() });
        request.set_timeout(option.hard_ttl());
        let resp = match method {
            Method::Append => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::Snapshot => client.install_snapshot(request).await,
        }
        .map_err(|status| RPCError::Unreachable(Unreachable::new(&status)))?;
        let out: Result<Resp, RaftError<NodeId, E>> = bincode::deserialize(&resp.into_inner().data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        out.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum Method {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.call(Method::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        self.call(Method::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}

//! The openraft type configuration and aliases (openraft's `typ` habit).

use crate::apply::{Applied, Command};

/// A member as raft's membership carries it (etcd's member: name and peer URLs). Client
/// URLs are not here: a member publishes them once it runs (`membership::Members`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberNode {
    pub name: String,
    pub peer_urls: Vec<String>,
    /// Added as a voter, held by raft as a learner until it has caught up (see
    /// `member_change`): a voter in etcd's member records.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub voter_pending: bool,
}

impl std::fmt::Display for MemberNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.peer_urls.join(","))
    }
}

openraft::declare_raft_types!(
    /// metastore's raft: commands are etcd requests, node ids are etcd member ids.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = MemberNode,
        Entry = openraft::Entry<TypeConfig>,
        // A snapshot is a file on disk (`raft::snapshotter`), streamed in chunks.
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Membership = openraft::Membership<NodeId, MemberNode>;
pub type StoredMembership = openraft::StoredMembership<NodeId, MemberNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, MemberNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;

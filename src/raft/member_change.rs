//! Membership changes as etcd's Cluster service makes them (etcd: EtcdServer.AddMember,
//! RemoveMember, UpdateMember, PromoteMember), made by the leader as openraft membership
//! changes, which the state machine turns into member records at apply.
//!
//! To ensure correctness:
//! - each change is checked against the leader's current membership, with etcd's refusals
//!   (unknown member, a peer URL already in use, too many learners, promoting a voter or a
//!   learner that lags), before anything is proposed;
//! - a voter is added as a learner first (so it receives the log), then made a voter;
//!   openraft commits each step through the log. The second step is raft's joint
//!   consensus, whose new half needs a quorum of the new voters. When the voters that
//!   answer now are not such a quorum without the new member (a one-member cluster, or
//!   members down), the step waits for the new member: etcd instead commits the add under
//!   the old configuration and answers at once. Then the learner is marked
//!   `voter_pending` (a voter in the member records, as etcd reports it), the answer goes
//!   out, and the leader makes it a voter once it has caught up (`promote_pending`). The
//!   mark is replicated, so a new leader finishes what the old one started;
//! - with `--strict-reconfig-check` (etcd's default), a change that would leave fewer
//!   started or connected voters than a quorum is refused before it is proposed (etcd:
//!   mayAddMember, mayRemoveMember, mayPromoteMember): a member is started once it has
//!   published its name, and connected when the leader's peer link to it has worked for
//!   [`HEALTH_INTERVAL`] without a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;

use super::network::PeerActivity;
use super::state_machine::SharedState;
use super::types::{MemberNode, NodeId, Raft};
use crate::proto::etcdserverpb as epb;
use crate::proto::metastorepb::{member_change_request::Change as PbChange, MemberChangeRefusal};

/// A learner may be promoted once it has this share of the leader's log (etcd's
/// readyPercent).
const LEARNER_READY_PERCENT: f64 = 0.9;

/// How long a peer link must have worked for its member to count as connected (etcd's
/// HealthInterval).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// The limits of the member that took the client's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `--max-learners`.
    pub max_learners: u32,
    /// `--strict-reconfig-check`.
    pub strict: bool,
}

/// What the leader knows of its voters' health: which members have published their name
/// (started) and how long each peer link has worked.
#[derive(Clone)]
pub struct ClusterHealth {
    pub activity: PeerActivity,
    pub state: Arc<SharedState>,
}

impl ClusterHealth {
    fn started(&self) -> BTreeSet<NodeId> {
        let members = self.state.members.read().expect("members lock");
        members
            .list()
            .into_iter()
            .filter(|r| !r.name.is_empty())
            .map(|r| r.id)
            .collect()
    }

    /// Voters this member (`me`, always counted) has been connected to since `since`.
    fn connected_since(&self, me: NodeId, voters: &BTreeSet<NodeId>, since: Instant) -> usize {
        voters
            .iter()
            .filter(|&&id| id == me || self.activity.active_since(id).is_some_and(|t| t <= since))
            .count()
    }
}

fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// etcd's mayAddMember, mayRemoveMember and mayPromoteMember checks.
fn strict_check(
    change: &Change,
    me: NodeId,
    voters: &BTreeSet<NodeId>,
    nodes: &BTreeMap<NodeId, MemberNode>,
    health: &ClusterHealth,
) -> Result<(), ChangeError> {
    let started = health.started();
    let since = Instant::now()
        .checked_sub(HEALTH_INTERVAL)
        .unwrap_or_else(Instant::now);
    let started_voters = |except: Option<NodeId>| {
        voters
            .iter()
            .filter(|id| Some(**id) != except && started.contains(id))
            .count()
    };
    match change {
        Change::Add { is_learner, .. } => {
            // IsReadyToAddVotingMember: the new member counts as not started.
            let members = voters.len() + 1;
            let ok = started_voters(None) >= quorum(members)
                || (started_voters(None) == 1 && members == 2);
            if !is_learner && !ok {
                return Err(ChangeError::NotEnoughStarted);
            }
            // The new member counts as unavailable when checking quorum safety.
            if voters.len() > 1
                && health.connected_since(me, voters, since) < quorum(voters.len() + 1)
            {
                return Err(ChangeError::Unhealthy);
            }
        }
        Change::Remove(id) => {
            if !voters.contains(id) {
                // No quorum to check when a learner goes.
                return Ok(());
            }
            let remaining = voters.len() - 1;
            if started_voters(Some(*id)) < quorum(remaining) {
                return Err(ChangeError::NotEnoughStarted);
            }
            // A member that is down is safe to remove: it is not part of the active quorum.
            if *id != me && health.activity.active_since(*id).is_none() {
                return Ok(());
            }
            let active = health.connected_since(me, voters, since);
            // The active voters that stay must still be a quorum of those that stay.
            if active.saturating_sub(1) < 1 + (voters.len() - 1) / 2 {
                return Err(ChangeError::Unhealthy);
            }
        }
        Change::Promote(id) => {
            // IsReadyToPromoteMember: the learner counts as a started voter.
            let members = voters.len() + 1;
            let mut n = started_voters(None);
            if started.contains(id) || nodes.get(id).is_some_and(|n| !n.name.is_empty()) {
                n += 1;
            }
            if n < quorum(members) {
                return Err(ChangeError::NotEnoughStarted);
            }
        }
        Change::Update { .. } => {}
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add member `id` (computed by the member that took the request, as etcd does).
    Add {
        id: NodeId,
        peer_urls: Vec<String>,
        is_learner: bool,
    },
    Remove(NodeId),
    Update {
        id: NodeId,
        peer_urls: Vec<String>,
    },
    Promote(NodeId),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("member not found")]
    NotFound,
    #[error("peer URLs already exist")]
    PeerUrlExists,
    #[error("too many learners")]
    TooManyLearners,
    #[error("member is not a learner")]
    NotLearner,
    #[error("learner not ready")]
    LearnerNotReady,
    #[error("not enough started members")]
    NotEnoughStarted,
    #[error("unhealthy cluster")]
    Unhealthy,
    #[error("not the leader")]
    NotLeader(Option<NodeId>),
    #[error("raft stopped")]
    Stopped,
    #[error("{0}")]
    Failed(String),
}

impl ChangeError {
    pub fn to_pb(&self) -> Option<MemberChangeRefusal> {
        Some(match self {
            ChangeError::NotFound => MemberChangeRefusal::MemberNotFound,
            ChangeError::PeerUrlExists => MemberChangeRefusal::PeerUrlExists,
            ChangeError::TooManyLearners => MemberChangeRefusal::TooManyLearners,
            ChangeError::NotLearner => MemberChangeRefusal::MemberNotLearner,
            ChangeError::LearnerNotReady => MemberChangeRefusal::LearnerNotReady,
            ChangeError::NotEnoughStarted => MemberChangeRefusal::NotEnoughStarted,
            ChangeError::Unhealthy => MemberChangeRefusal::Unhealthy,
            _ => return None,
        })
    }

    pub fn from_pb(r: MemberChangeRefusal) -> ChangeError {
        match r {
            MemberChangeRefusal::MemberNotFound => ChangeError::NotFound,
            MemberChangeRefusal::PeerUrlExists => ChangeError::PeerUrlExists,
            MemberChangeRefusal::TooManyLearners => ChangeError::TooManyLearners,
            MemberChangeRefusal::MemberNotLearner => ChangeError::NotLearner,
            MemberChangeRefusal::LearnerNotReady => ChangeError::LearnerNotReady,
            MemberChangeRefusal::NotEnoughStarted => ChangeError::NotEnoughStarted,
            MemberChangeRefusal::Unhealthy => ChangeError::Unhealthy,
            MemberChangeRefusal::Unspecified => ChangeError::Failed("unspecified refusal".into()),
        }
    }
}

impl Change {
    /// The change a peer asked for (`new_member_id` names an added member).
    pub fn from_pb(c: PbChange, new_member_id: NodeId) -> Change {
        match c {
            PbChange::Add(a) => Change::Add {
                id: new_member_id,
                peer_urls: a.peer_ur_ls,
                is_learner: a.is_learner,
            },
            PbChange::Remove(r) => Change::Remove(r.id),
            PbChange::Update(u) => Change::Update {
                id: u.id,
                peer_urls: u.peer_ur_ls,
            },
            PbChange::Promote(p) => Change::Promote(p.id),
        }
    }

    /// The id of an added member (0 for other changes).
    pub fn new_member_id(&self) -> NodeId {
        match self {
            Change::Add { id, .. } => *id,
            _ => 0,
        }
    }

    pub fn to_pb(&self) -> PbChange {
        match self {
            Change::Add {
                peer_urls,
                is_learner,
                ..
            } => PbChange::Add(epb::MemberAddRequest {
                peer_ur_ls: peer_urls.clone(),
                is_learner: *is_learner,
            }),
            Change::Remove(id) => PbChange::Remove(epb::MemberRemoveRequest { id: *id }),
            Change::Update { id, peer_urls } => PbChange::Update(epb::MemberUpdateRequest {
                id: *id,
                peer_ur_ls: peer_urls.clone(),
            }),
            Change::Promote(id) => PbChange::Promote(epb::MemberPromoteRequest { id: *id }),
        }
    }
}

fn write_err(e: RaftError<NodeId, ClientWriteError<NodeId, MemberNode>>) -> ChangeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            ChangeError::NotLeader(f.leader_id)
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ChangeError::Failed(e.to_string())
        }
        RaftError::Fatal(_) => ChangeError::Stopped,
    }
}

/// Make `change` on this member, which must lead. Returns the member id changed.
pub async fn change_on_leader(
    raft: &Raft,
    change: Change,
    limits: Limits,
    health: &ClusterHealth,
) -> Result<NodeId, ChangeError> {
    let max_learners = limits.max_learners;
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(metrics.id) {
        return Err(ChangeError::NotLeader(metrics.current_leader));
    }
    let membership = metrics.membership_config.membership();
    let raft_voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let nodes: BTreeMap<NodeId, MemberNode> =
        membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    // The voters as etcd counts them: raft's, and those it still holds as learners.
    let voters: BTreeSet<NodeId> = nodes
        .iter()
        .filter(|(id, n)| n.voter_pending || raft_voters.contains(id))
        .map(|(id, _)| *id)
        .collect();
    let known = match &change {
        Change::Add { .. } => true,
        Change::Remove(id) | Change::Update { id, .. } | Change::Promote(id) => {
            nodes.contains_key(id)
        }
    };
    if let (Change::Promote(id), true) = (&change, known) {
        // etcd's isLearnerReady comes first, for any member raft replicates to (a voter
        // too, which is refused as not a learner only after).
        let leader_last = metrics.last_log_index.unwrap_or(0);
        let matched = if *id == metrics.id {
            leader_last
        } else {
            metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map_or(0, |l| l.index)
        };
        if (matched as f64) < (leader_last as f64) * LEARNER_READY_PERCENT {
            return Err(ChangeError::LearnerNotReady);
        }
    }
    if limits.strict && known {
        strict_check(&change, metrics.id, &voters, &nodes, health)?;
    }
    let url_taken = |urls: &[String], except: Option<NodeId>| {
        nodes
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .any(|(_, n)| n.peer_urls.iter().any(|u| urls.contains(u)))
    };
    match change {
        Change::Add {
            id,
            peer_urls,
            is_learner,
        } => {
            if url_taken(&peer_urls, None) {
                return Err(ChangeError::PeerUrlExists);
            }
            let learners = nodes.keys().filter(|id| !voters.contains(id)).count();
            if is_learner && learners >= max_learners as usize {
                return Err(ChangeError::TooManyLearners);
            }
            if nodes.contains_key(&id) {
                return Err(ChangeError::Failed("member ID already exist".into()));
            }
            // The voters answering now, this one included (see the module's notes).
            let answering = raft_voters
                .iter()
                .filter(|&&v| v == metrics.id || health.activity.active_since(v).is_some())
                .count();
            let voter_pending = !is_learner && answering < quorum(raft_voters.len() + 1);
            let node = MemberNode {
                name: String::new(),
                peer_urls,
                voter_pending,
            };
            raft.add_learner(id, node, false).await.map_err(write_err)?;
            if !is_learner && !voter_pending {
                raft.change_membership(ChangeMembers::AddVoterIds([id].into()), true)
                    .await
                    .map_err(write_err)?;
            }
            Ok(id)
        }
        Change::Remove(id) => {
            if !nodes.contains_key(&id) {
                return Err(ChangeError::NotFound);
            }
            let change = if raft_voters.contains(&id) {
                ChangeMembers::RemoveVoters([id].into())
            } else {
                ChangeMembers::RemoveNodes([id].into())
            };
            raft.change_membership(change, false)
                .await
                .map_err(write_err)?;
            Ok(id)
        }
        Change::Update { id, peer_urls } => {
            let Some(node) = nodes.get(&id) else {
                return Err(ChangeError::NotFound);
            };
            if url_taken(&peer_urls, Some(id)) {
                return Err(ChangeError::PeerUrlExists);
            }
            let node = MemberNode {
                name: node.name.clone(),
                peer_urls,
                voter_pending: node.voter_pending,
            };
            raft.change_membership(ChangeMembers::SetNodes([(id, node)].into()), true)
                .await
                .map_err(write_err)?;
            Ok(id)
        }
        Change::Promote(id) => {
            if !nodes.contains_key(&id) {
                return Err(ChangeError::NotFound);
            }
            if voters.contains(&id) {
                return Err(ChangeError::NotLearner);
            }
            raft.change_membership(ChangeMembers::AddVoterIds([id].into()), true)
                .await
                .map_err(write_err)?;
            Ok(id)
        }
    }
}

/// Make voters of the learners marked `voter_pending` once each answers and has caught up
/// (etcd's readyPercent of the leader's log), one at a time; nothing unless this member
/// leads with no membership change under way. A refusal is left for the next call.
pub async fn promote_pending(raft: &Raft, health: &ClusterHealth) -> Result<(), ChangeError> {
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(metrics.id) {
        return Ok(());
    }
    let membership = metrics.membership_config.membership();
    if membership.get_joint_config().len() > 1 {
        return Ok(());
    }
    let raft_voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let leader_last = metrics.last_log_index.unwrap_or(0);
    let ready = membership.nodes().find(|(id, n)| {
        let matched = metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(*id).cloned().flatten())
            .map_or(0, |l| l.index);
        n.voter_pending
            && !raft_voters.contains(*id)
            && health.activity.active_since(**id).is_some()
            && matched > 0
            && (matched as f64) >= (leader_last as f64) * LEARNER_READY_PERCENT
    });
    let Some((&id, _)) = ready else {
        return Ok(());
    };
    raft.change_membership(ChangeMembers::AddVoterIds([id].into()), true)
        .await
        .map_err(write_err)?;
    tracing::info!(member = %format!("{id:x}"), "promoted a member added as a voter once it caught up");
    Ok(())
}

//! Reaching the leader from any member: proposals (the group-committed batch as one
//! forward), the read index of linearizable reads, and lease keep-alives. The leader serves
//! them itself; a follower asks the leader over the peer link (etcd: a follower's
//! proposals travel to the leader as raft messages, its reads use ReadIndex).
//!
//! To ensure correctness:
//! - a command is handed to a leader once, unless the leader said it is not the leader or
//!   could not be connected to at all (then nothing was proposed, and it is safe to go to
//!   the next leader); after any other failure whether it was proposed is unknown, and the
//!   client gets etcd's `request timed out` rather than a second proposal;
//! - a follower's linearizable read waits until its own apply reaches the leader's read
//!   index, so it sees every write acknowledged before the read began;
//! - with no leader, a request waits for one until its deadline, then gets `request timed
//!   out` (etcd's answer for a proposal or read that found no leader in time).

use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use tokio::time::Instant;

use super::error::{Error, Result};

/// How long a retry waits for raft to report a new leader before asking the same one again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
use crate::apply::{Applied, Command};
use crate::raft::member_change::{change_on_leader, Change, ChangeError, ClusterHealth, Limits};
use crate::raft::network::PeerError;
use crate::raft::{MemberNode, Network, NodeId, Raft};

#[derive(Clone)]
pub struct LeaderLink {
    raft: Raft,
    net: Network,
    me: NodeId,
    health: ClusterHealth,
}

/// What to do after a failed attempt.
enum Next {
    /// Nothing was done: try again (after a leader change, or a short pause).
    Retry,
    Fail(Error),
}

fn peer_failure(e: PeerError) -> Next {
    match e {
        PeerError::NotLeader(..) => Next::Retry,
        // Not connected at all: the request never left this member.
        PeerError::Unreachable(_, why) if why.contains("connect") => Next::Retry,
        other => {
            tracing::debug!(error = %other, "request to the leader failed");
            Next::Fail(Error::Timeout)
        }
    }
}

impl LeaderLink {
    pub fn new(raft: Raft, net: Network, me: NodeId, health: ClusterHealth) -> Self {
        LeaderLink {
            raft,
            net,
            me,
            health,
        }
    }

    /// The leader (and its record). After a failed attempt with `failed` (leader, term),
    /// first wait for raft to report another leader or term, or [`RETRY_PAUSE`], whichever
    /// comes first; with no leader, wait for one until `deadline`.
    async fn leader(
        &self,
        failed: Option<(NodeId, u64)>,
        deadline: Instant,
    ) -> Result<(NodeId, u64, Option<MemberNode>)> {
        let mut metrics = self.raft.metrics();
        if let Some(was) = failed {
            let changed = metrics.wait_for(|m| {
                m.current_leader.is_some()
                    && (m.current_leader, m.current_term) != (Some(was.0), was.1)
            });
            let pause = (Instant::now() + RETRY_PAUSE).min(deadline);
            if let Ok(Err(_)) = tokio::time::timeout_at(pause, changed).await {
                return Err(Error::Stopped);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout);
            }
        }
        loop {
            {
                let m = metrics.borrow_and_update();
                if let Some(l) = m.current_leader {
                    // A member that is joining may hear of the leader before it has the
                    // membership that says where the leader is: wait for that too.
                    let node = m.membership_config.membership().get_node(&l).cloned();
                    if l == self.me || node.is_some() {
                        return Ok((l, m.current_term, node));
                    }
                }
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Stopped),
                Err(_) => return Err(Error::Timeout),
            }
        }
    }

    pub(super) fn network(&self) -> &Network {
        &self.net
    }

    fn remaining(deadline: Instant) -> Duration {
        deadline.saturating_duration_since(Instant::now())
    }

    /// Propose `cmd` through the leader and return its apply result.
    pub async fn write(&self, cmd: Command, deadline: Instant) -> Result<Applied> {
        let mut failed = None;
        loop {
            let (leader, term, node) = self.leader(failed, deadline).await?;
            let next = if leader == self.me {
                match self.raft.client_write(cmd.clone()).await {
                    Ok(resp) => return Ok(resp.data),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Next::Retry,
                    Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                        Next::Fail(Error::Internal(e.to_string()))
                    }
                    Err(RaftError::Fatal(_)) => Next::Fail(Error::Stopped),
                }
            } else {
                let node = node.ok_or(Error::NoLeader)?;
                let sent = self
                    .net
                    .forward(leader, &node, cmd.clone(), Self::remaining(deadline));
                match tokio::time::timeout_at(deadline, sent).await {
                    Ok(Ok(applied)) => return Ok(applied),
                    Ok(Err(e)) => peer_failure(e),
                    Err(_) => Next::Fail(Error::Timeout),
                }
            };
            match next {
                Next::Retry => failed = Some((leader, term)),
                Next::Fail(e) => return Err(e),
            }
        }
    }

    /// Wait until this member has applied everything committed before the call (etcd's
    /// linearizableReadNotify): the leader confirms its leadership and names its read index,
    /// and the local apply catches up to it.
    pub async fn read_index(&self, deadline: Instant) -> Result<()> {
        let mut failed = None;
        loop {
            let (leader, term, node) = self.leader(failed, deadline).await?;
            let next = if leader == self.me {
                let confirmed = tokio::time::timeout_at(deadline, self.raft.get_read_log_id());
                match confirmed.await {
                    Ok(Ok((read, _))) => return self.wait_applied(read, deadline).await,
                    Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
                        Next::Retry
                    }
                    // Leadership not confirmed by a quorum: maybe a new leader is being
                    // elected, maybe this member is cut off; ask again until the deadline.
                    Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                        Next::Retry
                    }
                    Ok(Err(RaftError::Fatal(_))) => Next::Fail(Error::Stopped),
                    Err(_) => Next::Fail(Error::Timeout),
                }
            } else {
                let node = node.ok_or(Error::NoLeader)?;
                let asked = self
                    .net
                    .read_index(leader, &node, Self::remaining(deadline));
                match tokio::time::timeout_at(deadline, asked).await {
                    Ok(Ok(read)) => return self.wait_applied(read, deadline).await,
                    // A read can be asked again: unlike a proposal it changes nothing.
                    Ok(Err(PeerError::NotLeader(..) | PeerError::Unreachable(..))) => Next::Retry,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "read index from the leader failed");
                        Next::Fail(Error::Timeout)
                    }
                    Err(_) => Next::Fail(Error::Timeout),
                }
            };
            match next {
                Next::Retry => failed = Some((leader, term)),
                Next::Fail(e) => return Err(e),
            }
        }
    }

    async fn wait_applied(
        &self,
        read: Option<crate::raft::types::LogId>,
        deadline: Instant,
    ) -> Result<()> {
        let Some(read) = read else { return Ok(()) };
        self.raft
            .wait(Some(Self::remaining(deadline)))
            .applied_index_at_least(Some(read.index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => Error::Timeout,
                openraft::metrics::WaitError::ShuttingDown => Error::Stopped,
            })
    }

    /// Renew a lease on the leader (`renew_here` when this member leads): its TTL from
    /// now, or `None` for no such lease. With `only_remaining`, the leader's remaining TTL
    /// of the lease instead, renewing nothing.
    pub async fn lease_renew(
        &self,
        id: i64,
        only_remaining: bool,
        deadline: Instant,
        renew_here: impl Fn() -> Option<i64>,
    ) -> Result<Option<i64>> {
        let mut failed = None;
        loop {
            let (leader, term, node) = self.leader(failed, deadline).await?;
            if leader == self.me {
                return Ok(renew_here());
            }
            let node = node.ok_or(Error::NoLeader)?;
            let asked =
                self.net
                    .lease_renew(leader, &node, id, only_remaining, Self::remaining(deadline));
            match tokio::time::timeout_at(deadline, asked).await {
                Ok(Ok(ttl)) => return Ok(ttl),
                // A renewal can be sent again: it only moves the expiry.
                Ok(Err(PeerError::NotLeader(..) | PeerError::Unreachable(..))) => {
                    failed = Some((leader, term))
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "lease renewal on the leader failed");
                    return Err(Error::Timeout);
                }
                Err(_) => return Err(Error::Timeout),
            }
        }
    }

    /// Make a membership change on the leader; the id of the member changed.
    pub async fn member_change(
        &self,
        change: Change,
        limits: Limits,
        deadline: Instant,
    ) -> Result<NodeId> {
        let mut failed = None;
        loop {
            let (leader, term, node) = self.leader(failed, deadline).await?;
            let outcome = if leader == self.me {
                let made = change_on_leader(&self.raft, change.clone(), limits, &self.health);
                match tokio::time::timeout_at(deadline, made).await {
                    Ok(r) => r,
                    Err(_) => return Err(Error::Timeout),
                }
            } else {
                let node = node.ok_or(Error::NoLeader)?;
                let asked = self.net.member_change(
                    leader,
                    &node,
                    &change,
                    limits,
                    Self::remaining(deadline),
                );
                match tokio::time::timeout_at(deadline, asked).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => match peer_failure(e) {
                        Next::Retry => {
                            failed = Some((leader, term));
                            continue;
                        }
                        Next::Fail(e) => return Err(e),
                    },
                    Err(_) => return Err(Error::Timeout),
                }
            };
            return match outcome {
                Ok(id) => Ok(id),
                Err(ChangeError::NotLeader(_)) => {
                    failed = Some((leader, term));
                    continue;
                }
                Err(ChangeError::NotFound) => Err(Error::MemberNotFound),
                Err(ChangeError::PeerUrlExists) => Err(Error::PeerUrlExists),
                Err(ChangeError::TooManyLearners) => Err(Error::TooManyLearners),
                Err(ChangeError::NotLearner) => Err(Error::MemberNotLearner),
                Err(ChangeError::LearnerNotReady) => Err(Error::LearnerNotReady),
                Err(ChangeError::NotEnoughStarted) => Err(Error::NotEnoughStarted),
                Err(ChangeError::Unhealthy) => Err(Error::Unhealthy),
                Err(ChangeError::Stopped) => Err(Error::Stopped),
                Err(ChangeError::Failed(m)) => Err(Error::Internal(m)),
            };
        }
    }
}

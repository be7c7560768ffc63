//! etcd's MoveLeader (Maintenance.MoveLeader, `etcdctl move-leader`): the leader hands its
//! leadership to another voter. openraft 0.9 has no leadership transfer, so the leader
//! does what etcd's raft does in steps of its own:
//!
//! 1. the transferee must be a voter (etcd: `bad leader transferee`), and this member the
//!    leader (etcd: `not leader`);
//! 2. wait until the transferee's log matches the leader's (etcd's raft sends it the log
//!    first);
//! 3. stop the leader's heartbeats, so that the other members' leader lease (openraft
//!    refuses votes while it runs) expires, and ask the transferee to stand for election,
//!    again each election timeout until it leads (etcd: MsgTimeoutNow);
//! 4. heartbeats go back on whatever the outcome (a member that leads again needs them).
//!
//! To ensure correctness: nothing here changes the log or the vote itself; the election is
//! openraft's own, so a transferee that is behind simply loses it.

use std::time::Duration;

use tokio::time::Instant;

use super::error::{Error, Result};
use crate::raft::{Network, NodeId, Raft};

/// etcd checks for the new leader every tick; the election takes longer anyway.
const POLL: Duration = Duration::from_millis(20);

pub(super) async fn move_leader(
    raft: &Raft,
    net: &Network,
    me: NodeId,
    target: NodeId,
    election: Duration,
    deadline: Instant,
) -> Result<()> {
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(me) {
        return Err(Error::NotLeader);
    }
    let membership = metrics.membership_config.membership();
    if !membership.voter_ids().any(|id| id == target) {
        return Err(Error::BadLeaderTransferee);
    }
    if target == me {
        return Ok(());
    }
    let node = membership
        .get_node(&target)
        .cloned()
        .ok_or(Error::BadLeaderTransferee)?;

    // 2. The transferee catches up with the log as it is now.
    let last = metrics.last_log_index.unwrap_or(0);
    let mut watch = raft.metrics();
    let caught_up = watch.wait_for(|m| {
        m.current_leader != Some(me)
            || m.replication
                .as_ref()
                .and_then(|r| r.get(&target).cloned().flatten())
                .is_some_and(|l| l.index >= last)
    });
    match tokio::time::timeout_at(deadline, caught_up).await {
        Ok(Ok(m)) if m.current_leader != Some(me) => return Err(Error::NotLeader),
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return Err(Error::Stopped),
        Err(_) => return Err(Error::LeaderTransferTimeout),
    }

    // 3. Quiet heartbeats, and ask the transferee to stand until it leads.
    raft.runtime_config().heartbeat(false);
    let outcome = async {
        loop {
            let asked_at = Instant::now();
            if let Err(e) = net.elect(target, &node, election).await {
                tracing::info!(error = %e, "move-leader: the transferee did not stand");
            }
            let next = (asked_at + election).min(deadline);
            while Instant::now() < next {
                if raft.metrics().borrow().current_leader == Some(target) {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            }
            if Instant::now() >= deadline {
                return Err(Error::LeaderTransferTimeout);
            }
        }
    }
    .await;
    // 4.
    raft.runtime_config().heartbeat(true);
    if outcome.is_ok() {
        tracing::info!(
            from = %format!("{me:x}"),
            to = %format!("{target:x}"),
            "leadership transferred (move-leader)"
        );
    }
    outcome
}

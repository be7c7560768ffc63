//! The leader-only lease expiry loop (etcd: lessor runLoop + EtcdServer revoke): every
//! 500 ms the leader proposes revokes for expired leases, at most 500 per round (etcd's rate
//! of 1,000 a second), all riding one group-committed log entry. A member that becomes
//! leader first renews every lease by its full TTL.

use std::sync::Arc;
use std::time::Duration;

use super::member::Member;

const ROUND: Duration = Duration::from_millis(500);
const MAX_REVOKES_PER_ROUND: usize = 500;

pub fn spawn(member: Arc<Member>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ROUND);
        let mut was_leader = false;
        loop {
            tick.tick().await;
            let leader = member.leader() == Some(member.member_id);
            if leader && !was_leader {
                member.state.leases.lock().expect("leases lock").promote();
            }
            was_leader = leader;
            if !leader {
                continue;
            }
            let expired = member
                .state
                .leases
                .lock()
                .expect("leases lock")
                .expired(MAX_REVOKES_PER_ROUND);
            let revokes = expired.into_iter().map(|id| {
                let member = member.clone();
                async move {
                    if let Err(e) = member.lease_revoke(id).await {
                        tracing::debug!(lease = id, error = %e, "expired lease not revoked this round");
                    }
                }
            });
            futures::future::join_all(revokes).await;
        }
    })
}

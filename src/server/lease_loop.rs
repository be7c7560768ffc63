//! The leader-only lease expiry loop (etcd: lessor runLoop + EtcdServer revoke). It follows
//! leadership as openraft reports it in its metrics (no polling of the leader): when this
//! member becomes leader (in a new term), every lease first gets its full TTL from now
//! (etcd's Promote, so a lease never expires for time its holder could not reach a leader),
//! then every 500 ms the leader proposes revokes for expired leases, at most 500 per round
//! (etcd's rate of 1,000 a second), all riding one group-committed log entry. Once it stops
//! leading, it revokes nothing until it leads again.

use std::sync::Arc;
use std::time::Duration;

use super::member::Member;

const ROUND: Duration = Duration::from_millis(500);
const MAX_REVOKES_PER_ROUND: usize = 500;

pub fn spawn(member: Arc<Member>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let me = member.member_id;
        let mut metrics = member.raft.metrics();
        loop {
            let term = match metrics.wait_for(|m| m.current_leader == Some(me)).await {
                Ok(m) => m.current_term,
                Err(_) => return,
            };
            member.state.leases.lock().expect("leases lock").promote();
            tracing::info!(term, "leading: every lease renewed by its TTL");
            let leading = |m: &openraft::RaftMetrics<u64, crate::raft::MemberNode>| {
                m.current_leader == Some(me) && m.current_term == term
            };
            let mut tick = tokio::time::interval(ROUND);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    changed = metrics.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if !leading(&metrics.borrow_and_update()) {
                            tracing::info!(term, "no longer leading: lease expiry stops");
                            break;
                        }
                    }
                    _ = tick.tick() => revoke_expired(&member).await,
                }
            }
        }
    })
}

async fn revoke_expired(member: &Arc<Member>) {
    let expired = member
        .state
        .leases
        .lock()
        .expect("leases lock")
        .expired(MAX_REVOKES_PER_ROUND);
    let revokes = expired.into_iter().map(|id| {
        let member = member.clone();
        async move {
            if let Err(e) = member
                .lease_revoke(&crate::auth::AuthInfo::member(), id)
                .await
            {
                tracing::debug!(lease = id, error = %e, "expired lease not revoked this round");
            }
        }
    });
    futures::future::join_all(revokes).await;
}

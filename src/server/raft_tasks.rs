//! Tasks beside raft that every member runs: snapshots asked for by --snapshot-count, the
//! watch for a fatal raft error, and (on the leader) the promotion of voters added while
//! raft could not count them.

use crate::raft::{Raft, SharedState};

/// Ask raft for a snapshot whenever the state machine says --snapshot-count requests were
/// applied since the last one.
pub(super) async fn snapshot_loop(
    raft: Raft,
    state: std::sync::Weak<SharedState>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        // Hold the state only while waiting for the bell: a stopped member lets go of it
        // (and of its database) at once.
        let due = async {
            match state.upgrade() {
                Some(s) => {
                    s.snapshot_due.notified().await;
                    true
                }
                None => false,
            }
        };
        tokio::select! {
            rang = due => if !rang { return },
            _ = closing.wait_for(|c| *c) => return,
        }
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
    }
}

/// How often the leader looks for a pending voter that has caught up.
const PROMOTE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// While this member leads, make voters of the members added as voters that raft still
/// holds as learners, once they have caught up (`member_change::promote_pending`).
pub(super) async fn promote_loop(
    raft: Raft,
    health: crate::raft::member_change::ClusterHealth,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PROMOTE_INTERVAL) => {}
            _ = closing.wait_for(|c| *c) => return,
        }
        let promote = crate::raft::member_change::promote_pending(&raft, &health);
        tokio::select! {
            // A refusal (a change under way, leadership lost) is retried at the next tick.
            _ = promote => {}
            _ = closing.wait_for(|c| *c) => return,
        }
    }
}

/// Watch raft's metrics for a fatal error (a storage error or a panic in its core, or raft
/// stopping when nobody asked it to) and record it.
pub(super) async fn watch_raft_fatal<N: openraft::Node>(
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, N>>,
    closing: tokio::sync::watch::Receiver<bool>,
    fatal: tokio::sync::watch::Sender<Option<String>>,
) {
    // etcd_server_leader_changes_seen_total: each new leader known (the first one too)
    let mut leader = None;
    loop {
        let m = metrics.borrow_and_update().clone();
        if m.current_leader.is_some() && m.current_leader != leader {
            leader = m.current_leader;
            crate::metrics::LEADER_CHANGES.inc();
        }
        let failed = match &m.running_state {
            Ok(()) => None,
            Err(openraft::error::Fatal::Stopped) if *closing.borrow() => return,
            Err(f) => Some(format!("raft: {f}")),
        };
        if let Some(e) = failed {
            fatal.send_replace(Some(e));
            return;
        }
        if metrics.changed().await.is_err() {
            if !*closing.borrow() {
                fatal.send_replace(Some("raft: stopped".to_string()));
            }
            return;
        }
    }
}

//! Auto-compaction (etcd: etcdserver/api/v3compactor): `revision` mode keeps the last N
//! revisions, checked every 5 minutes; `periodic` mode keeps the revisions of the last
//! retention period, sampled every tenth of it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::member::Member;
use crate::config::AutoCompaction;
use crate::proto::etcdserverpb::CompactionRequest;

pub fn spawn(member: Arc<Member>, policy: AutoCompaction) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match policy {
            AutoCompaction::Revision(keep) => revision_mode(member, keep).await,
            AutoCompaction::Periodic(period) => periodic_mode(member, period).await,
        }
    })
}

async fn compact(member: &Member, rev: i64) {
    let req = CompactionRequest {
        revision: rev,
        physical: false,
    };
    match member.compact(&crate::auth::AuthInfo::member(), req).await {
        Ok(_) => tracing::info!(revision = rev, "completed auto compaction"),
        Err(e) => tracing::debug!(revision = rev, error = %e, "auto compaction skipped"),
    }
}

async fn revision_mode(member: Arc<Member>, keep: i64) {
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tick.tick().await;
        let target = member.current_revision() - keep;
        if target > 0 && target > last && member.leader() == Some(member.member_id) {
            compact(&member, target).await;
            last = target;
        }
    }
}

async fn periodic_mode(member: Arc<Member>, period: Duration) {
    let step = (period / 10).max(Duration::from_secs(1));
    let samples_needed = 10usize;
    let mut samples: VecDeque<i64> = VecDeque::new();
    let mut last = 0;
    let mut tick = tokio::time::interval(step);
    loop {
        tick.tick().await;
        samples.push_back(member.current_revision());
        if samples.len() > samples_needed {
            let target = samples.pop_front().unwrap_or(0);
            if target > last && member.leader() == Some(member.member_id) {
                compact(&member, target).await;
                last = target;
            }
        }
    }
}

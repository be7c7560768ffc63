//! Defragment (etcd: Maintenance.Defragment, backend.Defrag).

use std::time::Duration;

use super::error::{Error, Result};
use super::member::Member;

impl Member {
    /// etcd's defragment: the backend is rewritten into a fresh database that takes the
    /// old one's place (storage/defrag.rs); reads and writes wait meanwhile, as in etcd.
    /// The raft log shares the database (etcd keeps it in its WAL, outside the database),
    /// so a snapshot is taken first and the log purged up to it.
    pub async fn defragment(&self) -> Result<()> {
        self.snapshot_and_purge().await;
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || backend.defragment())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Snapshot at the applied index, then purge the whole log up to it, past what
    /// --snapshot-catchup-entries keeps (a follower behind it then catches up from a
    /// snapshot; a leader purges only what its followers have received). Waits a few
    /// seconds at most for each; a member that cannot, defragments with the log it has.
    async fn snapshot_and_purge(&self) {
        let Some(applied) = self.raft.metrics().borrow().last_applied else {
            return;
        };
        if self.raft.trigger().snapshot().await.is_err() {
            return;
        }
        let at = applied.index;
        let snapshotted = self
            .wait_raft("snapshot before defragment", |m| {
                m.snapshot.is_some_and(|s| s.index >= at)
            })
            .await;
        if !snapshotted || self.raft.trigger().purge_log(at).await.is_err() {
            return;
        }
        self.wait_raft("purge before defragment", |m| {
            m.purged.is_some_and(|p| p.index >= at)
        })
        .await;
    }

    /// Wait up to 10 s for raft's metrics to satisfy `done`; whether they did.
    async fn wait_raft(
        &self,
        what: &str,
        done: impl Fn(&openraft::RaftMetrics<u64, crate::raft::MemberNode>) -> bool + Send,
    ) -> bool {
        self.raft
            .wait(Some(Duration::from_secs(10)))
            .metrics(done, what)
            .await
            .is_ok()
    }
}

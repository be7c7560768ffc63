//! Defragment (etcd: Maintenance.Defragment, backend.Defrag).

use std::time::Duration;

use super::error::{Error, Result};
use super::member::Member;

impl Member {
    /// etcd's defragment: the backend is rewritten into a fresh database that takes the
    /// old one's place (storage/defrag.rs); reads and writes wait meanwhile, as in etcd.
    /// The raft log shares the database (etcd keeps it in its WAL, outside the quota), so
    /// a snapshot is taken first and raft purges the log behind it that
    /// --snapshot-catchup-entries lets go.
    pub async fn defragment(&self) -> Result<()> {
        self.snapshot_and_purge().await;
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || backend.defragment())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Snapshot at the applied index and wait (a few seconds at most) for raft to purge
    /// the log behind it; a member that cannot, defragments with the log it has.
    async fn snapshot_and_purge(&self) {
        let Some(applied) = self.raft.metrics().borrow().last_applied else {
            return;
        };
        if self.raft.trigger().snapshot().await.is_err() {
            return;
        }
        let wait = self.raft.wait(Some(Duration::from_secs(10)));
        let keep = self.settings.snapshot_catchup_entries;
        let _ = wait
            .metrics(
                |m| {
                    m.snapshot.is_some_and(|s| s.index >= applied.index)
                        && m.purged.map_or(0, |p| p.index + 1) + keep > applied.index
                },
                "snapshot and purge before defragment",
            )
            .await;
    }
}

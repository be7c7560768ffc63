//! The corruption check (etcd: etcdserver/corrupt.go): members compare their HashKV.
//!
//! - Initial (`--experimental-initial-corrupt-check`): before it serves, a member hashes
//!   its store at its current revision and asks every peer for its hash at that revision.
//!   A peer with the same compacted revision and another hash means this member's data
//!   differs from the cluster's: the start fails with etcd's "found data inconsistency
//!   with peers". A peer that is behind, compacted past the revision or unreachable is
//!   logged and skipped, as in etcd.
//! - Periodic (`--corrupt-check-time`): the leader hashes, asks its followers at its
//!   revision, confirms it still leads, and hashes again. It raises CORRUPT (through the
//!   log, so every member then refuses writes) for the first member found wrong: itself
//!   if its own two hashes of one revision differ; a follower ahead of it in revision or
//!   compaction; or a follower with the leader's compacted revision and another hash.
//!
//! The peers answer over the peer link (`Peer.HashKv`, etcd's `/members/hashkv`).

use std::sync::Arc;
use std::time::Duration;

use super::error::{Error, Result};
use super::member::Member;
use crate::mvcc::hash::KvHash;
use crate::proto::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest, AlarmType};
use crate::raft::{MemberNode, PeerHash};

/// One peer's answer (etcd: peerHashKVResp); `Err` holds why there is none.
struct PeerAnswer {
    id: u64,
    urls: Vec<String>,
    answer: std::result::Result<PeerHash, String>,
}

fn hex(id: u64) -> String {
    format!("{id:x}")
}

impl Member {
    /// etcd's ReqTimeout, as for any request.
    fn check_timeout(&self) -> Duration {
        super::member::request_timeout(self.settings.election_timeout_ms)
    }

    /// Every other member's HashKV at `rev`, asked at once.
    async fn peer_hashes(&self, rev: i64) -> Vec<PeerAnswer> {
        let peers: Vec<(u64, MemberNode)> = self
            .state
            .membership()
            .membership()
            .nodes()
            .filter(|(id, _)| **id != self.member_id)
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        let timeout = self.check_timeout();
        let net = self.link.network();
        let asks = peers.into_iter().map(|(id, node)| async move {
            let answer = net
                .hash_kv(id, &node, rev, timeout)
                .await
                .map_err(|e| e.to_string());
            PeerAnswer {
                id,
                urls: node.peer_urls,
                answer,
            }
        });
        futures::future::join_all(asks).await
    }

    /// etcd's InitialCheck: fails the start when a peer at the same compacted revision
    /// has another hash at this member's revision.
    pub(super) async fn initial_corrupt_check(&self) -> Result<()> {
        let me = hex(self.member_id);
        tracing::info!(
            local_member_id = %me,
            timeout = ?self.check_timeout(),
            "starting initial corruption check"
        );
        let h = self.hash_kv(0).await?;
        let mut mismatch = 0;
        for p in self.peer_hashes(h.hash_rev).await {
            let peer = hex(p.id);
            match p.answer {
                Ok(PeerHash::Hash(r)) => {
                    if r.hash == h.hash {
                        continue;
                    }
                    let peer_rev = r.header.as_ref().map_or(0, |h| h.revision);
                    let same_compaction = r.compact_revision == h.compact_rev;
                    if same_compaction {
                        mismatch += 1;
                    }
                    tracing::warn!(
                        local_member_id = %me,
                        local_member_revision = h.hash_rev,
                        local_member_compact_revision = h.compact_rev,
                        local_member_hash = h.hash,
                        remote_peer_id = %peer,
                        remote_peer_endpoints = ?p.urls,
                        remote_peer_revision = peer_rev,
                        remote_peer_compact_revision = r.compact_revision,
                        remote_peer_hash = r.hash,
                        "{}",
                        if same_compaction {
                            "found different hash values from remote peer"
                        } else {
                            "found different compact revision values from remote peer"
                        }
                    );
                }
                Ok(PeerHash::FutureRev) => tracing::warn!(
                    local_member_id = %me,
                    local_member_revision = h.hash_rev,
                    remote_peer_id = %peer,
                    remote_peer_endpoints = ?p.urls,
                    "cannot fetch hash from slow remote peer"
                ),
                Ok(PeerHash::Compacted) => tracing::warn!(
                    local_member_id = %me,
                    local_member_revision = h.hash_rev,
                    remote_peer_id = %peer,
                    remote_peer_endpoints = ?p.urls,
                    "cannot fetch hash from remote peer; local member is behind"
                ),
                Err(e) => tracing::warn!(
                    local_member_id = %me,
                    remote_peer_id = %peer,
                    remote_peer_endpoints = ?p.urls,
                    error = %e,
                    "failed hash kv request"
                ),
            }
        }
        if mismatch > 0 {
            return Err(Error::Internal(format!(
                "{me} found data inconsistency with peers"
            )));
        }
        tracing::info!(
            local_member_id = %me,
            "initial corruption checking passed; no corruption"
        );
        Ok(())
    }

    /// etcd's PeriodicCheck, on the leader: raises CORRUPT for the first member found
    /// wrong (see the module comment).
    async fn periodic_corrupt_check(&self) -> Result<()> {
        let h = self.hash_kv(0).await?;
        let peers = self.peer_hashes(h.hash_rev).await;
        tokio::time::timeout(self.check_timeout(), self.read_barrier())
            .await
            .map_err(|_| Error::Timeout)??;
        let h2 = self.hash_kv(0).await?;
        let culprit = culprit(self.member_id, &h, &h2, &peers);
        let checked = peers
            .iter()
            .filter(|p| matches!(p.answer, Ok(PeerHash::Hash(_))))
            .count();
        if let Some((id, why)) = culprit {
            tracing::warn!(
                member_id = %hex(id),
                leader_revision = h2.current_rev,
                leader_compact_revision = h2.compact_rev,
                leader_hash = h.hash,
                "{why}"
            );
            self.raise_corrupt(id).await;
        }
        tracing::info!(
            number_of_peers_checked = checked,
            "finished peer corruption check"
        );
        Ok(())
    }

    /// Raise CORRUPT for member `id` (etcd: triggerCorruptAlarm).
    async fn raise_corrupt(&self, id: u64) {
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: id,
            alarm: AlarmType::Corrupt as i32,
        };
        match self.alarm(raise).await {
            Ok(_) => tracing::error!(
                alarm = "CORRUPT",
                member_id = %hex(id),
                "raised corruption alarm"
            ),
            Err(e) => tracing::warn!(error = %e, "failed to raise the CORRUPT alarm"),
        }
    }

    /// Every `every`, while this member leads, the periodic check (etcd: monitorKVHash).
    pub(super) fn start_corrupt_monitor(self: &Arc<Self>, every: Duration) {
        tracing::info!(
            local_member_id = %hex(self.member_id),
            interval = ?every,
            "enabled corruption checking"
        );
        let weak = Arc::downgrade(self);
        let closing = self.closing();
        tokio::spawn(async move {
            tokio::pin!(closing);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = &mut closing => return,
                }
                let Some(member) = weak.upgrade() else { return };
                if member.leader() != Some(member.member_id) {
                    continue;
                }
                if let Err(e) = member.periodic_corrupt_check().await {
                    tracing::warn!(error = %e, "failed to check hash KV");
                }
            }
        });
    }
}

/// The member the periodic check finds wrong, and why; `None` when all agree. `h` and `h2`
/// are the leader's hashes before and after its leadership was confirmed.
fn culprit(
    leader: u64,
    h: &KvHash,
    h2: &KvHash,
    peers: &[PeerAnswer],
) -> Option<(u64, &'static str)> {
    if h2.hash != h.hash && h2.hash_rev == h.hash_rev && h2.compact_rev == h.compact_rev {
        return Some((leader, "found hash mismatch"));
    }
    for p in peers {
        let Ok(PeerHash::Hash(r)) = &p.answer else {
            continue;
        };
        let peer_rev = r.header.as_ref().map_or(0, |h| h.revision);
        if peer_rev > h2.current_rev {
            return Some((
                p.id,
                "revision from follower must be less than or equal to leader's",
            ));
        }
        if r.compact_revision > h2.compact_rev {
            return Some((
                p.id,
                "compact revision from follower must be less than or equal to leader's",
            ));
        }
        if r.compact_revision == h.compact_rev && r.hash != h.hash {
            return Some((p.id, "same compact revision then hashes must match"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{HashKvResponse, ResponseHeader};

    fn kv(hash: u32, rev: i64, compact: i64) -> KvHash {
        KvHash {
            hash,
            hash_rev: rev,
            current_rev: rev,
            compact_rev: compact,
        }
    }

    fn peer(id: u64, hash: u32, rev: i64, compact: i64) -> PeerAnswer {
        PeerAnswer {
            id,
            urls: vec![],
            answer: Ok(PeerHash::Hash(HashKvResponse {
                header: Some(ResponseHeader {
                    revision: rev,
                    ..Default::default()
                }),
                hash,
                compact_revision: compact,
                hash_revision: rev,
            })),
        }
    }

    #[test]
    fn agreeing_members_raise_nothing() {
        let h = kv(7, 10, 5);
        let peers = [peer(2, 7, 10, 5), peer(3, 9, 10, 3)];
        assert!(culprit(1, &h, &h, &peers).is_none());
    }

    #[test]
    fn each_of_etcds_mismatches_names_its_member() {
        let h = kv(7, 10, 5);
        // the leader's own two hashes of one revision differ
        assert_eq!(culprit(1, &h, &kv(8, 10, 5), &[]).map(|c| c.0), Some(1));
        // a follower ahead in revision, ahead in compaction, or another hash
        for p in [peer(2, 7, 11, 5), peer(2, 7, 10, 6), peer(2, 8, 10, 5)] {
            assert_eq!(culprit(1, &h, &h, &[p]).map(|c| c.0), Some(2));
        }
        // an unreachable peer is skipped; the next wrong one is named
        let gone = PeerAnswer {
            id: 2,
            urls: vec![],
            answer: Err("unreachable".into()),
        };
        let found = culprit(1, &h, &h, &[gone, peer(3, 8, 10, 5)]);
        assert_eq!(found.map(|c| c.0), Some(3));
    }
}

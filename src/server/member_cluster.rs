//! The member as a cluster member: leadership (has a leader, lost it, MoveLeader), raft
//! status, and the Cluster service's membership changes (etcd: etcdserver/server.go's
//! AddMember, RemoveMember, UpdateMember, PromoteMember, MoveLeader).

use std::time::Duration;

use super::{has_leader, request_timeout, Member, MemberRecord};
use crate::raft::member_change::Change;
use crate::server::error::{Error, Result};
use crate::server::ids;

impl Member {
    /// etcd's MoveLeader: hand leadership to voter `target` (see `move_leader`).
    pub async fn move_leader(&self, target: u64) -> Result<()> {
        let election = Duration::from_millis(self.settings.election_timeout_ms);
        let deadline = tokio::time::Instant::now() + request_timeout(election.as_millis() as u64);
        crate::server::move_leader::move_leader(
            &self.raft,
            self.link.network(),
            self.member_id,
            target,
            election,
            deadline,
        )
        .await
    }

    /// Whether this member knows a leader (etcd: `s.Leader() != None`). A leader that has
    /// not heard from a quorum for an election timeout counts as none: etcd's leader steps
    /// down then (CheckQuorum), openraft's does not.
    pub fn has_leader(&self) -> bool {
        has_leader(
            &self.raft.metrics().borrow(),
            self.member_id,
            self.settings.election_timeout_ms,
        )
    }

    /// Resolves once this member has found no leader at three checks an election timeout
    /// apart (etcd's monitorLeader, which then ends the streams of clients that require a
    /// leader).
    pub fn leader_lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let metrics = self.raft.metrics();
        let (me, election_ms) = (self.member_id, self.settings.election_timeout_ms);
        async move {
            let mut misses = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(election_ms)).await;
                if has_leader(&metrics.borrow(), me, election_ms) {
                    misses = 0;
                } else {
                    misses += 1;
                    if misses >= 3 {
                        return;
                    }
                }
            }
        }
    }

    /// Raft index and term of the last applied entry, and the db size.
    pub fn raft_status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow().clone();
        RaftStatus {
            leader: m.current_leader.unwrap_or(0),
            term: m.current_term,
            index: m.last_log_index.unwrap_or(0),
            applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            db_size: self.backend.size(),
        }
    }

    async fn member_change(&self, change: Change) -> Result<u64> {
        let deadline =
            tokio::time::Instant::now() + request_timeout(self.settings.election_timeout_ms);
        let removes_me = change == Change::Remove(self.member_id);
        let id = self
            .link
            .member_change(change, self.settings.reconfig, deadline)
            .await?;
        // Answer with the member list as it is after the change.
        if removes_me {
            // This member (the leader that made the change) is out of the cluster: no
            // leader answers its read barrier any more, but its own log has the change.
            let last = self.raft.metrics().borrow().last_log_index;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.raft
                .wait(Some(left))
                .applied_index_at_least(last, "own removal")
                .await
                .map_err(|_| Error::Timeout)?;
        } else {
            self.read_barrier().await?;
        }
        Ok(id)
    }

    /// etcd's MemberAdd: the new member (its name is empty until it publishes it).
    pub async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<MemberRecord> {
        // etcd: the id is sha1 of the peer URLs and the time the request was taken.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let id = ids::member_id(&peer_urls, &now.to_string());
        let change = Change::Add {
            id,
            peer_urls: peer_urls.clone(),
            is_learner,
        };
        self.member_change(change).await?;
        Ok(MemberRecord {
            id,
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
            is_learner,
        })
    }

    pub async fn member_remove(&self, id: u64) -> Result<()> {
        self.member_change(Change::Remove(id)).await.map(|_| ())
    }

    pub async fn member_update(&self, id: u64, peer_urls: Vec<String>) -> Result<()> {
        self.member_change(Change::Update { id, peer_urls })
            .await
            .map(|_| ())
    }

    pub async fn member_promote(&self, id: u64) -> Result<()> {
        self.member_change(Change::Promote(id)).await.map(|_| ())
    }

    /// Whether any member has raised `alarm` (the applied alarms, as /readyz reads them).
    pub fn alarm_raised(&self, alarm: crate::proto::etcdserverpb::AlarmType) -> bool {
        self.state
            .alarms
            .lock()
            .expect("alarms lock")
            .is_raised(alarm)
    }

    /// Every raised alarm (etcd's AlarmStore.Get(NONE)).
    pub fn alarms(&self) -> Vec<crate::proto::etcdserverpb::AlarmMember> {
        self.state
            .alarms
            .lock()
            .expect("alarms lock")
            .get(crate::proto::etcdserverpb::AlarmType::None as i32)
    }

    /// Whether this member is a learner (its replicated member record says so).
    pub fn is_learner(&self) -> bool {
        self.state
            .members
            .read()
            .expect("members lock")
            .get(self.member_id)
            .is_some_and(|m| m.is_learner)
    }

    /// The cluster version etcd reports beside the server's: `major.minor.0` of
    /// `--experimental-report-version` (etcd's /version `etcdcluster`, the snapshot's
    /// `clusterVersion`).
    pub fn cluster_version(&self) -> String {
        let mut parts = self.settings.report_version.split('.');
        format!(
            "{}.{}.0",
            parts.next().unwrap_or("3"),
            parts.next().unwrap_or("5")
        )
    }

    /// Every member of the cluster, from the replicated member records.
    pub fn members(&self) -> Vec<MemberRecord> {
        self.state.members.read().expect("members lock").list()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RaftStatus {
    pub leader: u64,
    pub term: u64,
    pub index: u64,
    pub applied: u64,
    pub db_size: u64,
}

//! The raft log and hard state in the backend (trees `raft_log` and `raft_meta`).
//!
//! To ensure correctness:
//! - `append` reports entries flushed only after the fsync that covers them: one fsync per
//!   append call (`sync_log`: the state machine's writes are not waited for, the log
//!   replays them). Group commit happens above (`server::propose` packs concurrent commands
//!   into one entry), because openraft 0.9 appends client writes one at a time.
//! - A vote is durable before `save_vote` returns.
//! - The committed log id is not saved (openraft's default): saving it would cost a sled
//!   write per commit for nothing a single restart needs, since committed entries past
//!   `last_applied` are applied again once the member leads or hears from the leader.
//! - Purge records the purged log id before deleting entries, so there is never a hole.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::Bytes;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend};

use super::codec;
use super::recent_entries::RecentEntries;
use super::types::{Entry, LogId, Membership, NodeId, StorageError, TypeConfig, Vote};
use crate::storage::{schema, Backend, Tree, WriteBatch};

/// Failpoint: `--force-new-cluster` has stored its vote, not yet its membership entry.
pub const FAILPOINT_FORCE_AFTER_VOTE: &str = "raft_force_new_cluster_after_vote";

#[derive(Clone)]
pub struct LogStore {
    backend: Arc<dyn Backend>,
    /// The newest entries as appended, shared by every clone (the log reader's too).
    recent: Arc<RecentEntries>,
}

fn index_key(index: u64) -> Bytes {
    Bytes::copy_from_slice(&index.to_be_bytes())
}

pub(crate) fn io_err(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    StorageError::from_io_error(subject, verb, std::io::Error::other(e.to_string()))
}

impl LogStore {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            recent: Arc::new(RecentEntries::default()),
        }
    }

    fn meta(&self, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        self.backend
            .get(Tree::RaftMeta, key)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))
    }

    fn put_meta(&self, key: &'static [u8], v: Vec<u8>) -> Result<(), StorageError> {
        let mut b = WriteBatch::default();
        b.put(Bytes::from_static(key), v);
        self.backend
            .write(Tree::RaftMeta, b)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    fn remove_range(&self, start: u64, end: Option<u64>) -> Result<(), StorageError> {
        let end_key = end.map(index_key).unwrap_or_default();
        let found = self
            .backend
            .range(Tree::RaftLog, &index_key(start), &end_key, 0)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        let mut b = WriteBatch::default();
        for (k, _) in found {
            b.remove(k);
        }
        self.backend
            .write(Tree::RaftLog, b)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

impl LogStore {
    /// The last purged and the last log id (the purged one when the log is empty).
    fn log_state(&self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = match self.meta(schema::RAFT_PURGED)? {
            Some(v) => Some(codec::decode_log_id(&v)?),
            None => None,
        };
        let last = self
            .backend
            .last(Tree::RaftLog)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        let last_log_id = match last {
            Some((_, v)) => Some(codec::decode_entry(&v)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    /// `--force-new-cluster` (etcd: restartAsStandaloneNode): make this member the only
    /// voter of its cluster, keeping its data. A membership entry naming only `me` is
    /// appended after the last log entry, in a new term this member has voted for, so
    /// raft starts with one voter, elects it and commits the entry. `current` is the
    /// latest membership the member knows (log or state machine), for `me`'s node record.
    /// Returns false (nothing done) on a data dir with no log and no membership.
    pub fn force_single_voter(
        &self,
        me: NodeId,
        current: Option<&Membership>,
    ) -> Result<bool, StorageError> {
        let state = self.log_state()?;
        // The latest membership: in the log, else the state machine's.
        let in_log = match state.last_log_id {
            Some(_) => self
                .backend
                .range(Tree::RaftLog, &[], &[], 0)
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?
                .iter()
                .rev()
                .map(|(_, v)| codec::decode_entry(v))
                .find_map(|e| match e {
                    Ok(Entry {
                        payload: openraft::EntryPayload::Membership(m),
                        ..
                    }) => Some(Ok(m)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .transpose()?,
            None => None,
        };
        let Some(membership) = in_log.as_ref().or(current) else {
            return Ok(false);
        };
        let node = membership.get_node(&me).cloned().unwrap_or_default();
        let last_id = state.last_log_id;
        let vote = match self.meta(schema::RAFT_VOTE)? {
            Some(v) => Some(codec::decode_vote(&v)?),
            None => None,
        };
        let term = vote
            .map(|v| v.leader_id().term)
            .into_iter()
            .chain(last_id.map(|l| l.leader_id.term))
            .max()
            .unwrap_or(0)
            + 1;
        let index = last_id.map_or(0, |l| l.index + 1);
        let alone = Membership::new(
            vec![std::collections::BTreeSet::from([me])],
            std::collections::BTreeMap::from([(me, node)]),
        );
        let entry = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(term, me), index),
            payload: openraft::EntryPayload::Membership(alone),
        };
        // The vote first, durable, then the entry: a crash in between leaves only a vote
        // in a higher term, which raft accepts as it is; never an entry of a term above
        // the stored vote.
        self.put_meta(schema::RAFT_VOTE, codec::encode_vote(&Vote::new(term, me)))?;
        self.backend
            .flush()
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        crate::failpoint::hit(FAILPOINT_FORCE_AFTER_VOTE)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        let mut b = WriteBatch::default();
        b.put(index_key(index), codec::encode_entry(&entry));
        self.recent.clear();
        self.backend
            .write(Tree::RaftLog, b)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        self.backend
            .flush()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        Ok(true)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => index_key(e + 1),
            Bound::Excluded(e) => index_key(*e),
            Bound::Unbounded => Bytes::new(),
        };
        let end_index = match range.end_bound() {
            Bound::Included(e) => Some(e + 1),
            Bound::Excluded(e) => Some(*e),
            Bound::Unbounded => None,
        };
        if let Some(held) = end_index.and_then(|end| self.recent.get(start, end)) {
            return Ok(held);
        }
        let found = self
            .backend
            .range(Tree::RaftLog, &index_key(start), &end, 0)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        found.iter().map(|(_, v)| codec::decode_entry(v)).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.log_state()
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(schema::RAFT_VOTE, codec::encode_vote(vote))?;
        self.backend
            .sync_log()
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        match self.meta(schema::RAFT_VOTE)? {
            Some(v) => codec::decode_vote(&v).map(Some),
            None => Ok(None),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = WriteBatch::default();
        let mut written = Vec::new();
        for e in entries {
            let bytes = codec::encode_entry(&e);
            let n = bytes.len();
            b.put(index_key(e.log_id.index), bytes);
            written.push((e, n));
        }
        if let Err(e) = self.backend.write(Tree::RaftLog, b) {
            // What reached the backend is unknown: read it back from there from now on.
            self.recent.clear();
            return Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, e));
        }
        self.recent.appended(written);
        // openraft 0.9's core waits for this callback before it goes on, so the fsync is
        // made here rather than handed to another thread: one fewer wake-up per batch.
        let res = self
            .backend
            .sync_log()
            .map_err(|e| std::io::Error::other(e.to_string()));
        let failed = res
            .as_ref()
            .err()
            .map(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e));
        callback.log_io_completed(res);
        failed.map_or(Ok(()), Err)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.recent.truncated(log_id.index);
        self.remove_range(log_id.index, None)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.put_meta(schema::RAFT_PURGED, codec::encode_log_id(&log_id))?;
        self.recent.purged(log_id.index);
        self.remove_range(0, Some(log_id.index + 1))
    }
}

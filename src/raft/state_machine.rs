//! The raft state machine: committed entries -> [`Applier`] -> one backend batch.
//!
//! To ensure correctness:
//! - all entries handed to one `apply` call, with `last_applied` and the membership, are
//!   written in one atomic batch, so a restart resumes exactly after the last applied entry;
//! - readers hold the store's read lock and so never see half of a batch;
//! - events are handed to the watch hub after the batch is written, and handing them over
//!   never waits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, SnapshotMeta as OSnapshotMeta,
};

use super::codec;
use super::log_store::io_err;
use super::snapshot_io::{self, Captured};
use super::snapshotter::{SnapFile, Snapshotter};
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::alarm::AlarmStore;
use crate::apply::{Applied, Applier, FORMAT_VERSION};
use crate::auth::{AuthStore, Tokens};
use crate::lease::Lessor;
use crate::membership::Members;
use crate::mvcc::hash::KvHash;
use crate::mvcc::{KvStore, WatchableStore};
use crate::storage::{schema, Backend, Tree, WriteBatch};

/// State shared between the state machine and the readers above it.
pub struct SharedState {
    pub kv: Arc<RwLock<KvStore>>,
    /// The lease table; locked after `kv` when both are needed.
    pub leases: Mutex<Lessor>,
    /// The member records (etcd's `members` bucket); locked after `leases`.
    pub members: RwLock<Members>,
    /// Raised alarms; locked after `members`.
    pub alarms: Mutex<AlarmStore>,
    /// Users, roles and permissions; locked after `alarms`.
    pub auth: RwLock<AuthStore>,
    applied: RwLock<(Option<LogId>, StoredMembership)>,
    backend: Arc<dyn Backend>,
    watch: RwLock<Option<Arc<WatchableStore>>>,
    snapshotter: Snapshotter,
    /// The file a snapshot is being received into.
    incoming: Mutex<Option<PathBuf>>,
    /// Requests applied since the last snapshot was taken (etcd's --snapshot-count counts
    /// these, not log entries: a group-committed entry holds many).
    applied_requests: AtomicU64,
    /// Rung when `applied_requests` reaches `snapshot_count`; the member then asks raft
    /// for a snapshot.
    pub snapshot_due: tokio::sync::Notify,
    snapshot_count: u64,
}

#[derive(Clone)]
pub struct StateMachine {
    pub shared: Arc<SharedState>,
}

impl SharedState {
    /// Where applied events go (never waits: see `WatchableStore::publish`).
    pub fn set_watchable_store(&self, ws: Arc<WatchableStore>) {
        *self.watch.write().expect("watch lock") = Some(ws);
    }

    pub fn membership(&self) -> StoredMembership {
        self.applied.read().expect("applied lock").1.clone()
    }

    /// The log id of the last applied entry and its leader's term, if any.
    pub fn last_applied(&self) -> Option<LogId> {
        self.applied.read().expect("applied lock").0
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// etcd's HashKV at `rev` (0: the current revision), for Maintenance.HashKV and the
    /// peers' corruption check: planned under the kv lock, scanned on a blocking thread
    /// without it. `compact_rev` is -1 before any compaction, as etcd's.
    pub async fn hash_kv(&self, rev: i64) -> Result<KvHash, crate::mvcc::Error> {
        let plan = self.kv.read().expect("kv lock").hash_plan(rev)?;
        let mut h = tokio::task::spawn_blocking(move || plan.run())
            .await
            .map_err(|e| crate::storage::Error::Io(format!("hash task: {e}")))??;
        if h.compact_rev == 0 {
            h.compact_rev = -1;
        }
        Ok(h)
    }
}

impl StateMachine {
    /// Open the state machine of `backend`, with its snapshots in `snap_dir`. An install
    /// that a crash interrupted is finished first.
    pub fn open(
        backend: Arc<dyn Backend>,
        min_lease_ttl: i64,
        snap_dir: PathBuf,
        snapshot_count: u64,
    ) -> Result<Self, StorageError> {
        let snapshotter = Snapshotter::open(snap_dir).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        snapshot_io::recover(&*backend, &snapshotter).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        check_format(&*backend)?;
        let mut kv = KvStore::open(backend.clone())
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
        let mut leases = Lessor::new(min_lease_ttl);
        restore_leases(&*backend, &mut kv, &mut leases)?;
        let (members, alarms) = restore_cluster(&*backend)?;
        let auth = restore_auth(&*backend, Arc::new(Tokens::default()))?;
        let (last_applied, membership) = restore_applied(&*backend)?;
        Ok(Self {
            shared: Arc::new(SharedState {
                kv: Arc::new(RwLock::new(kv)),
                leases: Mutex::new(leases),
                members: RwLock::new(members),
                alarms: Mutex::new(alarms),
                auth: RwLock::new(auth),
                applied: RwLock::new((last_applied, membership)),
                backend,
                watch: RwLock::new(None),
                snapshotter,
                incoming: Mutex::new(None),
                applied_requests: AtomicU64::new(0),
                snapshot_due: tokio::sync::Notify::new(),
                snapshot_count: snapshot_count.max(1),
            }),
        })
    }
}

/// Requests in a command, a batch counting each of its own.
fn requests_in(cmd: &crate::apply::Command) -> u64 {
    match &cmd.request {
        Some(crate::apply::Request::Batch(b)) => b.requests.iter().map(requests_in).sum(),
        _ => 1,
    }
}

fn snapshot_meta(snap: &SnapFile) -> SnapshotMeta {
    OSnapshotMeta {
        last_log_id: snap.header.last_log_id.as_ref().map(codec::log_id_from_pb),
        last_membership: codec::stored_membership_from_pb(
            snap.header.last_membership.clone().unwrap_or_default(),
        ),
        snapshot_id: snap.header.snapshot_id.clone(),
    }
}

fn open_snapshot(snap: SnapFile) -> Snapshot {
    // The file was opened when the snapshot was found: a newer commit may have removed
    // its name since.
    Snapshot {
        meta: snapshot_meta(&snap),
        snapshot: Box::new(tokio::fs::File::from_std(snap.file)),
    }
}

/// Rebuild every in-memory table from the state tree (after an install).
fn reload(shared: &SharedState, kv: &mut KvStore) -> Result<(), StorageError> {
    kv.reload().map_err(|e| sm_err(ErrorVerb::Read, e))?;
    restore_leases(
        &**shared.backend(),
        kv,
        &mut shared.leases.lock().expect("leases lock"),
    )?;
    let (members, alarms) = restore_cluster(&**shared.backend())?;
    *shared.members.write().expect("members lock") = members;
    *shared.alarms.lock().expect("alarms lock") = alarms;
    {
        let mut auth = shared.auth.write().expect("auth lock");
        let tokens = auth.tokens().clone();
        *auth = restore_auth(&**shared.backend(), tokens)?;
    }
    *shared.applied.write().expect("applied lock") = restore_applied(&**shared.backend())?;
    Ok(())
}

/// The state tree is in this build's format: a new tree is stamped with it, and a tree in
/// another format (or an unstamped one from before formats were versioned) is refused.
fn check_format(backend: &dyn Backend) -> Result<(), StorageError> {
    let read = |key: &[u8]| {
        backend
            .get(Tree::State, key)
            .map_err(|e| sm_err(ErrorVerb::Read, e))
    };
    match read(schema::META_FORMAT)? {
        Some(v) if v.as_ref() == [FORMAT_VERSION] => Ok(()),
        Some(v) => Err(sm_err(
            ErrorVerb::Read,
            format!("the data dir is in format {v:?}; this build reads format {FORMAT_VERSION}"),
        )),
        None if read(schema::META_LAST_APPLIED)?.is_some() => Err(sm_err(
            ErrorVerb::Read,
            "the data dir was written by a metastore from before versioned formats",
        )),
        None => {
            let mut b = WriteBatch::default();
            b.put(
                Bytes::from_static(schema::META_FORMAT),
                vec![FORMAT_VERSION],
            );
            backend
                .write(Tree::State, b)
                .map_err(|e| sm_err(ErrorVerb::Write, e))
        }
    }
}

/// The membership the state machine last applied, if any (`--force-new-cluster` reads it
/// when the log no longer holds a membership entry).
pub fn applied_membership(
    backend: &dyn Backend,
) -> Result<Option<super::types::Membership>, StorageError> {
    let (_, stored) = restore_applied(backend)?;
    let m = stored.membership().clone();
    let known = m.nodes().next().is_some();
    Ok(known.then_some(m))
}

fn restore_applied(
    backend: &dyn Backend,
) -> Result<(Option<LogId>, StoredMembership), StorageError> {
    let read = |key: &[u8]| {
        backend
            .get(Tree::State, key)
            .map_err(|e| sm_err(ErrorVerb::Read, e))
    };
    let last_applied = match read(schema::META_LAST_APPLIED)? {
        Some(v) => Some(codec::decode_log_id(&v)?),
        None => None,
    };
    let membership = match read(schema::META_MEMBERSHIP)? {
        Some(v) => codec::decode_stored_membership(&v)?,
        None => StoredMembership::default(),
    };
    Ok((last_applied, membership))
}

fn prefixed(backend: &dyn Backend, prefix: u8) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
    backend
        .range(Tree::State, &[prefix], &[prefix + 1], 0)
        .map_err(|e| sm_err(ErrorVerb::Read, e))
}

/// The member records and alarms, from the state tree.
fn restore_cluster(backend: &dyn Backend) -> Result<(Members, AlarmStore), StorageError> {
    let mut members = Members::restore(prefixed(backend, schema::MEMBER)?)
        .map_err(|e| sm_err(ErrorVerb::Read, e))?;
    let downgrade = backend
        .get(Tree::State, schema::META_DOWNGRADE)
        .map_err(|e| sm_err(ErrorVerb::Read, e))?;
    members
        .restore_downgrade(downgrade.as_deref())
        .map_err(|e| sm_err(ErrorVerb::Read, e))?;
    let alarms = AlarmStore::restore(
        prefixed(backend, schema::ALARM)?
            .into_iter()
            .map(|(k, _)| k),
    );
    Ok((members, alarms))
}

/// The auth store from its records; the member's tokens carry over.
fn restore_auth(backend: &dyn Backend, tokens: Arc<Tokens>) -> Result<AuthStore, StorageError> {
    AuthStore::restore(prefixed(backend, schema::AUTH)?, tokens)
        .map_err(|e| sm_err(ErrorVerb::Read, e))
}

/// Rebuild the lease table from its records and re-attach the live keys that carry a lease.
fn restore_leases(
    backend: &dyn Backend,
    kv: &mut KvStore,
    leases: &mut Lessor,
) -> Result<(), StorageError> {
    leases
        .restore(prefixed(backend, schema::LEASE)?)
        .map_err(|e| sm_err(ErrorVerb::Read, e))?;
    for (key, id) in kv.take_restored_leases() {
        leases.attach(&key, id);
    }
    Ok(())
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    io_err(ErrorSubject::StateMachine, verb, e)
}

impl StateMachine {
    /// The path of a whole received snapshot. openraft writes what it receives into the
    /// file `begin_receiving_snapshot` handed out; a caller may hand over another snapshot
    /// object instead (openraft's test suite does), which is then copied into a new file.
    async fn received_file(&self, mut file: tokio::fs::File) -> Result<PathBuf, StorageError> {
        use std::os::unix::fs::MetadataExt;
        use tokio::io::AsyncWriteExt;
        let err = |e: std::io::Error| sm_err(ErrorVerb::Write, e);
        file.flush().await.map_err(err)?;
        let ours = self.shared.incoming.lock().expect("incoming lock").take();
        let handed = file.metadata().await.map_err(err)?;
        if let Some(path) = ours {
            match std::fs::metadata(&path) {
                Ok(m) if (m.dev(), m.ino()) == (handed.dev(), handed.ino()) => return Ok(path),
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let (path, copy) = self
            .shared
            .snapshotter
            .create_incoming()
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let mut copy = tokio::fs::File::from_std(copy);
        tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(0))
            .await
            .map_err(err)?;
        tokio::io::copy(&mut file, &mut copy).await.map_err(err)?;
        copy.flush().await.map_err(err)?;
        Ok(path)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let a = self.shared.applied.read().expect("applied lock");
        Ok((a.0, a.1.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let shared = &self.shared;
        let (mut last_applied, mut membership) =
            shared.applied.read().expect("applied lock").clone();
        let mut results = Vec::new();
        let mut published = Vec::new();
        let mut membership_changed = false;
        let mut requests = 0u64;
        {
            let mut kv = shared.kv.write().expect("kv lock");
            let mut leases = shared.leases.lock().expect("leases lock");
            let mut members = shared.members.write().expect("members lock");
            let mut alarms = shared.alarms.lock().expect("alarms lock");
            let mut auth = shared.auth.write().expect("auth lock");
            let mut batch = WriteBatch::default();
            for entry in entries {
                last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => results.push(Applied::None),
                    EntryPayload::Normal(cmd) => {
                        requests += requests_in(&cmd);
                        let started = std::time::Instant::now();
                        let out = Applier {
                            kv: &mut kv,
                            leases: &mut leases,
                            members: &mut members,
                            alarms: &mut alarms,
                            auth: &mut auth,
                            batch: &mut batch,
                        }
                        .apply(cmd)
                        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                        // etcd's warnApplyDuration
                        if started.elapsed() > std::time::Duration::from_millis(100) {
                            crate::metrics::SLOW_APPLY.inc();
                        }
                        for (rev, events) in out.events {
                            published.push((rev, Arc::new(events)));
                        }
                        results.push(out.applied);
                    }
                    EntryPayload::Membership(m) => {
                        members.set_config(codec::member_records(&m), &mut batch);
                        membership = StoredMembership::new(Some(entry.log_id), m);
                        membership_changed = true;
                        requests += 1;
                        results.push(Applied::None);
                    }
                }
            }
            if let Some(l) = &last_applied {
                batch.put(
                    Bytes::from_static(schema::META_LAST_APPLIED),
                    codec::encode_log_id(l),
                );
            }
            if membership_changed {
                batch.put(
                    Bytes::from_static(schema::META_MEMBERSHIP),
                    codec::encode_stored_membership(&membership),
                );
            }
            shared
                .backend
                .write(Tree::State, batch)
                .map_err(|e| sm_err(ErrorVerb::Write, e))?;
            kv.batch_written();
            *shared.applied.write().expect("applied lock") = (last_applied, membership);
        }
        let since = shared
            .applied_requests
            .fetch_add(requests, Ordering::Relaxed)
            + requests;
        if since >= shared.snapshot_count && since - requests < shared.snapshot_count {
            shared.snapshot_due.notify_one();
        }
        if !published.is_empty() {
            if let Some(ws) = shared.watch.read().expect("watch lock").as_ref() {
                for (rev, events) in published {
                    ws.publish(rev, events);
                }
            }
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let (path, file) = self
            .shared
            .snapshotter
            .create_incoming()
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        *self.shared.incoming.lock().expect("incoming lock") = Some(path);
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let incoming = self.received_file(*snapshot).await?;
        let shared = self.shared.clone();
        let expected = meta.last_log_id;
        tokio::task::spawn_blocking(move || {
            // Readers wait for the whole install: they see the old state or the new one.
            let mut kv = shared.kv.write().expect("kv lock");
            snapshot_io::install(
                &**shared.backend(),
                &shared.snapshotter,
                &incoming,
                expected,
            )
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
            reload(&shared, &mut kv)
        })
        .await
        .map_err(|e| sm_err(ErrorVerb::Write, e))??;
        self.shared.applied_requests.store(0, Ordering::Relaxed);
        tracing::info!(
            incoming_leader_snapshot_index = expected.map(|l| l.index),
            snapshot_id = %meta.snapshot_id,
            "applied incoming snapshot"
        );
        // The store jumped to the snapshot's revision: every watcher catches up from it.
        if let Some(ws) = self.shared.watch.read().expect("watch lock").as_ref() {
            ws.resync_all();
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let latest = self
            .shared
            .snapshotter
            .latest()
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        match latest {
            Some(snap) => Ok(Some(open_snapshot(snap))),
            None => Ok(None),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let shared = self.shared.clone();
        let snap = tokio::task::spawn_blocking(move || {
            let (captured, gate) = {
                // Under the kv lock only long enough to note the applied index and copy
                // the small prefixes; the key versions are streamed without it.
                let kv = shared.kv.read().expect("kv lock");
                let (applied, membership) = shared.applied.read().expect("applied lock").clone();
                shared.applied_requests.store(0, Ordering::Relaxed);
                let captured =
                    Captured::take(&**shared.backend(), applied, membership, kv.current_rev())
                        .map_err(|e| sm_err(ErrorVerb::Read, e))?;
                (captured, kv.compaction_gate())
            };
            let snap =
                snapshot_io::build(&**shared.backend(), &shared.snapshotter, &gate, captured)
                    .map_err(|e| sm_err(ErrorVerb::Write, e))?;
            // The log is purged up to the snapshot once this returns: what was applied up
            // to it must be durable first (the state tree's writes may be held in memory).
            shared
                .backend()
                .flush()
                .map_err(|e| sm_err(ErrorVerb::Write, e))?;
            Ok::<_, StorageError>(snap)
        })
        .await
        .map_err(|e| sm_err(ErrorVerb::Write, e))??;
        Ok(open_snapshot(snap))
    }
}

//! The raft state machine: committed entries -> [`Applier`] -> one backend batch.
//!
//! To ensure correctness:
//! - all entries handed to one `apply` call, with `last_applied` and the membership, are
//!   written in one atomic batch, so a restart resumes exactly after the last applied entry;
//! - readers hold the store's read lock and so never see half of a batch;
//! - events are handed to the watch hub after the batch is written, and handing them over
//!   never waits.

use std::io::Cursor;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, SnapshotMeta as OSnapshotMeta,
};

use super::codec;
use super::log_store::io_err;
use super::snapshot;
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::alarm::AlarmStore;
use crate::apply::{Applied, Applier, FORMAT_VERSION};
use crate::lease::Lessor;
use crate::membership::Members;
use crate::mvcc::{KvStore, WatchableStore};
use crate::proto::metastorepb::SnapshotHeader;
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
    applied: RwLock<(Option<LogId>, StoredMembership)>,
    snapshot: RwLock<Option<StoredSnapshot>>,
    backend: Arc<dyn Backend>,
    watch: RwLock<Option<Arc<WatchableStore>>>,
}

#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
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

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
}

impl StateMachine {
    pub fn open(backend: Arc<dyn Backend>, min_lease_ttl: i64) -> Result<Self, StorageError> {
        check_format(&*backend)?;
        let mut kv = KvStore::open(backend.clone())
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
        let mut leases = Lessor::new(min_lease_ttl);
        restore_leases(&*backend, &mut kv, &mut leases)?;
        let (members, alarms) = restore_cluster(&*backend)?;
        let (last_applied, membership) = restore_applied(&*backend)?;
        Ok(Self {
            shared: Arc::new(SharedState {
                kv: Arc::new(RwLock::new(kv)),
                leases: Mutex::new(leases),
                members: RwLock::new(members),
                alarms: Mutex::new(alarms),
                applied: RwLock::new((last_applied, membership)),
                snapshot: RwLock::new(None),
                backend,
                watch: RwLock::new(None),
            }),
        })
    }
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
    let members = Members::restore(prefixed(backend, schema::MEMBER)?)
        .map_err(|e| sm_err(ErrorVerb::Read, e))?;
    let alarms = AlarmStore::restore(
        prefixed(backend, schema::ALARM)?
            .into_iter()
            .map(|(k, _)| k),
    );
    Ok((members, alarms))
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
        {
            let mut kv = shared.kv.write().expect("kv lock");
            let mut leases = shared.leases.lock().expect("leases lock");
            let mut members = shared.members.write().expect("members lock");
            let mut alarms = shared.alarms.lock().expect("alarms lock");
            let mut batch = WriteBatch::default();
            for entry in entries {
                last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => results.push(Applied::None),
                    EntryPayload::Normal(cmd) => {
                        let out = Applier {
                            kv: &mut kv,
                            leases: &mut leases,
                            members: &mut members,
                            alarms: &mut alarms,
                            batch: &mut batch,
                        }
                        .apply(cmd)
                        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                        for (rev, events) in out.events {
                            published.push((rev, Arc::new(events)));
                        }
                        results.push(out.applied);
                    }
                    EntryPayload::Membership(m) => {
                        members.set_config(codec::member_records(&m), &mut batch);
                        membership = StoredMembership::new(Some(entry.log_id), m);
                        membership_changed = true;
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let mut reader =
            snapshot::Reader::new(data.as_slice()).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let mut batch = WriteBatch::default();
        while let Some((k, v)) = reader
            .next_record()
            .map_err(|e| sm_err(ErrorVerb::Read, e))?
        {
            batch.put(k, v);
        }
        if let Some(l) = &meta.last_log_id {
            batch.put(
                Bytes::from_static(schema::META_LAST_APPLIED),
                codec::encode_log_id(l),
            );
        }
        batch.put(
            Bytes::from_static(schema::META_MEMBERSHIP),
            codec::encode_stored_membership(&meta.last_membership),
        );
        let shared = &self.shared;
        let mut kv = shared.kv.write().expect("kv lock");
        shared
            .backend
            .clear(Tree::State)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        shared
            .backend
            .write(Tree::State, batch)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        shared
            .backend
            .flush()
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        kv.reload().map_err(|e| sm_err(ErrorVerb::Read, e))?;
        restore_leases(
            &**shared.backend(),
            &mut kv,
            &mut shared.leases.lock().expect("leases lock"),
        )?;
        let (members, alarms) = restore_cluster(&**shared.backend())?;
        *shared.members.write().expect("members lock") = members;
        *shared.alarms.lock().expect("alarms lock") = alarms;
        *shared.applied.write().expect("applied lock") =
            (meta.last_log_id, meta.last_membership.clone());
        *shared.snapshot.write().expect("snapshot lock") = Some(StoredSnapshot {
            meta: meta.clone(),
            data,
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let snap = self.shared.snapshot.read().expect("snapshot lock").clone();
        Ok(snap.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let shared = &self.shared;
        // The read lock holds applies back, so the copy is of one applied index.
        let (entries, last_applied, membership) = {
            let _kv = shared.kv.read().expect("kv lock");
            let entries = shared
                .backend
                .range(Tree::State, &[], &[], 0)
                .map_err(|e| sm_err(ErrorVerb::Read, e))?;
            let (a, m) = shared.applied.read().expect("applied lock").clone();
            (entries, a, m)
        };
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, entries.len()),
            None => format!("none-{}", entries.len()),
        };
        let header = SnapshotHeader {
            last_log_id: last_applied.as_ref().map(codec::log_id_to_pb),
            last_membership: Some(codec::stored_membership_to_pb(&membership)),
            snapshot_id: snapshot_id.clone(),
        };
        let mut w =
            snapshot::Writer::new(Vec::new(), &header).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        for (k, v) in entries {
            w.record(k, v).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        }
        let data = w.finish().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let meta = OSnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        *shared.snapshot.write().expect("snapshot lock") = Some(StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        });
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

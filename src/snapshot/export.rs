//! Writing a bbolt database in etcd's layout from state-tree records (etcd:
//! backend.Snapshot writes its own database file; ours is built for the purpose).
//!
//! Records are buffered and committed in transactions of at most [`BATCH_BYTES`], so
//! memory stays bounded whatever the store's size; the file then holds some free pages,
//! which bbolt's freelist accounts for.

use std::path::Path;

use bbolt_rs::{Bolt, BucketRwApi, DbApi, DbRwAPI, TxRwApi, TxRwRefApi};
use bytes::Bytes;

use super::layout::{self, EtcdRecord};
use super::{bolt, Error};

/// Bytes of keys and values committed per transaction.
pub const BATCH_BYTES: usize = 32 << 20;

/// What the database says about the member that wrote it.
#[derive(Debug, Clone, Default)]
pub struct DbMeta {
    /// etcd's consistent index: the raft index the state is at.
    pub consistent_index: u64,
    pub term: u64,
    /// `major.minor.0`.
    pub cluster_version: String,
}

/// A bbolt database being written.
pub struct DbWriter {
    db: Bolt,
    pending: Vec<EtcdRecord>,
    pending_bytes: usize,
}

impl DbWriter {
    /// Create the database at `path` with every bucket of etcd's and `meta`'s records.
    pub fn create(path: &Path, meta: &DbMeta) -> Result<Self, Error> {
        let db = Bolt::open(path).map_err(bolt)?;
        let mut w = DbWriter {
            db,
            pending: Vec::new(),
            pending_bytes: 0,
        };
        w.push((
            layout::META,
            layout::CONSISTENT_INDEX.to_vec(),
            meta.consistent_index.to_be_bytes().to_vec(),
        ))?;
        w.push((
            layout::META,
            layout::TERM.to_vec(),
            meta.term.to_be_bytes().to_vec(),
        ))?;
        if !meta.cluster_version.is_empty() {
            w.push((
                layout::CLUSTER,
                layout::CLUSTER_VERSION.to_vec(),
                meta.cluster_version.clone().into_bytes(),
            ))?;
        }
        Ok(w)
    }

    /// Add one state-tree record; those etcd has no counterpart of are left out.
    pub fn put_state(&mut self, k: &[u8], v: &[u8]) -> Result<(), Error> {
        match layout::to_etcd(k, v)? {
            Some(r) => self.push(r),
            None => Ok(()),
        }
    }

    /// Add a key version given as a state-tree record (prefix `schema::KEY`).
    pub fn put_key_version(&mut self, k: &Bytes, v: &Bytes) -> Result<(), Error> {
        self.push((layout::KEY, k[1..].to_vec(), v.to_vec()))
    }

    fn push(&mut self, r: EtcdRecord) -> Result<(), Error> {
        self.pending_bytes += r.1.len() + r.2.len();
        self.pending.push(r);
        if self.pending_bytes >= BATCH_BYTES {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), Error> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut tx = self.db.begin_rw().map_err(bolt)?;
        for name in layout::BUCKETS {
            tx.create_bucket_if_not_exists(name).map_err(bolt)?;
        }
        let mut i = 0;
        while i < pending.len() {
            let name = pending[i].0;
            let mut b = tx.bucket_mut(name).expect("every bucket is created");
            // Mostly appends in key order: fill pages whole, as etcd's sequential puts do.
            b.set_fill_percent(1.0);
            while i < pending.len() && pending[i].0 == name {
                b.put(&pending[i].1, &pending[i].2).map_err(bolt)?;
                i += 1;
            }
        }
        tx.commit().map_err(bolt)
    }

    /// Commit what is left and close the file; the database's size in bytes.
    pub fn finish(mut self, path: &Path) -> Result<u64, Error> {
        self.commit()?;
        self.db.close();
        let f = std::fs::File::open(path)?;
        f.sync_all()?;
        Ok(f.metadata()?.len())
    }
}

//! The sled implementation of [`Backend`]: one sled database per member, one sled tree per
//! [`Tree`]. sled writes every tree through one log, which gives the ordering `Backend`
//! requires; `flush` is its fsync.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Backend, Error, Result, Tree, WriteBatch};

pub struct SledBackend {
    db: sled::Db,
    raft_log: sled::Tree,
    raft_meta: sled::Tree,
    state: sled::Tree,
    /// The size on disk and when it was read: reading it lists the database's files, too
    /// slow for every write the quota check guards.
    size: Mutex<Option<(Instant, u64)>>,
}

/// How long a size read stays good.
const SIZE_FRESH: Duration = Duration::from_millis(100);

fn io(e: sled::Error) -> Error {
    match e {
        sled::Error::Corruption { .. } => Error::Corruption(e.to_string()),
        other => Error::Io(other.to_string()),
    }
}

fn to_bytes(v: sled::IVec) -> Bytes {
    // IVec is reference counted: hand it over without copying.
    Bytes::from_owner(v)
}

impl SledBackend {
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(256 * 1024 * 1024)
            // We fsync ourselves, once per log batch.
            .flush_every_ms(None)
            .open()
            .map_err(io)?;
        let raft_log = db.open_tree(Tree::RaftLog.name()).map_err(io)?;
        let raft_meta = db.open_tree(Tree::RaftMeta.name()).map_err(io)?;
        let state = db.open_tree(Tree::State.name()).map_err(io)?;
        Ok(Self {
            db,
            raft_log,
            raft_meta,
            state,
            size: Mutex::new(None),
        })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        match tree {
            Tree::RaftLog => &self.raft_log,
            Tree::RaftMeta => &self.raft_meta,
            Tree::State => &self.state,
        }
    }
}

impl Backend for SledBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.tree(tree).get(key).map_err(io)?.map(to_bytes))
    }

    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        let t = self.tree(tree);
        let iter = if end.is_empty() {
            t.range(start..)
        } else {
            t.range(start..end)
        };
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(io)?;
            out.push((to_bytes(k), to_bytes(v)));
            if limit != 0 && out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn last(&self, tree: Tree) -> Result<Option<(Bytes, Bytes)>> {
        Ok(self
            .tree(tree)
            .last()
            .map_err(io)?
            .map(|(k, v)| (to_bytes(k), to_bytes(v))))
    }

    fn write(&self, tree: Tree, mut batch: WriteBatch) -> Result<()> {
        // sled makes a multi-key batch atomic with a batch manifest, and writing one costs
        // two synchronous writes to its log (it rolls the io buffer before and after the
        // manifest). One key is atomic on its own, so it skips all that.
        if batch.ops.is_empty() {
            return Ok(());
        }
        if batch.ops.len() == 1 {
            let t = self.tree(tree);
            let (k, v) = batch.ops.pop().expect("one op");
            return match v {
                Some(v) => t.insert(k.as_ref(), v.as_ref()).map(drop),
                None => t.remove(k.as_ref()).map(drop),
            }
            .map_err(io);
        }
        let mut b = sled::Batch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => b.insert(k.as_ref(), v.as_ref()),
                None => b.remove(k.as_ref()),
            }
        }
        self.tree(tree).apply_batch(b).map_err(io)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(io).map(|_| ())
    }

    fn clear(&self, tree: Tree) -> Result<()> {
        self.tree(tree).clear().map_err(io)
    }

    fn size(&self) -> u64 {
        let mut held = self.size.lock().unwrap_or_else(|p| p.into_inner());
        match *held {
            Some((at, n)) if at.elapsed() < SIZE_FRESH => n,
            _ => {
                let n = self.db.size_on_disk().unwrap_or(0);
                *held = Some((Instant::now(), n));
                n
            }
        }
    }
}

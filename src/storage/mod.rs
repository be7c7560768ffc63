//! The backend: a small ordered key-value surface that everything durable goes through.
//!
//! Owns: the `Backend` trait and its implementations (sled, and a memory one for tests).
//! Imports: nothing from the crate. Must never: know what the bytes mean.
//!
//! To ensure correctness, an implementation must:
//! - apply a [`WriteBatch`] atomically: after a crash either all of it is visible or none;
//! - keep writes ordered across trees: once a write is durable, every write made before it
//!   (in any tree) is durable too; except that `sync_log` need not cover writes to
//!   `Tree::State` (the state machine's, which the raft log can replay), while `flush`
//!   covers everything.

mod deferred;
pub mod defrag;
mod memory;
pub mod schema;
mod sled_backend;

use bytes::Bytes;

pub use memory::MemoryBackend;
pub use schema::Tree;
pub use sled_backend::SledBackend;

/// Failures of the backend. All of them are fail-stop for the member.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("backend io: {0}")]
    Io(String),
    #[error("backend corruption: {0}")]
    Corruption(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// One atomic write to one tree: puts and removes, applied in order.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    pub ops: Vec<(Bytes, Option<Bytes>)>,
}

impl WriteBatch {
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    pub fn remove(&mut self, key: impl Into<Bytes>) {
        self.ops.push((key.into(), None));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The storage engine behind a member.
pub trait Backend: Send + Sync + 'static {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Bytes>>;
    /// Entries with `start <= key < end` (`end` empty means no upper bound), in key order,
    /// at most `limit` of them (0 = no limit).
    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>>;
    /// The entry with the greatest key, if the tree has any.
    fn last(&self, tree: Tree) -> Result<Option<(Bytes, Bytes)>>;
    /// Apply one batch atomically (not necessarily durably: see `flush`).
    fn write(&self, tree: Tree, batch: WriteBatch) -> Result<()>;
    /// Make every write so far durable (fsync).
    fn flush(&self) -> Result<()>;
    /// Make every write so far to the raft trees durable (`RaftLog`, `RaftMeta`); writes
    /// to `Tree::State` may stay volatile until `flush`. Once per raft log append.
    fn sync_log(&self) -> Result<()> {
        self.flush()
    }
    /// Remove every entry of a tree.
    fn clear(&self, tree: Tree) -> Result<()>;
    /// Bytes the backend occupies on disk (or in memory): for sled, read from disk at most
    /// every 100 ms, plus what was written since.
    fn size(&self) -> u64;
    /// Give back the space of removed records (etcd's defrag); every other call waits
    /// meanwhile. A backend with nothing to give back does nothing.
    fn defragment(&self) -> Result<()> {
        self.flush()
    }
}

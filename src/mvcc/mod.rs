//! Multi-version concurrency control, file for file after etcd's storage/mvcc.
//!
//! Owns: revisions, the key index, the store of key versions, compaction.
//! Imports: `storage`, `proto`. Must never: import `apply`, `raft`, `server` or `api`.

pub mod compaction;
pub mod index;
pub mod key_index;
pub mod kvstore;
pub mod live_keys;
pub mod revision;
pub mod watchable_store;

pub use index::KeyRange;
pub use kvstore::{KvStore, RangeOptions, RangePlan, RangeResult, ReadView, RevFilter, WriteTxn};
pub use revision::Revision;
pub use watchable_store::{Notice, WatchSpec, WatchableStore, WatcherId};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    #[error("mvcc: corrupt store: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

//! Multi-version concurrency control, file for file after etcd's storage/mvcc.
//!
//! Owns: revisions, the key index, the store of key versions, compaction.
//! Imports: `storage`, `proto`. Must never: import `apply`, `raft`, `server` or `api`.

pub mod compaction;
pub mod hash;
pub mod index;
pub mod key_index;
pub mod kvstore;
pub mod live_keys;
#[cfg(test)]
mod model_test;
pub mod pinned_view;
pub mod revision;
pub mod watchable_store;
pub mod watcher;
mod watcher_group;

pub use index::KeyRange;
pub use kvstore::{KvStore, RangeOptions, RangePlan, RangeResult, ReadView, RevFilter, WriteTxn};
pub use pinned_view::PinnedView;
pub use revision::Revision;
pub use watchable_store::WatchableStore;
pub use watcher::{Notice, WatchSpec, WatchStream, WatcherId};

use crate::rpctypes;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", rpctypes::COMPACTED)]
    Compacted,
    #[error("{}", rpctypes::FUTURE_REV)]
    FutureRev,
    #[error("mvcc: corrupt store: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

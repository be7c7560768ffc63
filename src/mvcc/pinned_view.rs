//! A read view pinned at one revision that holds the store's lock only to plan each read
//! (which versions, the count); the values are read from the backend after the lock is let
//! go. Revisions are immutable once written, so reads planned at one revision stay
//! consistent with each other however many writes are applied in between (etcd's read
//! txn at a fixed revision, without its long-held read lock).
//!
//! A version can still disappear between a plan and its read: a compaction past the pinned
//! revision, a snapshot install, or a version not yet flushed from an apply batch. Then the
//! read is planned again, and after a few tries the view is marked [`PinnedView::is_stale`]
//! so the caller can start over with a fresh pin, or read under the lock.

use std::cell::Cell;
use std::sync::RwLock;

use super::kvstore::{KvStore, RangeOptions, RangeResult, ReadView};
use super::{Error, KeyRange, Result};
use crate::storage::Backend;

/// How often one read is planned again when its versions vanish before they are read.
const REPLANS: usize = 3;

pub struct PinnedView<'a> {
    kv: &'a RwLock<KvStore>,
    backend: &'a dyn Backend,
    rev: i64,
    first_rev: i64,
    stale: Cell<bool>,
}

impl<'a> PinnedView<'a> {
    /// Pin the store's current revision.
    pub fn pin(kv: &'a RwLock<KvStore>, backend: &'a dyn Backend) -> Self {
        let store = kv.read().expect("kv lock");
        PinnedView {
            kv,
            backend,
            rev: store.current_rev(),
            first_rev: store.compact_rev(),
            stale: Cell::new(false),
        }
    }

    /// A read of the pinned revision could not be served: its versions were compacted or
    /// removed since the pin. Whatever was read through the view must then be discarded.
    pub fn is_stale(&self) -> bool {
        self.stale.get()
    }
}

impl ReadView for PinnedView<'_> {
    fn range(&self, range: &KeyRange, mut opts: RangeOptions) -> Result<RangeResult> {
        if opts.rev > self.rev {
            return Err(Error::FutureRev);
        }
        let pinned = opts.rev <= 0;
        if pinned {
            opts.rev = self.rev;
        }
        for _ in 0..REPLANS {
            let plan = self.kv.read().expect("kv lock").plan_range(range, opts);
            let plan = match plan {
                // the revision was readable when pinned: a compaction overtook the view
                Err(Error::Compacted) if pinned => break,
                other => other?,
            };
            if let Some(mut rr) = plan.fetch(self.backend)? {
                rr.rev = self.rev;
                return Ok(rr);
            }
        }
        self.stale.set(true);
        Err(Error::Compacted)
    }

    fn rev(&self) -> i64 {
        self.rev
    }

    fn first_rev(&self) -> i64 {
        self.first_rev
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::storage::{MemoryBackend, Tree, WriteBatch};

    fn put(backend: &dyn Backend, kv: &RwLock<KvStore>, key: &str, value: &str) {
        let mut store = kv.write().unwrap();
        let mut batch = WriteBatch::default();
        let mut txn = store.write(&mut batch);
        txn.put(
            Bytes::from(key.to_owned()),
            Bytes::from(value.to_owned()),
            0,
        );
        txn.end();
        backend.write(Tree::State, batch).unwrap();
        store.batch_written();
    }

    fn store() -> (Arc<dyn Backend>, RwLock<KvStore>) {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let kv = RwLock::new(KvStore::open(backend.clone()).unwrap());
        (backend, kv)
    }

    fn values(rr: &RangeResult) -> Vec<String> {
        let text = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
        rr.kvs.iter().map(|kv| text(&kv.value)).collect()
    }

    /// Writes applied after the pin are invisible to every later read through the view,
    /// and each read answers at the pinned revision.
    #[test]
    fn reads_through_a_pin_see_one_revision() {
        let (backend, kv) = store();
        put(&*backend, &kv, "a", "1");
        put(&*backend, &kv, "b", "1");
        let view = PinnedView::pin(&kv, &*backend);
        put(&*backend, &kv, "a", "2");
        put(&*backend, &kv, "c", "2");
        let all = KeyRange::new(Bytes::from_static(b"a"), Bytes::from_static(b"z"));
        let rr = view.range(&all, RangeOptions::default()).unwrap();
        assert_eq!(values(&rr), ["1", "1"]);
        assert_eq!(rr.count, 2);
        // the store's first write is revision 2
        assert_eq!(rr.rev, 3);
        assert_eq!(view.rev(), 3);
        assert!(!view.is_stale());
        // a revision after the pin is the future to the view
        let later = RangeOptions {
            rev: 4,
            ..Default::default()
        };
        assert!(matches!(view.range(&all, later), Err(Error::FutureRev)));
    }

    /// The lock is held only while planning: a read through the view does not wait for a
    /// writer that comes after the pin, and the view answers while another reader holds
    /// the lock.
    #[test]
    fn a_read_needs_the_lock_only_to_plan() {
        let (backend, kv) = store();
        put(&*backend, &kv, "a", "1");
        let view = PinnedView::pin(&kv, &*backend);
        let _reader = kv.read().unwrap();
        let rr = view
            .range(
                &KeyRange::Single(Bytes::from_static(b"a")),
                RangeOptions::default(),
            )
            .unwrap();
        assert_eq!(values(&rr), ["1"]);
    }

    /// A compaction past the pinned revision makes the view stale (the caller starts over)
    /// rather than answering "compacted" to a read that named no revision.
    #[test]
    fn a_compaction_past_the_pin_makes_the_view_stale() {
        let (backend, kv) = store();
        put(&*backend, &kv, "a", "1");
        let view = PinnedView::pin(&kv, &*backend);
        put(&*backend, &kv, "a", "2");
        put(&*backend, &kv, "a", "3");
        {
            let mut store = kv.write().unwrap();
            let mut batch = WriteBatch::default();
            store.compact(3, &mut batch).unwrap();
            backend.write(Tree::State, batch).unwrap();
            store.batch_written();
            store.run_scheduled_compactions().unwrap();
        }
        let got = view.range(
            &KeyRange::Single(Bytes::from_static(b"a")),
            RangeOptions::default(),
        );
        assert!(matches!(got, Err(Error::Compacted)));
        assert!(view.is_stale());
    }
}

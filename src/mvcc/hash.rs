//! The checksum behind HashKV (etcd: storage/mvcc/hash.go, 3.4's kvstore.go hashByRev).
//!
//! etcd hashes with CRC-32 in the Castagnoli polynomial (Go's `crc32.MakeTable(crc32.Castagnoli)`),
//! first over the bucket name `key`, then over each kept revision key and its value.

use std::collections::HashSet;

use bytes::Bytes;

use super::kvstore::KvStore;
use super::revision::Revision;
use super::{Error, Result};
use crate::storage::{schema, Tree};

/// Stored versions read per backend call while hashing.
const HASH_PAGE: usize = 1024;

/// The answer of HashKV at one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    /// The revision hashed (the current one when 0 was asked).
    pub hash_rev: i64,
    pub current_rev: i64,
    pub compact_rev: i64,
}

/// What a HashKV at one revision reads, fixed under the kv lock; [`HashPlan::run`] then
/// reads the backend without it (stored versions never change, and the compaction gate
/// keeps a compaction from deleting any while the scan runs).
pub struct HashPlan {
    backend: std::sync::Arc<dyn crate::storage::Backend>,
    gate: std::sync::Arc<std::sync::RwLock<()>>,
    keep: HashSet<Revision>,
    hash_rev: i64,
    current_rev: i64,
    compact_rev: i64,
}

impl KvStore {
    /// etcd's hashByRev, as a plan: the revisions checked and the versions kept below the
    /// compacted revision. `rev` 0 is the current revision.
    pub fn hash_plan(&self, rev: i64) -> Result<HashPlan> {
        let (current_rev, compact_rev) = (self.current_rev(), self.compact_rev());
        if rev > 0 && rev <= compact_rev {
            return Err(Error::Compacted);
        }
        if rev > current_rev {
            return Err(Error::FutureRev);
        }
        let hash_rev = if rev == 0 { current_rev } else { rev };
        Ok(HashPlan {
            backend: self.backend.clone(),
            gate: self.compaction_gate(),
            keep: self.index().keep(hash_rev),
            hash_rev,
            current_rev,
            compact_rev,
        })
    }

    /// [`KvStore::hash_plan`] run at once (tests; the server runs the plan unlocked).
    pub fn hash_by_rev(&self, rev: i64) -> Result<KvHash> {
        self.hash_plan(rev)?.run()
    }
}

impl HashPlan {
    /// Whether the stored version under backend key `k` (prefix `schema::KEY`) counts.
    pub fn counts(&self, k: &[u8]) -> bool {
        let Some((r, tombstone)) = Revision::from_backend_key(k) else {
            return false;
        };
        if r.main > self.hash_rev {
            return false;
        }
        if r.main <= self.compact_rev && !self.keep.is_empty() && !self.keep.contains(&r) {
            return false;
        }
        !(tombstone && r.main == self.compact_rev)
    }

    /// The revision hashed and the current one when the plan was made.
    pub fn revisions(&self) -> (i64, i64) {
        (self.hash_rev, self.current_rev)
    }

    /// CRC-32C of `key`, then of each stored revision key (17 bytes, `t` for tombstones)
    /// and its KeyValue bytes up to the hashed revision. At or below the compacted
    /// revision only the versions a compaction at the hashed revision would keep count
    /// (etcd: `kvindex.Keep(rev)`), so the hash is the same before and after the compactor
    /// removed the others; a tombstone at exactly the compacted revision never counts
    /// (etcd up to 3.4.33/3.5.15 deletes it, later versions keep it and skip it).
    pub fn run(self) -> Result<KvHash> {
        let _no_compaction = self.gate.read().expect("compaction gate");
        let mut h = Crc32c::new();
        h.write(b"key");
        let end = Bytes::from_static(&[schema::KEY + 1]);
        // Past `upper` nothing counts: stop there.
        let stop = Revision::backend_key_from_main(self.hash_rev + 1);
        let mut start = Revision::backend_key_from_main(0);
        loop {
            let page = self.backend.range(Tree::State, &start, &end, HASH_PAGE)?;
            let Some((last, _)) = page.last() else { break };
            let mut next = last.to_vec();
            next.push(0);
            for (k, v) in &page {
                if self.counts(k) {
                    h.write(&k[1..]);
                    h.write(v);
                }
            }
            if page.len() < HASH_PAGE || next.as_slice() >= stop.as_ref() {
                break;
            }
            start = Bytes::from(next);
        }
        Ok(KvHash {
            hash: h.sum32(),
            hash_rev: self.hash_rev,
            current_rev: self.current_rev,
            compact_rev: self.compact_rev,
        })
    }
}

/// Incremental CRC-32C, as Go's `hash.Hash32` from `crc32.New(castagnoliTable)` (the
/// `crc32c` crate computes it, with the CPU's CRC instruction where there is one).
#[derive(Debug, Clone, Copy, Default)]
pub struct Crc32c {
    state: u32,
}

impl Crc32c {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed `data`; the sum covers everything written so far.
    pub fn write(&mut self, data: &[u8]) {
        self.state = crc32c::crc32c_append(self.state, data);
    }

    pub fn sum32(&self) -> u32 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::mvcc::KeyRange;
    use crate::storage::{Backend, MemoryBackend, WriteBatch};

    struct Store {
        backend: Arc<dyn Backend>,
        kv: KvStore,
    }

    impl Store {
        fn new() -> Self {
            let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
            let kv = KvStore::open(backend.clone()).expect("open");
            Store { backend, kv }
        }

        fn apply(&mut self, f: impl FnOnce(&mut KvStore, &mut WriteBatch)) {
            let mut batch = WriteBatch::default();
            f(&mut self.kv, &mut batch);
            self.backend.write(Tree::State, batch).expect("write");
            self.kv.batch_written();
        }

        fn put(&mut self, k: &'static str, v: &'static str) {
            self.apply(|kv, b| {
                let mut t = kv.write(b);
                t.put(
                    Bytes::from_static(k.as_bytes()),
                    Bytes::from_static(v.as_bytes()),
                    0,
                );
                t.end();
            });
        }

        fn delete(&mut self, k: &'static str) {
            self.apply(|kv, b| {
                let mut t = kv.write(b);
                let range = KeyRange::new(Bytes::from_static(k.as_bytes()), Bytes::new());
                t.delete_range(&range).expect("delete");
                t.end();
            });
        }
    }

    #[test]
    fn hash_at_a_revision_survives_compaction() {
        let mut s = Store::new();
        for (k, v) in [("a", "1"), ("b", "1"), ("a", "2"), ("c", "1")] {
            s.put(k, v);
        }
        s.delete("b");
        s.put("a", "3");
        s.delete("c");
        s.put("d", "1");
        let at = |s: &Store, r| s.kv.hash_by_rev(r).expect("hash").hash;
        let before: Vec<u32> = (5..=9).map(|r| at(&s, r)).collect();
        assert_eq!(at(&s, 0), at(&s, 9));
        assert_ne!(before[0], before[1], "a delete changes the hash");
        s.apply(|kv, b| kv.compact(5, b).expect("compact"));
        // Compacting drops what it makes unreadable from the hash at once (etcd hashes
        // only the versions the compaction keeps below it) ...
        let scheduled: Vec<u32> = (6..=9).map(|r| at(&s, r)).collect();
        assert_ne!(
            scheduled,
            before[1..],
            "a=1 at revision 2 is compacted away"
        );
        // ... so the hash does not change when the compactor removes them.
        s.kv.run_scheduled_compactions().expect("compactor");
        let after: Vec<u32> = (6..=9).map(|r| at(&s, r)).collect();
        assert_eq!(after, scheduled);
        assert!(matches!(s.kv.hash_by_rev(5), Err(Error::Compacted)));
        assert!(matches!(s.kv.hash_by_rev(10), Err(Error::FutureRev)));
        let h = s.kv.hash_by_rev(0).expect("hash");
        assert_eq!((h.hash_rev, h.current_rev, h.compact_rev), (9, 9, 5));
    }

    #[test]
    fn incremental_writes_equal_the_published_check_value() {
        // CRC-32C check value (RFC 3720 appendix B.4 / the CRC catalogue), fed in pieces
        // as the hash is.
        let data = b"123456789";
        for split in 0..data.len() {
            let mut h = Crc32c::new();
            h.write(&data[..split]);
            h.write(&data[split..]);
            assert_eq!(h.sum32(), 0xE306_9283, "split at {split}");
        }
    }
}

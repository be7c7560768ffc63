//! The checksum behind HashKV (etcd: storage/mvcc/hash.go, 3.4's kvstore.go hashByRev).
//!
//! etcd hashes with CRC-32 in the Castagnoli polynomial (Go's `crc32.MakeTable(crc32.Castagnoli)`),
//! first over the bucket name `key`, then over each kept revision key and its value. The
//! registry was not reachable when this was written, so the `crc32c` crate could not be added;
//! this is the standard reflected, table-driven CRC-32C, checked against the published check
//! value below. Swap it for the crate when the registry is available.

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

impl KvStore {
    /// etcd's hashByRev: CRC-32C of `key`, then of each stored revision key (17 bytes, `t`
    /// for tombstones) and its KeyValue bytes up to `rev` (0: the current revision). Below
    /// the compacted revision only the versions the compaction keeps count, so the hash is
    /// the same before and after the compactor removed the others (not across the
    /// compaction itself: what it drops leaves the hash at once, as in etcd).
    pub fn hash_by_rev(&self, rev: i64) -> Result<KvHash> {
        let (current_rev, compact_rev) = (self.current_rev(), self.compact_rev());
        if rev > 0 && rev <= compact_rev {
            return Err(Error::Compacted);
        }
        if rev > current_rev {
            return Err(Error::FutureRev);
        }
        let hash_rev = if rev == 0 { current_rev } else { rev };
        let keep = self.index().keep(compact_rev);
        let upper = Revision::new(hash_rev + 1, 0);
        let lower = Revision::new(compact_rev + 1, 0);
        let mut h = Crc32c::new();
        h.write(b"key");
        let end = Bytes::from_static(&[schema::KEY + 1]);
        let mut start = Revision::backend_key_from_main(0);
        loop {
            let page = self.backend.range(Tree::State, &start, &end, HASH_PAGE)?;
            let Some((last, _)) = page.last() else { break };
            let mut next = last.to_vec();
            next.push(0);
            for (k, v) in &page {
                let Some((r, _)) = Revision::from_backend_key(k) else {
                    continue;
                };
                if r >= upper {
                    continue;
                }
                if r < lower && !keep.is_empty() && !keep.contains(&r) {
                    continue;
                }
                h.write(&k[1..]);
                h.write(v);
            }
            if page.len() < HASH_PAGE {
                break;
            }
            start = Bytes::from(next);
        }
        Ok(KvHash {
            hash: h.sum32(),
            hash_rev,
            current_rev,
            compact_rev,
        })
    }
}

/// The reflected Castagnoli polynomial (0x1EDC6F41 bit-reversed).
const POLY: u32 = 0x82F6_3B78;

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static TABLE: [u32; 256] = make_table();

/// Incremental CRC-32C, as Go's `hash.Hash32` from `crc32.New(castagnoliTable)`.
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
        let mut crc = !self.state;
        for &b in data {
            crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
        }
        self.state = !crc;
    }

    pub fn sum32(&self) -> u32 {
        self.state
    }
}

/// CRC-32C of one buffer.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut h = Crc32c::new();
    h.write(data);
    h.sum32()
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
    fn matches_the_published_check_value() {
        // CRC-32C check value (RFC 3720 appendix B.4 / the CRC catalogue).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 B.4: 32 bytes of zeros and of 0xFF.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    }

    #[test]
    fn incremental_writes_equal_one_write() {
        let data = b"key\x00\x00\x00\x00\x00\x00\x00\x02_\x00\x00\x00\x00\x00\x00\x00\x00";
        for split in 0..data.len() {
            let mut h = Crc32c::new();
            h.write(&data[..split]);
            h.write(&data[split..]);
            assert_eq!(h.sum32(), crc32c(data), "split at {split}");
        }
    }
}

//! The keys that exist at the store's latest revision, kept in order with their ranks, so a
//! range at the latest revision counts its keys without visiting them.
//!
//! etcd walks every matching key to fill `RangeResponse.count`, even for `limit 1`; here a
//! count at the latest revision is two rank lookups. Reads at an older revision still walk
//! the index (the set only knows the latest revision).
//!
//! The set is a list of sorted blocks of `BLOCK..2 * BLOCK` keys (the last may be smaller):
//! a rank is the sizes of the blocks before the key's block plus its place in the block.
//!
//! ```text
//! blocks:  [a b c] [d e f g] [h]        rank(e) = 3 + 1 = 4,   count([b, h)) = 7 - 1 = 6
//! ```
//!
//! With 1,000,000 keys that is about 4,000 block sizes to add (a few microseconds), and an
//! insert moves at most `2 * BLOCK` key handles. Keys are `Bytes` shared with the index.

use bytes::Bytes;

/// Keys per block after a split; a block holds at most twice as many.
const BLOCK: usize = 256;

#[derive(Debug, Default)]
pub struct LiveKeys {
    blocks: Vec<Vec<Bytes>>,
    len: usize,
}

impl LiveKeys {
    /// The block that holds `key`, or would hold it (the last one when it is above all).
    fn block_of(&self, key: &[u8]) -> usize {
        let i = self
            .blocks
            .partition_point(|b| b.last().is_some_and(|l| l.as_ref() < key));
        i.min(self.blocks.len().saturating_sub(1))
    }

    /// Add `key`. A block never holds more than `2 * BLOCK` handles, so its `Vec` never
    /// doubles past that: a full block splits before the insert. Keys written in order (an
    /// insert past the last key) leave the full block whole and start a new one, so a set
    /// filled in order has full blocks; any other insert splits the block in half.
    pub fn insert(&mut self, key: &Bytes) {
        if self.blocks.is_empty() {
            self.blocks.push(Vec::new());
        }
        let b = self.block_of(key);
        let last = b + 1 == self.blocks.len();
        let block = &mut self.blocks[b];
        let Err(at) = block.binary_search_by(|k| k.as_ref().cmp(key.as_ref())) else {
            return;
        };
        self.len += 1;
        if block.len() < 2 * BLOCK {
            if block.len() == block.capacity() {
                // Doubling, but never past the block's limit.
                let more = block.len().max(4).min(2 * BLOCK - block.len());
                block.reserve_exact(more);
            }
            block.insert(at, key.clone());
        } else if last && at == block.len() {
            self.blocks.push(vec![key.clone()]);
        } else {
            let mut tail = block.split_off(BLOCK);
            block.shrink_to_fit();
            if at <= BLOCK {
                block.insert(at, key.clone());
            } else {
                tail.insert(at - BLOCK, key.clone());
            }
            self.blocks.insert(b + 1, tail);
        }
    }

    pub fn remove(&mut self, key: &[u8]) {
        if self.blocks.is_empty() {
            return;
        }
        let b = self.block_of(key);
        let block = &mut self.blocks[b];
        let Ok(at) = block.binary_search_by(|k| k.as_ref().cmp(key)) else {
            return;
        };
        block.remove(at);
        let small = block.len() < BLOCK / 2;
        let empty = block.is_empty();
        self.len -= 1;
        // Keep blocks from thinning out: a small block takes in its successor.
        if small && b + 1 < self.blocks.len() {
            let next = self.blocks.remove(b + 1);
            let block = &mut self.blocks[b];
            block.reserve_exact(next.len());
            block.extend(next);
            if block.len() > 2 * BLOCK {
                let tail = block.split_off(block.len() / 2);
                block.shrink_to_fit();
                self.blocks.insert(b + 1, tail);
            }
        } else if empty {
            self.blocks.remove(b);
        }
    }

    /// Live keys below `key`.
    pub fn rank(&self, key: &[u8]) -> usize {
        if self.blocks.is_empty() {
            return 0;
        }
        let b = self.block_of(key);
        let before: usize = self.blocks[..b].iter().map(Vec::len).sum();
        before + self.blocks[b].partition_point(|k| k.as_ref() < key)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        self.blocks[self.block_of(key)]
            .binary_search_by(|k| k.as_ref().cmp(key))
            .is_ok()
    }

    /// Live keys in `[start, end)`; `None` for no upper bound.
    pub fn count(&self, start: &[u8], end: Option<&[u8]>) -> usize {
        let hi = end.map_or(self.len, |e| self.rank(e));
        hi.saturating_sub(self.rank(start))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Random inserts and removes against a `BTreeSet`, ranks compared after every step.
    #[test]
    fn ranks_match_a_btreeset_model() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
        eprintln!("live_keys model seed {seed}");
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let key = |n: u64| Bytes::from(format!("{:05}", n % 3000));
        let mut set = LiveKeys::default();
        let mut model = BTreeSet::new();
        for step in 0..40_000 {
            let k = key(next());
            // Phases of mostly-inserts and mostly-removes, so blocks split and merge.
            let insert = (step / 5000) % 2 == 0;
            if (next() % 4 != 0) == insert {
                set.insert(&k);
                model.insert(k.clone());
            } else {
                set.remove(&k);
                model.remove(&k);
            }
            assert_eq!(set.len(), model.len(), "seed {seed} step {step}");
            if step % 97 == 0 {
                let (a, b) = (key(next()), key(next()));
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let want = model.range(lo.clone()..hi.clone()).count();
                assert_eq!(set.count(&lo, Some(&hi)), want, "seed {seed} step {step}");
                let want = model.range(lo.clone()..).count();
                assert_eq!(set.count(&lo, None), want, "seed {seed} step {step}");
                assert_eq!(set.contains(&lo), model.contains(&lo));
            }
        }
        assert!(set.blocks.iter().all(|b| b.len() <= 2 * BLOCK));
        assert!(set.blocks.iter().all(|b| b.capacity() <= 2 * BLOCK));
    }

    /// Keys inserted in order fill their blocks: one key handle per key, no spare room
    /// beyond the last block.
    #[test]
    fn keys_inserted_in_order_fill_their_blocks() {
        let mut set = LiveKeys::default();
        let n = 10 * 2 * BLOCK + 3;
        for i in 0..n {
            set.insert(&Bytes::from(format!("{i:08}")));
        }
        assert_eq!(set.len(), n);
        let (last, full) = set.blocks.split_last().expect("blocks");
        assert!(full
            .iter()
            .all(|b| b.len() == 2 * BLOCK && b.capacity() == 2 * BLOCK));
        assert_eq!(last.len(), 3);
        assert_eq!(set.count(b"00000100", Some(b"00005000")), 4900);
    }
}

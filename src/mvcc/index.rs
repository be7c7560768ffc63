//! The in-memory key index: key -> [`KeyIndex`], ordered by key (etcd: storage/mvcc/index.go).
//! It is rebuilt from the backend at start; values stay in the backend. Beside it, the set
//! of keys live at the latest revision ([`LiveKeys`]) counts a range without walking it.

use std::collections::{BTreeMap, HashSet};
use std::ops::{Bound, ControlFlow};

use bytes::Bytes;

use super::key_index::{KeyAt, KeyIndex};
use super::live_keys::LiveKeys;
use super::revision::Revision;

/// The keys a request names, after etcd's `range_end` rules: an empty end names the key
/// alone, `"\0"` names every key at or after it, anything else the half-open interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    Single(Bytes),
    Range { start: Bytes, end: Option<Bytes> },
}

impl KeyRange {
    pub fn new(key: Bytes, range_end: Bytes) -> Self {
        if range_end.is_empty() {
            KeyRange::Single(key)
        } else if range_end.as_ref() == [0] {
            KeyRange::Range {
                start: key,
                end: None,
            }
        } else {
            KeyRange::Range {
                start: key,
                end: Some(range_end),
            }
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(k) => k.as_ref() == key,
            KeyRange::Range { start, end } => {
                key >= start.as_ref() && end.as_ref().is_none_or(|e| key < e.as_ref())
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct TreeIndex {
    keys: BTreeMap<Bytes, KeyIndex>,
    /// The keys whose current generation is not empty (live at the latest revision).
    live: LiveKeys,
}

impl TreeIndex {
    /// Record a put of `key` at `rev`; returns what the key was at `at_main` before it.
    /// One tree lookup for a key already known; a new key is copied out of the request
    /// (whose bytes share a buffer with the rest of the request) so the index keeps only
    /// the key itself. The live-key set changes only when the key comes alive.
    pub fn put(&mut self, key: &Bytes, rev: Revision, at_main: i64) -> Option<KeyAt> {
        if let Some(ki) = self.keys.get_mut(key.as_ref()) {
            let before = ki.get(at_main);
            let was_live = ki.is_live();
            ki.put(rev);
            if !was_live {
                let (owned, _) = self
                    .keys
                    .get_key_value(key.as_ref())
                    .expect("the key was just found");
                self.live.insert(&owned.clone());
            }
            return before;
        }
        let owned = Bytes::copy_from_slice(key);
        let mut ki = KeyIndex::default();
        ki.put(rev);
        self.live.insert(&owned);
        self.keys.insert(owned, ki);
        None
    }

    pub fn restore(&mut self, key: &Bytes, created: Revision, modified: Revision, ver: i64) {
        self.keys
            .entry(key.clone())
            .or_default()
            .restore(created, modified, ver);
        self.live.insert(key);
    }

    pub fn tombstone(&mut self, key: &Bytes, rev: Revision) {
        self.keys.entry(key.clone()).or_default().tombstone(rev);
        self.live.remove(key);
    }

    /// Keys of the range live at the latest revision, counted without visiting them.
    pub fn count_latest(&self, range: &KeyRange) -> usize {
        match range {
            KeyRange::Single(k) => usize::from(self.live.contains(k)),
            KeyRange::Range { start, end } => {
                if end.as_ref().is_some_and(|e| e <= start) {
                    return 0;
                }
                self.live.count(start, end.as_deref())
            }
        }
    }

    /// Calls `f` with every key of the range that exists at `at_main` and what it was then,
    /// in key order (descending if `descend`), until `f` breaks. Allocates nothing.
    pub fn visit_at(
        &self,
        range: &KeyRange,
        at_main: i64,
        descend: bool,
        mut f: impl FnMut(&Bytes, KeyAt) -> ControlFlow<()>,
    ) {
        let mut each = |k: &Bytes, ki: &KeyIndex| match ki.get(at_main) {
            Some(at) => f(k, at),
            None => ControlFlow::Continue(()),
        };
        match range {
            KeyRange::Single(k) => {
                if let Some((k, ki)) = self.keys.get_key_value(k.as_ref()) {
                    let _ = each(k, ki);
                }
            }
            KeyRange::Range { start, end } => {
                if end.as_ref().is_some_and(|e| e <= start) {
                    return;
                }
                let upper = end
                    .as_ref()
                    .map_or(Bound::Unbounded, |e| Bound::Excluded(e.clone()));
                let iter = self.keys.range((Bound::Included(start.clone()), upper));
                if descend {
                    for (k, ki) in iter.rev() {
                        if each(k, ki).is_break() {
                            return;
                        }
                    }
                } else {
                    for (k, ki) in iter {
                        if each(k, ki).is_break() {
                            return;
                        }
                    }
                }
            }
        }
    }

    pub fn get(&self, key: &[u8], at_main: i64) -> Option<KeyAt> {
        self.keys.get(key).and_then(|ki| ki.get(at_main))
    }

    /// Every key of the range that exists at `at_main`, in key order, with what it was then.
    pub fn range(&self, range: &KeyRange, at_main: i64) -> Vec<(Bytes, KeyAt)> {
        let mut out = Vec::new();
        self.visit(range, |k, ki| {
            if let Some(at) = ki.get(at_main) {
                out.push((k.clone(), at));
            }
        });
        out
    }

    /// Calls `f` for every indexed key of the range, live or not.
    pub fn visit(&self, range: &KeyRange, mut f: impl FnMut(&Bytes, &KeyIndex)) {
        match range {
            KeyRange::Single(k) => {
                if let Some((k, ki)) = self.keys.get_key_value(k.as_ref()) {
                    f(k, ki);
                }
            }
            KeyRange::Range { start, end } => {
                if end.as_ref().is_some_and(|e| e <= start) {
                    return;
                }
                let upper = end
                    .as_ref()
                    .map_or(Bound::Unbounded, |e| Bound::Excluded(e.clone()));
                for (k, ki) in self.keys.range((Bound::Included(start.clone()), upper)) {
                    f(k, ki);
                }
            }
        }
    }

    /// The revisions a compaction at `at_main` keeps, without compacting (etcd: treeIndex.Keep).
    pub fn keep(&self, at_main: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        for ki in self.keys.values() {
            ki.keep(at_main, &mut available);
        }
        available
    }

    /// Compact every key at `at_main`; returns the revisions that stay readable.
    pub fn compact(&mut self, at_main: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        let mut from = Some(Bytes::new());
        while let Some(start) = from {
            from = self.compact_chunk(at_main, &start, usize::MAX, &mut available);
        }
        available
    }

    /// Compact at `at_main` the keys from `start` on, at most `max` of them, adding the
    /// revisions that stay readable to `available`; returns where to go on, if anywhere.
    /// Compacting key by key is safe between writes: a write only adds revisions above
    /// every compaction's (etcd: treeIndex.Compact takes its lock per key).
    pub fn compact_chunk(
        &mut self,
        at_main: i64,
        start: &Bytes,
        max: usize,
        available: &mut HashSet<Revision>,
    ) -> Option<Bytes> {
        let mut emptied = Vec::new();
        let mut next = None;
        for (n, (k, ki)) in self.keys.range_mut(start.clone()..).enumerate() {
            if n == max {
                next = Some(k.clone());
                break;
            }
            ki.compact(at_main, available);
            if ki.is_empty() {
                emptied.push(k.clone());
            }
        }
        for k in emptied {
            self.keys.remove(&k);
        }
        next
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Keys live at the latest revision (etcd's `etcd_debugging_mvcc_keys_total`).
    pub fn live_len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn range_end_rules() {
        let mut idx = TreeIndex::default();
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            idx.put(&b(k), Revision::new(i as i64 + 1, 0), i as i64);
        }
        let keys = |r: KeyRange| {
            idx.range(&r, 10)
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(KeyRange::new(b("b"), Bytes::new())), vec![b("b")]);
        assert_eq!(keys(KeyRange::new(b("b"), b("d"))), vec![b("b"), b("c")]);
        assert_eq!(
            keys(KeyRange::new(b("b"), Bytes::from_static(&[0]))),
            vec![b("b"), b("c"), b("d")]
        );
        assert!(keys(KeyRange::new(b("c"), b("a"))).is_empty());
        assert_eq!(keys(KeyRange::new(b("a"), b("c"))).len(), 2);
        assert_eq!(
            idx.range(&KeyRange::new(b("a"), Bytes::from_static(&[0])), 2)
                .len(),
            2
        );
    }
}

//! The newest log entries, kept in memory as they were appended, so the state machine
//! (and, on a leader, replication to followers) reads them without a backend read and a
//! decode. openraft 0.9's state-machine worker reads every committed entry back through
//! the log reader; for a put that read and decode cost about 3% of its instructions.
//!
//! To ensure correctness: the entries held are always a contiguous run ending at the
//! log's last entry, identical to what the backend holds for those indexes (each was
//! written by the same `append` that pushed it here). `append` of a non-contiguous run
//! starts over, `truncate` drops the tail and `purge` the head, as they do in the
//! backend. A read is answered from here only when every index it asks for is held;
//! anything else goes to the backend. Memory is bounded by `MAX_ENTRIES` and `MAX_BYTES`
//! whatever the clients send.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::types::Entry;

/// Entries held at most: every entry between append and apply (two batches are in flight
/// at once) and a margin for followers a little behind.
const MAX_ENTRIES: usize = 256;
/// Encoded bytes held at most (large values make few entries). Commands decoded from a
/// client hold buffers of their own size (proto/codec.rs), so this bounds the memory too.
const MAX_BYTES: usize = 8 << 20;

#[derive(Default)]
pub struct RecentEntries {
    inner: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// Each entry with its encoded size.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl Held {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index)
    }

    fn pop_front(&mut self) {
        if let Some((_, n)) = self.entries.pop_front() {
            self.bytes -= n;
        }
    }

    fn pop_back(&mut self) {
        if let Some((_, n)) = self.entries.pop_back() {
            self.bytes -= n;
        }
    }
}

impl RecentEntries {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // A panic while holding the lock cannot leave `Held` half-changed in a way that
        // matters more than dropping it: start over empty.
        self.inner.lock().unwrap_or_else(|poisoned| {
            let mut g = poisoned.into_inner();
            *g = Held::default();
            g
        })
    }

    /// Entries just written to the backend, in index order, with their encoded sizes.
    pub fn appended(&self, entries: impl IntoIterator<Item = (Entry, usize)>) {
        let mut h = self.held();
        for (e, n) in entries {
            if h.last_index()
                .is_some_and(|last| last + 1 != e.log_id.index)
            {
                h.entries.clear();
                h.bytes = 0;
            }
            h.bytes += n;
            h.entries.push_back((e, n));
        }
        while h.entries.len() > MAX_ENTRIES || (h.bytes > MAX_BYTES && h.entries.len() > 1) {
            h.pop_front();
        }
    }

    /// The backend dropped every entry from `index` on.
    pub fn truncated(&self, index: u64) {
        let mut h = self.held();
        while h.last_index().is_some_and(|last| last >= index) {
            h.pop_back();
        }
    }

    /// The backend dropped every entry up to `index`.
    pub fn purged(&self, index: u64) {
        let mut h = self.held();
        while h.first_index().is_some_and(|first| first <= index) {
            h.pop_front();
        }
    }

    /// Forget everything (the log was changed behind the appends).
    pub fn clear(&self) {
        *self.held() = Held::default();
    }

    /// Entries `start..end`, if every one of them is held.
    pub fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let h = self.held();
        let first = h.first_index()?;
        let last = h.last_index()?;
        if start < first || end > last + 1 || start > end {
            return None;
        }
        let from = usize::try_from(start - first).ok()?;
        let to = usize::try_from(end - first).ok()?;
        Some(h.entries.range(from..to).map(|(e, _)| e.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::LogId;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> (Entry, usize) {
        let e = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        };
        (e, 10)
    }

    fn indexes(v: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn answers_only_ranges_it_holds_whole() {
        let r = RecentEntries::default();
        r.appended((5..10).map(entry));
        assert_eq!(indexes(r.get(5, 10)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(indexes(r.get(7, 8)), Some(vec![7]));
        assert_eq!(indexes(r.get(7, 7)), Some(vec![]));
        assert_eq!(r.get(4, 6).map(|v| v.len()), None);
        assert_eq!(r.get(9, 11).map(|v| v.len()), None);
    }

    #[test]
    fn follows_truncate_purge_and_gaps() {
        let r = RecentEntries::default();
        r.appended((1..=10).map(entry));
        r.truncated(8);
        assert_eq!(r.get(7, 9).map(|v| v.len()), None);
        assert_eq!(indexes(r.get(6, 8)), Some(vec![6, 7]));
        r.appended([entry(8)]);
        assert_eq!(indexes(r.get(7, 9)), Some(vec![7, 8]));
        r.purged(3);
        assert_eq!(r.get(3, 5).map(|v| v.len()), None);
        assert_eq!(indexes(r.get(4, 5)), Some(vec![4]));
        // A run that does not continue the held one replaces it.
        r.appended([entry(20)]);
        assert_eq!(r.get(8, 9).map(|v| v.len()), None);
        assert_eq!(indexes(r.get(20, 21)), Some(vec![20]));
    }

    #[test]
    fn memory_is_bounded() {
        let r = RecentEntries::default();
        r.appended((0..(MAX_ENTRIES as u64 + 100)).map(entry));
        assert_eq!(r.get(0, 1).map(|v| v.len()), None);
        assert_eq!(r.held().entries.len(), MAX_ENTRIES);
        r.appended([(entry(MAX_ENTRIES as u64 + 100).0, MAX_BYTES + 1)]);
        assert_eq!(r.held().entries.len(), 1);
    }
}

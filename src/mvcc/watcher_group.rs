//! Every watcher of the member, indexed for matching events (etcd: watcher_group.go).
//!
//! Single-key watchers are found by key; range watchers are checked one by one. The group
//! also keeps, per stream, how many of its watchers are unsynced and whether a progress
//! request waits, so that a stream-wide progress answer costs nothing per watcher.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::index::KeyRange;
use super::watcher::{Notice, StreamId, WatchSpec, Watcher, WatcherId};

/// What the group keeps per stream.
pub(super) struct StreamState {
    pub tx: mpsc::Sender<Notice>,
    pub watchers: HashSet<WatcherId>,
    /// How many of `watchers` are unsynced.
    pub unsynced: usize,
    /// The highest revision in any header the stream was sent (a created response or
    /// events). Progress is never reported below it, so revisions never go back.
    pub max_sent: i64,
}

#[derive(Default)]
pub(super) struct WatcherGroup {
    pub all: HashMap<WatcherId, Watcher>,
    by_key: HashMap<Bytes, HashSet<WatcherId>>,
    ranges: HashSet<WatcherId>,
    pub unsynced: HashSet<WatcherId>,
    pub streams: HashMap<StreamId, StreamState>,
    /// Streams whose progress request waits for all their watchers to be synced.
    pub progress_waiting: HashSet<StreamId>,
    next_id: WatcherId,
    /// To ensure correctness: every synced watcher has been handed every event it wants at
    /// or below this revision. Progress reports it, so nothing at or below it can follow.
    pub hub_rev: i64,
}

impl WatcherGroup {
    pub fn add_stream(&mut self, id: StreamId, tx: mpsc::Sender<Notice>) {
        self.streams.insert(
            id,
            StreamState {
                tx,
                watchers: HashSet::new(),
                unsynced: 0,
                max_sent: 0,
            },
        );
    }

    /// Add an unsynced watcher of `stream` (gone streams get none).
    pub fn add(&mut self, stream: StreamId, spec: WatchSpec, next_rev: i64) -> Option<WatcherId> {
        let s = self.streams.get_mut(&stream)?;
        let id = self.next_id;
        self.next_id += 1;
        s.watchers.insert(id);
        s.unsynced += 1;
        let tx = s.tx.clone();
        match &spec.range {
            KeyRange::Single(k) => {
                self.by_key.entry(k.clone()).or_default().insert(id);
            }
            KeyRange::Range { .. } => {
                self.ranges.insert(id);
            }
        }
        self.unsynced.insert(id);
        self.all.insert(
            id,
            Watcher {
                spec,
                stream,
                next_rev,
                synced: false,
                tx,
            },
        );
        Some(id)
    }

    pub fn remove(&mut self, id: WatcherId) {
        let Some(x) = self.all.remove(&id) else {
            return;
        };
        match &x.spec.range {
            KeyRange::Single(k) => {
                if let Some(set) = self.by_key.get_mut(k) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.by_key.remove(k);
                    }
                }
            }
            KeyRange::Range { .. } => {
                self.ranges.remove(&id);
            }
        }
        let was_unsynced = self.unsynced.remove(&id);
        if let Some(s) = self.streams.get_mut(&x.stream) {
            s.watchers.remove(&id);
            if was_unsynced {
                s.unsynced -= 1;
            }
        }
    }

    pub fn remove_stream(&mut self, stream: StreamId) {
        let Some(s) = self.streams.get(&stream) else {
            return;
        };
        let ids: Vec<WatcherId> = s.watchers.iter().copied().collect();
        for id in ids {
            self.remove(id);
        }
        self.streams.remove(&stream);
        self.progress_waiting.remove(&stream);
    }

    /// Move a synced watcher to the unsynced group: it is caught up from the store,
    /// starting at `next_rev`.
    pub fn mark_unsynced(&mut self, id: WatcherId, next_rev: i64) {
        let Some(x) = self.all.get_mut(&id) else {
            return;
        };
        x.next_rev = next_rev;
        if x.synced {
            x.synced = false;
            self.unsynced.insert(id);
            if let Some(s) = self.streams.get_mut(&x.stream) {
                s.unsynced += 1;
            }
        }
    }

    pub fn mark_synced(&mut self, id: WatcherId) {
        let Some(x) = self.all.get_mut(&id) else {
            return;
        };
        if !x.synced {
            x.synced = true;
            self.unsynced.remove(&id);
            if let Some(s) = self.streams.get_mut(&x.stream) {
                s.unsynced -= 1;
            }
        }
    }

    /// Every synced watcher to the unsynced group, where it stands.
    pub fn mark_all_unsynced(&mut self) {
        let synced: Vec<(WatcherId, i64)> = self
            .all
            .iter()
            .filter(|(_, x)| x.synced)
            .map(|(id, x)| (*id, x.next_rev))
            .collect();
        for (id, next_rev) in synced {
            self.mark_unsynced(id, next_rev);
        }
    }

    /// Ids of the watchers whose range holds `key` (filters and revisions not checked).
    pub fn for_key(&self, key: &Bytes, mut f: impl FnMut(WatcherId, &Watcher)) {
        if let Some(ids) = self.by_key.get(key) {
            for id in ids {
                if let Some(x) = self.all.get(id) {
                    f(*id, x);
                }
            }
        }
        for id in &self.ranges {
            if let Some(x) = self.all.get(id) {
                if x.spec.range.contains(key) {
                    f(*id, x);
                }
            }
        }
    }

    /// Single-key watchers of `key`.
    pub fn singles(&self, key: &Bytes) -> impl Iterator<Item = WatcherId> + '_ {
        self.by_key.get(key).into_iter().flatten().copied()
    }

    /// Record that `stream` was sent a header at `rev`.
    pub fn sent(&mut self, stream: StreamId, rev: i64) {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.max_sent = s.max_sent.max(rev);
        }
    }
}

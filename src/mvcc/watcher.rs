//! A watcher, what it is told, and the stream that owns it (etcd: storage/mvcc/watcher.go).
//!
//! A [`WatchStream`] is one client stream's handle on the watchable store: its watchers
//! share one bounded channel of [`Notice`]s, and everything the stream is told (events,
//! compaction cancels, progress) travels in that one channel, in order. Dropping the
//! handle cancels every watcher of the stream.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::index::KeyRange;
use super::watchable_store::WatchableStore;
use crate::proto::mvccpb::{event::EventType, Event};

/// Unique across the member; the stream's own watch id travels alongside.
pub type WatcherId = u64;
/// Unique across the member.
pub type StreamId = u64;

/// What a stream asked for when creating a watcher.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    /// The id the client sees on its stream.
    pub watch_id: i64,
    pub range: KeyRange,
    /// First revision wanted; 0 = the next one.
    pub start_rev: i64,
    pub no_put: bool,
    pub no_delete: bool,
}

impl WatchSpec {
    /// Whether `ev` is in the range and passes the filters.
    pub(super) fn wants(&self, ev: &Event) -> bool {
        let in_range = ev
            .kv
            .as_ref()
            .is_some_and(|kv| self.range.contains(&kv.key));
        let put = ev.r#type == EventType::Put as i32;
        in_range && !(put && self.no_put || !put && self.no_delete)
    }
}

/// What the store hands a stream, in the order the stream must pass it on.
#[derive(Debug)]
pub enum Notice {
    /// Events for one watcher; `rev` is the store revision they bring the watcher to. The
    /// events are shared with every other watcher they matched.
    Events {
        watch_id: i64,
        rev: i64,
        events: Vec<Arc<Event>>,
    },
    /// The watcher fell behind the compaction point and is gone.
    Compacted { watch_id: i64, compact_rev: i64 },
    /// Every event at or below `rev` for the watcher (`Some`, a periodic notification) or
    /// for every watcher of the stream (`None`, the answer to a progress request) was
    /// queued before this notice.
    Progress { watch_id: Option<i64>, rev: i64 },
}

/// The store's record of one watcher.
pub(super) struct Watcher {
    pub spec: WatchSpec,
    pub stream: StreamId,
    /// The first revision not yet handed to the stream. Only moves forward.
    pub next_rev: i64,
    /// In the synced group: gets live events from the hub. Otherwise caught up from the store.
    pub synced: bool,
    pub tx: mpsc::Sender<Notice>,
}

/// One client stream's watchers (etcd: mvcc.WatchStream).
pub struct WatchStream {
    pub(super) store: Arc<WatchableStore>,
    pub(super) id: StreamId,
}

impl WatchStream {
    /// Register a watcher; returns its id and the store revision at creation (the
    /// revision of the created response).
    pub fn watch(&self, spec: WatchSpec) -> (WatcherId, i64) {
        self.store.watch(self.id, spec)
    }

    pub fn cancel(&self, id: WatcherId) {
        self.store.cancel(self.id, id);
    }

    /// A periodic progress notification for one watcher: sent, behind its events, if the
    /// watcher is synced when the hub gets to it; dropped otherwise (the next period
    /// tries again).
    pub fn request_progress(&self, id: WatcherId) {
        self.store.request_progress(self.id, Some(id));
    }

    /// A progress notification for the whole stream (etcd's RequestProgressAll): sent,
    /// behind every event it covers, once every watcher of the stream is synced.
    pub fn request_progress_all(&self) {
        self.store.request_progress(self.id, None);
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.store.close_stream(self.id);
    }
}

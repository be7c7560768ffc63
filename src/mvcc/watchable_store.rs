//! The watchable store (etcd: storage/mvcc/watchable_store.go, watcher_group.go).
//!
//! Owns every watcher of the member. The apply loop hands each revision's events to
//! [`WatchableStore::publish`], which only queues them: the apply loop never waits on a
//! watcher. One hub task does the rest, in revision order:
//! - **synced** watchers (caught up with the store) get the events of each revision that
//!   match their range and filters, pushed to their stream's bounded channel;
//! - a watcher whose stream channel is full, or that starts at an old revision, is
//!   **unsynced**: the hub catches it up from the store (all unsynced watchers in one pass
//!   over the history), then makes it synced again; a watcher behind the compaction point is
//!   cancelled with the compacted revision.
//!
//! To ensure correctness: each watcher keeps `next_rev`, the first revision it has not been
//! sent. Events of a revision below it are never sent again, and it only moves forward, so
//! no event is delivered twice or skipped, whichever path (live or catch-up) delivers it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use super::index::KeyRange;
use super::kvstore::KvStore;
use crate::proto::mvccpb::{event::EventType, Event};

/// Unique across the member; the stream's own watch id travels alongside.
pub type WatcherId = u64;

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

/// What the hub hands a stream.
#[derive(Debug)]
pub enum Notice {
    /// Events for one watcher; `rev` is the store revision they bring the watcher to.
    Events {
        watch_id: i64,
        rev: i64,
        events: Vec<Event>,
    },
    /// The watcher fell behind the compaction point and is gone.
    Compacted { watch_id: i64, compact_rev: i64 },
}

struct Watcher {
    spec: WatchSpec,
    next_rev: i64,
    synced: bool,
    tx: mpsc::Sender<Notice>,
}

#[derive(Default)]
struct Watchers {
    all: HashMap<WatcherId, Watcher>,
    /// Single-key watchers by key; range watchers apart.
    by_key: HashMap<Bytes, HashSet<WatcherId>>,
    ranges: HashSet<WatcherId>,
    unsynced: HashSet<WatcherId>,
    next_id: WatcherId,
}

pub struct WatchableStore {
    kv: Arc<RwLock<KvStore>>,
    watchers: Mutex<Watchers>,
    publish_tx: mpsc::UnboundedSender<(i64, Arc<Vec<Event>>)>,
    wake: Notify,
}

/// Revisions handed out in one catch-up response at most (etcd's watchBatchMaxRevs).
const CATCH_UP_MAX_REVS: i64 = 1000;

impl WatchableStore {
    /// Create the store and start its hub task (needs a tokio runtime).
    pub fn start(kv: Arc<RwLock<KvStore>>) -> Arc<Self> {
        let (publish_tx, publish_rx) = mpsc::unbounded_channel();
        let ws = Arc::new(Self {
            kv,
            watchers: Mutex::default(),
            publish_tx,
            wake: Notify::new(),
        });
        tokio::spawn(hub(Arc::downgrade(&ws), publish_rx));
        ws
    }

    /// Queue the events of an applied revision. Never waits.
    pub fn publish(&self, rev: i64, events: Arc<Vec<Event>>) {
        let _ = self.publish_tx.send((rev, events));
    }

    /// Register a watcher; returns its id and the store revision at creation.
    pub fn watch(&self, spec: WatchSpec, tx: mpsc::Sender<Notice>) -> (WatcherId, i64) {
        let current = self.kv.read().expect("kv lock").current_rev();
        let (next_rev, synced) = if spec.start_rev <= 0 || spec.start_rev > current {
            (
                if spec.start_rev <= 0 {
                    current + 1
                } else {
                    spec.start_rev
                },
                true,
            )
        } else {
            (spec.start_rev, false)
        };
        let mut w = self.watchers.lock().expect("watchers lock");
        let id = w.next_id;
        w.next_id += 1;
        match &spec.range {
            KeyRange::Single(k) => {
                w.by_key.entry(k.clone()).or_default().insert(id);
            }
            KeyRange::Range { .. } => {
                w.ranges.insert(id);
            }
        }
        if !synced {
            w.unsynced.insert(id);
        }
        w.all.insert(
            id,
            Watcher {
                spec,
                next_rev,
                synced,
                tx,
            },
        );
        drop(w);
        if !synced {
            self.wake.notify_one();
        }
        (id, current)
    }

    pub fn cancel(&self, id: WatcherId) {
        let mut w = self.watchers.lock().expect("watchers lock");
        remove(&mut w, id);
    }

    /// Whether every given watcher is caught up (for progress requests).
    pub fn all_synced(&self, ids: &[WatcherId]) -> bool {
        let w = self.watchers.lock().expect("watchers lock");
        ids.iter().all(|id| w.all.get(id).is_none_or(|x| x.synced))
    }

    pub fn current_rev(&self) -> i64 {
        self.kv.read().expect("kv lock").current_rev()
    }

    /// Live delivery of one revision to synced watchers.
    fn notify(&self, rev: i64, events: &[Event]) {
        let mut w = self.watchers.lock().expect("watchers lock");
        let mut matched: HashMap<WatcherId, Vec<Event>> = HashMap::new();
        let ranges: Vec<WatcherId> = w.ranges.iter().copied().collect();
        for ev in events {
            let Some(kv) = &ev.kv else { continue };
            let mut add = |id: WatcherId, w: &Watchers| {
                if let Some(x) = w.all.get(&id) {
                    if x.synced && x.next_rev <= rev && passes(&x.spec, ev) {
                        matched.entry(id).or_default().push(ev.clone());
                    }
                }
            };
            if let Some(ids) = w.by_key.get(&kv.key) {
                for id in ids {
                    add(*id, &w);
                }
            }
            for id in &ranges {
                if w.all
                    .get(id)
                    .is_some_and(|x| x.spec.range.contains(&kv.key))
                {
                    add(*id, &w);
                }
            }
        }
        for (id, evs) in matched {
            let Some(x) = w.all.get_mut(&id) else {
                continue;
            };
            let notice = Notice::Events {
                watch_id: x.spec.watch_id,
                rev,
                events: evs,
            };
            match x.tx.try_send(notice) {
                Ok(()) => x.next_rev = rev + 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // The stream is slow: catch this watcher up from the store later.
                    x.synced = false;
                    x.next_rev = rev;
                    w.unsynced.insert(id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => remove(&mut w, id),
            }
        }
    }

    /// Catch unsynced watchers up from the store, at most [`CATCH_UP_MAX_REVS`] revisions
    /// of history per pass. Returns whether a watcher advanced and is still behind (so
    /// another pass right away is useful).
    fn sync_unsynced(&self) -> bool {
        let ids: Vec<WatcherId> = self
            .watchers
            .lock()
            .expect("watchers lock")
            .unsynced
            .iter()
            .copied()
            .collect();
        if ids.is_empty() {
            return false;
        }
        let (current, compact, upto, history) = {
            let kv = self.kv.read().expect("kv lock");
            let current = kv.current_rev();
            let compact = kv.compact_rev();
            let min_rev = {
                let w = self.watchers.lock().expect("watchers lock");
                ids.iter()
                    .filter_map(|id| w.all.get(id))
                    .map(|x| x.next_rev)
                    .min()
                    .unwrap_or(current + 1)
            };
            let from = min_rev.max(compact).max(1);
            let upto = current.min(from + CATCH_UP_MAX_REVS - 1);
            let history = if from <= upto {
                kv.events_between(from, upto).unwrap_or_default()
            } else {
                Vec::new()
            };
            (current, compact, upto, history)
        };
        let mut advanced_but_behind = false;
        let mut w = self.watchers.lock().expect("watchers lock");
        for id in ids {
            let Some(x) = w.all.get_mut(&id) else {
                continue;
            };
            if x.synced {
                continue;
            }
            if compact > 0 && x.next_rev < compact {
                let _ = x.tx.try_send(Notice::Compacted {
                    watch_id: x.spec.watch_id,
                    compact_rev: compact,
                });
                remove(&mut w, id);
                continue;
            }
            let next = x.next_rev;
            let evs: Vec<Event> = history
                .iter()
                .filter(|(r, ev)| {
                    r.main >= next
                        && ev
                            .kv
                            .as_ref()
                            .is_some_and(|kv| x.spec.range.contains(&kv.key))
                        && passes(&x.spec, ev)
                })
                .map(|(_, ev)| ev.clone())
                .collect();
            if !evs.is_empty() {
                let notice = Notice::Events {
                    watch_id: x.spec.watch_id,
                    rev: upto,
                    events: evs,
                };
                match x.tx.try_send(notice) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => continue,
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        remove(&mut w, id);
                        continue;
                    }
                }
            }
            x.next_rev = next.max(upto + 1);
            if x.next_rev > current {
                // Later revisions reach the hub's queue after this pass, in order.
                x.synced = true;
                w.unsynced.remove(&id);
            } else {
                advanced_but_behind = true;
            }
        }
        advanced_but_behind
    }
}

fn passes(spec: &WatchSpec, ev: &Event) -> bool {
    let put = ev.r#type == EventType::Put as i32;
    !(put && spec.no_put || !put && spec.no_delete)
}

fn remove(w: &mut Watchers, id: WatcherId) {
    let Some(x) = w.all.remove(&id) else { return };
    match &x.spec.range {
        KeyRange::Single(k) => {
            if let Some(set) = w.by_key.get_mut(k) {
                set.remove(&id);
                if set.is_empty() {
                    w.by_key.remove(k);
                }
            }
        }
        KeyRange::Range { .. } => {
            w.ranges.remove(&id);
        }
    }
    w.unsynced.remove(&id);
}

/// The hub: live notifications in revision order, and catch-up of unsynced watchers.
async fn hub(
    ws: std::sync::Weak<WatchableStore>,
    mut rx: mpsc::UnboundedReceiver<(i64, Arc<Vec<Event>>)>,
) {
    // Watchers whose stream was full are retried on this tick.
    let mut retry = tokio::time::interval(Duration::from_millis(100));
    loop {
        let Some(store) = ws.upgrade() else { return };
        tokio::select! {
            msg = rx.recv() => {
                let Some((rev, events)) = msg else { return };
                store.notify(rev, &events);
                while let Ok((rev, events)) = rx.try_recv() {
                    store.notify(rev, &events);
                }
            }
            _ = store.wake.notified() => {}
            _ = retry.tick() => {}
        }
        while store.sync_unsynced() && rx.is_empty() {
            tokio::task::yield_now().await;
        }
    }
}

//! The watchable store (etcd: storage/mvcc/watchable_store.go).
//!
//! Owns every watcher of the member. The apply loop hands each revision's events to
//! [`WatchableStore::publish`], which only queues them in a bounded inbox: the apply loop
//! never waits on a watcher. One hub thread does the rest, in revision order:
//! - **synced** watchers (caught up with the store) get the events of each revision that
//!   match their range and filters, pushed to their stream's bounded channel; the events
//!   are shared (`Arc`) by every watcher they match;
//! - a watcher whose stream channel is full, a new watcher, or every watcher when the
//!   inbox overflowed, is **unsynced**: the hub catches it up from the store (all unsynced
//!   watchers in one pass over at most [`CATCH_UP_MAX_REVS`] revisions), then makes it
//!   synced again; a watcher behind the compaction point is cancelled with the compacted
//!   revision, retried until its stream has room for the cancel;
//! - progress requests travel through the same inbox as the events and are answered in
//!   the stream's channel behind the events they cover.
//!
//! Memory is bounded whatever the clients do: the inbox holds at most [`MAX_QUEUED_REVS`]
//! revisions and [`MAX_QUEUED_BYTES`] bytes (past that, revisions are dropped and every
//! watcher is caught up from the store instead), each stream's channel is bounded, and a
//! catch-up pass reads a bounded stretch of history.
//!
//! To ensure correctness:
//! - each watcher keeps `next_rev`, the first revision it has not been handed. Events of a
//!   revision below it are never sent again, and it only moves forward (only after the
//!   events below it were queued), so no event is delivered twice or skipped, whichever
//!   path (live or catch-up) delivers it;
//! - a watcher becomes synced only in a catch-up pass that read the store's current
//!   revision C under the store's lock, with `next_rev = C + 1`; every revision above C is
//!   published after that pass read C, so it reaches the hub's inbox (or is recorded as
//!   lost, which unsyncs everyone again);
//! - a storage error during catch-up advances nothing: the pass is retried.
//!
//! Lock order: the store's `kv` lock, then `group`; the inbox lock is taken alone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use super::index::KeyRange;
use super::kvstore::KvStore;
use super::watcher::{Notice, StreamId, WatchSpec, WatchStream, WatcherId};
use super::watcher_group::WatcherGroup;
use crate::proto::mvccpb::Event;

/// Revisions handed out in one catch-up response at most (etcd's watchBatchMaxRevs).
const CATCH_UP_MAX_REVS: i64 = 1000;
/// Revisions the inbox holds before it drops them and falls back to catch-up.
pub const MAX_QUEUED_REVS: usize = 4096;
/// Key and value bytes the inbox holds before it drops revisions.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;
/// How often the hub retries watchers whose stream was full, and waiting progress requests.
const RETRY: Duration = Duration::from_millis(100);

pub struct WatchableStore {
    kv: Arc<RwLock<KvStore>>,
    group: Mutex<WatcherGroup>,
    inbox: Arc<Inbox>,
    next_stream: AtomicU64,
}

/// What the apply loop and the streams hand the hub.
struct Inbox {
    state: Mutex<InboxState>,
    cv: Condvar,
    /// Client streams open: with none, nobody waits for a revision's events, so the hub is
    /// woken only once [`LAZY_REVS`] have queued (a thread wake-up per put saved); opening
    /// a watcher wakes it, and it takes the queue in order before anything else.
    streams: AtomicUsize,
}

/// Revisions queued before the hub is woken while no stream is open.
const LAZY_REVS: usize = 256;

#[derive(Default)]
struct InboxState {
    revs: VecDeque<(i64, Arc<Vec<Event>>)>,
    bytes: usize,
    /// The highest revision dropped since the hub last looked; from the first drop on,
    /// every revision is dropped until the hub has unsynced every watcher.
    lost: Option<i64>,
    /// Progress requests, in arrival order relative to `revs`: (stream, watcher or all).
    progress: Vec<(StreamId, Option<WatcherId>)>,
    wake: bool,
    closed: bool,
}

/// One take of the inbox.
#[derive(Default)]
struct Grab {
    revs: VecDeque<(i64, Arc<Vec<Event>>)>,
    lost: Option<i64>,
    progress: Vec<(StreamId, Option<WatcherId>)>,
}

fn event_bytes(events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().map_or(0, |kv| kv.key.len() + kv.value.len());
            let prev = e
                .prev_kv
                .as_ref()
                .map_or(0, |kv| kv.key.len() + kv.value.len());
            kv + prev + 64
        })
        .sum()
}

impl Inbox {
    fn push_rev(&self, rev: i64, events: Arc<Vec<Event>>) {
        let bytes = event_bytes(&events);
        let mut s = self.state.lock().expect("inbox lock");
        if s.lost.is_some()
            || s.revs.len() >= MAX_QUEUED_REVS
            || (s.bytes + bytes > MAX_QUEUED_BYTES && !s.revs.is_empty())
        {
            s.lost = Some(s.lost.unwrap_or(rev).max(rev));
        } else {
            s.bytes += bytes;
            s.revs.push_back((rev, events));
        }
        let queued = s.revs.len();
        s.wake = true;
        drop(s);
        if self.streams.load(Ordering::SeqCst) > 0 || queued >= LAZY_REVS {
            self.cv.notify_one();
        }
    }

    fn push_progress(&self, stream: StreamId, watcher: Option<WatcherId>) {
        let mut s = self.state.lock().expect("inbox lock");
        s.progress.push((stream, watcher));
        s.wake = true;
        drop(s);
        self.cv.notify_one();
    }

    fn wake(&self) {
        self.state.lock().expect("inbox lock").wake = true;
        self.cv.notify_one();
    }

    fn close(&self) {
        self.state.lock().expect("inbox lock").closed = true;
        self.cv.notify_one();
    }

    /// Wait up to `timeout` for something to do; `None` once closed.
    fn take(&self, timeout: Duration) -> Option<Grab> {
        let mut s = self.state.lock().expect("inbox lock");
        if !s.wake && !s.closed && !timeout.is_zero() {
            s = self
                .cv
                .wait_timeout_while(s, timeout, |s| !s.wake && !s.closed)
                .expect("inbox lock")
                .0;
        }
        if s.closed {
            return None;
        }
        s.wake = false;
        s.bytes = 0;
        Some(Grab {
            revs: std::mem::take(&mut s.revs),
            lost: s.lost.take(),
            progress: std::mem::take(&mut s.progress),
        })
    }

    #[cfg(test)]
    fn queued(&self) -> usize {
        self.state.lock().expect("inbox lock").revs.len()
    }
}

impl WatchableStore {
    /// Create the store and start its hub thread.
    pub fn start(kv: Arc<RwLock<KvStore>>) -> Arc<Self> {
        let hub_rev = kv.read().expect("kv lock").current_rev();
        let mut group = WatcherGroup::default();
        group.hub_rev = hub_rev;
        let ws = Arc::new(Self {
            kv,
            group: Mutex::new(group),
            inbox: Arc::new(Inbox {
                state: Mutex::default(),
                cv: Condvar::new(),
                streams: AtomicUsize::new(0),
            }),
            next_stream: AtomicU64::new(1),
        });
        let (weak, inbox) = (Arc::downgrade(&ws), ws.inbox.clone());
        std::thread::Builder::new()
            .name("watch-hub".into())
            .spawn(move || hub(weak, inbox))
            .expect("spawn the watch hub thread");
        ws
    }

    /// Queue the events of an applied revision. Never waits. Every revision the store
    /// reaches must be published (or [`Self::resync_all`] called), in order.
    pub fn publish(&self, rev: i64, events: Arc<Vec<Event>>) {
        self.inbox.push_rev(rev, events);
    }

    /// Catch every watcher up from the store again, e.g. after the store was replaced by
    /// a snapshot: no watcher misses or repeats an event across it.
    pub fn resync_all(&self) {
        let current = self.current_rev();
        let mut s = self.inbox.state.lock().expect("inbox lock");
        s.lost = Some(s.lost.unwrap_or(current).max(current));
        s.wake = true;
        drop(s);
        self.inbox.cv.notify_one();
    }

    /// A new client stream; its notices arrive on the receiver, at most `capacity` queued.
    pub fn new_stream(self: &Arc<Self>, capacity: usize) -> (WatchStream, mpsc::Receiver<Notice>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        self.inbox.streams.fetch_add(1, Ordering::SeqCst);
        self.group.lock().expect("group lock").add_stream(id, tx);
        (
            WatchStream {
                store: self.clone(),
                id,
            },
            rx,
        )
    }

    pub fn current_rev(&self) -> i64 {
        self.kv.read().expect("kv lock").current_rev()
    }

    /// (streams, watchers, unsynced watchers), for the metrics.
    pub fn counts(&self) -> (usize, usize, usize) {
        let g = self.group.lock().expect("group lock");
        (g.streams.len(), g.all.len(), g.unsynced.len())
    }

    /// Every watcher starts unsynced: the hub's next pass catches it up from `next_rev`
    /// (nothing to read when no write came in between) and syncs it. So a write applied
    /// while the watcher is being created is read from the store, never missed.
    pub(super) fn watch(&self, stream: StreamId, spec: WatchSpec) -> (WatcherId, i64) {
        let current = self.current_rev();
        let next_rev = if spec.start_rev <= 0 {
            current + 1
        } else {
            spec.start_rev
        };
        let mut g = self.group.lock().expect("group lock");
        let id = g.add(stream, spec, next_rev);
        g.sent(stream, current);
        drop(g);
        self.inbox.wake();
        // A gone stream gets a watcher id nobody knows; its stream sees nothing more.
        (id.unwrap_or(WatcherId::MAX), current)
    }

    pub(super) fn cancel(&self, stream: StreamId, id: WatcherId) {
        let mut g = self.group.lock().expect("group lock");
        if g.all.get(&id).is_some_and(|x| x.stream == stream) {
            g.remove(id);
        }
    }

    pub(super) fn close_stream(&self, stream: StreamId) {
        self.group.lock().expect("group lock").remove_stream(stream);
        self.inbox.streams.fetch_sub(1, Ordering::SeqCst);
    }

    pub(super) fn request_progress(&self, stream: StreamId, watcher: Option<WatcherId>) {
        self.inbox.push_progress(stream, watcher);
    }

    /// One round of the hub: live events, lost revisions, catch-up, progress. Returns
    /// whether another catch-up pass right away is useful.
    fn step(&self, grab: Grab) -> bool {
        let mut periodic = Vec::new();
        {
            let mut g = self.group.lock().expect("group lock");
            for (rev, events) in grab.revs {
                notify(&mut g, rev, events);
            }
            if let Some(lost) = grab.lost {
                // Revisions up to `lost` never reached the hub: catch everyone up.
                g.mark_all_unsynced();
                g.hub_rev = g.hub_rev.max(lost);
            }
            for (stream, watcher) in grab.progress {
                match watcher {
                    None => {
                        if g.streams.contains_key(&stream) {
                            g.progress_waiting.insert(stream);
                        }
                    }
                    Some(id) => periodic.push(id),
                }
            }
        }
        let more = self.sync_unsynced();
        let mut g = self.group.lock().expect("group lock");
        for id in periodic {
            periodic_progress(&mut g, id);
        }
        answer_progress_requests(&mut g);
        more
    }

    /// Catch unsynced watchers up from the store, at most [`CATCH_UP_MAX_REVS`] revisions
    /// of history per pass. Watchers whose stream has no room are left for a later pass.
    /// Returns whether a watcher advanced and is still behind.
    fn sync_unsynced(&self) -> bool {
        let candidates: Vec<(WatcherId, i64)> = {
            let g = self.group.lock().expect("group lock");
            g.unsynced
                .iter()
                .filter_map(|id| g.all.get(id).map(|x| (*id, x)))
                .filter(|(_, x)| x.tx.capacity() > 0 || x.tx.is_closed())
                .map(|(id, x)| (id, x.next_rev))
                .collect()
        };
        if candidates.is_empty() {
            return false;
        }
        let (current, compact, upto, history) = {
            let kv = self.kv.read().expect("kv lock");
            let (current, compact) = (kv.current_rev(), kv.compact_rev());
            let from = candidates
                .iter()
                .map(|(_, next)| *next)
                .filter(|next| compact == 0 || *next >= compact)
                .min()
                .unwrap_or(current + 1)
                .max(1);
            let upto = current.min(from + CATCH_UP_MAX_REVS - 1);
            let history = if from <= upto {
                match kv.events_between(from, upto) {
                    Ok(h) => h,
                    Err(e) => {
                        // Nothing advances: the same watchers are tried again later.
                        tracing::warn!(
                            "watch catch-up of revisions {from}..={upto} failed, retrying: {e}"
                        );
                        return false;
                    }
                }
            } else {
                Vec::new()
            };
            (current, compact, upto, history)
        };
        let history: Vec<(i64, Arc<Event>)> = history
            .into_iter()
            .map(|(r, ev)| (r.main, Arc::new(ev)))
            .collect();
        let mut g = self.group.lock().expect("group lock");
        let wanted: HashSet<WatcherId> = candidates.iter().map(|(id, _)| *id).collect();
        // The events of each candidate, found through the group's key index.
        let mut matched: HashMap<WatcherId, Vec<Arc<Event>>> = HashMap::new();
        let ranges: Vec<WatcherId> = candidates
            .iter()
            .filter(|(id, _)| {
                g.all
                    .get(id)
                    .is_some_and(|x| matches!(x.spec.range, KeyRange::Range { .. }))
            })
            .map(|(id, _)| *id)
            .collect();
        for (rev, ev) in &history {
            let Some(kv) = &ev.kv else { continue };
            let singles = g.singles(&kv.key).filter(|id| wanted.contains(id));
            for id in singles.chain(ranges.iter().copied()) {
                if let Some(x) = g.all.get(&id) {
                    if *rev >= x.next_rev && x.spec.wants(ev) {
                        matched.entry(id).or_default().push(ev.clone());
                    }
                }
            }
        }
        let mut behind = false;
        for (id, _) in candidates {
            let Some(x) = g.all.get(&id) else { continue };
            if x.synced {
                continue;
            }
            let (stream, watch_id, next) = (x.stream, x.spec.watch_id, x.next_rev);
            if compact > 0 && next < compact {
                let notice = Notice::Compacted {
                    watch_id,
                    compact_rev: compact,
                };
                match x.tx.try_send(notice) {
                    // No room: the cancel is retried on a later pass.
                    Err(mpsc::error::TrySendError::Full(_)) => {}
                    _ => g.remove(id),
                }
                continue;
            }
            if let Some(events) = matched.remove(&id) {
                let notice = Notice::Events {
                    watch_id,
                    rev: upto,
                    events,
                };
                match x.tx.try_send(notice) {
                    Ok(()) => g.sent(stream, upto),
                    Err(mpsc::error::TrySendError::Full(_)) => continue,
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        g.remove(id);
                        continue;
                    }
                }
            }
            let next = next.max(upto + 1);
            if let Some(x) = g.all.get_mut(&id) {
                x.next_rev = next;
            }
            if next > current {
                g.mark_synced(id);
            } else {
                behind = true;
            }
        }
        behind
    }
}

impl Drop for WatchableStore {
    fn drop(&mut self) {
        self.inbox.close();
    }
}

/// Live delivery of one revision to synced watchers.
fn notify(g: &mut WatcherGroup, rev: i64, events: Arc<Vec<Event>>) {
    // The apply loop let go of its reference: the events move into shared cells.
    let events: Vec<Arc<Event>> = Arc::try_unwrap(events)
        .unwrap_or_else(|shared| (*shared).clone())
        .into_iter()
        .map(Arc::new)
        .collect();
    let mut matched: HashMap<WatcherId, Vec<Arc<Event>>> = HashMap::new();
    for ev in &events {
        let Some(kv) = &ev.kv else { continue };
        g.for_key(&kv.key, |id, x| {
            if x.synced && x.next_rev <= rev && x.spec.wants(ev) {
                matched.entry(id).or_default().push(ev.clone());
            }
        });
    }
    for (id, evs) in matched {
        let Some(x) = g.all.get(&id) else { continue };
        let stream = x.stream;
        let notice = Notice::Events {
            watch_id: x.spec.watch_id,
            rev,
            events: evs,
        };
        match x.tx.try_send(notice) {
            Ok(()) => {
                if let Some(x) = g.all.get_mut(&id) {
                    x.next_rev = rev + 1;
                }
                g.sent(stream, rev);
            }
            // The stream is slow: catch this watcher up from the store, from `rev`.
            Err(mpsc::error::TrySendError::Full(_)) => g.mark_unsynced(id, rev),
            Err(mpsc::error::TrySendError::Closed(_)) => g.remove(id),
        }
    }
    g.hub_rev = g.hub_rev.max(rev);
}

/// A periodic progress notification for one watcher, if it can be sent now (etcd skips
/// unsynced watchers and watchers that start in the future).
fn periodic_progress(g: &mut WatcherGroup, id: WatcherId) {
    let rev = g.hub_rev;
    let Some(x) = g.all.get(&id) else { return };
    let Some(s) = g.streams.get(&x.stream) else {
        return;
    };
    if x.synced && rev >= s.max_sent && rev >= x.spec.start_rev {
        let _ = x.tx.try_send(Notice::Progress {
            watch_id: Some(x.spec.watch_id),
            rev,
        });
    }
}

/// Answer the progress requests of streams whose watchers are all synced; the others wait.
fn answer_progress_requests(g: &mut WatcherGroup) {
    if g.progress_waiting.is_empty() {
        return;
    }
    let rev = g.hub_rev;
    let mut done = Vec::new();
    for id in &g.progress_waiting {
        let Some(s) = g.streams.get(id) else {
            done.push(*id);
            continue;
        };
        if s.unsynced > 0 || rev < s.max_sent {
            continue;
        }
        let notice = Notice::Progress {
            watch_id: None,
            rev,
        };
        if !matches!(
            s.tx.try_send(notice),
            Err(mpsc::error::TrySendError::Full(_))
        ) {
            done.push(*id);
        }
    }
    for id in done {
        g.progress_waiting.remove(&id);
    }
}

/// The hub thread: one step per wake-up, and at least one every [`RETRY`]. Each step
/// takes the inbox first, so catch-up passes back to back never hold live events back.
fn hub(ws: Weak<WatchableStore>, inbox: Arc<Inbox>) {
    let mut more = false;
    loop {
        let wait = if more { Duration::ZERO } else { RETRY };
        let Some(grab) = inbox.take(wait) else { return };
        let Some(store) = ws.upgrade() else { return };
        more = store.step(grab);
    }
}

#[cfg(test)]
#[path = "watchable_store_tests.rs"]
mod tests;

//! A local cache of one namespace (a key prefix), kept in step with the store by a background
//! task that lists the prefix at one revision and watches it from the next (layer `meta`).
//!
//! The task owns the whole life of the cache: the paginated list, the watch, its resumption
//! after a broken stream, and a fresh list after a compaction. Readers ([`Watcher::get`],
//! [`Watcher::list`], [`Watcher::revision`]) see a state the store really had, and each
//! subscriber ([`Watcher::subscribe`]) gets a snapshot plus the stream of [`Change`]s after it.
//! Like the rest of `meta`, it speaks only through [`Client`] and never imports the server.
//!
//! # Life of the task
//!
//! ```text
//!   list at R (pages pinned at R) ──compacted──> list again at a newer R
//!      │ install: diff(old cache, list) → changes at R
//!      v
//!   watch from revision()+1 ──events──> apply, publish
//!      │ compact_revision != 0 ───────────────> list again (and diff)
//!      │ stream error / end / cancel / stall ─> backoff, watch from revision()+1
//! ```
//!
//! # To ensure correctness
//!
//! - **One revision per state.** The list reads every page with `revision = R`, R being the
//!   header revision of its first page. If R is compacted between pages the list starts
//!   over; a half-read list is never installed. So the cache always equals a fresh range of
//!   the prefix at `revision = cache.revision()`.
//! - **No gaps, no repeats.** The watch always starts at `revision() + 1`, and etcd never
//!   splits one revision across watch responses (we do not ask for fragments), so a
//!   resumed watch continues exactly after the last applied revision. Events at or below the
//!   cache's revision are dropped (a server replaying them would be wrong; we log it).
//! - **Compaction is a diff.** When the next revision is gone, the task lists again at a new
//!   revision R and hands subscribers the exact difference between the old cache and the new
//!   list: a put for each new or changed key (another `mod_revision`), a delete for each
//!   vanished key, all at revision R, marked [`Cause::Relist`]. Applied to the old state
//!   they give the new one; the intermediate revisions are lost, as they are for etcd.
//! - **Revision order.** Changes reach subscribers in revision order; changes of one
//!   revision (a txn, or a relist) are consecutive and in key order.
//! - **Readiness.** [`Watcher::ready`] resolves once the first list is installed. The list is
//!   pinned at the header revision of its first page, a fresh linearizable read, so the cache
//!   is then caught up with the server's revision at start.
//! - **Progress requests only prove liveness.** The task sends a progress request when the
//!   stream has been quiet for `progress_interval` and treats the stream as broken when
//!   nothing at all arrives within `stall_timeout` (a half-open connection, a stalled
//!   proxy). It does not advance `revision()` from a progress header: etcd before 3.4.25 and
//!   3.5.8 answers a progress request with the store's revision even while the watcher still
//!   has older events to send (etcd#15220). So `revision()` moves only with a list or with
//!   events of the prefix.
//! - **A member change** shows up as a broken or ended stream; the resume from
//!   `revision() + 1` makes it invisible to subscribers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Event, EventType, GetOptions, KeyValue, WatchOptions};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant};

use super::{prefix_end, Client, Error, Result};

/// Called after each page of a list that has more pages to come (tests use it to compact
/// between pages; it may also feed metrics). The next page is read when the future ends.
pub type PageHook = Arc<dyn Fn(Page) -> BoxFuture<'static, ()> + Send + Sync>;

/// One page of a list, as handed to a [`PageHook`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The revision every page of this list is pinned at.
    pub revision: i64,
    /// 1 for the first page.
    pub number: usize,
    /// The last key read so far.
    pub last_key: Vec<u8>,
}

/// How the watcher lists, watches and retries.
#[derive(Clone)]
pub struct Options {
    /// Keys per list page (the range `limit`).
    pub page_size: i64,
    /// Ask for progress when the stream has been quiet this long.
    pub progress_interval: Duration,
    /// Treat the stream as broken when a progress request gets no message this long.
    pub stall_timeout: Duration,
    /// The limit on one list page or on opening a watch stream.
    pub request_timeout: Duration,
    /// The first pause after a failure; it doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub on_page: Option<PageHook>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: 500,
            progress_interval: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            on_page: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("page_size", &self.page_size)
            .field("progress_interval", &self.progress_interval)
            .field("stall_timeout", &self.stall_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .field("on_page", &self.on_page.is_some())
            .finish()
    }
}

/// One key's value as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

impl From<&KeyValue> for Entry {
    fn from(kv: &KeyValue) -> Self {
        Entry {
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        }
    }
}

/// Why a change was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A watch event: exactly one write of the store.
    Watch,
    /// The difference between the cache and a list (the first one, or one after a
    /// compaction); revisions between the two states are not reported.
    Relist,
}

/// One change of the cache: `entry` is the new value, `None` for a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The revision at which the cache reflects this change.
    pub revision: i64,
    pub key: Vec<u8>,
    pub entry: Option<Entry>,
    pub cause: Cause,
}

/// The cache at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// 0 before the first list is installed.
    pub revision: i64,
    pub entries: BTreeMap<Vec<u8>, Entry>,
}

/// A subscriber's starting point and every change after it.
///
/// The channel is unbounded and per subscriber, so a slow subscriber never loses a change
/// (it holds memory instead); dropping the receiver unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    pub snapshot: Snapshot,
    pub changes: mpsc::UnboundedReceiver<Change>,
}

/// Counters of the task's work, for tests and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lists installed (the first one included).
    pub lists: u64,
    /// Times a compaction forced a list to start over or the watch to relist.
    pub compactions: u64,
    /// Watch streams that broke, ended, were canceled or stalled (and were resumed).
    pub broken_streams: u64,
    pub last_error: Option<String>,
}

struct State {
    snapshot: Snapshot,
    subscribers: Vec<mpsc::UnboundedSender<Change>>,
}

struct Shared {
    state: Mutex<State>,
    revision: watch::Sender<i64>,
    lists: AtomicU64,
    compactions: AtomicU64,
    broken_streams: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The handle of a namespace cache; dropping it stops the background task.
pub struct Watcher {
    shared: Arc<Shared>,
    prefix: Vec<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Start caching every key under `prefix` (must not be empty) in a background task on
    /// the current tokio runtime.
    pub fn start(client: Client, prefix: impl Into<Vec<u8>>, options: Options) -> Result<Watcher> {
        let prefix = prefix.into();
        if prefix.is_empty() {
            return Err(Error::Invalid("a watcher needs a non-empty prefix".into()));
        }
        if options.page_size <= 0 {
            return Err(Error::Invalid(
                "a watcher's page size must be positive".into(),
            ));
        }
        let durations = [
            options.progress_interval,
            options.stall_timeout,
            options.request_timeout,
        ];
        if durations.iter().any(Duration::is_zero) {
            return Err(Error::Invalid(
                "a watcher's intervals and timeouts must be positive".into(),
            ));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                snapshot: Snapshot::default(),
                subscribers: Vec::new(),
            }),
            revision: watch::Sender::new(0),
            lists: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            broken_streams: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        let task = Task {
            client,
            prefix: prefix.clone(),
            options,
            shared: shared.clone(),
        };
        let task = tokio::spawn(task.run());
        Ok(Watcher {
            shared,
            prefix,
            task,
        })
    }

    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Resolves once the first list is installed: the cache has then caught up with the
    /// server's revision at start (see the module doc).
    pub async fn ready(&self) {
        self.wait_for(1).await
    }

    /// Resolves once `revision() >= revision`. Only a list or an event of the prefix moves
    /// the cache's revision, so wait for the revision of a write under the prefix.
    pub async fn wait_for(&self, revision: i64) {
        let mut rx = self.shared.revision.subscribe();
        // the sender lives in `self.shared`, so it outlives this borrow and never closes
        let _ = rx.wait_for(|r| *r >= revision).await;
    }

    /// The revision the cache reflects (0 before the first list).
    pub fn revision(&self) -> i64 {
        self.shared.lock().snapshot.revision
    }

    pub fn get(&self, key: &[u8]) -> Option<Entry> {
        self.shared.lock().snapshot.entries.get(key).cloned()
    }

    /// Every cached key, sorted.
    pub fn list(&self) -> Vec<(Vec<u8>, Entry)> {
        let state = self.shared.lock();
        let entries = &state.snapshot.entries;
        entries
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// The cache and its revision, read together.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.lock().snapshot.clone()
    }

    /// A snapshot and every change after it, taken together.
    pub fn subscribe(&self) -> Subscription {
        let mut state = self.shared.lock();
        let (tx, changes) = mpsc::unbounded_channel();
        state.subscribers.push(tx);
        Subscription {
            snapshot: state.snapshot.clone(),
            changes,
        }
    }

    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            lists: s.lists.load(Ordering::Relaxed),
            compactions: s.compactions.load(Ordering::Relaxed),
            broken_streams: s.broken_streams.load(Ordering::Relaxed),
            last_error: s.last_error.lock().expect("error slot poisoned").clone(),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("watcher state poisoned")
    }

    fn note_error(&self, what: &str, error: &str) {
        tracing::warn!("meta watcher: {what}: {error}");
        *self.last_error.lock().expect("error slot poisoned") = Some(format!("{what}: {error}"));
    }

    /// Replace the cache with a list, publishing the difference. Refuses a list older than
    /// the cache, which would take subscribers back in time.
    fn install(&self, listed: Snapshot) -> std::result::Result<(), String> {
        let mut state = self.lock();
        if listed.revision < state.snapshot.revision {
            let (listed, cached) = (listed.revision, state.snapshot.revision);
            return Err(format!(
                "listed revision {listed} is older than the cache's {cached}"
            ));
        }
        let changes = diff(&state.snapshot.entries, &listed.entries, listed.revision);
        state.snapshot = listed;
        // counted before the revision moves, so whoever sees the revision sees the count
        self.lists.fetch_add(1, Ordering::Relaxed);
        self.publish(&mut state, changes);
        Ok(())
    }

    /// Apply the events of one watch response.
    fn apply(&self, events: &[Event]) {
        let mut state = self.lock();
        let floor = state.snapshot.revision;
        let mut changes = Vec::with_capacity(events.len());
        for event in events {
            let Some(kv) = event.kv() else {
                tracing::warn!("meta watcher: an event without a key-value; skipped");
                continue;
            };
            if kv.mod_revision() <= floor {
                tracing::warn!(
                    "meta watcher: event at revision {} not after {floor}; skipped",
                    kv.mod_revision()
                );
                continue;
            }
            changes.push(change_of(event.event_type(), kv));
        }
        for change in &changes {
            let entries = &mut state.snapshot.entries;
            match &change.entry {
                Some(entry) => entries.insert(change.key.clone(), entry.clone()),
                None => entries.remove(&change.key),
            };
            state.snapshot.revision = change.revision;
        }
        self.publish(&mut state, changes);
    }

    /// Hand changes to every live subscriber and move the published revision, under the
    /// state lock so a new subscriber's snapshot and its first change line up.
    fn publish(&self, state: &mut State, changes: Vec<Change>) {
        if !changes.is_empty() {
            state
                .subscribers
                .retain(|tx| changes.iter().all(|c| tx.send(c.clone()).is_ok()));
        }
        self.revision.send_replace(state.snapshot.revision);
    }
}

fn change_of(kind: EventType, kv: &KeyValue) -> Change {
    Change {
        revision: kv.mod_revision(),
        key: kv.key().to_vec(),
        entry: (kind == EventType::Put).then(|| Entry::from(kv)),
        cause: Cause::Watch,
    }
}

/// The changes that turn `old` into `new`, all at `revision`, in key order: a put for each
/// key that is new or has another `mod_revision`, a delete for each key that is gone.
///
/// ```text
/// old {a@3, b@4, c@5}   new {a@3, b@9, d@8}   →   put b@9, delete c, put d@8
/// ```
pub fn diff(
    old: &BTreeMap<Vec<u8>, Entry>,
    new: &BTreeMap<Vec<u8>, Entry>,
    revision: i64,
) -> Vec<Change> {
    let change = |key: &Vec<u8>, entry: Option<&Entry>| Change {
        revision,
        key: key.clone(),
        entry: entry.cloned(),
        cause: Cause::Relist,
    };
    let puts = new
        .iter()
        .filter(|(k, e)| old.get(*k).map(|o| o.mod_revision) != Some(e.mod_revision))
        .map(|(k, e)| change(k, Some(e)));
    let deletes = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| change(k, None));
    let mut changes: Vec<Change> = puts.chain(deletes).collect();
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    changes
}

/// Whether etcd refused a read or watch because the revision is compacted.
fn is_compacted(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(s)
        if s.code() == tonic::Code::OutOfRange && s.message().contains(crate::rpctypes::COMPACTED))
}

/// How a watch stream ended.
enum StreamEnd {
    /// The next revision is compacted: list again.
    Compacted(i64),
    /// Anything else: resume from the next revision after a pause.
    Broken(String),
}

/// How a list ended when it installed nothing.
enum ListEnd {
    Compacted,
    Failed(String),
}

struct Task {
    client: Client,
    prefix: Vec<u8>,
    options: Options,
    shared: Arc<Shared>,
}

impl Task {
    async fn run(mut self) {
        let mut backoff = Backoff::new(&self.options);
        loop {
            let failure = match self.list().await {
                Ok(listed) => self.shared.install(listed).err(),
                Err(ListEnd::Compacted) => {
                    self.shared.compactions.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(ListEnd::Failed(error)) => Some(error),
            };
            if let Some(error) = failure {
                self.shared.note_error("list", &error);
                backoff.pause().await;
                continue;
            }
            backoff.reset();
            self.watch_until_compacted(&mut backoff).await;
            self.shared.compactions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Watch from the cache's next revision, resuming after every break, until that
    /// revision is compacted.
    async fn watch_until_compacted(&mut self, backoff: &mut Backoff) {
        loop {
            match self.watch(backoff).await {
                StreamEnd::Compacted(at) => {
                    tracing::info!("meta watcher: compacted at {at}; listing again");
                    return;
                }
                StreamEnd::Broken(error) => {
                    self.shared.broken_streams.fetch_add(1, Ordering::Relaxed);
                    self.shared.note_error("watch", &error);
                    backoff.pause().await;
                }
            }
        }
    }

    /// Read the whole prefix at one revision, page by page.
    async fn list(&mut self) -> std::result::Result<Snapshot, ListEnd> {
        let end = prefix_end(&self.prefix);
        let mut listed = Snapshot::default();
        let mut from = self.prefix.clone();
        for number in 1.. {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(self.options.page_size);
            if listed.revision != 0 {
                options = options.with_revision(listed.revision);
            }
            let read = timeout(
                self.options.request_timeout,
                self.client.get(from.clone(), Some(options)),
            );
            let page = match read.await {
                Ok(Ok(page)) => page,
                Ok(Err(e)) if is_compacted(&e) => return Err(ListEnd::Compacted),
                Ok(Err(e)) => return Err(ListEnd::Failed(e.to_string())),
                Err(_) => return Err(ListEnd::Failed("a list page timed out".into())),
            };
            if listed.revision == 0 {
                let header = page
                    .header()
                    .ok_or_else(|| ListEnd::Failed("no header".into()))?;
                listed.revision = header.revision();
            }
            for kv in page.kvs() {
                listed.entries.insert(kv.key().to_vec(), Entry::from(kv));
            }
            let (Some(last), true) = (page.kvs().last(), page.more()) else {
                break;
            };
            from = last.key().to_vec();
            from.push(0);
            if let Some(hook) = &self.options.on_page {
                let last_key = last.key().to_vec();
                let revision = listed.revision;
                hook(Page {
                    revision,
                    number,
                    last_key,
                })
                .await;
            }
        }
        Ok(listed)
    }

    /// One watch stream from `revision() + 1` until it ends.
    async fn watch(&mut self, backoff: &mut Backoff) -> StreamEnd {
        let start = self.shared.lock().snapshot.revision + 1;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(start)
            .with_progress_notify();
        let open = self.client.watch(self.prefix.clone(), Some(options));
        let mut stream = match timeout(self.options.request_timeout, open).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return StreamEnd::Broken(e.to_string()),
            Err(_) => return StreamEnd::Broken("opening the watch timed out".into()),
        };
        let mut liveness = Liveness::new(&self.options);
        let mut tick =
            tokio::time::interval(self.options.progress_interval.min(liveness.stall) / 4);
        loop {
            tokio::select! {
                message = stream.message() => {
                    let response = match message {
                        Ok(Some(response)) => response,
                        Ok(None) => return StreamEnd::Broken("the server ended the stream".into()),
                        Err(e) => return StreamEnd::Broken(e.to_string()),
                    };
                    liveness.heard();
                    if response.compact_revision() != 0 {
                        return StreamEnd::Compacted(response.compact_revision());
                    }
                    if response.canceled() {
                        let reason = response.cancel_reason();
                        return StreamEnd::Broken(format!("watch canceled: {reason}"));
                    }
                    if !response.created() {
                        // events or a progress answer: the stream works
                        backoff.reset();
                    }
                    self.shared.apply(response.events());
                }
                _ = tick.tick() => {
                    if liveness.stalled() {
                        return StreamEnd::Broken("no answer to a progress request".into());
                    }
                    if liveness.should_ask() {
                        if let Err(e) = stream.request_progress().await {
                            return StreamEnd::Broken(e.to_string());
                        }
                        liveness.asked();
                    }
                }
            }
        }
    }
}

/// When to ask a quiet stream for progress, and when to give up on it.
struct Liveness {
    quiet: Duration,
    stall: Duration,
    last_heard: Instant,
    asked_at: Option<Instant>,
}

impl Liveness {
    fn new(options: &Options) -> Self {
        Liveness {
            quiet: options.progress_interval,
            stall: options.stall_timeout,
            last_heard: Instant::now(),
            asked_at: None,
        }
    }

    fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.asked_at = None;
    }

    fn should_ask(&self) -> bool {
        self.asked_at.is_none() && self.last_heard.elapsed() >= self.quiet
    }

    fn asked(&mut self) {
        self.asked_at = Some(Instant::now());
    }

    fn stalled(&self) -> bool {
        self.asked_at.is_some_and(|at| at.elapsed() >= self.stall)
    }
}

/// Exponential backoff with jitter between `backoff_min` and `backoff_max`.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(options: &Options) -> Self {
        Backoff {
            min: options.backoff_min,
            max: options.backoff_max.max(options.backoff_min),
            next: options.backoff_min,
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    async fn pause(&mut self) {
        use rand::Rng;
        let jitter = rand::thread_rng().gen_range(0.5..=1.0);
        let pause = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(self.max);
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mod_revision: i64) -> Entry {
        Entry {
            value: format!("v{mod_revision}").into_bytes(),
            create_revision: 1,
            mod_revision,
            version: 1,
            lease: 0,
        }
    }

    fn map(items: &[(&str, i64)]) -> BTreeMap<Vec<u8>, Entry> {
        items
            .iter()
            .map(|(k, r)| (k.as_bytes().to_vec(), entry(*r)))
            .collect()
    }

    /// (key, Some(mod_revision) for a put / None for a delete)
    fn summary(changes: &[Change]) -> Vec<(String, Option<i64>)> {
        changes
            .iter()
            .map(|c| {
                assert_eq!(c.revision, 10);
                assert_eq!(c.cause, Cause::Relist);
                let key = String::from_utf8(c.key.clone()).unwrap();
                (key, c.entry.as_ref().map(|e| e.mod_revision))
            })
            .collect()
    }

    #[test]
    fn diff_puts_new_and_changed_keys_and_deletes_vanished_ones() {
        type Case = (
            &'static [(&'static str, i64)],
            &'static [(&'static str, i64)],
            Vec<(&'static str, Option<i64>)>,
        );
        let cases: Vec<Case> = vec![
            (&[], &[], vec![]),
            (&[], &[("a", 3)], vec![("a", Some(3))]),
            (&[("a", 3)], &[], vec![("a", None)]),
            (&[("a", 3)], &[("a", 3)], vec![]),
            (
                &[("a", 3), ("b", 4), ("c", 5)],
                &[("a", 3), ("b", 9), ("d", 8)],
                vec![("b", Some(9)), ("c", None), ("d", Some(8))],
            ),
        ];
        for (old, new, want) in cases {
            let got = summary(&diff(&map(old), &map(new), 10));
            let want: Vec<_> = want.into_iter().map(|(k, r)| (k.to_string(), r)).collect();
            assert_eq!(got, want, "old {old:?} new {new:?}");
        }
    }

    #[test]
    fn diff_applied_to_old_gives_new() {
        let old = map(&[("a", 1), ("b", 2), ("c", 3), ("e", 4)]);
        let new = map(&[("b", 7), ("c", 3), ("d", 8)]);
        let mut state = old.clone();
        for c in diff(&old, &new, 10) {
            match c.entry {
                Some(e) => state.insert(c.key, e),
                None => state.remove(&c.key),
            };
        }
        assert_eq!(state, new);
    }

    #[test]
    fn liveness_asks_when_quiet_and_gives_up_when_unanswered() {
        let options = Options {
            progress_interval: Duration::ZERO,
            stall_timeout: Duration::ZERO,
            ..Options::default()
        };
        let mut l = Liveness::new(&options);
        assert!(l.should_ask() && !l.stalled());
        l.asked();
        assert!(!l.should_ask() && l.stalled());
        l.heard();
        assert!(!l.stalled());
    }
}

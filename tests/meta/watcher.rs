//! The revision-safe watcher under compaction, broken streams, restarts and volume. Every
//! test checks two things: the cache equals a fresh range of the prefix at the cache's
//! revision, and a subscriber's changes applied to its snapshot replay the test's write
//! history with no gap and no repeat (a relist may skip revisions, and then its changes are
//! exactly the difference between the two states).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{GetOptions, Txn, TxnOp};
use metastore::meta::watcher::{
    Cause, Change, Entry, Options, Page, PageHook, Subscription, Watcher,
};
use metastore::meta::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::{eventually, Env};

/// Short timeouts so a break is noticed and resumed well inside a test's time.
fn test_options() -> Options {
    Options {
        page_size: 100,
        progress_interval: Duration::from_millis(200),
        stall_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(500),
        on_page: None,
    }
}

fn key(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:05}")
}

/// A key's value and mod revision.
type Version = (Vec<u8>, i64);
type State = BTreeMap<Vec<u8>, Version>;

/// One key written: its new value, or None for a delete.
type Write = (Vec<u8>, Option<Vec<u8>>);

/// Every write the test made under the prefix, by revision.
#[derive(Default)]
struct History {
    writes: BTreeMap<i64, Vec<Write>>,
}

impl History {
    fn state_at(&self, revision: i64) -> State {
        let mut state = State::new();
        for (rev, writes) in self.writes.range(..=revision) {
            for (key, value) in writes {
                match value {
                    Some(v) => state.insert(key.clone(), (v.clone(), *rev)),
                    None => state.remove(key),
                };
            }
        }
        state
    }
}

type Shared = Arc<Mutex<History>>;

/// One txn of puts (`Some`) and deletes (`None`, of keys that exist), recorded.
async fn write(client: &mut Client, history: &Shared, ops: Vec<(String, Option<String>)>) -> i64 {
    let txn_ops: Vec<TxnOp> = ops
        .iter()
        .map(|(k, v)| match v {
            Some(v) => TxnOp::put(k.as_str(), v.as_str(), None),
            None => TxnOp::delete(k.as_str(), None),
        })
        .collect();
    let resp = client.txn(Txn::new().and_then(txn_ops)).await.expect("txn");
    let revision = resp.header().expect("header").revision();
    let recorded = ops
        .into_iter()
        .map(|(k, v)| (k.into_bytes(), v.map(String::into_bytes)))
        .collect();
    let mut history = history.lock().unwrap();
    assert!(
        history.writes.insert(revision, recorded).is_none(),
        "revision {revision} twice"
    );
    revision
}

async fn put(client: &mut Client, history: &Shared, key: &str, value: &str) -> i64 {
    write(
        client,
        history,
        vec![(key.to_string(), Some(value.to_string()))],
    )
    .await
}

/// Put `value` under the keys numbered `range`; the revision of the last put.
async fn put_range(
    client: &mut Client,
    history: &Shared,
    prefix: &str,
    range: std::ops::Range<usize>,
    value: &str,
) -> i64 {
    let mut last = 0;
    for i in range {
        last = put(client, history, &key(prefix, i), value).await;
    }
    last
}

async fn delete(client: &mut Client, history: &Shared, key: &str) -> i64 {
    write(client, history, vec![(key.to_string(), None)]).await
}

async fn caught_up(watcher: &Watcher, revision: i64) {
    let wait = tokio::time::timeout(Duration::from_secs(12), watcher.wait_for(revision));
    if wait.await.is_err() {
        let (at, stats) = (watcher.revision(), watcher.stats());
        panic!("cache stuck at {at} < {revision}: {stats:?}");
    }
}

async fn ready(watcher: &Watcher) {
    let wait = tokio::time::timeout(Duration::from_secs(12), watcher.ready());
    wait.await
        .unwrap_or_else(|_| panic!("never ready: {:?}", watcher.stats()));
}

/// A watcher of `prefix` that is ready, and a subscription to it.
async fn started(client: Client, prefix: &str, options: Options) -> (Watcher, Subscription) {
    let watcher = Watcher::start(client, prefix, options).unwrap();
    ready(&watcher).await;
    let sub = watcher.subscribe();
    (watcher, sub)
}

/// The cache equals a fresh range of the prefix at the cache's revision.
async fn assert_matches_store(client: &mut Client, watcher: &Watcher) {
    let snapshot = watcher.snapshot();
    let options = GetOptions::new()
        .with_prefix()
        .with_revision(snapshot.revision);
    let resp = client
        .get(watcher.prefix(), Some(options))
        .await
        .expect("get at the cache's revision");
    let fresh: BTreeMap<Vec<u8>, Entry> = resp
        .kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), Entry::from(kv)))
        .collect();
    assert_eq!(
        snapshot.entries, fresh,
        "cache at {} differs from the store",
        snapshot.revision
    );
}

fn versions(entries: &BTreeMap<Vec<u8>, Entry>) -> State {
    let version = |e: &Entry| (e.value.clone(), e.mod_revision);
    entries
        .iter()
        .map(|(k, e)| (k.clone(), version(e)))
        .collect()
}

/// One revision's changes as key → new version (None: deleted); a key twice is a repeat.
fn group_changes(group: &[Change]) -> BTreeMap<Vec<u8>, Option<Version>> {
    let mut out = BTreeMap::new();
    for c in group {
        let version = c.entry.as_ref().map(|e| (e.value.clone(), e.mod_revision));
        assert!(
            out.insert(c.key.clone(), version).is_none(),
            "repeated change {c:?}"
        );
    }
    out
}

/// What a watch event at `revision` must carry: exactly the writes of that revision.
fn expected_watch(history: &History, revision: i64) -> BTreeMap<Vec<u8>, Option<Version>> {
    let writes = history
        .writes
        .get(&revision)
        .unwrap_or_else(|| panic!("no write at {revision}"));
    let version = |v: &Option<Vec<u8>>| v.clone().map(|v| (v, revision));
    writes
        .iter()
        .map(|(k, v)| (k.clone(), version(v)))
        .collect()
}

/// What a relist from `from` to `to` must carry: exactly the difference of the two states.
fn expected_relist(history: &History, from: i64, to: i64) -> BTreeMap<Vec<u8>, Option<Version>> {
    let (old, new) = (history.state_at(from), history.state_at(to));
    let keys: std::collections::BTreeSet<&Vec<u8>> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| (k.clone(), new.get(k).cloned()))
        .collect()
}

/// Drain the subscription (the test's writes are done and the cache has caught up) and
/// check it replays the history; returns how many relist groups it saw.
fn assert_replays_history(sub: &mut Subscription, history: &Shared, watcher: &Watcher) -> usize {
    let history = history.lock().unwrap();
    let end = watcher.snapshot();
    let mut changes = Vec::new();
    while let Ok(c) = sub.changes.try_recv() {
        changes.push(c);
    }
    let start = sub.snapshot.revision;
    let mut state = versions(&sub.snapshot.entries);
    assert_eq!(state, history.state_at(start), "snapshot at {start}");
    let (mut previous, mut relists) = (start, 0);
    for group in changes.chunk_by(|a, b| a.revision == b.revision) {
        let (revision, cause) = (group[0].revision, group[0].cause);
        assert!(revision > previous, "revision {revision} after {previous}");
        assert!(
            group.iter().all(|c| c.cause == cause),
            "mixed causes at {revision}"
        );
        let got = group_changes(group);
        let want = match cause {
            Cause::Watch => {
                let skipped = history.writes.range(previous + 1..revision).next();
                assert!(
                    skipped.is_none(),
                    "missed write {skipped:?} before {revision}"
                );
                expected_watch(&history, revision)
            }
            Cause::Relist => {
                relists += 1;
                expected_relist(&history, previous, revision)
            }
        };
        assert_eq!(
            got, want,
            "changes at {revision} (after {previous}, {cause:?})"
        );
        for (k, v) in got {
            match v {
                Some(v) => state.insert(k, v),
                None => state.remove(&k),
            };
        }
        previous = revision;
    }
    let last_write = history.writes.keys().next_back().copied().unwrap_or(0);
    assert!(
        end.revision >= last_write,
        "cache at {} before the last write {last_write}",
        end.revision
    );
    if let Some(skipped) = history.writes.range(previous + 1..).next() {
        panic!("missed write {skipped:?} after {previous}");
    }
    assert_eq!(
        state,
        versions(&end.entries),
        "replayed state differs from the cache"
    );
    assert_eq!(
        state,
        history.state_at(end.revision),
        "replayed state differs from the history"
    );
    relists
}

fn upstream(env: &Env) -> SocketAddr {
    let addr = env.endpoint.trim_start_matches("http://");
    addr.parse().expect("endpoint address")
}

/// A TCP proxy between the watcher's client and the server that a test can pause (every
/// connection stays open, no byte moves) or cut (every live connection closes).
struct Proxy {
    addr: SocketAddr,
    paused: watch::Sender<bool>,
    cuts: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let paused = watch::Sender::new(false);
        let cuts = watch::Sender::new(0u64);
        let (p, c) = (paused.subscribe(), cuts.subscribe());
        let accept = tokio::spawn(async move {
            while let Ok((downstream, _)) = listener.accept().await {
                if let Ok(up) = TcpStream::connect(upstream).await {
                    tokio::spawn(relay(downstream, up, p.clone(), c.clone()));
                }
            }
        });
        Proxy {
            addr,
            paused,
            cuts,
            accept,
        }
    }

    /// A client whose connections go through the proxy.
    async fn client(&self) -> Client {
        let endpoint = format!("http://{}", self.addr);
        Client::connect([endpoint], None).await.unwrap()
    }

    fn pause(&self) {
        self.paused.send_replace(true);
    }

    fn resume(&self) {
        self.paused.send_replace(false);
    }

    fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn relay(
    down: TcpStream,
    up: TcpStream,
    paused: watch::Receiver<bool>,
    mut cuts: watch::Receiver<u64>,
) {
    cuts.borrow_and_update();
    let (down_read, down_write) = down.into_split();
    let (up_read, up_write) = up.into_split();
    tokio::select! {
        _ = pipe(down_read, up_write, paused.clone()) => {}
        _ = pipe(up_read, down_write, paused) => {}
        _ = cuts.changed() => {}
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut paused: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // a read that began before a pause is held until the resume
        if paused.wait_for(|p| !*p).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A page hook that, once, after page 2, changes keys on both sides of the pages read so
/// far and compacts past the list's revision, so page 3 finds its revision gone.
fn compact_after_second_page(client: Client, history: Shared, prefix: String) -> PageHook {
    let fired = Arc::new(AtomicBool::new(false));
    Arc::new(move |page: Page| {
        let (mut client, history, prefix) = (client.clone(), history.clone(), prefix.clone());
        let first = page.number == 2 && !fired.swap(true, Ordering::SeqCst);
        Box::pin(async move {
            if !first {
                return;
            }
            put(&mut client, &history, &key(&prefix, 0), "changed").await;
            delete(&mut client, &history, &key(&prefix, 35)).await;
            let revision = put(&mut client, &history, &key(&prefix, 50), "new").await;
            assert!(revision > page.revision);
            client.compact(revision, None).await.expect("compact");
        })
    })
}

async fn watcher_relists_when_compacted_during_the_initial_list(env: &mut Env) {
    let prefix = env.layout.namespace("watched");
    let history = Shared::default();
    let mut client = env.client.clone();
    put_range(&mut client, &history, &prefix, 0..40, "v0").await;
    let hook = compact_after_second_page(client.clone(), history.clone(), prefix.clone());
    let options = Options {
        page_size: 5,
        on_page: Some(hook),
        ..test_options()
    };
    let watcher = Watcher::start(env.connect().await, prefix.clone(), options).unwrap();
    ready(&watcher).await;
    let stats = watcher.stats();
    assert!(stats.compactions >= 1 && stats.lists == 1, "{stats:?}");
    let mut sub = watcher.subscribe();
    assert_eq!(
        sub.snapshot.entries.len(),
        40,
        "39 of the first keys and the new one"
    );
    assert_matches_store(&mut client, &watcher).await;

    put(&mut client, &history, &key(&prefix, 1), "v1").await;
    delete(&mut client, &history, &key(&prefix, 2)).await;
    let last = put(&mut client, &history, &key(&prefix, 60), "v1").await;
    caught_up(&watcher, last).await;
    assert_matches_store(&mut client, &watcher).await;
    assert_eq!(assert_replays_history(&mut sub, &history, &watcher), 0);
}
meta_test!(watcher_relists_when_compacted_during_the_initial_list);

async fn watcher_relists_when_compacted_while_stalled(env: &mut Env) {
    let prefix = env.layout.namespace("watched");
    let history = Shared::default();
    let mut client = env.client.clone();
    let proxy = Proxy::start(upstream(env)).await;
    let watched = proxy.client().await;
    put_range(&mut client, &history, &prefix, 0..20, "v0").await;
    let (watcher, mut sub) = started(watched, &prefix, test_options()).await;
    let last = put_range(&mut client, &history, &prefix, 20..30, "v0").await;
    caught_up(&watcher, last).await;

    // the watcher falls behind: its stream is stalled while keys change and get compacted
    proxy.pause();
    for i in 0..5 {
        put(&mut client, &history, &key(&prefix, i), "v1").await;
        delete(&mut client, &history, &key(&prefix, i + 5)).await;
        put(&mut client, &history, &key(&prefix, i + 30), "v1").await;
    }
    let compacted = env.revision().await;
    client.compact(compacted, None).await.expect("compact");
    eventually(
        Duration::from_secs(10),
        "the watcher to notice the stall",
        || async { watcher.stats().broken_streams >= 1 },
    )
    .await;
    assert!(
        watcher.revision() < compacted,
        "it saw nothing while stalled"
    );
    proxy.resume();
    caught_up(&watcher, compacted).await;
    assert!(watcher.stats().compactions >= 1, "{:?}", watcher.stats());
    assert_matches_store(&mut client, &watcher).await;

    let last = put(&mut client, &history, &key(&prefix, 0), "v2").await;
    caught_up(&watcher, last).await;
    assert_matches_store(&mut client, &watcher).await;
    assert_eq!(assert_replays_history(&mut sub, &history, &watcher), 1);
}
meta_test!(watcher_relists_when_compacted_while_stalled);

async fn watcher_resumes_after_the_stream_is_cut(env: &mut Env) {
    let prefix = env.layout.namespace("watched");
    let outside = env.layout.namespace("other");
    let history = Shared::default();
    let mut client = env.client.clone();
    let proxy = Proxy::start(upstream(env)).await;
    let watched = proxy.client().await;
    put_range(&mut client, &history, &prefix, 0..10, "v0").await;
    let (watcher, mut sub) = started(watched, &prefix, test_options()).await;

    let writer = {
        let (mut client, history, prefix) = (client.clone(), history.clone(), prefix.clone());
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..300 {
                let k = key(&prefix, i % 30);
                last = match i % 7 {
                    // keys 0..10 exist from the start and are put back before the next delete
                    3 if i % 30 < 10 => delete(&mut client, &history, &k).await,
                    5 => {
                        let other = format!("{outside}{i}");
                        client.put(other, "not watched", None).await.expect("put");
                        put(&mut client, &history, &k, &format!("v{i}")).await
                    }
                    _ => put(&mut client, &history, &k, &format!("v{i}")).await,
                };
            }
            last
        })
    };
    // cut the watcher's connection whenever it has made some progress, while writes go on
    for _ in 0..4 {
        let seen = watcher.revision();
        eventually(
            Duration::from_secs(10),
            "the watcher to advance",
            || async { watcher.revision() > seen + 10 || writer.is_finished() },
        )
        .await;
        proxy.cut();
    }
    let last = writer.await.unwrap();
    caught_up(&watcher, last).await;
    let stats = watcher.stats();
    assert!(
        stats.broken_streams >= 1 && stats.compactions == 0,
        "{stats:?}"
    );
    assert_matches_store(&mut client, &watcher).await;
    assert_eq!(assert_replays_history(&mut sub, &history, &watcher), 0);
}
meta_test!(watcher_resumes_after_the_stream_is_cut);

async fn watcher_resumes_after_a_server_restart(env: &mut Env) {
    let prefix = env.layout.namespace("watched");
    let history = Shared::default();
    let mut client = env.client.clone();
    put_range(&mut client, &history, &prefix, 0..20, "v0").await;
    let (watcher, mut sub) = started(env.connect().await, &prefix, test_options()).await;
    let mut last = put_range(&mut client, &history, &prefix, 0..10, "v1").await;
    caught_up(&watcher, last).await;

    // with the watch stream open: the embedded server ends it as it closes, etcd is killed
    env.restart().await;
    eventually(
        Duration::from_secs(20),
        "the restarted server to answer",
        || {
            let mut client = client.clone();
            async move { client.get("\0", None).await.is_ok() }
        },
    )
    .await;
    for i in 10..15 {
        put(&mut client, &history, &key(&prefix, i), "v2").await;
        last = delete(&mut client, &history, &key(&prefix, i + 5)).await;
    }
    caught_up(&watcher, last).await;
    let stats = watcher.stats();
    assert!(
        stats.broken_streams >= 1 && stats.compactions == 0,
        "{stats:?}"
    );
    assert_matches_store(&mut client, &watcher).await;
    assert_eq!(assert_replays_history(&mut sub, &history, &watcher), 0);
}
meta_test!(watcher_resumes_after_a_server_restart);

/// Txns of 100 puts (`Some`) or deletes of existing keys (`None`) over `keys`.
async fn write_batches(
    client: &mut Client,
    history: &Shared,
    prefix: &str,
    keys: std::ops::Range<usize>,
    value: Option<&str>,
) -> i64 {
    let mut last = 0;
    let all: Vec<usize> = keys.collect();
    for batch in all.chunks(100) {
        let ops = batch
            .iter()
            .map(|i| (key(prefix, *i), value.map(str::to_string)))
            .collect();
        last = write(client, history, ops).await;
    }
    last
}

async fn watcher_caches_ten_thousand_records(env: &mut Env) {
    let prefix = env.layout.namespace("watched");
    let history = Shared::default();
    let mut client = env.client.clone();
    write_batches(&mut client, &history, &prefix, 0..5000, Some("v0")).await;
    let options = Options {
        page_size: 500,
        ..test_options()
    };
    let (watcher, mut sub) = started(env.connect().await, &prefix, options).await;
    assert_eq!(sub.snapshot.entries.len(), 5000);
    assert_matches_store(&mut client, &watcher).await;

    // 5,000 more records: 2,500 new keys, 1,500 overwrites, 1,000 deletes
    write_batches(&mut client, &history, &prefix, 5000..7500, Some("v1")).await;
    write_batches(&mut client, &history, &prefix, 0..1500, Some("v1")).await;
    let last = write_batches(&mut client, &history, &prefix, 1500..2500, None).await;
    caught_up(&watcher, last).await;
    assert_eq!(watcher.list().len(), 6500);
    assert_matches_store(&mut client, &watcher).await;
    assert_eq!(assert_replays_history(&mut sub, &history, &watcher), 0);
}
meta_test!(watcher_caches_ten_thousand_records);

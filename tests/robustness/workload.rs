//! The load of one run: clients issuing a seeded random mix of puts, deletes, txns
//! (compare the mod revision, put, else get) and linearizable and serializable gets on a
//! few keys, a watcher of every key from revision 1 asking for progress notifications and
//! resuming where it stopped after any failure, and a compactor that stays behind it.
//!
//! The Kubernetes flavour does what kube-apiserver does to etcd: `GuaranteedUpdate` txns
//! (compare the mod revision, put, else get), creates, Events under short leases shared for
//! a while, paginated lists at one revision, a reflector that lists and then watches from
//! the list's revision + 1 with `prev_kv`, progress notifications and a progress request
//! every 100 ms (listing again after any failure), and compaction through the
//! `compact_rev_key` handshake.
//!
//! Serializable gets go to one member per client (the client's own connection), so that
//! they can be checked never to go back on that client.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::history::{Call, Ev, Reflection, Req, Resp, Seen, Time, WatchResp};

pub const KEYS: usize = 8;
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// The key of kube-apiserver's compaction handshake.
pub const COMPACT_REV_KEY: &str = "compact_rev_key";
/// An Event lease's TTL, and how long a client puts its Events under one lease.
const EVENT_TTL: i64 = 2;
const LEASE_REUSE: Duration = Duration::from_millis(500);
/// Keys a list page holds (a few hundred Event keys are alive at a time).
const PAGE: i64 = 50;

/// Which load a run puts on the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Basic,
    Kubernetes,
}

/// The run's clock.
#[derive(Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn now(&self) -> Time {
        self.0.elapsed().as_nanos() as Time
    }
}

async fn connect(endpoints: &[String]) -> Option<Client> {
    let opts = ConnectOptions::new()
        .with_timeout(OP_TIMEOUT)
        .with_connect_timeout(Duration::from_secs(1));
    Client::connect(endpoints, Some(opts)).await.ok()
}

fn seen(kvs: &[etcd_client::KeyValue]) -> Seen {
    kvs.first().map(|kv| {
        (
            String::from_utf8_lossy(kv.value()).into_owned(),
            kv.mod_revision(),
        )
    })
}

fn triple(kv: &etcd_client::KeyValue) -> (String, String, i64) {
    (
        String::from_utf8_lossy(kv.key()).into_owned(),
        String::from_utf8_lossy(kv.value()).into_owned(),
        kv.mod_revision(),
    )
}

/// A paginated list of `prefix`: pages of [`PAGE`] keys, each after the first read at the
/// first one's revision, as kube-apiserver pages with `continue`.
async fn list(
    client: &mut Client,
    prefix: &str,
) -> Result<(i64, Vec<(String, String, i64)>), etcd_client::Error> {
    let end = etcd_client::GetOptions::new()
        .with_prefix()
        .with_limit(PAGE);
    let r = client.get(prefix, Some(end)).await?;
    let rev = r.header().map_or(0, |h| h.revision());
    let mut kvs: Vec<_> = r.kvs().iter().map(triple).collect();
    let mut more = r.more();
    while more {
        let from = format!("{}\0", kvs.last().expect("a full page").0);
        let mut range_end = prefix.as_bytes().to_vec();
        *range_end.last_mut().expect("a prefix") += 1;
        let opts = etcd_client::GetOptions::new()
            .with_range(range_end)
            .with_limit(PAGE)
            .with_revision(rev);
        let r = client.get(from.as_str(), Some(opts)).await?;
        kvs.extend(r.kvs().iter().map(triple));
        more = r.more();
    }
    Ok((rev, kvs))
}

async fn call(client: &mut Client, req: &Req) -> Resp {
    let fut = async {
        Ok::<Resp, etcd_client::Error>(match req {
            Req::Put { key, value } => {
                let r = client.put(key.as_str(), value.as_str(), None).await?;
                Resp::Put {
                    rev: r.header().map_or(0, |h| h.revision()),
                }
            }
            Req::Delete { key } => {
                let r = client.delete(key.as_str(), None).await?;
                Resp::Delete {
                    rev: r.header().map_or(0, |h| h.revision()),
                    deleted: r.deleted(),
                }
            }
            Req::Txn {
                key,
                expect_mod,
                value,
            } => {
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        key.as_str(),
                        CompareOp::Equal,
                        *expect_mod,
                    )])
                    .and_then([TxnOp::put(key.as_str(), value.as_str(), None)])
                    .or_else([TxnOp::get(key.as_str(), None)]);
                let r = client.txn(txn).await?;
                let got = r.op_responses().into_iter().find_map(|op| match op {
                    TxnOpResponse::Get(g) => Some(seen(g.kvs())),
                    _ => None,
                });
                Resp::Txn {
                    rev: r.header().map_or(0, |h| h.revision()),
                    succeeded: r.succeeded(),
                    got: got.flatten(),
                }
            }
            Req::Get { key, serializable } => {
                let opts = serializable.then(|| GetOptions::new().with_serializable());
                let r = client.get(key.as_str(), opts).await?;
                Resp::Get {
                    rev: r.header().map_or(0, |h| h.revision()),
                    got: seen(r.kvs()),
                }
            }
            Req::Event { key, value, lease } => {
                let opts = etcd_client::PutOptions::new().with_lease(*lease);
                let r = client.put(key.as_str(), value.as_str(), Some(opts)).await?;
                Resp::Put {
                    rev: r.header().map_or(0, |h| h.revision()),
                }
            }
            Req::List { prefix } => {
                let (rev, kvs) = list(client, prefix).await?;
                Resp::List { rev, kvs }
            }
        })
    };
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(Ok(resp)) => resp,
        _ => Resp::Unknown,
    }
}

/// One client's calls until `stop`. Serializable gets go to `endpoints[id % len]` alone.
#[allow(clippy::too_many_arguments)]
pub async fn client(
    id: usize,
    seed: u64,
    mode: Mode,
    endpoints: Vec<String>,
    clock: Clock,
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<Call>>>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let own = vec![endpoints[id % endpoints.len()].clone()];
    let mut conn: Option<Client> = None;
    let mut pinned: Option<Client> = None;
    let mut last_mod = [0i64; KEYS];
    let mut seq = 0u64;
    // the lease this client's Events go under, and when it was granted
    let mut lease: Option<(i64, Instant)> = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = connect(&endpoints).await;
        }
        if pinned.is_none() {
            pinned = connect(&own).await;
        }
        let k = rng.gen_range(0..KEYS);
        let key = format!("k{k}");
        seq += 1;
        let value = format!("c{id}-{seq}");
        let roll = rng.gen_range(0..100);
        let req = match (mode, roll) {
            (Mode::Basic, 0..=34) | (Mode::Kubernetes, 0..=9) => Req::Put { key, value },
            (Mode::Basic, 35..=44) | (Mode::Kubernetes, 10..=19) => Req::Delete { key },
            (Mode::Basic, 45..=64) | (Mode::Kubernetes, 20..=49) => Req::Txn {
                key,
                // mostly what this client last saw (GuaranteedUpdate), sometimes absent
                // (a create)
                expect_mod: if rng.gen_bool(0.8) { last_mod[k] } else { 0 },
                value,
            },
            (Mode::Kubernetes, 50..=64) => {
                if lease.is_none_or(|(_, at)| at.elapsed() > LEASE_REUSE) {
                    lease = None;
                    if let Some(c) = conn.as_mut() {
                        let grant = c.lease_grant(EVENT_TTL, None);
                        if let Ok(Ok(r)) = tokio::time::timeout(OP_TIMEOUT, grant).await {
                            lease = Some((r.id(), Instant::now()));
                        }
                    }
                }
                match lease {
                    Some((lease, _)) => Req::Event {
                        key: format!("kev/{id}-{seq}"),
                        value,
                        lease,
                    },
                    None => Req::List { prefix: "k".into() },
                }
            }
            (Mode::Kubernetes, 65..=79) => Req::List { prefix: "k".into() },
            (_, 90..) => Req::Get {
                key,
                serializable: true,
            },
            _ => Req::Get {
                key,
                serializable: false,
            },
        };
        let target = match req {
            Req::Get {
                serializable: true, ..
            } => &mut pinned,
            _ => &mut conn,
        };
        let invoke = clock.now();
        let resp = match target.as_mut() {
            Some(c) => call(c, &req).await,
            None => Resp::Unknown,
        };
        let ret = clock.now();
        match &resp {
            Resp::Put { rev } if !matches!(req, Req::Event { .. }) => last_mod[k] = *rev,
            Resp::Txn {
                rev,
                succeeded: true,
                ..
            } => last_mod[k] = *rev,
            Resp::Txn { got, .. } | Resp::Get { got, .. } => {
                last_mod[k] = got.as_ref().map_or(0, |(_, m)| *m)
            }
            Resp::Delete { .. } => last_mod[k] = 0,
            Resp::Put { .. } | Resp::List { .. } => {}
            // a member down answers at once: do not spin through thousands of failures
            Resp::Unknown => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        if matches!(resp, Resp::Unknown) && matches!(req, Req::Event { .. }) {
            // the lease may have expired: a new one next time
            lease = None;
        }
        calls.lock().unwrap().push(Call {
            client: id,
            req,
            invoke,
            ret,
            resp,
        });
    }
}

fn watch_resp(r: &etcd_client::WatchResponse, stream: usize) -> WatchResp {
    let events: Vec<Ev> = r
        .events()
        .iter()
        .filter_map(|e| {
            let kv = e.kv()?;
            Some(Ev {
                rev: kv.mod_revision(),
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                value: (e.event_type() == EventType::Put)
                    .then(|| String::from_utf8_lossy(kv.value()).into_owned()),
                create_rev: kv.create_revision(),
                version: kv.version(),
                prev: e.prev_kv().map(|p| {
                    (
                        String::from_utf8_lossy(p.value()).into_owned(),
                        p.mod_revision(),
                    )
                }),
            })
        })
        .collect();
    WatchResp {
        rev: r.header().map_or(0, |h| h.revision()),
        created: r.created(),
        canceled: r.canceled(),
        compact_rev: r.compact_revision(),
        stream,
        events,
    }
}

/// What the watcher has seen: its responses, and the revision it has covered (events and
/// progress notifications up to it).
#[derive(Default)]
pub struct Watched {
    pub responses: Mutex<Vec<WatchResp>>,
    pub covered: AtomicI64,
}

/// Watch every key from revision 1, with `prev_kv` and progress notifications, until
/// `done` and the watch has covered `target` (which the caller sets once the load ends).
pub async fn watcher(
    endpoints: Vec<String>,
    done: Arc<AtomicBool>,
    target: Arc<AtomicI64>,
    seen: Arc<Watched>,
) {
    let mut stream_no = 0;
    loop {
        let covered = seen.covered.load(Ordering::SeqCst);
        if done.load(Ordering::SeqCst) && covered >= target.load(Ordering::SeqCst) {
            return;
        }
        let Some(mut client) = connect(&endpoints).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // every key: the Kubernetes load's compact_rev_key writes have revisions too
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(covered + 1)
            .with_prev_key()
            .with_progress_notify();
        let Ok(Ok(stream)) = tokio::time::timeout(OP_TIMEOUT, client.watch("", Some(opts))).await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        stream_no += 1;
        let (mut sender, mut responses) = stream.split();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            let msg = tokio::select! {
                m = responses.message() => m,
                _ = tick.tick() => {
                    if done.load(Ordering::SeqCst)
                        && seen.covered.load(Ordering::SeqCst) >= target.load(Ordering::SeqCst)
                    {
                        return;
                    }
                    let _ = sender.request_progress().await;
                    continue;
                }
            };
            let Ok(Some(r)) = msg else { break };
            let resp = watch_resp(&r, stream_no);
            let high = resp.events.iter().map(|e| e.rev).max();
            let progress = resp.is_progress().then_some(resp.rev);
            let canceled = resp.canceled;
            seen.responses.lock().unwrap().push(resp);
            if let Some(h) = high.or(progress) {
                seen.covered.fetch_max(h, Ordering::SeqCst);
            }
            if canceled {
                break;
            }
        }
    }
}

/// Compact now and then, staying behind what the watcher has covered (so that its resume
/// point is never compacted away), until `stop`.
pub async fn compactor(endpoints: Vec<String>, stop: Arc<AtomicBool>, seen: Arc<Watched>) {
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let at = seen.covered.load(Ordering::SeqCst) - 20;
        if at <= done + 10 {
            continue;
        }
        if let Some(mut c) = connect(&endpoints).await {
            if let Ok(Ok(_)) = tokio::time::timeout(OP_TIMEOUT, c.compact(at, None)).await {
                done = at;
            }
        }
    }
}

/// A Kubernetes reflector on the prefix `k` until `stop`: list (paginated, at one
/// revision), then watch from the list's revision + 1 with `prev_kv` and progress
/// notifications, asking for progress every 100 ms; after any failure, list again.
pub async fn reflector(
    endpoints: Vec<String>,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Reflection>>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Some(mut client) = connect(&endpoints).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(Ok((list_rev, listed))) =
            tokio::time::timeout(OP_TIMEOUT, list(&mut client, "k")).await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let slot = {
            let mut out = out.lock().unwrap();
            out.push(Reflection {
                list_rev,
                list: listed,
                watch: Vec::new(),
            });
            out.len() - 1
        };
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(list_rev + 1)
            .with_prev_key()
            .with_progress_notify();
        let Ok(Ok(stream)) = tokio::time::timeout(OP_TIMEOUT, client.watch("k", Some(opts))).await
        else {
            continue;
        };
        let (mut sender, mut responses) = stream.split();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !stop.load(Ordering::Relaxed) {
            let msg = tokio::select! {
                m = responses.message() => m,
                _ = tick.tick() => {
                    let _ = sender.request_progress().await;
                    continue;
                }
            };
            let Ok(Some(r)) = msg else { break };
            let resp = watch_resp(&r, slot);
            let canceled = resp.canceled;
            out.lock().unwrap()[slot].watch.push(resp);
            if canceled {
                break;
            }
        }
    }
}

/// kube-apiserver's compactor: every 400 ms, the `compact_rev_key` handshake (if the
/// key's version is the one this compactor last saw, put the revision to compact at, else
/// learn the version), then compact at the revision of the previous round, staying behind
/// what the watcher has covered.
pub async fn kube_compactor(endpoints: Vec<String>, stop: Arc<AtomicBool>, seen: Arc<Watched>) {
    let (mut version, mut prev_rev, mut done) = (0i64, 0i64, 0i64);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let Some(mut c) = connect(&endpoints).await else {
            continue;
        };
        let txn = Txn::new()
            .when([Compare::version(COMPACT_REV_KEY, CompareOp::Equal, version)])
            .and_then([TxnOp::put(COMPACT_REV_KEY, prev_rev.to_string(), None)])
            .or_else([TxnOp::get(COMPACT_REV_KEY, None)]);
        let Ok(Ok(r)) = tokio::time::timeout(OP_TIMEOUT, c.txn(txn)).await else {
            continue;
        };
        let rev = r.header().map_or(0, |h| h.revision());
        if !r.succeeded() {
            version = r
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.version()),
                    _ => None,
                })
                .unwrap_or(0);
            prev_rev = rev;
            continue;
        }
        version += 1;
        let at = prev_rev.min(seen.covered.load(Ordering::SeqCst) - 20);
        prev_rev = rev;
        if at > done + 10 {
            if let Ok(Ok(_)) = tokio::time::timeout(OP_TIMEOUT, c.compact(at, None)).await {
                done = at;
            }
        }
    }
}

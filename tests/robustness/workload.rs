//! The load of one run: clients issuing a seeded random mix of puts, deletes, txns
//! (compare the mod revision, put, else get) and linearizable and serializable gets on a
//! few keys, a watcher of every key from revision 1 asking for progress notifications and
//! resuming where it stopped after any failure, and a compactor that stays behind it.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::history::{Call, Ev, Req, Resp, Seen, Time, WatchResp};

pub const KEYS: usize = 8;
const OP_TIMEOUT: Duration = Duration::from_secs(3);

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
        })
    };
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(Ok(resp)) => resp,
        _ => Resp::Unknown,
    }
}

/// One client's calls until `stop`.
pub async fn client(
    id: usize,
    seed: u64,
    endpoints: Vec<String>,
    clock: Clock,
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<Call>>>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut conn: Option<Client> = None;
    let mut last_mod = [0i64; KEYS];
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            conn = connect(&endpoints).await;
            if conn.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        };
        let k = rng.gen_range(0..KEYS);
        let key = format!("k{k}");
        seq += 1;
        let value = format!("c{id}-{seq}");
        let req = match rng.gen_range(0..100) {
            0..=34 => Req::Put { key, value },
            35..=44 => Req::Delete { key },
            45..=64 => Req::Txn {
                key,
                // mostly what this client last saw, sometimes absent
                expect_mod: if rng.gen_bool(0.8) { last_mod[k] } else { 0 },
                value,
            },
            65..=89 => Req::Get {
                key,
                serializable: false,
            },
            _ => Req::Get {
                key,
                serializable: true,
            },
        };
        let invoke = clock.now();
        let resp = call(c, &req).await;
        let ret = clock.now();
        match &resp {
            Resp::Put { rev } => last_mod[k] = *rev,
            Resp::Txn {
                rev,
                succeeded: true,
                ..
            } => last_mod[k] = *rev,
            Resp::Txn { got, .. } | Resp::Get { got, .. } => {
                last_mod[k] = got.as_ref().map_or(0, |(_, m)| *m)
            }
            Resp::Delete { .. } => last_mod[k] = 0,
            // a member down answers at once: do not spin through thousands of failures
            Resp::Unknown => tokio::time::sleep(Duration::from_millis(20)).await,
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
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(covered + 1)
            .with_prev_key()
            .with_progress_notify();
        let Ok(Ok(stream)) = tokio::time::timeout(OP_TIMEOUT, client.watch("k", Some(opts))).await
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
            let rev = r.header().map_or(0, |h| h.revision());
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
            let resp = WatchResp {
                rev,
                created: r.created(),
                canceled: r.canceled(),
                compact_rev: r.compact_revision(),
                stream: stream_no,
                events,
            };
            let high = resp.events.iter().map(|e| e.rev).max();
            let progress = resp.is_progress().then_some(rev);
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

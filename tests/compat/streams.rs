//! The watch and lease keep-alive streams at their edges, side by side, driven message by
//! message: empty ranges, negative start revisions, watch ids reused after a compaction,
//! half-closed streams and messages that do not decode.

use std::time::Duration;

use bytes::Bytes;
use prost::Message;

use metastore::proto::etcdserverpb::{
    watch_request::RequestUnion, CompactionRequest, LeaseGrantRequest, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, PutRequest, WatchCancelRequest, WatchCreateRequest, WatchRequest,
    WatchResponse,
};

use crate::edge::b;
use crate::raw::{self, bidi, channel, status_obs, unary, Bidi};
use crate::{run_ep, Pair, Report};

const WATCH: &str = "/etcdserverpb.Watch/Watch";
const KEEPALIVE: &str = "/etcdserverpb.Lease/LeaseKeepAlive";
const WAIT: Duration = Duration::from_secs(5);

pub fn create(key: &str, end: &[u8], start: i64, id: i64) -> Vec<u8> {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b(key),
            range_end: Bytes::copy_from_slice(end),
            start_revision: start,
            watch_id: id,
            ..Default::default()
        })),
    }
    .encode_to_vec()
}

pub fn cancel(id: i64) -> Vec<u8> {
    WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: id,
        })),
    }
    .encode_to_vec()
}

/// The next answer of a stream as an observation, decoded as `M`.
pub async fn next<M: Message + Default + std::fmt::Debug>(s: &mut Bidi) -> String {
    match s.next(WAIT).await {
        None => "nothing in time".into(),
        Some(Ok(None)) => "end of stream".into(),
        Some(Ok(Some(bytes))) => raw::obs::<M>(&Ok(bytes)),
        Some(Err(st)) => status_obs(&st),
    }
}

/// Every answer until the stream is quiet for half a second (etcd sends a compaction
/// cancel from its sync loop, every 100 ms, apart from the create's own answer).
pub async fn drain<M: Message + Default + std::fmt::Debug>(s: &mut Bidi) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(r) = s.next(Duration::from_millis(500)).await {
        out.push(match r {
            Ok(None) => "end of stream".into(),
            Ok(Some(bytes)) => raw::obs::<M>(&Ok(bytes)),
            Err(st) => status_obs(&st),
        });
        if out.len() > 16 {
            break;
        }
    }
    out
}

pub async fn put(ch: &tonic::transport::Channel, k: &str, v: &str) -> String {
    let r = PutRequest {
        key: b(k),
        value: b(v),
        ..Default::default()
    };
    raw::obs::<metastore::proto::etcdserverpb::PutResponse>(
        &unary(ch, "/etcdserverpb.KV/Put", r.encode_to_vec()).await,
    )
}

async fn compact(ch: &tonic::transport::Channel) -> String {
    // compact at the current revision: a put tells it
    let r = PutRequest {
        key: b("compact-marker"),
        value: b("x"),
        ..Default::default()
    };
    let bytes = unary(ch, "/etcdserverpb.KV/Put", r.encode_to_vec())
        .await
        .unwrap();
    let rev = metastore::proto::etcdserverpb::PutResponse::decode(bytes.as_slice())
        .unwrap()
        .header
        .unwrap()
        .revision;
    let c = CompactionRequest {
        revision: rev,
        physical: true,
    };
    raw::obs::<metastore::proto::etcdserverpb::CompactionResponse>(
        &unary(ch, "/etcdserverpb.KV/Compact", c.encode_to_vec()).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_edges_match_etcd() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    // finding 4: a range that ends at or before its key watches nothing
    run_ep(&pair, &mut rep, "watch-empty-range", |ep, p| {
        Box::pin(async move {
            let ch = channel(&ep).await;
            let k = |x: &str| format!("{p}{x}");
            let mut s: Option<crate::raw::Bidi> = None;
            let mut o = Vec::new();
            for (key, end) in [
                (k("b"), k("a").into_bytes()),
                (k("a"), k("a").into_bytes()),
                (k("a"), b"\0".to_vec()),
                (String::new(), vec![0]),
                (k("a"), k("b").into_bytes()),
                (k("b"), k("a").into_bytes()),
            ] {
                let msg = create(&key, &end, 0, 0);
                match &mut s {
                    None => s = Some(bidi(&ch, WATCH, msg).await.unwrap()),
                    Some(s) => s.send(msg).await,
                }
                o.push(next::<WatchResponse>(s.as_mut().unwrap()).await);
            }
            let mut s = s.unwrap();
            o.push(put(&ch, &k("a"), "1").await);
            // one response per watcher, in no order etcd promises
            let mut events = Vec::new();
            for _ in 0..3 {
                events.push(next::<WatchResponse>(&mut s).await);
            }
            events.sort();
            o.extend(events);
            o
        })
    })
    .await;
    // finding 6: a client that closes its sending side still gets its events
    run_ep(&pair, &mut rep, "watch-half-closed", |ep, p| {
        Box::pin(async move {
            let ch = channel(&ep).await;
            let k = format!("{p}k");
            let mut s = bidi(&ch, WATCH, create(&k, b"", 0, 0)).await.unwrap();
            let mut o = vec![next::<WatchResponse>(&mut s).await];
            s.tx = None;
            o.push(put(&ch, &k, "after half-close").await);
            o.push(next::<WatchResponse>(&mut s).await);
            o
        })
    })
    .await;
    run_ep(&pair, &mut rep, "keepalive-half-closed", |ep, _p| {
        Box::pin(async move {
            let ch = channel(&ep).await;
            let g = LeaseGrantRequest {
                ttl: 60,
                id: 0x5eed,
            };
            let mut o = vec![
                raw::obs::<metastore::proto::etcdserverpb::LeaseGrantResponse>(
                    &unary(&ch, "/etcdserverpb.Lease/LeaseGrant", g.encode_to_vec()).await,
                ),
            ];
            let first = LeaseKeepAliveRequest { id: 0x5eed }.encode_to_vec();
            let s = &mut bidi(&ch, KEEPALIVE, first).await.unwrap();
            s.send(LeaseKeepAliveRequest { id: 404 }.encode_to_vec())
                .await;
            s.tx = None;
            for _ in 0..3 {
                o.push(next::<LeaseKeepAliveResponse>(s).await);
            }
            o
        })
    })
    .await;
    // finding 7: a message that does not decode ends the stream with INTERNAL
    run_ep(&pair, &mut rep, "stream-undecodable-message", |ep, p| {
        Box::pin(async move {
            let ch = channel(&ep).await;
            let mut o = Vec::new();
            for method in [WATCH, KEEPALIVE] {
                for garbage in [vec![0xff, 0xff, 0xff], vec![0x0a, 0x10, 0x01]] {
                    let mut s = if method == WATCH {
                        let first = create(&format!("{p}k"), b"", 0, 0);
                        let mut s = bidi(&ch, method, first).await.unwrap();
                        o.push(next::<WatchResponse>(&mut s).await);
                        s.send(garbage).await;
                        s
                    } else {
                        match bidi(&ch, method, garbage).await {
                            Ok(s) => s,
                            // refused before the stream's headers: a trailers-only
                            // answer; the client sees the same status either way
                            Err(st) => {
                                o.push(status_obs(&st));
                                continue;
                            }
                        }
                    };
                    o.push(next::<WatchResponse>(&mut s).await);
                }
            }
            o
        })
    })
    .await;
    // findings 5 and 12 compact the store: last
    run_ep(
        &pair,
        &mut rep,
        "watch-negative-start-and-compaction",
        |ep, p| {
            Box::pin(async move {
                let ch = channel(&ep).await;
                let k = format!("{p}k");
                let mut o = Vec::new();
                let mut s = bidi(&ch, WATCH, create(&k, b"", 0, 99)).await.unwrap();
                o.push(next::<WatchResponse>(&mut s).await);
                s.send(cancel(99)).await;
                o.push(next::<WatchResponse>(&mut s).await);
                // before any compaction: -1 watches from now, below -1 is compacted at -1
                for (start, id) in [(-5, 0), (-1, 0), (-2, 10)] {
                    // (a store compacted before, as under `make compat`, cancels them all)
                    s.send(create(&k, b"", start, id)).await;
                    o.extend(drain::<WatchResponse>(&mut s).await);
                }
                o.push(put(&ch, &k, "1").await);
                o.push(next::<WatchResponse>(&mut s).await);
                o.push(compact(&ch).await);
                // after it: negative starts and old revisions are cancelled at the compaction
                for (start, id) in [(-3, 0), (1, 7)] {
                    s.send(create(&k, b"", start, id)).await;
                    o.extend(drain::<WatchResponse>(&mut s).await);
                }
                // the compacted id is still taken on this stream until cancelled
                s.send(create(&k, b"", 0, 7)).await;
                o.push(next::<WatchResponse>(&mut s).await);
                s.send(create(&k, b"", 0, 10)).await;
                o.push(next::<WatchResponse>(&mut s).await);
                s.send(cancel(7)).await;
                o.push(next::<WatchResponse>(&mut s).await);
                s.send(create(&k, b"", 0, 7)).await;
                o.push(next::<WatchResponse>(&mut s).await);
                o.push(put(&ch, &k, "2").await);
                let mut events = Vec::new();
                for _ in 0..2 {
                    events.push(next::<WatchResponse>(&mut s).await);
                }
                events.sort();
                o.extend(events);
                o
            })
        },
    )
    .await;
    rep.finish("stream_edges_match_etcd");
}

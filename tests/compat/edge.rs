//! Requests at the edges of etcd's checks, side by side: txn budgets and overlap rules,
//! compares with unknown enums, txns nested deeper than common decoders go, messages over
//! the receive limit, large request headers, and paths nothing serves.

use bytes::Bytes;
use prost::Message;

use metastore::proto::etcdserverpb::{
    compare, request_op::Request, Compare, DeleteRangeRequest, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use metastore::proto::nested::{DecodeNested, Deep};

use crate::raw::{self, channel, http1, status_obs, unary};
use crate::{run_ep, Pair, Report};

const TXN: &str = "/etcdserverpb.KV/Txn";
const PUT: &str = "/etcdserverpb.KV/Put";
const RANGE: &str = "/etcdserverpb.KV/Range";

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: b(k),
            value: b(v),
            ..Default::default()
        })),
    }
}

pub fn del(k: &str, end: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: b(k),
            range_end: Bytes::copy_from_slice(end),
            ..Default::default()
        })),
    }
}

pub fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
    TxnRequest {
        compare,
        success,
        failure,
    }
}

pub fn nested(t: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestTxn(t)),
    }
}

/// A txn's answer: decoded at any depth, normalised; or the error.
pub fn txn_obs(r: &Result<Vec<u8>, tonic::Status>) -> String {
    match r {
        Ok(bytes) => match TxnResponse::decode_nested(bytes, Deep::Refuse) {
            Ok(t) => crate::common::normalize_debug(&format!("{t:?}")),
            Err(e) => format!("undecodable answer: {e}"),
        },
        Err(s) => status_obs(s),
    }
}

/// The keys under `p` with their values and revisions, and the store's revision.
pub async fn state(ch: &tonic::transport::Channel, p: &str) -> String {
    let mut end = p.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    let req = RangeRequest {
        key: b(p),
        range_end: Bytes::from(end),
        ..Default::default()
    };
    let r = unary(ch, RANGE, req.encode_to_vec()).await;
    match r {
        Ok(bytes) => {
            let rr = RangeResponse::decode(bytes.as_slice()).unwrap();
            let kvs: Vec<String> = rr
                .kvs
                .iter()
                .map(|kv| {
                    format!(
                        "{}={} c{} m{} v{}",
                        String::from_utf8_lossy(&kv.key),
                        String::from_utf8_lossy(&kv.value),
                        kv.create_revision,
                        kv.mod_revision,
                        kv.version
                    )
                })
                .collect();
            format!(
                "state rev {} count {} {:?}",
                rr.header.map(|h| h.revision).unwrap_or_default(),
                rr.count,
                kvs
            )
        }
        Err(s) => format!("state: {}", status_obs(&s)),
    }
}

async fn send_txn(ch: &tonic::transport::Channel, t: &TxnRequest) -> String {
    txn_obs(&unary(ch, TXN, t.encode_to_vec()).await)
}

fn puts(p: &str, tag: &str, n: usize) -> Vec<RequestOp> {
    (0..n).map(|i| put(&format!("{p}{tag}{i}"), "v")).collect()
}

/// A chain of txns `depth` levels deep (the top one included), with a put at the bottom.
pub fn chain(p: &str, depth: usize) -> TxnRequest {
    let mut t = txn(vec![], vec![put(&format!("{p}d{depth}"), "deep")], vec![]);
    for _ in 1..depth {
        t = txn(vec![], vec![nested(t)], vec![]);
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_requests_match_etcd() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    // finding 8: a path nothing serves is 404, never a 200 a health probe would believe
    run_ep(&pair, &mut rep, "http-unknown-paths", |ep, _p| {
        Box::pin(async move {
            let get = |path: &str| {
                format!("GET {path} HTTP/1.1\r\nHost: {{HOST}}\r\nConnection: close\r\n\r\n")
            };
            let mut o = Vec::new();
            for path in ["/nonexistent", "/a/b/c", "/health/extra", "/metricsx", "/etcdserverpb.KV/Range"] {
                o.push(format!("GET {path}: {}", http1(&ep, &get(path))));
            }
            let post = "POST /nonexistent HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
            o.push(format!("POST /nonexistent: {}", http1(&ep, post)));
            o
        })
    })
    .await;
    // finding 1: a nested txn spends what its parent has left of --max-txn-ops
    run_ep(&pair, &mut rep, "txn-nested-budget", |ep, p| {
        Box::pin(async move {
            let ch = channel(&ep).await;
            let mut o = Vec::new();
            let mut ops = puts(&p, "a", 120);
            ops.push(nested(txn(vec![], puts(&p, "b", 9), vec![])));
            o.push(send_txn(&ch, &txn(vec![], ops, vec![])).await);
            o.push(state(&ch, &p).await);
            let mut ops = puts(&p, "c", 100);
            let inner = txn(
                vec![],
                {
                    let mut v = puts(&p, "d", 20);
                    v.push(nested(txn(vec![], puts(&p, "e", 8), vec![])));
                    v
                },
                vec![],
            );
            ops.push(nested(inner));
            o.push(send_txn(&ch, &txn(vec![], ops, vec![])).await);
            // the failure branch and the compares count too
            let cmps: Vec<Compare> = (0..3)
                .map(|i| Compare {
                    key: b(&format!("{p}x{i}")),
                    ..Default::default()
                })
                .collect();
            let inner = txn(cmps, vec![], puts(&p, "f", 4));
            let mut ops = puts(&p, "g", 125);
            ops.push(nested(inner));
            o.push(send_txn(&ch, &txn(vec![], vec![], ops)).await);
            o.push(state(&ch, &p).await);
            let mut ops = puts(&p, "h", 120);
            ops.push(nested(txn(vec![], puts(&p, "i", 7), vec![])));
            o.push(
                match unary(&ch, TXN, txn(vec![], ops, vec![]).encode_to_vec()).await {
                    Ok(bytes) => {
                        let t = TxnResponse::decode(bytes.as_slice()).unwrap();
                        format!(
                            "succeeded {} with {} responses",
                            t.succeeded,
                            t.responses.len()
                        )
                    }
                    Err(s) => status_obs(&s),
                },
            );
            o.push(state(&ch, &p).await);
            o
        })
    })
    .await;
    // finding 3: compares with a target or result no enum value names
    run_ep(&pair, &mut rep, "compare-unknown-enums", |ep, p| {
        Box::pin(async move {
            let ch = channel(&ep).await;
            let mut o = Vec::new();
            let pr = PutRequest {
                key: b(&format!("{p}k")),
                value: b("v"),
                ..Default::default()
            };
            o.push(raw::obs::<PutResponse>(
                &unary(&ch, PUT, pr.encode_to_vec()).await,
            ));
            let cases = [
                ("k", 9, 0),
                ("k", 9, 3),
                ("k", 9, 1),
                ("k", 0, 7),
                ("k", 3, -2),
                ("missing", 9, 0),
                ("missing", 3, 9),
                ("missing", 0, 9),
            ];
            for (i, (key, target, result)) in cases.into_iter().enumerate() {
                let c = Compare {
                    key: b(&format!("{p}{key}")),
                    target,
                    result,
                    target_union: Some(compare::TargetUnion::Version(1)),
                    ..Default::default()
                };
                let t = txn(
                    vec![c],
                    vec![put(&format!("{p}then{i}"), "t")],
                    vec![put(&format!("{p}else{i}"), "e")],
                );
                o.push(format!(
                    "target {target} result {result}: {}",
                    send_txn(&ch, &t).await
                ));
            }
            o.push(state(&ch, &p).await);
            o
        })
    })
    .await;
    // finding 11: deep txns decode; past the budget they get etcd's error, no decoder text
    run_ep(&pair, &mut rep, "txn-deep", |ep, p| {
        Box::pin(async move {
            let ch = channel(&ep).await;
            let mut o = Vec::new();
            for depth in [2, 49, 60, 120, 129, 130, 200, 600, 5000] {
                let t = chain(&p, depth);
                o.push(format!("depth {depth}: {}", send_txn(&ch, &t).await));
            }
            // an error deep down is found at its depth, not hidden by the decoder
            let mut t = txn(vec![], vec![put("", "empty key")], vec![]);
            for _ in 1..100 {
                t = txn(vec![], vec![nested(t)], vec![]);
            }
            o.push(format!(
                "empty key at depth 100: {}",
                send_txn(&ch, &t).await
            ));
            o.push(state(&ch, &p).await);
            o
        })
    })
    .await;
    // finding 9: over the receive limit (--max-request-bytes + 512 KiB) is gRPC's
    // RESOURCE_EXHAUSTED; under it but over --max-request-bytes is etcd's own refusal
    run_ep(&pair, &mut rep, "grpc-receive-limit", |ep, p| {
        Box::pin(async move {
            let ch = channel(&ep).await;
            let mut o = Vec::new();
            for size in [1_572_864usize, 1_600_000, 2_097_152, 2_200_000, 5_000_000] {
                let pr = PutRequest {
                    key: b(&format!("{p}big")),
                    value: Bytes::from(vec![b'x'; size]),
                    ..Default::default()
                };
                let r = unary(&ch, PUT, pr.encode_to_vec()).await;
                o.push(format!("value {size}: {}", raw::obs::<PutResponse>(&r)));
            }
            o.push(state(&ch, &p).await);
            o
        })
    })
    .await;
    // finding 10: request headers as large as etcd takes them
    run_ep(&pair, &mut rep, "large-request-headers", |ep, p| {
        Box::pin(async move {
            let ch = channel(&ep).await;
            let mut o = Vec::new();
            for size in [1_000usize, 20_000, 70_000, 200_000, 1_000_000] {
                let req = RangeRequest {
                    key: b(&format!("{p}k")),
                    ..Default::default()
                };
                let r = raw::unary_with(
                    &ch,
                    RANGE,
                    req.encode_to_vec(),
                    &[("x-large", "h".repeat(size))],
                )
                .await;
                o.push(format!("header {size}: {}", raw::obs::<RangeResponse>(&r)));
                // the connection survives
                o.push(state(&ch, &p).await);
            }
            let big = "h".repeat(100_000);
            let req = format!(
                "GET /health HTTP/1.1\r\nHost: {{HOST}}\r\nX-Large: {big}\r\nConnection: close\r\n\r\n"
            );
            let health = http1(&ep, &req);
            // the answer's status line (what /health says is another matter)
            let status = health.split(" | ").next().unwrap_or_default().to_string();
            o.push(format!("http/1.1 header 100000: {status}"));
            o
        })
    })
    .await;
    // finding 2: etcd's overlap check, to the letter; "\0" as a delete's range end covers
    // nothing there (zz-: the deletes from a key on touch no other scenario's keys)
    run_ep(&pair, &mut rep, "zz-duplicate-key-rules", |ep, p| {
        Box::pin(async move {
            let ch = channel(&ep).await;
            let mut o = Vec::new();
            let k = |s: &str| format!("{p}{s}");
            let pr = |key: String| PutRequest {
                key: b(&key),
                value: b("0"),
                ..Default::default()
            };
            for key in ["y", "z0", "m"] {
                o.push(raw::obs::<PutResponse>(
                    &unary(&ch, PUT, pr(k(key)).encode_to_vec()).await,
                ));
            }
            let cases: Vec<TxnRequest> = vec![
                txn(vec![], vec![del(&k("y"), b"\0"), put(&k("z"), "1")], vec![]),
                txn(vec![], vec![put(&k("y"), "1"), del(&k("y"), b"\0")], vec![]),
                txn(
                    vec![],
                    vec![del(&k("y"), format!("{p}~").as_bytes()), put(&k("z"), "1")],
                    vec![],
                ),
                txn(vec![], vec![del(&k("y"), b""), put(&k("y"), "1")], vec![]),
                txn(
                    vec![],
                    vec![del(&k("m"), k("c").as_bytes()), put(&k("d"), "1")],
                    vec![],
                ),
                txn(
                    vec![],
                    vec![del(&k("m"), k("m").as_bytes()), put(&k("m"), "1")],
                    vec![],
                ),
                txn(
                    vec![],
                    vec![
                        nested(txn(vec![], vec![del(&k("a"), b"\0")], vec![])),
                        put(&k("b"), "1"),
                    ],
                    vec![],
                ),
                txn(
                    vec![],
                    vec![
                        nested(txn(vec![], vec![del(&k("a"), k("c").as_bytes())], vec![])),
                        put(&k("b"), "1"),
                    ],
                    vec![],
                ),
                txn(
                    vec![],
                    vec![
                        nested(txn(
                            vec![],
                            vec![put(&k("q"), "1")],
                            vec![put(&k("q"), "2")],
                        )),
                        del(&k("q"), b"\0"),
                    ],
                    vec![],
                ),
                txn(
                    vec![],
                    vec![
                        del(&k("q"), b""),
                        nested(txn(vec![], vec![], vec![put(&k("q"), "2")])),
                    ],
                    vec![],
                ),
                txn(
                    vec![],
                    vec![put(&k("r"), "1")],
                    vec![put(&k("r"), "2"), put(&k("r"), "3")],
                ),
            ];
            for (i, t) in cases.iter().enumerate() {
                o.push(format!("case {i}: {}", send_txn(&ch, t).await));
                o.push(state(&ch, &p).await);
            }
            o
        })
    })
    .await;
    rep.finish("edge_requests_match_etcd");
}

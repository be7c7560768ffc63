//! Random HTTP requests into the client port's HTTP side: the JSON gateway's paths (under
//! /v3 and /v3beta), /health, /livez, /readyz, /metrics, /version and paths nobody serves,
//! with random methods, query strings, headers (content type, token, gRPC metadata, CORS)
//! and bodies (JSON built from etcd's field names with random values, mutated, or garbage).
//! Each must get an HTTP answer within a deadline over a kept-alive connection; a refused
//! write must change nothing; now and then raw bytes that are not HTTP at all go on a
//! fresh connection, and the server must live on.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::Client;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::gen;

const PATHS: &[&str] = &[
    "/v3/kv/range",
    "/v3/kv/put",
    "/v3/kv/deleterange",
    "/v3/kv/txn",
    "/v3/kv/compaction",
    "/v3/watch",
    "/v3/lease/grant",
    "/v3/lease/revoke",
    "/v3/kv/lease/revoke",
    "/v3/lease/keepalive",
    "/v3/lease/timetolive",
    "/v3/lease/leases",
    "/v3/cluster/member/list",
    "/v3/cluster/member/add",
    "/v3/cluster/member/remove",
    "/v3/maintenance/status",
    "/v3/maintenance/alarm",
    "/v3/maintenance/hash",
    "/v3/maintenance/snapshot",
    "/v3/auth/authenticate",
    "/v3/auth/user/add",
    "/v3/auth/user/delete",
    "/v3/auth/role/add",
    "/v3/auth/role/grant",
    "/v3/auth/enable",
    "/v3/auth/status",
    "/v3/lock/lock",
    "/v3/lock/unlock",
    "/v3/election/campaign",
    "/v3/election/leader",
    "/v3/election/observe",
    "/v3beta/kv/range",
    "/v3beta/kv/put",
    "/v3alpha/kv/range",
    "/health",
    "/livez",
    "/readyz",
    "/metrics",
    "/version",
    "/",
    "/v3/",
    "/v3/kv",
    "/v2/keys/a",
    "/debug/vars",
];

const FIELDS: &[&str] = &[
    "key",
    "range_end",
    "value",
    "lease",
    "prev_kv",
    "ignore_value",
    "ignore_lease",
    "limit",
    "revision",
    "sort_order",
    "sort_target",
    "serializable",
    "keys_only",
    "count_only",
    "compare",
    "success",
    "failure",
    "request_put",
    "request_range",
    "request_delete_range",
    "request_txn",
    "target",
    "result",
    "version",
    "create_revision",
    "mod_revision",
    "physical",
    "ID",
    "TTL",
    "keys",
    "create_request",
    "cancel_request",
    "progress_request",
    "start_revision",
    "watch_id",
    "filters",
    "progress_notify",
    "fragment",
    "name",
    "password",
    "role",
    "perm",
    "permType",
    "peerURLs",
    "isLearner",
    "action",
    "alarm",
    "memberID",
    "leader",
    "options",
    "no_password",
];

fn json_value(rng: &mut StdRng, depth: u32) -> String {
    match rng.gen_range(0..12) {
        0 => "null".into(),
        1 => ["true", "false"][rng.gen_range(0..2)].into(),
        2 => format!("{}", gen::number(rng) as i64),
        3 => format!("\"{}\"", gen::number(rng) as i64),
        // base64 of a key, or not base64 at all
        4..=5 => [
            "\"Zm9v\"",
            "\"YQ==\"",
            "\"AA==\"",
            "\"\"",
            "\"!!\"",
            "\"Zm9v====\"",
        ][rng.gen_range(0..6)]
        .into(),
        6 => [
            "\"VALUE\"",
            "\"EQUAL\"",
            "\"GREATER\"",
            "\"PUT\"",
            "\"GET\"",
            "\"NOSPACE\"",
            "\"x\"",
        ][rng.gen_range(0..7)]
        .into(),
        7 if depth < 3 => {
            let items: Vec<String> = (0..rng.gen_range(0..3))
                .map(|_| json_value(rng, depth + 1))
                .collect();
            format!("[{}]", items.join(","))
        }
        8..=9 if depth < 3 => json_object(rng, depth + 1),
        _ => format!("{}.5", rng.gen_range(-3..3)),
    }
}

fn json_object(rng: &mut StdRng, depth: u32) -> String {
    let fields: Vec<String> = (0..rng.gen_range(0..5))
        .map(|_| {
            format!(
                "\"{}\":{}",
                FIELDS[rng.gen_range(0..FIELDS.len())],
                json_value(rng, depth)
            )
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn body(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0 => Vec::new(),
        1 => gen::input(rng),
        2..=3 => {
            let json = json_object(rng, 0).into_bytes();
            gen::mutate(rng, json)
        }
        // a stream's body: several messages in a row
        4 => (0..rng.gen_range(1..4))
            .map(|_| json_object(rng, 0))
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
        _ => json_object(rng, 0).into_bytes(),
    }
}

/// Nothing may expire during a run (an expiry changes the state on its own, between a
/// refusal's two looks): a grant that parses gets an hour or more, a lock or campaign
/// without a lease gets `session` (etcd would grant a 60 s session lease).
fn tame(path: &str, body: Vec<u8>, session: i64) -> Vec<u8> {
    // a unary call reads the body's first JSON value and ignores the rest, as
    // grpc-gateway's decoder does: tame that one
    // (an empty body or `null` is an empty request; invalid UTF-8 is read as U+FFFD, as
    // Go's decoder reads it)
    if ![
        "/lease/grant",
        "/lock/lock",
        "/election/campaign",
        "/election/proclaim",
        "/election/resign",
    ]
    .iter()
    .any(|p| path.ends_with(p))
    {
        return body;
    }
    let body = String::from_utf8_lossy(&body).into_owned().into_bytes();
    let mut values = serde_json::Deserializer::from_slice(&body).into_iter::<serde_json::Value>();
    let (mut obj, rest) = match values.next() {
        Some(Ok(serde_json::Value::Object(obj))) => (obj, body[values.byte_offset()..].to_vec()),
        Some(Ok(serde_json::Value::Null)) | None => (
            serde_json::Map::new(),
            body[values.byte_offset()..].to_vec(),
        ),
        _ => return body,
    };
    let number = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.parse::<i64>().ok(),
        v => v.as_i64(),
    };
    if path.ends_with("/lease/grant") {
        // A week: longer than any run, so nothing expires during a later case's check.
        if obj.get("TTL").and_then(number).is_none_or(|t| t < 604_800) {
            obj.insert("TTL".into(), serde_json::json!(604_800));
        }
    } else if path.ends_with("/lock/lock") || path.ends_with("/election/campaign") {
        if obj.get("lease").and_then(number).is_none_or(|l| l == 0) {
            obj.insert("lease".into(), serde_json::json!(session.to_string()));
        }
    } else if let Some(serde_json::Value::Object(leader)) = obj.get_mut("leader") {
        // proclaim and resign: the leader key's lease
        if leader.get("lease").and_then(number).is_none_or(|l| l == 0) {
            leader.insert("lease".into(), serde_json::json!(session.to_string()));
        }
    } else {
        return body;
    }
    let mut out = serde_json::to_vec(&obj).expect("json");
    out.extend(rest);
    out
}

fn request(rng: &mut StdRng, session: i64) -> http::Request<Full<Bytes>> {
    let method = [
        "POST", "POST", "POST", "GET", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "FOO",
    ][rng.gen_range(0..10)];
    let mut path = PATHS[rng.gen_range(0..PATHS.len())].to_string();
    match rng.gen_range(0..10) {
        0 => path.push_str("/x"),
        1 => path.push_str("?serializable=true&exclude=a"),
        2 => path = path.to_uppercase(),
        3 => path.push_str("%00"),
        _ => {}
    }
    let mut b = http::Request::builder().method(method).uri(path.as_str());
    if rng.gen_bool(0.7) {
        let ct = [
            "application/json",
            "text/plain",
            "application/grpc",
            "application/json; charset=x",
            "",
        ];
        b = b.header("content-type", ct[rng.gen_range(0..ct.len())]);
    }
    if rng.gen_bool(0.1) {
        b = b.header(
            "authorization",
            ["", "x", "Bearer a.b.c", "simple.1"][rng.gen_range(0..4)],
        );
    }
    if rng.gen_bool(0.1) {
        b = b.header(
            "grpc-metadata-hasleader",
            ["true", "false", "x"][rng.gen_range(0..3)],
        );
    }
    if rng.gen_bool(0.05) {
        b = b.header("origin", "http://example.com");
        b = b.header("access-control-request-method", "POST");
    }
    let lower = path.split('?').next().unwrap_or("").to_string();
    let body = tame(&lower, body(rng), session);
    b.body(Full::new(Bytes::from(body))).expect("a request")
}

/// Paths whose answer is a stream, and paths that may wait (lock, campaign).
fn streams(path: &str) -> bool {
    ["/watch", "/keepalive", "/snapshot", "/observe"]
        .iter()
        .any(|s| path.ends_with(s))
}

fn waits(path: &str) -> bool {
    path.ends_with("/lock/lock") || path.ends_with("/election/campaign")
}

fn writes(path: &str) -> bool {
    [
        "/put",
        "/deleterange",
        "/txn",
        "/compaction",
        "/grant",
        "/revoke",
        "/lock",
        "/unlock",
        "/campaign",
        "/add",
        "/remove",
        "/delete",
        "/enable",
    ]
    .iter()
    .any(|s| path.ends_with(s))
}

async fn connect(addr: &str) -> Result<http1::SendRequest<Full<Bytes>>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    // no TIME_WAIT for the connections cut short
    let _ = tcp.set_zero_linger();
    let (send, conn) = http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

async fn state(c: &mut Client) -> Result<(i64, Vec<i64>, usize), String> {
    let rev = super::grpc::revision(c).await?;
    let mut leases: Vec<i64> = c
        .leases()
        .await
        .map_err(|e| format!("the state probe's lease list failed: {e}"))?
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    leases.sort_unstable();
    let users = c
        .user_list()
        .await
        .map_err(|e| format!("the state probe's user list failed: {e}"))?
        .users()
        .len();
    Ok((rev, leases, users))
}

/// Raw bytes that are not HTTP (or barely), on a fresh connection closed for writing: the
/// server answers or closes it, and lives on.
async fn garbage(addr: &str, rng: &mut StdRng) -> Result<(), String> {
    let mut bytes = match rng.gen_range(0..3) {
        0 => (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect(),
        1 => b"POST /v3/kv/put HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{}".to_vec(),
        _ => {
            b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec()
        }
    };
    bytes = gen::mutate(rng, bytes);
    let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_zero_linger();
    let _ = tcp.write_all(&bytes).await;
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let read = async { while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_millis(50), read).await;
    Ok(())
}

pub async fn run(addr: &str, seed: u64, cases: u64) -> Result<BTreeMap<String, u64>, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut probe = Client::connect([format!("http://{addr}")], None)
        .await
        .map_err(|e| e.to_string())?;
    let mut send = connect(addr).await?;
    let session = probe
        .lease_grant(86_400, None)
        .await
        .map_err(|e| e.to_string())?
        .id();
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let mut recent = super::Recent::default();
    let mut cut_short = false;
    for case in 0..cases {
        if std::mem::take(&mut cut_short) {
            // a lock or campaign given up on cleans up after the client left
            super::grpc::settle(&mut probe).await?;
        }
        if rng.gen_bool(0.005) {
            garbage(addr, &mut rng).await?;
            *tally.entry("raw bytes".into()).or_default() += 1;
            continue;
        }
        let req = request(&mut rng, session);
        let trace = std::env::var("FUZZ_TRACE").is_ok().then(|| {
            format!(
                "TRACE {case} {} {} {:?} {:?}",
                req.method(),
                req.uri(),
                req.headers(),
                req.body()
            )
        });
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let check = writes(&path);
        let before = if check {
            Some(
                state(&mut probe)
                    .await
                    .map_err(|e| format!("case {case} (seed {seed}), before {path}: {e}"))?,
            )
        } else {
            None
        };
        if send.ready().await.is_err() {
            send = connect(addr).await?;
        }
        // A stream's headers come with its first message, as grpc-gateway sends them: a
        // watch whose first message creates nothing answers nothing, on etcd too.
        let limit = if waits(&path) || streams(&path) {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(5)
        };
        let answer = match tokio::time::timeout(limit, send.send_request(req)).await {
            Err(_) if waits(&path) || streams(&path) => {
                send = connect(addr).await?;
                cut_short = waits(&path);
                *tally.entry("cut short (waiting or a quiet stream)".into()).or_default() += 1;
                continue;
            }
            Err(_) => {
                return Err(format!(
                    "case {case} (seed {seed}): {method} {path} got no answer in {limit:?}"
                ))
            }
            Ok(Err(e)) => {
                return Err(format!(
                    "case {case} (seed {seed}): {method} {path}: the connection ended without an answer: {e}"
                ))
            }
            Ok(Ok(r)) => r,
        };
        let status = answer.status();
        let mut body = answer.into_body();
        let mut got = Vec::new();
        let read = async {
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Some(d) = f.data_ref() {
                            if trace.is_some() && got.len() < 4096 {
                                got.extend_from_slice(d);
                            }
                        }
                    }
                    Err(_) => break,
                }
            }
        };
        let window = if streams(&path) {
            Duration::from_millis(30)
        } else {
            Duration::from_secs(5)
        };
        let timed_out = tokio::time::timeout(window, read).await.is_err();
        if let Some(t) = &trace {
            if status.is_success()
                && (path.contains("grant")
                    || path.contains("lock")
                    || path.contains("campaign")
                    || path.contains("revoke"))
            {
                eprintln!("{t} -> {status} {}", String::from_utf8_lossy(&got));
            }
        }
        if timed_out {
            if !streams(&path) {
                return Err(format!(
                    "case {case} (seed {seed}): {method} {path}: the body did not end in {window:?}"
                ));
            }
            // a stream: leave it, on a new connection
            send = connect(addr).await?;
        }
        if let Some(before) = before {
            if !status.is_success() {
                let after = state(&mut probe).await.map_err(|e| {
                    format!("case {case}, after {method} {path}: {e}; the cases before: {recent:?}")
                })?;
                if after != before {
                    return Err(format!(
                        "case {case} (seed {seed}): {method} {path} refused ({status}) but changed (revision, leases, users) {before:?} to {after:?}; the cases before: {recent:?}"
                    ));
                }
            }
        }
        recent.push(format!("{method} {path}: {status}"));
        *tally.entry(status.as_u16().to_string()).or_default() += 1;
    }
    Ok(tally)
}

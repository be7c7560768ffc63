//! The JSON gateway side by side through curl: every path etcd's gateway serves, called
//! in the same order on etcd and on metastore, comparing HTTP status and body (after
//! zeroing ids and the raft term, and naming tokens and lease ids by their order), the
//! streaming paths line by line, auth through the `Authorization` header, and the error
//! answers: grpc-gateway's error body, `Not Found`, `Method Not Allowed`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Pair, Report};

/// POST `body` to `path` with extra curl arguments: (status, body).
fn post(endpoint: &str, path: &str, body: &str, extra: &[&str]) -> (u16, String) {
    use std::io::Write;
    // the body on stdin: a command line argument holds at most 128 KiB
    let mut child = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
        ])
        .args(extra)
        .args(["--data-binary", "@-"])
        .arg(format!("{endpoint}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl runs");
    let mut stdin = child.stdin.take().unwrap();
    let body = body.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(body.as_bytes());
    });
    let out = child.wait_with_output().expect("curl ends");
    writer.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// What one side has seen: its tokens and lease ids, replaced by their order of
/// appearance so that both sides compare.
#[derive(Default)]
struct Side {
    endpoint: String,
    token: Option<String>,
    names: Vec<(String, String)>,
}

impl Side {
    fn new(endpoint: &str) -> Side {
        Side {
            endpoint: endpoint.to_string(),
            ..Default::default()
        }
    }

    /// Remember `value` (a token or a lease id) under `name`.
    fn name(&mut self, value: &str, name: &str) {
        // short values (lease 1, say) would be replaced inside other numbers
        if value.len() >= 3 && !self.names.iter().any(|(v, _)| v == value) {
            self.names.push((value.to_string(), name.to_string()));
        }
    }

    /// A JSON body with ids zeroed and named values replaced; any other text as it is.
    fn observe(&mut self, status: u16, body: &str) -> String {
        let body = body.trim_end();
        let shown = match serde_json::from_str::<serde_json::Value>(body) {
            Ok(v) => {
                if let Some(t) = v.get("token").and_then(|t| t.as_str()) {
                    let n = format!("token{}", self.names.len());
                    self.name(t, &n);
                    self.token = Some(t.to_string());
                }
                for id in [v.get("ID"), v.pointer("/result/ID")].into_iter().flatten() {
                    if let Some(id) = id.as_str() {
                        let n = format!("lease{}", self.names.len());
                        self.name(id, &n);
                        if let Ok(n64) = id.parse::<i64>() {
                            let hex = format!("{n64:x}");
                            self.name(&hex, &format!("lease{}hex", self.names.len() - 1));
                        }
                    }
                }
                common_normalize(v).to_string()
            }
            Err(_) => body.to_string(),
        };
        let mut shown = format!("{status} {shown}");
        for (v, n) in &self.names {
            shown = shown.replace(v, n);
        }
        shown
    }
}

fn common_normalize(v: serde_json::Value) -> serde_json::Value {
    crate::common::normalize_json(v)
}

/// A call of a unary path.
struct Step {
    path: &'static str,
    body: std::borrow::Cow<'static, str>,
    /// Send the last token in `Authorization`.
    auth: bool,
    /// Why a difference here is kept (docs/compat.md), if it is.
    kept: Option<&'static str>,
    /// Compare the status only (the body holds what differs by nature: versions, sizes).
    status_only: bool,
}

fn step(path: &'static str, body: &'static str) -> Step {
    Step {
        path,
        body: std::borrow::Cow::Borrowed(body),
        auth: false,
        kept: None,
        status_only: false,
    }
}

fn authed(path: &'static str, body: &'static str) -> Step {
    Step {
        auth: true,
        ..step(path, body)
    }
}

/// Keys are base64: `Z3cv` is `gw/`, `Z3cvYQ==` `gw/a`, `Z3cvYg==` `gw/b`, `Z3cw` `gw0`.
fn steps() -> Vec<Step> {
    vec![
        step("/v3/kv/put", r#"{"key":"Z3cvYQ==","value":"MQ=="}"#),
        step(
            "/v3/kv/put",
            r#"{"key":"Z3cvYg==","value":"Mg==","prev_kv":true}"#,
        ),
        step(
            "/v3/kv/put",
            r#"{"key":"Z3cvYg==","value":"Mw==","prev_kv":true}"#,
        ),
        step("/v3/kv/range", r#"{"key":"Z3cvYQ=="}"#),
        step(
            "/v3/kv/range",
            r#"{"key":"Z3cv","range_end":"Z3cw","sort_order":"DESCEND","sort_target":"MOD","limit":"1"}"#,
        ),
        step(
            "/v3/kv/range",
            r#"{"key":"Z3cv","range_end":"Z3cw","count_only":true,"revision":3}"#,
        ),
        step(
            "/v3beta/kv/range",
            r#"{"key":"Z3cv","range_end":"Z3cw","keys_only":true}"#,
        ),
        // an unknown field is skipped, as etcd's gateway skips it
        step("/v3/kv/range", r#"{"key":"Z3cvYQ==","no_such_field":1}"#),
        step(
            "/v3/kv/txn",
            r#"{"compare":[{"key":"Z3cvYQ==","result":"EQUAL","target":"VALUE","value":"MQ=="}],"success":[{"request_put":{"key":"Z3cvYQ==","value":"NA=="}},{"request_range":{"key":"Z3cv","range_end":"Z3cw"}}],"failure":[{"request_delete_range":{"key":"Z3cvYQ=="}}]}"#,
        ),
        step(
            "/v3/kv/txn",
            r#"{"compare":[{"key":"Z3cvYQ==","result":"GREATER","target":"MOD","mod_revision":"100"}],"failure":[{"request_txn":{"success":[{"request_range":{"key":"Z3cvYg=="}}]}}]}"#,
        ),
        step("/v3/kv/deleterange", r#"{"key":"Z3cvYg==","prev_kv":true}"#),
        step("/v3/kv/deleterange", r#"{"key":"Z3cvYg=="}"#),
        step("/v3/kv/compaction", r#"{"revision":"3","physical":true}"#),
        step("/v3/kv/range", r#"{"key":"Z3cvYQ==","revision":"2"}"#),
        // errors: etcd's codes and words in grpc-gateway's body
        step("/v3/kv/range", r#"{"key":""}"#),
        step("/v3/kv/range", ""),
        step("/v3/kv/put", r#"{"key":"Z3cvYQ==","lease":"12345"}"#),
        step("/v3/kv/compaction", r#"{"revision":"1000"}"#),
        step("/v3/kv/compaction", r#"{"revision":"2"}"#),
        step(
            "/v3/kv/txn",
            r#"{"success":[{"request_put":{"key":"Z3cvYQ=="}},{"request_put":{"key":"Z3cvYQ=="}}]}"#,
        ),
        Step {
            kept: Some("a body that is not JSON: serde_json's words, not Go's"),
            ..step("/v3/kv/range", "{bad")
        },
        Step {
            kept: Some("a body that is not JSON: serde_json's words, not Go's"),
            ..step("/v3/kv/range", r#"{"key":"Z3cv!"}"#)
        },
        // etcd's request limit (1.5 MiB) and gRPC's (2 MiB), on the message the JSON encodes
        Step {
            body: put_of(1_600_000).into(),
            ..step("/v3/kv/put", "")
        },
        Step {
            body: put_of(2_200_000).into(),
            ..step("/v3/kv/put", "")
        },
        step("/v3/kv/nosuch", "{}"),
        step("/v3/nosuch/path", "{}"),
        step("/v3alpha/kv/range", "{}"),
        // leases with ids chosen here, so that both sides agree on them
        step("/v3/lease/grant", r#"{"ID":"4096","TTL":"60"}"#),
        step("/v3/lease/grant", r#"{"ID":"4096","TTL":"60"}"#),
        step(
            "/v3/kv/put",
            r#"{"key":"Z3cvbA==","value":"eA==","lease":"4096"}"#,
        ),
        step("/v3/lease/timetolive", r#"{"ID":"4096","keys":true}"#),
        step("/v3/kv/lease/timetolive", r#"{"ID":"999"}"#),
        step("/v3/lease/leases", "{}"),
        step("/v3/kv/lease/leases", "{}"),
        step("/v3/lease/grant", r#"{"ID":"4097","TTL":"60"}"#),
        step("/v3/kv/lease/revoke", r#"{"ID":"4097"}"#),
        step("/v3/lease/revoke", r#"{"ID":"4097"}"#),
        step("/v3/lease/revoke", r#"{"ID":"0"}"#),
        // lock and election, on lease 4096
        step("/v3/lock/lock", r#"{"name":"Z3cvbG9jaw==","lease":"4096"}"#),
        step("/v3/lock/lock", r#"{"name":"Z3cvbG9jaw==","lease":"5"}"#),
        step("/v3/election/leader", r#"{"name":"Z3cvZWxlYw=="}"#),
        step(
            "/v3/election/campaign",
            r#"{"name":"Z3cvZWxlYw==","lease":"4096","value":"djE="}"#,
        ),
        step("/v3/election/leader", r#"{"name":"Z3cvZWxlYw=="}"#),
        step(
            "/v3/election/proclaim",
            r#"{"leader":{"name":"Z3cvZWxlYw==","key":"Z3cvZWxlYy8xMDAw","rev":"1","lease":"4096"},"value":"djI="}"#,
        ),
        step(
            "/v3/election/resign",
            r#"{"leader":{"name":"Z3cvZWxlYw==","key":"Z3cvZWxlYy8xMDAw","rev":"1","lease":"4096"}}"#,
        ),
        step("/v3/kv/range", r#"{"key":"Z3cv","range_end":"Z3cw"}"#),
        // maintenance and cluster: bodies that differ by nature are compared by status
        Step {
            status_only: true,
            ..step("/v3/maintenance/status", "{}")
        },
        Step {
            status_only: true,
            ..step("/v3/maintenance/hash", "{}")
        },
        Step {
            status_only: true,
            ..step("/v3/cluster/member/list", "{}")
        },
        step("/v3/maintenance/alarm", r#"{"action":"GET"}"#),
        step(
            "/v3/maintenance/alarm",
            r#"{"action":"DEACTIVATE","alarm":"NOSPACE"}"#,
        ),
        step("/v3/maintenance/defragment", "{}"),
        step("/v3/maintenance/transfer-leadership", r#"{"targetID":"1"}"#),
        step("/v3/cluster/member/remove", r#"{"ID":"1"}"#),
        step(
            "/v3/cluster/member/update",
            r#"{"ID":"1","peerURLs":["http://127.0.0.1:1"]}"#,
        ),
        step("/v3/cluster/member/promote", r#"{"ID":"1"}"#),
        step("/v3/cluster/member/add", r#"{"peerURLs":["not a url"]}"#),
        // auth, the token in the Authorization header
        step(
            "/v3/auth/authenticate",
            r#"{"name":"root","password":"pw"}"#,
        ),
        step("/v3/auth/user/add", r#"{"name":"root","password":"pw"}"#),
        step("/v3/auth/user/add", r#"{"name":"root","password":"pw"}"#),
        step("/v3/auth/user/add", r#"{"name":"alice","password":"apw"}"#),
        step("/v3/auth/role/add", r#"{"name":"reader"}"#),
        step(
            "/v3/auth/role/grant",
            r#"{"name":"reader","perm":{"permType":"READ","key":"Z3cv","range_end":"Z3cw"}}"#,
        ),
        step("/v3/auth/user/grant", r#"{"user":"alice","role":"reader"}"#),
        step("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
        step("/v3/auth/role/get", r#"{"role":"reader"}"#),
        step("/v3/auth/user/get", r#"{"name":"alice"}"#),
        step("/v3/auth/user/list", "{}"),
        step("/v3/auth/role/list", "{}"),
        step("/v3/auth/enable", "{}"),
        step("/v3/kv/range", r#"{"key":"Z3cvYQ=="}"#),
        step(
            "/v3/auth/authenticate",
            r#"{"name":"alice","password":"wrong"}"#,
        ),
        step(
            "/v3/auth/authenticate",
            r#"{"name":"alice","password":"apw"}"#,
        ),
        authed("/v3/kv/range", r#"{"key":"Z3cvYQ=="}"#),
        authed("/v3/kv/put", r#"{"key":"Z3cvYQ==","value":"NQ=="}"#),
        authed("/v3/auth/user/list", "{}"),
        step(
            "/v3/auth/authenticate",
            r#"{"name":"root","password":"pw"}"#,
        ),
        authed(
            "/v3/auth/user/changepw",
            r#"{"name":"alice","password":"apw2"}"#,
        ),
        authed(
            "/v3/auth/user/revoke",
            r#"{"name":"alice","role":"reader"}"#,
        ),
        authed(
            "/v3/auth/role/revoke",
            r#"{"role":"reader","key":"Z3cv","range_end":"Z3cw"}"#,
        ),
        authed("/v3/auth/role/delete", r#"{"role":"reader"}"#),
        authed("/v3/auth/user/delete", r#"{"name":"alice"}"#),
        authed("/v3/kv/put", r#"{"key":"Z3cvYQ==","value":"Ng=="}"#),
        authed("/v3/auth/disable", "{}"),
        step("/v3/kv/range", r#"{"key":"Z3cvYQ=="}"#),
    ]
}

/// A put of `gw/big` with a value of `n` bytes.
fn put_of(n: usize) -> String {
    use base64::Engine;
    let value = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; n]);
    format!(r#"{{"key":"Z3cvYmln","value":"{value}"}}"#)
}

/// The `grpc_server_handled_total` series of a server, with their values.
fn handled(endpoint: &str) -> std::collections::BTreeMap<String, f64> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", &format!("{endpoint}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("grpc_server_handled_total{"))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            Some((series.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// How each series moved from `before` to `after` (the ones that moved).
fn moved(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
) -> Vec<String> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| format!("{k} +{d}"))
        })
        .collect()
}

#[test]
fn gateway_unary_paths_answer_as_etcds() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    let before = (handled(&pair.etcd.endpoint), handled(&pair.ms.endpoint));
    let mut e = Side::new(&pair.etcd.endpoint);
    let mut m = Side::new(&pair.ms.endpoint);
    for (i, s) in steps().iter().enumerate() {
        let name = format!("gw-{i:02}{}", s.path.replace('/', "-"));
        let call = |side: &mut Side| {
            let header = side
                .token
                .as_ref()
                .filter(|_| s.auth)
                .map(|t| format!("Authorization: {t}"));
            let extra: Vec<&str> = match &header {
                Some(h) => vec!["-H", h.as_str()],
                None => vec![],
            };
            let (status, body) = post(&side.endpoint, s.path, &s.body, &extra);
            if s.status_only {
                format!("{status}")
            } else {
                side.observe(status, &body)
            }
        };
        let oe = vec![call(&mut e)];
        let om = vec![call(&mut m)];
        if let Some(why) = s.kept {
            rep.begin(&name);
            if oe != om {
                rep.kept.push(format!("[{name}] {why}"));
            }
            // the status is etcd's even where the words are not
            assert_eq!(oe[0].split(' ').next(), om[0].split(' ').next(), "{name}");
            continue;
        }
        crate::compare(&mut rep, &name, &oe, &om);
    }
    // A method other than POST, on a path that exists.
    for side in [&pair.etcd.endpoint, &pair.ms.endpoint] {
        let out = Command::new("curl")
            .args(["-s", "-w", " %{http_code}", &format!("{side}/v3/kv/range")])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Method Not Allowed\n 405"
        );
    }
    // each gateway call counted as the gRPC call of its method, as etcd counts them
    let after = (handled(&pair.etcd.endpoint), handled(&pair.ms.endpoint));
    let (e, m) = (moved(&before.0, &after.0), moved(&before.1, &after.1));
    assert!(e.len() > 40, "{e:#?}");
    assert_eq!(e, m, "grpc_server_handled_total moved otherwise");
    // CORS: every origin by default, and a preflight answered at once
    for side in [&pair.etcd.endpoint, &pair.ms.endpoint] {
        for method in ["OPTIONS", "POST"] {
            let out = Command::new("curl")
                .args(["-s", "-i", "-X", method, &format!("{side}/v3/kv/range")])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
            assert!(text.starts_with("http/1.1 "), "{text}");
            for h in [
                "access-control-allow-origin: *",
                "access-control-allow-methods: post, get, options, put, delete",
                "access-control-allow-headers: accept, content-type, authorization",
            ] {
                assert!(text.contains(h), "{method} from {side}: {text}");
            }
            if method == "OPTIONS" {
                assert!(text.starts_with("http/1.1 200"), "{text}");
            }
        }
    }
    rep.finish("gateway");
}

/// A streaming call's lines, read as they come.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Streaming {
    fn open(endpoint: &str, path: &str, body: &str) -> Streaming {
        Streaming::open_with(endpoint, path, body, &[])
    }

    fn open_with(endpoint: &str, path: &str, body: &str, extra: &[&str]) -> Streaming {
        let mut child = Command::new("curl")
            .args(["-s", "-N", "--max-time", "30", "-X", "POST", "-d", body])
            .args(extra)
            .arg(format!("{endpoint}{path}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Streaming { child, lines }
    }

    /// The next `n` lines, or fewer if none comes for 10 s.
    fn take(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => break,
            }
        }
        got
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The streaming paths: watch (with filters, history, prev_kv, compaction, cancel),
/// lease keep-alive, election observe, snapshot.
fn streams(side: &mut Side) -> Vec<String> {
    let ep = side.endpoint.clone();
    let mut out = Vec::new();
    let mut seen = |side: &mut Side, lines: Vec<String>| {
        let shown: Vec<String> = lines.iter().map(|l| side.observe(200, l)).collect();
        out.push(shown.join("\n"));
    };
    post(
        &ep,
        "/v3/kv/put",
        r#"{"key":"c3cvMA==","value":"MA=="}"#,
        &[],
    );
    // a live watch with prev_kv and a NODELETE filter, then a second create on the stream
    let w = Streaming::open(
        &ep,
        "/v3/watch",
        r#"{"create_request":{"key":"c3cv","range_end":"c3cw","prev_kv":true,"filters":["NODELETE"]}}
           {"create_request":{"key":"c3cvMQ==","watch_id":"7"}}"#,
    );
    seen(side, w.take(2));
    post(
        &ep,
        "/v3/kv/put",
        r#"{"key":"c3cvMQ==","value":"MQ=="}"#,
        &[],
    );
    post(&ep, "/v3/kv/deleterange", r#"{"key":"c3cvMA=="}"#, &[]);
    post(
        &ep,
        "/v3/kv/put",
        r#"{"key":"c3cvMA==","value":"Mg=="}"#,
        &[],
    );
    let mut got = w.take(3);
    got.sort();
    seen(side, got);
    drop(w);
    // history from a revision, as one response
    let w = Streaming::open(
        &ep,
        "/v3/watch",
        r#"{"create_request":{"key":"c3cv","range_end":"c3cw","start_revision":"2"}}"#,
    );
    seen(side, w.take(2));
    drop(w);
    // a compacted start revision
    post(&ep, "/v3/kv/compaction", r#"{"revision":"3"}"#, &[]);
    let w = Streaming::open(
        &ep,
        "/v3/watch",
        r#"{"create_request":{"key":"c3cv","start_revision":"2"}}"#,
    );
    seen(side, w.take(2));
    drop(w);
    // a bad first message fails the call; a duplicate id is refused on the stream
    let w = Streaming::open(
        &ep,
        "/v3/watch",
        r#"{"create_request":{"key":"c3cv","watch_id":"1"}} {"create_request":{"key":"c3cv","watch_id":"1"}} {"cancel_request":{"watch_id":"1"}}"#,
    );
    seen(side, w.take(3));
    drop(w);
    // keep-alive: a lease that exists and one that does not
    post(&ep, "/v3/lease/grant", r#"{"ID":"8192","TTL":"30"}"#, &[]);
    let ka = Streaming::open(&ep, "/v3/lease/keepalive", r#"{"ID":"8192"} {"ID":"1"}"#);
    seen(side, ka.take(2));
    drop(ka);
    // observe: the leader now, then each proclaimed value
    post(
        &ep,
        "/v3/election/campaign",
        r#"{"name":"c3cvZQ==","lease":"8192","value":"YQ=="}"#,
        &[],
    );
    let ob = Streaming::open(&ep, "/v3/election/observe", r#"{"name":"c3cvZQ=="}"#);
    seen(side, ob.take(1));
    let leader = post(&ep, "/v3/election/leader", r#"{"name":"c3cvZQ=="}"#, &[]).1;
    let kv: serde_json::Value = serde_json::from_str(&leader).unwrap();
    let kv = &kv["kv"];
    let proclaim = serde_json::json!({
        "leader": {"name": "c3cvZQ==", "key": kv["key"], "rev": kv["create_revision"], "lease": "8192"},
        "value": "Yg==",
    });
    post(&ep, "/v3/election/proclaim", &proclaim.to_string(), &[]);
    seen(side, ob.take(1));
    drop(ob);
    // snapshot: the file in blobs, then its SHA-256 on its own
    let (status, body) = post(&ep, "/v3/maintenance/snapshot", "{}", &[]);
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let all_blobs = lines.iter().all(|l| l["result"]["blob"].is_string());
    let last = lines.last().and_then(|l| l["result"]["blob"].as_str());
    out.push(format!(
        "snapshot {status}: {} chunks, all blobs {all_blobs}, checksum blob {:?}",
        if lines.len() > 1 { "several" } else { "one" },
        last.map(str::len)
    ));
    // an empty body: a watch stream with nothing to do is open and silent
    let (status, body) = post(&ep, "/v3/lease/keepalive", "", &["--max-time", "2"]);
    out.push(format!("empty keep-alive {status} {body:?}"));
    let (status, body) = post(&ep, "/v3/watch", "{bad", &[]);
    out.push(format!(
        "bad watch {status} {}",
        body.split("\"code\"").nth(1).unwrap_or(&body)
    ));
    // under auth: the token in `Authorization` is the watcher's user
    for (path, body) in [
        ("/v3/auth/user/add", r#"{"name":"root","password":"pw"}"#),
        ("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
        ("/v3/auth/enable", "{}"),
    ] {
        let (status, body) = post(&ep, path, body, &[]);
        out.push(side.observe(status, &body));
    }
    let (status, body) = post(
        &ep,
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"pw"}"#,
        &[],
    );
    out.push(side.observe(status, &body));
    let auth = format!("Authorization: {}", side.token.clone().unwrap_or_default());
    let w = Streaming::open_with(
        &ep,
        "/v3/watch",
        r#"{"create_request":{"key":"c3cvdA=="}}"#,
        &["-H", &auth],
    );
    let created = w.take(1);
    post(
        &ep,
        "/v3/kv/put",
        r#"{"key":"c3cvdA==","value":"dA=="}"#,
        &["-H", &auth],
    );
    let mut lines = created;
    lines.extend(w.take(1));
    out.push(
        lines
            .iter()
            .map(|l| side.observe(200, l))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    drop(w);
    let w = Streaming::open(&ep, "/v3/watch", r#"{"create_request":{"key":"c3cvdA=="}}"#);
    let lines: Vec<String> = w.take(1).iter().map(|l| side.observe(200, l)).collect();
    out.push(format!("watch without a token: {lines:?}"));
    drop(w);
    let (status, body) = post(&ep, "/v3/auth/disable", "{}", &["-H", &auth]);
    out.push(side.observe(status, &body));
    out
}

#[test]
fn gateway_streams_answer_as_etcds() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    let oe = streams(&mut Side::new(&pair.etcd.endpoint));
    let om = streams(&mut Side::new(&pair.ms.endpoint));
    crate::compare(&mut rep, "gateway-streams", &oe, &om);
    rep.finish("gateway streams");
}

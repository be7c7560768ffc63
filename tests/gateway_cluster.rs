//! The JSON gateway on a 3-member cluster, through curl: writes through a follower's
//! gateway, linearizable reads through another's, a follower's gateway watch seeing a put
//! made on the leader, a keep-alive and a lock through followers; then kill -9 of the
//! leader, after which the survivors' gateways take writes again and every write the
//! gateways acknowledged is on both.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::Cluster;

/// POST `body` to `endpoint` + `path`: (HTTP status, body).
fn post(endpoint: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut child = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
        ])
        .args(["--data-binary", "@-"])
        .arg(format!("{endpoint}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (code.trim().parse().unwrap_or(0), json)
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn put(endpoint: &str, key: &str, value: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"key": b64(key), "value": b64(value)});
    post(endpoint, "/v3/kv/put", &body.to_string())
}

/// The value of `key` read linearizably through `endpoint`'s gateway.
fn get(endpoint: &str, key: &str) -> Option<String> {
    let body = serde_json::json!({"key": b64(key)});
    let (status, v) = post(endpoint, "/v3/kv/range", &body.to_string());
    assert_eq!(status, 200, "{v}");
    let value = v["kvs"][0]["value"].as_str()?;
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value)
        .unwrap();
    Some(String::from_utf8(raw).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_on_every_member_and_survives_a_leader_kill() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.leader(Duration::from_secs(20)).await;
    let f1 = (leader + 1) % 3;
    let f2 = (leader + 2) % 3;
    let (le, e1, e2) = (
        c.members[leader].endpoint(),
        c.members[f1].endpoint(),
        c.members[f2].endpoint(),
    );

    // a watch through a follower's gateway
    let mut watch = Command::new("curl")
        .args(["-s", "-N", "--max-time", "30", "-X", "POST", "-d"])
        .arg(serde_json::json!({"create_request": {"key": b64("gw/w")}}).to_string())
        .arg(format!("{e2}/v3/watch"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = watch.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let created = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(created.contains("\"created\":true"), "{created}");

    // a write through one follower, read through the other at once (linearizable)
    let (status, v) = put(&e1, "gw/a", "1");
    assert_eq!(status, 200, "{v}");
    assert_eq!(get(&e2, "gw/a").as_deref(), Some("1"));
    // a put on the leader reaches the follower's watch
    assert_eq!(put(&le, "gw/w", "x").0, 200);
    let event = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(event.contains(&b64("x")), "{event}");
    let _ = watch.kill();
    let _ = watch.wait();

    // a lease granted, kept alive and used for a lock, all through followers
    let (status, v) = post(&e1, "/v3/lease/grant", r#"{"TTL":"30"}"#);
    assert_eq!(status, 200, "{v}");
    let lease = v["ID"].as_str().unwrap().to_string();
    let ka = Command::new("curl")
        .args(["-s", "--max-time", "10", "-X", "POST", "-d"])
        .arg(format!(r#"{{"ID":"{lease}"}}"#))
        .arg(format!("{e2}/v3/lease/keepalive"))
        .output()
        .unwrap();
    let ka = String::from_utf8_lossy(&ka.stdout);
    assert!(ka.contains("\"TTL\":\"30\""), "{ka}");
    let (status, v) = post(
        &e2,
        "/v3/lock/lock",
        &serde_json::json!({"name": b64("gw/lock"), "lease": lease}).to_string(),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = post(
        &e1,
        "/v3/lock/unlock",
        &serde_json::json!({"key": v["key"]}).to_string(),
    );
    assert_eq!(status, 200, "{v}");

    // kill -9 of the leader: the survivors' gateways take writes again
    let mut acked = vec![("gw/a".to_string(), "1".to_string())];
    for i in 0..20 {
        let (k, v) = (format!("gw/k{i}"), format!("v{i}"));
        if put(&e1, &k, &v).0 == 200 {
            acked.push((k, v));
        }
    }
    c.members[leader].kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if put(&e1, "gw/after", "kill").0 == 200 {
            acked.push(("gw/after".into(), "kill".into()));
            break;
        }
        assert!(Instant::now() < deadline, "no write after the kill");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for e in [&e1, &e2] {
        for (k, v) in &acked {
            assert_eq!(get(e, k).as_deref(), Some(v.as_str()), "{k} on {e}");
        }
    }
}

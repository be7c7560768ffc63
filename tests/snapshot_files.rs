//! etcd's snapshot files out of metastore: `etcdctl snapshot save` against metastore,
//! `etcdctl snapshot status` and `metastore snapshot status` on the file, `etcdctl snapshot
//! restore`, and a real etcd started on the restored data dir serves the same keys (with
//! revisions and versions), the same HashKV, compaction, leases with their keys, users and
//! roles. And the way in: `etcdctl snapshot save` against a real etcd, then `metastore
//! snapshot status` and `restore`, and metastore serves the same data.

mod common;

use common::{etcdctl, free_port, metastore_bin, require_etcd, Kind, Server};
use serde_json::Value;

fn ok(s: &Server, args: &[&str]) -> String {
    let out = s.etcdctl(args, None);
    assert_eq!(out.code, 0, "etcdctl {args:?}: {}", out.stderr);
    out.stdout
}

fn json(s: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&ok(s, args)).unwrap()
}

#[test]
fn a_metastore_snapshot_restores_into_a_real_etcd_with_everything_intact() {
    if !require_etcd() {
        return;
    }
    let ms = Server::start(Kind::Metastore, &[]);
    for i in 0..200 {
        ok(&ms, &["put", &format!("k{i:03}"), &format!("v{i}")]);
    }
    ok(&ms, &["put", "k001", "again"]);
    ok(&ms, &["del", "k002"]);
    let lease = ok(&ms, &["lease", "grant", "600"]);
    let lease = lease.split_whitespace().nth(1).unwrap().to_string();
    ok(&ms, &["put", "leased", "x", "--lease", &lease]);
    ok(&ms, &["compact", "50"]);
    ok(&ms, &["user", "add", "bob:pw"]);
    ok(&ms, &["role", "add", "reader"]);
    ok(
        &ms,
        &["role", "grant-permission", "reader", "read", "a", "z"],
    );
    ok(&ms, &["user", "grant-role", "bob", "reader"]);
    let kvs = json(&ms, &["get", "", "--prefix", "-w", "json"]);
    let hash = json(&ms, &["endpoint", "hashkv", "-w", "json"]);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    let file = file.to_str().unwrap();
    ok(&ms, &["snapshot", "save", file]);
    let theirs = ok(&ms, &["snapshot", "status", file, "-w", "json"]);
    let ours = std::process::Command::new(metastore_bin())
        .args(["snapshot", "status", file, "-w", "json"])
        .output()
        .unwrap();
    assert!(ours.status.success());
    assert_eq!(
        String::from_utf8(ours.stdout).unwrap().trim(),
        theirs.trim()
    );
    let status: Value = serde_json::from_str(&theirs).unwrap();
    assert_eq!(status["revision"], kvs["header"]["revision"]);

    // etcd's own restore and start.
    let restored = dir.path().join("etcd");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let out = etcdctl(
        &ms.endpoint,
        &[
            "snapshot",
            "restore",
            file,
            "--data-dir",
            restored.to_str().unwrap(),
            "--name",
            "default",
            "--initial-cluster",
            &format!("default={peer}"),
            "--initial-advertise-peer-urls",
            &peer,
        ],
        None,
    );
    assert_eq!(out.code, 0, "restore: {}", out.stderr);
    let etcd = Server::spawn(Kind::Etcd, &restored, free_port(), &[]);
    let got = json(&etcd, &["get", "", "--prefix", "-w", "json"]);
    assert_eq!(got["kvs"], kvs["kvs"]);
    assert_eq!(got["header"]["revision"], kvs["header"]["revision"]);
    let got_hash = json(&etcd, &["endpoint", "hashkv", "-w", "json"]);
    assert_eq!(got_hash[0]["HashKV"]["hash"], hash[0]["HashKV"]["hash"]);
    assert_eq!(got_hash[0]["HashKV"]["compact_revision"], 50);
    let ttl = ok(&etcd, &["lease", "timetolive", &lease, "--keys"]);
    assert!(ttl.contains("attached keys([leased])"), "{ttl}");
    assert_eq!(ok(&etcd, &["user", "list"]).trim(), "bob");
    assert!(ok(&etcd, &["role", "get", "reader"]).contains("[a, z)"));
    let compacted = etcd.etcdctl(&["get", "k001", "--rev", "3"], None);
    assert!(compacted
        .stderr
        .contains("required revision has been compacted"));
}

#[test]
fn a_snapshot_without_its_trailer_is_refused_unless_the_check_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.db");
    std::fs::write(&file, vec![0u8; 4096]).unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(metastore_bin())
            .args(["snapshot", "restore", file.to_str().unwrap(), "--data-dir"])
            .arg(dir.path().join("out"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("snapshot missing hash but --skip-hash-check=false"),
        "{err}"
    );
    // Skipping the check reads the file, which is no database: refused, no data dir left.
    let out = run(&["--skip-hash-check"]);
    assert!(!out.status.success());
    assert!(!dir.path().join("out").exists());
    assert!(!dir.path().join("out.restoring").exists());
}

#[test]
fn an_etcd_snapshot_restores_into_metastore_with_everything_intact() {
    if !require_etcd() {
        return;
    }
    let etcd = Server::start(Kind::Etcd, &[]);
    for i in 0..200 {
        ok(&etcd, &["put", &format!("k{i:03}"), &format!("v{i}")]);
    }
    ok(&etcd, &["put", "k001", "again"]);
    ok(&etcd, &["del", "k002"]);
    let lease = ok(&etcd, &["lease", "grant", "600"]);
    let lease = lease.split_whitespace().nth(1).unwrap().to_string();
    ok(&etcd, &["put", "leased", "x", "--lease", &lease]);
    ok(&etcd, &["compact", "50"]);
    ok(&etcd, &["user", "add", "bob:pw"]);
    ok(&etcd, &["role", "add", "reader"]);
    ok(
        &etcd,
        &["role", "grant-permission", "reader", "read", "a", "z"],
    );
    ok(&etcd, &["user", "grant-role", "bob", "reader"]);
    let kvs = json(&etcd, &["get", "", "--prefix", "-w", "json"]);
    let hash = json(&etcd, &["endpoint", "hashkv", "-w", "json"]);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.db");
    let file = file.to_str().unwrap();
    ok(&etcd, &["snapshot", "save", file]);
    let theirs = ok(&etcd, &["snapshot", "status", file, "-w", "json"]);
    let ours = std::process::Command::new(metastore_bin())
        .args(["snapshot", "status", file, "-w", "json"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(ours.stdout).unwrap().trim(),
        theirs.trim()
    );

    let restored = dir.path().join("ms");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let out = std::process::Command::new(metastore_bin())
        .args(["snapshot", "restore", file, "--data-dir"])
        .arg(&restored)
        .args(["--name", "default", "--initial-cluster"])
        .arg(format!("default={peer}"))
        .args(["--initial-advertise-peer-urls", &peer])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ms = Server::spawn(Kind::Metastore, &restored, free_port(), &[]);
    let got = json(&ms, &["get", "", "--prefix", "-w", "json"]);
    assert_eq!(got["kvs"], kvs["kvs"]);
    assert_eq!(got["header"]["revision"], kvs["header"]["revision"]);
    let got_hash = json(&ms, &["endpoint", "hashkv", "-w", "json"]);
    assert_eq!(got_hash[0]["HashKV"]["hash"], hash[0]["HashKV"]["hash"]);
    assert_eq!(got_hash[0]["HashKV"]["compact_revision"], 50);
    let ttl = ok(&ms, &["lease", "timetolive", &lease, "--keys"]);
    assert!(ttl.contains("attached keys([leased])"), "{ttl}");
    assert_eq!(ok(&ms, &["user", "list"]).trim(), "bob");
    assert!(ok(&ms, &["role", "get", "reader"]).contains("[a, z)"));
    // A write goes on from the restored revision.
    let put = json(&ms, &["put", "after", "1", "-w", "json"]);
    assert_eq!(
        put["header"]["revision"].as_i64().unwrap(),
        kvs["header"]["revision"].as_i64().unwrap() + 1
    );
}

//! `--auto-compaction-mode periodic` compacts by itself: old revisions become unreadable with
//! etcd's error, the latest stays readable.

mod common;

use std::time::{Duration, Instant};

use common::{Kind, Server};

#[test]
fn periodic_auto_compaction_compacts_old_revisions() {
    let s = Server::start(
        Kind::Metastore,
        &[
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "2s",
        ],
    );
    for i in 0..5 {
        assert_eq!(s.etcdctl(&["put", "k", &format!("v{i}")], None).code, 0);
    }
    // Compaction happens once a full retention window of samples exists (about 10 s here).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let old = s.etcdctl(&["get", "k", "--rev=2"], None);
        if old.code != 0 {
            assert!(
                old.stderr.contains("required revision has been compacted"),
                "{old:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no auto compaction within the deadline"
        );
        assert_eq!(s.etcdctl(&["put", "tick", "x"], None).code, 0);
        std::thread::sleep(Duration::from_millis(500));
    }
    let latest = s.etcdctl(&["get", "k", "--print-value-only"], None);
    assert_eq!(latest.stdout.trim(), "v4");
}

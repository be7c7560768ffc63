//! A fatal storage error stops the member: the process logs etcd's fatal line and exits
//! non-zero instead of serving reads from a store that no longer advances. The failure is
//! a compaction delete batch failing (the `compaction_step` failpoint, armed through the
//! environment the server inherits; this file holds one test so no other server sees it).

mod common;

use std::time::{Duration, Instant};

use common::{Kind, Server};

#[test]
fn a_storage_error_in_compaction_stops_the_process_with_a_fatal_line() {
    std::env::set_var("METASTORE_FAILPOINTS", "compaction_step=error");
    let mut s = Server::start(Kind::Metastore, &["--logger", "zap"]);
    for v in ["a", "b", "c"] {
        assert_eq!(s.etcdctl(&["put", "k", v], None).code, 0);
    }
    // The compaction is applied and answered; its first delete batch fails at once, so the
    // process may be gone before the answer reaches etcdctl: either outcome is fine here.
    let _ = s.etcdctl(&["compact", "3"], None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = s.child.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the member went on after a fatal error"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    // The stderr tee may still be writing the last line.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(&s.log).unwrap_or_default();
        let fatal = log
            .lines()
            .find(|l| l.contains(r#""level":"fatal""#))
            .map(str::to_string);
        if let Some(line) = fatal {
            assert!(line.contains("failpoint compaction_step"), "{line}");
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
            assert_eq!(v["caller"], "etcdserver");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no fatal line in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

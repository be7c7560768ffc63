//! Defragmentation across crashes: a process killed at each named failpoint of the rewrite
//! and swap (src/storage/defrag.rs) leaves, once the database is opened again, every
//! record of every tree exactly as it was; and a defragmentation that completes gives
//! space back.
//!
//! The test re-runs its own binary as the child that dies: the child opens the database
//! with METASTORE_FAILPOINTS armed and defragments it.

mod common;

use common::copy_dir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use bytes::Bytes;
use metastore::storage::defrag::{
    FAILPOINT_COPIED, FAILPOINT_MARKED, FAILPOINT_MOVED_OLD, FAILPOINT_SWAPPED,
};
use metastore::storage::{Backend, SledBackend, Tree, WriteBatch};

const CHILD_ENV: &str = "DEFRAG_CRASH_CHILD";
const TREES: [Tree; 3] = [Tree::RaftLog, Tree::RaftMeta, Tree::State];

type Contents = BTreeMap<(String, Bytes), Bytes>;

fn open(db: &Path) -> SledBackend {
    // sled lets go of a dropped database's file lock a little after the drop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match SledBackend::open(db) {
            Ok(b) => return b,
            Err(e) if std::time::Instant::now() > deadline => panic!("open {}: {e}", db.display()),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

fn contents(b: &SledBackend) -> Contents {
    let mut all = Contents::new();
    for t in TREES {
        for (k, v) in b.range(t, &[], &[], 0).unwrap() {
            all.insert((t.name().to_string(), k), v);
        }
    }
    all
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

/// A database with records in every tree, most of them overwritten or removed since, so
/// that there is space to give back.
fn build(db: &Path) -> Contents {
    let b = open(db);
    let value = |i: u32, round: u32| Bytes::from(format!("{round}:{i}:").repeat(40));
    for round in 0..5u32 {
        for t in TREES {
            let mut batch = WriteBatch::default();
            for i in 0..2_000u32 {
                let k = Bytes::from(format!("{i:06}"));
                if round == 4 && i % 3 == 0 {
                    batch.remove(k);
                } else {
                    batch.put(k, value(i, round).to_vec());
                }
            }
            b.write(t, batch).unwrap();
        }
    }
    b.flush().unwrap();
    contents(&b)
}

/// Run the child with `point` armed on a copy of the database; it must die there.
fn crash_at(point: &str, db: &Path) {
    let out = Process::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "defragment_survives_a_crash_at_every_step",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, db)
        .env("METASTORE_FAILPOINTS", format!("{point}=abort"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the child passed failpoint {point} without dying:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("failpoint {point}: abort")),
        "the child died elsewhere than at {point}:\n{stderr}"
    );
}

#[test]
fn defragment_survives_a_crash_at_every_step() {
    if let Ok(db) = std::env::var(CHILD_ENV) {
        let b = open(&PathBuf::from(db));
        b.defragment().unwrap();
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    let want = build(&pristine.join("db"));
    assert!(!want.is_empty());
    for point in [
        FAILPOINT_COPIED,
        FAILPOINT_MARKED,
        FAILPOINT_MOVED_OLD,
        FAILPOINT_SWAPPED,
    ] {
        let dir = tmp.path().join(point);
        copy_dir(&pristine, &dir);
        let db = dir.join("db");
        crash_at(point, &db);
        let b = open(&db);
        assert!(
            contents(&b) == want,
            "records differ after a crash at {point}"
        );
        // And it defragments fine afterwards.
        b.defragment().unwrap();
        assert!(
            contents(&b) == want,
            "records differ after defragmenting again"
        );
        drop(b);
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["db".to_string()], "after {point}");
        eprintln!("defrag crash at {point}: {} records intact", want.len());
    }
    // A defragmentation that completes gives space back and keeps every record.
    let db = pristine.join("db");
    let before = dir_size(&db);
    let b = open(&db);
    b.defragment().unwrap();
    assert!(contents(&b) == want);
    // Writes go on after the swap.
    let mut batch = WriteBatch::default();
    batch.put(Bytes::from_static(b"after"), b"defrag".to_vec());
    b.write(Tree::State, batch).unwrap();
    b.flush().unwrap();
    assert_eq!(
        b.get(Tree::State, b"after").unwrap().as_deref(),
        Some(&b"defrag"[..])
    );
    drop(b);
    let after = dir_size(&db);
    eprintln!("defrag: data dir {before} -> {after} bytes");
    assert!(
        after < before / 2,
        "defragment gave back too little: {before} -> {after} bytes"
    );
}

//! Measures a `limit 1` range (and `count_only`, `keys_only`) over 10 keys and over
//! 1,000,000 keys, on the sled backend, through the same path the member serves reads by
//! (`apply::kv::range` over the store). Ignored by default: it loads a million keys.
//!
//! `cargo test --release --test range_bench -- --ignored --nocapture`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use metastore::apply::kv::range;
use metastore::mvcc::KvStore;
use metastore::proto::etcdserverpb::RangeRequest;
use metastore::storage::{Backend, SledBackend, Tree, WriteBatch};

fn load(kv: &mut KvStore, backend: &dyn Backend, prefix: &str, n: usize) {
    let mut batch = WriteBatch::default();
    for i in 0..n {
        let mut txn = kv.write(&mut batch);
        txn.put(
            Bytes::from(format!("{prefix}/{i:08}")),
            Bytes::from(vec![b'v'; 64]),
            0,
        );
        txn.end();
        if batch.ops.len() >= 20_000 {
            backend
                .write(Tree::State, std::mem::take(&mut batch))
                .unwrap();
            kv.batch_written();
        }
    }
    backend.write(Tree::State, batch).unwrap();
    kv.batch_written();
}

fn prefix_end(p: &str) -> Bytes {
    let mut e = format!("{p}/").into_bytes();
    *e.last_mut().unwrap() += 1;
    Bytes::from(e)
}

/// Median of `runs` timings of one request.
fn time(kv: &KvStore, req: &RangeRequest, runs: usize) -> (Duration, i64, usize) {
    let mut t = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let r = range(kv, req).unwrap().unwrap();
        t.push(start.elapsed());
        last = Some(r);
    }
    t.sort();
    let r = last.unwrap();
    (t[runs / 2], r.count, r.kvs.len())
}

#[test]
#[ignore]
fn limit_1_range_latency_10_vs_1m_keys() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(SledBackend::open(dir.path()).unwrap());
    let mut kv = KvStore::open(backend.clone()).unwrap();
    load(&mut kv, &*backend, "small", 10);
    load(&mut kv, &*backend, "big", 1_000_000);
    for (name, shape) in [
        ("limit 1", (1, false, false)),
        ("limit 1 keys_only", (1, false, true)),
        ("count_only", (0, true, false)),
    ] {
        for p in ["small", "big"] {
            let req = RangeRequest {
                key: Bytes::from(format!("{p}/")),
                range_end: prefix_end(p),
                limit: shape.0,
                count_only: shape.1,
                keys_only: shape.2,
                ..Default::default()
            };
            let (d, count, n) = time(&kv, &req, 21);
            eprintln!("{name:>18} over {p:>5}: median {d:?} (count {count}, {n} kvs)");
        }
    }
}

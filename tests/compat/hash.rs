//! HashKV side by side with etcd: one randomised history of puts, deletes, txns and
//! compactions (seed printed; `METASTORE_HASH_SEED` replays one) applied to both, and
//! after every step HashKV at several revisions: the current one, revisions between the
//! compacted and the current one, the compacted revision itself and a future revision
//! (both refused). Hash, revision, compact revision and errors must be equal.

use etcd_client::{Client, CompactionOptions, Compare, CompareOp, DeleteOptions, Txn, TxnOp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::client::obs;
use crate::{Pair, Report};

const STEPS: usize = 150;
const KEYS: usize = 12;

/// HashKV at `rev`, as compared: the hash, the header's revision, the compact revision.
async fn hash_at(c: &mut Client, rev: i64) -> String {
    match c.hash_kv(rev).await {
        Ok(r) => format!(
            "hash {} rev {} compact {}",
            r.hash(),
            r.header().map_or(0, |h| h.revision()),
            r.compact_version()
        ),
        Err(e) => obs::<()>(Err(e)),
    }
}

/// One step of the history, the same on both sides.
#[derive(Debug, Clone)]
enum Step {
    Put(usize, String),
    Delete(usize),
    DeletePrefix,
    Txn(usize, usize, String),
    Compact(i64),
}

fn key(p: &str, i: usize) -> String {
    format!("{p}k{i:02}")
}

async fn apply(c: &mut Client, p: &str, step: &Step) -> String {
    match step {
        Step::Put(k, v) => obs(c.put(key(p, *k), v.as_str(), None).await),
        Step::Delete(k) => obs(c.delete(key(p, *k), None).await),
        Step::DeletePrefix => obs(c
            .delete(format!("{p}k0"), Some(DeleteOptions::new().with_prefix()))
            .await),
        Step::Txn(a, b, v) => {
            let txn = Txn::new()
                .when([Compare::version(key(p, *a), CompareOp::Greater, 0)])
                .and_then([
                    TxnOp::put(key(p, *b), v.as_str(), None),
                    TxnOp::delete(key(p, *a), None),
                ])
                .or_else([TxnOp::put(key(p, *a), v.as_str(), None)]);
            obs(c.txn(txn).await)
        }
        Step::Compact(rev) => obs(c
            .compact(*rev, Some(CompactionOptions::new().with_physical()))
            .await),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_kv_matches_etcd_over_a_random_history() {
    let Some(pair) = Pair::start(&[]) else { return };
    let seed: u64 = std::env::var("METASTORE_HASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("hashkv history: seed {seed} (METASTORE_HASH_SEED)");
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut e, mut m) = pair.clients().await;
    let p = "hashkv/";
    let mut rep = Report::default();
    rep.begin("hashkv-random-history");
    let (mut rev, mut compacted) = (1i64, 0i64);
    let mut compared = 0usize;
    for i in 0..STEPS {
        let step = match rng.gen_range(0..20) {
            0..=8 => Step::Put(rng.gen_range(0..KEYS), format!("v{}", rng.gen::<u16>())),
            9..=11 => Step::Delete(rng.gen_range(0..KEYS)),
            12 => Step::DeletePrefix,
            13..=16 => Step::Txn(
                rng.gen_range(0..KEYS),
                rng.gen_range(0..KEYS),
                format!("t{}", rng.gen::<u16>()),
            ),
            _ if rev > compacted + 1 => Step::Compact(rng.gen_range(compacted + 1..=rev)),
            _ => Step::Put(0, "x".into()),
        };
        let (oe, om) = (apply(&mut e, p, &step).await, apply(&mut m, p, &step).await);
        if oe != om {
            rep.diffs.push(format!(
                "[hashkv-random-history] step {i} {step:?}\n  etcd:      {oe}\n  metastore: {om}"
            ));
        }
        if let Step::Compact(r) = step {
            compacted = r;
        }
        rev = e.get(p, None).await.unwrap().header().unwrap().revision();
        let mut revs = vec![0, rev, rev + 1, compacted, compacted + 1];
        for _ in 0..3 {
            revs.push(rng.gen_range(1..=rev));
        }
        for r in revs {
            let (he, hm) = (hash_at(&mut e, r).await, hash_at(&mut m, r).await);
            compared += 1;
            rep.steps += 1;
            if he != hm {
                rep.diffs.push(format!(
                    "[hashkv-random-history] step {i} ({step:?}) HashKV {r}\n  etcd:      {he}\n  metastore: {hm}"
                ));
            }
        }
    }
    eprintln!(
        "hashkv history: seed {seed}, {STEPS} steps, {compared} HashKV answers compared, {} differ",
        rep.diffs.len()
    );
    rep.finish("hashkv");
}

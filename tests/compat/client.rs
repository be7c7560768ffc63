//! Scenarios through the etcd-client crate: every request field the etcdctl CLI cannot set
//! (mod/create revision filters, nested txns, compares over ranges, ...).

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions,
    SortOrder, SortTarget, Txn, TxnOp,
};

use crate::common::normalize_debug;
use crate::{Fut, Obs, Pair, Report};

/// One observation: a normalised response, or the gRPC code and message of an error.
pub(crate) fn obs<T: std::fmt::Debug>(r: Result<T, etcd_client::Error>) -> String {
    match r {
        Ok(v) => normalize_debug(&format!("{v:?}")),
        Err(etcd_client::Error::GRpcStatus(s)) => format!("error {:?}: {}", s.code(), s.message()),
        Err(e) => format!("client error {e}"),
    }
}

pub(crate) async fn run(
    pair: &Pair,
    rep: &mut Report,
    name: &str,
    f: for<'a> fn(&'a mut Client, String) -> Fut<'a>,
) {
    let (oe, om) = crate::observe(pair, name, f).await;
    crate::compare(rep, name, &oe, &om);
}

async fn put3(c: &mut Client, p: &str) -> Obs {
    let mut o = Vec::new();
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        o.push(obs(c.put(format!("{p}{k}"), v, None).await));
    }
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_through_etcd_client() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    run(&pair, &mut rep, "mod-revision-filters", |c, p| {
        Box::pin(async move {
            let mut o = put3(c, &p).await;
            o.push(obs(c.put(format!("{p}a"), "again", None).await));
            let base = GetOptions::new().with_prefix();
            o.push(obs(c
                .get(p.as_str(), Some(base.clone().with_min_mod_revision(4)))
                .await));
            o.push(obs(c
                .get(p.as_str(), Some(base.clone().with_max_mod_revision(3)))
                .await));
            o.push(obs(c
                .get(p.as_str(), Some(base.clone().with_min_create_revision(3)))
                .await));
            o.push(obs(c
                .get(
                    p.as_str(),
                    Some(base.clone().with_max_create_revision(2).with_limit(1)),
                )
                .await));
            o.push(obs(c
                .get(
                    p.as_str(),
                    Some(base.with_min_mod_revision(3).with_count_only()),
                )
                .await));
            o
        })
    })
    .await;
    run(&pair, &mut rep, "limit-count-sort", |c, p| {
        Box::pin(async move {
            let mut o = put3(c, &p).await;
            let base = GetOptions::new().with_prefix();
            o.push(obs(c
                .get(p.as_str(), Some(base.clone().with_limit(1)))
                .await));
            o.push(obs(c
                .get(
                    p.as_str(),
                    Some(
                        base.clone()
                            .with_sort(SortTarget::Value, SortOrder::Descend)
                            .with_limit(2),
                    ),
                )
                .await));
            o.push(obs(c
                .get(
                    p.as_str(),
                    Some(base.clone().with_sort(SortTarget::Mod, SortOrder::None)),
                )
                .await));
            o.push(obs(c
                .get(
                    p.as_str(),
                    Some(base.clone().with_keys_only().with_serializable()),
                )
                .await));
            o.push(obs(c
                .get(p.as_str(), Some(base.with_count_only().with_limit(1)))
                .await));
            o
        })
    })
    .await;
    run(&pair, &mut rep, "all-keys-and-from-key", |c, p| {
        Box::pin(async move {
            let mut o = put3(c, &p).await;
            o.push(obs(c
                .get(
                    format!("{p}b"),
                    Some(GetOptions::new().with_from_key().with_count_only()),
                )
                .await));
            o.push(obs(c
                .get(
                    "",
                    Some(GetOptions::new().with_all_keys().with_count_only()),
                )
                .await));
            o
        })
    })
    .await;
    run(&pair, &mut rep, "put-options", |c, p| {
        Box::pin(async move {
            let k = format!("{p}k");
            let mut o = vec![obs(c.put(k.as_str(), "v1", None).await)];
            o.push(obs(c
                .put(k.as_str(), "v2", Some(PutOptions::new().with_prev_key()))
                .await));
            o.push(obs(c
                .put(
                    k.as_str(),
                    "",
                    Some(PutOptions::new().with_ignore_value().with_prev_key()),
                )
                .await));
            o.push(obs(c
                .put(k.as_str(), "x", Some(PutOptions::new().with_ignore_value()))
                .await));
            o.push(obs(c
                .put(
                    k.as_str(),
                    "x",
                    Some(PutOptions::new().with_ignore_lease().with_lease(5)),
                )
                .await));
            o.push(obs(c
                .put(k.as_str(), "x", Some(PutOptions::new().with_lease(77)))
                .await));
            o.push(obs(c.get(k.as_str(), None).await));
            o
        })
    })
    .await;
    run(&pair, &mut rep, "delete-options", |c, p| {
        Box::pin(async move {
            let mut o = put3(c, &p).await;
            o.push(obs(c
                .delete(format!("{p}a"), Some(DeleteOptions::new().with_prev_key()))
                .await));
            o.push(obs(c
                .delete(
                    format!("{p}b"),
                    Some(DeleteOptions::new().with_from_key().with_prev_key()),
                )
                .await));
            o.push(obs(c.delete(format!("{p}zzz"), None).await));
            o.push(obs(c
                .get(p.as_str(), Some(GetOptions::new().with_prefix()))
                .await));
            o
        })
    })
    .await;
    run(&pair, &mut rep, "txn-nested", |c, p| {
        Box::pin(async move {
            let mut o = put3(c, &p).await;
            let inner = Txn::new()
                .when([Compare::value(format!("{p}b"), CompareOp::Equal, "2")])
                .and_then([
                    TxnOp::put(format!("{p}nested"), "yes", None),
                    TxnOp::get(format!("{p}b"), None),
                ])
                .or_else([TxnOp::put(format!("{p}nested"), "no", None)]);
            let outer = Txn::new()
                .when([Compare::version(format!("{p}a"), CompareOp::Greater, 0)])
                .and_then([
                    TxnOp::txn(inner),
                    TxnOp::delete(format!("{p}c"), Some(DeleteOptions::new().with_prev_key())),
                ])
                .or_else([TxnOp::put(format!("{p}outer"), "failed", None)]);
            o.push(obs(c.txn(outer).await));
            o.push(obs(c
                .get(p.as_str(), Some(GetOptions::new().with_prefix()))
                .await));
            o
        })
    })
    .await;
    run(
        &pair,
        &mut rep,
        "txn-nested-branches-may-share-keys",
        |c, p| {
            Box::pin(async move {
                let inner = Txn::new()
                    .and_then([TxnOp::put(format!("{p}k"), "then", None)])
                    .or_else([TxnOp::put(format!("{p}k"), "else", None)]);
                let mut o = vec![obs(c.txn(Txn::new().and_then([TxnOp::txn(inner)])).await)];
                let inner = Txn::new().and_then([TxnOp::put(format!("{p}k"), "then", None)]);
                let dup = Txn::new().and_then([
                    TxnOp::txn(inner),
                    TxnOp::put(format!("{p}k"), "outer", None),
                ]);
                o.push(obs(c.txn(dup).await));
                o
            })
        },
    )
    .await;
    run(&pair, &mut rep, "txn-compare-ranges", |c, p| {
        Box::pin(async move {
            let mut o = put3(c, &p).await;
            let all_small = Compare::mod_revision(format!("{p}a"), CompareOp::Less, 1000)
                .with_range(format!("{p}z"));
            let all_one = Compare::value(format!("{p}a"), CompareOp::Equal, "1").with_prefix();
            o.push(obs(c
                .txn(Txn::new().when([all_small]).and_then([TxnOp::get(
                    p.as_str(),
                    Some(GetOptions::new().with_prefix().with_count_only()),
                )]))
                .await));
            o.push(obs(c
                .txn(Txn::new().when([all_one]).or_else([TxnOp::put(
                    format!("{p}x"),
                    "1",
                    Some(PutOptions::new().with_prev_key()),
                )]))
                .await));
            let create = Compare::create_revision(format!("{p}missing"), CompareOp::Equal, 0);
            let lease = Compare::lease(format!("{p}a"), CompareOp::Equal, 0);
            o.push(obs(c
                .txn(
                    Txn::new()
                        .when([create, lease])
                        .and_then([TxnOp::get(format!("{p}a"), None)]),
                )
                .await));
            o
        })
    })
    .await;
    run(&pair, &mut rep, "txn-refusals-change-nothing", |c, p| {
        Box::pin(async move {
            let mut o = put3(c, &p).await;
            let missing_lease = Txn::new().and_then([
                TxnOp::put(format!("{p}a"), "x", None),
                TxnOp::put(format!("{p}b"), "y", Some(PutOptions::new().with_lease(99))),
            ]);
            o.push(obs(c.txn(missing_lease).await));
            let ignore = Txn::new().and_then([
                TxnOp::put(format!("{p}a"), "x", None),
                TxnOp::put(
                    format!("{p}none"),
                    "",
                    Some(PutOptions::new().with_ignore_value()),
                ),
            ]);
            o.push(obs(c.txn(ignore).await));
            let future = Txn::new().and_then([
                TxnOp::put(format!("{p}a"), "x", None),
                TxnOp::get(
                    format!("{p}a"),
                    Some(GetOptions::new().with_revision(100_000)),
                ),
            ]);
            o.push(obs(c.txn(future).await));
            let empty_compare = Txn::new().when([Compare::value("", CompareOp::Equal, "x")]);
            o.push(obs(c.txn(empty_compare).await));
            let empty_put = Txn::new().and_then([TxnOp::put("", "x", None)]);
            o.push(obs(c.txn(empty_put).await));
            o.push(obs(c
                .get(p.as_str(), Some(GetOptions::new().with_prefix()))
                .await));
            o
        })
    })
    .await;
    run(&pair, &mut rep, "txn-read-only-at-revision", |c, p| {
        Box::pin(async move {
            let mut o = put3(c, &p).await;
            o.push(obs(c
                .txn(Txn::new().and_then([TxnOp::get(
                    p.as_str(),
                    Some(GetOptions::new().with_prefix().with_revision(2)),
                )]))
                .await));
            o
        })
    })
    .await;
    run(&pair, &mut rep, "txn-sees-own-writes", |c, p| {
        Box::pin(async move {
            let t = Txn::new().and_then([
                TxnOp::put(format!("{p}a"), "1", None),
                TxnOp::get(format!("{p}a"), None),
                TxnOp::delete(format!("{p}a"), Some(DeleteOptions::new().with_prev_key())),
                TxnOp::get(format!("{p}a"), None),
                TxnOp::put(
                    format!("{p}b"),
                    "2",
                    Some(PutOptions::new().with_prev_key()),
                ),
            ]);
            vec![obs(c.txn(t).await)]
        })
    })
    .await;
    run(&pair, &mut rep, "compact-physical-and-reads", |c, p| {
        Box::pin(async move {
            let mut o = put3(c, &p).await;
            o.push(obs(c.put(format!("{p}a"), "2", None).await));
            let rev = c
                .get(format!("{p}a"), None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision();
            o.push(obs(c
                .compact(rev - 1, Some(CompactionOptions::new().with_physical()))
                .await));
            o.push(obs(c
                .get(
                    format!("{p}a"),
                    Some(GetOptions::new().with_revision(rev - 2)),
                )
                .await));
            o.push(obs(c
                .get(
                    p.as_str(),
                    Some(GetOptions::new().with_prefix().with_revision(rev - 1)),
                )
                .await));
            o.push(obs(c.compact(rev - 1, None).await));
            o.push(obs(c.compact(rev + 10, None).await));
            o
        })
    })
    .await;
    rep.finish("kv_through_etcd_client");
}

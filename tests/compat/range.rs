//! Range answers with `limit`, `count_only` and `keys_only`, with and without sort and
//! filters, at the latest and at an older revision: the store reads at most `limit + 1`
//! values and counts from the index, and must still answer exactly as etcd does (`count`
//! is every key of the range, `more` says whether keys were left out).

use etcd_client::{Client, GetOptions, SortOrder, SortTarget};

use crate::client::{obs, run};
use crate::{Obs, Pair, Report};

/// Six keys with distinct versions, values and revisions, and one deleted key.
async fn history(c: &mut Client, p: &str) -> (Obs, i64) {
    let mut o = Vec::new();
    for (i, k) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        for round in 0..=i {
            o.push(obs(c
                .put(format!("{p}{k}"), format!("{}{k}", 9 - i - round), None)
                .await));
        }
    }
    let mid = c
        .get(format!("{p}a"), None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    o.push(obs(c.put(format!("{p}g"), "gone", None).await));
    o.push(obs(c.delete(format!("{p}g"), None).await));
    o.push(obs(c.put(format!("{p}b"), "late", None).await));
    (o, mid)
}

fn options(rev: i64) -> Vec<GetOptions> {
    let base = || GetOptions::new().with_prefix();
    let mut v = vec![
        base().with_limit(1),
        base().with_limit(2),
        base().with_limit(6),
        base().with_limit(7),
        base().with_count_only(),
        base().with_count_only().with_limit(2),
        base().with_keys_only().with_limit(2),
        base().with_keys_only(),
        base()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(2),
        base()
            .with_sort(SortTarget::Key, SortOrder::Ascend)
            .with_limit(2),
        base()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_keys_only()
            .with_limit(1),
        base()
            .with_sort(SortTarget::Mod, SortOrder::Descend)
            .with_limit(2),
        base()
            .with_sort(SortTarget::Mod, SortOrder::None)
            .with_limit(2),
        base()
            .with_sort(SortTarget::Version, SortOrder::Ascend)
            .with_limit(3),
        base()
            .with_sort(SortTarget::Create, SortOrder::Descend)
            .with_limit(1),
        base()
            .with_sort(SortTarget::Value, SortOrder::Descend)
            .with_keys_only()
            .with_limit(2),
        base().with_min_mod_revision(10).with_limit(1),
        base().with_max_create_revision(5).with_limit(1),
        base()
            .with_max_create_revision(5)
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(1),
        base()
            .with_min_mod_revision(10)
            .with_sort(SortTarget::Mod, SortOrder::None)
            .with_limit(1),
        base().with_min_create_revision(8).with_count_only(),
    ];
    let at = |o: GetOptions| o.with_revision(rev);
    v.extend([
        at(base().with_limit(1)),
        at(base().with_count_only()),
        at(base().with_keys_only().with_limit(2)),
        at(base()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(1)),
        at(base()
            .with_sort(SortTarget::Version, SortOrder::Descend)
            .with_limit(2)),
        at(base().with_max_mod_revision(rev - 2).with_limit(1)),
    ]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_limits_counts_and_keys_only_match_etcd() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    run(&pair, &mut rep, "range-limit-count-keys-only", |c, p| {
        Box::pin(async move {
            let (mut o, mid) = history(c, &p).await;
            for opts in options(mid) {
                o.push(obs(c.get(p.as_str(), Some(opts)).await));
            }
            // A single key, and every key from one on.
            o.push(obs(c
                .get(format!("{p}c"), Some(GetOptions::new().with_limit(1)))
                .await));
            o.push(obs(c
                .get(
                    format!("{p}c"),
                    Some(GetOptions::new().with_from_key().with_limit(2)),
                )
                .await));
            o.push(obs(c
                .get(
                    format!("{p}c"),
                    Some(GetOptions::new().with_from_key().with_count_only()),
                )
                .await));
            // After a compaction above the older revision, reads there are refused.
            let now = c
                .get(p.as_str(), None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision();
            o.push(obs(c.compact(mid + 2, None).await));
            o.push(obs(c
                .get(
                    p.as_str(),
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_revision(mid)
                            .with_limit(1),
                    ),
                )
                .await));
            o.push(obs(c
                .get(
                    p.as_str(),
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_revision(now)
                            .with_limit(1),
                    ),
                )
                .await));
            o.push(obs(c
                .get(
                    p.as_str(),
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_revision(mid + 2)
                            .with_count_only(),
                    ),
                )
                .await));
            o
        })
    })
    .await;
    rep.finish("range_limits_counts_and_keys_only_match_etcd");
}

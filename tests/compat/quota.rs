//! The backend quota side by side with etcd: a member with a small
//! `--quota-backend-bytes` fills up, raises NOSPACE, refuses what adds data with etcd's
//! error while reads and deletes go on, and after a compaction, a defragment and a disarm
//! accepts writes again. The two fill up after different numbers of puts (metastore's
//! database also holds the raft log, etcd's WAL is outside the quota), so what is compared
//! is each step's answer, not revisions or sizes; the sizes are printed.
//!
//! metastore runs with a short --experimental-snapshot-catchup-entries so that the
//! snapshot defragment takes lets raft purge its log (docs/compat.md).

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, Client, CompactionOptions, GetOptions};

use crate::common::{Kind, Server};
use crate::{Pair, Report};

const QUOTA: &str = "4000000";
const VALUE: usize = 64 * 1024;

/// An answer without what legitimately differs: revisions, ids, terms.
fn answer<T>(r: Result<T, etcd_client::Error>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(etcd_client::Error::GRpcStatus(s)) => format!("error {:?}: {}", s.code(), s.message()),
        Err(e) => format!("client error {e}"),
    }
}

async fn db_size(c: &mut Client) -> i64 {
    c.status().await.map(|s| s.db_size()).unwrap_or(-1)
}

/// The sequence; every answer in order.
async fn scenario(c: &mut Client, label: &str) -> Vec<String> {
    let me = c.status().await.unwrap().header().unwrap().member_id();
    let on_me = || {
        let mut o = AlarmOptions::new();
        o.with_member(me);
        Some(o)
    };
    let mut o = Vec::new();
    let mut refused = None;
    let mut puts = 0;
    for i in 0..1_000 {
        let value = format!("{i:08}").repeat(VALUE / 8);
        match c.put("quota/k", value, None).await {
            Ok(_) => puts += 1,
            Err(e) => {
                refused = Some(answer::<()>(Err(e)));
                break;
            }
        }
    }
    let full = db_size(c).await;
    o.push(format!("first refusal: {refused:?}"));
    let alarms = c.alarm(AlarmAction::Get, AlarmType::None, None).await;
    o.push(match alarms {
        Ok(a) => format!(
            "{:?}",
            a.alarms()
                .iter()
                .map(|m| (m.member_id() == me, m.alarm()))
                .collect::<Vec<_>>()
        ),
        Err(e) => answer::<()>(Err(e)),
    });
    o.push(answer(c.put("quota/k", "small", None).await));
    o.push(answer(c.lease_grant(60, None).await));
    o.push(answer(
        c.get(
            "quota/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await,
    ));
    o.push(answer(c.delete("quota/other", None).await));
    let rev = c
        .get("quota/k", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    o.push(answer(
        c.compact(rev, Some(CompactionOptions::new().with_physical()))
            .await,
    ));
    // Still refused: the space is not given back until defragment.
    o.push(answer(c.put("quota/k", "small", None).await));
    let defrag = c.defragment().await;
    o.push(match &defrag {
        Ok(r) => format!("defragment: header {:?}", r.header().map(|_| "present")),
        Err(_) => answer(defrag),
    });
    let after = db_size(c).await;
    o.push(answer(
        c.alarm(AlarmAction::Deactivate, AlarmType::Nospace, on_me())
            .await,
    ));
    o.push(answer(
        c.alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .map(|a| a.alarms().len()),
    ));
    o.push(format!(
        "{:?}",
        c.alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .map(|a| a.alarms().len())
            .ok()
    ));
    o.push(answer(c.put("quota/k", "small", None).await));
    o.push(answer(c.lease_grant(60, None).await));
    eprintln!(
        "quota {label}: {puts} puts of {VALUE} bytes until NOSPACE; db size {full} at the \
         refusal, {after} after compact and defragment"
    );
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nospace_compact_defragment_disarm_as_etcd() {
    if crate::external().is_some() {
        eprintln!("skipping: this group needs servers started with their own flags");
        return;
    }
    if !crate::common::require_etcd() {
        return;
    }
    let pair = Pair {
        etcd: Server::start(Kind::Etcd, &["--quota-backend-bytes", QUOTA]),
        ms: Server::start(
            Kind::Metastore,
            &[
                "--quota-backend-bytes",
                QUOTA,
                "--experimental-snapshot-catchup-entries",
                "5",
            ],
        ),
    };
    let (mut e, mut m) = pair.clients().await;
    let oe = scenario(&mut e, "etcd").await;
    let om = scenario(&mut m, "metastore").await;
    let mut rep = Report::default();
    crate::compare(&mut rep, "nospace-compact-defragment-disarm", &oe, &om);
    rep.finish("quota");
}

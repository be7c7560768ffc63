//! The member list and alarms through the etcd-client crate: the members a single member
//! reports (name, peer and client URLs, learner flag), and alarms raised, listed and
//! cleared, with what a raised NOSPACE alarm refuses (etcd's capped applier).

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, Client, PutOptions, Txn, TxnOp};

use crate::client::run;
use crate::common::normalize_debug;
use crate::{Obs, Pair, Report};

/// A normalised observation; loopback ports differ between the two servers.
fn obs<T: std::fmt::Debug>(r: Result<T, etcd_client::Error>) -> String {
    let s = match r {
        Ok(v) => normalize_debug(&format!("{v:?}")),
        Err(etcd_client::Error::GRpcStatus(s)) => format!("error {:?}: {}", s.code(), s.message()),
        Err(e) => format!("client error {e}"),
    };
    let ports = regex::Regex::new(r"127\.0\.0\.1:\d+").unwrap();
    let ids = regex::Regex::new(r"\bid: \d+").unwrap();
    ids.replace_all(&ports.replace_all(&s, "127.0.0.1:PORT"), "id: 0")
        .into_owned()
}

async fn own_id(c: &mut Client) -> u64 {
    c.status().await.unwrap().header().unwrap().member_id()
}

fn on(member: u64) -> Option<AlarmOptions> {
    let mut o = AlarmOptions::new();
    o.with_member(member);
    Some(o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_and_alarms_through_etcd_client() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    run(&pair, &mut rep, "member-list", |c, _| {
        Box::pin(async move {
            let resp = c.member_list().await;
            let ids_match = match &resp {
                Ok(r) => {
                    let me = r.header().unwrap().member_id();
                    r.members().iter().map(|m| m.id() == me).collect::<Vec<_>>()
                }
                Err(_) => Vec::new(),
            };
            vec![obs(resp), format!("{ids_match:?}")]
        })
    })
    .await;
    run(&pair, &mut rep, "alarms", |c, p| {
        Box::pin(async move {
            let me = own_id(c).await;
            let mut o: Obs = Vec::new();
            let get = |c: &mut Client| {
                let mut c = c.clone();
                async move { obs(c.alarm(AlarmAction::Get, AlarmType::None, None).await) }
            };
            o.push(get(c).await);
            o.push(obs(c.put(format!("{p}before"), "1", None).await));
            let lease = c.lease_grant(60, None).await.unwrap().id();
            o.push(obs(c
                .alarm(AlarmAction::Activate, AlarmType::Nospace, on(me))
                .await));
            o.push(obs(c
                .alarm(AlarmAction::Activate, AlarmType::Nospace, on(me))
                .await));
            o.push(get(c).await);
            o.push(obs(c
                .alarm(AlarmAction::Get, AlarmType::Nospace, None)
                .await));
            o.push(obs(c
                .alarm(AlarmAction::Get, AlarmType::Corrupt, None)
                .await));
            // Status lists raised alarms among its errors (the member id made comparable).
            let errors = c.status().await.map(|s| {
                s.errors()
                    .iter()
                    .map(|e| e.replace(&me.to_string(), "<me>"))
                    .collect::<Vec<_>>()
            });
            o.push(format!("{:?}", errors.map_err(|e| e.to_string())));
            // What adds data is refused; reads, deletes and revokes are not.
            o.push(obs(c.put(format!("{p}during"), "1", None).await));
            o.push(obs(c
                .put(
                    format!("{p}during"),
                    "1",
                    Some(PutOptions::new().with_lease(lease)),
                )
                .await));
            o.push(obs(c.lease_grant(60, None).await));
            let put_txn = Txn::new().and_then([TxnOp::put(format!("{p}t"), "1", None)]);
            o.push(obs(c.txn(put_txn).await));
            let del_txn = Txn::new().and_then([TxnOp::delete(format!("{p}before"), None)]);
            o.push(obs(c.txn(del_txn).await));
            o.push(obs(c.get(format!("{p}before"), None).await));
            o.push(obs(c.delete(format!("{p}nothing"), None).await));
            o.push(obs(c.lease_revoke(lease).await));
            // Clearing an alarm that is not raised answers no alarm.
            o.push(obs(c
                .alarm(AlarmAction::Deactivate, AlarmType::Corrupt, on(me))
                .await));
            o.push(obs(c
                .alarm(AlarmAction::Deactivate, AlarmType::Nospace, on(me))
                .await));
            o.push(get(c).await);
            o.push(obs(c.put(format!("{p}after"), "1", None).await));
            // A raised CORRUPT refuses every write through the log; reads (a read-only
            // txn too) and the alarm requests themselves go on.
            o.push(obs(c
                .alarm(AlarmAction::Activate, AlarmType::Corrupt, on(me))
                .await));
            o.push(obs(c.put(format!("{p}corrupt"), "1", None).await));
            o.push(obs(c.delete(format!("{p}after"), None).await));
            let put_txn = Txn::new().and_then([TxnOp::put(format!("{p}t"), "1", None)]);
            o.push(obs(c.txn(put_txn).await));
            let read_txn = Txn::new().and_then([TxnOp::get(format!("{p}after"), None)]);
            o.push(obs(c.txn(read_txn).await));
            o.push(obs(c.get(format!("{p}after"), None).await));
            o.push(obs(c.lease_grant(60, None).await));
            o.push(obs(c.lease_revoke(7).await));
            o.push(obs(c.compact(1, None).await));
            o.push(get(c).await);
            o.push(obs(c
                .alarm(AlarmAction::Deactivate, AlarmType::Corrupt, on(me))
                .await));
            o.push(obs(c.put(format!("{p}corrupt"), "1", None).await));
            o
        })
    })
    .await;
    rep.finish("members and alarms");
}

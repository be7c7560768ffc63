//! Tests of the member that need its insides (the store's lock).

use std::time::Duration;

use bytes::Bytes;

use super::Member;
use crate::config::Config;
use crate::proto::etcdserverpb::{request_op::Request, RangeRequest, RequestOp, TxnRequest};

async fn start(dir: &std::path::Path) -> std::sync::Arc<Member> {
    let args: Vec<String> = [
        "metastore",
        "--name",
        "default",
        "--data-dir",
        &dir.join("data").to_string_lossy(),
        "--log-level",
        "warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = Config::from_args(args).expect("config");
    Member::start(&cfg).await.expect("start")
}

fn read_only_txn() -> TxnRequest {
    TxnRequest {
        success: vec![RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: Bytes::from_static(b"k"),
                ..Default::default()
            })),
        }],
        ..Default::default()
    }
}

/// A read-only txn is a read: it answers while another reader holds the store's lock (it
/// used to take the write lock and wait behind them, and behind every apply).
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_read_only_txn_answers_while_a_reader_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let member = start(dir.path()).await;
    member
        .put(
            &crate::auth::AuthInfo::member(),
            crate::proto::etcdserverpb::PutRequest {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let kv = member.state.kv.clone();
    let reader = std::thread::spawn(move || {
        let _guard = kv.read().unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    held_rx.recv().unwrap();

    let txn = tokio::spawn({
        let member = member.clone();
        async move {
            member
                .txn(&crate::auth::AuthInfo::member(), read_only_txn())
                .await
        }
    });
    let answered = tokio::time::timeout(Duration::from_secs(5), txn).await;
    release_tx.send(()).unwrap();
    reader.join().unwrap();
    let resp = answered
        .expect("the read-only txn waited for the reader to let go")
        .unwrap()
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.responses.len(), 1);
    member.shutdown().await;
}

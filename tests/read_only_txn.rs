//! A read-only txn is a read: it runs under the store's shared lock, so it answers while
//! another reader holds the lock (it used to take the write lock and wait behind them, and
//! behind every apply).

use std::time::Duration;

use bytes::Bytes;
use metastore::proto::etcdserverpb::{request_op::Request, RangeRequest, RequestOp, TxnRequest};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_read_only_txn_answers_while_a_reader_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let args: Vec<String> = [
        "metastore",
        "--name",
        "default",
        "--data-dir",
        &dir.path().join("data").to_string_lossy(),
        "--listen-client-urls",
        &url,
        "--advertise-client-urls",
        &url,
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster",
        &format!("default={peer}"),
        "--log-level",
        "warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = metastore::config::Config::from_args(args).expect("config");
    let server = metastore::embed::Server::start(cfg).await.expect("start");
    let member = server.member.clone();
    member
        .put(metastore::proto::etcdserverpb::PutRequest {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"v"),
            ..Default::default()
        })
        .await
        .unwrap();

    // Another reader holds the store's lock until told to let go.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let kv = member.state.kv.clone();
    let reader = std::thread::spawn(move || {
        let _guard = kv.read().unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    held_rx.recv().unwrap();

    let req = TxnRequest {
        success: vec![RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: Bytes::from_static(b"k"),
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    let txn = tokio::spawn({
        let member = member.clone();
        async move { member.txn(req).await }
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
    server.close().await;
}

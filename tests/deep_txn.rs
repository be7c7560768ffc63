//! A txn nested as deep as the request checks admit is applied, survives kill -9 and a
//! restart (its log entry decodes again: prost alone stops at about 50 levels, and a
//! committed entry that fails to decode would stop the member), and a deeper one is
//! refused with etcd's error.

mod common;

use bytes::Bytes;
use common::{Kind, Server};
use metastore::proto::etcdserverpb::{
    kv_client::KvClient, request_op::Request, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use metastore::proto::nested::MAX_TXN_DEPTH;

fn chain(key: &str, depth: usize) -> TxnRequest {
    let mut t = TxnRequest {
        compare: vec![],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: Bytes::copy_from_slice(key.as_bytes()),
                value: Bytes::from_static(b"deep"),
                ..Default::default()
            })),
        }],
        failure: vec![],
    };
    for _ in 1..depth {
        t = TxnRequest {
            compare: vec![],
            success: vec![RequestOp {
                request: Some(Request::RequestTxn(t)),
            }],
            failure: vec![],
        };
    }
    t
}

async fn client(s: &Server) -> KvClient<tonic::transport::Channel> {
    KvClient::connect(s.endpoint.clone()).await.unwrap()
}

async fn count(c: &mut KvClient<tonic::transport::Channel>, key: &str) -> i64 {
    c.range(RangeRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_txns_apply_and_replay_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    // a budget that admits the decoder's whole depth
    let flags = ["--max-txn-ops", "1000"];
    let mut server = Server::spawn(Kind::Metastore, &data, port, &flags);
    let mut c = client(&server).await;
    for depth in [60, 129, MAX_TXN_DEPTH] {
        let r = c.txn(chain(&format!("deep/{depth}"), depth)).await;
        assert!(r.unwrap().into_inner().succeeded, "depth {depth}");
    }
    let too_deep = c
        .txn(chain("deep/too", MAX_TXN_DEPTH + 1))
        .await
        .unwrap_err();
    assert_eq!(too_deep.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        too_deep.message(),
        "etcdserver: too many operations in txn request"
    );
    drop(c);
    server.kill();
    let server = Server::spawn(Kind::Metastore, &data, port, &flags);
    let mut c = client(&server).await;
    for depth in [60, 129, MAX_TXN_DEPTH] {
        assert_eq!(
            count(&mut c, &format!("deep/{depth}")).await,
            1,
            "depth {depth}"
        );
    }
    assert_eq!(count(&mut c, "deep/too").await, 0);
    // and it goes on taking writes
    let r = c.txn(chain("deep/after", 100)).await.unwrap().into_inner();
    assert!(r.succeeded);
}

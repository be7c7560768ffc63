//! Maintenance.Downgrade as etcd 3.5 answers it (metastore reports 3.5 by default; etcd
//! 3.4, the reference binary, has no Downgrade), through etcd-client on a 3-member
//! cluster: VALIDATE and ENABLE of the one valid target, etcd's errors for a bad format,
//! a wrong target, a job in progress, a CANCEL with none and an unknown action; the job
//! is replicated to every member's Status, survives kill -9 of a member, and CANCEL ends
//! it everywhere. A member reporting 3.6 answers as etcd 3.6 does.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use etcd_client::{Client, ConnectOptions, DowngradeOptions, Error};
use metastore::proto::etcdserverpb::{maintenance_client::MaintenanceClient, DowngradeRequest};

async fn client(endpoint: &str) -> Client {
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(10));
    Client::connect([endpoint], Some(opts))
        .await
        .expect("connect")
}

fn status_of(e: Error) -> (tonic::Code, String) {
    match e {
        Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("not a gRPC status: {other}"),
    }
}

async fn refused(c: &mut Client, o: DowngradeOptions) -> (tonic::Code, String) {
    status_of(
        c.maintenance_client()
            .downgrade(o)
            .await
            .expect_err("the downgrade must be refused"),
    )
}

/// Wait until every member's Status shows `want` as (enabled, target version).
async fn every_status_shows(c: &Cluster, want: (bool, &str)) {
    for m in &c.members {
        let mut cl = client(&m.endpoint()).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = cl.status().await.expect("status");
            let info = s.downgrade_info().expect("downgrade info");
            if (info.enabled(), info.target_version()) == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member {} shows {:?}, not {want:?}",
                m.name,
                (info.enabled(), info.target_version())
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downgrade_job_is_validated_replicated_kept_and_cancelled_as_etcd_35() {
    let mut c = Cluster::start(3, &[]);
    let mut cl = client(&c.members[0].endpoint()).await;
    let invalid = (
        tonic::Code::InvalidArgument,
        "etcdserver: invalid downgrade target version".to_string(),
    );
    let format = (
        tonic::Code::InvalidArgument,
        "etcdserver: wrong downgrade target version format".to_string(),
    );

    let ok = cl
        .maintenance_client()
        .downgrade(DowngradeOptions::Validate("3.4".into()))
        .await
        .expect("validate 3.4");
    assert_eq!(ok.version(), "3.5.0");
    assert!(ok.header().is_some());
    for bad in ["3.5", "3.3.0", "2.4", "4.4"] {
        let got = refused(&mut cl, DowngradeOptions::Validate(bad.into())).await;
        assert_eq!(got, invalid, "{bad}");
    }
    for bad in ["x", "3", "3*.9", ""] {
        let got = refused(&mut cl, DowngradeOptions::Enable(bad.into())).await;
        assert_eq!(got, format, "{bad:?}");
    }
    assert_eq!(
        refused(&mut cl, DowngradeOptions::Cancel).await,
        (
            tonic::Code::FailedPrecondition,
            "etcdserver: no inflight downgrade job".into()
        )
    );
    // An action etcd does not know.
    let mut raw = MaintenanceClient::connect(c.members[0].endpoint())
        .await
        .unwrap();
    let unknown = raw
        .downgrade(DowngradeRequest {
            action: 7,
            version: "3.4".into(),
        })
        .await
        .expect_err("unknown action");
    assert_eq!(
        (unknown.code(), unknown.message()),
        (tonic::Code::Unknown, "etcdserver: unknown method")
    );
    every_status_shows(&c, (false, "")).await;

    // ENABLE, on a follower or the leader alike; the patch is dropped.
    let other = client(&c.members[2].endpoint()).await;
    let enabled = other
        .maintenance_client()
        .downgrade(DowngradeOptions::Enable("3.4.7".into()))
        .await
        .expect("enable");
    assert_eq!(enabled.version(), "3.5.0");
    every_status_shows(&c, (true, "3.4.0")).await;
    let in_process = (
        tonic::Code::FailedPrecondition,
        "etcdserver: cluster has a downgrade job in progress".to_string(),
    );
    assert_eq!(
        refused(&mut cl, DowngradeOptions::Validate("3.4".into())).await,
        in_process
    );
    assert_eq!(
        refused(&mut cl, DowngradeOptions::Enable("3.4".into())).await,
        in_process
    );

    // Kept across kill -9 and restart.
    c.members[1].kill();
    c.restart(1);
    every_status_shows(&c, (true, "3.4.0")).await;

    // CANCEL ends it on every member.
    let cancelled = cl
        .maintenance_client()
        .downgrade(DowngradeOptions::Cancel)
        .await
        .expect("cancel");
    assert_eq!(cancelled.version(), "3.5.0");
    every_status_shows(&c, (false, "")).await;
    cl.maintenance_client()
        .downgrade(DowngradeOptions::Validate("3.4".into()))
        .await
        .expect("validate again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reporting_36_answers_as_etcd_36() {
    let c = Cluster::start(1, &["--report-version", "3.6.5"]);
    let cl = client(&c.members[0].endpoint()).await;
    // 3.6 answers major.minor, and a CANCEL with no job succeeds.
    let v = cl
        .maintenance_client()
        .downgrade(DowngradeOptions::Validate("3.5".into()))
        .await
        .expect("validate 3.5");
    assert_eq!(v.version(), "3.6");
    let cancel = cl
        .maintenance_client()
        .downgrade(DowngradeOptions::Cancel)
        .await
        .expect("cancel without a job");
    assert_eq!(cancel.version(), "3.6");
    cl.maintenance_client()
        .downgrade(DowngradeOptions::Enable("3.5.0".into()))
        .await
        .expect("enable");
    every_status_shows(&c, (true, "3.5.0")).await;
}

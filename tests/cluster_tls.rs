//! Peer TLS: 3-member clusters whose peers talk over `https://` peer URLs, with
//! certificates of a CA (generated per run with rcgen) and `--peer-client-cert-auth`,
//! `--peer-cert-allowed-cn`, a CRL, and with `--peer-auto-tls`. A write on one member is
//! read (linearizably) on every other, so every member reached the others over TLS; a
//! connection with a certificate of the wrong name, a revoked one, or none is refused.

mod common;

use std::path::Path;
use std::process::Command;

use common::cluster::Cluster;
use common::pki;

/// A CA and, signed by it, certificates for 127.0.0.1 with the given common names
/// (`<cn>.pem`, `<cn>-key.pem`), and a CRL revoking `revoked`.
fn make_pki(dir: &Path, names: &[&str]) {
    let ca = pki::ca(dir, "ca", "peer CA");
    for (serial, cn) in (10u64..).zip(names) {
        pki::leaf(dir, &ca, cn, cn, &["127.0.0.1", "localhost"], serial);
    }
    let revoked = names.iter().position(|n| *n == "revoked").unwrap_or(99) as u64 + 10;
    pki::crl(dir, &ca, revoked);
}

/// A write on member 0 is read linearizably on every member.
async fn write_and_read_everywhere(cluster: &Cluster) {
    let mut c = cluster.members[0].client().await;
    c.put("peer-tls", "yes", None).await.expect("put");
    for m in &cluster.members {
        let mut c = m.client().await;
        let r = c.get("peer-tls", None).await.expect("get");
        assert_eq!(r.kvs().first().map(|kv| kv.value()), Some(&b"yes"[..]));
    }
}

/// curl to a peer port over TLS with a client certificate (or none): whether an HTTP/2
/// answer came back, i.e. the connection was let in.
fn let_in(dir: &Path, peer_url: &str, cert: Option<&str>) -> bool {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "--max-time", "5", "--http2"])
        .arg("--cacert")
        .arg(dir.join("ca.pem"));
    if let Some(cn) = cert {
        cmd.arg("--cert")
            .arg(dir.join(format!("{cn}.pem")))
            .arg("--key")
            .arg(dir.join(format!("{cn}-key.pem")));
    }
    cmd.arg(format!("{peer_url}/")).status().unwrap().success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_over_peer_tls_with_client_certificates_of_one_name() {
    let pki_dir = tempfile::tempdir().unwrap();
    let dir = pki_dir.path();
    make_pki(dir, &["member", "intruder", "revoked"]);
    let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let flags = vec![
        "--peer-cert-file".to_string(),
        p("member.pem"),
        "--peer-key-file".into(),
        p("member-key.pem"),
        "--peer-trusted-ca-file".into(),
        p("ca.pem"),
        "--peer-client-cert-auth".into(),
        "--peer-cert-allowed-cn".into(),
        "member".into(),
        "--peer-crl-file".into(),
        p("crl.pem"),
    ];
    let cluster = Cluster::start_with(3, &[], "https", |_| flags.clone());
    write_and_read_everywhere(&cluster).await;

    let peer = cluster.members[1].peer_url();
    assert!(peer.starts_with("https://"));
    assert!(let_in(dir, &peer, Some("member")), "a member's certificate");
    assert!(!let_in(dir, &peer, Some("intruder")), "another common name");
    assert!(
        !let_in(dir, &peer, Some("revoked")),
        "a revoked certificate"
    );
    assert!(!let_in(dir, &peer, None), "no certificate");
    let plain = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "--http2-prior-knowledge",
        ])
        .arg(peer.replace("https://", "http://"))
        .status()
        .unwrap();
    assert!(!plain.success(), "plain HTTP/2 on a TLS peer port");
    let log = cluster.members[1].log_text();
    assert!(
        log.contains("is not \\\"member\\\"") || log.contains("is not \"member\""),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_over_peer_auto_tls() {
    let mut cluster = Cluster::start_with(3, &["--peer-auto-tls"], "https", |_| Vec::new());
    write_and_read_everywhere(&cluster).await;
    let cert = cluster.members[2].data_dir.join("fixtures/peer/cert.pem");
    let first = std::fs::read(&cert).expect("--peer-auto-tls writes fixtures/peer/cert.pem");
    // a restarted member reuses its certificate and rejoins over TLS
    cluster.members[2].kill();
    cluster.restart(2);
    assert_eq!(std::fs::read(&cert).unwrap(), first);
    let mut c = cluster.members[2].client().await;
    c.put("after-restart", "1", None)
        .await
        .expect("put through the restarted member");
    let mut c0 = cluster.members[0].client().await;
    let r = c0.get("after-restart", None).await.unwrap();
    assert_eq!(r.kvs().len(), 1);
}

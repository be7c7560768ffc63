//! The client port's listeners beyond the plain one, on metastore alone (etcd 3.4 has no
//! `--listen-client-http-urls`, and its auto-TLS output is its own):
//! - `--auto-tls`: a certificate generated into `<data-dir>/fixtures/client`, served, and
//!   reused unchanged after a kill -9 and restart, with every acknowledged write kept;
//! - `--listen-metrics-urls`: `/metrics` and `/health` there, no gRPC;
//! - `--listen-client-http-urls`: the HTTP paths there, gRPC on the client URL;
//! - the typed-metadata HTTP paths over a TLS-only client port.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{etcdctl_bin, free_port, metastore_bin};

/// A metastore process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(data_dir: &Path, args: &[String]) -> Proc {
    let peer = format!("http://127.0.0.1:{}", free_port());
    let child = Command::new(metastore_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("default={peer}")])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start metastore");
    Proc(child)
}

/// etcdctl with connection flags; (exit code, stdout).
fn ctl(conn: &[String], args: &[&str]) -> (i32, String) {
    let out = Command::new(etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .args(conn)
        .args(["--command-timeout=3s", "--dial-timeout=2s"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Poll until etcdctl answers `get` through `conn`.
fn wait_ready(conn: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctl(conn, &["get", "probe"]).0 != 0 {
        assert!(Instant::now() < deadline, "never answered through {conn:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// curl: (HTTP status, body); status 0 when no HTTP answer came.
fn curl(extra: &[&str], url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Poll until `url` gives an HTTP answer.
fn wait_http(extra: &[&str], url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl(extra, url).0 == 0 {
        assert!(Instant::now() < deadline, "{url} never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn auto_tls_reuses_its_certificate_across_a_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("https://127.0.0.1:{}", free_port());
    let args = strings(&[
        "--auto-tls",
        "--listen-client-urls",
        &url,
        "--advertise-client-urls",
        &url,
    ]);
    let conn = strings(&[
        "--endpoints",
        &url,
        "--insecure-transport=false",
        "--insecure-skip-tls-verify",
    ]);
    let cert_path = data.join("fixtures/client/cert.pem");
    let server = spawn(&data, &args);
    wait_ready(&conn);
    let first = std::fs::read(&cert_path).expect("auto-tls writes fixtures/client/cert.pem");
    for i in 0..20 {
        let (code, out) = ctl(&conn, &["put", &format!("k{i}"), &format!("v{i}")]);
        assert_eq!((code, out.as_str()), (0, "OK\n"));
    }
    // a plain client does not get through a TLS-only port
    let plain = strings(&["--endpoints", &url.replace("https", "http")]);
    assert_ne!(ctl(&plain, &["get", "k0"]).0, 0);

    drop(server); // SIGKILL
    let _server = spawn(&data, &args);
    wait_ready(&conn);
    assert_eq!(
        std::fs::read(&cert_path).unwrap(),
        first,
        "the certificate was generated again"
    );
    let (code, out) = ctl(&conn, &["get", "k", "--prefix", "--keys-only"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().filter(|l| !l.is_empty()).count(), 20, "{out}");
}

#[test]
fn metrics_and_http_only_listeners_serve_what_etcd_serves_there() {
    let dir = tempfile::tempdir().unwrap();
    let client = format!("http://127.0.0.1:{}", free_port());
    let http = format!("http://127.0.0.1:{}", free_port());
    let metrics = format!("http://127.0.0.1:{}", free_port());
    let _server = spawn(
        &dir.path().join("data"),
        &strings(&[
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-client-http-urls",
            &http,
            "--listen-metrics-urls",
            &metrics,
        ]),
    );
    let grpc = strings(&["--endpoints", &client]);
    wait_ready(&grpc);
    wait_http(&[], &format!("{metrics}/metrics"));

    // the metrics listener: /metrics and /health, and no gRPC
    let (code, body) = curl(&[], &format!("{metrics}/metrics"));
    assert_eq!(code, 200);
    assert!(body.contains("etcd_server_has_leader 1"), "{body}");
    assert_eq!(curl(&[], &format!("{metrics}/health")).0, 200);
    assert_ne!(
        ctl(&strings(&["--endpoints", &metrics]), &["get", "k"]).0,
        0
    );

    // the HTTP-only listener: the HTTP paths, and no gRPC
    let (code, body) = curl(&[], &format!("{http}/health"));
    assert_eq!(code, 200);
    assert!(body.contains("\"health\":\"true\""), "{body}");
    let (code, body) = curl(&[], &format!("{http}/version"));
    assert_eq!(code, 200);
    assert!(body.contains("etcdserver"), "{body}");
    assert_ne!(ctl(&strings(&["--endpoints", &http]), &["get", "k"]).0, 0);

    // the client URL still serves gRPC
    assert_eq!(ctl(&grpc, &["put", "k", "v"]), (0, "OK\n".to_string()));
}

#[test]
fn metadata_paths_are_served_over_a_tls_only_client_port() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("https://127.0.0.1:{}", free_port());
    let _server = spawn(
        &data,
        &strings(&[
            "--auto-tls",
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ]),
    );
    let conn = strings(&[
        "--endpoints",
        &url,
        "--insecure-transport=false",
        "--insecure-skip-tls-verify",
    ]);
    wait_ready(&conn);
    let groups = format!("{url}/resource-manager/api/v1/config/groups");
    wait_http(&["-k"], &groups);
    // the metadata paths reach the store through a TLS client of this very member: a
    // group written over HTTPS is listed over HTTPS
    let body = r#"{"name":"tls-group","mode":1,"priority":8,"r_u_settings":{"r_u":{"settings":{"fill_rate":100,"burst_limit":-1}}}}"#;
    let (code, out) = curl(
        &[
            "-k",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            body,
        ],
        &format!("{url}/resource-manager/api/v1/config/group"),
    );
    assert_eq!(code, 200, "{out}");
    let (code, out) = curl(&["-k"], &groups);
    assert_eq!(code, 200, "{out}");
    assert!(out.contains("tls-group"), "{out}");
}

//! Auth tokens as etcd's. A simple token unused for `--auth-token-ttl` is refused on both.
//! `--auth-token jwt,...`: the same etcdctl session on real etcd and on
//! metastore, both with RS256 keys, gives the same answers and tokens with the same header
//! and claims; in a 3-member ES256 cluster a token issued by one member works on every
//! other, a member given only the public key verifies but does not issue, and a tampered
//! token, a token older than an auth change and an expired token are refused with etcd's
//! errors; and every signing method etcd offers issues tokens a member takes.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::cluster::Cluster;
use common::{error_lines, require_etcd, Kind, Server};
use metastore::proto::etcdserverpb::{
    auth_client::AuthClient, kv_client::KvClient, AuthenticateRequest, PutRequest,
};
use serde_json::Value;

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An RSA key pair (PKCS#8 private, SPKI public) in `dir`: (private, public).
fn rsa_keys(dir: &Path) -> (String, String) {
    let (private, public) = (dir.join("rsa.pem"), dir.join("rsa.pub.pem"));
    openssl(&["genrsa", "-out", private.to_str().unwrap(), "2048"]);
    openssl(&[
        "rsa",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (
        private.to_str().unwrap().into(),
        public.to_str().unwrap().into(),
    )
}

/// An EC key pair on `curve` (openssl's name), the private key in PKCS#8.
fn ec_keys(dir: &Path, curve: &str) -> (String, String) {
    let path = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let (sec1, private, public) = (path("ec.sec1.pem"), path("ec.pem"), path("ec.pub.pem"));
    openssl(&[
        "ecparam", "-name", curve, "-genkey", "-noout", "-out", &sec1,
    ]);
    openssl(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", &sec1, "-out", &private,
    ]);
    openssl(&["ec", "-in", &private, "-pubout", "-out", &public]);
    (private, public)
}

async fn token(endpoint: &str, user: &str, password: &str) -> Result<String, tonic::Status> {
    let mut c = AuthClient::connect(endpoint.to_string()).await.unwrap();
    c.authenticate(AuthenticateRequest {
        name: user.into(),
        password: password.into(),
    })
    .await
    .map(|r| r.into_inner().token)
}

async fn put_with(endpoint: &str, token: &str, key: &str) -> Result<(), tonic::Status> {
    let mut c = KvClient::connect(endpoint.to_string()).await.unwrap();
    let mut req = tonic::Request::new(PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: b"v".to_vec().into(),
        ..Default::default()
    });
    req.metadata_mut().insert("token", token.parse().unwrap());
    c.put(req).await.map(|_| ())
}

fn refused_with(r: Result<(), tonic::Status>, code: tonic::Code, message: &str) {
    let s = r.expect_err("must be refused");
    assert_eq!((s.code(), s.message()), (code, message));
}

/// A JWT's header and claims.
fn decoded(token: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap();
        serde_json::from_slice(&b).unwrap()
    };
    (part(0), part(1))
}

const SESSION: &[&[&str]] = &[
    &["user", "add", "root:rootpw"],
    &["user", "grant-role", "root", "root"],
    &["auth", "enable"],
    &["--user", "root:rootpw", "put", "a", "1"],
    &["--user", "root:rootpw", "user", "add", "bob:bobpw"],
    &["--user", "root:rootpw", "role", "add", "reader"],
    &[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "reader",
        "read",
        "a",
    ],
    &[
        "--user",
        "root:rootpw",
        "user",
        "grant-role",
        "bob",
        "reader",
    ],
    &["--user", "bob:bobpw", "get", "a"],
    &["--user", "bob:bobpw", "put", "a", "2"],
    &["--user", "bob:wrong", "get", "a"],
    &["get", "a"],
    &["--user", "root:rootpw", "auth", "status"],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcdctl_session_with_jwt_tokens_answers_as_etcd() {
    if !require_etcd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = rsa_keys(dir.path());
    let flag =
        format!("--auth-token=jwt,pub-key={public},priv-key={private},sign-method=RS256,ttl=10m");
    let etcd = Server::start(Kind::Etcd, &[&flag]);
    let ms = Server::start(Kind::Metastore, &[&flag]);
    for step in SESSION {
        let (a, b) = (etcd.etcdctl(step, None), ms.etcdctl(step, None));
        assert_eq!(
            (a.code, a.stdout.trim(), error_lines(&a.stderr)),
            (b.code, b.stdout.trim(), error_lines(&b.stderr)),
            "etcdctl {step:?}"
        );
    }
    let (te, tm) = (
        token(&etcd.endpoint, "bob", "bobpw").await.unwrap(),
        token(&ms.endpoint, "bob", "bobpw").await.unwrap(),
    );
    let ((he, ce), (hm, cm)) = (decoded(&te), decoded(&tm));
    assert_eq!(he, hm, "JWT header");
    assert_eq!(hm["alg"], "RS256");
    for claim in ["username", "revision"] {
        assert_eq!(ce[claim], cm[claim], "claim {claim}");
    }
    let keys = |c: &Value| -> Vec<String> {
        let mut k: Vec<String> = c.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&ce), keys(&cm));
    // 10 minutes from now, on both
    let exp = cm["exp"].as_i64().unwrap();
    assert!((exp - ce["exp"].as_i64().unwrap()).abs() <= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_from_one_member_is_good_on_every_member_until_auth_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = ec_keys(dir.path(), "prime256v1");
    let both = format!("--auth-token=jwt,pub-key={public},priv-key={private},sign-method=ES256");
    let verify_only = format!("--auth-token=jwt,pub-key={public},sign-method=ES256");
    let c = Cluster::start_with(3, &[], "http", |i| {
        vec![if i == 2 {
            verify_only.clone()
        } else {
            both.clone()
        }]
    });
    let first = c.members[0].endpoint();
    for step in &SESSION[..3] {
        let out = common::etcdctl(&first, step, None);
        assert_eq!(out.code, 0, "{step:?}: {}", out.stderr);
    }
    let t = token(&first, "root", "rootpw").await.unwrap();
    for m in &c.members {
        put_with(&m.endpoint(), &t, &format!("from-{}", m.name))
            .await
            .unwrap_or_else(|e| panic!("member {}: {e}", m.name));
    }
    // The verify-only member does not issue tokens, with etcd's text.
    let s = token(&c.members[2].endpoint(), "root", "rootpw")
        .await
        .expect_err("verify-only");
    assert_eq!(
        (s.code(), s.message()),
        (
            tonic::Code::Unknown,
            "auth: token signing attempted with verify-only key"
        )
    );
    // A token with another signature.
    let (head, _) = t.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", "A".repeat(86));
    let second = c.members[1].endpoint();
    refused_with(
        put_with(&second, &forged, "x").await,
        tonic::Code::Unauthenticated,
        "etcdserver: invalid auth token",
    );
    // An auth change makes the token old; a new one works.
    let add = common::etcdctl(
        &first,
        &["--user", "root:rootpw", "role", "add", "r2"],
        None,
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match put_with(&second, &t, "x").await {
            Err(s) if s.message() == "etcdserver: revision of auth store is old" => break,
            other => assert!(
                Instant::now() < deadline,
                "old token still taken: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fresh = token(&first, "root", "rootpw").await.unwrap();
    put_with(&second, &fresh, "x").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_jwt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = ec_keys(dir.path(), "prime256v1");
    let flag =
        format!("--auth-token=jwt,pub-key={public},priv-key={private},sign-method=ES256,ttl=1s");
    let ms = Server::start(Kind::Metastore, &[&flag]);
    for step in &SESSION[..3] {
        let out = ms.etcdctl(step, None);
        assert_eq!(out.code, 0, "{step:?}: {}", out.stderr);
    }
    let t = token(&ms.endpoint, "root", "rootpw").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match put_with(&ms.endpoint, &t, "k").await {
            Ok(()) => {}
            Err(s) => {
                assert_eq!(
                    (s.code(), s.message()),
                    (
                        tonic::Code::Unauthenticated,
                        "etcdserver: invalid auth token"
                    )
                );
                break;
            }
        }
        assert!(Instant::now() < deadline, "the token never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn bad_jwt_options_stop_the_member_with_etcds_errors() {
    for (flag, want) in [
        (
            "--auth-token=jwt,sign-method=XX9",
            "auth: invalid auth signature method",
        ),
        (
            "--auth-token=jwt,sign-method=RS256",
            "auth: missing key data",
        ),
        (
            "--auth-token=jwt,sign-method=RS256,colour=blue",
            "auth: invalid auth options",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(common::metastore_bin())
            .args(["--data-dir", dir.path().join("d").to_str().unwrap(), flag])
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{}", common::free_port()),
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", common::free_port()),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{flag}: {err}");
    }
}

/// Keys for `method` in `dir`: the `--auth-token` options naming them.
fn key_options(dir: &Path, method: &str) -> String {
    let path = |n: &str| dir.join(n).to_str().unwrap().to_string();
    match &method[..2] {
        "RS" | "PS" => {
            let (private, public) = rsa_keys(dir);
            format!("pub-key={public},priv-key={private}")
        }
        "ES" => {
            let curve = match method {
                "ES256" => "prime256v1",
                "ES384" => "secp384r1",
                _ => "secp521r1",
            };
            let (private, public) = ec_keys(dir, curve);
            format!("pub-key={public},priv-key={private}")
        }
        "Ed" => {
            let (private, public) = (path("ed.pem"), path("ed.pub"));
            openssl(&["genpkey", "-algorithm", "ed25519", "-out", &private]);
            openssl(&["pkey", "-in", &private, "-pubout", "-out", &public]);
            format!("pub-key={public},priv-key={private}")
        }
        _ => {
            std::fs::write(path("hmac.key"), b"a shared secret of the cluster").unwrap();
            format!("priv-key={}", path("hmac.key"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signing_method_issues_tokens_a_member_takes() {
    let methods = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
        "HS256", "HS384", "HS512",
    ];
    for method in methods {
        let dir = tempfile::tempdir().unwrap();
        let keys = key_options(dir.path(), method);
        let flag = format!("--auth-token=jwt,{keys},sign-method={method}");
        let ms = Server::start(Kind::Metastore, &[&flag]);
        for step in &SESSION[..3] {
            let out = ms.etcdctl(step, None);
            assert_eq!(out.code, 0, "{method} {step:?}: {}", out.stderr);
        }
        let t = token(&ms.endpoint, "root", "rootpw").await.unwrap();
        assert_eq!(decoded(&t).0["alg"], method);
        put_with(&ms.endpoint, &t, "k")
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let got = ms.etcdctl(
            &["--user", "root:rootpw", "get", "k", "--print-value-only"],
            None,
        );
        assert_eq!(got.stdout.trim(), "v", "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_token_unused_for_its_ttl_is_refused_as_on_etcd() {
    if !require_etcd() {
        return;
    }
    let etcd = Server::start(Kind::Etcd, &["--auth-token-ttl=1"]);
    let ms = Server::start(Kind::Metastore, &["--auth-token-ttl=1"]);
    let mut tokens = Vec::new();
    for s in [&etcd, &ms] {
        for step in &SESSION[..3] {
            let out = s.etcdctl(step, None);
            assert_eq!(out.code, 0, "{step:?}: {}", out.stderr);
        }
        let t = token(&s.endpoint, "root", "rootpw").await.unwrap();
        put_with(&s.endpoint, &t, "k").await.unwrap();
        tokens.push(t);
    }
    // Expiry is about time passing without use, so this waits rather than polls (a poll
    // would use the token and keep it alive): etcd drops a token within a second of its
    // TTL.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    for (s, t) in [&etcd, &ms].into_iter().zip(&tokens) {
        refused_with(
            put_with(&s.endpoint, t, "k").await,
            tonic::Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
    }
}

//! TLS on the client port, side by side with real etcd started with the same certificates
//! (generated per run with rcgen): etcdctl with `--cacert/--cert/--key` for put, get,
//! watch and endpoint health, `--insecure-skip-tls-verify`, a client trusting the wrong
//! CA, `--client-cert-auth` with and without a client certificate, a client certificate
//! in the CRL, a client certificate's common name as the user under auth, a
//! cipher-suite restriction (curl, TLS 1.2) and a unix socket; http and
//! https on one port on metastore alone (etcd 3.4's plain side is unreliable there).
//! Each scenario compares etcdctl's exit code and output.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{error_lines, etcd_bin, etcdctl_bin, free_port, metastore_bin, pki, Kind};

/// The files of one run's PKI.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn generate() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = pki::ca(d, "ca", "metastore test CA");
        pki::ca(d, "other-ca", "another CA");
        pki::leaf(d, &ca, "server", "server", &["127.0.0.1", "localhost"], 10);
        pki::leaf(d, &ca, "client", "root", &[], 11);
        pki::leaf(d, &ca, "revoked", "revoked", &[], 12);
        pki::leaf(d, &ca, "bob", "bob", &[], 13);
        pki::crl(d, &ca, 12);
        Pki { dir }
    }
}

/// A server process started with TLS flags; killed when dropped.
struct TlsServer {
    child: Child,
    port: u16,
    cwd: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `kind` with `listen` (`{P}` stands for the port) and TLS `flags`; wait until
/// `probe` (etcdctl flags reaching it) gets an answer.
fn start(kind: Kind, listen: &str, flags: &[String], probe: &[String]) -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = listen.replace("{P}", &port.to_string());
    let advertise = listen.split(',').next().unwrap().to_string();
    let peer = format!("http://127.0.0.1:{}", free_port());
    let log = dir.path().join("server.log");
    let bin = match kind {
        Kind::Etcd => etcd_bin().expect("etcd binary"),
        Kind::Metastore => metastore_bin(),
    };
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir.path())
        .args(["--name", "default", "--data-dir", "data"])
        .args(["--listen-client-urls", &listen])
        .args(["--advertise-client-urls", &advertise])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("default={peer}")])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if kind == Kind::Etcd {
        cmd.env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH);
    }
    let child = cmd.spawn().unwrap();
    let server = TlsServer {
        child,
        port,
        cwd: dir.path().to_path_buf(),
        log,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = server.ctl(probe, &["get", "probe"]);
        if out.0 == 0 {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "{kind:?} on {listen} never answered: {}\nlog: {}",
            out.1,
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl TlsServer {
    /// etcdctl with connection flags (`{P}` is the port), in the server's directory (for
    /// relative unix socket paths): exit code and the output a user acts on.
    fn ctl(&self, conn: &[String], args: &[&str]) -> (i32, String) {
        let conn: Vec<String> = conn
            .iter()
            .map(|a| a.replace("{P}", &self.port.to_string()))
            .collect();
        // a watch never ends by itself: it gets three seconds, then its output is taken
        let mut cmd = if args.first() == Some(&"watch") {
            let mut c = Command::new("timeout");
            c.arg("3").arg(etcdctl_bin());
            c
        } else {
            Command::new(etcdctl_bin())
        };
        let out = cmd
            .current_dir(&self.cwd)
            .env("ETCDCTL_API", "3")
            .args(&conn)
            .args(["--command-timeout=3s", "--dial-timeout=2s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = match out.status.code().unwrap_or(-1) {
            124 => 0, // the watch's time was up
            c => c,
        };
        // endpoint health prints a timing; keep what it says, not how long it took
        let stdout = regex::Regex::new(r"took = [^\s]+")
            .unwrap()
            .replace_all(&stdout, "took = T")
            .replace(&self.port.to_string(), "PORT");
        (
            code,
            format!(
                "{stdout}{}",
                error_lines(&stderr).replace(&self.port.to_string(), "PORT")
            ),
        )
    }

    /// curl's exit code and the HTTP status it got.
    fn curl(&self, args: &[&str]) -> String {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{P}", &self.port.to_string()))
            .collect();
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .args(&args)
            .output()
            .unwrap();
        format!(
            "exit {}, HTTP {}",
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout)
        )
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// One configuration: the same steps on etcd and on metastore, compared.
struct Scenario<'a> {
    name: &'a str,
    listen: &'a str,
    flags: Vec<String>,
    probe: Vec<String>,
    /// (connection flags, etcdctl args)
    steps: Vec<(Vec<String>, Vec<&'a str>)>,
    /// curl argument lists; exit codes compared
    curls: Vec<Vec<&'a str>>,
}

fn run(s: &Scenario<'_>, diffs: &mut Vec<String>) -> usize {
    let mut outs = Vec::new();
    for kind in [Kind::Etcd, Kind::Metastore] {
        let server = start(kind, s.listen, &s.flags, &s.probe);
        let mut o = Vec::new();
        for (conn, args) in &s.steps {
            let (code, out) = server.ctl(conn, args);
            // an answer is compared in full; a refusal by its exit code (the dial errors
            // are Go's and rustls' words for the same refusal)
            o.push(if code == 0 {
                format!("ok: {out}")
            } else {
                format!("refused ({code})")
            });
        }
        for c in &s.curls {
            o.push(format!("curl {}", server.curl(c)));
        }
        outs.push(o);
    }
    let steps = outs[0].len();
    for (i, (e, m)) in outs[0].iter().zip(&outs[1]).enumerate() {
        if e != m {
            diffs.push(format!("{} step {i}: etcd {e:?}, metastore {m:?}", s.name));
        }
    }
    steps
}

#[test]
fn tls_on_the_client_port_as_etcd() {
    if crate::external().is_some() {
        eprintln!("skipping: the TLS scenarios start servers of their own");
        return;
    }
    if !crate::common::require_etcd() {
        return;
    }
    let pki = Pki::generate();
    let p = |n: &str| pki.path(n);
    let https = "https://127.0.0.1:{P}".to_string();
    let server_tls = vec![
        "--cert-file".to_string(),
        p("server.pem"),
        "--key-file".into(),
        p("server-key.pem"),
    ];
    let with_ca = vec![
        "--endpoints".to_string(),
        https.clone(),
        "--cacert".into(),
        p("ca.pem"),
    ];
    let with_cert = {
        let mut v = with_ca.clone();
        v.extend([
            "--cert".into(),
            p("client.pem"),
            "--key".into(),
            p("client-key.pem"),
        ]);
        v
    };
    let revoked = {
        let mut v = with_ca.clone();
        v.extend([
            "--cert".into(),
            p("revoked.pem"),
            "--key".into(),
            p("revoked-key.pem"),
        ]);
        v
    };
    let as_bob = {
        let mut v = with_ca.clone();
        v.extend([
            "--cert".into(),
            p("bob.pem"),
            "--key".into(),
            p("bob-key.pem"),
        ]);
        v
    };
    let wrong_ca = vec![
        "--endpoints".to_string(),
        https.clone(),
        "--cacert".into(),
        p("other-ca.pem"),
    ];
    // etcdctl 3.4 dials TLS without a CA only when told the transport is not insecure
    let skip_verify = vec![
        "--endpoints".to_string(),
        https.clone(),
        "--insecure-transport=false".into(),
        "--insecure-skip-tls-verify".into(),
    ];
    let plain = strings(&["--endpoints", "http://127.0.0.1:{P}"]);
    let mut client_auth = server_tls.clone();
    client_auth.extend([
        "--trusted-ca-file".into(),
        p("ca.pem"),
        "--client-cert-auth".into(),
    ]);
    let mut with_crl = client_auth.clone();
    with_crl.extend(["--client-crl-file".into(), p("crl.pem")]);
    let mut suites = server_tls.clone();
    suites.extend([
        "--cipher-suites".into(),
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
    ]);
    let ca = p("ca.pem");
    let (client_pem, client_key) = (p("client.pem"), p("client-key.pem"));
    let scenarios = vec![
        Scenario {
            name: "server TLS",
            listen: "https://127.0.0.1:{P}",
            flags: server_tls.clone(),
            probe: with_ca.clone(),
            steps: vec![
                (with_ca.clone(), vec!["put", "k", "v"]),
                (with_ca.clone(), vec!["get", "k"]),
                (with_ca.clone(), vec!["watch", "k", "--rev", "1"]),
                (with_ca.clone(), vec!["endpoint", "health"]),
                (skip_verify.clone(), vec!["get", "k"]),
                (wrong_ca.clone(), vec!["get", "k"]),
                (plain.clone(), vec!["get", "k"]),
            ],
            curls: vec![
                vec!["--cacert", &ca, "https://127.0.0.1:{P}/health"],
                vec!["https://127.0.0.1:{P}/health"],
                // the JSON gateway over TLS
                vec![
                    "--cacert",
                    &ca,
                    "-X",
                    "POST",
                    "-d",
                    r#"{"key":"aw=="}"#,
                    "https://127.0.0.1:{P}/v3/kv/range",
                ],
            ],
        },
        Scenario {
            name: "client certificate auth",
            listen: "https://127.0.0.1:{P}",
            flags: client_auth.clone(),
            probe: with_cert.clone(),
            steps: vec![
                (with_cert.clone(), vec!["put", "k", "v"]),
                (with_cert.clone(), vec!["get", "k", "--print-value-only"]),
                (with_ca.clone(), vec!["get", "k"]),
                (revoked.clone(), vec!["get", "k"]),
            ],
            curls: vec![],
        },
        // With auth on, the certificate's CN is the user when no token comes (root's
        // certificate is CN root, bob's CN bob); a token wins over the certificate.
        Scenario {
            name: "the certificate's common name as the user",
            listen: "https://127.0.0.1:{P}",
            flags: client_auth.clone(),
            probe: with_cert.clone(),
            steps: vec![
                (with_cert.clone(), vec!["user", "add", "root:rootpw"]),
                (
                    with_cert.clone(),
                    vec!["user", "grant-role", "root", "root"],
                ),
                (with_cert.clone(), vec!["user", "add", "bob:bobpw"]),
                (with_cert.clone(), vec!["role", "add", "reader"]),
                (
                    with_cert.clone(),
                    vec!["role", "grant-permission", "reader", "read", "k"],
                ),
                (
                    with_cert.clone(),
                    vec!["user", "grant-role", "bob", "reader"],
                ),
                (with_cert.clone(), vec!["auth", "enable"]),
                (with_cert.clone(), vec!["put", "k", "v"]),
                (with_cert.clone(), vec!["get", "k", "--print-value-only"]),
                (with_cert.clone(), vec!["user", "list"]),
                (as_bob.clone(), vec!["get", "k", "--print-value-only"]),
                (as_bob.clone(), vec!["put", "k", "bob"]),
                (as_bob.clone(), vec!["user", "list"]),
                (
                    with_cert.clone(),
                    vec!["--user", "bob:bobpw", "put", "k", "token"],
                ),
                (
                    as_bob.clone(),
                    vec!["--user", "root:rootpw", "put", "k", "root"],
                ),
                (as_bob.clone(), vec!["get", "k", "--print-value-only"]),
            ],
            // the gateway refuses a client certificate's name under auth (etcd 3.4), and
            // takes a token in Authorization
            curls: vec![vec![
                "--cacert",
                &ca,
                "--cert",
                &client_pem,
                "--key",
                &client_key,
                "-X",
                "POST",
                "-d",
                r#"{"key":"aw=="}"#,
                "https://127.0.0.1:{P}/v3/kv/range",
            ]],
        },
        Scenario {
            name: "a revoked client certificate",
            listen: "https://127.0.0.1:{P}",
            flags: with_crl,
            probe: with_cert.clone(),
            steps: vec![
                (with_cert.clone(), vec!["get", "k"]),
                (revoked.clone(), vec!["get", "k"]),
            ],
            curls: vec![],
        },
        Scenario {
            name: "cipher suites",
            listen: "https://127.0.0.1:{P}",
            flags: suites,
            probe: with_ca.clone(),
            steps: vec![(with_ca.clone(), vec!["get", "k"])],
            curls: vec![
                vec![
                    "--cacert",
                    &ca,
                    "--tls-max",
                    "1.2",
                    "--ciphers",
                    "ECDHE-ECDSA-AES128-GCM-SHA256",
                    "https://127.0.0.1:{P}/health",
                ],
                vec![
                    "--cacert",
                    &ca,
                    "--tls-max",
                    "1.2",
                    "--ciphers",
                    "ECDHE-ECDSA-AES256-GCM-SHA384",
                    "https://127.0.0.1:{P}/health",
                ],
            ],
        },
        Scenario {
            name: "a unix socket",
            listen: "http://127.0.0.1:{P},unix://localhost:{P}",
            flags: vec![],
            probe: strings(&["--endpoints", "unix://localhost:{P}"]),
            steps: vec![
                (
                    strings(&["--endpoints", "unix://localhost:{P}"]),
                    vec!["put", "k", "u"],
                ),
                (plain.clone(), vec!["get", "k", "--print-value-only"]),
            ],
            curls: vec![],
        },
    ];
    // http and https on one port: etcd 3.4 serves it, but about one start in three its
    // plain side never answers (seen here: etcdctl over http times out for 30 s while
    // TLS works), so it cannot be the reference; metastore's answers are checked as such.
    let server = start(
        Kind::Metastore,
        "http://127.0.0.1:{P},https://127.0.0.1:{P}",
        &server_tls,
        &plain,
    );
    let values = [
        (plain.clone(), vec!["put", "k", "plain"], "OK\n"),
        (
            with_ca.clone(),
            vec!["get", "k", "--print-value-only"],
            "plain\n",
        ),
        (with_ca.clone(), vec!["put", "k", "tls"], "OK\n"),
        (
            plain.clone(),
            vec!["get", "k", "--print-value-only"],
            "tls\n",
        ),
        // skip-verify must be answered, not merely refused alike by both servers
        (
            skip_verify.clone(),
            vec!["get", "k", "--print-value-only"],
            "tls\n",
        ),
    ];
    for (conn, args, want) in values {
        assert_eq!(server.ctl(&conn, &args), (0, want.to_string()), "{args:?}");
    }
    assert!(server
        .curl(&["http://127.0.0.1:{P}/health"])
        .starts_with("exit 0,"));
    assert!(server
        .curl(&["--cacert", &ca, "https://127.0.0.1:{P}/health"])
        .starts_with("exit 0,"));
    drop(server);

    let mut diffs = Vec::new();
    let mut steps = 0;
    for s in &scenarios {
        steps += run(s, &mut diffs);
    }
    eprintln!(
        "compat tls: {} scenarios, {steps} steps, {} differences",
        scenarios.len(),
        diffs.len()
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

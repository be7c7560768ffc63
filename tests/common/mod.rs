//! Test support: start metastore and real etcd as processes on free loopback ports with
//! fresh data dirs, run etcdctl against them, and normalise what legitimately differs.
#![allow(dead_code)]

pub mod cluster;
pub mod pki;
pub mod proxy;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A run's seed: the variable `var` if it holds a number (to replay a run), else the
/// clock's nanoseconds.
pub fn seed_from_env(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

pub fn metastore_bin() -> PathBuf {
    if let Ok(p) = std::env::var("METASTORE_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_BIN_EXE_metastore"));
    assert!(p.exists(), "metastore binary not found at {p:?}");
    p
}

pub fn etcd_bin() -> Option<PathBuf> {
    let p = std::env::var("ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/bin/etcd"));
    p.exists().then_some(p)
}

pub fn etcdctl_bin() -> PathBuf {
    std::env::var("ETCDCTL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/bin/etcdctl"))
}

/// Whether the differential tests can run; they must in CI (`make test` installs etcd).
pub fn require_etcd() -> bool {
    if etcd_bin().is_some() && etcdctl_bin().exists() {
        return true;
    }
    if std::env::var("CI").is_ok() {
        panic!("etcd and etcdctl are required in CI (make test installs them)");
    }
    eprintln!("skipping: etcd/etcdctl not installed (run `make deps`)");
    false
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Etcd,
    Metastore,
}

/// A server process; killed (SIGKILL) when dropped. An external server (given by its
/// endpoint, for `make compat`) has no process here.
pub struct Server {
    pub kind: Kind,
    pub endpoint: String,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
    pub log: PathBuf,
    _dir: Option<tempfile::TempDir>,
    extra: Vec<String>,
}

impl Server {
    /// A new server on fresh ports. A port taken by another process between its pick and
    /// the bind costs a retry on other ports, never a failure.
    pub fn start(kind: Kind, extra: &[&str]) -> Server {
        for attempt in 0.. {
            let dir = tempfile::tempdir().unwrap();
            let data_dir = dir.path().join("data");
            match Server::try_spawn(kind, &data_dir, free_port(), extra) {
                Ok(mut s) => {
                    s._dir = Some(dir);
                    return s;
                }
                Err(log) if attempt < 3 && log.contains("in use") => {
                    eprintln!("{kind:?} start attempt {attempt}: a port was taken; retrying");
                }
                Err(log) => panic!("{kind:?} did not become ready; log: {log}"),
            }
        }
        unreachable!()
    }

    /// Start on a given data dir and client port (for restarts).
    pub fn spawn(kind: Kind, data_dir: &Path, port: u16, extra: &[&str]) -> Server {
        Server::try_spawn(kind, data_dir, port, extra)
            .unwrap_or_else(|log| panic!("{kind:?} did not become ready; log: {log}"))
    }

    /// The same; a server that does not become ready is killed and its log returned.
    fn try_spawn(kind: Kind, data_dir: &Path, port: u16, extra: &[&str]) -> Result<Server, String> {
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{}", free_port());
        let log = data_dir.with_extension(format!("{port}.log"));
        std::fs::create_dir_all(data_dir.parent().unwrap()).unwrap();
        let bin = match kind {
            Kind::Etcd => etcd_bin().expect("etcd binary"),
            Kind::Metastore => metastore_bin(),
        };
        let mut cmd = Command::new(bin);
        cmd.args(["--name", "default", "--data-dir"])
            .arg(data_dir)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(extra)
            .env_remove("ETCDCTL_API")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if kind == Kind::Etcd {
            cmd.env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH);
        }
        let mut child = cmd.spawn().expect("start server");
        // Wait for etcd's readiness line, teeing stderr to a log file.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log_path = log.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::create(&log_path).unwrap();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(f, "{line}");
                if line.contains("ready to serve client requests") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::fs::read_to_string(&log).unwrap_or_default());
        }
        let s = Server {
            kind,
            endpoint: client,
            data_dir: data_dir.to_path_buf(),
            child: Some(child),
            log,
            _dir: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.wait_for_kv();
        Ok(s)
    }

    /// Poll until a put succeeds through etcdctl (readiness line plus a working KV).
    fn wait_for_kv(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.etcdctl(&["get", "readiness-probe"], None);
            // With auth enabled, a request without a user is refused: the KV answered.
            if out.code == 0 || out.stderr.contains("etcdserver: user name is empty") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} KV never answered: {}",
                self.kind,
                out.stderr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A server that runs elsewhere, reached at `endpoint`.
    pub fn external(kind: Kind, endpoint: &str) -> Server {
        Server {
            kind,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            data_dir: PathBuf::new(),
            child: None,
            log: PathBuf::new(),
            _dir: None,
            extra: Vec::new(),
        }
    }

    pub fn port(&self) -> u16 {
        self.endpoint.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn etcdctl(&self, args: &[&str], stdin: Option<&str>) -> CtlOutput {
        etcdctl(&self.endpoint, args, stdin)
    }

    pub fn kill(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn etcdctl(endpoint: &str, args: &[&str], stdin: Option<&str>) -> CtlOutput {
    let mut cmd = Command::new(etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoint)
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run etcdctl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    CtlOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The part of etcdctl's stderr a user acts on: its `Error:` lines (the retry warnings
/// carry timestamps and client ids).
pub fn error_lines(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| l.starts_with("Error:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Zero what legitimately differs between two servers: cluster and member ids, raft term.
pub fn normalize_json(mut v: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, val) in m.iter_mut() {
                    if matches!(k.as_str(), "cluster_id" | "member_id" | "raft_term") {
                        *val = serde_json::Value::from(0);
                    } else {
                        walk(val);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// The same for Debug-printed responses of the etcd-client crate.
pub fn normalize_debug(s: &str) -> String {
    let re = regex::Regex::new(r"(cluster_id|member_id|raft_term): \d+").unwrap();
    re.replace_all(s, "$1: 0").into_owned()
}

/// Copy a directory tree (a data dir to crash a copy of).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

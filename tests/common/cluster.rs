//! Test support for replicated clusters: N metastore members as separate processes on
//! loopback, each with its own data dir, client port and peer port.
//!
//! Ports: each member's ports are picked free just before the cluster starts; if another
//! process takes one in between (the member then fails to bind and exits), the whole
//! cluster is started again on fresh ports, so a port race costs a retry, never a failure.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::proxy::Net;
use super::{free_port, metastore_bin};

/// Timers for tests: fast failover (etcd's defaults are 100 ms and 1 s).
pub const HEARTBEAT_MS: u64 = 50;
pub const ELECTION_MS: u64 = 500;

pub struct Member {
    pub name: String,
    pub data_dir: PathBuf,
    pub client_port: u16,
    /// The port the member listens on for its peers.
    pub peer_port: u16,
    /// The port of our proxy in front of `peer_port`, which the member advertises (clusters
    /// started with [`Cluster::start_proxied`]).
    pub proxy_port: Option<u16>,
    pub log: PathBuf,
    /// `http` or `https` (peer TLS).
    pub peer_scheme: &'static str,
    /// Flags of this member alone.
    pub flags: Vec<String>,
    /// Environment of this member alone (failpoints).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    /// Readiness lines in the log before the last start.
    ready_before: usize,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The advertised peer URL (the proxy's, when there is one).
    pub fn peer_url(&self) -> String {
        let port = self.proxy_port.unwrap_or(self.peer_port);
        format!("{}://127.0.0.1:{port}", self.peer_scheme)
    }

    /// The peer URL the member listens on.
    pub fn listen_peer_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.peer_scheme, self.peer_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL (kill -9) and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: pause and resume the process.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().expect("member running");
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// Wait until the process exits by itself (and reap it); false on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(c) = self.child.as_mut() {
            if let Ok(Some(_)) = c.try_wait() {
                self.child = None;
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint()], None)
            .await
            .expect("connect")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A paused member must be resumed to die cleanly.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill();
    }
}

pub struct Cluster {
    pub members: Vec<Member>,
    pub extra: Vec<String>,
    pub token: String,
    /// The peer proxies, for network partitions ([`Cluster::start_proxied`]).
    pub net: Option<Net>,
    /// The server binary the members run: metastore, or etcd for differential tests.
    pub bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(net) = &self.net {
            net.close();
        }
    }
}

impl Cluster {
    /// Start a new cluster of `n` members and wait until every member serves.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        Self::start_with(n, extra, "http", |_| Vec::new())
    }

    /// A new cluster whose peer links all pass through our proxies (see [`Net`]), so that
    /// a test can cut members off from each other.
    pub fn start_proxied(n: usize, extra: &[&str]) -> Cluster {
        Self::start_inner(n, extra, "http", |_| Vec::new(), true, metastore_bin())
    }

    /// A new cluster of `n` members that run `bin` (real etcd takes the same flags).
    pub fn start_bin(n: usize, extra: &[&str], bin: PathBuf) -> Cluster {
        Self::start_inner(n, extra, "http", |_| Vec::new(), false, bin)
    }

    /// The same, with peer URLs of `peer_scheme` and `flags(i)` for member `i` alone.
    pub fn start_with(
        n: usize,
        extra: &[&str],
        peer_scheme: &'static str,
        flags: impl Fn(usize) -> Vec<String>,
    ) -> Cluster {
        Self::start_inner(n, extra, peer_scheme, flags, false, metastore_bin())
    }

    fn start_inner(
        n: usize,
        extra: &[&str],
        peer_scheme: &'static str,
        flags: impl Fn(usize) -> Vec<String>,
        proxied: bool,
        bin: PathBuf,
    ) -> Cluster {
        for attempt in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let net = proxied.then(Net::new);
            let members: Vec<Member> = (0..n)
                .map(|i| {
                    let name = format!("m{i}");
                    let peer_port = free_port();
                    Member {
                        data_dir: dir.path().join(&name),
                        log: dir.path().join(format!("{name}.log")),
                        name,
                        client_port: free_port(),
                        peer_port,
                        proxy_port: net.as_ref().map(|net| net.proxy(i, peer_port)),
                        peer_scheme,
                        flags: flags(i),
                        env: Vec::new(),
                        child: None,
                        ready_before: 0,
                    }
                })
                .collect();
            let mut c = Cluster {
                members,
                extra: extra.iter().map(|s| s.to_string()).collect(),
                token: "test-cluster".into(),
                net,
                bin: bin.clone(),
                _dir: dir,
            };
            for i in 0..n {
                c.spawn(i);
            }
            match c.wait_ready_all(Duration::from_secs(30)) {
                Ok(()) => return c,
                Err(e) if e.contains("address") || e.contains("in use") => {
                    eprintln!("cluster start attempt {attempt}: {e}; retrying on fresh ports");
                }
                Err(e) => panic!("cluster did not start: {e}"),
            }
        }
        panic!("cluster did not start after 3 attempts");
    }

    pub fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Add a member record (not started) for a member that will join with
    /// `--initial-cluster-state existing`; returns its index.
    pub fn new_member(&mut self) -> usize {
        let i = self.members.len();
        let name = format!("m{i}");
        let peer_port = free_port();
        self.members.push(Member {
            data_dir: self._dir.path().join(&name),
            log: self._dir.path().join(format!("{name}.log")),
            name,
            client_port: free_port(),
            peer_port,
            proxy_port: self.net.as_ref().map(|net| net.proxy(i, peer_port)),
            peer_scheme: "http",
            flags: Vec::new(),
            env: Vec::new(),
            child: None,
            ready_before: 0,
        });
        i
    }

    /// Start member `i` (again) on its data dir and ports, without waiting.
    pub fn spawn(&mut self, i: usize) {
        self.spawn_with(i, &[]);
    }

    /// Start member `i` with more flags, without waiting.
    pub fn spawn_with(&mut self, i: usize, more: &[&str]) {
        let ic = self.initial_cluster();
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "member {} already running", m.name);
        m.ready_before = Self::ready_lines(m);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .unwrap();
        let child = Command::new(&self.bin)
            .args(["--name", &m.name, "--data-dir"])
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &m.endpoint()])
            .args(["--advertise-client-urls", &m.endpoint()])
            .args(["--listen-peer-urls", &m.listen_peer_url()])
            .args(["--initial-advertise-peer-urls", &m.peer_url()])
            .args(["--initial-cluster", &ic])
            .args(["--initial-cluster-token", &self.token])
            .args(["--heartbeat-interval", &HEARTBEAT_MS.to_string()])
            .args(["--election-timeout", &ELECTION_MS.to_string()])
            .args(&self.extra)
            .args(&m.flags)
            .args(more)
            .envs(m.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start metastore");
        if let Some(net) = &self.net {
            net.set_pid(i, child.id());
        }
        m.child = Some(child);
    }

    /// Restart member `i` and wait until it serves.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ready(i, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn ready_lines(m: &Member) -> usize {
        m.log_text()
            .matches("ready to serve client requests")
            .count()
    }

    /// Wait until member `i` has logged readiness since its last start.
    pub fn wait_ready(&mut self, i: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = &mut self.members[i];
            if Self::ready_lines(m) > m.ready_before {
                return Ok(());
            }
            if let Some(c) = m.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    m.child = None;
                    return Err(format!(
                        "member {} exited ({status}): {}",
                        m.name,
                        tail(&m.log_text())
                    ));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "member {} not ready in {timeout:?}: {}",
                    m.name,
                    tail(&m.log_text())
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_ready_all(&mut self, timeout: Duration) -> Result<(), String> {
        for i in 0..self.members.len() {
            self.wait_ready(i, timeout)?;
        }
        Ok(())
    }

    /// Cut member `i` off from every other member (a proxied cluster).
    pub fn isolate(&self, i: usize) {
        let net = self.net.as_ref().expect("a proxied cluster");
        net.isolate(i, self.members.len());
    }

    /// Cut every link between the members of `a` and those of `b`.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        self.net
            .as_ref()
            .expect("a proxied cluster")
            .partition(a, b);
    }

    /// Every peer link works again, and none is delayed.
    pub fn heal(&self) {
        let net = self.net.as_ref().expect("a proxied cluster");
        net.heal();
        net.undelay();
    }

    /// Slow every peer link of member `i` by `latency` plus up to `jitter`.
    pub fn delay(&self, i: usize, latency: Duration, jitter: Duration) {
        self.net
            .as_ref()
            .expect("a proxied cluster")
            .delay(i, latency, jitter);
    }

    /// Wait until every running member holds the identical keyspace at the same revision
    /// (read locally, serializable); returns it.
    pub async fn converged(&self, timeout: Duration) -> Keyspace {
        let deadline = Instant::now() + timeout;
        loop {
            let mut spaces = Vec::new();
            for m in self.members.iter().filter(|m| m.is_running()) {
                spaces.push(keyspace(&m.endpoint()).await);
            }
            if spaces.windows(2).all(|w| w[0] == w[1]) {
                if let Some(Ok(space)) = spaces.pop() {
                    return space;
                }
            }
            assert!(
                Instant::now() < deadline,
                "members did not converge: revisions {:?}",
                spaces
                    .iter()
                    .map(|s| s.as_ref().map(|s| s.0))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// The member that leads, by asking running members for their status.
    pub async fn leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            for (i, m) in self.members.iter().enumerate() {
                if !m.is_running() {
                    continue;
                }
                let Ok(mut c) = etcd_client::Client::connect([m.endpoint()], None).await else {
                    continue;
                };
                if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(1), c.status()).await {
                    let me = s.header().map(|h| h.member_id()).unwrap_or(0);
                    if s.leader() == me && me != 0 {
                        return i;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A member's revision and every key with its value and mod revision.
pub type Keyspace = (i64, Vec<(String, String, i64)>);

/// The keyspace as the member at `endpoint` holds it, read locally (serializable).
pub async fn keyspace(endpoint: &str) -> Result<Keyspace, String> {
    let opts = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(5));
    let mut c = etcd_client::Client::connect([endpoint], Some(opts))
        .await
        .map_err(|e| e.to_string())?;
    let r = c
        .get(
            "",
            Some(
                etcd_client::GetOptions::new()
                    .with_all_keys()
                    .with_serializable(),
            ),
        )
        .await
        .map_err(|e| e.to_string())?;
    let kvs = r
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
                kv.mod_revision(),
            )
        })
        .collect();
    Ok((r.header().unwrap().revision(), kvs))
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

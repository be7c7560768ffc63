//! The `meta` suite: every test runs twice, against an embedded metastore (in this process,
//! through `metastore::embed`) and against a real etcd 3.4 started by the harness. A test
//! is an `async fn(&mut Env)` registered with `meta_test!`, which makes the two tests
//! `<name>::metastore` and `<name>::etcd`.

#[path = "../common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Kind;
use metastore::meta::{Client, Layout};

/// Register `async fn $name(env: &mut Env)` to run against both servers.
macro_rules! meta_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn metastore() {
                let mut env = $crate::Env::start($crate::common::Kind::Metastore).await;
                super::$name(&mut env).await;
                env.stop().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                if !$crate::common::require_etcd() {
                    return;
                }
                let mut env = $crate::Env::start($crate::common::Kind::Etcd).await;
                super::$name(&mut env).await;
                env.stop().await;
            }
        }
    };
}

mod drain;
mod region;
mod resource_group;
mod watcher;

enum Running {
    Embedded(metastore::embed::Server),
    Etcd(common::Server),
    Stopped,
}

/// One server (embedded metastore or etcd) on a fixed port and data dir, and a client.
pub struct Env {
    pub kind: Kind,
    pub client: Client,
    /// A fresh root per test, so nothing is shared between tests.
    pub layout: Layout,
    pub endpoint: String,
    port: u16,
    data_dir: PathBuf,
    running: Running,
    _dir: tempfile::TempDir,
}

impl Env {
    pub async fn start(kind: Kind) -> Env {
        let dir = tempfile::tempdir().unwrap();
        // A free port can be taken by another test between its choice and the server's
        // bind: try again on another port, with a fresh data dir.
        let mut attempt = 0;
        let (data_dir, port, running) = loop {
            let data_dir = dir.path().join(format!("data-{attempt}"));
            let port = common::free_port();
            match launch(kind, &data_dir, port).await {
                Ok(running) => break (data_dir, port, running),
                Err(e) if attempt < 2 => eprintln!("{kind:?} did not start on port {port}: {e}"),
                Err(e) => panic!("{kind:?} did not start: {e}"),
            }
            attempt += 1;
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = connect(&endpoint).await;
        Env {
            kind,
            client,
            layout: Layout::new(format!("/meta-test-{}", rand_suffix())),
            endpoint,
            port,
            data_dir,
            running,
            _dir: dir,
        }
    }

    /// A new connection to the server.
    pub async fn connect(&self) -> Client {
        connect(&self.endpoint).await
    }

    /// Stop the server (the data dir stays).
    pub async fn stop(&mut self) {
        match std::mem::replace(&mut self.running, Running::Stopped) {
            Running::Embedded(s) => s.close().await,
            Running::Etcd(mut s) => s.kill(),
            Running::Stopped => {}
        }
    }

    /// Start the server again on the same data dir and port (after `stop`, or kill -9 for
    /// etcd and a close for the embedded server when it is still running).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.running = launch(self.kind, &self.data_dir, self.port)
            .await
            .expect("the server starts again");
    }

    /// The server's current revision.
    pub async fn revision(&self) -> i64 {
        let mut c = self.client.clone();
        let r = c.get("\0", None).await.expect("get");
        r.header().expect("header").revision()
    }
}

async fn launch(kind: Kind, data_dir: &std::path::Path, port: u16) -> Result<Running, String> {
    match kind {
        Kind::Etcd => {
            let data_dir = data_dir.to_path_buf();
            let s = tokio::task::spawn_blocking(move || {
                common::Server::spawn(Kind::Etcd, &data_dir, port, &[])
            })
            .await
            .map_err(|e| e.to_string())?;
            Ok(Running::Etcd(s))
        }
        Kind::Metastore => {
            let url = format!("http://127.0.0.1:{port}");
            let peer = format!("http://127.0.0.1:{}", common::free_port());
            let args = [
                "metastore".to_string(),
                "--name".into(),
                "default".into(),
                "--data-dir".into(),
                data_dir.to_string_lossy().into_owned(),
                "--listen-client-urls".into(),
                url.clone(),
                "--advertise-client-urls".into(),
                url,
                "--listen-peer-urls".into(),
                peer.clone(),
                "--initial-advertise-peer-urls".into(),
                peer.clone(),
                "--initial-cluster".into(),
                format!("default={peer}"),
                "--log-level".into(),
                "warn".into(),
            ];
            let cfg = metastore::config::Config::from_args(args).expect("config");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match metastore::embed::Server::start(cfg.clone()).await {
                    Ok(s) => return Ok(Running::Embedded(s)),
                    // the port or the data dir may still be held by the previous run
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("embedded start: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }
}

async fn connect(endpoint: &str) -> Client {
    Client::connect([endpoint], None).await.expect("connect")
}

fn rand_suffix() -> u64 {
    use std::time::SystemTime;
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

/// Poll `cond` until it holds or `timeout` passes (no sleeps for correctness).
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The harness itself: data survives a restart on both servers.
async fn harness_restart(env: &mut Env) {
    let key = format!("{}/probe", env.layout.root());
    env.client.put(key.as_str(), "v", None).await.unwrap();
    env.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        // the client reconnects on its own; poll until the restarted server answers
        match env.client.get(key.as_str(), None).await {
            Ok(r) => break r.kvs().first().map(|kv| kv.value().to_vec()),
            Err(e) => assert!(Instant::now() < deadline, "no answer after restart: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(got.as_deref(), Some(&b"v"[..]));
}
meta_test!(harness_restart);

/// One HTTP/1.1 request (`Connection: close`); the status and the body.
pub async fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = addr.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked answers are not expected: {head}"
    );
    (status, body.to_string())
}

/// Serve only the metadata HTTP paths on a free local port in front of `env`'s server.
pub async fn serve_meta_http(
    env: &Env,
    role: metastore::meta::resource_group::WriteRole,
) -> (String, tokio::task::JoinHandle<()>) {
    use metastore::api::metahttp::{serve, MetaHttp};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let ctx = MetaHttp::new(env.endpoint.clone(), env.layout.clone(), role);
    let task = tokio::spawn(async move {
        let _ = serve(listener, ctx).await;
    });
    (addr, task)
}

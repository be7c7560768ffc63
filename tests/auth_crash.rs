//! Durability of the auth store: kill -9 while users, roles, permissions and grants are
//! being changed loses no acknowledged change, across restarts and snapshots (a small
//! --snapshot-count makes the restarts load snapshots that hold auth records too), and a
//! restarted member still enforces them.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Kind, Server};
use etcd_client::{Client, ConnectOptions, Permission, UserAddOptions};

const WRITERS: usize = 6;
const ARGS: &[&str] = &["--snapshot-count", "40", "--bcrypt-cost", "4"];

/// What a writer was told is done: (user, role), each fully set up (role granted a
/// readwrite permission on `k/<user>`, and granted to the user).
type Acked = Arc<Mutex<Vec<(String, String)>>>;

async fn root(endpoint: &str) -> Client {
    let opts = ConnectOptions::new().with_user("root", "rootpw");
    Client::connect([endpoint], Some(opts)).await.unwrap()
}

async fn load(
    endpoint: String,
    cycle: usize,
    acked: Acked,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (endpoint, acked, stop) = (endpoint.clone(), acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let opts = ConnectOptions::new().with_user("root", "rootpw");
            let Ok(mut c) = Client::connect([endpoint.as_str()], Some(opts)).await else {
                return;
            };
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (u, r) = (format!("u{cycle}-{w}-{n}"), format!("r{cycle}-{w}-{n}"));
                let steps = async {
                    c.user_add(u.as_str(), format!("pw-{u}"), Some(UserAddOptions::new()))
                        .await?;
                    c.role_add(r.as_str()).await?;
                    c.role_grant_permission(r.as_str(), Permission::read_write(format!("k/{u}")))
                        .await?;
                    c.user_grant_role(u.as_str(), r.as_str()).await
                };
                match steps.await {
                    Ok(_) => acked.lock().unwrap().push((u, r)),
                    Err(_) => return, // the server is gone
                }
                n += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_auth_change() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let mut server = Server::spawn(Kind::Metastore, &data, port, ARGS);
    {
        let mut c = Client::connect([server.endpoint.as_str()], None)
            .await
            .unwrap();
        c.user_add("root", "rootpw", Some(UserAddOptions::new()))
            .await
            .unwrap();
        c.user_grant_role("root", "root").await.unwrap();
        c.auth_enable().await.unwrap();
    }
    let acked: Acked = Arc::default();
    for cycle in 0..2 {
        let before_token = root(&server.endpoint).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = tokio::spawn(load(
            server.endpoint.clone(),
            cycle,
            acked.clone(),
            stop.clone(),
        ));
        let deadline = Instant::now() + Duration::from_secs(60);
        let target = acked.lock().unwrap().len() + 60;
        while acked.lock().unwrap().len() < target {
            assert!(Instant::now() < deadline, "auth load made no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = load.await;
        server = Server::spawn(Kind::Metastore, &data, port, ARGS);

        // auth is still on: no credentials, no reads; a token from before is unknown
        let mut anon = Client::connect([server.endpoint.as_str()], None)
            .await
            .unwrap();
        let e = anon.get("k/", None).await.unwrap_err().to_string();
        assert!(e.contains("user name is empty"), "cycle {cycle}: {e}");
        let mut old = before_token;
        let e = old.get("k/", None).await.unwrap_err().to_string();
        assert!(e.contains("invalid auth token"), "cycle {cycle}: {e}");

        let mut c = root(&server.endpoint).await;
        let all = acked.lock().unwrap().clone();
        for (u, r) in &all {
            let roles = c.user_get(u.as_str()).await.unwrap();
            assert!(
                roles.roles().contains(r),
                "cycle {cycle}: acknowledged grant of {r} to {u} lost"
            );
            let perms = c.role_get(r.as_str()).await.unwrap();
            assert_eq!(
                perms.permissions().len(),
                1,
                "cycle {cycle}: {r} lost its permission"
            );
        }
        // and the restarted member enforces them
        let (u, _) = all.last().unwrap();
        let opts = ConnectOptions::new().with_user(u.as_str(), format!("pw-{u}"));
        let mut uc = Client::connect([server.endpoint.as_str()], Some(opts))
            .await
            .unwrap();
        uc.put(format!("k/{u}"), "v", None).await.unwrap();
        let e = uc.put("k/other", "v", None).await.unwrap_err().to_string();
        assert!(e.contains("permission denied"), "cycle {cycle}: {e}");
        eprintln!(
            "cycle {cycle}: {} acknowledged auth changes all present",
            all.len() * 4
        );
    }
}

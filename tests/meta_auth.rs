//! The member's own client under auth: with `--meta-user` (here through
//! METASTORE_META_USER) the typed-metadata HTTP paths keep working once auth is enabled,
//! before and after; without it they get the refusal any client without credentials
//! gets. Checked with curl on the resource manager's group list.

mod common;

use std::process::Command;

use common::{Kind, Server};

/// The HTTP status and body of a GET.
fn get(s: &Server, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("{}{path}", s.endpoint))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn ok(s: &Server, args: &[&str]) {
    let out = s.etcdctl(args, None);
    assert_eq!(out.code, 0, "etcdctl {args:?}: {}", out.stderr);
}

fn enable_auth(s: &Server) {
    ok(s, &["user", "add", "root:rootpw"]);
    ok(s, &["user", "grant-role", "root", "root"]);
    ok(s, &["auth", "enable"]);
}

const GROUPS: &str = "/resource-manager/api/v1/config/groups";

#[test]
fn the_metadata_paths_authenticate_as_the_meta_user() {
    std::env::set_var("METASTORE_META_USER", "root:rootpw");
    let with = Server::start(Kind::Metastore, &[]);
    std::env::remove_var("METASTORE_META_USER");
    let without = Server::start(Kind::Metastore, &[]);

    // Auth off: both serve, with or without credentials.
    for s in [&with, &without] {
        assert_eq!(get(s, GROUPS).0, 200, "{}", get(s, GROUPS).1);
    }
    enable_auth(&with);
    enable_auth(&without);
    let (code, body) = get(&with, GROUPS);
    assert_eq!(code, 200, "{body}");
    let (code, body) = get(&without, GROUPS);
    assert_ne!(code, 200, "no credentials, yet served: {body}");
    assert!(body.contains("user name is empty"), "{code} {body}");
    // Auth off again: the kept client's token is gone with it, so a request may fail
    // once, and the next connects afresh and is served.
    ok(&with, &["--user", "root:rootpw", "auth", "disable"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(&with, GROUPS).0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            get(&with, GROUPS)
        );
    }
}

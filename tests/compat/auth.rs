//! Auth side by side with etcd: users, roles, permissions and enable/disable through
//! `etcdctl user|role|auth` and `etcdctl --user`, the client-library flow through
//! etcd-client, and the denial matrix (every request kind, for callers that must be
//! refused: refused with etcd's code and message, and nothing changed).
//!
//! Each group starts its own pair with `--bcrypt-cost 4` (both accept it) so that
//! password checks stay fast.

use etcd_client::{
    Client, ConnectOptions, DeleteOptions, GetOptions, LeaseTimeToLiveOptions, Permission,
    PutOptions, RoleRevokePermissionOptions, Txn, TxnOp, UserAddOptions, WatchOptions,
};

use std::time::Duration;

use crate::client::obs;
use crate::common::Server;
use crate::ctl::{input, r, run, w, Step};
use crate::{Obs, Pair, Report};

const FAST: &[&str] = &["--bcrypt-cost", "4"];

#[test]
fn auth_through_etcdctl() {
    let Some(pair) = Pair::start(FAST) else {
        return;
    };
    let mut rep = Report::default();
    let s = |rep: &mut Report, name: &str, steps: Vec<Step>| run(&pair, rep, name, steps);
    let p = "";
    let root = "--user=root:pw";
    s(
        &mut rep,
        "enable-without-root",
        vec![w(p, &["auth", "enable"])],
    );
    s(
        &mut rep,
        "users-and-roles",
        vec![
            w(p, &["user", "add", "root:pw"]),
            w(p, &["user", "add", "root:again"]),
            w(p, &["user", "add", "u-ro:p"]),
            w(p, &["user", "add", "u-wo:p"]),
            w(p, &["user", "add", "u-none:p"]),
            w(p, &["user", "add", "nopw", "--no-password"]),
            w(p, &["role", "add", "ro"]),
            w(p, &["role", "add", "ro"]),
            w(p, &["role", "add", "wo"]),
            w(p, &["role", "add", "rw"]),
            w(
                p,
                &[
                    "role",
                    "grant-permission",
                    "ro",
                    "read",
                    "auth/",
                    "--prefix",
                ],
            ),
            w(
                p,
                &[
                    "role",
                    "grant-permission",
                    "wo",
                    "write",
                    "auth/",
                    "--prefix",
                ],
            ),
            w(
                p,
                &[
                    "role",
                    "grant-permission",
                    "rw",
                    "readwrite",
                    "auth/k",
                    "auth/l",
                ],
            ),
            w(
                p,
                &[
                    "role",
                    "grant-permission",
                    "rw",
                    "read",
                    "auth/z",
                    "--from-key",
                ],
            ),
            w(
                p,
                &[
                    "role",
                    "grant-permission",
                    "rw",
                    "write",
                    "auth/k",
                    "auth/l",
                ],
            ),
            w(p, &["role", "grant-permission", "nosuch", "read", "auth/"]),
            r(p, &["role", "get", "ro"]),
            r(p, &["role", "get", "rw"]),
            r(p, &["role", "get", "nosuch"]),
            r(p, &["role", "list"]),
            r(p, &["user", "list"]),
            w(p, &["user", "grant-role", "u-ro", "ro"]),
            w(p, &["user", "grant-role", "u-wo", "wo"]),
            w(p, &["user", "grant-role", "u-ro", "ro"]),
            w(p, &["user", "grant-role", "u-ro", "nosuch"]),
            w(p, &["user", "grant-role", "nosuch", "ro"]),
            w(p, &["user", "grant-role", "nopw", "ro"]),
            r(p, &["user", "get", "u-ro"]),
            r(p, &["user", "get", "nosuch"]),
            w(p, &["user", "revoke-role", "u-ro", "rw"]),
            w(p, &["user", "revoke-role", "nosuch", "rw"]),
            w(p, &["role", "revoke-permission", "rw", "auth/x"]),
            w(p, &["role", "revoke-permission", "nosuch", "auth/x"]),
            w(p, &["role", "revoke-permission", "rw", "auth/k", "auth/l"]),
            r(p, &["role", "get", "rw"]),
        ],
    );
    s(
        &mut rep,
        "enabled",
        vec![
            // etcdctl adds the root role and grants it to root when enable says it lacks it
            w(p, &["auth", "enable"]),
            w(p, &["auth", "enable"]),
            w(p, &["put", "auth/a", "1"]),
            r(p, &["get", "auth/a"]),
            w(p, &[root, "put", "auth/a", "1"]),
            r(p, &[root, "get", "auth/a"]),
            r(p, &["--user=root:bad", "get", "auth/a"]),
            r(p, &["--user=nobody:x", "get", "auth/a"]),
            r(p, &["--user=nopw:x", "get", "auth/a"]),
            r(p, &["--user=u-ro:p", "get", "auth/a"]),
            r(p, &["--user=u-ro:p", "get", "auth/", "--prefix"]),
            r(p, &["--user=u-ro:p", "get", "aut", "--prefix"]),
            w(p, &["--user=u-ro:p", "put", "auth/a", "2"]),
            w(p, &["--user=u-wo:p", "put", "auth/a", "2"]),
            r(p, &["--user=u-wo:p", "get", "auth/a"]),
            r(p, &["--user=u-none:p", "get", "auth/a"]),
            w(p, &["--user=u-none:p", "put", "auth/a", "3"]),
            w(p, &["--user=u-wo:p", "del", "auth/a", "--prev-kv"]),
            w(p, &["--user=u-wo:p", "del", "auth/a"]),
            r(p, &["--user=u-ro:p", "user", "list"]),
            r(p, &["--user=u-ro:p", "role", "list"]),
            r(p, &["--user=u-ro:p", "user", "get", "u-ro"]),
            r(p, &["--user=u-ro:p", "user", "get", "u-wo"]),
            r(p, &["--user=u-ro:p", "role", "get", "ro"]),
            r(p, &["--user=u-ro:p", "role", "get", "wo"]),
            w(p, &["--user=u-ro:p", "user", "add", "x:y"]),
            w(p, &["--user=u-ro:p", "role", "add", "x"]),
            w(p, &["--user=u-ro:p", "auth", "disable"]),
            w(p, &["user", "list"]),
            r(p, &[root, "user", "list"]),
            r(p, &[root, "user", "get", "root"]),
            r(p, &[root, "role", "get", "root"]),
        ],
    );
    s(
        &mut rep,
        "root-rules",
        vec![
            w(p, &[root, "user", "delete", "root"]),
            w(p, &[root, "user", "revoke-role", "root", "root"]),
            w(p, &[root, "role", "delete", "root"]),
            r(p, &[root, "user", "get", "root"]),
        ],
    );
    s(
        &mut rep,
        "passwords-and-deletes",
        vec![
            input(
                p,
                &[root, "user", "passwd", "u-ro", "--interactive=false"],
                "newp\n",
            ),
            r(p, &["--user=u-ro:p", "get", "auth/a"]),
            w(p, &[root, "put", "auth/a", "4"]),
            r(p, &["--user=u-ro:newp", "get", "auth/a"]),
            w(p, &[root, "role", "delete", "ro"]),
            r(p, &[root, "user", "get", "u-ro"]),
            r(p, &["--user=u-ro:newp", "get", "auth/a"]),
            w(p, &[root, "user", "delete", "u-wo"]),
            w(p, &[root, "user", "delete", "u-wo"]),
            w(p, &["--user=u-wo:p", "put", "auth/a", "5"]),
            // etcd 3.4 does not check compaction for auth
            w(p, &["--user=u-none:p", "compact", "2"]),
        ],
    );
    s(
        &mut rep,
        "disable",
        vec![
            w(p, &[root, "auth", "disable"]),
            r(p, &["get", "auth/a"]),
            w(p, &["put", "auth/b", "6"]),
            w(p, &["auth", "disable"]),
            w(p, &["user", "delete", "root"]),
            w(p, &["role", "delete", "root"]),
            w(p, &["auth", "enable"]),
            r(p, &["user", "list"]),
            r(p, &["role", "list"]),
        ],
    );
    rep.finish("auth etcdctl");
}

async fn connect(ep: &str, creds: Option<(&str, &str)>) -> Result<Client, etcd_client::Error> {
    let opts = creds.map(|(u, p)| ConnectOptions::new().with_user(u, p));
    Client::connect([ep], opts).await
}

fn pw() -> Option<UserAddOptions> {
    Some(UserAddOptions::new())
}

/// The typical client-library flow, and tokens across disable and enable.
async fn client_flow(ep: String) -> Obs {
    let mut o = Vec::new();
    let mut c = connect(&ep, None).await.unwrap();
    o.push(obs(c.user_add("root", "rootpw", pw()).await));
    o.push(obs(c.role_add("root").await));
    o.push(obs(c.user_grant_role("root", "root").await));
    // a user added without options: etcd 3.4 stores no password for it
    o.push(obs(c.user_add("nooptions", "pw", None).await));
    o.push(obs(c.user_add("alice", "alicepw", pw()).await));
    o.push(obs(c
        .user_add("svc", "", Some(UserAddOptions::new().with_no_pwd()))
        .await));
    o.push(obs(c.role_add("app").await));
    o.push(obs(c
        .role_grant_permission("app", Permission::read_write("app/").with_prefix())
        .await));
    o.push(obs(c.user_grant_role("alice", "app").await));
    o.push(obs(c.user_grant_role("svc", "app").await));
    o.push(obs(c.auth_enable().await));
    o.push(obs(c.get("app/x", None).await));
    o.push(match connect(&ep, Some(("root", "wrong"))).await {
        Ok(_) => "connected with a wrong password".into(),
        Err(e) => obs(Err::<(), _>(e)),
    });
    o.push(match connect(&ep, Some(("nooptions", "pw"))).await {
        Ok(_) => "connected".into(),
        Err(e) => obs(Err::<(), _>(e)),
    });
    o.push(match connect(&ep, Some(("svc", ""))).await {
        Ok(_) => "connected".into(),
        Err(e) => obs(Err::<(), _>(e)),
    });
    let mut root = connect(&ep, Some(("root", "rootpw"))).await.unwrap();
    let mut alice = connect(&ep, Some(("alice", "alicepw"))).await.unwrap();
    o.push(obs(alice.put("app/x", "1", None).await));
    o.push(obs(alice
        .get("app/", Some(GetOptions::new().with_prefix()))
        .await));
    o.push(obs(alice.put("other", "1", None).await));
    o.push(obs(alice.get("other", None).await));
    o.push(obs(alice
        .delete("app/x", Some(DeleteOptions::new().with_prev_key()))
        .await));
    o.push(obs(alice
        .txn(
            Txn::new()
                .when(vec![])
                .and_then(vec![TxnOp::put("app/y", "2", None)])
                .or_else(vec![TxnOp::put("other", "2", None)]),
        )
        .await));
    // (a nested txn reading outside the role: etcd 3.4.23 lets it through, metastore
    // refuses it, as issue 13 asks: every op, nested too; the denial matrix checks it)
    o.push(obs(alice.user_list().await));
    o.push(obs(alice.user_get("alice").await));
    o.push(obs(alice.role_get("app").await));
    o.push(obs(alice.role_get("root").await));
    o.push(obs(root.user_get("alice").await));
    o.push(obs(root.role_list().await));
    // watch: refused outside the role's range (created and cancelled), allowed inside
    for key in ["other", "app/w"] {
        let mut stream = alice.watch(key, None).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), stream.message()).await;
        match first {
            Ok(Ok(Some(r))) => {
                o.push(format!(
                    "watch {key}: created={} canceled={} reason={:?}",
                    r.created(),
                    r.canceled(),
                    r.cancel_reason()
                ));
                if !r.canceled() {
                    let _ = stream.cancel(r.watch_id()).await;
                }
            }
            other => o.push(format!("watch {key}: {:?}", other.map(|r| r.map(|_| ())))),
        }
    }
    // a lease with a key alice cannot write: she may not revoke it
    let lease = root.lease_grant(60, None).await.unwrap().id();
    o.push(obs(root
        .put("other", "3", Some(PutOptions::new().with_lease(lease)))
        .await));
    o.push(obs(alice.lease_revoke(lease).await));
    o.push(obs(alice
        .put("app/z", "4", Some(PutOptions::new().with_lease(lease)))
        .await));
    o.push(obs(root
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .map(|r| r.keys().len())));
    o.push(obs(root.lease_revoke(lease).await));
    o.push(obs(root.user_change_password("alice", "newpw").await));
    o.push(obs(alice
        .get("app/", Some(GetOptions::new().with_prefix()))
        .await));
    // tokens do not survive a disable, not even once auth is on again
    o.push(obs(root.auth_disable().await));
    o.push(obs(root.get("app/y", None).await));
    let mut plain = connect(&ep, None).await.unwrap();
    o.push(obs(plain.get("app/y", None).await));
    o.push(obs(plain.auth_enable().await));
    o.push(obs(root.get("app/y", None).await));
    let mut root = connect(&ep, Some(("root", "rootpw"))).await.unwrap();
    o.push(obs(root.get("app/y", None).await));
    o.push(obs(root
        .role_revoke_permission(
            "app",
            "app/",
            Some(RoleRevokePermissionOptions::new().with_prefix()),
        )
        .await));
    o.push(obs(root.auth_disable().await));
    for u in ["alice", "svc", "nooptions", "root"] {
        o.push(obs(plain.user_delete(u).await));
    }
    o.push(obs(plain.role_delete("app").await));
    o.push(obs(plain.role_delete("root").await));
    o.push(obs(plain.user_list().await));
    o.push(obs(plain.role_list().await));
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_through_etcd_client() {
    let Some(pair) = Pair::start(FAST) else {
        return;
    };
    let mut rep = Report::default();
    let oe = client_flow(pair.etcd.endpoint.clone()).await;
    let om = client_flow(pair.ms.endpoint.clone()).await;
    crate::compare(&mut rep, "client-flow", &oe, &om);
    rep.finish("auth etcd-client");
}

// ---- the denial matrix ----

/// Every key and value, and the revision, as root sees them.
async fn snapshot(root: &mut Client) -> String {
    let r = root
        .get("", Some(GetOptions::new().with_from_key()))
        .await
        .unwrap();
    let kvs: Vec<String> = r
        .kvs()
        .iter()
        .map(|kv| {
            format!(
                "{}={}@{}",
                kv.key_str().unwrap(),
                kv.value_str().unwrap(),
                kv.mod_revision()
            )
        })
        .collect();
    format!("rev {} {}", r.header().unwrap().revision(), kvs.join(","))
}

type Attempt = for<'a> fn(&'a mut Client, i64) -> crate::Fut<'a>;

/// One request kind: its name, the attempt, and which of the matrix's callers may do it.
struct Case {
    name: &'static str,
    attempt: Attempt,
    allowed: &'static [&'static str],
}

fn one(r: Result<impl std::fmt::Debug, etcd_client::Error>) -> Obs {
    vec![match r {
        Ok(_) => "ok".to_string(),
        Err(etcd_client::Error::GRpcStatus(s)) => format!("{:?}: {}", s.code(), s.message()),
        Err(e) => format!("client error {e}"),
    }]
}

fn cases() -> Vec<Case> {
    fn txn_then(ops: Vec<TxnOp>) -> Txn {
        Txn::new().and_then(ops)
    }
    vec![
        Case {
            name: "range key",
            allowed: &["ro"],
            attempt: |c, _| Box::pin(async move { one(c.get("m/a", None).await) }),
        },
        Case {
            name: "range prefix",
            allowed: &["ro"],
            attempt: |c, _| {
                Box::pin(
                    async move { one(c.get("m/", Some(GetOptions::new().with_prefix())).await) },
                )
            },
        },
        Case {
            name: "range from key",
            allowed: &[],
            attempt: |c, _| {
                Box::pin(
                    async move { one(c.get("m/", Some(GetOptions::new().with_from_key())).await) },
                )
            },
        },
        Case {
            name: "range serializable",
            allowed: &["ro"],
            attempt: |c, _| {
                Box::pin(async move {
                    one(c
                        .get("m/a", Some(GetOptions::new().with_serializable()))
                        .await)
                })
            },
        },
        Case {
            name: "put",
            allowed: &["wo"],
            attempt: |c, _| Box::pin(async move { one(c.put("m/a", "x", None).await) }),
        },
        Case {
            name: "put prev_kv",
            allowed: &[],
            attempt: |c, _| {
                Box::pin(async move {
                    one(c
                        .put("m/a", "x", Some(PutOptions::new().with_prev_key()))
                        .await)
                })
            },
        },
        Case {
            name: "put on a lease with a key",
            allowed: &["wo"],
            attempt: |c, l| {
                Box::pin(async move {
                    one(c
                        .put("m/c", "x", Some(PutOptions::new().with_lease(l)))
                        .await)
                })
            },
        },
        Case {
            name: "delete key",
            allowed: &["wo"],
            attempt: |c, _| Box::pin(async move { one(c.delete("m/b", None).await) }),
        },
        Case {
            name: "delete prefix prev_kv",
            allowed: &[],
            attempt: |c, _| {
                Box::pin(async move {
                    one(c
                        .delete(
                            "m/",
                            Some(DeleteOptions::new().with_prefix().with_prev_key()),
                        )
                        .await)
                })
            },
        },
        Case {
            name: "txn compare",
            allowed: &[],
            attempt: |c, _| {
                Box::pin(async move {
                    one(c
                        .txn(
                            Txn::new()
                                .when(vec![etcd_client::Compare::value(
                                    "m/a",
                                    etcd_client::CompareOp::Equal,
                                    "1",
                                )])
                                .and_then(vec![TxnOp::put("m/a", "x", None)]),
                        )
                        .await)
                })
            },
        },
        Case {
            name: "txn success put",
            allowed: &["wo"],
            attempt: |c, _| {
                Box::pin(
                    async move { one(c.txn(txn_then(vec![TxnOp::put("m/a", "x", None)])).await) },
                )
            },
        },
        Case {
            name: "txn failure delete",
            allowed: &["wo"],
            attempt: |c, _| {
                Box::pin(async move {
                    one(c
                        .txn(Txn::new().or_else(vec![TxnOp::delete("m/b", None)]))
                        .await)
                })
            },
        },
        Case {
            name: "txn nested put",
            allowed: &["wo"],
            attempt: |c, _| {
                Box::pin(async move {
                    one(c
                        .txn(txn_then(vec![TxnOp::txn(txn_then(vec![TxnOp::put(
                            "m/a", "x", None,
                        )]))]))
                        .await)
                })
            },
        },
        Case {
            name: "txn nested range",
            allowed: &["ro"],
            attempt: |c, _| {
                Box::pin(async move {
                    one(c
                        .txn(txn_then(vec![TxnOp::txn(txn_then(vec![TxnOp::get(
                            "m/a", None,
                        )]))]))
                        .await)
                })
            },
        },
        Case {
            name: "txn read only",
            allowed: &["ro"],
            attempt: |c, _| {
                Box::pin(async move { one(c.txn(txn_then(vec![TxnOp::get("m/a", None)])).await) })
            },
        },
        Case {
            name: "watch create",
            allowed: &["ro"],
            attempt: |c, _| {
                Box::pin(async move {
                    match c.watch("m/a", Some(WatchOptions::new())).await {
                        Ok(mut s) => {
                            let first =
                                tokio::time::timeout(Duration::from_secs(10), s.message()).await;
                            match first {
                                Ok(Ok(Some(r))) if r.canceled() => {
                                    vec![format!("watch canceled: {}", r.cancel_reason())]
                                }
                                Ok(Ok(Some(r))) => {
                                    let _ = s.cancel(r.watch_id()).await;
                                    vec!["ok".into()]
                                }
                                other => {
                                    vec![format!("watch {:?}", other.map(|r| r.map(|_| ())))]
                                }
                            }
                        }
                        Err(e) => one(Err::<(), _>(e)),
                    }
                })
            },
        },
        Case {
            name: "lease revoke (attached keys)",
            allowed: &["wo"],
            attempt: |c, l| Box::pin(async move { one(c.lease_revoke(l).await) }),
        },
        Case {
            name: "lease time-to-live with keys",
            allowed: &["ro"],
            attempt: |c, l| {
                Box::pin(async move {
                    one(c
                        .lease_time_to_live(l, Some(LeaseTimeToLiveOptions::new().with_keys()))
                        .await)
                })
            },
        },
        Case {
            name: "defragment",
            allowed: &[],
            attempt: |c, _| Box::pin(async move { one(c.defragment().await) }),
        },
        Case {
            name: "member remove",
            allowed: &[],
            attempt: |c, _| Box::pin(async move { one(c.member_remove(1).await) }),
        },
        Case {
            name: "user add",
            allowed: &[],
            attempt: |c, _| Box::pin(async move { one(c.user_add("x", "y", pw()).await) }),
        },
        Case {
            name: "user list",
            allowed: &[],
            attempt: |c, _| Box::pin(async move { one(c.user_list().await) }),
        },
        Case {
            name: "user get other",
            allowed: &[],
            attempt: |c, _| Box::pin(async move { one(c.user_get("root").await) }),
        },
        Case {
            name: "role add",
            allowed: &[],
            attempt: |c, _| Box::pin(async move { one(c.role_add("x").await) }),
        },
        Case {
            name: "role grant permission",
            allowed: &[],
            attempt: |c, _| {
                Box::pin(async move {
                    one(c
                        .role_grant_permission("ro", Permission::read_write("m/").with_prefix())
                        .await)
                })
            },
        },
        Case {
            name: "user grant role",
            allowed: &[],
            attempt: |c, _| Box::pin(async move { one(c.user_grant_role("none", "root").await) }),
        },
        Case {
            name: "auth disable",
            allowed: &[],
            attempt: |c, _| Box::pin(async move { one(c.auth_disable().await) }),
        },
    ]
}

/// The refusal etcd sends each caller (the no-credentials caller is `anonymous`).
fn expected(caller: &str, case: &str) -> &'static str {
    let defrag = case == "defragment";
    match (caller, defrag) {
        ("anonymous", true) => "Unknown: auth: user name is empty",
        (_, true) => "Unknown: auth: permission denied",
        ("anonymous", false) if case == "watch create" => {
            "watch canceled: rpc error: code = InvalidArgument desc = etcdserver: user name is empty"
        }
        ("anonymous", false) => "InvalidArgument: etcdserver: user name is empty",
        (_, false) if case == "watch create" => {
            "watch canceled: rpc error: code = PermissionDenied desc = etcdserver: permission denied"
        }
        _ => "PermissionDenied: etcdserver: permission denied",
    }
}

/// Counts of one run of the matrix against one server.
#[derive(Debug, Default)]
struct Counts {
    tried: usize,
    refused: usize,
    let_through: Vec<String>,
    wrong_error: Vec<String>,
}

async fn matrix(ep: &str) -> Counts {
    let mut c = connect(ep, None).await.unwrap();
    c.user_add("root", "pw", pw()).await.unwrap();
    c.user_grant_role("root", "root").await.unwrap();
    for (u, role, perm) in [
        ("ro", Some("ro"), Some(Permission::read("m/").with_prefix())),
        (
            "wo",
            Some("wo"),
            Some(Permission::write("m/").with_prefix()),
        ),
        (
            "other",
            Some("other"),
            Some(Permission::read_write("x/").with_prefix()),
        ),
        ("none", None, None),
    ] {
        c.user_add(u, "pw", pw()).await.unwrap();
        if let (Some(role), Some(perm)) = (role, perm) {
            c.role_add(role).await.unwrap();
            c.role_grant_permission(role, perm).await.unwrap();
            c.user_grant_role(u, role).await.unwrap();
        }
    }
    c.put("m/a", "1", None).await.unwrap();
    c.put("m/b", "2", None).await.unwrap();
    let lease = c.lease_grant(600, None).await.unwrap().id();
    c.put("m/l", "3", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    c.auth_enable().await.unwrap();
    let mut root = connect(ep, Some(("root", "pw"))).await.unwrap();
    let mut callers: Vec<(&str, Client)> = vec![("anonymous", connect(ep, None).await.unwrap())];
    for u in ["none", "ro", "wo", "other"] {
        callers.push((u, connect(ep, Some((u, "pw"))).await.unwrap()));
    }
    let mut counts = Counts::default();
    for case in cases() {
        for (caller, client) in callers.iter_mut() {
            if case.allowed.contains(caller) {
                continue;
            }
            let before = snapshot(&mut root).await;
            let got = (case.attempt)(client, lease).await.join(";");
            let after = snapshot(&mut root).await;
            counts.tried += 1;
            let what = format!("{} as {caller}", case.name);
            if got == "ok" || before != after {
                counts
                    .let_through
                    .push(format!("{what}: {got} (before {before}, after {after})"));
                continue;
            }
            counts.refused += 1;
            let want = expected(caller, case.name);
            if got != want {
                counts
                    .wrong_error
                    .push(format!("{what}: got {got:?}, etcd's is {want:?}"));
            }
        }
    }
    // the allowed ones still work (the matrix refuses for the right reason)
    for case in cases() {
        for (caller, client) in callers.iter_mut() {
            if case.allowed.contains(caller) && !case.name.starts_with("lease revoke") {
                let got = (case.attempt)(client, lease).await.join(";");
                if got != "ok" {
                    counts.wrong_error.push(format!(
                        "{} as {caller} is allowed but got {got}",
                        case.name
                    ));
                }
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_denial_matrix() {
    let ms = match crate::external() {
        Some(_) => return,
        None => Server::start(crate::common::Kind::Metastore, FAST),
    };
    let got = matrix(&ms.endpoint).await;
    eprintln!(
        "denial matrix (metastore): tried {}, refused {}, let through {}, wrong error {}",
        got.tried,
        got.refused,
        got.let_through.len(),
        got.wrong_error.len()
    );
    // The same matrix against etcd 3.4.23, for the record: it lets through what its
    // version does not check (nested txns, a lease's keys in time-to-live).
    if crate::common::etcd_bin().is_some() {
        let etcd = Server::start(crate::common::Kind::Etcd, FAST);
        let e = matrix(&etcd.endpoint).await;
        eprintln!(
            "denial matrix (etcd 3.4.23): tried {}, refused {}, let through {}: {:?}",
            e.tried,
            e.refused,
            e.let_through.len(),
            e.let_through
        );
        // what it refuses, it refuses with the errors expected here
        assert!(
            e.wrong_error.is_empty(),
            "etcd's errors: {:#?}",
            e.wrong_error
        );
    }
    assert!(
        got.let_through.is_empty(),
        "let through: {:#?}",
        got.let_through
    );
    assert!(
        got.wrong_error.is_empty(),
        "wrong errors: {:#?}",
        got.wrong_error
    );
    assert_eq!(got.tried, got.refused);
}

//! Differential compat tests: every scenario runs against real etcd and metastore, started
//! side by side with fresh data dirs, through etcdctl (JSON and text output) and through
//! the etcd-client crate. Answers are compared after zeroing only what legitimately differs
//! (cluster and member ids, raft term). Any other difference fails the test, unless
//! docs/compat.md lists it on purpose.
//!
//! Scenarios of one group run in order against one pair of servers, so both see the same
//! history and the same revisions.
//!
//! The suite also runs against any two endpoints, a reference and a target (`make compat
//! REF=http://host:port TARGET=http://host:port`, which sets `COMPAT_REF` and
//! `COMPAT_TARGET`): then nothing is started here, groups that need server flags of their
//! own are skipped, and each group prints `same`/`DIFFERENT` per scenario. Both endpoints
//! must start empty, and the groups must run one at a time (`--test-threads=1`), so that
//! both see the same history.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod client;
mod cluster;
mod ctl;
mod edge;
mod gateway;
mod hash;
mod lease;
mod lock;
mod members;
mod probe;
mod quota;
mod range;
mod raw;
mod streams;
mod tls;
mod watch;

use common::{Kind, Server};

/// One pair of servers with the same history.
pub struct Pair {
    pub etcd: Server,
    pub ms: Server,
}

/// The reference and target endpoints given from outside, if any.
pub fn external() -> Option<(String, String)> {
    let r = std::env::var("COMPAT_REF").ok().filter(|s| !s.is_empty())?;
    let t = std::env::var("COMPAT_TARGET")
        .ok()
        .filter(|s| !s.is_empty())?;
    Some((r, t))
}

impl Pair {
    pub fn start(extra: &[&str]) -> Option<Pair> {
        if let Some((reference, target)) = external() {
            if !extra.is_empty() {
                eprintln!("skipping: this group needs servers started with {extra:?}");
                return None;
            }
            return Some(Pair {
                etcd: Server::external(Kind::Etcd, &reference),
                ms: Server::external(Kind::Metastore, &target),
            });
        }
        if !common::require_etcd() {
            return None;
        }
        Some(Pair {
            etcd: Server::start(Kind::Etcd, extra),
            ms: Server::start(Kind::Metastore, extra),
        })
    }
}

impl Pair {
    /// A client of each: etcd's, then metastore's.
    pub async fn clients(&self) -> (etcd_client::Client, etcd_client::Client) {
        let e = etcd_client::Client::connect([self.etcd.endpoint.as_str()], None)
            .await
            .unwrap();
        let m = etcd_client::Client::connect([self.ms.endpoint.as_str()], None)
            .await
            .unwrap();
        (e, m)
    }
}

pub type Obs = Vec<String>;
pub type Fut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Obs> + 'a>>;

/// Run one etcd-client scenario against etcd, then metastore, each with the scenario's key
/// prefix; the observations of both.
pub async fn observe(
    pair: &Pair,
    name: &str,
    f: for<'a> fn(&'a mut etcd_client::Client, String) -> Fut<'a>,
) -> (Obs, Obs) {
    let (mut e, mut m) = pair.clients().await;
    let p = format!("{name}/");
    let oe = f(&mut e, p.clone()).await;
    let om = f(&mut m, p).await;
    (oe, om)
}

/// Compare one scenario's observations step by step.
pub fn compare(rep: &mut Report, name: &str, oe: &Obs, om: &Obs) {
    rep.begin(name);
    rep.steps += oe.len();
    for (i, (a, b)) in oe.iter().zip(om.iter()).enumerate() {
        if a != b {
            rep.diffs.push(format!(
                "[{name}] step {i}\n  etcd:      {a}\n  metastore: {b}"
            ));
        }
    }
    if oe.len() != om.len() {
        rep.diffs.push(format!(
            "[{name}] {} observations from etcd, {} from metastore",
            oe.len(),
            om.len()
        ));
    }
}

/// Run a scenario that takes an endpoint and a key prefix on both sides.
pub async fn run_ep(
    pair: &Pair,
    rep: &mut Report,
    name: &str,
    f: fn(String, String) -> Fut<'static>,
) {
    let p = format!("{name}/");
    let oe = f(pair.etcd.endpoint.clone(), p.clone()).await;
    let om = f(pair.ms.endpoint.clone(), p).await;
    compare(rep, name, &oe, &om);
}

/// Differences found, reported together at the end of a group.
#[derive(Default)]
pub struct Report {
    pub scenarios: usize,
    pub steps: usize,
    pub diffs: Vec<String>,
    /// Scenario names in order, for the per-scenario report.
    pub names: Vec<String>,
    /// Differences kept on purpose (docs/compat.md): `[scenario] reason`; reported, not failed.
    pub kept: Vec<String>,
}

impl Report {
    /// A scenario starts; its differences are the diffs that start with `[name]`.
    pub fn begin(&mut self, name: &str) {
        self.scenarios += 1;
        self.names.push(name.to_string());
    }

    pub fn finish(self, group: &str) {
        let differs = |name: &str| {
            let tag = format!("[{name}]");
            self.diffs.iter().any(|d| d.starts_with(&tag))
        };
        let kept = |name: &str| {
            let tag = format!("[{name}]");
            self.kept.iter().find(|d| d.starts_with(&tag)).cloned()
        };
        for name in &self.names {
            if differs(name) {
                eprintln!("compat {group}: DIFFERENT {name}");
            } else if let Some(k) = kept(name) {
                eprintln!("compat {group}: different (kept) {k}");
            } else {
                eprintln!("compat {group}: same {name}");
            }
        }
        eprintln!(
            "compat {group}: {} scenarios, {} steps, {} differences, {} kept differences",
            self.scenarios,
            self.steps,
            self.diffs.len(),
            self.kept.len()
        );
        if !self.diffs.is_empty() {
            panic!(
                "compat {group}: {} differences:\n\n{}",
                self.diffs.len(),
                self.diffs.join("\n\n")
            );
        }
    }
}

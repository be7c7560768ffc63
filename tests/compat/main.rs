//! Differential compat tests: every scenario runs against real etcd and metastore, started
//! side by side with fresh data dirs, through etcdctl (JSON and text output) and through
//! the etcd-client crate. Answers are compared after zeroing only what legitimately differs
//! (cluster and member ids, raft term). Any other difference fails the test, unless
//! docs/compat.md lists it on purpose.
//!
//! Scenarios of one group run in order against one pair of servers, so both see the same
//! history and the same revisions.

#[path = "../common/mod.rs"]
mod common;

mod client;
mod cluster;
mod ctl;
mod lease;
mod range;
mod tls;
mod watch;

use common::{Kind, Server};

/// One pair of servers with the same history.
pub struct Pair {
    pub etcd: Server,
    pub ms: Server,
}

impl Pair {
    pub fn start(extra: &[&str]) -> Option<Pair> {
        if !common::require_etcd() {
            return None;
        }
        Some(Pair {
            etcd: Server::start(Kind::Etcd, extra),
            ms: Server::start(Kind::Metastore, extra),
        })
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
    let mut e = etcd_client::Client::connect([pair.etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let mut m = etcd_client::Client::connect([pair.ms.endpoint.as_str()], None)
        .await
        .unwrap();
    let p = format!("{name}/");
    let oe = f(&mut e, p.clone()).await;
    let om = f(&mut m, p).await;
    (oe, om)
}

/// Differences found, reported together at the end of a group.
#[derive(Default)]
pub struct Report {
    pub scenarios: usize,
    pub steps: usize,
    pub diffs: Vec<String>,
}

impl Report {
    pub fn finish(self, group: &str) {
        eprintln!(
            "compat {group}: {} scenarios, {} steps, {} differences",
            self.scenarios,
            self.steps,
            self.diffs.len()
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

//! etcdctl's member workflow on a 3-member cluster: the same bootstrap and the same
//! `etcdctl member list|add|update|promote|remove` sequence on three etcd 3.4 processes and
//! on three metastore processes, outputs compared after naming what differs by nature
//! (member and cluster ids, loopback ports, the order of members, which follows their ids).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::cluster::Cluster;
use crate::common::{error_lines, etcd_bin, etcdctl, metastore_bin, require_etcd};
use crate::{compare, external, Obs, Report};

/// Loopback ports and hex ids replaced by stable names, the lines of a member list (and the
/// members of an `ETCD_INITIAL_CLUSTER` line) sorted.
struct Names {
    ports: HashMap<u16, String>,
    ids: HashMap<String, String>,
}

impl Names {
    fn new(c: &Cluster) -> Names {
        let mut ports = HashMap::new();
        for (i, m) in c.members.iter().enumerate() {
            ports.insert(m.client_port, format!("C{i}"));
            ports.insert(m.peer_port, format!("P{i}"));
        }
        Names {
            ports,
            ids: HashMap::new(),
        }
    }

    /// Learn the ids of a simple `member list` output (`id, state, name, peers, clients, learner`).
    fn learn(&mut self, list: &str) {
        for line in list.lines() {
            let f: Vec<&str> = line.split(", ").collect();
            if f.len() >= 4 {
                let label = if f[2].is_empty() {
                    format!("ID({})", self.port_names(f[3]))
                } else {
                    format!("ID({})", f[2])
                };
                self.ids.insert(f[0].to_string(), label);
            }
        }
    }

    fn port_names(&self, s: &str) -> String {
        let re = regex::Regex::new(r"127\.0\.0\.1:(\d+)").unwrap();
        re.replace_all(s, |c: &regex::Captures| {
            let p: u16 = c[1].parse().unwrap();
            self.ports.get(&p).cloned().unwrap_or_else(|| "PORT".into())
        })
        .into_owned()
    }

    fn normalize(&self, s: &str) -> String {
        let s = self.port_names(s);
        // etcdctl prints ids with `%16x`: an id under 16 hex digits is padded with spaces,
        // which are not part of it.
        let hex = regex::Regex::new(r"( *)\b([0-9a-f]{8,16})\b").unwrap();
        let s = hex.replace_all(&s, |c: &regex::Captures| {
            let id = self.ids.get(&c[2]).cloned().unwrap_or_else(|| "ID".into());
            if c[1].is_empty() {
                id
            } else {
                format!(" {id}")
            }
        });
        let mut lines: Vec<String> = s
            .lines()
            .map(|l| match l.strip_prefix("ETCD_INITIAL_CLUSTER=\"") {
                Some(rest) => {
                    let mut items: Vec<&str> = rest.trim_end_matches('"').split(',').collect();
                    items.sort();
                    format!("ETCD_INITIAL_CLUSTER=\"{}\"", items.join(","))
                }
                None => l.to_string(),
            })
            .collect();
        if lines.iter().all(|l| l.split(", ").count() == 6) {
            lines.sort();
        }
        lines.join("\n")
    }
}

/// The id (hex) of the member whose name or peer URL `needle` is, from a member list.
fn id_of(list: &str, needle: &str) -> String {
    list.lines()
        .find(|l| l.split(", ").any(|f| f == needle))
        .and_then(|l| l.split(", ").next())
        .unwrap_or_else(|| panic!("{needle} not in the member list:\n{list}"))
        .to_string()
}

fn member_list(c: &Cluster) -> String {
    let out = etcdctl(&c.members[0].endpoint(), &["member", "list"], None);
    assert_eq!(out.code, 0, "member list: {}", out.stderr);
    out.stdout
}

/// Poll the member list until `pred` holds, within a deadline.
fn list_until(c: &Cluster, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = member_list(c);
        if pred(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: member list stays\n{list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The workflow on one kind of cluster; the observations in order.
fn workflow(bin: std::path::PathBuf) -> Obs {
    let mut c = Cluster::start_bin(3, &[], bin);
    let mut names = Names::new(&c);
    let ep = c.members[0].endpoint();
    let mut obs: Obs = Vec::new();
    let ctl = |names: &Names, obs: &mut Obs, args: &[&str]| -> String {
        // Both refuse a change until every member has been connected for 5 s (etcd's
        // HealthInterval, with --strict-reconfig-check): retried, as an operator would.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut out = etcdctl(&ep, args, None);
        while out.stderr.contains("unhealthy cluster") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            out = etcdctl(&ep, args, None);
        }
        obs.push(format!(
            "etcdctl {} -> code {}\n{}\n{}",
            names.normalize(&args.join(" ")),
            out.code,
            names.normalize(&out.stdout),
            names.normalize(&error_lines(&out.stderr))
        ));
        out.stdout
    };

    // Every member started and named, as the bootstrap left them.
    let list = list_until(&c, "bootstrap", |l| l.matches(", started, ").count() == 3);
    names.learn(&list);
    ctl(&names, &mut obs, &["member", "list"]);

    // A fourth voter: added (unstarted, no name), then started with state existing.
    let m3 = c.new_member();
    names.ports.insert(c.members[m3].client_port, "C3".into());
    names.ports.insert(c.members[m3].peer_port, "P3".into());
    let p3 = c.members[m3].peer_url();
    ctl(
        &names,
        &mut obs,
        &["member", "add", "m3", &format!("--peer-urls={p3}")],
    );
    let list = member_list(&c);
    names.learn(&list);
    ctl(&names, &mut obs, &["member", "list"]);
    c.spawn_with(m3, &["--initial-cluster-state", "existing"]);
    c.wait_ready(m3, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let list = list_until(&c, "m3 joins", |l| l.matches(", started, ").count() == 4);
    names.learn(&list);
    ctl(&names, &mut obs, &["member", "list"]);
    let id3 = id_of(&list, "m3");

    // A learner that never starts: a second is too many; it cannot be promoted.
    let learner = format!("http://127.0.0.1:{}", crate::common::free_port());
    let other = format!("http://127.0.0.1:{}", crate::common::free_port());
    names
        .ports
        .insert(learner[17..].parse().unwrap(), "L4".into());
    names
        .ports
        .insert(other[17..].parse().unwrap(), "L5".into());
    ctl(
        &names,
        &mut obs,
        &[
            "member",
            "add",
            "m4",
            "--learner",
            &format!("--peer-urls={learner}"),
        ],
    );
    let list = member_list(&c);
    names.learn(&list);
    ctl(&names, &mut obs, &["member", "list"]);
    let id4 = id_of(&list, &learner);
    ctl(
        &names,
        &mut obs,
        &[
            "member",
            "add",
            "m5",
            "--learner",
            &format!("--peer-urls={other}"),
        ],
    );
    ctl(&names, &mut obs, &["member", "promote", &id4]);
    ctl(&names, &mut obs, &["member", "remove", &id4]);

    // Refusals: a voter promoted, a peer URL in use, an unknown member.
    let id0 = id_of(&list, "m0");
    ctl(&names, &mut obs, &["member", "promote", &id0]);
    let p0 = c.members[0].peer_url();
    ctl(
        &names,
        &mut obs,
        &["member", "add", "dup", &format!("--peer-urls={p0}")],
    );
    ctl(&names, &mut obs, &["member", "remove", "1234"]);
    ctl(
        &names,
        &mut obs,
        &["member", "update", "1234", &format!("--peer-urls={other}")],
    );

    // Peer URLs updated (to the same URL: the member keeps working), then m3 removed.
    ctl(
        &names,
        &mut obs,
        &["member", "update", &id3, &format!("--peer-urls={p3}")],
    );
    ctl(&names, &mut obs, &["member", "remove", &id3]);
    let exited = c.members[m3].wait_exit(Duration::from_secs(30));
    obs.push(format!("removed member exits by itself: {exited}"));
    c.members[m3].kill();
    list_until(&c, "m3 gone", |l| l.lines().count() == 3);
    ctl(&names, &mut obs, &["member", "list"]);
    obs
}

#[test]
fn member_workflow_on_three_members_through_etcdctl() {
    if external().is_some() || !require_etcd() {
        eprintln!("skipping: this group starts clusters of its own");
        return;
    }
    let etcd = etcd_bin().expect("etcd");
    let oe = workflow(etcd);
    let om = workflow(metastore_bin());
    let mut rep = Report::default();
    compare(&mut rep, "member-workflow", &oe, &om);
    rep.finish("members_through_etcdctl");
}

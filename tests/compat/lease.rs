//! Lease scenarios side by side. Lease ids are chosen by each server (etcd's generator uses
//! the member id and the start time), so they are normalised to their order of appearance;
//! the seconds remaining depend on timing and are compared as "positive".

use std::collections::HashMap;
use std::time::Duration;

use etcd_client::{
    Client, EventType, LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions, WatchOptions,
};
use regex::Regex;

use crate::common::error_lines;
use crate::{Pair, Report};

/// Replace lease ids (16 hex digits, or decimal ids after `"ID":`) by L0, L1, ... in order.
fn normalize_ids(s: &str) -> String {
    let mut seen: HashMap<String, String> = HashMap::new();
    let re = Regex::new(r"\b[0-9a-f]{16}\b|(?:ID|id|lease)(\x22?:\s?)(-?\d{6,})").unwrap();
    let mut out = String::new();
    let mut last = 0;
    for m in re.captures_iter(s) {
        let whole = m.get(0).unwrap();
        out.push_str(&s[last..whole.start()]);
        let id = m
            .get(2)
            .map_or(whole.as_str().to_string(), |g| g.as_str().to_string());
        let n = seen.len();
        let label = seen.entry(id).or_insert_with(|| format!("L{n}")).clone();
        match m.get(1) {
            Some(sep) => out.push_str(&format!(
                "{}{}{label}",
                &whole.as_str()[..whole.as_str().len()
                    - m.get(2).unwrap().as_str().len()
                    - sep.as_str().len()],
                sep.as_str()
            )),
            None => out.push_str(&label),
        }
        last = whole.end();
    }
    out.push_str(&s[last..]);
    let remaining = Regex::new(r"remaining\(\d+s\)").unwrap();
    let out = remaining
        .replace_all(&out, "remaining(positive)")
        .into_owned();
    // etcd lists attached keys in Go map order, which varies from run to run.
    let attached = Regex::new(r"attached keys\(\[([^\]]*)\]\)").unwrap();
    attached
        .replace_all(&out, |c: &regex::Captures| {
            let mut keys: Vec<&str> = c[1].split_whitespace().collect();
            keys.sort_unstable();
            format!("attached keys([{}])", keys.join(" "))
        })
        .into_owned()
}

#[test]
fn leases_through_etcdctl() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    // Each scenario: a shell-like list of etcdctl commands; `$L` is the lease of the last
    // `lease grant` on that server.
    let scenarios: Vec<(&str, Vec<Vec<&str>>)> = vec![
        (
            "grant-and-ttl",
            vec![
                vec!["lease", "grant", "60"],
                vec!["lease", "timetolive", "$L"],
                vec!["lease", "list"],
            ],
        ),
        ("grant-below-minimum", vec![vec!["lease", "grant", "1"]]),
        (
            "keys-attach",
            vec![
                vec!["lease", "grant", "60"],
                vec!["put", "l/a", "1", "--lease=$L"],
                vec!["put", "l/b", "2", "--lease=$L"],
                vec!["lease", "timetolive", "$L", "--keys"],
                vec!["get", "l/", "--prefix", "-w", "json"],
            ],
        ),
        (
            "keep-alive-once",
            vec![
                vec!["lease", "grant", "60"],
                vec!["lease", "keep-alive", "--once", "$L"],
            ],
        ),
        (
            "revoke-deletes-keys",
            vec![
                vec!["lease", "grant", "60"],
                vec!["put", "r/a", "1", "--lease=$L"],
                vec!["put", "r/b", "2", "--lease=$L"],
                vec!["lease", "revoke", "$L"],
                vec!["get", "r/", "--prefix", "-w", "json"],
                vec!["lease", "timetolive", "$L"],
                vec!["lease", "revoke", "$L"],
                vec!["lease", "keep-alive", "--once", "$L"],
            ],
        ),
        (
            "reattach-to-another-lease",
            vec![
                vec!["lease", "grant", "60"],
                vec!["put", "m/a", "1", "--lease=$L"],
                vec!["lease", "grant", "120"],
                vec!["put", "m/a", "2", "--lease=$L"],
                vec!["lease", "timetolive", "$L", "--keys"],
                vec!["put", "m/a", "3"],
                vec!["lease", "timetolive", "$L", "--keys"],
            ],
        ),
        (
            "missing-lease",
            vec![
                vec!["put", "x", "1", "--lease=1234abcd"],
                vec!["lease", "timetolive", "1234abcd"],
                vec!["lease", "revoke", "1234abcd"],
            ],
        ),
        ("list-json", vec![vec!["lease", "list", "-w", "json"]]),
    ];
    for (name, steps) in scenarios {
        rep.begin(name);
        let mut outs: Vec<Vec<String>> = Vec::new();
        for server in [&pair.etcd, &pair.ms] {
            let mut lease = String::new();
            let mut out = Vec::new();
            for step in &steps {
                let args: Vec<String> = step.iter().map(|a| a.replace("$L", &lease)).collect();
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                let o = server.etcdctl(&a, None);
                if a[..2] == ["lease", "grant"] {
                    lease = o
                        .stdout
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                }
                let stdout = match serde_json::from_str::<serde_json::Value>(o.stdout.trim()) {
                    Ok(v) => crate::common::normalize_json(v).to_string(),
                    Err(_) => o.stdout.clone(),
                };
                out.push(normalize_ids(&format!(
                    "{} | {} | {}",
                    o.code,
                    stdout.trim(),
                    error_lines(&o.stderr)
                )));
            }
            outs.push(out);
        }
        rep.steps += steps.len();
        if outs[0] != outs[1] {
            rep.diffs.push(format!(
                "[{name}]\n  etcd:      {:#?}\n  metastore: {:#?}",
                outs[0], outs[1]
            ));
        }
    }
    rep.finish("leases_through_etcdctl");
}

/// A client-chosen id, a duplicate, and expiry deleting the keys with watch events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_ids_and_expiry_through_etcd_client() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    let mut outs = Vec::new();
    for ep in [&pair.etcd.endpoint, &pair.ms.endpoint] {
        let mut c = Client::connect([ep.as_str()], None).await.unwrap();
        let mut o = Vec::new();
        let g = c
            .lease_grant(2, Some(LeaseGrantOptions::new().with_id(4242)))
            .await
            .unwrap();
        o.push(format!("grant id={} ttl={}", g.id(), g.ttl()));
        let dup = c
            .lease_grant(30, Some(LeaseGrantOptions::new().with_id(4242)))
            .await;
        o.push(format!("duplicate: {:?}", dup.err().map(|e| e.to_string())));
        let big = c.lease_grant(9_000_000_001, None).await;
        o.push(format!("too large: {:?}", big.err().map(|e| e.to_string())));
        c.put("e/a", "1", Some(PutOptions::new().with_lease(4242)))
            .await
            .unwrap();
        c.put("e/b", "2", Some(PutOptions::new().with_lease(4242)))
            .await
            .unwrap();
        let ttl = c
            .lease_time_to_live(4242, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .unwrap();
        // etcd lists a lease's keys in Go map order: compare them sorted.
        let mut keys = ttl.keys().to_vec();
        keys.sort();
        o.push(format!("ttl granted={} keys={keys:?}", ttl.granted_ttl()));
        let mut w = c
            .watch("e/", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        let created = w.message().await.unwrap().unwrap();
        o.push(format!("created {}", created.created()));
        // Expiry: both deletes in one response, within the lease's TTL plus the check period.
        let r = tokio::time::timeout(Duration::from_secs(8), w.message())
            .await
            .expect("no expiry")
            .unwrap()
            .unwrap();
        let evs: Vec<String> = r
            .events()
            .iter()
            .map(|e| {
                format!(
                    "{:?} {}",
                    e.event_type(),
                    e.kv().unwrap().key_str().unwrap()
                )
            })
            .collect();
        o.push(format!(
            "expiry events {evs:?} one revision {}",
            r.events()
                .iter()
                .all(|e| e.event_type() == EventType::Delete)
        ));
        let gone = c
            .get(
                "e/",
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_count_only(),
                ),
            )
            .await
            .unwrap();
        o.push(format!("left {}", gone.count()));
        let ttl = c.lease_time_to_live(4242, None).await.unwrap();
        o.push(format!("after expiry ttl={}", ttl.ttl()));
        outs.push(o);
    }
    rep.begin("ids-and-expiry");
    rep.steps += outs[0].len();
    if outs[0] != outs[1] {
        rep.diffs.push(format!(
            "[ids-and-expiry]\n  etcd:      {:#?}\n  metastore: {:#?}",
            outs[0], outs[1]
        ));
    }
    rep.finish("lease_ids_and_expiry_through_etcd_client");
}

//! Fuzzing on stable Rust: seeded random input, bounded by a case count, into the server's
//! outer surfaces. Each target prints its seed (`FUZZ_SEED` replays it) and its case count
//! (`FUZZ_CASES`, default a short run for `make test`; `make fuzz` runs 1,000,000 each):
//!
//! - `grpc_requests_never_panic_hang_or_change_state_when_refused`: arbitrary bytes into
//!   every gRPC method of the client and peer ports (grpc.rs);
//! - `http_paths_always_answer`: random requests on the HTTP side (http.rs);
//! - `config_parser_never_panics`: random command lines, environments and YAML (config.rs);
//! - `apply_path_matches_the_model`: random committed commands through the applier and a
//!   model of the keyspace (apply.rs).

#[path = "../common/mod.rs"]
mod common;

#[path = "../compat/raw.rs"]
#[allow(dead_code)]
mod raw;

mod apply;
mod config;
mod gen;
mod grpc;
mod http;

use std::time::Instant;

/// The last few cases, for a failure's message.
#[derive(Default, Debug)]
pub struct Recent(std::collections::VecDeque<String>);

impl Recent {
    pub fn push(&mut self, case: String) {
        if self.0.len() == 8 {
            self.0.pop_front();
        }
        self.0.push_back(case);
    }
}

fn cases(default: u64) -> u64 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn seed(target: &str) -> u64 {
    let seed = common::seed_from_env("FUZZ_SEED");
    eprintln!("{target}: seed {seed} (FUZZ_SEED={seed} replays it)");
    seed
}

/// How the member is: running or not, and its log's last lines.
fn member_state(c: &mut common::cluster::Cluster) -> String {
    let log = std::fs::read_to_string(&c.members[0].log).unwrap_or_default();
    let tail: Vec<&str> = log
        .lines()
        .rev()
        .filter(|l| !l.contains("sending database snapshot"))
        .take(30)
        .collect();
    format!(
        "member running: {}; its log ends:\n{}",
        c.members[0].is_running(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )
}

/// The member's log has no panic, and the member still runs.
fn assert_alive(c: &mut common::cluster::Cluster) {
    let log = std::fs::read_to_string(&c.members[0].log).unwrap_or_default();
    assert!(!log.contains("panicked"), "the member panicked: {log}");
    assert!(c.members[0].is_running(), "the member exited: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_requests_never_panic_hang_or_change_state_when_refused() {
    let mut c = common::cluster::Cluster::start(1, &[]);
    let (n, seed) = (cases(20_000), seed("grpc"));
    let started = Instant::now();
    let tally = grpc::run(&c.members[0].endpoint(), &c.members[0].peer_url(), seed, n).await;
    let tally = tally.unwrap_or_else(|e| panic!("{e}\n{}", member_state(&mut c)));
    eprintln!(
        "grpc: {n} cases in {:.1}s: {tally:?}",
        started.elapsed().as_secs_f64()
    );
    assert_alive(&mut c);
    assert!(
        tally.get("ok").copied().unwrap_or(0) > n / 50,
        "too few valid requests: {tally:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_paths_always_answer() {
    let mut c = common::cluster::Cluster::start(1, &[]);
    let (n, seed) = (cases(20_000), seed("http"));
    let addr = c.members[0]
        .endpoint()
        .trim_start_matches("http://")
        .to_string();
    let started = Instant::now();
    let tally = http::run(&addr, seed, n).await;
    let tally = tally.unwrap_or_else(|e| panic!("{e}\n{}", member_state(&mut c)));
    eprintln!(
        "http: {n} cases in {:.1}s: {tally:?}",
        started.elapsed().as_secs_f64()
    );
    assert_alive(&mut c);
    assert!(
        tally.get("200").copied().unwrap_or(0) > n / 50,
        "too few answered: {tally:?}"
    );
}

#[test]
fn config_parser_never_panics() {
    let (n, seed) = (cases(20_000), seed("config"));
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (parsed, refused) = config::run(seed, n, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "config: {n} cases in {:.1}s: {parsed} parsed, {refused} refused",
        started.elapsed().as_secs_f64()
    );
    assert!(
        parsed > 0 && refused > 0,
        "{parsed} parsed, {refused} refused"
    );
}

#[test]
fn apply_path_matches_the_model() {
    let (n, seed) = (cases(20_000), seed("apply"));
    let started = Instant::now();
    let (applied, refused) = apply::run(seed, n).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "apply: {n} cases in {:.1}s: {applied} applied, {refused} refused",
        started.elapsed().as_secs_f64()
    );
    assert!(
        applied > n / 4 && refused > n / 20,
        "{applied} applied, {refused} refused"
    );
}

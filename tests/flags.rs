//! Every etcd flag (the table in src/config/flags.rs) starts metastore, or gets its
//! documented refusal: as flags, as ETCD_* variables and in a --config-file, with many
//! flags per process. A flag documented as having no effect is logged as such.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use metastore::config::flags::{Flag, Here, ETCD_FLAGS};

/// Flags every start sets itself (ports, data dir): tested by every start.
const BASE: &[&str] = &[
    "name",
    "data-dir",
    "listen-client-urls",
    "advertise-client-urls",
    "listen-peer-urls",
    "initial-advertise-peer-urls",
    "initial-cluster",
];

/// The rows a member starts with, and each one's value (a free port where it is a URL).
fn accepted() -> Vec<(&'static Flag, String)> {
    ETCD_FLAGS
        .iter()
        .filter(|f| !matches!(f.here, Here::Refused(_)))
        .filter(|f| !BASE.contains(&f.name) && f.name != "config-file")
        .map(|f| {
            let value = match f.name {
                "listen-metrics-urls" | "listen-client-http-urls" => {
                    format!("http://127.0.0.1:{}", common::free_port())
                }
                _ => f.sample().to_string(),
            };
            (f, value)
        })
        .collect()
}

struct Member {
    child: Child,
    endpoint: String,
    log: String,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The base flags of a member on fresh ports under `dir`.
fn base_args(dir: &Path) -> (Vec<String>, String) {
    let client = format!("http://127.0.0.1:{}", common::free_port());
    let peer = format!("http://127.0.0.1:{}", common::free_port());
    let args = vec![
        "--name=default".to_string(),
        format!("--data-dir={}", dir.join("data").display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=default={peer}"),
    ];
    (args, client)
}

/// Start metastore; `Ok` once it is ready and a put and a get work, `Err(stderr)` if it
/// exits first.
fn start(args: &[String], env: &[(String, String)], endpoint: &str) -> Result<Member, String> {
    let mut child = Command::new(common::metastore_bin())
        .args(args)
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start metastore");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let ready = line.contains("ready to serve client requests");
                log.push_str(&line);
                log.push('\n');
                if ready {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(_)) = child.try_wait() {
                    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                        log.push_str(&line);
                        log.push('\n');
                    }
                    return Err(log);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    return Err(format!("not ready in 30s: {log}"));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                return Err(log);
            }
        }
    }
    let m = Member {
        child,
        endpoint: endpoint.to_string(),
        log,
    };
    let put = common::etcdctl(&m.endpoint, &["put", "k", "v"], None);
    assert_eq!(put.code, 0, "put: {}\n{}", put.stderr, m.log);
    let get = common::etcdctl(&m.endpoint, &["get", "k", "--print-value-only"], None);
    assert_eq!(get.stdout.trim(), "v", "get: {}", get.stderr);
    Ok(m)
}

/// Every no-effect flag given was logged once as such.
fn assert_no_effect_logged(m: &Member, given: &[(&Flag, String)]) {
    for (f, _) in given {
        if let Here::NoEffect(_) = f.here {
            let needle = format!(r#""flag":"{}""#, f.name);
            let n = m
                .log
                .lines()
                .filter(|l| l.contains("flag has no effect") && l.contains(&needle))
                .count();
            assert_eq!(n, 1, "--{}: no-effect lines:\n{}", f.name, m.log);
        }
    }
}

/// Start with `flags` (as flags); on failure, find the flag that fails alone.
fn start_with_flags(flags: &[(&'static Flag, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let (mut args, client) = base_args(dir.path());
    args.extend(flags.iter().map(|(f, v)| format!("--{}={v}", f.name)));
    match start(&args, &[], &client) {
        Ok(m) => assert_no_effect_logged(&m, flags),
        Err(log) => {
            for (f, v) in flags {
                let dir = tempfile::tempdir().unwrap();
                let (mut args, client) = base_args(dir.path());
                args.push(format!("--{}={v}", f.name));
                if let Err(alone) = start(&args, &[], &client) {
                    panic!("--{}={v} stops metastore: {alone}", f.name);
                }
            }
            panic!("the flags together stop metastore: {log}");
        }
    }
}

#[test]
fn every_flag_as_a_flag() {
    let rows = accepted();
    // a handful of processes, each with many flags
    for chunk in rows.chunks(50) {
        start_with_flags(chunk);
    }
}

#[test]
fn every_flag_as_a_variable() {
    let rows = accepted();
    let dir = tempfile::tempdir().unwrap();
    let (args, client) = base_args(dir.path());
    let env: Vec<(String, String)> = rows.iter().map(|(f, v)| (f.env(), v.clone())).collect();
    let m = start(&args, &env, &client).unwrap_or_else(|log| panic!("{log}"));
    assert_no_effect_logged(&m, &rows);
    for (var, _) in &env {
        let line = format!("unrecognized environment variable {var}\"");
        assert!(!m.log.contains(&line), "{}", m.log);
    }
}

/// `key: 'value'` lines, nested along dotted keys, for a YAML mapping.
fn yaml(entries: &[(&str, String)]) -> String {
    let mut tree: serde_yaml::Mapping = serde_yaml::Mapping::new();
    for (key, value) in entries {
        let parts: Vec<&str> = key.split('.').collect();
        let mut node = &mut tree;
        for part in &parts[..parts.len() - 1] {
            let k = serde_yaml::Value::String(part.to_string());
            if !node.contains_key(&k) {
                node.insert(k.clone(), serde_yaml::Value::Mapping(Default::default()));
            }
            node = node.get_mut(&k).unwrap().as_mapping_mut().unwrap();
        }
        let last = parts[parts.len() - 1].to_string();
        node.insert(
            serde_yaml::Value::String(last),
            serde_yaml::Value::String(value.clone()),
        );
    }
    serde_yaml::to_string(&tree).unwrap()
}

#[test]
fn every_flag_in_a_config_file() {
    let rows = accepted();
    let dir = tempfile::tempdir().unwrap();
    let (base, client) = base_args(dir.path());
    let mut entries: Vec<(&str, String)> = base
        .iter()
        .map(|a| {
            let (k, v) = a.trim_start_matches("--").split_once('=').unwrap();
            (k, v.to_string())
        })
        .collect();
    // etcd's own YAML key where it has one, else the flag's name
    for (f, v) in &rows {
        let key = if f.yaml.is_empty() { f.name } else { f.yaml };
        entries.push((key, v.clone()));
    }
    let file = dir.path().join("etcd.yaml");
    std::fs::write(&file, yaml(&entries)).unwrap();
    let args = vec![format!("--config-file={}", file.display())];
    let m = start(&args, &[], &client).unwrap_or_else(|log| panic!("{log}"));
    assert_no_effect_logged(&m, &rows);
}

#[test]
fn refused_flags_say_why() {
    for f in ETCD_FLAGS {
        let Here::Refused(why) = f.here else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let (mut args, client) = base_args(dir.path());
        args.push(format!("--{}={}", f.name, f.sample()));
        match start(&args, &[], &client) {
            Ok(_) => panic!("--{}={} was accepted", f.name, f.sample()),
            Err(log) => assert!(log.contains(why), "--{}: {log}", f.name),
        }
    }
}

/// With `--log-level warn` the info lines (the readiness lines among them) are not
/// printed; with `--log-outputs` a file, the lines go there.
#[test]
fn log_level_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut args, client) = base_args(dir.path());
    let file = dir.path().join("member.log");
    args.push(format!("--log-outputs=stderr,{}", file.display()));
    let m = start(&args, &[], &client).unwrap_or_else(|log| panic!("{log}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&file)
        .unwrap_or_default()
        .contains("ready to serve client requests")
    {
        assert!(Instant::now() < deadline, "no readiness line in {file:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(m);

    let dir = tempfile::tempdir().unwrap();
    let (mut args, client) = base_args(dir.path());
    args.push("--log-level=warn".into());
    args.push("--max-wals=3".into());
    let mut child = Command::new(common::metastore_bin())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // ready when a put works
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::etcdctl(&client, &["put", "k", "v"], None).code != 0 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#""level":"warn""#) && stderr.contains("max-wals"),
        "{stderr}"
    );
    assert!(!stderr.contains(r#""level":"info""#), "{stderr}");
}

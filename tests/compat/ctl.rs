//! Scenarios through etcdctl: writes run once (text output), reads run twice (`-w json` and
//! the default text output).

use crate::common::{error_lines, normalize_json, CtlOutput, Server};
use crate::{Pair, Report};

pub enum Step {
    /// A command run once, text output compared.
    W(Vec<String>),
    /// A read run as `-w json` and as text.
    R(Vec<String>),
    /// A command with standard input (txn, put reading its value).
    In(Vec<String>, String),
}

fn args(p: &str, a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.replace("{p}", p)).collect()
}

pub fn w(p: &str, a: &[&str]) -> Step {
    Step::W(args(p, a))
}
pub fn r(p: &str, a: &[&str]) -> Step {
    Step::R(args(p, a))
}
pub fn input(p: &str, a: &[&str], stdin: &str) -> Step {
    Step::In(args(p, a), stdin.replace("{p}", p))
}

/// What is compared: exit code, stdout (JSON normalised), and the `Error:` lines.
fn observed(out: &CtlOutput, json: bool) -> (i32, String, String) {
    let stdout = if json || out.stdout.starts_with('{') {
        match serde_json::from_str::<serde_json::Value>(out.stdout.trim()) {
            Ok(v) => normalize_json(v).to_string(),
            Err(_) => out.stdout.clone(),
        }
    } else {
        out.stdout.clone()
    };
    (out.code, stdout, error_lines(&out.stderr))
}

fn compare(
    report: &mut Report,
    name: &str,
    etcd: &Server,
    ms: &Server,
    a: &[String],
    stdin: Option<&str>,
    json: bool,
) {
    let mut full: Vec<&str> = a.iter().map(String::as_str).collect();
    if json {
        full.extend(["-w", "json"]);
    }
    let e = observed(&etcd.etcdctl(&full, stdin), json);
    let m = observed(&ms.etcdctl(&full, stdin), json);
    report.steps += 1;
    if e != m {
        report.diffs.push(format!(
            "[{name}] etcdctl {}\n  etcd:      code={} out={:?} err={:?}\n  metastore: code={} out={:?} err={:?}",
            full.join(" "),
            e.0,
            e.1,
            e.2,
            m.0,
            m.1,
            m.2
        ));
    }
}

pub fn run(pair: &Pair, report: &mut Report, name: &str, steps: Vec<Step>) {
    report.begin(name);
    for step in steps {
        match step {
            Step::W(a) => compare(report, name, &pair.etcd, &pair.ms, &a, None, false),
            Step::R(a) => {
                compare(report, name, &pair.etcd, &pair.ms, &a, None, true);
                compare(report, name, &pair.etcd, &pair.ms, &a, None, false);
            }
            Step::In(a, stdin) => {
                compare(report, name, &pair.etcd, &pair.ms, &a, Some(&stdin), false)
            }
        }
    }
}

/// Build `n` puts for a txn body.
fn txn_puts(p: &str, n: usize) -> String {
    (0..n).map(|i| format!("put {p}k{i} v\n")).collect()
}

#[test]
fn kv_through_etcdctl() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    let s = |rep: &mut Report, name: &str, f: &dyn Fn(&str) -> Vec<Step>| {
        let p = format!("{name}/");
        run(&pair, rep, name, f(&p));
    };
    s(&mut rep, "put-get", &|p| {
        vec![w(p, &["put", "{p}a", "1"]), r(p, &["get", "{p}a"])]
    });
    s(&mut rep, "get-missing", &|p| {
        vec![r(p, &["get", "{p}nothing"])]
    });
    s(&mut rep, "overwrite-version", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}a", "2"]),
            w(p, &["put", "{p}a", "3"]),
            r(p, &["get", "{p}a"]),
        ]
    });
    s(&mut rep, "put-prev-kv", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}a", "2", "--prev-kv"]),
            r(p, &["put", "{p}a", "3", "--prev-kv"]),
        ]
    });
    s(&mut rep, "put-ignore-value", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}a", "--ignore-value"]),
            r(p, &["get", "{p}a"]),
        ]
    });
    s(&mut rep, "put-ignore-value-missing", &|p| {
        vec![
            w(p, &["put", "{p}none", "--ignore-value"]),
            r(p, &["get", "{p}none"]),
        ]
    });
    s(&mut rep, "put-missing-lease", &|p| {
        vec![
            w(p, &["put", "{p}a", "1", "--lease=1234abcd"]),
            r(p, &["get", "{p}a"]),
        ]
    });
    s(&mut rep, "put-ignore-lease", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}a", "2", "--ignore-lease"]),
            r(p, &["get", "{p}a"]),
        ]
    });
    s(&mut rep, "put-ignore-lease-missing", &|p| {
        vec![w(p, &["put", "{p}none", "2", "--ignore-lease"])]
    });
    s(&mut rep, "prefix", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}b", "2"]),
            w(p, &["put", "{p}c", "3"]),
            r(p, &["get", "{p}", "--prefix"]),
        ]
    });
    s(&mut rep, "from-key", &|p| {
        vec![
            w(p, &["put", "{p}x", "1"]),
            w(p, &["put", "{p}y", "2"]),
            r(p, &["get", "{p}x", "--from-key", "--limit", "5"]),
        ]
    });
    s(&mut rep, "range-interval", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}b", "2"]),
            w(p, &["put", "{p}c", "3"]),
            r(p, &["get", "{p}a", "{p}c"]),
        ]
    });
    s(&mut rep, "range-end-below-key", &|p| {
        vec![w(p, &["put", "{p}b", "1"]), r(p, &["get", "{p}c", "{p}a"])]
    });
    s(&mut rep, "limit-more", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}b", "2"]),
            w(p, &["put", "{p}c", "3"]),
            r(p, &["get", "{p}", "--prefix", "--limit", "2"]),
        ]
    });
    let sorted = |p: &str| {
        vec![
            w(p, &["put", "{p}c", "1"]),
            w(p, &["put", "{p}a", "3"]),
            w(p, &["put", "{p}b", "2"]),
            w(p, &["put", "{p}a", "4"]),
            w(p, &["put", "{p}a", "5"]),
            r(
                p,
                &[
                    "get",
                    "{p}",
                    "--prefix",
                    "--sort-by=MODIFY",
                    "--order=DESCEND",
                ],
            ),
            r(
                p,
                &[
                    "get",
                    "{p}",
                    "--prefix",
                    "--sort-by=MODIFY",
                    "--order=ASCEND",
                ],
            ),
            r(p, &["get", "{p}", "--prefix", "--sort-by=CREATE"]),
            r(
                p,
                &[
                    "get",
                    "{p}",
                    "--prefix",
                    "--sort-by=CREATE",
                    "--order=DESCEND",
                    "--limit",
                    "2",
                ],
            ),
            r(
                p,
                &[
                    "get",
                    "{p}",
                    "--prefix",
                    "--sort-by=VALUE",
                    "--order=DESCEND",
                ],
            ),
            r(
                p,
                &["get", "{p}", "--prefix", "--sort-by=KEY", "--order=DESCEND"],
            ),
            r(p, &["get", "{p}", "--prefix", "--order=DESCEND"]),
            r(
                p,
                &[
                    "get",
                    "{p}",
                    "--prefix",
                    "--sort-by=VERSION",
                    "--order=DESCEND",
                    "--limit",
                    "1",
                ],
            ),
        ]
    };
    s(&mut rep, "sort", &sorted);
    s(&mut rep, "keys-only", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}b", "2"]),
            r(p, &["get", "{p}", "--prefix", "--keys-only"]),
        ]
    });
    s(&mut rep, "count-only", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}b", "2"]),
            r(p, &["get", "{p}", "--prefix", "--count-only"]),
        ]
    });
    s(&mut rep, "print-value-only", &|p| {
        vec![
            w(p, &["put", "{p}a", "hello"]),
            w(p, &["get", "{p}a", "--print-value-only"]),
        ]
    });
    s(&mut rep, "serializable", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            r(p, &["get", "{p}a", "--consistency=s"]),
        ]
    });
    s(&mut rep, "historical-rev", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}a", "2"]),
            r(p, &["get", "{p}a", "--rev=2"]),
            r(p, &["get", "{p}", "--prefix", "--rev=1"]),
        ]
    });
    s(&mut rep, "future-rev", &|p| {
        vec![r(p, &["get", "{p}a", "--rev=100000"])]
    });
    s(&mut rep, "delete-one", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["del", "{p}a"]),
            r(p, &["get", "{p}a"]),
        ]
    });
    s(&mut rep, "delete-missing", &|p| {
        vec![w(p, &["del", "{p}nothing"])]
    });
    s(&mut rep, "delete-prefix-prev-kv", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}b", "2"]),
            w(p, &["del", "{p}", "--prefix", "--prev-kv"]),
            r(p, &["get", "{p}", "--prefix"]),
        ]
    });
    s(&mut rep, "delete-range", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}b", "2"]),
            w(p, &["put", "{p}c", "3"]),
            w(p, &["del", "{p}a", "{p}c"]),
            r(p, &["get", "{p}", "--prefix"]),
        ]
    });
    s(&mut rep, "delete-json", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            r(p, &["del", "{p}a", "--prev-kv"]),
        ]
    });
    s(&mut rep, "recreate-after-delete", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}a", "2"]),
            w(p, &["del", "{p}a"]),
            w(p, &["put", "{p}a", "3"]),
            r(p, &["get", "{p}a"]),
        ]
    });
    s(&mut rep, "empty-key", &|p| {
        vec![
            w(p, &["put", "", "v"]),
            w(p, &["get", ""]),
            w(p, &["del", ""]),
        ]
    });
    s(&mut rep, "value-from-stdin", &|p| {
        vec![
            input(p, &["put", "{p}a"], "from stdin"),
            r(p, &["get", "{p}a"]),
        ]
    });
    s(&mut rep, "dash-value", &|p| {
        vec![
            w(p, &["put", "{p}a", "--", "-dash"]),
            r(p, &["get", "{p}a"]),
        ]
    });
    s(&mut rep, "large-value", &|p| {
        vec![
            input(p, &["put", "{p}big"], &"x".repeat(200_000)),
            r(p, &["get", "{p}big", "--count-only"]),
        ]
    });
    s(&mut rep, "too-large", &|p| {
        vec![
            input(p, &["put", "{p}huge"], &"y".repeat(1_700_000)),
            r(p, &["get", "{p}huge"]),
        ]
    });
    s(&mut rep, "txn-success", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            input(
                p,
                &["txn"],
                "value(\"{p}a\") = \"1\"\n\nput {p}a 2\nget {p}a\n\nput {p}a 3\n\n",
            ),
            r(p, &["get", "{p}a"]),
        ]
    });
    s(&mut rep, "txn-failure", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            input(
                p,
                &["txn"],
                "value(\"{p}a\") = \"9\"\n\nput {p}a 2\n\nput {p}b 3\nget {p}a\n\n",
            ),
            r(p, &["get", "{p}", "--prefix"]),
        ]
    });
    s(&mut rep, "txn-json", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            input(
                p,
                &["txn", "-w", "json"],
                "value(\"{p}a\") = \"1\"\n\nput {p}a 2\nget {p}a\ndel {p}zz\n\n\n",
            ),
        ]
    });
    s(&mut rep, "txn-compare-version", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}a", "1"]),
            input(p, &["txn"], "ver(\"{p}a\") = \"2\"\n\nput {p}ok yes\n\n\n"),
            r(p, &["get", "{p}ok"]),
        ]
    });
    s(&mut rep, "txn-compare-create-missing", &|p| {
        vec![
            input(
                p,
                &["txn"],
                "c(\"{p}new\") = \"0\"\n\nput {p}new created\n\n\n",
            ),
            input(
                p,
                &["txn"],
                "c(\"{p}new\") = \"0\"\n\nput {p}new again\n\nget {p}new\n\n",
            ),
        ]
    });
    s(&mut rep, "txn-compare-mod", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            input(p, &["txn"], "mod(\"{p}a\") > \"1\"\n\nput {p}b x\n\n\n"),
            input(
                p,
                &["txn"],
                "mod(\"{p}a\") < \"1\"\n\nput {p}c x\n\nget {p}a\n\n",
            ),
        ]
    });
    s(&mut rep, "txn-compare-lease", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            input(
                p,
                &["txn"],
                "lease(\"{p}a\") = \"0\"\n\nput {p}b lease-zero\n\n\n",
            ),
        ]
    });
    s(&mut rep, "txn-compare-value-missing", &|p| {
        vec![input(
            p,
            &["txn"],
            "value(\"{p}none\") = \"\"\n\nput {p}b x\n\nput {p}c y\n\n",
        )]
    });
    s(&mut rep, "txn-not-equal-greater-less", &|p| {
        vec![
            w(p, &["put", "{p}a", "5"]),
            input(p, &["txn"], "value(\"{p}a\") != \"4\"\nvalue(\"{p}a\") > \"4\"\nvalue(\"{p}a\") < \"6\"\n\nput {p}r all\n\nput {p}r none\n\n"),
            r(p, &["get", "{p}r"]),
        ]
    });
    s(&mut rep, "txn-no-compare", &|p| {
        vec![
            input(p, &["txn"], "\nput {p}a 1\nput {p}b 2\n\n\n"),
            r(p, &["get", "{p}", "--prefix"]),
        ]
    });
    s(&mut rep, "txn-delete-prefix", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}b", "1"]),
            input(p, &["txn"], "\ndel {p} --prefix\n\n\n"),
            r(p, &["get", "{p}", "--prefix"]),
        ]
    });
    s(&mut rep, "txn-read-only", &|p| {
        vec![
            w(p, &["put", "{p}a", "1"]),
            input(
                p,
                &["txn", "-w", "json"],
                "value(\"{p}a\") = \"1\"\n\nget {p}a\n\nget {p}b\n\n",
            ),
        ]
    });
    s(&mut rep, "txn-duplicate-put", &|p| {
        vec![
            input(p, &["txn"], "\nput {p}a 1\nput {p}a 2\n\n\n"),
            r(p, &["get", "{p}a"]),
        ]
    });
    s(&mut rep, "txn-put-in-deleted-range", &|p| {
        vec![
            input(p, &["txn"], "\ndel {p}a {p}z\nput {p}b 2\n\n\n"),
            r(p, &["get", "{p}b"]),
        ]
    });
    s(&mut rep, "txn-too-many-ops", &|p| {
        vec![
            input(p, &["txn"], &format!("\n{}\n\n", txn_puts(p, 129))),
            r(p, &["get", "{p}k0"]),
        ]
    });
    s(&mut rep, "txn-max-ops", &|p| {
        vec![
            input(p, &["txn"], &format!("\n{}\n\n", txn_puts(p, 128))),
            r(p, &["get", "{p}k127"]),
        ]
    });
    rep.finish("kv_through_etcdctl");
}

#[test]
fn compaction_through_etcdctl() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    let p = "c/";
    run(
        &pair,
        &mut rep,
        "compaction-setup",
        vec![
            w(p, &["put", "{p}a", "1"]),
            w(p, &["put", "{p}a", "2"]),
            w(p, &["put", "{p}b", "1"]),
            w(p, &["del", "{p}b"]),
            w(p, &["put", "{p}a", "3"]),
        ],
    );
    run(
        &pair,
        &mut rep,
        "compact",
        vec![
            w(p, &["compaction", "4"]),
            r(p, &["get", "{p}", "--prefix"]),
        ],
    );
    run(
        &pair,
        &mut rep,
        "read-below-compaction",
        vec![r(p, &["get", "{p}a", "--rev=3"])],
    );
    run(
        &pair,
        &mut rep,
        "read-at-compaction",
        vec![r(p, &["get", "{p}", "--prefix", "--rev=4"])],
    );
    run(
        &pair,
        &mut rep,
        "read-after-compaction",
        vec![r(p, &["get", "{p}", "--prefix", "--rev=5"])],
    );
    run(
        &pair,
        &mut rep,
        "compact-again-same",
        vec![w(p, &["compaction", "4"])],
    );
    run(
        &pair,
        &mut rep,
        "compact-older",
        vec![w(p, &["compaction", "2"])],
    );
    run(
        &pair,
        &mut rep,
        "compact-future",
        vec![w(p, &["compaction", "1000"])],
    );
    run(
        &pair,
        &mut rep,
        "compact-physical",
        vec![
            w(p, &["put", "{p}c", "1"]),
            w(p, &["compaction", "--physical", "6"]),
            r(p, &["get", "{p}", "--prefix"]),
        ],
    );
    run(
        &pair,
        &mut rep,
        "tombstone-compacted",
        vec![
            r(p, &["get", "{p}b", "--rev=6"]),
            w(p, &["put", "{p}b", "again"]),
            r(p, &["get", "{p}b"]),
        ],
    );
    run(
        &pair,
        &mut rep,
        "txn-range-compacted",
        vec![input(p, &["txn"], "\nget {p}a --rev=2\n\n\n")],
    );
    rep.finish("compaction_through_etcdctl");
}

#[test]
fn limits_through_etcdctl() {
    let Some(pair) = Pair::start(&["--max-txn-ops", "4", "--max-request-bytes", "2048"]) else {
        return;
    };
    let mut rep = Report::default();
    let p = "l/";
    run(
        &pair,
        &mut rep,
        "txn-over-custom-limit",
        vec![input(p, &["txn"], &format!("\n{}\n\n", txn_puts(p, 5)))],
    );
    run(
        &pair,
        &mut rep,
        "txn-at-custom-limit",
        vec![input(p, &["txn"], &format!("\n{}\n\n", txn_puts(p, 4)))],
    );
    run(
        &pair,
        &mut rep,
        "put-over-request-bytes",
        vec![
            input(p, &["put", "{p}a"], &"z".repeat(3000)),
            r(p, &["get", "{p}a"]),
        ],
    );
    run(
        &pair,
        &mut rep,
        "put-under-request-bytes",
        vec![
            input(p, &["put", "{p}a"], &"z".repeat(1000)),
            r(p, &["get", "{p}a", "--count-only"]),
        ],
    );
    rep.finish("limits_through_etcdctl");
}

/// Run `etcdctl watch ARGS` (with `stdin` lines for interactive mode), make `writes`, then
/// put `sentinel`; stop once the sentinel's event is printed. Returns the normalised output.
fn watch_output(
    server: &Server,
    args: &[String],
    stdin: Option<&str>,
    writes: &[Vec<String>],
    sentinel: &str,
) -> String {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let mut child = Command::new(crate::common::etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(&server.endpoint)
        .arg("watch")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
        input.flush().unwrap();
    }
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let out = child.stdout.take().unwrap();
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    // JSON shows responses: wait for the replay to be printed, so that the writes below
    // arrive as live events on both servers (how a catch-up batch and live events are split
    // into responses depends on timing otherwise). Text output shows events only.
    let json = args.iter().any(|a| a == "json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while json && lines.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let encoded = base64(sentinel.as_bytes());
    let is_sentinel = |l: &str| l.contains(sentinel) || l.contains(&encoded);
    for w in writes
        .iter()
        .map(|w| w.iter().map(String::as_str).collect::<Vec<_>>())
        .chain([vec!["put", sentinel, "end"]])
    {
        assert_eq!(server.etcdctl(&w, None).code, 0, "write {w:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lines.lock().unwrap().iter().any(|l| is_sentinel(l)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(input);
    let _ = reader.join();
    let lines = lines.lock().unwrap().clone();
    // Keep everything up to the first sentinel event.
    let end = lines
        .iter()
        .position(|l| is_sentinel(l))
        .map_or(lines.len(), |i| i + 1);
    lines[..end]
        .iter()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) if l.starts_with('{') => normalize_json(v).to_string(),
            _ => l.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn watch_through_etcdctl() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // History first, so that both servers have the same revisions to replay.
    for k in [
        &["put", "w/a", "1"][..],
        &["put", "w/b", "2"],
        &["put", "w/a", "3"],
        &["del", "w/b"],
    ] {
        let a: Vec<&str> = k.to_vec();
        assert_eq!(pair.etcd.etcdctl(&a, None).code, 0);
        assert_eq!(pair.ms.etcdctl(&a, None).code, 0);
    }
    /// name, watch arguments, interactive input, writes, sentinel key
    type Case<'a> = (
        &'a str,
        Vec<String>,
        Option<String>,
        Vec<Vec<String>>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "rev-prefix",
            v(&["w/", "--prefix", "--rev=2"]),
            None,
            vec![],
            "w/s1",
        ),
        (
            "rev-prefix-prev-kv",
            v(&["w/", "--prefix", "--rev=2", "--prev-kv"]),
            None,
            vec![],
            "w/s2",
        ),
        (
            "rev-json",
            v(&["w/", "--prefix", "--rev=2", "-w", "json"]),
            None,
            vec![],
            "w/s3",
        ),
        (
            "key-live",
            v(&["w/s4", "--rev=2"]),
            None,
            vec![v(&["put", "w/s4", "x"])],
            "w/s4",
        ),
        (
            "range-live",
            v(&["w/a", "w/c", "--rev=3"]),
            None,
            vec![v(&["put", "w/b", "live"]), v(&["del", "w/a"])],
            "w/b",
        ),
        (
            "interactive",
            vec!["-i".into()],
            Some("watch w/ --prefix --rev=2\n".into()),
            vec![],
            "w/s5",
        ),
    ];
    for (name, args, stdin, writes, sentinel) in cases {
        let e = watch_output(&pair.etcd, &args, stdin.as_deref(), &writes, sentinel);
        let m = watch_output(&pair.ms, &args, stdin.as_deref(), &writes, sentinel);
        rep.begin(name);
        rep.steps += 1;
        if e != m {
            rep.diffs.push(format!(
                "[{name}] etcdctl watch {}\n  etcd:\n{e}\n  metastore:\n{m}",
                args.join(" ")
            ));
        }
    }
    rep.finish("watch_through_etcdctl");
}

/// Standard base64, as etcdctl's JSON output encodes keys and values.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The shape of a JSON document: every key path and value type, not the values.
fn shape(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m {
                shape(val, &format!("{path}.{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for val in a {
                shape(val, &format!("{path}[]"), out);
            }
        }
        serde_json::Value::Number(_) => out.push(format!("{path}: number")),
        serde_json::Value::String(_) => out.push(format!("{path}: string")),
        serde_json::Value::Bool(_) => out.push(format!("{path}: bool")),
        serde_json::Value::Null => out.push(format!("{path}: null")),
    }
}

/// `endpoint status` values differ by nature (version, db size, raft index); its shape and
/// `endpoint health`'s answer must not.
#[test]
fn endpoint_status_and_health_through_etcdctl() {
    let Some(pair) = Pair::start(&[]) else { return };
    let mut rep = Report::default();
    for s in [&pair.etcd, &pair.ms] {
        assert_eq!(s.etcdctl(&["put", "k", "v"], None).code, 0);
    }
    let status_shape = |s: &Server| {
        let out = s.etcdctl(&["endpoint", "status", "-w", "json"], None);
        assert_eq!(out.code, 0, "{:?}: {}", s.kind, out.stderr);
        let mut v = Vec::new();
        shape(&serde_json::from_str(&out.stdout).unwrap(), "", &mut v);
        v.sort();
        v
    };
    rep.begin("endpoint-status");
    rep.steps += 1;
    let (e, m) = (status_shape(&pair.etcd), status_shape(&pair.ms));
    if e != m {
        rep.diffs.push(format!(
            "[endpoint-status] shapes differ\n  etcd:      {e:?}\n  metastore: {m:?}"
        ));
    }
    for s in [&pair.etcd, &pair.ms] {
        let table = s.etcdctl(&["endpoint", "status", "-w", "table"], None);
        assert!(
            table.code == 0 && table.stdout.contains(&s.endpoint),
            "{:?}: {table:?}",
            s.kind
        );
        let health = s.etcdctl(&["endpoint", "health"], None);
        assert!(
            health.code == 0 && health.stderr.contains("is healthy"),
            "{:?}: {health:?}",
            s.kind
        );
    }
    rep.begin("endpoint-health");
    rep.steps += 1;
    rep.finish("endpoint_status_and_health_through_etcdctl");
}

//! Random command lines, `ETCD_*` environments and YAML config files into the config
//! parser: each must parse or give an error, never panic. Flag names come from etcd's
//! table (and some that are not flags), values from each type's plausible and implausible
//! texts; YAML files are random maps of the same, sometimes mutated.

use std::panic::AssertUnwindSafe;

use metastore::config::flags::{Ty, ETCD_FLAGS};
use metastore::config::Config;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn value(rng: &mut StdRng, ty: Ty) -> String {
    let typed: &[&str] = match ty {
        Ty::Bool => &["true", "false", "1", "0", "TRUE", "yes", ""],
        Ty::Uint | Ty::Int => &[
            "0",
            "1",
            "-1",
            "100000",
            "18446744073709551616",
            "1e3",
            "0x10",
        ],
        Ty::Float => &["0", "0.5", "-1", "NaN", "inf", "1e308"],
        Ty::Dur => &["0", "1s", "500ms", "-1m", "10", "1h2m3s", "1x", "9999999h"],
        Ty::Str => &["default", "", "a b", "/tmp/x", "\u{0}", "zap", "info"],
        Ty::List => &[
            "http://127.0.0.1:2379",
            "http://a:1,https://b:2",
            "unix://x",
            "http://[::1]:0",
            ",",
            "a=http://127.0.0.1:2380,b=http://127.0.0.1:2381",
            "http://127.0.0.1:99999",
            "*",
        ],
    };
    match rng.gen_range(0..6) {
        0 => (0..rng.gen_range(0..12))
            .map(|_| rng.gen_range(0x20u8..0x7f) as char)
            .collect(),
        _ => typed[rng.gen_range(0..typed.len())].to_string(),
    }
}

fn flag(rng: &mut StdRng) -> (&'static str, Ty) {
    if rng.gen_bool(0.05) {
        let junk = [
            "",
            "-",
            "no-such-flag",
            "h",
            "help",
            "version",
            "config-file",
        ];
        return (junk[rng.gen_range(0..junk.len())], Ty::Str);
    }
    let f = &ETCD_FLAGS[rng.gen_range(0..ETCD_FLAGS.len())];
    (f.name, f.ty)
}

fn args(rng: &mut StdRng, yaml: &str) -> Vec<String> {
    let mut out = vec!["metastore".to_string()];
    for _ in 0..rng.gen_range(0..8) {
        let (name, ty) = flag(rng);
        let v = if name == "config-file" {
            yaml.to_string()
        } else {
            value(rng, ty)
        };
        match rng.gen_range(0..5) {
            0 => out.push(format!("-{name}={v}")),
            1 => {
                out.push(format!("--{name}"));
                out.push(v);
            }
            2 if ty == Ty::Bool => out.push(format!("--{name}")),
            3 if rng.gen_bool(0.2) => out.push(v),
            _ => out.push(format!("--{name}={v}")),
        }
    }
    out
}

fn env(rng: &mut StdRng) -> Vec<(String, String)> {
    (0..rng.gen_range(0..3))
        .map(|_| {
            let f = &ETCD_FLAGS[rng.gen_range(0..ETCD_FLAGS.len())];
            (f.env(), value(rng, f.ty))
        })
        .collect()
}

fn yaml(rng: &mut StdRng) -> String {
    let mut text = String::new();
    for _ in 0..rng.gen_range(0..6) {
        let f = &ETCD_FLAGS[rng.gen_range(0..ETCD_FLAGS.len())];
        let key = if f.yaml.is_empty() || rng.gen_bool(0.3) {
            f.name
        } else {
            f.yaml
        };
        let v = value(rng, f.ty);
        match rng.gen_range(0..4) {
            0 => text.push_str(&format!("{key}:\n  - {v}\n  - {v}\n")),
            1 => text.push_str(&format!("{key}: '{v}'\n")),
            _ => text.push_str(&format!("{key}: {v}\n")),
        }
    }
    if rng.gen_bool(0.2) && !text.is_empty() {
        let mut bytes = text.into_bytes();
        let i = rng.gen_range(0..bytes.len());
        bytes[i] = b"\t:-[]{}'\"#&*!|>%@`\n "[rng.gen_range(0..20)];
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

/// Run `cases` cases; returns (parsed, refused), or the first panic.
pub fn run(seed: u64, cases: u64, dir: &std::path::Path) -> Result<(u64, u64), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let file = dir.join("fuzz.yaml");
    let path = file.to_string_lossy().into_owned();
    let (mut parsed, mut refused) = (0, 0);
    for case in 0..cases {
        let text = yaml(&mut rng);
        let a = args(&mut rng, &path);
        let e = env(&mut rng);
        let from_yaml = rng.gen_bool(0.3);
        if from_yaml {
            std::fs::write(&file, &text).map_err(|e| e.to_string())?;
        }
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if from_yaml && rng.gen_bool(0.5) {
                Config::from_yaml(&text).map(|_| ())
            } else {
                Config::from_args_env(a.clone(), e.clone()).map(|_| ())
            }
        }));
        match result {
            Ok(Ok(())) => parsed += 1,
            Ok(Err(_)) => refused += 1,
            Err(_) => {
                return Err(format!(
                    "case {case} (seed {seed}) panicked: args {a:?}, env {e:?}, yaml {text:?}"
                ))
            }
        }
    }
    Ok((parsed, refused))
}

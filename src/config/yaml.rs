//! etcd's `--config-file`: YAML whose keys are the flag names, or etcd's own YAML keys
//! where they differ (`client-transport-security.cert-file`, `discovery-config.endpoints`,
//! `socket-options.reuse-port`; see `flags::ETCD_FLAGS`), turned into command-line
//! arguments.

use serde_yaml::Value;

use super::{flags, Error};

/// The arguments the file stands for (the program name first).
pub(super) fn to_args(text: &str, cmd: &clap::Command) -> Result<Vec<String>, Error> {
    let doc: Value =
        serde_yaml::from_str(text).map_err(|e| Error::Invalid(format!("config file: {e}")))?;
    match doc {
        Value::Mapping(_) => {}
        // an empty file sets nothing
        Value::Null => return Ok(vec!["metastore".to_string()]),
        _ => return Err(Error::Invalid("config file: expected a mapping".into())),
    }
    let mut leaves = Vec::new();
    flatten("", &doc, &mut leaves);
    let mut args = vec!["metastore".to_string()];
    for (key, value) in leaves {
        let Some(name) = flag_name(&key, cmd) else {
            tracing::warn!("ignoring unknown config file key {key:?}");
            continue;
        };
        let ty = flags::find(&name).map(|f| f.ty);
        if let Some(v) = scalar(value, ty) {
            if !v.is_empty() {
                args.push(format!("--{name}={v}"));
            }
        }
    }
    Ok(args)
}

/// Every leaf of the document by its dotted key; a sequence is one leaf.
fn flatten<'a>(prefix: &str, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let k = match k {
                    Value::String(s) => s.clone(),
                    other => scalar(other, None).unwrap_or_default(),
                };
                let key = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => out.push((prefix.to_string(), v)),
    }
}

/// The flag a key sets: a row whose YAML key it is, or a flag of that name.
fn flag_name(key: &str, cmd: &clap::Command) -> Option<String> {
    if let Some(f) = flags::ETCD_FLAGS.iter().find(|f| f.yaml == key) {
        return Some(f.name.to_string());
    }
    cmd.get_arguments()
        .any(|a| a.get_long() == Some(key))
        .then(|| key.to_string())
}

/// A leaf as flag text. A duration given as a number is nanoseconds (Go's JSON of a
/// time.Duration); a sequence is joined with commas.
fn scalar(v: &Value, ty: Option<flags::Ty>) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if ty == Some(flags::Ty::Dur) && n.is_u64() => Some(format!("{n}ns")),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        Value::Sequence(items) => Some(
            items
                .iter()
                .filter_map(|i| scalar(i, None))
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

//! Named fault-injection points, in the spirit of etcd's gofail: a point sits at every step
//! where a crash could matter (snapshot build and install, compaction), and a test arms
//! some of them to make the process die exactly there.
//!
//! Armed at start from `METASTORE_FAILPOINTS`, a comma-separated list of `name=action`:
//! - `abort`: the process dies on the spot, without unwinding or flushing (as `kill -9`);
//! - `error`: [`hit`] answers an error, for the caller to treat as an IO failure.
//!
//! Unarmed points cost one relaxed atomic load. This module is a leaf: it imports nothing
//! of the crate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Abort,
    Error,
}

static ANY: AtomicBool = AtomicBool::new(true);
static ARMED: OnceLock<HashMap<String, Action>> = OnceLock::new();

fn armed() -> &'static HashMap<String, Action> {
    ARMED.get_or_init(|| {
        let spec = std::env::var("METASTORE_FAILPOINTS").unwrap_or_default();
        let map: HashMap<String, Action> = spec
            .split(',')
            .filter_map(|item| {
                let (name, action) = item.trim().split_once('=')?;
                let action = match action.trim() {
                    "abort" => Action::Abort,
                    "error" => Action::Error,
                    _ => return None,
                };
                Some((name.trim().to_string(), action))
            })
            .collect();
        ANY.store(!map.is_empty(), Ordering::Relaxed);
        map
    })
}

/// Passes point `name`: dies there if it is armed with `abort`, answers an error if armed
/// with `error`, and otherwise does nothing.
pub fn hit(name: &str) -> Result<(), String> {
    if !ANY.load(Ordering::Relaxed) {
        return Ok(());
    }
    match armed().get(name) {
        Some(Action::Abort) => {
            eprintln!("failpoint {name}: abort");
            std::process::abort()
        }
        Some(Action::Error) => Err(format!("failpoint {name}")),
        None => Ok(()),
    }
}

/// Whether `name` is armed (for points whose effect is more than an error or a death).
pub fn is_armed(name: &str) -> bool {
    ANY.load(Ordering::Relaxed) && armed().contains_key(name)
}

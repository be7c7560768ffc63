//! Draining a node of a change-data-capture coordinator cluster (namespace `drain`).
//!
//! Owns the keys under `{root}/drain/` (see `docs/metadata.md`):
//! - `liveness/{node}`: the node's [`Liveness`], bound to the node's lease ([`liveness`]);
//! - `load/{node}`: the work the node last said it holds, bound to its lease ([`Load`]);
//! - `record`: the one drain of the cluster ([`DrainRecord`]), absent when none runs;
//! - `epoch`: the epoch of the last drain started, kept when the record is cleared;
//! - `leader/{election}`: the leader of an election among live nodes ([`election`]).
//!
//! A drain starts with [`start`]: the target moves to `Draining`, the epoch rises by one
//! and the record names the target, all in one `Txn`. Its remaining work is seeded from the
//! target's load record (none published means no work). The drained node itself is the
//! reporter: it sends [`report`]s of what remains, tagged with the epoch, and the report of
//! zero work clears the record. A drain whose target has no work left completes at once.
//!
//! To ensure correctness:
//! - every change is one `Txn` whose compares name the `mod_revision` of each record its
//!   decision read, so a writer that read an old state loses and reads again;
//! - the epoch key only ever rises (it is written only with a compare on its own
//!   `mod_revision` and a value one above the one read), and it is never deleted;
//! - liveness only moves forward (Alive, Draining, Stopping) and keeps the node's lease,
//!   so a dead node's liveness and load vanish with its lease;
//! - a record whose target has no liveness any more (its lease expired) no longer blocks
//!   other drains: the next [`start`] replaces it, with a compare that the target is gone.

pub mod election;
pub mod liveness;

use etcd_client::{Compare, CompareOp, KeyValue, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::{
    decode_kv, encode_json, read_keys, unchanged, Client, Error, Layout, Result, MAX_ATTEMPTS,
};
pub use liveness::Liveness;

/// Why a drain operation did not happen (an expected outcome, never a failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("invalid node id {0:?}")]
    InvalidNode(String),
    #[error("node {0} is not known (no liveness record)")]
    UnknownNode(String),
    #[error("node {0} is already registered")]
    AlreadyRegistered(String),
    #[error("liveness of node {node} cannot go back from {from:?} to {to:?}")]
    Backwards {
        node: String,
        from: Liveness,
        to: Liveness,
    },
    #[error("node {draining} is being drained")]
    Conflict { draining: String },
    #[error("node {0} is not being drained and never was")]
    NotDraining(String),
    #[error("no drain is under way")]
    NoDrain,
    #[error("report of epoch {reported}, but the drain under way has epoch {current}")]
    StaleEpoch { reported: u64, current: u64 },
    #[error("node {node} does not report this drain ({reporter} does)")]
    NotReporter { node: String, reporter: String },
    #[error("node {node} is {state:?} and may not campaign")]
    NotAlive { node: String, state: Liveness },
    #[error("{leader} leads the election")]
    LeaderExists { leader: String },
    #[error("concurrent writers kept changing {0}; try again")]
    Contended(String),
}

/// What a call came to: a value, or a refusal that changed nothing.
pub type Outcome<T> = std::result::Result<T, Refusal>;

/// Work a node holds: the table maintainers and the dispatchers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    pub maintainer_count: u64,
    pub dispatcher_count: u64,
}

impl Load {
    pub fn is_zero(&self) -> bool {
        self.maintainer_count == 0 && self.dispatcher_count == 0
    }
}

/// The drain under way (at most one per cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRecord {
    /// The node being drained.
    pub target: String,
    /// One above the previous drain's epoch.
    pub epoch: u64,
    /// The node whose reports count (the target itself).
    pub reporter: String,
    /// What remained at the last report (at the start: the target's load record).
    pub remaining: Load,
}

/// Where a node's drain stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The drain is under way.
    Draining(DrainRecord),
    /// Nothing is left: the node is Draining or Stopping and no drain names it.
    Drained,
}

impl Status {
    /// What remains to move off the node.
    pub fn remaining(&self) -> Load {
        match self {
            Status::Draining(r) => r.remaining,
            Status::Drained => Load::default(),
        }
    }
}

/// A report of the work that remains on the drained node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub node: String,
    pub epoch: u64,
    pub remaining: Load,
}

/// The keys of the namespace.
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(layout: &Layout) -> Self {
        Keys {
            prefix: layout.namespace("drain"),
        }
    }
    pub(crate) fn liveness(&self, node: &str) -> String {
        format!("{}liveness/{node}", self.prefix)
    }
    pub(crate) fn load(&self, node: &str) -> String {
        format!("{}load/{node}", self.prefix)
    }
    pub(crate) fn record(&self) -> String {
        format!("{}record", self.prefix)
    }
    pub(crate) fn epoch(&self) -> String {
        format!("{}epoch", self.prefix)
    }
    pub(crate) fn leader(&self, election: &str) -> String {
        format!("{}leader/{election}", self.prefix)
    }
}

/// A node id is a non-empty path segment of printable ASCII without `/`.
pub fn valid_node_id(node: &str) -> bool {
    !node.is_empty() && node.len() <= 128 && node.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

/// Publish the work `node` holds, bound to its `lease` (the seed of a drain's remaining work).
pub async fn publish_load(
    client: &mut Client,
    layout: &Layout,
    node: &str,
    lease: i64,
    load: Load,
) -> Result<Outcome<()>> {
    if !valid_node_id(node) {
        return Ok(Err(Refusal::InvalidNode(node.into())));
    }
    let opts = etcd_client::PutOptions::new().with_lease(lease);
    let key = Keys::new(layout).load(node);
    client.put(key, encode_json(&load), Some(opts)).await?;
    Ok(Ok(()))
}

/// The drain under way, if any.
pub async fn current(client: &mut Client, layout: &Layout) -> Result<Option<DrainRecord>> {
    let keys = Keys::new(layout);
    let got = read_keys(client, &[&keys.record()]).await?;
    decode_kv(&got[0])
}

/// The epoch of the last drain started (0 before the first).
pub async fn last_epoch(client: &mut Client, layout: &Layout) -> Result<u64> {
    let keys = Keys::new(layout);
    let got = read_keys(client, &[&keys.epoch()]).await?;
    Ok(decode_kv(&got[0])?.unwrap_or(0))
}

/// What one read of the drain's records saw.
struct Snapshot {
    record: Option<KeyValue>,
    epoch: Option<KeyValue>,
    liveness: Option<KeyValue>,
    load: Option<KeyValue>,
}

async fn snapshot(client: &mut Client, keys: &Keys, node: &str) -> Result<Snapshot> {
    let wanted = [
        keys.record(),
        keys.epoch(),
        keys.liveness(node),
        keys.load(node),
    ];
    let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let mut got = read_keys(client, &refs).await?.into_iter();
    let mut next = || got.next().flatten();
    Ok(Snapshot {
        record: next(),
        epoch: next(),
        liveness: next(),
        load: next(),
    })
}

/// Start draining `target`, or say where its drain stands when it is already drained or
/// being drained (idempotent). Refused when `target` is unknown, or another node drains.
pub async fn start(client: &mut Client, layout: &Layout, target: &str) -> Result<Outcome<Status>> {
    if !valid_node_id(target) {
        return Ok(Err(Refusal::InvalidNode(target.into())));
    }
    let keys = Keys::new(layout);
    for _ in 0..MAX_ATTEMPTS {
        let snap = snapshot(client, &keys, target).await?;
        let Some(live) = liveness::decode_kv(&snap.liveness)? else {
            return Ok(Err(Refusal::UnknownNode(target.into())));
        };
        let mut compares = Vec::new();
        if let Some(record) = decode_kv::<DrainRecord>(&snap.record)? {
            if record.target == target {
                return Ok(Ok(Status::Draining(record)));
            }
            // another node's drain blocks this one unless that node is gone
            let other = keys.liveness(&record.target);
            if read_keys(client, &[&other]).await?[0].is_some() {
                return Ok(Err(Refusal::Conflict {
                    draining: record.target,
                }));
            }
            compares.push(Compare::version(other, CompareOp::Equal, 0));
        }
        if live.state != Liveness::Alive {
            return Ok(Ok(Status::Drained));
        }
        let epoch = decode_kv::<u64>(&snap.epoch)?.unwrap_or(0) + 1;
        let record = DrainRecord {
            target: target.into(),
            epoch,
            reporter: target.into(),
            remaining: decode_kv(&snap.load)?.unwrap_or_default(),
        };
        compares.extend([
            unchanged(&keys.record(), &snap.record),
            unchanged(&keys.epoch(), &snap.epoch),
            unchanged(&keys.liveness(target), &snap.liveness),
            // the remaining work was seeded from it
            unchanged(&keys.load(target), &snap.load),
        ]);
        let lease = etcd_client::PutOptions::new().with_lease(live.lease);
        let mut ops = vec![
            TxnOp::put(keys.epoch(), encode_json(&epoch), None),
            TxnOp::put(
                keys.liveness(target),
                liveness::encode(Liveness::Draining),
                Some(lease),
            ),
        ];
        ops.push(if record.remaining.is_zero() {
            TxnOp::delete(keys.record(), None)
        } else {
            TxnOp::put(keys.record(), encode_json(&record), None)
        });
        let resp = client.txn(Txn::new().when(compares).and_then(ops)).await?;
        if resp.succeeded() {
            return Ok(Ok(if record.remaining.is_zero() {
                Status::Drained
            } else {
                Status::Draining(record)
            }));
        }
        // someone changed what we read: decide again on a fresh read
    }
    Ok(Err(Refusal::Contended(format!("the drain of {target}"))))
}

/// Where the drain of `node` stands. Refused when the node is unknown, or Alive and not
/// being drained.
pub async fn status(client: &mut Client, layout: &Layout, node: &str) -> Result<Outcome<Status>> {
    if !valid_node_id(node) {
        return Ok(Err(Refusal::InvalidNode(node.into())));
    }
    let keys = Keys::new(layout);
    let snap = snapshot(client, &keys, node).await?;
    let Some(live) = liveness::decode_kv(&snap.liveness)? else {
        return Ok(Err(Refusal::UnknownNode(node.into())));
    };
    if let Some(record) = decode_kv::<DrainRecord>(&snap.record)? {
        if record.target == node {
            return Ok(Ok(Status::Draining(record)));
        }
    }
    Ok(match live.state {
        Liveness::Alive => Err(Refusal::NotDraining(node.into())),
        Liveness::Draining | Liveness::Stopping => Ok(Status::Drained),
    })
}

/// Record what remains of the drain under way. Only the record's reporter, at the record's
/// epoch, may report; anything else is refused and changes nothing. A report of zero work
/// completes the drain and clears the record.
pub async fn report(
    client: &mut Client,
    layout: &Layout,
    report: &Report,
) -> Result<Outcome<Status>> {
    let keys = Keys::new(layout);
    for _ in 0..MAX_ATTEMPTS {
        let got = read_keys(client, &[&keys.record()]).await?;
        let Some(mut record) = decode_kv::<DrainRecord>(&got[0])? else {
            return Ok(Err(Refusal::NoDrain));
        };
        if record.epoch != report.epoch {
            return Ok(Err(Refusal::StaleEpoch {
                reported: report.epoch,
                current: record.epoch,
            }));
        }
        if record.reporter != report.node {
            return Ok(Err(Refusal::NotReporter {
                node: report.node.clone(),
                reporter: record.reporter,
            }));
        }
        record.remaining = report.remaining;
        let (op, status) = if record.remaining.is_zero() {
            (TxnOp::delete(keys.record(), None), Status::Drained)
        } else {
            let op = TxnOp::put(keys.record(), encode_json(&record), None);
            (op, Status::Draining(record))
        };
        let same = unchanged(&keys.record(), &got[0]);
        let resp = client.txn(Txn::new().when([same]).and_then([op])).await?;
        if resp.succeeded() {
            return Ok(Ok(status));
        }
    }
    Ok(Err(Refusal::Contended("the drain record".into())))
}

/// A stored record that is not what this namespace writes.
pub(crate) fn invalid(kv: &KeyValue, what: &str) -> Error {
    Error::Decode {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        reason: what.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::decode_json;

    #[test]
    fn node_ids() {
        for ok in ["a", "node-1", "127.0.0.1:8300", "9f3c_x"] {
            assert!(valid_node_id(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(!valid_node_id(bad), "{bad}");
        }
    }

    #[test]
    fn keys_sit_under_the_namespace() {
        let k = Keys::new(&Layout::new("/r"));
        assert_eq!(k.liveness("n1"), "/r/drain/liveness/n1");
        assert_eq!(k.load("n1"), "/r/drain/load/n1");
        assert_eq!(k.record(), "/r/drain/record");
        assert_eq!(k.epoch(), "/r/drain/epoch");
        assert_eq!(k.leader("owner"), "/r/drain/leader/owner");
    }

    #[test]
    fn record_encoding() {
        let r = DrainRecord {
            target: "n1".into(),
            epoch: 3,
            reporter: "n1".into(),
            remaining: Load {
                maintainer_count: 2,
                dispatcher_count: 5,
            },
        };
        let json = String::from_utf8(encode_json(&r)).unwrap();
        assert_eq!(
            json,
            r#"{"target":"n1","epoch":3,"reporter":"n1","remaining":{"maintainer_count":2,"dispatcher_count":5}}"#
        );
        let back: DrainRecord = decode_json(b"k", json.as_bytes()).unwrap();
        assert_eq!(back, r);
        assert_eq!(Status::Drained.remaining(), Load::default());
    }
}

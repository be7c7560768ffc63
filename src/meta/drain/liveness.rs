//! Per-node liveness: `{root}/drain/liveness/{node}` = `{"state":"Alive"}`, bound to the
//! node's lease so that it vanishes when the node stops keeping the lease alive.
//!
//! To ensure correctness: a state never goes back (Alive, then Draining, then Stopping);
//! each change is a `Txn` on the `mod_revision` that was read and keeps the record's lease.

use etcd_client::{Compare, CompareOp, KeyValue, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::{invalid, valid_node_id, Keys, Outcome, Refusal};
use crate::meta::{
    decode_json, encode_json, read_keys, unchanged, Client, Layout, Result, MAX_ATTEMPTS,
};

/// Where a node is in its life; the order is the only order allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Liveness {
    Alive,
    Draining,
    Stopping,
}

/// A node's liveness as stored: its state and the lease it is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLiveness {
    pub state: Liveness,
    pub lease: i64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    state: Liveness,
}

pub(crate) fn encode(state: Liveness) -> Vec<u8> {
    encode_json(&Stored { state })
}

/// Decode a read liveness key (absent: `None`). A record without a lease is not ours.
pub(crate) fn decode_kv(kv: &Option<KeyValue>) -> Result<Option<NodeLiveness>> {
    let Some(kv) = kv else { return Ok(None) };
    let stored: Stored = decode_json(kv.key(), kv.value())?;
    if kv.lease() == 0 {
        return Err(invalid(kv, "liveness without a lease"));
    }
    Ok(Some(NodeLiveness {
        state: stored.state,
        lease: kv.lease(),
    }))
}

/// Whether liveness may move from `from` to `to` (staying put is allowed).
pub fn may_move(from: Liveness, to: Liveness) -> bool {
    to >= from
}

/// Register `node` as Alive, bound to `lease` (which the node keeps alive). Refused when
/// the node already has a liveness record.
pub async fn register(
    client: &mut Client,
    layout: &Layout,
    node: &str,
    lease: i64,
) -> Result<Outcome<()>> {
    if !valid_node_id(node) {
        return Ok(Err(Refusal::InvalidNode(node.into())));
    }
    let key = Keys::new(layout).liveness(node);
    let absent = Compare::create_revision(key.as_str(), CompareOp::Equal, 0);
    let put = TxnOp::put(
        key.as_str(),
        encode(Liveness::Alive),
        Some(PutOptions::new().with_lease(lease)),
    );
    let resp = client
        .txn(Txn::new().when([absent]).and_then([put]))
        .await?;
    Ok(if resp.succeeded() {
        Ok(())
    } else {
        Err(Refusal::AlreadyRegistered(node.into()))
    })
}

/// The liveness of `node`, if it has any.
pub async fn get(client: &mut Client, layout: &Layout, node: &str) -> Result<Option<NodeLiveness>> {
    let key = Keys::new(layout).liveness(node);
    decode_kv(&read_keys(client, &[&key]).await?[0])
}

/// Move `node` to `to` (idempotent when it is there already). Refused when the node is
/// unknown or `to` lies behind its state.
pub async fn advance(
    client: &mut Client,
    layout: &Layout,
    node: &str,
    to: Liveness,
) -> Result<Outcome<NodeLiveness>> {
    if !valid_node_id(node) {
        return Ok(Err(Refusal::InvalidNode(node.into())));
    }
    let key = Keys::new(layout).liveness(node);
    for _ in 0..MAX_ATTEMPTS {
        let got = read_keys(client, &[&key]).await?;
        let Some(now) = decode_kv(&got[0])? else {
            return Ok(Err(Refusal::UnknownNode(node.into())));
        };
        if !may_move(now.state, to) {
            return Ok(Err(Refusal::Backwards {
                node: node.into(),
                from: now.state,
                to,
            }));
        }
        if now.state == to {
            return Ok(Ok(now));
        }
        let same = unchanged(&key, &got[0]);
        let put = TxnOp::put(
            key.as_str(),
            encode(to),
            Some(PutOptions::new().with_lease(now.lease)),
        );
        let resp = client.txn(Txn::new().when([same]).and_then([put])).await?;
        if resp.succeeded() {
            return Ok(Ok(NodeLiveness {
                state: to,
                lease: now.lease,
            }));
        }
    }
    Ok(Err(Refusal::Contended(format!("the liveness of {node}"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Liveness::*;

    #[test]
    fn liveness_only_moves_forward() {
        let table = [
            (Alive, Alive, true),
            (Alive, Draining, true),
            (Alive, Stopping, true),
            (Draining, Alive, false),
            (Draining, Draining, true),
            (Draining, Stopping, true),
            (Stopping, Alive, false),
            (Stopping, Draining, false),
            (Stopping, Stopping, true),
        ];
        for (from, to, ok) in table {
            assert_eq!(may_move(from, to), ok, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn liveness_encoding() {
        assert_eq!(encode(Draining), br#"{"state":"Draining"}"#.to_vec());
        let back: Stored = decode_json(b"k", br#"{"state":"Stopping"}"#).unwrap();
        assert_eq!(back.state, Stopping);
        assert!(decode_json::<Stored>(b"k", br#"{"state":"Gone"}"#).is_err());
    }
}

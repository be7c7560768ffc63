//! Leader election among live nodes: `{root}/drain/leader/{election}` = `{"node":"n1"}`,
//! bound to the leader's lease (the lease of its liveness record).
//!
//! To ensure correctness: a campaign is one `Txn` that creates the leader key only if it
//! does not exist (`create_revision == 0`) and only if the node's liveness is still the
//! Alive record that was read, so a Draining or Stopping node never becomes leader. A
//! leadership is named by the leader key's `create_revision`: resigning deletes the key
//! only while it is that same leadership.

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, WatchOptions};
use serde::{Deserialize, Serialize};

use super::{liveness, valid_node_id, Keys, Liveness, Outcome, Refusal};
use crate::meta::{
    decode_json, encode_json, read_keys, unchanged, Client, Layout, Result, MAX_ATTEMPTS,
};

/// Who leads an election, and since which revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub election: String,
    pub node: String,
    pub lease: i64,
    /// The leader key's `create_revision`: names this leadership.
    pub revision: i64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    node: String,
}

/// Try once to become the leader of `election` as `node`, with the node's liveness lease.
/// Campaigning again while leading is idempotent. Refused when the node is unknown, not
/// Alive, or another node leads (wait with [`observe`], then campaign again).
pub async fn campaign(
    client: &mut Client,
    layout: &Layout,
    election: &str,
    node: &str,
) -> Result<Outcome<Leader>> {
    if !valid_node_id(node) || !valid_node_id(election) {
        return Ok(Err(Refusal::InvalidNode(format!("{election}/{node}"))));
    }
    let keys = Keys::new(layout);
    let (live_key, leader_key) = (keys.liveness(node), keys.leader(election));
    for _ in 0..MAX_ATTEMPTS {
        let got = read_keys(client, &[&live_key, &leader_key]).await?;
        let Some(live) = liveness::decode_kv(&got[0])? else {
            return Ok(Err(Refusal::UnknownNode(node.into())));
        };
        if live.state != Liveness::Alive {
            return Ok(Err(Refusal::NotAlive {
                node: node.into(),
                state: live.state,
            }));
        }
        if let Some(leader) = decode(election, &got[1])? {
            if leader.node == node && leader.lease == live.lease {
                return Ok(Ok(leader));
            }
            return Ok(Err(Refusal::LeaderExists {
                leader: leader.node,
            }));
        }
        let compares = [
            unchanged(&live_key, &got[0]),
            Compare::create_revision(leader_key.as_str(), CompareOp::Equal, 0),
        ];
        let value = encode_json(&Stored { node: node.into() });
        let put = TxnOp::put(
            leader_key.as_str(),
            value,
            Some(PutOptions::new().with_lease(live.lease)),
        );
        let resp = client
            .txn(Txn::new().when(compares).and_then([put]))
            .await?;
        if resp.succeeded() {
            let header = resp.header().ok_or_else(|| {
                crate::meta::Error::Invalid("txn response without a header".into())
            })?;
            return Ok(Ok(Leader {
                election: election.into(),
                node: node.into(),
                lease: live.lease,
                revision: header.revision(),
            }));
        }
    }
    Ok(Err(Refusal::Contended(format!("the election {election}"))))
}

/// Give up `leadership`; false when it had already ended (resigned or its lease expired).
pub async fn resign(client: &mut Client, layout: &Layout, leadership: &Leader) -> Result<bool> {
    let key = Keys::new(layout).leader(&leadership.election);
    let same = Compare::create_revision(key.as_str(), CompareOp::Equal, leadership.revision);
    let delete = TxnOp::delete(key.as_str(), None);
    let resp = client
        .txn(Txn::new().when([same]).and_then([delete]))
        .await?;
    Ok(resp.succeeded())
}

/// Who leads `election` now, if anyone.
pub async fn leader(
    client: &mut Client,
    layout: &Layout,
    election: &str,
) -> Result<Option<Leader>> {
    let key = Keys::new(layout).leader(election);
    decode(election, &read_keys(client, &[&key]).await?[0])
}

/// Wait until the leader of `election` is no longer `seen` (which may be none), and return
/// the one that leads then: read, and if nothing changed, watch from the revision after.
pub async fn observe(
    client: &mut Client,
    layout: &Layout,
    election: &str,
    seen: Option<&Leader>,
) -> Result<Option<Leader>> {
    let key = Keys::new(layout).leader(election);
    loop {
        let got = client.get(key.as_str(), None).await?;
        let now = decode(election, &got.kvs().first().cloned())?;
        if now.as_ref() != seen {
            return Ok(now);
        }
        let revision = got.header().map_or(0, |h| h.revision());
        let from = WatchOptions::new().with_start_revision(revision + 1);
        let mut stream = client.watch(key.as_str(), Some(from)).await?;
        // an event, a cancel (the revision was compacted) or the stream's end: read again
        while let Some(resp) = stream.message().await? {
            if resp.canceled() || !resp.events().is_empty() {
                break;
            }
        }
    }
}

fn decode(election: &str, kv: &Option<etcd_client::KeyValue>) -> Result<Option<Leader>> {
    let Some(kv) = kv else { return Ok(None) };
    let stored: Stored = decode_json(kv.key(), kv.value())?;
    Ok(Some(Leader {
        election: election.into(),
        node: stored.node,
        lease: kv.lease(),
        revision: kv.create_revision(),
    }))
}

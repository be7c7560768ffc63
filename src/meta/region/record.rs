//! The records of the region namespace, as stored (JSON), and the refusals of its writes.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::keys::{hex, hex_bytes};
use crate::meta::MAX_ATTEMPTS;

/// The inner result of every call: an expected refusal is a value.
pub type Outcome<T> = std::result::Result<T, Refusal>;

/// A region's version: `conf_ver` counts peer changes, `version` counts splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    pub conf_ver: u64,
    pub version: u64,
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conf_ver {} version {}", self.conf_ver, self.version)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRole {
    Voter,
    Learner,
}

/// One replica of a region. Peer ids and store ids are unique within a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub id: u64,
    pub store_id: u64,
    pub role: PeerRole,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub id: u64,
    /// Inclusive; empty = minus infinity. Stored as lowercase hex.
    #[serde(with = "hex_bytes")]
    pub start: Vec<u8>,
    /// Exclusive; empty = plus infinity. Stored as lowercase hex.
    #[serde(with = "hex_bytes")]
    pub end: Vec<u8>,
    pub epoch: Epoch,
    pub peers: Vec<Peer>,
}

impl Region {
    /// Whether `key` is in `[start, end)`.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && (self.end.is_empty() || key < self.end.as_slice())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreState {
    Up,
    Offline,
    /// Removed for good: a tombstone store never comes back.
    Tombstone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    pub id: u64,
    pub address: String,
    pub state: StoreState,
}

/// What heartbeats report; kept apart from the region record, never part of its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionStats {
    pub leader_peer_id: u64,
    pub approximate_size: u64,
}

/// All regions as of one revision, in key order.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub revision: i64,
    pub regions: Vec<Region>,
}

/// Expected refusals: nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the regions are already bootstrapped")]
    AlreadyBootstrapped,
    #[error("the regions are not bootstrapped")]
    NotBootstrapped,
    #[error("region {region_id} not found")]
    RegionNotFound { region_id: u64 },
    #[error("region {region_id} already exists")]
    RegionExists { region_id: u64 },
    #[error("region {region_id}: stale epoch ({expected}), current is {current}")]
    StaleEpoch {
        region_id: u64,
        expected: Epoch,
        current: Epoch,
    },
    #[error(
        "region {region_id}: split key {} is not strictly inside the region",
        hex(split_key)
    )]
    SplitKeyNotInside { region_id: u64, split_key: Vec<u8> },
    #[error("region {region_id}: invalid peers: {reason}")]
    InvalidPeers { region_id: u64, reason: String },
    #[error("region {region_id} has no peer {peer_id}")]
    PeerNotFound { region_id: u64, peer_id: u64 },
    #[error("region {region_id}: peer {peer_id} is its last voter")]
    LastVoter { region_id: u64, peer_id: u64 },
    #[error("store {store_id} not found")]
    StoreNotFound { store_id: u64 },
    #[error("store {store_id} is {state:?}, not Up")]
    StoreNotUp { store_id: u64, state: StoreState },
    #[error("store {store_id} is a tombstone")]
    StoreTombstone { store_id: u64 },
    #[error("region {region_id}: gave up after {MAX_ATTEMPTS} conflicting attempts")]
    Conflict { region_id: u64 },
    #[error("store {store_id}: gave up after {MAX_ATTEMPTS} conflicting attempts")]
    StoreConflict { store_id: u64 },
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::region;
    use super::*;

    #[test]
    fn region_record_is_hex_json() {
        let r = region(7, b"a", b"\xff");
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""start":"61","end":"ff""#), "{json}");
        assert_eq!(serde_json::from_str::<Region>(&json).unwrap(), r);
    }
}

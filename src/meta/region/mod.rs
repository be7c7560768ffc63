//! Regions, stores and the key-to-region index (placement-driver style).
//!
//! A region owns the keys `[start, end)` (an empty `start` is minus infinity, an empty `end`
//! plus infinity), has an [`Epoch`] and a set of [`Peer`]s on stores. Once bootstrapped, the
//! regions tile the whole key space: no gap, no overlap. A split cuts one region in two; a
//! peer change adds or removes one peer. Regions are never merged, so a region's end key
//! never changes once written.
//!
//! Keys, under `{root}/region/` (`ns` below); ids are zero-padded decimal (20 digits):
//! - `ns index/{end}` -> the full [`Region`] as JSON, where `{end}` is the region's end key
//!   in lowercase hex (byte order = string order) and plus infinity is `~`, which sorts after
//!   every hex string. `locate(key)` is one range read: the first index key after
//!   `hex(key) + "\0"`, `limit 1`.
//! - `ns id/{region_id}` -> the `{end}` suffix of the region's index key (never rewritten).
//! - `ns stats/{region_id}` -> [`RegionStats`] as JSON (leader, approximate size).
//! - `ns store/{store_id}` -> [`Store`] as JSON.
//!
//! Imports only the `meta` layer and etcd-client; never the server, raft, MVCC or storage.
//!
//! To ensure correctness:
//! - every change of a region (split, peer change) is ONE etcd transaction that compares
//!   the `mod_revision` of the region's index key with the one read, after the epoch read
//!   was checked against the caller's; a lost compare re-reads, then retries when the
//!   caller's epoch still matches and refuses with [`Refusal::StaleEpoch`] otherwise. A
//!   split therefore writes both halves or nothing, and the tiling holds at every revision;
//! - a split bumps `version` on both halves; a peer change bumps `conf_ver`;
//! - heartbeats write only `stats/` keys, so they never change an epoch nor make a
//!   region change's compare fail.
//!
//! Files: `record.rs` (the records and refusals), `keys.rs` (key encoding), `tiling.rs`
//! (the invariant), `plan.rs` (pure split and peer-change planning), `regions.rs`
//! ([`Regions`]) and `store.rs` (stores).

mod keys;
mod plan;
mod record;
mod regions;
mod store;
mod tiling;

pub use keys::{decode_end, encode_end, hex, unhex};
pub use record::{
    Epoch, Outcome, Peer, PeerRole, Refusal, Region, RegionStats, Snapshot, Store, StoreState,
};
pub use regions::Regions;
pub use tiling::{check_tiling, TilingError};

#[cfg(test)]
mod fixtures {
    use super::{Epoch, Peer, PeerRole, Region};

    pub(super) fn region(id: u64, start: &[u8], end: &[u8]) -> Region {
        Region {
            id,
            start: start.to_vec(),
            end: end.to_vec(),
            epoch: Epoch {
                conf_ver: 1,
                version: 1,
            },
            peers: vec![voter(1, 1)],
        }
    }

    pub(super) fn voter(id: u64, store_id: u64) -> Peer {
        Peer {
            id,
            store_id,
            role: PeerRole::Voter,
        }
    }
}

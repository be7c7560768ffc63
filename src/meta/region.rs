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

use std::collections::HashSet;
use std::fmt;

use etcd_client::{Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};

use super::{
    commit, decode_json, encode_json, prefix_end, unchanged_since, Client, Error, Layout, Result,
    MAX_ATTEMPTS,
};

/// The index suffix of plus infinity: `~` sorts after every lowercase hex string.
const INFINITY: &str = "~";

/// The inner result of every call: an expected refusal is a value.
pub type Outcome<T> = std::result::Result<T, Refusal>;

/// Return the refusal of an [`Outcome`] as `Ok(Err(refusal))`, or unwrap its value.
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

/// Why a list of regions does not tile the key space.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TilingError {
    #[error("no regions")]
    Empty,
    #[error("region {region_id} is first but starts at {}", hex(start))]
    FirstStart { region_id: u64, start: Vec<u8> },
    #[error("region {region_id} is empty or inverted")]
    EmptyRange { region_id: u64 },
    #[error(
        "region {left} ends at {} but region {right} starts at {}",
        hex(end),
        hex(start)
    )]
    Seam {
        left: u64,
        right: u64,
        end: Vec<u8>,
        start: Vec<u8>,
    },
    #[error("region {region_id} is last but does not end at infinity")]
    LastEnd { region_id: u64 },
}

/// Check that `regions`, in key order, tile the whole key space with no gap or overlap.
pub fn check_tiling(regions: &[Region]) -> std::result::Result<(), TilingError> {
    let first = regions.first().ok_or(TilingError::Empty)?;
    if !first.start.is_empty() {
        return Err(TilingError::FirstStart {
            region_id: first.id,
            start: first.start.clone(),
        });
    }
    for r in regions {
        if !r.end.is_empty() && r.start >= r.end {
            return Err(TilingError::EmptyRange { region_id: r.id });
        }
    }
    for pair in regions.windows(2) {
        let (left, right) = (&pair[0], &pair[1]);
        // an infinite end before the last region is a seam with the next start
        if left.end.is_empty() || left.end != right.start {
            return Err(TilingError::Seam {
                left: left.id,
                right: right.id,
                end: left.end.clone(),
                start: right.start.clone(),
            });
        }
    }
    let last = regions.last().expect("regions is not empty");
    if !last.end.is_empty() {
        return Err(TilingError::LastEnd { region_id: last.id });
    }
    Ok(())
}

/// Lowercase hex: two digits per byte, so string order is byte order.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The inverse of [`hex`]; `None` unless `s` is lowercase hex of even length.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The index suffix of an end key: its hex, or `~` for plus infinity (empty).
pub fn encode_end(end: &[u8]) -> String {
    if end.is_empty() {
        INFINITY.to_string()
    } else {
        hex(end)
    }
}

/// The inverse of [`encode_end`].
pub fn decode_end(suffix: &str) -> Option<Vec<u8>> {
    match suffix {
        INFINITY => Some(Vec::new()),
        "" => None,
        hexed => unhex(hexed),
    }
}

mod hex_bytes {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::unhex(&s).ok_or_else(|| D::Error::custom("not lowercase hex"))
    }
}

/// The keys of the namespace.
#[derive(Debug, Clone)]
struct Keys {
    ns: String,
}

impl Keys {
    fn index_prefix(&self) -> String {
        format!("{}index/", self.ns)
    }

    fn index(&self, end: &[u8]) -> String {
        format!("{}index/{}", self.ns, encode_end(end))
    }

    /// The first index key whose region ends strictly after `key`.
    fn index_after(&self, key: &[u8]) -> String {
        format!("{}index/{}\0", self.ns, hex(key))
    }

    fn index_end(&self) -> Vec<u8> {
        prefix_end(self.index_prefix().as_bytes())
    }

    fn id(&self, region_id: u64) -> String {
        format!("{}id/{region_id:020}", self.ns)
    }

    fn stats(&self, region_id: u64) -> String {
        format!("{}stats/{region_id:020}", self.ns)
    }

    fn store_prefix(&self) -> String {
        format!("{}store/", self.ns)
    }

    fn store(&self, store_id: u64) -> String {
        format!("{}store/{store_id:020}", self.ns)
    }
}

/// The region namespace over one client.
#[derive(Clone)]
pub struct Regions {
    kv: Client,
    keys: Keys,
}

impl Regions {
    pub fn new(client: &Client, layout: &Layout) -> Self {
        Regions {
            kv: client.clone(),
            keys: Keys {
                ns: layout.namespace("region"),
            },
        }
    }

    /// Create or replace a store; a tombstone store cannot change state again.
    pub async fn put_store(&self, store: Store) -> Result<Outcome<()>> {
        let key = self.keys.store(store.id);
        for _ in 0..MAX_ATTEMPTS {
            let read = self.get_json::<Store>(&key).await?;
            if let Some((current, _)) = &read {
                if current.state == StoreState::Tombstone && store.state != StoreState::Tombstone {
                    return Ok(Err(Refusal::StoreTombstone { store_id: store.id }));
                }
            }
            let rev = read.map_or(0, |(_, rev)| rev);
            if self
                .commit(
                    vec![unchanged_since(&key, rev)],
                    vec![put_json(&key, &store)],
                )
                .await?
            {
                return Ok(Ok(()));
            }
        }
        Ok(Err(Refusal::StoreConflict { store_id: store.id }))
    }

    pub async fn get_store(&self, store_id: u64) -> Result<Option<Store>> {
        Ok(self
            .get_json(&self.keys.store(store_id))
            .await?
            .map(|(s, _)| s))
    }

    /// Every store, by id.
    pub async fn list_stores(&self) -> Result<Vec<Store>> {
        let prefix = self.keys.store_prefix();
        let options = GetOptions::new().with_prefix();
        let resp = self.kv.clone().get(prefix, Some(options)).await?;
        resp.kvs()
            .iter()
            .map(|kv| decode_json(kv.key(), kv.value()))
            .collect()
    }

    /// Create the first region, covering every key, with epoch `{1, 1}`. Its peers must be
    /// valid and on stores that are Up.
    pub async fn bootstrap(&self, region_id: u64, peers: Vec<Peer>) -> Result<Outcome<Region>> {
        accept!(validate_peers(region_id, &peers));
        let region = Region {
            id: region_id,
            start: Vec::new(),
            end: Vec::new(),
            epoch: Epoch {
                conf_ver: 1,
                version: 1,
            },
            peers,
        };
        let index = self.keys.index(&region.end);
        for _ in 0..MAX_ATTEMPTS {
            let mut guards = vec![Compare::version(index.as_str(), CompareOp::Equal, 0)];
            for peer in &region.peers {
                guards.push(accept!(self.store_up(peer.store_id).await?));
            }
            let puts = vec![put_json(&index, &region), self.put_id(&region)];
            if self.commit(guards, puts).await? {
                return Ok(Ok(region));
            }
            if self.kv.clone().get(index.as_str(), None).await?.count() > 0 {
                return Ok(Err(Refusal::AlreadyBootstrapped));
            }
        }
        Ok(Err(Refusal::Conflict { region_id }))
    }

    /// The region with this id.
    pub async fn get(&self, region_id: u64) -> Result<Option<Region>> {
        Ok(self.read(region_id).await?.map(|(r, _)| r))
    }

    /// The region containing `key`: one range read, the first index entry ending after it.
    pub async fn locate(&self, key: &[u8]) -> Result<Outcome<Region>> {
        let options = GetOptions::new()
            .with_range(self.keys.index_end())
            .with_limit(1);
        let resp = self
            .kv
            .clone()
            .get(self.keys.index_after(key), Some(options))
            .await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(Err(Refusal::NotBootstrapped));
        };
        let region = self.decode_region(kv)?;
        if !region.contains(key) {
            return Err(Error::Invalid(format!(
                "the regions do not tile: region {} does not contain {}",
                region.id,
                hex(key)
            )));
        }
        Ok(Ok(region))
    }

    /// The regions overlapping `[start, end)` (empty `end` = plus infinity), in key order,
    /// read at one revision.
    pub async fn list(&self, start: &[u8], end: &[u8]) -> Result<Vec<Region>> {
        if !end.is_empty() && start >= end {
            return Ok(Vec::new());
        }
        let from = self.keys.index_after(start);
        let kvs = if end.is_empty() {
            let options = GetOptions::new().with_range(self.keys.index_end());
            self.kv
                .clone()
                .get(from, Some(options))
                .await?
                .kvs()
                .to_vec()
        } else {
            self.list_bounded(from, end).await?
        };
        let mut regions = Vec::with_capacity(kvs.len());
        for kv in &kvs {
            let region = self.decode_region(kv)?;
            if end.is_empty() || region.start.as_slice() < end {
                regions.push(region);
            }
        }
        Ok(regions)
    }

    /// The index entries ending in `(start, end]` and the first one ending after `end`, in
    /// one transaction (so at one revision).
    async fn list_bounded(&self, from: String, end: &[u8]) -> Result<Vec<KeyValue>> {
        let upto = self.keys.index_after(end);
        let inside = GetOptions::new().with_range(upto.as_str());
        let next = GetOptions::new()
            .with_range(self.keys.index_end())
            .with_limit(1);
        let txn = Txn::new().and_then(vec![
            TxnOp::get(from, Some(inside)),
            TxnOp::get(upto, Some(next)),
        ]);
        let resp = self.kv.clone().txn(txn).await?;
        let mut kvs = Vec::new();
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                kvs.extend_from_slice(get.kvs());
            }
        }
        Ok(kvs)
    }

    /// Every region as of `revision` (0 = now) in one range read of the index.
    pub async fn scan(&self, revision: i64) -> Result<Snapshot> {
        let options = GetOptions::new()
            .with_range(self.keys.index_end())
            .with_revision(revision);
        let resp = self
            .kv
            .clone()
            .get(self.keys.index_prefix(), Some(options))
            .await?;
        let regions = resp
            .kvs()
            .iter()
            .map(|kv| self.decode_region(kv))
            .collect::<Result<Vec<_>>>()?;
        let revision = if revision > 0 {
            revision
        } else {
            resp.header().map_or(0, |h| h.revision())
        };
        Ok(Snapshot { revision, regions })
    }

    /// Split `region_id` at `split_key`: the new region `new_region_id` takes
    /// `[start, split_key)` and the parent keeps `[split_key, end)` (so its index key, its
    /// end, stays put). Both get `version + 1`. Returns `(new left, parent right)`.
    pub async fn split(
        &self,
        region_id: u64,
        split_key: &[u8],
        new_region_id: u64,
        expected: Epoch,
    ) -> Result<Outcome<(Region, Region)>> {
        let new_id_key = self.keys.id(new_region_id);
        for _ in 0..MAX_ATTEMPTS {
            let (parent, rev) = accept!(self.read_checked(region_id, expected).await?);
            let (left, right) = accept!(plan_split(&parent, split_key, new_region_id));
            let guards = vec![
                unchanged_since(&self.keys.index(&parent.end), rev),
                Compare::version(new_id_key.as_str(), CompareOp::Equal, 0),
            ];
            let puts = vec![
                put_json(&self.keys.index(&left.end), &left),
                put_json(&self.keys.index(&right.end), &right),
                self.put_id(&left),
            ];
            if self.commit(guards, puts).await? {
                return Ok(Ok((left, right)));
            }
            if self
                .kv
                .clone()
                .get(new_id_key.as_str(), None)
                .await?
                .count()
                > 0
            {
                return Ok(Err(Refusal::RegionExists {
                    region_id: new_region_id,
                }));
            }
        }
        Ok(Err(Refusal::Conflict { region_id }))
    }

    /// Add `peer` (on a store that is Up); `conf_ver + 1`.
    pub async fn add_peer(
        &self,
        region_id: u64,
        peer: Peer,
        expected: Epoch,
    ) -> Result<Outcome<Region>> {
        for _ in 0..MAX_ATTEMPTS {
            let (region, rev) = accept!(self.read_checked(region_id, expected).await?);
            let store_guard = accept!(self.store_up(peer.store_id).await?);
            let changed = accept!(plan_add_peer(&region, peer));
            if self.commit_change(&changed, rev, vec![store_guard]).await? {
                return Ok(Ok(changed));
            }
        }
        Ok(Err(Refusal::Conflict { region_id }))
    }

    /// Remove peer `peer_id` (never the last voter); `conf_ver + 1`.
    pub async fn remove_peer(
        &self,
        region_id: u64,
        peer_id: u64,
        expected: Epoch,
    ) -> Result<Outcome<Region>> {
        for _ in 0..MAX_ATTEMPTS {
            let (region, rev) = accept!(self.read_checked(region_id, expected).await?);
            let changed = accept!(plan_remove_peer(&region, peer_id));
            if self.commit_change(&changed, rev, Vec::new()).await? {
                return Ok(Ok(changed));
            }
        }
        Ok(Err(Refusal::Conflict { region_id }))
    }

    /// Record the leader and size a region reports. Writes only the region's `stats/` key:
    /// the epoch never changes and no region change's compare is disturbed.
    pub async fn heartbeat(
        &self,
        region_id: u64,
        leader_peer_id: u64,
        approximate_size: u64,
    ) -> Result<Outcome<()>> {
        let stats = RegionStats {
            leader_peer_id,
            approximate_size,
        };
        let guards = vec![Compare::version(
            self.keys.id(region_id),
            CompareOp::Greater,
            0,
        )];
        let puts = vec![put_json(&self.keys.stats(region_id), &stats)];
        if self.commit(guards, puts).await? {
            Ok(Ok(()))
        } else {
            Ok(Err(Refusal::RegionNotFound { region_id }))
        }
    }

    /// The last heartbeat of a region.
    pub async fn stats(&self, region_id: u64) -> Result<Option<RegionStats>> {
        Ok(self
            .get_json(&self.keys.stats(region_id))
            .await?
            .map(|(s, _)| s))
    }

    /// The region and the `mod_revision` of its index key. The id key is never rewritten
    /// (regions do not merge), so two reads are safe.
    async fn read(&self, region_id: u64) -> Result<Option<(Region, i64)>> {
        let id_key = self.keys.id(region_id);
        let resp = self.kv.clone().get(id_key.as_str(), None).await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(None);
        };
        let suffix = std::str::from_utf8(kv.value()).ok();
        let Some(end) = suffix.and_then(decode_end) else {
            return Err(Error::Decode {
                key: id_key,
                reason: "not an index suffix".into(),
            });
        };
        let resp = self.kv.clone().get(self.keys.index(&end), None).await?;
        let Some(kv) = resp.kvs().first() else {
            return Err(Error::Invalid(format!(
                "region {region_id} has an id but no index entry"
            )));
        };
        let region = self.decode_region(kv)?;
        if region.id != region_id {
            return Err(Error::Invalid(format!(
                "the index entry of region {region_id} holds region {}",
                region.id
            )));
        }
        Ok(Some((region, kv.mod_revision())))
    }

    /// [`read`](Self::read), refused unless the region exists with the expected epoch.
    async fn read_checked(
        &self,
        region_id: u64,
        expected: Epoch,
    ) -> Result<Outcome<(Region, i64)>> {
        let Some((region, rev)) = self.read(region_id).await? else {
            return Ok(Err(Refusal::RegionNotFound { region_id }));
        };
        if region.epoch != expected {
            return Ok(Err(Refusal::StaleEpoch {
                region_id,
                expected,
                current: region.epoch,
            }));
        }
        Ok(Ok((region, rev)))
    }

    /// A compare that holds while store `store_id` stays as read, refused unless it is Up.
    async fn store_up(&self, store_id: u64) -> Result<Outcome<Compare>> {
        let key = self.keys.store(store_id);
        let Some((store, rev)) = self.get_json::<Store>(&key).await? else {
            return Ok(Err(Refusal::StoreNotFound { store_id }));
        };
        if store.state != StoreState::Up {
            return Ok(Err(Refusal::StoreNotUp {
                store_id,
                state: store.state,
            }));
        }
        Ok(Ok(unchanged_since(&key, rev)))
    }

    /// Write `changed` over the record read at `rev`, if neither it nor `guards` moved.
    async fn commit_change(
        &self,
        changed: &Region,
        rev: i64,
        mut guards: Vec<Compare>,
    ) -> Result<bool> {
        let index = self.keys.index(&changed.end);
        guards.push(unchanged_since(&index, rev));
        self.commit(guards, vec![put_json(&index, changed)]).await
    }

    async fn commit(&self, guards: Vec<Compare>, puts: Vec<TxnOp>) -> Result<bool> {
        commit(&self.kv, guards, puts).await
    }

    fn put_id(&self, region: &Region) -> TxnOp {
        TxnOp::put(self.keys.id(region.id), encode_end(&region.end), None)
    }

    /// A JSON record and its `mod_revision`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, i64)>> {
        let resp = self.kv.clone().get(key, None).await?;
        match resp.kvs().first() {
            Some(kv) => Ok(Some((
                decode_json(kv.key(), kv.value())?,
                kv.mod_revision(),
            ))),
            None => Ok(None),
        }
    }

    /// Decode an index entry, checking that the region's end is the one its key names.
    fn decode_region(&self, kv: &KeyValue) -> Result<Region> {
        let region: Region = decode_json(kv.key(), kv.value())?;
        if kv.key() != self.keys.index(&region.end).as_bytes() {
            return Err(Error::Decode {
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                reason: format!("region {} ends at {}", region.id, encode_end(&region.end)),
            });
        }
        Ok(region)
    }
}

fn put_json<T: Serialize>(key: &str, value: &T) -> TxnOp {
    TxnOp::put(key, encode_json(value), None)
}

/// Peers are valid when ids and stores are unique and there is at least one voter.
fn validate_peers(region_id: u64, peers: &[Peer]) -> Outcome<()> {
    let invalid = |reason: &str| {
        Err(Refusal::InvalidPeers {
            region_id,
            reason: reason.to_string(),
        })
    };
    let ids: HashSet<u64> = peers.iter().map(|p| p.id).collect();
    let stores: HashSet<u64> = peers.iter().map(|p| p.store_id).collect();
    if ids.len() != peers.len() {
        return invalid("duplicate peer id");
    }
    if stores.len() != peers.len() {
        return invalid("two peers on one store");
    }
    if !peers.iter().any(|p| p.role == PeerRole::Voter) {
        return invalid("no voter");
    }
    Ok(())
}

/// The two halves of a split, or why the key does not split the region.
fn plan_split(parent: &Region, split_key: &[u8], new_region_id: u64) -> Outcome<(Region, Region)> {
    if split_key <= parent.start.as_slice() || !parent.contains(split_key) {
        return Err(Refusal::SplitKeyNotInside {
            region_id: parent.id,
            split_key: split_key.to_vec(),
        });
    }
    if new_region_id == parent.id {
        return Err(Refusal::RegionExists {
            region_id: new_region_id,
        });
    }
    let epoch = Epoch {
        conf_ver: parent.epoch.conf_ver,
        version: parent.epoch.version + 1,
    };
    let left = Region {
        id: new_region_id,
        start: parent.start.clone(),
        end: split_key.to_vec(),
        epoch,
        peers: parent.peers.clone(),
    };
    let right = Region {
        id: parent.id,
        start: split_key.to_vec(),
        end: parent.end.clone(),
        epoch,
        peers: parent.peers.clone(),
    };
    Ok((left, right))
}

fn plan_add_peer(region: &Region, peer: Peer) -> Outcome<Region> {
    let mut changed = region.clone();
    changed.peers.push(peer);
    changed.epoch.conf_ver += 1;
    validate_peers(region.id, &changed.peers)?;
    Ok(changed)
}

fn plan_remove_peer(region: &Region, peer_id: u64) -> Outcome<Region> {
    let mut changed = region.clone();
    let before = changed.peers.len();
    changed.peers.retain(|p| p.id != peer_id);
    if changed.peers.len() == before {
        return Err(Refusal::PeerNotFound {
            region_id: region.id,
            peer_id,
        });
    }
    if !changed.peers.iter().any(|p| p.role == PeerRole::Voter) {
        return Err(Refusal::LastVoter {
            region_id: region.id,
            peer_id,
        });
    }
    changed.epoch.conf_ver += 1;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &[u8], end: &[u8]) -> Region {
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

    fn voter(id: u64, store_id: u64) -> Peer {
        Peer {
            id,
            store_id,
            role: PeerRole::Voter,
        }
    }

    #[test]
    fn hex_round_trips_and_keeps_byte_order() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\x00",
            b"\x00\x00",
            b"\x00\xff",
            b"\x01",
            b"a",
            b"ab",
            b"\xff",
            b"\xff\x00",
        ];
        for k in &keys {
            assert_eq!(unhex(&hex(k)).as_deref(), Some(*k));
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(a.cmp(b), hex(a).cmp(&hex(b)), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(hex(b"\x0a\xff"), "0aff");
        assert_eq!(unhex("0A"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn infinity_sorts_after_every_finite_end() {
        for end in [&b"\xff\xff\xff"[..], b"\x00", b"z"] {
            assert!(encode_end(end) < encode_end(b""));
            // and after the locate key of any finite key
            assert!(format!("{}\0", hex(end)) < encode_end(b""));
        }
        assert_eq!(decode_end("~"), Some(Vec::new()));
        assert_eq!(decode_end("61"), Some(b"a".to_vec()));
        assert_eq!(decode_end(""), None);
    }

    #[test]
    fn region_record_is_hex_json() {
        let r = region(7, b"a", b"\xff");
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""start":"61","end":"ff""#), "{json}");
        assert_eq!(serde_json::from_str::<Region>(&json).unwrap(), r);
    }

    #[test]
    fn tiling_cases() {
        let ok = vec![
            region(1, b"", b"b"),
            region(2, b"b", b"d"),
            region(3, b"d", b""),
        ];
        assert_eq!(check_tiling(&ok), Ok(()));
        assert_eq!(check_tiling(&[region(1, b"", b"")]), Ok(()));
        assert_eq!(check_tiling(&[]), Err(TilingError::Empty));
        let cases: Vec<Vec<Region>> = vec![
            vec![region(1, b"a", b"")],                       // first start
            vec![region(1, b"", b"b"), region(2, b"c", b"")], // gap
            vec![region(1, b"", b"c"), region(2, b"b", b"")], // overlap
            vec![region(1, b"", b"b")],                       // last end
            vec![region(1, b"", b""), region(2, b"", b"")],   // infinity before the last
            vec![
                region(1, b"", b"b"),
                region(2, b"b", b"b"),
                region(3, b"b", b""),
            ], // empty
        ];
        for regions in cases {
            assert!(check_tiling(&regions).is_err(), "{regions:?}");
        }
    }

    #[test]
    fn split_plans() {
        let parent = region(1, b"b", b"f");
        let (left, right) = plan_split(&parent, b"d", 2).unwrap();
        assert_eq!(
            (left.id, left.start.as_slice(), left.end.as_slice()),
            (2, &b"b"[..], &b"d"[..])
        );
        assert_eq!(
            (right.id, right.start.as_slice(), right.end.as_slice()),
            (1, &b"d"[..], &b"f"[..])
        );
        assert_eq!(
            left.epoch,
            Epoch {
                conf_ver: 1,
                version: 2
            }
        );
        assert_eq!(right.epoch, left.epoch);
        for bad in [&b"b"[..], b"a", b"f", b"g", b""] {
            assert!(
                matches!(
                    plan_split(&parent, bad, 2),
                    Err(Refusal::SplitKeyNotInside { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            plan_split(&parent, b"c", 1),
            Err(Refusal::RegionExists { .. })
        ));
        // an infinite end takes any key after the start
        assert!(plan_split(&region(1, b"", b""), b"\xff\xff", 2).is_ok());
    }

    #[test]
    fn peer_plans() {
        let r = region(1, b"", b"");
        let added = plan_add_peer(&r, voter(2, 2)).unwrap();
        assert_eq!(
            added.epoch,
            Epoch {
                conf_ver: 2,
                version: 1
            }
        );
        assert!(matches!(
            plan_add_peer(&r, voter(1, 2)),
            Err(Refusal::InvalidPeers { .. })
        ));
        assert!(matches!(
            plan_add_peer(&r, voter(2, 1)),
            Err(Refusal::InvalidPeers { .. })
        ));
        let removed = plan_remove_peer(&added, 1).unwrap();
        assert_eq!(removed.peers, vec![voter(2, 2)]);
        assert_eq!(removed.epoch.conf_ver, 3);
        assert!(matches!(
            plan_remove_peer(&removed, 2),
            Err(Refusal::LastVoter { .. })
        ));
        assert!(matches!(
            plan_remove_peer(&removed, 9),
            Err(Refusal::PeerNotFound { .. })
        ));
        assert!(validate_peers(1, &[]).is_err());
    }
}

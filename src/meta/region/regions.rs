//! [`Regions`]: the region namespace over one client; bootstrap, locate, list, scan,
//! split, peer changes and heartbeats, each change one compare-and-swap transaction.

use etcd_client::{Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse};
use serde::Serialize;

use super::keys::{decode_end, encode_end, hex, Keys};
use super::plan::{plan_add_peer, plan_remove_peer, plan_split, validate_peers};
use super::record::{Epoch, Outcome, Peer, Refusal, Region, RegionStats, Snapshot};
use crate::meta::{
    commit, decode_json, encode_json, unchanged_since, Client, Error, Layout, Result, MAX_ATTEMPTS,
};

/// The region namespace over one client.
#[derive(Clone)]
pub struct Regions {
    pub(super) kv: Client,
    pub(super) keys: Keys,
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

    pub(super) async fn commit(&self, guards: Vec<Compare>, puts: Vec<TxnOp>) -> Result<bool> {
        commit(&self.kv, guards, puts).await
    }

    fn put_id(&self, region: &Region) -> TxnOp {
        TxnOp::put(self.keys.id(region.id), encode_end(&region.end), None)
    }

    /// A JSON record and its `mod_revision`.
    pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
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

pub(super) fn put_json<T: Serialize>(key: &str, value: &T) -> TxnOp {
    TxnOp::put(key, encode_json(value), None)
}

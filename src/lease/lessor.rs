//! The lessor: lease table, key attachment, expiry times.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;

use crate::proto::leasepb::Lease as LeaseRecord;
use crate::storage::{schema, WriteBatch};

pub type LeaseId = i64;

/// etcd's MaxLeaseTTL (about 285 years).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

#[derive(Debug, Clone)]
pub struct Lease {
    pub id: LeaseId,
    /// Granted TTL in seconds.
    pub ttl: i64,
    pub keys: BTreeSet<Bytes>,
    /// When it expires on this member (renewed by keep-alives and on promotion).
    pub expiry: Instant,
    /// The TTL left at the last checkpoint (etcd's remainingTTL); 0 when none was taken.
    pub remaining_ttl: i64,
}

impl Lease {
    fn new(id: LeaseId, ttl: i64, remaining_ttl: i64, now: Instant) -> Self {
        let mut l = Lease {
            id,
            ttl,
            keys: BTreeSet::new(),
            expiry: now,
            remaining_ttl,
        };
        l.refresh(now);
        l
    }

    /// The TTL a refresh grants: the checkpointed remainder if there is one (etcd's
    /// getRemainingTTL).
    fn refresh_ttl(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl
        } else {
            self.ttl
        }
    }

    fn refresh(&mut self, now: Instant) {
        self.expiry = expiry_from(now, self.refresh_ttl());
    }

    fn record(&self) -> Vec<u8> {
        LeaseRecord {
            id: self.id,
            ttl: self.ttl,
            remaining_ttl: self.remaining_ttl,
        }
        .encode_to_vec()
    }
}

#[derive(Debug)]
pub struct Lessor {
    leases: HashMap<LeaseId, Lease>,
    key_lease: HashMap<Bytes, LeaseId>,
    /// TTLs below this are raised to it (etcd: 1.5 election timeouts, in whole seconds).
    min_ttl: i64,
}

fn backend_key(id: LeaseId) -> Bytes {
    let mut k = Vec::with_capacity(9);
    k.push(schema::LEASE);
    k.extend_from_slice(&id.to_be_bytes());
    Bytes::from(k)
}

impl Lessor {
    pub fn new(min_ttl: i64) -> Self {
        Self {
            leases: HashMap::new(),
            key_lease: HashMap::new(),
            min_ttl: min_ttl.max(1),
        }
    }

    /// etcd's minimum TTL for an election timeout: ceil(1.5 x election timeout) seconds.
    pub fn min_ttl_for(election_timeout: Duration) -> i64 {
        let ms = election_timeout.as_millis() * 3 / 2;
        i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX)
    }

    /// Rebuild from stored leasepb.Lease records; keys are attached afterwards from the KV
    /// store. Every lease gets its full TTL (or its checkpointed remainder) from now.
    pub fn restore(
        &mut self,
        records: impl IntoIterator<Item = (Bytes, Bytes)>,
    ) -> Result<(), prost::DecodeError> {
        self.leases.clear();
        self.key_lease.clear();
        let now = Instant::now();
        for (_, v) in records {
            let r = LeaseRecord::decode(v.as_ref())?;
            self.leases
                .insert(r.id, Lease::new(r.id, r.ttl, r.remaining_ttl, now));
        }
        Ok(())
    }

    pub fn contains(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn get(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn ids(&self) -> Vec<LeaseId> {
        let mut ids: Vec<LeaseId> = self.leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// The TTL a grant of `ttl` gets.
    pub fn effective_ttl(&self, ttl: i64) -> i64 {
        ttl.max(self.min_ttl)
    }

    /// Grant (apply side). The caller has checked that the id is free.
    pub fn grant(&mut self, id: LeaseId, ttl: i64, batch: &mut WriteBatch) -> i64 {
        crate::metrics::LEASE_GRANTED.inc();
        let ttl = self.effective_ttl(ttl);
        let lease = Lease::new(id, ttl, 0, Instant::now());
        batch.put(backend_key(id), lease.record());
        self.leases.insert(id, lease);
        ttl
    }

    /// Record the TTL a lease had left (apply side, etcd's Checkpoint), so that a restart
    /// or a new leader gives it that remainder rather than its full TTL. Unknown ids are
    /// ignored, as etcd ignores them.
    pub fn checkpoint(&mut self, id: LeaseId, remaining_ttl: i64, batch: &mut WriteBatch) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.remaining_ttl = remaining_ttl.max(0);
            batch.put(backend_key(id), l.record());
        }
    }

    /// Remove a lease (apply side); returns its keys, for the caller to delete.
    pub fn revoke(&mut self, id: LeaseId, batch: &mut WriteBatch) -> Option<BTreeSet<Bytes>> {
        let lease = self.leases.remove(&id)?;
        crate::metrics::LEASE_REVOKED.inc();
        batch.remove(backend_key(id));
        for k in &lease.keys {
            self.key_lease.remove(k);
        }
        Some(lease.keys)
    }

    /// A key now belongs to `id` (0 = to no lease), leaving its previous lease.
    pub fn attach(&mut self, key: &Bytes, id: LeaseId) {
        if let Some(old) = self.key_lease.remove(key) {
            if let Some(l) = self.leases.get_mut(&old) {
                l.keys.remove(key);
            }
        }
        if id != 0 {
            if let Some(l) = self.leases.get_mut(&id) {
                l.keys.insert(key.clone());
                self.key_lease.insert(key.clone(), id);
            }
        }
    }

    /// A key was deleted.
    pub fn detach(&mut self, key: &Bytes) {
        self.attach(key, 0);
    }

    /// Keep-alive: the lease lives another full TTL from now. Returns the TTL, if it exists.
    pub fn renew(&mut self, id: LeaseId) -> Option<i64> {
        let l = self.leases.get_mut(&id)?;
        l.expiry = expiry_from(Instant::now(), l.ttl);
        crate::metrics::LEASE_RENEWED.inc();
        Some(l.ttl)
    }

    /// Every lease gets its full TTL (or checkpointed remainder) from now: a member became
    /// leader (etcd's Promote).
    pub fn promote(&mut self) {
        let now = Instant::now();
        for l in self.leases.values_mut() {
            l.refresh(now);
        }
    }

    /// Seconds left, rounded down (etcd's Remaining), never below 0.
    pub fn remaining(&self, id: LeaseId) -> Option<i64> {
        let l = self.leases.get(&id)?;
        Some(
            i64::try_from(l.expiry.saturating_duration_since(Instant::now()).as_secs())
                .unwrap_or(i64::MAX),
        )
    }

    /// Leases past their expiry, at most `limit` of them, earliest first.
    pub fn expired(&self, limit: usize) -> Vec<LeaseId> {
        let now = Instant::now();
        let mut due: Vec<(Instant, LeaseId)> = self
            .leases
            .values()
            .filter(|l| l.expiry <= now)
            .map(|l| (l.expiry, l.id))
            .collect();
        due.sort_unstable();
        due.into_iter().take(limit).map(|(_, id)| id).collect()
    }
}

fn expiry_from(now: Instant, ttl: i64) -> Instant {
    now + Duration::from_secs(
        u64::try_from(ttl.max(0))
            .unwrap_or(u64::MAX)
            .min(MAX_LEASE_TTL as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_moves_keys_between_leases_and_revoke_returns_them() {
        let mut l = Lessor::new(2);
        let mut b = WriteBatch::default();
        assert_eq!(l.grant(1, 1, &mut b), 2, "raised to the minimum TTL");
        l.grant(2, 60, &mut b);
        let k = Bytes::from_static(b"k");
        l.attach(&k, 1);
        l.attach(&k, 2);
        assert!(l.get(1).unwrap().keys.is_empty());
        assert_eq!(
            l.revoke(2, &mut b).unwrap().into_iter().collect::<Vec<_>>(),
            vec![k.clone()]
        );
        assert!(!l.contains(2));
        l.attach(&k, 1);
        l.detach(&k);
        assert!(l.get(1).unwrap().keys.is_empty());
        assert_eq!(Lessor::min_ttl_for(Duration::from_millis(1000)), 2);
    }

    #[test]
    fn a_checkpointed_remainder_survives_a_restore() {
        let mut l = Lessor::new(1);
        let mut b = WriteBatch::default();
        l.grant(5, 600, &mut b);
        l.checkpoint(5, 30, &mut b);
        l.checkpoint(6, 30, &mut b);
        let mut stored = std::collections::BTreeMap::new();
        for (k, v) in b.ops {
            stored.insert(k, v.unwrap());
        }
        assert_eq!(stored.len(), 1, "an unknown lease is not checkpointed");
        let mut back = Lessor::new(1);
        back.restore(stored).unwrap();
        let lease = back.get(5).unwrap();
        assert_eq!((lease.ttl, lease.remaining_ttl), (600, 30));
        assert!(back.remaining(5).unwrap() <= 30);
    }
}

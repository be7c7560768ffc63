//! The lessor: lease table, key attachment, expiry times.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

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
}

impl Lease {
    fn new(id: LeaseId, ttl: i64, now: Instant) -> Self {
        Lease {
            id,
            ttl,
            keys: BTreeSet::new(),
            expiry: expiry_from(now, ttl),
        }
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

    /// Rebuild from stored `(id, ttl)` records; keys are attached afterwards from the KV
    /// store. Every lease gets its full TTL from now.
    pub fn restore(&mut self, records: impl IntoIterator<Item = (Bytes, Bytes)>) {
        self.leases.clear();
        self.key_lease.clear();
        let now = Instant::now();
        for (k, v) in records {
            if k.len() != 9 || v.len() != 8 {
                continue;
            }
            let id = i64::from_be_bytes(k[1..9].try_into().expect("9-byte key"));
            let ttl = i64::from_be_bytes(v[..8].try_into().expect("8-byte value"));
            self.leases.insert(id, Lease::new(id, ttl, now));
        }
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
        let ttl = self.effective_ttl(ttl);
        batch.put(backend_key(id), ttl.to_be_bytes().to_vec());
        self.leases.insert(id, Lease::new(id, ttl, Instant::now()));
        ttl
    }

    /// Remove a lease (apply side); returns its keys, for the caller to delete.
    pub fn revoke(&mut self, id: LeaseId, batch: &mut WriteBatch) -> Option<BTreeSet<Bytes>> {
        let lease = self.leases.remove(&id)?;
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
        Some(l.ttl)
    }

    /// Every lease gets its full TTL from now (a member became leader, etcd's Promote).
    pub fn promote(&mut self) {
        let now = Instant::now();
        for l in self.leases.values_mut() {
            l.expiry = expiry_from(now, l.ttl);
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
}

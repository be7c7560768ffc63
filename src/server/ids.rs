//! Member and cluster ids, computed as etcd computes them so a default single member gets
//! etcd's well-known ids, and kept in the backend so they never change for a member's life
//! (etcd: etcdserver/api/membership/member.go NewMember, cluster.go genID).

use std::collections::BTreeMap;

use bytes::Bytes;
use sha1::{Digest, Sha1};

use super::error::{Error, Result};
use crate::config::InitialMember;
use crate::raft::MemberNode;
use crate::storage::{Backend, Tree, WriteBatch};

const MEMBER_ID: &[u8] = b"member_id";
const CLUSTER_ID: &[u8] = b"cluster_id";
const INITIAL_CLUSTER: &[u8] = b"initial_cluster";

fn first_u64(digest: &[u8]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().expect("sha1 is 20 bytes"))
}

/// etcd's member id: sha1 of the sorted peer URLs and the cluster token.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    for u in &urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    first_u64(&h.finalize())
}

/// etcd's cluster id: sha1 of the sorted member ids, big-endian.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

/// The (member, cluster) ids stored in the backend, if any.
pub fn load(backend: &dyn Backend) -> Result<Option<(u64, u64)>> {
    let read = |k: &[u8]| -> Result<Option<u64>> {
        let v = backend
            .get(Tree::RaftMeta, k)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(v.and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes)))
    };
    Ok(match (read(MEMBER_ID)?, read(CLUSTER_ID)?) {
        (Some(m), Some(c)) => Some((m, c)),
        _ => None,
    })
}

/// Keep the ids for the member's life.
pub fn store(backend: &dyn Backend, member_id: u64, cluster_id: u64) -> Result<()> {
    let mut b = WriteBatch::default();
    b.put(
        Bytes::from_static(MEMBER_ID),
        member_id.to_be_bytes().to_vec(),
    );
    b.put(
        Bytes::from_static(CLUSTER_ID),
        cluster_id.to_be_bytes().to_vec(),
    );
    backend
        .write(Tree::RaftMeta, b)
        .map_err(|e| Error::Internal(e.to_string()))?;
    backend.flush().map_err(|e| Error::Internal(e.to_string()))
}

/// The ids stored in the backend, or new ones from the initial cluster on first start.
pub fn load_or_create(
    backend: &dyn Backend,
    members: &[InitialMember],
    name: &str,
    token: &str,
) -> Result<(u64, u64)> {
    if let Some(ids) = load(backend)? {
        return Ok(ids);
    }
    let ids: Vec<u64> = members
        .iter()
        .map(|m| member_id(&m.peer_urls, token))
        .collect();
    let me = members
        .iter()
        .position(|m| m.name == name)
        .ok_or_else(|| Error::Internal(format!("member {name:?} is not in the initial cluster")))?;
    let (m, c) = (ids[me], cluster_id(&ids));
    store(backend, m, c)?;
    Ok((m, c))
}

/// The members a new cluster starts raft with: those of `--initial-cluster`, with their
/// ids.
pub fn initial_nodes(members: &[InitialMember], token: &str) -> BTreeMap<u64, MemberNode> {
    members
        .iter()
        .map(|m| {
            let node = MemberNode {
                name: m.name.clone(),
                peer_urls: m.peer_urls.clone(),
                voter_pending: false,
            };
            (member_id(&m.peer_urls, token), node)
        })
        .collect()
}

/// Keep the members a restored data dir starts raft with (`metastore snapshot restore`),
/// so its first start takes the membership of the restore, not of its own flags, as an
/// etcd data dir does.
pub fn store_initial_nodes(backend: &dyn Backend, nodes: &BTreeMap<u64, MemberNode>) -> Result<()> {
    let json = serde_json::to_vec(nodes).map_err(|e| Error::Internal(e.to_string()))?;
    let mut b = WriteBatch::default();
    b.put(Bytes::from_static(INITIAL_CLUSTER), json);
    backend
        .write(Tree::RaftMeta, b)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// The members kept by `store_initial_nodes`, if any.
pub fn load_initial_nodes(backend: &dyn Backend) -> Result<Option<BTreeMap<u64, MemberNode>>> {
    let Some(v) = backend
        .get(Tree::RaftMeta, INITIAL_CLUSTER)
        .map_err(|e| Error::Internal(e.to_string()))?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&v)
        .map(Some)
        .map_err(|e| Error::Internal(format!("stored initial cluster: {e}")))
}

/// Request and lease ids as etcd makes them (idutil.Generator): the member id's low 16 bits,
/// then 40 bits of the start time in milliseconds and an 8-bit counter, incremented.
pub struct IdGenerator {
    prefix: u64,
    suffix: std::sync::atomic::AtomicU64,
}

const SUFFIX_BITS: u32 = 48;
const COUNTER_BITS: u32 = 8;

impl IdGenerator {
    pub fn new(member_id: u64) -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        let ts_mask = (1u64 << (SUFFIX_BITS - COUNTER_BITS)) - 1;
        Self {
            prefix: (member_id & 0xffff) << SUFFIX_BITS,
            suffix: ((ms & ts_mask) << COUNTER_BITS).into(),
        }
    }

    pub fn next(&self) -> u64 {
        let suffix = self
            .suffix
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        self.prefix | (suffix & ((1u64 << SUFFIX_BITS) - 1))
    }

    /// A positive, non-zero lease id (etcd keeps lease ids in the positive int64 range).
    pub fn next_lease_id(&self) -> i64 {
        loop {
            let id = i64::try_from(self.next() & (u64::MAX >> 1)).expect("masked to 63 bits");
            if id != 0 {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_ids_carry_the_member_and_increase() {
        let g = IdGenerator::new(0x8e9e05c52164694d);
        let (a, b) = (g.next(), g.next());
        assert_eq!(a >> 48, 0x694d);
        assert_eq!(b, a + 1);
        assert!(g.next_lease_id() > 0);
    }

    use super::*;

    #[test]
    fn default_member_gets_etcds_ids() {
        let m = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{m:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[m])), "cdf818194e3a8c32");
    }
}

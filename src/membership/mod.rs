//! The members of the cluster as replicated state (etcd: etcdserver/api/membership, the
//! `members` bucket).
//!
//! Owns: one record per member, `{id, name, peer URLs, client URLs, is_learner}`, kept in
//! the state tree so every member lists every other member's name and client URLs.
//! Imports: `storage`, `proto`. Must never: import `raft`, `apply`, `server` or `api`; the
//! raft layer hands it raft's membership as plain records.
//!
//! Two things change a record, both at apply time and so in the same order on every member:
//! - a raft membership change ([`Members::set_config`]): which members exist, their peer
//!   URLs and whether each is a learner;
//! - a member publishing its attributes ([`Members::set_attributes`], etcd's
//!   ClusterMemberAttrSet): its name and client URLs.
//!
//! It also owns the cluster's downgrade job (etcd's `cluster` bucket `downgrade` record):
//! Maintenance.Downgrade ENABLE and CANCEL set it ([`Members::set_downgrade`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message;

pub use crate::proto::etcdserverpb::DowngradeInfo;
pub use crate::proto::metastorepb::MemberRecord;
use crate::storage::{schema, WriteBatch};

/// Every member's record, by member id.
#[derive(Debug, Default, Clone)]
pub struct Members {
    records: BTreeMap<u64, MemberRecord>,
    /// Disabled (the default) when no downgrade job is enabled.
    downgrade: DowngradeInfo,
}

fn backend_key(id: u64) -> Bytes {
    let mut k = Vec::with_capacity(9);
    k.push(schema::MEMBER);
    k.extend_from_slice(&id.to_be_bytes());
    Bytes::from(k)
}

fn save(r: &MemberRecord, batch: &mut WriteBatch) {
    batch.put(backend_key(r.id), r.encode_to_vec());
}

impl Members {
    /// Rebuild from the stored records (prefix `schema::MEMBER`).
    pub fn restore(
        records: impl IntoIterator<Item = (Bytes, Bytes)>,
    ) -> Result<Self, prost::DecodeError> {
        let mut m = Members::default();
        for (_, v) in records {
            let r = MemberRecord::decode(v.as_ref())?;
            m.records.insert(r.id, r);
        }
        Ok(m)
    }

    /// The stored downgrade job (`schema::META_DOWNGRADE`), if any.
    pub fn restore_downgrade(&mut self, record: Option<&[u8]>) -> Result<(), prost::DecodeError> {
        self.downgrade = match record {
            Some(v) => DowngradeInfo::decode(v)?,
            None => DowngradeInfo::default(),
        };
        Ok(())
    }

    pub fn downgrade(&self) -> &DowngradeInfo {
        &self.downgrade
    }

    /// Enable a downgrade job to `target` (`major.minor.0`), or cancel it (`None`). The
    /// record exists only while a job is enabled.
    pub fn set_downgrade(&mut self, target: Option<String>, batch: &mut WriteBatch) {
        let key = Bytes::from_static(schema::META_DOWNGRADE);
        self.downgrade = match target {
            Some(target_version) => {
                let info = DowngradeInfo {
                    enabled: true,
                    target_version,
                };
                batch.put(key, info.encode_to_vec());
                info
            }
            None => {
                batch.remove(key);
                DowngradeInfo::default()
            }
        };
    }

    /// Every member, by id.
    pub fn list(&self) -> Vec<MemberRecord> {
        self.records.values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<&MemberRecord> {
        self.records.get(&id)
    }

    /// raft's membership is now `config`: records for members that left are removed, new
    /// members get a record, and every member's peer URLs and learner flag follow the
    /// config. A name already published is kept; client URLs only ever come from the member.
    pub fn set_config(&mut self, config: Vec<MemberRecord>, batch: &mut WriteBatch) {
        let wanted: BTreeMap<u64, MemberRecord> = config.into_iter().map(|r| (r.id, r)).collect();
        let gone: Vec<u64> = self
            .records
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.records.remove(&id);
            batch.remove(backend_key(id));
        }
        for (id, w) in wanted {
            let is_new = !self.records.contains_key(&id);
            let r = self.records.entry(id).or_insert_with(|| MemberRecord {
                id,
                ..Default::default()
            });
            let before = r.clone();
            r.peer_urls = w.peer_urls;
            r.is_learner = w.is_learner;
            if r.name.is_empty() {
                r.name = w.name;
            }
            if is_new || *r != before {
                save(r, batch);
            }
        }
    }

    /// A member published its name and client URLs. A member that is no longer in the
    /// cluster is ignored, as etcd ignores it; returns whether a record changed.
    pub fn set_attributes(
        &mut self,
        id: u64,
        name: String,
        client_urls: Vec<String>,
        batch: &mut WriteBatch,
    ) -> bool {
        let Some(r) = self.records.get_mut(&id) else {
            return false;
        };
        if r.name == name && r.client_urls == client_urls {
            return false;
        }
        r.name = name;
        r.client_urls = client_urls;
        save(r, batch);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, name: &str, peer: &str, learner: bool) -> MemberRecord {
        MemberRecord {
            id,
            name: name.into(),
            peer_urls: vec![peer.into()],
            client_urls: Vec::new(),
            is_learner: learner,
        }
    }

    #[test]
    fn config_changes_keep_published_attributes_and_drop_members_that_left() {
        let mut m = Members::default();
        let mut b = WriteBatch::default();
        m.set_config(vec![rec(1, "a", "http://a:2380", false)], &mut b);
        assert!(m.set_attributes(1, "a".into(), vec!["http://a:2379".into()], &mut b));
        assert!(
            !m.set_attributes(1, "a".into(), vec!["http://a:2379".into()], &mut b),
            "the same attributes change nothing"
        );
        assert!(
            !m.set_attributes(9, "x".into(), Vec::new(), &mut b),
            "not a member"
        );
        // b joins as a learner, with no name yet (etcd's member add knows only peer URLs).
        m.set_config(
            vec![
                rec(1, "", "http://a:2380", false),
                rec(2, "", "http://b:2380", true),
            ],
            &mut b,
        );
        let a = m.get(1).unwrap();
        assert_eq!((a.name.as_str(), a.client_urls.len()), ("a", 1));
        assert!(m.get(2).unwrap().is_learner);
        m.set_config(vec![rec(2, "", "http://b:2380", false)], &mut b);
        assert!(m.get(1).is_none());
        assert!(!m.get(2).unwrap().is_learner);

        // What the batch holds rebuilds the same records.
        let mut stored = BTreeMap::new();
        for (k, v) in b.ops {
            match v {
                Some(v) => stored.insert(k, v),
                None => stored.remove(&k),
            };
        }
        let back = Members::restore(stored).unwrap();
        assert_eq!(back.list(), m.list());
    }
}

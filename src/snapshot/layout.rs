//! Which record of the state tree is which record of etcd's backend, both ways (etcd:
//! server/storage/schema/bucket.go and the stores that write each bucket).
//!
//! | state tree (storage/schema.rs) | etcd bucket: key -> value |
//! | --- | --- |
//! | `k` + revision (+ `t`) -> mvccpb.KeyValue | `key`: revision (+ `t`) -> the same bytes |
//! | `l` + lease id -> leasepb.Lease | `lease`: lease id -> the same bytes |
//! | `Ae` / `Av` | `auth`: `authEnabled` (one byte) / `authRevision` (big-endian u64) |
//! | `Au` + name -> authpb.User | `authUsers`: name -> the same bytes |
//! | `Ar` + name -> authpb.Role | `authRoles`: name -> the same bytes |
//! | `a` + alarm + member id | `alarm`: encoded AlarmMember -> empty |
//! | `c` + member id -> MemberRecord | `members`: id in hex -> etcd's member JSON |
//! | `mcompact_rev`, `mfinished_compact_rev` | `meta`: `scheduledCompactRev`, `finishedCompactRev` (revision bytes) |
//! | `mdowngrade` -> etcdserverpb.DowngradeInfo | `cluster`: `downgrade` -> etcd 3.5's JSON `{"target-version", "enabled"}` |
//!
//! Our revision keys, KeyValue, Lease, User and Role encodings are etcd's, so those bytes
//! cross unchanged. `consistent_index`, `term` and `clusterVersion` describe the member
//! that wrote the file; the raft log, membership and format records have no counterpart.

use bytes::Bytes;
use prost::Message;

use super::Error;
use crate::mvcc::compaction::META_FINISHED_COMPACT_REV;
use crate::proto::etcdserverpb::{AlarmMember, DowngradeInfo};
use crate::proto::metastorepb::MemberRecord;
use crate::storage::schema;

pub const KEY: &[u8] = b"key";
pub const META: &[u8] = b"meta";
pub const LEASE: &[u8] = b"lease";
pub const AUTH: &[u8] = b"auth";
pub const AUTH_USERS: &[u8] = b"authUsers";
pub const AUTH_ROLES: &[u8] = b"authRoles";
pub const MEMBERS: &[u8] = b"members";
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const CLUSTER: &[u8] = b"cluster";
pub const ALARM: &[u8] = b"alarm";

/// Every bucket etcd's backend creates.
pub const BUCKETS: [&[u8]; 10] = [
    KEY,
    META,
    LEASE,
    AUTH,
    AUTH_USERS,
    AUTH_ROLES,
    MEMBERS,
    MEMBERS_REMOVED,
    CLUSTER,
    ALARM,
];

pub const AUTH_ENABLED: &[u8] = b"authEnabled";
pub const AUTH_REVISION: &[u8] = b"authRevision";
pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
pub const TERM: &[u8] = b"term";
pub const SCHEDULED_COMPACT_REV: &[u8] = b"scheduledCompactRev";
pub const FINISHED_COMPACT_REV: &[u8] = b"finishedCompactRev";
pub const CLUSTER_VERSION: &[u8] = b"clusterVersion";
pub const DOWNGRADE: &[u8] = b"downgrade";

/// A record of etcd's backend: its bucket, key and value.
pub type EtcdRecord = (&'static [u8], Vec<u8>, Vec<u8>);

/// etcd's revision bytes for a main revision: 8 bytes big-endian, `_`, 8 bytes of sub 0.
fn rev_bytes(main: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(17);
    b.extend_from_slice(&main.to_be_bytes());
    b.push(b'_');
    b.extend_from_slice(&0i64.to_be_bytes());
    b
}

fn rev_main(b: &[u8]) -> Result<i64, Error> {
    match b.get(..8) {
        Some(m) if b.len() == 17 => Ok(i64::from_be_bytes(m.try_into().expect("8 bytes"))),
        _ => Err(Error::Invalid(format!("a revision of {} bytes", b.len()))),
    }
}

fn i64_of(v: &[u8]) -> Result<i64, Error> {
    v.try_into()
        .map(i64::from_be_bytes)
        .map_err(|_| Error::Invalid(format!("an 8-byte number of {} bytes", v.len())))
}

/// etcd's member JSON (membership.Member: id, then the raft attributes, then the rest).
#[derive(serde::Serialize)]
struct MemberJson<'a> {
    id: u64,
    #[serde(rename = "peerURLs")]
    peer_urls: &'a [String],
    #[serde(rename = "isLearner", skip_serializing_if = "std::ops::Not::not")]
    is_learner: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(rename = "clientURLs", skip_serializing_if = "<[String]>::is_empty")]
    client_urls: &'a [String],
}

/// etcd 3.5's downgrade record (membership.DowngradeInfo).
#[derive(serde::Serialize, serde::Deserialize)]
struct DowngradeJson {
    #[serde(rename = "target-version", default)]
    target_version: String,
    #[serde(default)]
    enabled: bool,
}

/// The etcd record for a state-tree record outside the key versions, if etcd has one.
pub fn to_etcd(k: &[u8], v: &[u8]) -> Result<Option<EtcdRecord>, Error> {
    let rest = || k[1..].to_vec();
    Ok(Some(match k.first() {
        Some(&schema::KEY) => (KEY, rest(), v.to_vec()),
        Some(&schema::LEASE) => (LEASE, rest(), v.to_vec()),
        Some(&schema::ALARM) if k.len() == 10 => {
            let id = u64::from_be_bytes(k[2..10].try_into().expect("8 bytes"));
            let m = AlarmMember {
                member_id: id,
                alarm: i32::from(k[1]),
            };
            (ALARM, m.encode_to_vec(), Vec::new())
        }
        Some(&schema::MEMBER) => {
            let r = MemberRecord::decode(v).map_err(|e| Error::Invalid(e.to_string()))?;
            let json = MemberJson {
                id: r.id,
                peer_urls: &r.peer_urls,
                is_learner: r.is_learner,
                name: &r.name,
                client_urls: &r.client_urls,
            };
            let value = serde_json::to_vec(&json).map_err(|e| Error::Invalid(e.to_string()))?;
            (MEMBERS, format!("{:x}", r.id).into_bytes(), value)
        }
        _ if k == schema::AUTH_ENABLED => (AUTH, AUTH_ENABLED.to_vec(), v.to_vec()),
        _ if k == schema::AUTH_REVISION => (AUTH, AUTH_REVISION.to_vec(), v.to_vec()),
        _ if k.starts_with(schema::AUTH_USER) => (AUTH_USERS, k[2..].to_vec(), v.to_vec()),
        _ if k.starts_with(schema::AUTH_ROLE) => (AUTH_ROLES, k[2..].to_vec(), v.to_vec()),
        _ if k == schema::META_COMPACT_REV => {
            (META, SCHEDULED_COMPACT_REV.to_vec(), rev_bytes(i64_of(v)?))
        }
        _ if k == META_FINISHED_COMPACT_REV => {
            (META, FINISHED_COMPACT_REV.to_vec(), rev_bytes(i64_of(v)?))
        }
        _ if k == schema::META_DOWNGRADE => {
            let d = DowngradeInfo::decode(v).map_err(|e| Error::Invalid(e.to_string()))?;
            let json = DowngradeJson {
                target_version: d.target_version,
                enabled: d.enabled,
            };
            let value = serde_json::to_vec(&json).map_err(|e| Error::Invalid(e.to_string()))?;
            (CLUSTER, DOWNGRADE.to_vec(), value)
        }
        _ => return Ok(None),
    }))
}

/// The state-tree record for a record of etcd's backend, if it has one. Members come from
/// the restore's own flags (as etcd's restore), and the raft position and versions from
/// the member that will serve it.
pub fn from_etcd(bucket: &[u8], k: &[u8], v: &[u8]) -> Result<Option<(Bytes, Bytes)>, Error> {
    let with = |prefix: &[u8]| Bytes::from([prefix, k].concat());
    let value = || Bytes::copy_from_slice(v);
    Ok(Some(match bucket {
        KEY => {
            let tombstone = k.len() == 18 && k[17] == b't';
            if k.len() != 17 && !tombstone || k.get(8) != Some(&b'_') {
                return Err(Error::Invalid(format!(
                    "a key revision of {} bytes",
                    k.len()
                )));
            }
            (with(&[schema::KEY]), value())
        }
        LEASE if k.len() == 8 => (with(&[schema::LEASE]), value()),
        AUTH if k == AUTH_ENABLED => (Bytes::from_static(schema::AUTH_ENABLED), value()),
        AUTH if k == AUTH_REVISION => (Bytes::from_static(schema::AUTH_REVISION), value()),
        AUTH_USERS => (with(schema::AUTH_USER), value()),
        AUTH_ROLES => (with(schema::AUTH_ROLE), value()),
        ALARM => {
            let m = AlarmMember::decode(k).map_err(|e| Error::Invalid(e.to_string()))?;
            let mut key = vec![schema::ALARM, u8::try_from(m.alarm).unwrap_or(u8::MAX)];
            key.extend_from_slice(&m.member_id.to_be_bytes());
            (Bytes::from(key), Bytes::new())
        }
        META if k == SCHEDULED_COMPACT_REV => (
            Bytes::from_static(schema::META_COMPACT_REV),
            Bytes::copy_from_slice(&rev_main(v)?.to_be_bytes()),
        ),
        META if k == FINISHED_COMPACT_REV => (
            Bytes::from_static(META_FINISHED_COMPACT_REV),
            Bytes::copy_from_slice(&rev_main(v)?.to_be_bytes()),
        ),
        // only an enabled job is a record here
        CLUSTER if k == DOWNGRADE => {
            let d: DowngradeJson =
                serde_json::from_slice(v).map_err(|e| Error::Invalid(e.to_string()))?;
            if !d.enabled {
                return Ok(None);
            }
            let info = DowngradeInfo {
                enabled: true,
                target_version: d.target_version,
            };
            (
                Bytes::from_static(schema::META_DOWNGRADE),
                Bytes::from(info.encode_to_vec()),
            )
        }
        _ => return Ok(None),
    }))
}

/// The main revision of a `key` bucket key.
pub fn key_revision(k: &[u8]) -> Option<i64> {
    k.get(..8)
        .map(|m| i64::from_be_bytes(m.try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_record_crosses_both_ways() {
        let rev = {
            let mut k = vec![schema::KEY];
            k.extend_from_slice(&rev_bytes(7));
            k
        };
        let mut tomb = rev.clone();
        tomb.push(b't');
        let lease = [&[schema::LEASE][..], &5i64.to_be_bytes()].concat();
        let alarm = [&[schema::ALARM, 1][..], &9u64.to_be_bytes()].concat();
        let records: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (rev, b"kv".to_vec()),
            (tomb, b"tomb".to_vec()),
            (lease, b"lease".to_vec()),
            (alarm, Vec::new()),
            (schema::AUTH_ENABLED.to_vec(), vec![1]),
            (schema::AUTH_REVISION.to_vec(), 3u64.to_be_bytes().to_vec()),
            ([schema::AUTH_USER, b"root"].concat(), b"user".to_vec()),
            ([schema::AUTH_ROLE, b"r"].concat(), b"role".to_vec()),
            (
                schema::META_COMPACT_REV.to_vec(),
                4i64.to_be_bytes().to_vec(),
            ),
            (
                META_FINISHED_COMPACT_REV.to_vec(),
                4i64.to_be_bytes().to_vec(),
            ),
            (
                schema::META_DOWNGRADE.to_vec(),
                DowngradeInfo {
                    enabled: true,
                    target_version: "3.4.0".into(),
                }
                .encode_to_vec(),
            ),
        ];
        for (k, v) in records {
            let (bucket, ek, ev) = to_etcd(&k, &v).unwrap().unwrap();
            let (k2, v2) = from_etcd(bucket, &ek, &ev).unwrap().unwrap();
            assert_eq!((k2.as_ref(), v2.as_ref()), (&k[..], &v[..]), "{bucket:?}");
        }
        assert!(to_etcd(schema::META_LAST_APPLIED, b"x").unwrap().is_none());
        assert!(from_etcd(META, CONSISTENT_INDEX, &[0; 8])
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_downgrade_job_is_etcds_json_and_a_disabled_one_no_record() {
        let info = DowngradeInfo {
            enabled: true,
            target_version: "3.4.0".into(),
        };
        let (bucket, k, v) = to_etcd(schema::META_DOWNGRADE, &info.encode_to_vec())
            .unwrap()
            .unwrap();
        assert_eq!((bucket, &k[..]), (CLUSTER, DOWNGRADE));
        assert_eq!(v, br#"{"target-version":"3.4.0","enabled":true}"#);
        let off = br#"{"target-version":"","enabled":false}"#;
        assert!(from_etcd(CLUSTER, DOWNGRADE, off).unwrap().is_none());
    }

    #[test]
    fn members_are_etcds_json_under_their_hex_id() {
        let r = MemberRecord {
            id: 0x8e9e05c52164694d,
            name: "default".into(),
            peer_urls: vec!["http://localhost:2380".into()],
            client_urls: vec!["http://localhost:2379".into()],
            is_learner: false,
        };
        let k = [&[schema::MEMBER][..], &r.id.to_be_bytes()].concat();
        let (bucket, ek, ev) = to_etcd(&k, &r.encode_to_vec()).unwrap().unwrap();
        assert_eq!(bucket, MEMBERS);
        assert_eq!(ek, b"8e9e05c52164694d");
        assert_eq!(
            String::from_utf8(ev).unwrap(),
            r#"{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default","clientURLs":["http://localhost:2379"]}"#
        );
    }

    #[test]
    fn malformed_etcd_records_are_refused() {
        assert!(from_etcd(KEY, b"short", b"").is_err());
        assert!(from_etcd(META, SCHEDULED_COMPACT_REV, b"x").is_err());
    }
}

//! Reading an etcd snapshot file back into state-tree records (etcd: etcdutl's restore
//! reads the same buckets through its stores).

use std::path::Path;

use bytes::Bytes;

use super::bolt_read::BoltFile;
use super::layout::{self, from_etcd};
use super::Error;

/// What a restore read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The highest main revision among the key versions.
    pub revision: i64,
    /// etcd's scheduled compaction revision, 0 when never compacted.
    pub compact_revision: i64,
    /// Key versions (tombstones included).
    pub key_versions: u64,
    pub leases: u64,
    pub users: u64,
    pub roles: u64,
    pub alarms: u64,
}

/// Read the bbolt database at `path` (no trailer: see `super::check_trailer`) and hand
/// every record that has a state-tree counterpart to `sink`, bucket by bucket, in key
/// order. `progress` is told the bytes of records read so far, now and then.
pub fn read_db(
    path: &Path,
    sink: &mut dyn FnMut(Bytes, Bytes) -> Result<(), Error>,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, Error> {
    let db = BoltFile::open(path)?;
    let mut s = Summary::default();
    let mut read_bytes = 0u64;
    db.for_each(&mut |name, kv| {
        let Some((k, v)) = kv else { return Ok(()) };
        let Some(name) = layout::BUCKETS.iter().copied().find(|b| *b == name) else {
            return Ok(());
        };
        read_bytes += (k.len() + v.len()) as u64;
        if read_bytes % (16 << 20) < (k.len() + v.len()) as u64 {
            progress(read_bytes);
        }
        let Some((sk, sv)) = from_etcd(name, k, v)? else {
            return Ok(());
        };
        match name {
            layout::KEY => {
                s.key_versions += 1;
                s.revision = s.revision.max(layout::key_revision(k).unwrap_or(0));
            }
            layout::LEASE => s.leases += 1,
            layout::AUTH_USERS => s.users += 1,
            layout::AUTH_ROLES => s.roles += 1,
            layout::ALARM => s.alarms += 1,
            layout::META if k == layout::SCHEDULED_COMPACT_REV => {
                s.compact_revision = i64::from_be_bytes(sv[..8].try_into().expect("8"));
            }
            _ => {}
        }
        sink(sk, sv)
    })?;
    progress(read_bytes);
    Ok(s)
}

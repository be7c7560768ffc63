//! Tree names and the key prefixes of the state-machine tree (etcd: storage/schema/bucket.go).
//!
//! The state machine lives in one tree so that the apply of a log entry, with its
//! `last_applied`, is one atomic batch. Each kind of record has a one-byte prefix.

/// The trees of one member's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tree {
    /// Raft log: big-endian u64 index -> encoded entry.
    RaftLog,
    /// Raft hard state: vote, committed, last purged log id.
    RaftMeta,
    /// The state machine: key versions, leases, members, meta.
    State,
}

impl Tree {
    pub fn name(self) -> &'static str {
        match self {
            Tree::RaftLog => "raft_log",
            Tree::RaftMeta => "raft_meta",
            Tree::State => "state",
        }
    }
}

/// Key versions: prefix + 17-byte revision (+ tombstone mark) -> encoded mvccpb.KeyValue.
pub const KEY: u8 = b'k';
/// Leases: prefix + big-endian lease id -> encoded leasepb.Lease.
pub const LEASE: u8 = b'l';
/// Members of the cluster: prefix + big-endian member id -> encoded MemberRecord.
pub const MEMBER: u8 = b'c';
/// Alarms: prefix + alarm type byte + big-endian member id -> empty.
pub const ALARM: u8 = b'a';
/// Meta records (the names below) -> values.
pub const META: u8 = b'm';

/// The format version the state tree is written in (apply::FORMAT_VERSION).
pub const META_FORMAT: &[u8] = b"mformat";

pub const META_LAST_APPLIED: &[u8] = b"mlast_applied";
pub const META_MEMBERSHIP: &[u8] = b"mmembership";
pub const META_COMPACT_REV: &[u8] = b"mcompact_rev";
pub const META_CLUSTER: &[u8] = b"mcluster";
pub const META_CURRENT_REV: &[u8] = b"mcurrent_rev";
/// The downgrade job (encoded etcdserverpb.DowngradeInfo), only while one is enabled.
pub const META_DOWNGRADE: &[u8] = b"mdowngrade";

/// Keys of the raft meta tree.
pub const RAFT_VOTE: &[u8] = b"vote";
pub const RAFT_PURGED: &[u8] = b"purged";

/// The auth store (etcd's `auth`, `authUsers`, `authRoles` buckets): prefix + one byte
/// naming the record: `e` -> enabled flag (one byte), `v` -> auth revision (big-endian
/// u64), `u` + user name -> encoded authpb.User, `r` + role name -> encoded authpb.Role.
pub const AUTH: u8 = b'A';
pub const AUTH_ENABLED: &[u8] = b"Ae";
pub const AUTH_REVISION: &[u8] = b"Av";
pub const AUTH_USER: &[u8] = b"Au";
pub const AUTH_ROLE: &[u8] = b"Ar";

//! etcd's snapshot files (etcd: backend.Snapshot, etcdutl/snapshot): a bbolt database in
//! etcd's bucket layout, then the SHA-256 of those bytes.
//!
//! - `layout`: which state-tree record is which record of which etcd bucket, both ways;
//! - `export`: a bbolt database written from the state tree (Maintenance.Snapshot);
//! - `import`: an etcd snapshot or a stopped etcd's `member/snap/db` read back into
//!   state-tree records (`metastore snapshot restore`);
//! - `status`: `etcdctl snapshot status`'s hash, revision, key count and size.
//!
//! Files are written with bbolt-rs (a port of bbolt, with bbolt's magic number under its
//! `compat` feature): etcd's own bbolt reads what it writes and passes `tx.Check()`.
//! They are read with `bolt_read`, a page walk of our own: bbolt-rs refuses the files
//! etcd writes, whose freelist is not synced (`PGID_NO_FREE_LIST not currently
//! supported`), and reading needs only the meta, branch and leaf pages.
//!
//! Imports: storage (the schema), mvcc (the compaction record), apply (the format
//! version), proto. Must never: know about raft or the server.

mod bolt_read;
pub mod export;
pub mod import;
pub mod layout;
pub mod status;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

/// What can go wrong with a snapshot file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bbolt: {0}")]
    Bolt(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Backend(#[from] crate::storage::Error),
}

pub(crate) fn bolt(e: bbolt_rs::Error) -> Error {
    Error::Bolt(e.to_string())
}

/// Bytes of the SHA-256 trailer.
pub const SHA_LEN: u64 = 32;

/// Whether a file of `len` bytes ends in a trailer: a bbolt file is whole pages, so the
/// remainder is the trailer (etcd's `hasHash := (off % 512) == sha256.Size`).
pub fn has_trailer(len: u64) -> bool {
    len % 512 == SHA_LEN
}

/// Check the trailer of the snapshot at `path` as etcd's restore does, and hand back the
/// length of the database before it. Without a trailer only `skip_hash_check` lets it
/// through (a stopped etcd's `member/snap/db` has none).
pub fn check_trailer(path: &Path, skip_hash_check: bool) -> Result<u64, Error> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if !has_trailer(len) {
        if skip_hash_check {
            return Ok(len);
        }
        return Err(Error::Invalid(
            "snapshot missing hash but --skip-hash-check=false".into(),
        ));
    }
    let db_len = len - SHA_LEN;
    if skip_hash_check {
        return Ok(db_len);
    }
    let mut want = [0u8; SHA_LEN as usize];
    f.seek(SeekFrom::Start(db_len))?;
    f.read_exact(&mut want)?;
    f.seek(SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    std::io::copy(&mut (&mut f).take(db_len), &mut h)?;
    let got = h.finalize();
    if got.as_slice() != want {
        return Err(Error::Invalid(format!(
            "expected sha256 {want:?}, got {:?}",
            got.as_slice()
        )));
    }
    Ok(db_len)
}

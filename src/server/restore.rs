//! `metastore snapshot restore` (etcd: etcdutl snapshot restore): a new member's data dir
//! from an etcd snapshot file, or from a stopped etcd's `member/snap/db`.
//!
//! Every key version (with its create and mod revisions and version), the current and
//! compacted revisions, leases (their keys attach again from the key versions), users,
//! roles and alarms come from the file; the members come from the restore's own
//! `--initial-cluster`, as in etcd: each member of the new cluster restores the same file
//! with the same flags and starts as a new cluster holding that data. The restore keeps
//! those members in the data dir, so the first start takes them whatever its own
//! `--initial-cluster` says (etcd, too, ignores it once a data dir exists).
//!
//! The data dir is built beside its final place and renamed into it when complete, so a
//! restore that fails or is killed leaves no data dir behind.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::error::{Error, Result};
use super::ids;
use crate::apply::FORMAT_VERSION;
use crate::config::Config;
use crate::snapshot::{self, import::Summary};
use crate::storage::{schema, Backend, SledBackend, Tree, WriteBatch};

/// Records per write batch.
const BATCH: usize = 10_000;

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// Restore `file` into the data dir `cfg` names; `progress` is told (bytes read, bytes
/// in all) now and then.
pub fn restore(
    cfg: &Config,
    file: &Path,
    skip_hash_check: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary> {
    let data_dir = PathBuf::from(cfg.data_dir());
    if data_dir.exists() {
        return Err(Error::Internal(format!("data-dir {data_dir:?} exists")));
    }
    let members = cfg.initial_members().map_err(internal)?;
    let me = members.iter().find(|m| m.name == cfg.name).ok_or_else(|| {
        Error::Internal(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        ))
    })?;
    let mut advertised = cfg.peer_urls().map_err(internal)?;
    let mut listed = me.peer_urls.clone();
    advertised.sort();
    listed.sort();
    if advertised != listed {
        return Err(Error::Internal(format!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
            cfg.name,
            listed.join(","),
            advertised.join(",")
        )));
    }
    let db_len = snapshot::check_trailer(file, skip_hash_check).map_err(internal)?;

    let building = PathBuf::from(format!("{}.restoring", data_dir.display()));
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(internal)?;
    }
    let built = build(cfg, file, db_len, &building, progress);
    if built.is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    let summary = built?;
    std::fs::rename(&building, &data_dir).map_err(internal)?;
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(internal)?;
    }
    Ok(summary)
}

/// Build the data dir at `building`.
fn build(
    cfg: &Config,
    file: &Path,
    db_len: u64,
    building: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary> {
    let members = cfg.initial_members().map_err(internal)?;
    let member_dir = building.join("member");
    std::fs::create_dir_all(member_dir.join("snap")).map_err(internal)?;
    // The file without its trailer, as etcd's restore copies it to member/snap/db.
    let db_copy = member_dir.join("snap").join("db");
    copy_prefix(file, &db_copy, db_len).map_err(internal)?;

    let db_dir = member_dir.join("db");
    std::fs::create_dir_all(&db_dir).map_err(internal)?;
    let summary = {
        let backend = SledBackend::open(&db_dir).map_err(internal)?;
        let mut batch = WriteBatch::default();
        batch.put(
            Bytes::from_static(schema::META_FORMAT),
            vec![FORMAT_VERSION],
        );
        let mut sink = |k: Bytes, v: Bytes| -> std::result::Result<(), snapshot::Error> {
            batch.put(k, v);
            if batch.ops.len() >= BATCH {
                backend.write(Tree::State, std::mem::take(&mut batch))?;
            }
            Ok(())
        };
        let mut tell = |read: u64| progress(read.min(db_len), db_len);
        let summary =
            snapshot::import::read_db(&db_copy, &mut sink, &mut tell).map_err(internal)?;
        backend.write(Tree::State, batch).map_err(internal)?;
        ids::load_or_create(&backend, &members, &cfg.name, &cfg.initial_cluster_token)?;
        let nodes = ids::initial_nodes(&members, &cfg.initial_cluster_token);
        ids::store_initial_nodes(&backend, &nodes)?;
        backend.flush().map_err(internal)?;
        summary
    };
    std::fs::remove_file(&db_copy).map_err(internal)?;
    Ok(summary)
}

/// Copy the first `len` bytes of `from` to a new file `to`, synced.
fn copy_prefix(from: &Path, to: &Path, len: u64) -> std::io::Result<()> {
    use std::io::Read;
    let mut src = std::fs::File::open(from)?.take(len);
    let mut dst = std::fs::File::create(to)?;
    std::io::copy(&mut src, &mut dst)?;
    dst.sync_all()
}

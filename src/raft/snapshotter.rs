//! Snapshot files on disk, in `<data-dir>/member/snap` (etcd's snap/snapshotter.go).
//!
//! To ensure correctness:
//! - a snapshot is written to a `.tmp` file, fsynced, renamed to its final name and the
//!   directory fsynced: a crash leaves either no new snapshot or a whole one;
//! - a received snapshot is written to an `.incoming` file and becomes a snapshot the same
//!   way once it is complete;
//! - leftovers of an interrupted write (`.tmp`, `.incoming`) are removed at start;
//! - the newest snapshots are kept (`KEEP`), older ones removed once a newer one is whole.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::snapshot::{Error, Reader};
use crate::proto::metastorepb::SnapshotHeader;

/// Snapshots kept on disk (etcd keeps --max-snapshots, 5 by default).
const KEEP: usize = 2;
const SUFFIX: &str = ".snap";

#[derive(Debug, Clone)]
pub struct Snapshotter {
    dir: PathBuf,
}

/// A whole snapshot on disk.
#[derive(Debug, Clone)]
pub struct SnapFile {
    pub path: PathBuf,
    pub header: SnapshotHeader,
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The snapshot's file name: its last log index and term, so names sort by index.
fn file_name(header: &SnapshotHeader) -> String {
    let l = header.last_log_id.unwrap_or_default();
    format!(
        "{:016x}-{:016x}-{:016x}{SUFFIX}",
        l.index, l.term, l.node_id
    )
}

impl Snapshotter {
    pub fn open(dir: PathBuf) -> Result<Self, Error> {
        fs::create_dir_all(&dir)?;
        for e in fs::read_dir(&dir)? {
            let p = e?.path();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if ext == "tmp" || ext == "incoming" {
                fs::remove_file(&p)?;
            }
        }
        Ok(Snapshotter { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn snapshots(&self) -> Result<Vec<PathBuf>, Error> {
        let mut all: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_str().is_some_and(|s| s.ends_with(SUFFIX)))
            .collect();
        all.sort();
        Ok(all)
    }

    /// The newest whole snapshot, if any. Only its header is read here; the reader checks
    /// the rest when the snapshot is installed.
    pub fn latest(&self) -> Result<Option<SnapFile>, Error> {
        for path in self.snapshots()?.into_iter().rev() {
            match Reader::new(BufReader::new(File::open(&path)?)) {
                Ok(r) => {
                    return Ok(Some(SnapFile {
                        header: r.header().clone(),
                        path,
                    }))
                }
                Err(e) => tracing::warn!("skipping unreadable snapshot {}: {e}", path.display()),
            }
        }
        Ok(None)
    }

    /// The snapshot file named `name` in this directory.
    pub fn by_name(&self, name: &str) -> Result<SnapFile, Error> {
        let path = self.dir.join(name);
        let r = Reader::new(BufReader::new(File::open(&path)?))?;
        Ok(SnapFile {
            header: r.header().clone(),
            path,
        })
    }

    /// A new file to write a snapshot into, and its path.
    pub fn create_tmp(&self) -> Result<(PathBuf, File), Error> {
        let path = self.dir.join(format!("{:016x}.tmp", rand::random::<u64>()));
        let f = File::create(&path)?;
        Ok((path, f))
    }

    /// A new file for a snapshot being received.
    pub fn create_incoming(&self) -> Result<(PathBuf, File), Error> {
        let path = self
            .dir
            .join(format!("{:016x}.incoming", rand::random::<u64>()));
        let f = File::create(&path)?;
        Ok((path, f))
    }

    /// Make the written file at `tmp` the snapshot described by `header`: fsync it, give
    /// it its final name, fsync the directory, then drop snapshots older than the kept ones.
    pub fn commit(&self, tmp: &Path, header: &SnapshotHeader) -> Result<SnapFile, Error> {
        File::open(tmp)?.sync_all()?;
        let path = self.dir.join(file_name(header));
        fs::rename(tmp, &path)?;
        sync_dir(&self.dir)?;
        let all = self.snapshots()?;
        if all.len() > KEEP {
            for old in &all[..all.len() - KEEP] {
                if *old != path {
                    fs::remove_file(old)?;
                }
            }
        }
        Ok(SnapFile {
            path,
            header: header.clone(),
        })
    }
}

//! Snapshot files on disk, in `<data-dir>/member/snap` (etcd's snap/snapshotter.go).
//!
//! To ensure correctness:
//! - a snapshot is written to a `.tmp` file, fsynced, renamed to its final name and the
//!   directory fsynced: a crash leaves either no new snapshot or a whole one;
//! - a received snapshot is written to an `.incoming` file and becomes a snapshot the same
//!   way once it is complete;
//! - leftovers of an interrupted write (`.tmp`, `.incoming`) are removed at start;
//! - only the newest snapshot is kept (`KEEP`), older ones removed once a newer one is whole;
//! - every [`SnapFile`] handed out holds the file open: a reader that found a snapshot can
//!   read it through even when a newer one is committed (and the older removed) meanwhile.

use std::fs::{self, File};
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};

use super::snapshot::{Error, Reader};
use crate::proto::metastorepb::SnapshotHeader;

/// Snapshots kept on disk. etcd keeps --max-snapshots (5) of its small raft snapshot files
/// beside one database file; a snapshot here is the whole state, so one is kept (the state
/// tree in the backend holds the rest).
const KEEP: usize = 1;
const SUFFIX: &str = ".snap";

#[derive(Debug, Clone)]
pub struct Snapshotter {
    dir: PathBuf,
}

/// A whole snapshot on disk, open and positioned at its start.
#[derive(Debug)]
pub struct SnapFile {
    pub path: PathBuf,
    pub header: SnapshotHeader,
    pub file: File,
}

impl SnapFile {
    /// Open the snapshot at `path` and read its header.
    fn open(path: PathBuf) -> Result<SnapFile, Error> {
        let mut file = File::open(&path)?;
        let header = Reader::new(BufReader::new(&file))?.header().clone();
        file.rewind()?;
        Ok(SnapFile { path, header, file })
    }
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

    /// The newest whole snapshot, if any, open. Only its header is read here; the reader
    /// checks the rest when the snapshot is installed. A commit may remove a listed
    /// snapshot before it is opened: a newer one exists then, so the directory is listed
    /// again rather than an older one (also removed) tried.
    pub fn latest(&self) -> Result<Option<SnapFile>, Error> {
        'list: loop {
            for path in self.snapshots()?.into_iter().rev() {
                let shown = path.display().to_string();
                match SnapFile::open(path) {
                    Ok(snap) => return Ok(Some(snap)),
                    Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => continue 'list,
                    Err(e) => tracing::warn!("skipping unreadable snapshot {shown}: {e}"),
                }
            }
            return Ok(None);
        }
    }

    /// The snapshot file named `name` in this directory.
    pub fn by_name(&self, name: &str) -> Result<SnapFile, Error> {
        SnapFile::open(self.dir.join(name))
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
    /// The snapshot is opened before any is dropped: a commit racing this one (a local
    /// build and a received install) cannot remove it from under its caller.
    pub fn commit(&self, tmp: &Path, header: &SnapshotHeader) -> Result<SnapFile, Error> {
        let file = File::open(tmp)?;
        file.sync_all()?;
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
            file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metastorepb::LogId;
    use crate::raft::snapshot::Writer;
    use bytes::Bytes;

    fn write(s: &Snapshotter, index: u64, value: &'static [u8]) -> SnapFile {
        let header = SnapshotHeader {
            last_log_id: Some(LogId {
                term: 1,
                node_id: 1,
                index,
            }),
            ..Default::default()
        };
        let (tmp, file) = s.create_tmp().unwrap();
        let mut w = Writer::new(file, &header).unwrap();
        w.record(Bytes::from_static(b"k"), Bytes::from_static(value))
            .unwrap();
        w.finish().unwrap();
        s.commit(&tmp, &header).unwrap()
    }

    fn read_through(snap: SnapFile) -> (u64, Vec<(Bytes, Bytes)>) {
        let mut r = Reader::new(BufReader::new(snap.file)).unwrap();
        let index = r.header().last_log_id.as_ref().expect("a log id").index;
        let mut records = Vec::new();
        while let Some(kv) = r.next_record().unwrap() {
            records.push(kv);
        }
        (index, records)
    }

    /// One snapshot is kept, and one already found stays readable after a newer commit
    /// removed its name (a follower being sent it while the leader builds the next).
    #[test]
    fn a_found_snapshot_reads_through_after_a_newer_commit_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(dir.path().to_path_buf()).unwrap();
        assert!(s.latest().unwrap().is_none());
        let built = write(&s, 5, b"five");
        let found = s.latest().unwrap().expect("a snapshot");
        assert_eq!(found.path, built.path);
        let newer = write(&s, 9, b"nine");
        assert!(!found.path.exists(), "the older snapshot is removed");
        assert_eq!(s.snapshots().unwrap(), vec![newer.path.clone()]);
        let k = Bytes::from_static(b"k");
        assert_eq!(
            read_through(found),
            (5, vec![(k.clone(), Bytes::from_static(b"five"))])
        );
        // The commit's own handle reads from the start too, after the removal.
        assert_eq!(
            read_through(built),
            (5, vec![(k.clone(), Bytes::from_static(b"five"))])
        );
        let latest = s.latest().unwrap().expect("a snapshot");
        assert_eq!(
            read_through(latest),
            (9, vec![(k, Bytes::from_static(b"nine"))])
        );
    }
}

//! Defragmentation of the sled database (etcd: backend.defrag): sled never gives space
//! back by itself, so every record is copied into a fresh database beside the old one,
//! which then takes the old one's place.
//!
//! The swap uses three names next to the database directory `D`: `D.defrag` (the copy),
//! `D.defrag-done` (a marker: the copy is complete and durable) and `D.old` (the old
//! database while the copy moves in). The steps, each durable before the next:
//!
//! ```text
//! copy into D.defrag, flush  ->  create D.defrag-done  ->  rename D to D.old
//!   ->  rename D.defrag to D  ->  remove D.defrag-done  ->  remove D.old
//! ```
//!
//! To ensure correctness: [`recover`] runs before every open and finishes or undoes a swap
//! a crash interrupted: without the marker the copy may be partial and is removed (the
//! old database is still `D`); with it, the copy is complete and the renames are finished.
//! Either way `D` ends up holding every record, once. A failpoint sits after each step
//! (tests/defrag_crash.rs kills the process at each one).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub const FAILPOINT_COPIED: &str = "backend_defrag_copied";
pub const FAILPOINT_MARKED: &str = "backend_defrag_marked";
pub const FAILPOINT_MOVED_OLD: &str = "backend_defrag_moved_old";
pub const FAILPOINT_SWAPPED: &str = "backend_defrag_swapped";

/// The names a swap uses next to `dir`.
pub struct SwapPaths {
    pub copy: PathBuf,
    pub marker: PathBuf,
    pub old: PathBuf,
}

impl SwapPaths {
    pub fn of(dir: &Path) -> SwapPaths {
        let with = |suffix: &str| {
            let mut name = dir.file_name().unwrap_or_default().to_os_string();
            name.push(suffix);
            dir.with_file_name(name)
        };
        SwapPaths {
            copy: with(".defrag"),
            marker: with(".defrag-done"),
            old: with(".old"),
        }
    }
}

/// Make the directory holding `path` durable (a rename or a new file in it).
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => fs::File::open(p)?.sync_all(),
        _ => Ok(()),
    }
}

fn remove_dir_if_there(p: &Path) -> io::Result<()> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Finish or undo a defragmentation a crash interrupted, before `dir` is opened.
pub fn recover(dir: &Path) -> io::Result<()> {
    let p = SwapPaths::of(dir);
    if p.marker.exists() {
        if p.copy.exists() {
            if dir.exists() {
                remove_dir_if_there(&p.old)?;
                fs::rename(dir, &p.old)?;
            }
            fs::rename(&p.copy, dir)?;
            sync_parent(dir)?;
        }
        fs::remove_file(&p.marker)?;
        sync_parent(dir)?;
    } else {
        // A copy without its marker may be partial: the database in `dir` is the one.
        remove_dir_if_there(&p.copy)?;
    }
    remove_dir_if_there(&p.old)
}

/// Mark the copy complete, then move it in place of `dir` (the old database must be
/// closed). Failpoint errors come back as IO errors.
pub fn swap_in(dir: &Path) -> io::Result<()> {
    let p = SwapPaths::of(dir);
    let fp = |name| crate::failpoint::hit(name).map_err(io::Error::other);
    fs::File::create(&p.marker)?.sync_all()?;
    sync_parent(&p.marker)?;
    fp(FAILPOINT_MARKED)?;
    remove_dir_if_there(&p.old)?;
    fs::rename(dir, &p.old)?;
    sync_parent(dir)?;
    fp(FAILPOINT_MOVED_OLD)?;
    fs::rename(&p.copy, dir)?;
    sync_parent(dir)?;
    fp(FAILPOINT_SWAPPED)?;
    fs::remove_file(&p.marker)?;
    sync_parent(dir)?;
    remove_dir_if_there(&p.old)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &Path, content: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("data"), content).unwrap();
    }

    fn content(dir: &Path) -> String {
        fs::read_to_string(dir.join("data")).unwrap()
    }

    #[test]
    fn every_interrupted_state_recovers_to_one_whole_database() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("db");
        let p = SwapPaths::of(&d);
        // A partial copy (no marker): the old database stays.
        db(&d, "old");
        db(&p.copy, "new");
        recover(&d).unwrap();
        assert_eq!(content(&d), "old");
        assert!(!p.copy.exists());
        // Marked, nothing renamed yet.
        db(&p.copy, "new");
        fs::write(&p.marker, "").unwrap();
        recover(&d).unwrap();
        assert_eq!(content(&d), "new");
        // Marked, the old one moved away.
        fs::rename(&d, &p.old).unwrap();
        db(&p.copy, "newer");
        fs::write(&p.marker, "").unwrap();
        recover(&d).unwrap();
        assert_eq!(content(&d), "newer");
        // Marked and swapped, the marker and old one left.
        db(&p.old, "stale");
        fs::write(&p.marker, "").unwrap();
        recover(&d).unwrap();
        assert_eq!(content(&d), "newer");
        for left in [&p.copy, &p.marker, &p.old] {
            assert!(!left.exists(), "{left:?} left behind");
        }
        // Only the old one left behind.
        db(&p.old, "stale");
        recover(&d).unwrap();
        assert!(!p.old.exists());
        assert_eq!(content(&d), "newer");
    }
}

//! `etcdctl snapshot status` (etcd 3.4: snapshot.Manager.Status): a CRC-32C over every
//! bucket's name and records in order, the revision of the last key version, the number
//! of records and the database's size.

use std::path::Path;

use super::bolt_read::BoltFile;
use super::{layout, Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
}

/// The status of the bbolt database at `path` (a trailer after it is ignored).
pub fn status(path: &Path) -> Result<Status, Error> {
    let db = BoltFile::open(path)?;
    let mut st = Status {
        hash: 0,
        revision: 0,
        total_key: 0,
        total_size: db.size(),
    };
    db.for_each(&mut |name, kv| {
        let Some((k, v)) = kv else {
            st.hash = crc32c::crc32c_append(st.hash, name);
            return Ok(());
        };
        st.hash = crc32c::crc32c_append(st.hash, k);
        st.hash = crc32c::crc32c_append(st.hash, v);
        if name == layout::KEY {
            st.revision = layout::key_revision(k).unwrap_or(0);
        }
        st.total_key += 1;
        Ok(())
    })?;
    Ok(st)
}

/// A size as etcd prints it (go-humanize's Bytes: powers of 1000, `90 kB`, `1.2 MB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_etcds() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(90112), "90 kB");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
        assert_eq!(human_bytes(60_000_000), "60 MB");
    }
}

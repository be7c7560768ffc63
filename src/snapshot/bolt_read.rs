//! A read-only walk over a bbolt database's pages (bbolt's page.go and bucket.go formats),
//! for the files etcd writes: bbolt-rs refuses a database whose freelist is not synced
//! (`NoFreelistSync`, etcd's default since 3.4), and reading needs none of the freelist.
//!
//! A page: id u64, flags u16, count u16, overflow u32, then its elements. The meta pages
//! (0 and 1): magic, version, page size, flags, the root bucket (root page, sequence),
//! freelist page, high-water page, txid, and an FNV-1a checksum of the fields before it;
//! the valid one with the higher txid is current. Branch elements: pos u32, ksize u32,
//! child page u64; leaf elements: flags u32, pos u32, ksize u32, vsize u32, where `pos`
//! counts from the element. A bucket's value is its root page and sequence; root 0 means
//! an inline bucket whose leaf page follows in the value.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::Error;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
/// Told each bucket as it begins (`None`) and each of its records (`Some((key, value))`).
pub type Visit<'a> = dyn FnMut(&[u8], Option<(&[u8], &[u8])>) -> Result<(), Error> + 'a;
/// Told each leaf element: its flags, key and value.
type LeafVisit<'a> = dyn FnMut(u32, &[u8], &[u8]) -> Result<(), Error> + 'a;

/// Tree depth past which a database is taken as corrupt (a loop of pages).
const MAX_DEPTH: usize = 64;

fn invalid(what: impl Into<String>) -> Error {
    Error::Invalid(format!("invalid database: {}", what.into()))
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, Error> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes(s.try_into().expect("2")))
        .ok_or_else(|| invalid("short page"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, Error> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4")))
        .ok_or_else(|| invalid("short page"))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, Error> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8")))
        .ok_or_else(|| invalid("short page"))
}

fn fnv1a64(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    page_size: u64,
    root: u64,
    high_water: u64,
    txid: u64,
}

fn parse_meta(page: &[u8]) -> Option<Meta> {
    let m = page.get(HEADER..HEADER + 64)?;
    let field = |at: usize| u64::from_le_bytes(m[at..at + 8].try_into().expect("8"));
    let magic = u32::from_le_bytes(m[0..4].try_into().ok()?);
    let version = u32::from_le_bytes(m[4..8].try_into().ok()?);
    let page_size = u32::from_le_bytes(m[8..12].try_into().ok()?);
    if magic != MAGIC || version != VERSION || fnv1a64(&m[..56]) != field(56) {
        return None;
    }
    Some(Meta {
        page_size: u64::from(page_size),
        root: field(16),
        high_water: field(40),
        txid: field(48),
    })
}

/// An open bbolt database, read page by page.
pub struct BoltFile {
    file: File,
    len: u64,
    meta: Meta,
}

impl BoltFile {
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut first = vec![0u8; 4096.min(len as usize)];
        file.read_exact_at(&mut first, 0)?;
        let m0 = parse_meta(&first);
        // Page 1 sits one page in, at the size page 0 gives (or the usual 4096).
        let size1 = m0.map_or(4096, |m| m.page_size);
        let mut second = vec![0u8; 4096.min(len.saturating_sub(size1) as usize)];
        file.read_exact_at(&mut second, size1)?;
        let m1 = parse_meta(&second).filter(|m| m.page_size == size1);
        let meta = match (m0, m1) {
            (Some(a), Some(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return Err(invalid("no valid meta page")),
        };
        if meta.page_size < 512 || meta.page_size > (1 << 20) {
            return Err(invalid(format!("page size {}", meta.page_size)));
        }
        Ok(BoltFile { file, len, meta })
    }

    /// The database's size as bbolt's `tx.Size()`: the high-water page times the page size.
    pub fn size(&self) -> u64 {
        self.meta.high_water * self.meta.page_size
    }

    /// Page `id` with its overflow pages.
    fn page(&self, id: u64) -> Result<Vec<u8>, Error> {
        let at = id
            .checked_mul(self.meta.page_size)
            .filter(|at| *at + HEADER as u64 <= self.len && id < self.meta.high_water.max(2))
            .ok_or_else(|| invalid(format!("page {id} out of range")))?;
        let mut head = vec![0u8; HEADER];
        self.file.read_exact_at(&mut head, at)?;
        let overflow = u64::from(u32_at(&head, 12)?);
        let bytes = (overflow + 1) * self.meta.page_size;
        if at + bytes > self.len {
            return Err(invalid(format!("page {id} runs past the file")));
        }
        let mut page = vec![0u8; bytes as usize];
        self.file.read_exact_at(&mut page, at)?;
        if u64_at(&page, 0)? != id {
            return Err(invalid(format!(
                "page {id} has the id {}",
                u64_at(&page, 0)?
            )));
        }
        Ok(page)
    }

    /// Every top-level bucket in order, then its records in key order: `f(bucket, None)`
    /// as a bucket begins, `f(bucket, Some((key, value)))` for each record. Nested buckets
    /// (etcd has none) are skipped.
    pub fn for_each(&self, f: &mut Visit<'_>) -> Result<(), Error> {
        let mut buckets = Vec::new();
        self.walk_page(self.page(self.meta.root)?, 0, &mut |flags, k, v| {
            if flags & BUCKET_LEAF != 0 {
                buckets.push((k.to_vec(), v.to_vec()));
            }
            Ok(())
        })?;
        for (name, value) in buckets {
            f(&name, None)?;
            let root = u64_at(&value, 0)?;
            let page = if root == 0 {
                value
                    .get(HEADER..)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| invalid("short inline bucket"))?
            } else {
                self.page(root)?
            };
            self.walk_page(page, 0, &mut |flags, k, v| {
                if flags & BUCKET_LEAF == 0 {
                    f(&name, Some((k, v)))?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn walk_page(&self, page: Vec<u8>, depth: usize, f: &mut LeafVisit<'_>) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(invalid("tree too deep"));
        }
        let flags = u16_at(&page, 8)?;
        let count = usize::from(u16_at(&page, 10)?);
        for i in 0..count {
            let el = HEADER + i * ELEMENT;
            let slice = |pos: usize, len: usize| {
                page.get(el + pos..el + pos + len)
                    .ok_or_else(|| invalid("element past its page"))
            };
            if flags & BRANCH != 0 {
                let child = u64_at(&page, el + 8)?;
                self.walk_page(self.page(child)?, depth + 1, f)?;
            } else if flags & LEAF != 0 {
                let eflags = u32_at(&page, el)?;
                let pos = u32_at(&page, el + 4)? as usize;
                let ksize = u32_at(&page, el + 8)? as usize;
                let vsize = u32_at(&page, el + 12)? as usize;
                f(eflags, slice(pos, ksize)?, slice(pos + ksize, vsize)?)?;
            } else {
                return Err(invalid(format!("page flags {flags:#x} in a tree")));
            }
        }
        Ok(())
    }
}

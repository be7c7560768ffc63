//! The state-machine snapshot format: a format version byte, then frames, each a kind byte
//! and a length-delimited message (proto/metastorepb/raft_storage.proto): one
//! `SnapshotHeader` (`h`), one `SnapshotRecord` per key of the state tree in key order
//! (`r`), and a `SnapshotFooter` (`f`) with the record count and a CRC-32 of every byte
//! before the footer's frame.
//!
//! Writing and reading both stream: neither needs the whole snapshot in memory.

use std::io::{Read, Write};

use bytes::Bytes;
use prost::Message;

use crate::apply::FORMAT_VERSION;
use crate::proto::metastorepb::{SnapshotFooter, SnapshotHeader, SnapshotRecord};

/// A snapshot that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("snapshot io: {0}")]
    Io(#[from] std::io::Error),
    #[error("snapshot format version {0} is not one this build reads")]
    Version(u8),
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
}

/// Writes a snapshot to `out` as its parts are given.
pub struct Writer<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    records: u64,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, header: &SnapshotHeader) -> Result<Self, Error> {
        let mut w = Writer {
            out,
            crc: crc32fast::Hasher::new(),
            records: 0,
            buf: Vec::with_capacity(4096),
        };
        w.put_raw(&[FORMAT_VERSION])?;
        w.put_message(HEADER, header)?;
        Ok(w)
    }

    fn put_raw(&mut self, b: &[u8]) -> Result<(), Error> {
        self.crc.update(b);
        self.out.write_all(b)?;
        Ok(())
    }

    fn put_message(&mut self, kind: u8, m: &impl Message) -> Result<(), Error> {
        self.buf.clear();
        self.buf.push(kind);
        m.encode_length_delimited(&mut self.buf)
            .expect("a Vec grows as needed");
        let buf = std::mem::take(&mut self.buf);
        let res = self.put_raw(&buf);
        self.buf = buf;
        res
    }

    pub fn record(&mut self, key: Bytes, value: Bytes) -> Result<(), Error> {
        self.records += 1;
        self.put_message(RECORD, &SnapshotRecord { key, value })
    }

    /// Writes the footer and hands back the output.
    pub fn finish(mut self) -> Result<W, Error> {
        let footer = SnapshotFooter {
            records: self.records,
            crc32c: self.crc.clone().finalize(),
        };
        self.buf.clear();
        self.buf.push(FOOTER);
        footer
            .encode_length_delimited(&mut self.buf)
            .expect("a Vec grows as needed");
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads a snapshot: the header first, then its records one at a time; the footer is
/// checked when the records end, so a torn or altered snapshot is refused.
pub struct Reader<R: Read> {
    input: R,
    crc: crc32fast::Hasher,
    header: SnapshotHeader,
    records: u64,
    done: bool,
}

fn read_varint(r: &mut impl Read, crc: Option<&mut crc32fast::Hasher>) -> Result<u64, Error> {
    let mut v = 0u64;
    let mut raw = Vec::with_capacity(10);
    for shift in (0..64).step_by(7) {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        raw.push(b[0]);
        v |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            if let Some(c) = crc {
                c.update(&raw);
            }
            return Ok(v);
        }
    }
    Err(Error::Corrupt("a length over 64 bits".into()))
}

const HEADER: u8 = b'h';
const RECORD: u8 = b'r';
const FOOTER: u8 = b'f';

/// Records larger than this are refused rather than allocated.
const MAX_MESSAGE: u64 = 256 << 20;

impl<R: Read> Reader<R> {
    pub fn new(mut input: R) -> Result<Self, Error> {
        let mut crc = crc32fast::Hasher::new();
        let mut v = [0u8; 1];
        input.read_exact(&mut v)?;
        if v[0] != FORMAT_VERSION {
            return Err(Error::Version(v[0]));
        }
        crc.update(&v);
        let mut r = Reader {
            input,
            crc,
            header: SnapshotHeader::default(),
            records: 0,
            done: false,
        };
        if r.kind()? != HEADER {
            return Err(Error::Corrupt("no header".into()));
        }
        r.crc.update(&[HEADER]);
        let bytes = r.message()?;
        r.header =
            SnapshotHeader::decode(bytes.as_slice()).map_err(|e| Error::Corrupt(e.to_string()))?;
        Ok(r)
    }

    pub fn header(&self) -> &SnapshotHeader {
        &self.header
    }

    /// The next frame's kind byte (added to the CRC by the caller when it is covered).
    fn kind(&mut self) -> Result<u8, Error> {
        let mut k = [0u8; 1];
        self.input.read_exact(&mut k)?;
        Ok(k[0])
    }

    fn message(&mut self) -> Result<Vec<u8>, Error> {
        let len = read_varint(&mut self.input, Some(&mut self.crc))?;
        if len > MAX_MESSAGE {
            return Err(Error::Corrupt(format!("a record of {len} bytes")));
        }
        let mut buf = vec![0u8; usize::try_from(len).expect("bounded above")];
        self.input.read_exact(&mut buf)?;
        self.crc.update(&buf);
        Ok(buf)
    }

    /// The next record, or `None` after the last one once the footer has checked out.
    pub fn next_record(&mut self) -> Result<Option<(Bytes, Bytes)>, Error> {
        if self.done {
            return Ok(None);
        }
        let crc_before = self.crc.clone();
        let kind = self.kind()?;
        if kind == FOOTER {
            let bytes = self.message()?;
            let footer = SnapshotFooter::decode(bytes.as_slice())
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            let crc = crc_before.finalize();
            if footer.crc32c != crc || footer.records != self.records {
                return Err(Error::Corrupt(format!(
                    "footer says {} records, crc {:08x}; read {} records, crc {crc:08x}",
                    footer.records, footer.crc32c, self.records
                )));
            }
            self.done = true;
            return Ok(None);
        }
        if kind != RECORD {
            return Err(Error::Corrupt(format!("a frame of kind {kind}")));
        }
        self.crc.update(&[kind]);
        let bytes = self.message()?;
        let rec =
            SnapshotRecord::decode(bytes.as_slice()).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.records += 1;
        Ok(Some((rec.key, rec.value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metastorepb::LogId;

    fn header() -> SnapshotHeader {
        SnapshotHeader {
            last_log_id: Some(LogId {
                term: 2,
                node_id: 1,
                index: 40,
            }),
            last_membership: None,
            snapshot_id: "2-1-40".into(),
        }
    }

    fn write(records: &[(&str, &str)]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), &header()).unwrap();
        for (k, v) in records {
            w.record(Bytes::from(k.to_string()), Bytes::from(v.to_string()))
                .unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(Bytes, Bytes)>, Error> {
        let mut r = Reader::new(bytes)?;
        assert_eq!(r.header(), &header());
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        Ok(out)
    }

    #[test]
    fn records_round_trip_and_an_empty_value_is_a_record() {
        let bytes = write(&[("a", "1"), ("b", ""), ("", "x"), ("", "")]);
        assert_eq!(bytes[0], FORMAT_VERSION);
        let got = read_all(&bytes).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[1], (Bytes::from("b"), Bytes::new()));
        assert_eq!(read_all(&write(&[])).unwrap().len(), 0);
    }

    #[test]
    fn a_torn_or_altered_snapshot_is_refused() {
        let bytes = write(&[("key", "value"), ("k2", "v2")]);
        for cut in 1..bytes.len() {
            assert!(read_all(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x01;
        assert!(read_all(&flipped).is_err());
        let mut other = bytes;
        other[0] = 9;
        assert!(matches!(
            Reader::new(other.as_slice()),
            Err(Error::Version(9))
        ));
    }
}

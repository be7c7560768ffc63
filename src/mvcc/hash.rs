//! The checksum behind HashKV (etcd: storage/mvcc/hash.go, 3.4's kvstore.go hashByRev).
//!
//! etcd hashes with CRC-32 in the Castagnoli polynomial (Go's `crc32.MakeTable(crc32.Castagnoli)`),
//! first over the bucket name `key`, then over each kept revision key and its value. The
//! registry was not reachable when this was written, so the `crc32c` crate could not be added;
//! this is the standard reflected, table-driven CRC-32C, checked against the published check
//! value below. Swap it for the crate when the registry is available.

/// The reflected Castagnoli polynomial (0x1EDC6F41 bit-reversed).
const POLY: u32 = 0x82F6_3B78;

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static TABLE: [u32; 256] = make_table();

/// Incremental CRC-32C, as Go's `hash.Hash32` from `crc32.New(castagnoliTable)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Crc32c {
    state: u32,
}

impl Crc32c {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed `data`; the sum covers everything written so far.
    pub fn write(&mut self, data: &[u8]) {
        let mut crc = !self.state;
        for &b in data {
            crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
        }
        self.state = !crc;
    }

    pub fn sum32(&self) -> u32 {
        self.state
    }
}

/// CRC-32C of one buffer.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut h = Crc32c::new();
    h.write(data);
    h.sum32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_check_value() {
        // CRC-32C check value (RFC 3720 appendix B.4 / the CRC catalogue).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 B.4: 32 bytes of zeros and of 0xFF.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    }

    #[test]
    fn incremental_writes_equal_one_write() {
        let data = b"key\x00\x00\x00\x00\x00\x00\x00\x02_\x00\x00\x00\x00\x00\x00\x00\x00";
        for split in 0..data.len() {
            let mut h = Crc32c::new();
            h.write(&data[..split]);
            h.write(&data[split..]);
            assert_eq!(h.sum32(), crc32c(data), "split at {split}");
        }
    }
}

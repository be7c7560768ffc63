//! Key encoding of the namespace: hex of region end keys (so string order is byte order),
//! plus infinity, and the key of every record.

use crate::meta::prefix_end;

/// The index suffix of plus infinity: `~` sorts after every lowercase hex string.
const INFINITY: &str = "~";

/// Lowercase hex: two digits per byte, so string order is byte order.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The inverse of [`hex`]; `None` unless `s` is lowercase hex of even length.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    pub(super) fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The index suffix of an end key: its hex, or `~` for plus infinity (empty).
pub fn encode_end(end: &[u8]) -> String {
    if end.is_empty() {
        INFINITY.to_string()
    } else {
        hex(end)
    }
}

/// The inverse of [`encode_end`].
pub fn decode_end(suffix: &str) -> Option<Vec<u8>> {
    match suffix {
        INFINITY => Some(Vec::new()),
        "" => None,
        hexed => unhex(hexed),
    }
}

/// serde's `with` module for byte strings stored as lowercase hex.
pub(super) mod hex_bytes {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::unhex(&s).ok_or_else(|| D::Error::custom("not lowercase hex"))
    }
}

/// The keys of the namespace.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) ns: String,
}

impl Keys {
    pub(super) fn index_prefix(&self) -> String {
        format!("{}index/", self.ns)
    }

    pub(super) fn index(&self, end: &[u8]) -> String {
        format!("{}index/{}", self.ns, encode_end(end))
    }

    /// The first index key whose region ends strictly after `key`.
    pub(super) fn index_after(&self, key: &[u8]) -> String {
        format!("{}index/{}\0", self.ns, hex(key))
    }

    pub(super) fn index_end(&self) -> Vec<u8> {
        prefix_end(self.index_prefix().as_bytes())
    }

    pub(super) fn id(&self, region_id: u64) -> String {
        format!("{}id/{region_id:020}", self.ns)
    }

    pub(super) fn stats(&self, region_id: u64) -> String {
        format!("{}stats/{region_id:020}", self.ns)
    }

    pub(super) fn store_prefix(&self) -> String {
        format!("{}store/", self.ns)
    }

    pub(super) fn store(&self, store_id: u64) -> String {
        format!("{}store/{store_id:020}", self.ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_keeps_byte_order() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\x00",
            b"\x00\x00",
            b"\x00\xff",
            b"\x01",
            b"a",
            b"ab",
            b"\xff",
            b"\xff\x00",
        ];
        for k in &keys {
            assert_eq!(unhex(&hex(k)).as_deref(), Some(*k));
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(a.cmp(b), hex(a).cmp(&hex(b)), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(hex(b"\x0a\xff"), "0aff");
        assert_eq!(unhex("0A"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn infinity_sorts_after_every_finite_end() {
        for end in [&b"\xff\xff\xff"[..], b"\x00", b"z"] {
            assert!(encode_end(end) < encode_end(b""));
            // and after the locate key of any finite key
            assert!(format!("{}\0", hex(end)) < encode_end(b""));
        }
        assert_eq!(decode_end("~"), Some(Vec::new()));
        assert_eq!(decode_end("61"), Some(b"a".to_vec()));
        assert_eq!(decode_end(""), None);
    }
}

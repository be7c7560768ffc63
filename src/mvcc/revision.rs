//! Revisions (etcd: storage/mvcc/revision.go).
//!
//! A revision is `(main, sub)`: `main` is the store revision of a write transaction and
//! `sub` numbers the changes inside it. In the backend a key version is stored under the
//! 17-byte big-endian form `main ‖ '_' ‖ sub`, followed by `'t'` when it is a tombstone, so
//! a scan of the key prefix visits versions in revision order.

use bytes::{BufMut, Bytes, BytesMut};

use crate::storage::schema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// Length of an encoded revision, without the tombstone mark.
pub const REV_BYTES_LEN: usize = 17;
const TOMBSTONE_MARK: u8 = b't';

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// The backend key of this revision in the state tree.
    pub fn to_backend_key(self, tombstone: bool) -> Bytes {
        let mut b = BytesMut::with_capacity(1 + REV_BYTES_LEN + 1);
        b.put_u8(schema::KEY);
        b.put_i64(self.main);
        b.put_u8(b'_');
        b.put_i64(self.sub);
        if tombstone {
            b.put_u8(TOMBSTONE_MARK);
        }
        b.freeze()
    }

    /// The first backend key of versions with a main revision of at least `main`.
    pub fn backend_key_from_main(main: i64) -> Bytes {
        Revision::new(main, 0).to_backend_key(false)
    }

    /// Decode a backend key: the revision, and whether it marks a tombstone.
    pub fn from_backend_key(key: &[u8]) -> Option<(Revision, bool)> {
        if key.len() < 1 + REV_BYTES_LEN || key[0] != schema::KEY {
            return None;
        }
        let main = i64::from_be_bytes(key[1..9].try_into().ok()?);
        let sub = i64::from_be_bytes(key[10..18].try_into().ok()?);
        let tombstone = key.len() == 1 + REV_BYTES_LEN + 1 && key[18] == TOMBSTONE_MARK;
        Some((Revision { main, sub }, tombstone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_keys_sort_in_revision_order_and_round_trip() {
        let revs = [
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(2, 0),
            Revision::new(256, 3),
        ];
        let keys: Vec<Bytes> = revs.iter().map(|r| r.to_backend_key(false)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for r in revs {
            assert_eq!(
                Revision::from_backend_key(&r.to_backend_key(false)),
                Some((r, false))
            );
            assert_eq!(
                Revision::from_backend_key(&r.to_backend_key(true)),
                Some((r, true))
            );
        }
    }
}

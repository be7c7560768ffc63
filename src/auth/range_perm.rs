//! Whether a user's roles cover a key or a key range (etcd: auth/range_perm_cache.go).
//!
//! Every permission becomes a half-open interval `[begin, end)`: a single-key permission
//! is `[key, key + "\0")`, a prefix or range permission `[key, range_end)`, and a
//! permission whose range end is `"\0"` (from a key on) has no end. A key is permitted
//! when one interval holds it; a range `[key, range_end)` (no end for `"\0"`) when the
//! union of the intervals covers all of it, as etcd's interval tree `Contains` decides.

use crate::proto::authpb::{permission::Type as PermType, Permission};

/// One interval; `end == None` means no upper bound.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    begin: Vec<u8>,
    end: Option<Vec<u8>>,
}

/// The read and the write intervals of one user, from every role it holds.
#[derive(Debug, Default, Clone)]
pub struct UnifiedPerms {
    read: Vec<Interval>,
    write: Vec<Interval>,
}

fn interval(p: &Permission) -> Interval {
    let begin = p.key.to_vec();
    let end = if p.range_end.is_empty() {
        let mut e = begin.clone();
        e.push(0);
        Some(e)
    } else if p.range_end.as_ref() == [0] {
        None
    } else {
        Some(p.range_end.to_vec())
    };
    Interval { begin, end }
}

/// Whether `a < b` where `None` is above every key.
fn below(a: &[u8], b: &Option<Vec<u8>>) -> bool {
    match b {
        None => true,
        Some(b) => a < b.as_slice(),
    }
}

impl UnifiedPerms {
    pub fn new<'a>(perms: impl IntoIterator<Item = &'a Permission>) -> Self {
        let mut u = UnifiedPerms::default();
        for p in perms {
            let ivl = interval(p);
            match PermType::try_from(p.perm_type) {
                Ok(PermType::Read) => u.read.push(ivl),
                Ok(PermType::Write) => u.write.push(ivl),
                Ok(PermType::Readwrite) => {
                    u.read.push(ivl.clone());
                    u.write.push(ivl);
                }
                Err(_) => {}
            }
        }
        u.read.sort_by(|a, b| a.begin.cmp(&b.begin));
        u.write.sort_by(|a, b| a.begin.cmp(&b.begin));
        u
    }

    pub fn can_read(&self, key: &[u8], range_end: &[u8]) -> bool {
        covers(&self.read, key, range_end)
    }

    pub fn can_write(&self, key: &[u8], range_end: &[u8]) -> bool {
        covers(&self.write, key, range_end)
    }
}

/// `ivls` sorted by begin. A key alone (`range_end` empty) must sit in one interval; a
/// range must be covered by their union without a gap.
fn covers(ivls: &[Interval], key: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        return ivls
            .iter()
            .any(|i| i.begin.as_slice() <= key && below(key, &i.end));
    }
    let want_end: Option<Vec<u8>> = if range_end == [0] {
        None
    } else {
        Some(range_end.to_vec())
    };
    // Sweep: `reached` is how far from `key` the union covers so far.
    let mut reached: Option<Vec<u8>> = Some(key.to_vec());
    for i in ivls {
        let Some(cur) = reached.as_ref() else { break };
        if !below(cur, &want_end) {
            break;
        }
        if i.begin.as_slice() > cur.as_slice() {
            // intervals are sorted by begin: nothing later starts at or before `cur`
            break;
        }
        let extends = match (&i.end, cur) {
            (None, _) => true,
            (Some(e), c) => e.as_slice() > c.as_slice(),
        };
        if extends {
            reached = i.end.clone();
        }
    }
    match (&reached, &want_end) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(r), Some(w)) => r >= w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: PermType, key: &str, end: &[u8]) -> Permission {
        Permission {
            perm_type: t as i32,
            key: key.as_bytes().to_vec().into(),
            range_end: end.to_vec().into(),
        }
    }

    #[test]
    fn keys_prefixes_and_open_ends() {
        let perms = [
            perm(PermType::Read, "a", b""),
            perm(PermType::Readwrite, "p/", b"p0"),
            perm(PermType::Write, "z", &[0]),
        ];
        let u = UnifiedPerms::new(perms.iter());
        assert!(u.can_read(b"a", b""));
        assert!(!u.can_read(b"ab", b""));
        assert!(!u.can_write(b"a", b""));
        assert!(u.can_read(b"a", b"a\0"));
        assert!(!u.can_read(b"a", b"b"));
        assert!(u.can_read(b"p/x", b""));
        assert!(u.can_write(b"p/", b"p0"));
        assert!(u.can_read(b"p/a", b"p/b"));
        assert!(!u.can_read(b"p/", b"p1"));
        assert!(u.can_write(b"zz", b""));
        assert!(u.can_write(b"z", &[0]));
        assert!(!u.can_write(b"y", &[0]));
        assert!(!u.can_read(b"z", b""));
    }

    #[test]
    fn a_range_is_covered_by_adjacent_permissions_only_without_a_gap() {
        let perms = [
            perm(PermType::Read, "a", b"c"),
            perm(PermType::Read, "c", b"e"),
            perm(PermType::Read, "f", b"g"),
        ];
        let u = UnifiedPerms::new(perms.iter());
        assert!(u.can_read(b"a", b"e"));
        assert!(u.can_read(b"b", b"d"));
        assert!(!u.can_read(b"a", b"g"));
        assert!(!u.can_read(b"a", &[0]));
        assert!(!UnifiedPerms::default().can_read(b"a", b""));
    }
}

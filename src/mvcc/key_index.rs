//! The history of one key (etcd: storage/mvcc/key_index.go).
//!
//! A key's life is a list of generations. A generation starts with the put that creates
//! the key and ends with the tombstone that deletes it; the last generation is the current
//! one and may be empty (the key is deleted now). Example, for puts at revisions 1, 2, a
//! delete at 3, a put at 4 and a delete at 5, then a put at 6:
//!
//! ```text
//! generations:  {1.0, 2.0, 3.0(t)}  {4.0, 5.0(t)}  {6.0}
//! ```
//!
//! Compacting at 2 keeps `{2.0, 3.0(t)} {4.0, 5.0(t)} {6.0}`: the latest version at or
//! below 2 stays readable. Compacting at 4 drops the first generation whole (its tombstone
//! is at or below 4) and keeps `{4.0, 5.0(t)} {6.0}`. Compacting at 5 leaves `{6.0}`.

use std::collections::HashSet;

use smallvec::{smallvec, SmallVec};

use super::revision::Revision;

/// A generation's revisions: most keys are put once between compactions, so one is held
/// inline (no allocation of its own; issue 16, the index's bytes per key).
pub type Revisions = SmallVec<[Revision; 1]>;
/// A key's generations: most keys have only the current one, held inline.
pub type Generations = SmallVec<[Generation; 1]>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generation {
    /// Number of changes in this generation, the tombstone included.
    pub ver: i64,
    /// The revision that created the key in this generation.
    pub created: Revision,
    pub revs: Revisions,
}

impl Generation {
    pub fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Index of the newest revision at or below `at_main`, if any.
    fn newest_at_or_below(&self, at_main: i64) -> Option<usize> {
        self.revs.iter().rposition(|r| r.main <= at_main)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIndex {
    pub modified: Revision,
    pub generations: Generations,
}

/// What a read at some revision sees of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAt {
    pub modified: Revision,
    pub created: Revision,
    pub version: i64,
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self {
            modified: Revision::default(),
            generations: smallvec![Generation::default()],
        }
    }
}

impl KeyIndex {
    /// Record a put at `rev`. Revisions must only grow: anything else would diverge replicas.
    pub fn put(&mut self, rev: Revision) {
        assert!(
            rev > self.modified,
            "mvcc: put revision {rev:?} is not above {:?}",
            self.modified
        );
        let g = self
            .generations
            .last_mut()
            .expect("key index has a generation");
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
    }

    /// Rebuild from the backend: a version read back with its creation revision and version.
    pub fn restore(&mut self, created: Revision, modified: Revision, ver: i64) {
        let g = self
            .generations
            .last_mut()
            .expect("key index has a generation");
        if g.revs.is_empty() {
            g.created = created;
        }
        g.revs.push(modified);
        g.ver = ver;
        self.modified = modified;
    }

    /// Record a delete at `rev`: the tombstone closes the current generation.
    pub fn tombstone(&mut self, rev: Revision) {
        self.put(rev);
        self.generations.push(Generation::default());
    }

    /// Whether the key exists at its latest revision (its current generation has a put).
    pub fn is_live(&self) -> bool {
        self.generations.last().is_some_and(|g| !g.is_empty())
    }

    /// Whether nothing is left (one empty generation).
    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty()
    }

    /// The generation live at `at_main`, if the key existed then.
    fn find_generation(&self, at_main: i64) -> Option<&Generation> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            if g.revs.is_empty() {
                continue;
            }
            if i != last && g.revs[g.revs.len() - 1].main <= at_main {
                // Deleted at or before `at_main`.
                return None;
            }
            if g.revs[0].main <= at_main {
                return Some(g);
            }
        }
        None
    }

    /// The version of the key visible at `at_main`, if it existed then.
    pub fn get(&self, at_main: i64) -> Option<KeyAt> {
        let g = self.find_generation(at_main)?;
        let n = g.newest_at_or_below(at_main)?;
        let behind = i64::try_from(g.revs.len() - n - 1).expect("generation length fits i64");
        Some(KeyAt {
            modified: g.revs[n],
            created: g.created,
            version: g.ver - behind,
        })
    }

    /// Compact at `at_main`: drop versions no read at or after `at_main` can see, and add
    /// the version that stays visible at `at_main` to `available`.
    pub fn compact(&mut self, at_main: i64, available: &mut HashSet<Revision>) {
        let (mut gen_idx, rev_idx) = self.do_compact(at_main, available);
        let is_last = gen_idx == self.generations.len() - 1;
        let g = &mut self.generations[gen_idx];
        if !g.is_empty() {
            if let Some(i) = rev_idx {
                g.revs.drain(..i);
            }
            // A generation reduced to its tombstone is gone.
            if g.revs.len() == 1 && !is_last {
                available.remove(&g.revs[0]);
                gen_idx += 1;
            }
        }
        self.generations.drain(..gen_idx);
        // What a compaction leaves of most keys fits inline again: give back the heap.
        for g in &mut self.generations {
            if g.revs.spilled() && g.revs.len() <= 1 {
                g.revs.shrink_to_fit();
            }
        }
        if self.generations.spilled() && self.generations.len() <= 1 {
            self.generations.shrink_to_fit();
        }
    }

    /// The version of this key that a compaction at `at_main` keeps, added to `available`,
    /// without compacting (etcd: keyIndex.keep, used by HashKV).
    pub fn keep(&self, at_main: i64, available: &mut HashSet<Revision>) {
        if self.generations.is_empty() {
            return;
        }
        let (gen_idx, rev_idx) = self.do_compact(at_main, available);
        let g = &self.generations[gen_idx];
        if let Some(i) = rev_idx {
            // A tombstone ending a generation is not kept.
            if i == g.revs.len() - 1 && gen_idx != self.generations.len() - 1 {
                available.remove(&g.revs[i]);
            }
        }
    }

    fn do_compact(
        &self,
        at_main: i64,
        available: &mut HashSet<Revision>,
    ) -> (usize, Option<usize>) {
        let mut gen_idx = 0;
        while gen_idx < self.generations.len() - 1 {
            let g = &self.generations[gen_idx];
            let tomb = g.revs[g.revs.len() - 1].main;
            if tomb > at_main {
                break;
            }
            gen_idx += 1;
        }
        let g = &self.generations[gen_idx];
        let rev_idx = g.newest_at_or_below(at_main);
        if let Some(i) = rev_idx {
            available.insert(g.revs[i]);
        }
        (gen_idx, rev_idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// The example from the module doc.
    fn example() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(r(1));
        ki.put(r(2));
        ki.tombstone(r(3));
        ki.put(r(4));
        ki.tombstone(r(5));
        ki.put(r(6));
        ki
    }

    #[test]
    fn get_sees_each_generation() {
        let ki = example();
        assert_eq!(ki.get(0), None);
        assert_eq!(
            ki.get(1),
            Some(KeyAt {
                modified: r(1),
                created: r(1),
                version: 1
            })
        );
        assert_eq!(
            ki.get(2),
            Some(KeyAt {
                modified: r(2),
                created: r(1),
                version: 2
            })
        );
        assert_eq!(ki.get(3), None);
        assert_eq!(
            ki.get(4),
            Some(KeyAt {
                modified: r(4),
                created: r(4),
                version: 1
            })
        );
        assert_eq!(ki.get(5), None);
        assert_eq!(
            ki.get(9),
            Some(KeyAt {
                modified: r(6),
                created: r(6),
                version: 1
            })
        );
    }

    #[test]
    fn compact_follows_etcd() {
        let cases: [(i64, Vec<Vec<i64>>, Vec<i64>); 6] = [
            (1, vec![vec![1, 2, 3], vec![4, 5], vec![6]], vec![1]),
            (2, vec![vec![2, 3], vec![4, 5], vec![6]], vec![2]),
            (3, vec![vec![4, 5], vec![6]], vec![]),
            (4, vec![vec![4, 5], vec![6]], vec![4]),
            (5, vec![vec![6]], vec![]),
            (6, vec![vec![6]], vec![6]),
        ];
        for (at, gens, avail) in cases {
            let mut ki = example();
            let mut available = HashSet::new();
            ki.compact(at, &mut available);
            let got: Vec<Vec<i64>> = ki
                .generations
                .iter()
                .map(|g| g.revs.iter().map(|r| r.main).collect())
                .collect();
            assert_eq!(got, gens, "compact at {at}");
            let mut got_avail: Vec<i64> = available.iter().map(|r| r.main).collect();
            got_avail.sort();
            assert_eq!(got_avail, avail, "available at {at}");
        }
    }

    #[test]
    fn version_survives_compaction() {
        let mut ki = KeyIndex::default();
        for m in 1..=5 {
            ki.put(r(m));
        }
        ki.compact(4, &mut HashSet::new());
        assert_eq!(ki.get(5).unwrap().version, 5);
        assert_eq!(ki.get(4).unwrap().version, 4);
        assert_eq!(ki.get(5).unwrap().created, r(1));
    }
}

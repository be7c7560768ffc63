//! An in-memory [`Backend`] for tests of the layers above storage.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;

use super::{Backend, Result, Tree, WriteBatch};

#[derive(Default)]
pub struct MemoryBackend {
    trees: Mutex<HashMap<Tree, BTreeMap<Bytes, Bytes>>>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Backend for MemoryBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Bytes>> {
        let trees = self.trees.lock().expect("memory backend lock");
        Ok(trees.get(&tree).and_then(|t| t.get(key).cloned()))
    }

    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        let trees = self.trees.lock().expect("memory backend lock");
        let Some(t) = trees.get(&tree) else {
            return Ok(Vec::new());
        };
        let start = Bytes::copy_from_slice(start);
        let iter = t
            .range(start..)
            .take_while(|(k, _)| end.is_empty() || k.as_ref() < end);
        let items = iter.map(|(k, v)| (k.clone(), v.clone()));
        Ok(if limit == 0 {
            items.collect()
        } else {
            items.take(limit).collect()
        })
    }

    fn last(&self, tree: Tree) -> Result<Option<(Bytes, Bytes)>> {
        let trees = self.trees.lock().expect("memory backend lock");
        Ok(trees
            .get(&tree)
            .and_then(|t| t.last_key_value().map(|(k, v)| (k.clone(), v.clone()))))
    }

    fn write(&self, tree: Tree, batch: WriteBatch) -> Result<()> {
        let mut trees = self.trees.lock().expect("memory backend lock");
        let t = trees.entry(tree).or_default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => t.insert(k, v),
                None => t.remove(&k),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn clear(&self, tree: Tree) -> Result<()> {
        self.trees
            .lock()
            .expect("memory backend lock")
            .remove(&tree);
        Ok(())
    }

    fn size(&self) -> u64 {
        let trees = self.trees.lock().expect("memory backend lock");
        trees
            .values()
            .flat_map(|t| t.iter())
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SledBackend;

    /// One suite for every backend (TiKV's engine_traits_tests habit).
    fn suite(b: &dyn Backend) {
        let mut batch = WriteBatch::default();
        for k in ["a", "b", "c", "d"] {
            batch.put(Bytes::from(k), Bytes::from(format!("v{k}")));
        }
        b.write(Tree::State, batch).unwrap();
        assert_eq!(
            b.get(Tree::State, b"b").unwrap().unwrap(),
            Bytes::from("vb")
        );
        assert!(b.get(Tree::RaftLog, b"b").unwrap().is_none());
        let r = b.range(Tree::State, b"b", b"d", 0).unwrap();
        assert_eq!(
            r.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            vec![Bytes::from("b"), Bytes::from("c")]
        );
        assert_eq!(b.range(Tree::State, b"a", b"", 3).unwrap().len(), 3);
        let mut batch = WriteBatch::default();
        batch.remove(Bytes::from("a"));
        b.write(Tree::State, batch).unwrap();
        assert!(b.get(Tree::State, b"a").unwrap().is_none());
        assert_eq!(b.last(Tree::State).unwrap().unwrap().0, Bytes::from("d"));
        b.flush().unwrap();
        b.clear(Tree::State).unwrap();
        assert!(b.range(Tree::State, b"", b"", 0).unwrap().is_empty());
    }

    #[test]
    fn memory_backend_suite() {
        suite(&MemoryBackend::new());
    }

    #[test]
    fn sled_backend_suite() {
        let dir = tempfile::tempdir().unwrap();
        suite(&SledBackend::open(dir.path()).unwrap());
    }
}

//! openraft's storage conformance suite (`openraft::testing::Suite`) on our log store and
//! state machine, over the in-memory backend and over sled.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};

use super::types::{StorageError, TypeConfig};
use super::{LogStore, StateMachine};
use crate::storage::{Backend, MemoryBackend, SledBackend};

struct Builder {
    sled: bool,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend: Arc<dyn Backend> = if self.sled {
            Arc::new(SledBackend::open(&dir.path().join("db")).expect("sled"))
        } else {
            Arc::new(MemoryBackend::default())
        };
        let sm = StateMachine::open(backend.clone(), 1, dir.path().join("snap"), 10_000)?;
        Ok((dir, LogStore::new(backend), sm))
    }
}

#[test]
fn openraft_storage_suite_on_memory() {
    Suite::test_all(Builder { sled: false }).expect("suite");
}

#[test]
fn openraft_storage_suite_on_sled() {
    Suite::test_all(Builder { sled: true }).expect("suite");
}

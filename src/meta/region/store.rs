//! Stores: the nodes that hold region peers. A region change that places a peer checks
//! that its store is Up in the same transaction.

use etcd_client::{Compare, GetOptions};

use super::record::{Outcome, Refusal, Store, StoreState};
use super::regions::{put_json, Regions};
use crate::meta::{decode_json, unchanged_since, Result, MAX_ATTEMPTS};

impl Regions {
    /// Create or replace a store; a tombstone store cannot change state again.
    pub async fn put_store(&self, store: Store) -> Result<Outcome<()>> {
        let key = self.keys.store(store.id);
        for _ in 0..MAX_ATTEMPTS {
            let read = self.get_json::<Store>(&key).await?;
            if let Some((current, _)) = &read {
                if current.state == StoreState::Tombstone && store.state != StoreState::Tombstone {
                    return Ok(Err(Refusal::StoreTombstone { store_id: store.id }));
                }
            }
            let rev = read.map_or(0, |(_, rev)| rev);
            if self
                .commit(
                    vec![unchanged_since(&key, rev)],
                    vec![put_json(&key, &store)],
                )
                .await?
            {
                return Ok(Ok(()));
            }
        }
        Ok(Err(Refusal::StoreConflict { store_id: store.id }))
    }

    pub async fn get_store(&self, store_id: u64) -> Result<Option<Store>> {
        Ok(self
            .get_json(&self.keys.store(store_id))
            .await?
            .map(|(s, _)| s))
    }

    /// Every store, by id.
    pub async fn list_stores(&self) -> Result<Vec<Store>> {
        let prefix = self.keys.store_prefix();
        let options = GetOptions::new().with_prefix();
        let resp = self.kv.clone().get(prefix, Some(options)).await?;
        resp.kvs()
            .iter()
            .map(|kv| decode_json(kv.key(), kv.value()))
            .collect()
    }

    /// A compare that holds while store `store_id` stays as read, refused unless it is Up.
    pub(super) async fn store_up(&self, store_id: u64) -> Result<Outcome<Compare>> {
        let key = self.keys.store(store_id);
        let Some((store, rev)) = self.get_json::<Store>(&key).await? else {
            return Ok(Err(Refusal::StoreNotFound { store_id }));
        };
        if store.state != StoreState::Up {
            return Ok(Err(Refusal::StoreNotUp {
                store_id,
                state: store.state,
            }));
        }
        Ok(Ok(unchanged_since(&key, rev)))
    }
}

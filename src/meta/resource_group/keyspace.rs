//! Keyspace names and their ids, under `{root}/keyspace/`.

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use super::{Keyspace, Outcome, Refusal, ResourceGroups, NULL_KEYSPACE_ID};
use crate::meta::{decode_json, decode_kv, encode_json, unchanged, Result, MAX_ATTEMPTS};

impl ResourceGroups {
    /// Register a keyspace name; ids are handed out from 1 upwards.
    pub async fn create_keyspace(&self, name: &str) -> Result<Outcome<Keyspace>> {
        if let Err(r) = self.check_settings_role() {
            return Ok(Err(r));
        }
        if name.is_empty() || name.contains('/') {
            return Ok(Err(Refusal::Invalid(format!("keyspace name {name:?}"))));
        }
        let name_key = format!("{}name/{name}", self.keyspaces);
        let next_key = format!("{}next_id", self.keyspaces);
        for _ in 0..MAX_ATTEMPTS {
            if self.get_kv(&name_key).await?.is_some() {
                return Ok(Err(Refusal::KeyspaceExists(name.into())));
            }
            let next = self.get_kv(&next_key).await?;
            let id = decode_kv::<u32>(&next)?.unwrap_or(1);
            // the null keyspace's id is never handed out
            if id == NULL_KEYSPACE_ID {
                return Ok(Err(Refusal::Invalid("no keyspace id is left".into())));
            }
            let following = id + 1;
            let guard = unchanged(&next_key, &next);
            let ks = Keyspace {
                name: name.into(),
                id,
            };
            let txn = Txn::new()
                .when([
                    guard,
                    Compare::create_revision(name_key.as_str(), CompareOp::Equal, 0),
                ])
                .and_then([
                    TxnOp::put(name_key.as_str(), encode_json(&ks), None),
                    TxnOp::put(next_key.as_str(), encode_json(&following), None),
                ]);
            if self.txn(txn).await? {
                return Ok(Ok(ks));
            }
        }
        Ok(Err(Refusal::Contended(format!("keyspace {name}"))))
    }

    /// The keyspace of a name, if registered.
    pub async fn keyspace(&self, name: &str) -> Result<Option<Keyspace>> {
        let key = format!("{}name/{name}", self.keyspaces);
        match self.get_kv(&key).await? {
            Some(kv) => decode_json(kv.key(), kv.value()).map(Some),
            None => Ok(None),
        }
    }
}

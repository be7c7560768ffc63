//! A group's token state: written only by token writers, never by settings writes.

use etcd_client::TxnOp;

use super::{Outcome, Refusal, ResourceGroups, TokenState, NULL_KEYSPACE_ID};
use crate::meta::{commit, decode_json, encode_json, unchanged, Result, MAX_ATTEMPTS};

impl ResourceGroups {
    pub async fn token_state(&self, keyspace: u32, name: &str) -> Result<Option<TokenState>> {
        let mut keys = vec![self.state_key(keyspace, name)];
        if keyspace == NULL_KEYSPACE_ID {
            keys.push(self.legacy_state_key(name));
        }
        for key in keys {
            if let Some(kv) = self.get_kv(&key).await? {
                return decode_json(kv.key(), kv.value()).map(Some);
            }
        }
        Ok(None)
    }

    /// Save a group's token state; the group must exist. Never touches settings.
    pub async fn save_token_state(
        &self,
        keyspace: u32,
        name: &str,
        state: &TokenState,
    ) -> Result<Outcome<()>> {
        if !self.role.may_write_tokens() {
            return Ok(Err(Refusal::WrongRole {
                role: self.role,
                what: "resource group token state",
            }));
        }
        let value = encode_json(state);
        for _ in 0..MAX_ATTEMPTS {
            let Some((_, kv)) = self.read_settings(keyspace, name).await? else {
                return Ok(Err(Refusal::NotFound(name.into())));
            };
            // the group must still be where it was read when the state lands
            let read_from = String::from_utf8_lossy(kv.key()).into_owned();
            let exists = unchanged(&read_from, &Some(kv));
            let put = TxnOp::put(self.state_key(keyspace, name), value.clone(), None);
            if commit(&self.client, vec![exists], vec![put]).await? {
                return Ok(Ok(()));
            }
        }
        Ok(Err(Refusal::Contended(format!("resource group {name}"))))
    }
}

//! A group's settings: add, modify, delete, get and list, on the keyspace path with the
//! legacy path as a fallback for the null keyspace.

use std::collections::BTreeMap;

use etcd_client::{Compare, CompareOp, KeyValue, Txn, TxnOp, TxnOpResponse};

use super::{Outcome, Refusal, ResourceGroup, ResourceGroups, DEFAULT_GROUP, NULL_KEYSPACE_ID};
use crate::meta::{commit, decode_json, encode_json, read_keys, unchanged, Result, MAX_ATTEMPTS};

impl ResourceGroups {
    /// The keys a group's settings may be at, the keyspace path first.
    pub(super) fn settings_keys(&self, keyspace: u32, name: &str) -> Vec<String> {
        let mut keys = vec![self.settings_key(keyspace, name)];
        if keyspace == NULL_KEYSPACE_ID {
            keys.push(self.legacy_settings_key(name));
        }
        keys
    }

    /// The group's settings record and the key it was read from (keyspace path first),
    /// both paths read at one revision.
    pub(super) async fn read_settings(
        &self,
        keyspace: u32,
        name: &str,
    ) -> Result<Option<(ResourceGroup, KeyValue)>> {
        let keys = self.settings_keys(keyspace, name);
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        match read_keys(&self.client, &refs)
            .await?
            .into_iter()
            .flatten()
            .next()
        {
            Some(kv) => Ok(Some((decode_json(kv.key(), kv.value())?, kv))),
            None => Ok(None),
        }
    }

    /// Add a group; refused if one of that name exists in the keyspace (on either path).
    pub async fn add(&self, keyspace: u32, group: ResourceGroup) -> Result<Outcome<()>> {
        if let Err(r) = self.check_settings_role().and_then(|_| group.validate()) {
            return Ok(Err(r));
        }
        let name = group.name.clone();
        let key = self.settings_key(keyspace, &name);
        let mut absent = vec![Compare::create_revision(key.as_str(), CompareOp::Equal, 0)];
        if keyspace == NULL_KEYSPACE_ID {
            let legacy = self.legacy_settings_key(&name);
            absent.push(Compare::create_revision(legacy, CompareOp::Equal, 0));
        }
        let value = encode_json(&group.settings_only(keyspace));
        let txn = Txn::new()
            .when(absent)
            .and_then([TxnOp::put(key, value, None)]);
        Ok(if self.txn(txn).await? {
            Ok(())
        } else {
            Err(Refusal::AlreadyExists(name))
        })
    }

    /// Replace a group's settings; the mode cannot change and the group must exist.
    pub async fn modify(&self, keyspace: u32, group: ResourceGroup) -> Result<Outcome<()>> {
        if let Err(r) = self.check_settings_role().and_then(|_| group.validate()) {
            return Ok(Err(r));
        }
        let name = group.name.clone();
        let key = self.settings_key(keyspace, &name);
        let value = encode_json(&group.clone().settings_only(keyspace));
        for _ in 0..MAX_ATTEMPTS {
            let Some((old, kv)) = self.read_settings(keyspace, &name).await? else {
                return Ok(Err(Refusal::NotFound(name)));
            };
            if old.mode != group.mode {
                return Ok(Err(Refusal::Invalid(
                    "the mode of a resource group cannot change".into(),
                )));
            }
            let read_from = String::from_utf8_lossy(kv.key()).into_owned();
            let mut cmp = vec![unchanged(&read_from, &Some(kv))];
            let mut ops = vec![TxnOp::put(key.as_str(), value.clone(), None)];
            if read_from != key {
                // a legacy-only group moves to the keyspace path
                cmp.push(Compare::create_revision(key.as_str(), CompareOp::Equal, 0));
                ops.push(TxnOp::delete(read_from.as_str(), None));
            }
            if commit(&self.client, cmp, ops).await? {
                return Ok(Ok(()));
            }
        }
        Ok(Err(Refusal::Contended(format!("resource group {name}"))))
    }

    /// Delete a group (both paths). A settings-only writer leaves the token state to the
    /// token writer; `LegacyAll` removes it in the same transaction.
    pub async fn delete(&self, keyspace: u32, name: &str) -> Result<Outcome<()>> {
        if let Err(r) = self.check_settings_role() {
            return Ok(Err(r));
        }
        if name == DEFAULT_GROUP {
            return Ok(Err(Refusal::Reserved));
        }
        // one transaction: the deletes themselves say whether there was a group
        let settings = self.settings_keys(keyspace, name);
        let mut ops: Vec<TxnOp> = settings
            .iter()
            .map(|k| TxnOp::delete(k.as_str(), None))
            .collect();
        if self.role.may_write_tokens() {
            ops.push(TxnOp::delete(self.state_key(keyspace, name), None));
            if keyspace == NULL_KEYSPACE_ID {
                ops.push(TxnOp::delete(self.legacy_state_key(name), None));
            }
        }
        let resp = self.client.clone().txn(Txn::new().and_then(ops)).await?;
        let deleted: i64 = resp.op_responses()[..settings.len()]
            .iter()
            .map(|r| match r {
                TxnOpResponse::Delete(d) => d.deleted(),
                _ => 0,
            })
            .sum();
        Ok(if deleted > 0 {
            Ok(())
        } else {
            Err(Refusal::NotFound(name.into()))
        })
    }

    /// A group with its token count filled in from the token state.
    pub async fn get(&self, keyspace: u32, name: &str) -> Result<Option<ResourceGroup>> {
        let Some((mut group, _)) = self.read_settings(keyspace, name).await? else {
            return Ok(None);
        };
        if let Some(state) = self.token_state(keyspace, name).await? {
            if let Some(b) = group.buckets_mut().next() {
                b.tokens = state.tokens;
            }
        }
        Ok(Some(group))
    }

    /// Every group of a keyspace, by name (the keyspace path shadows the legacy one).
    pub async fn list(&self, keyspace: u32) -> Result<Vec<ResourceGroup>> {
        let mut groups = BTreeMap::new();
        if keyspace == NULL_KEYSPACE_ID {
            for kv in self.range_prefix(&self.legacy_settings_key("")).await? {
                let g: ResourceGroup = decode_json(kv.key(), kv.value())?;
                groups.insert(g.name.clone(), g);
            }
        }
        let dir = self.settings_key(keyspace, "");
        for kv in self.range_prefix(&dir).await? {
            let g: ResourceGroup = decode_json(kv.key(), kv.value())?;
            groups.insert(g.name.clone(), g);
        }
        Ok(groups.into_values().collect())
    }
}

//! Resource groups: the resource manager's metadata (settings per keyspace, controller
//! config, per-keyspace service limits, token state) under `{root}/resource_group/`, and
//! keyspace names under `{root}/keyspace/`.
//!
//! Keys (docs/metadata.md has the full table):
//! - `{rg}/keyspace/{id:010}/settings/{name}`: a group's settings (the resource manager's
//!   `ResourceGroup` JSON without token counts);
//! - `{rg}/settings/{name}`: the legacy, keyspace-less path older writers used for the null
//!   keyspace ([`NULL_KEYSPACE_ID`]); read as a fallback, never written again;
//! - `{rg}/keyspace/{id:010}/states/{name}`: a group's token state ([`TokenState`]);
//! - `{rg}/controller`: the controller config; `{rg}/keyspace/{id:010}/service_limit`.
//!
//! To ensure correctness:
//! - **The keyspace path wins.** When both paths hold a group of one name in the null
//!   keyspace, readers see the keyspace path's; a modify of a legacy-only group moves it
//!   to the keyspace path and deletes the legacy key in the same transaction; a delete
//!   removes both.
//! - **Settings writes never touch token state**, which has its own keys: add, modify and
//!   the controller or service-limit updates write only settings keys, and
//!   [`ResourceGroups::save_token_state`] writes only a state key.
//! - **The write role gates every write** before anything is read or written: settings
//!   need `LegacyAll` or `MetaOnly`, token state `LegacyAll` or `TokenOnly`.
//! - Every read-modify-write is a `Txn` that compares the mod revision it read; a lost
//!   race is retried on fresh data, so concurrent writers never overwrite each other.

use std::collections::BTreeMap;

use etcd_client::{Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    commit, decode_json, decode_kv, encode_json, prefix_end, read_keys, unchanged, Client, Layout,
    Result, MAX_ATTEMPTS,
};

/// The keyspace of requests that name none (the resource manager's `uint32` max).
pub const NULL_KEYSPACE_ID: u32 = u32::MAX;
/// The group every keyspace has; it cannot be deleted.
pub const DEFAULT_GROUP: &str = "default";
/// Longest group name the resource manager accepts.
const MAX_NAME_LEN: usize = 32;
/// Highest task priority (the resource manager's HIGH is 16).
const MAX_PRIORITY: u32 = 16;

/// What a writer of resource-group metadata may change (the resource manager's roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteRole {
    /// Settings and token state (a single resource manager).
    #[default]
    LegacyAll,
    /// Settings only (the metadata service).
    MetaOnly,
    /// Token state only (the token service).
    TokenOnly,
}

impl WriteRole {
    fn may_write_settings(self) -> bool {
        matches!(self, WriteRole::LegacyAll | WriteRole::MetaOnly)
    }

    fn may_write_tokens(self) -> bool {
        matches!(self, WriteRole::LegacyAll | WriteRole::TokenOnly)
    }
}

impl std::str::FromStr for WriteRole {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "LegacyAll" => Ok(WriteRole::LegacyAll),
            "MetaOnly" => Ok(WriteRole::MetaOnly),
            "TokenOnly" => Ok(WriteRole::TokenOnly),
            other => Err(format!(
                "unknown write role {other:?} (LegacyAll, MetaOnly or TokenOnly)"
            )),
        }
    }
}

/// Expected refusals: nothing was changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("resource group {0} already exists")]
    AlreadyExists(String),
    #[error("resource group {0} does not exist")]
    NotFound(String),
    #[error("keyspace {0} does not exist")]
    KeyspaceNotFound(String),
    #[error("keyspace {0} already exists")]
    KeyspaceExists(String),
    #[error("invalid resource group: {0}")]
    Invalid(String),
    #[error("cannot delete reserved group")]
    Reserved,
    #[error("failed precondition: write role {role:?} may not write {what}")]
    WrongRole { role: WriteRole, what: &'static str },
    #[error("concurrent writers kept changing {0}; try again")]
    Contended(String),
}

/// What a write came to: done, or refused with nothing changed.
pub type Outcome<T> = std::result::Result<T, Refusal>;

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The resource manager's `GroupMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "i32", into = "i32")]
pub enum GroupMode {
    #[default]
    Unknown,
    RuMode,
    RawMode,
}

impl From<i32> for GroupMode {
    fn from(v: i32) -> Self {
        match v {
            1 => GroupMode::RuMode,
            2 => GroupMode::RawMode,
            _ => GroupMode::Unknown,
        }
    }
}

impl From<GroupMode> for i32 {
    fn from(m: GroupMode) -> i32 {
        match m {
            GroupMode::Unknown => 0,
            GroupMode::RuMode => 1,
            GroupMode::RawMode => 2,
        }
    }
}

/// `TokenLimitSettings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenLimitSettings {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fill_rate: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub burst_limit: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_tokens: f64,
}

/// `TokenBucket`: settings plus the token count, which lives in [`TokenState`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenBucket {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<TokenLimitSettings>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tokens: f64,
}

/// `GroupRequestUnitSettings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r_u: Option<TokenBucket>,
}

/// `GroupRawResourceSettings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawResourceSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<TokenBucket>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_read: Option<TokenBucket>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_write: Option<TokenBucket>,
}

/// `KeyspaceIDValue`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyspaceIdValue {
    #[serde(default)]
    pub value: u32,
}

/// The resource manager's `ResourceGroup` message, in its JSON form (snake_case fields,
/// zero values omitted, enums as numbers). Runaway and background settings are kept as
/// given (`RunawaySettings`, `BackgroundSettings`): they are checked to be objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mode: GroupMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r_u_settings: Option<RuSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_resource_settings: Option<RawResourceSettings>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runaway_settings: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_settings: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspace_id: Option<KeyspaceIdValue>,
}

impl ResourceGroup {
    /// The checks the resource manager makes before it stores a group.
    pub fn validate(&self) -> std::result::Result<(), Refusal> {
        let invalid = |m: String| Err(Refusal::Invalid(m));
        if self.name.is_empty() || self.name.len() > MAX_NAME_LEN {
            return invalid(format!(
                "the name must have 1 to {MAX_NAME_LEN} characters, got {:?}",
                self.name
            ));
        }
        if self.name.contains('/') {
            return invalid(format!("the name {:?} contains '/'", self.name));
        }
        match self.mode {
            GroupMode::RuMode if self.raw_resource_settings.is_some() => {
                return invalid("RU mode takes r_u_settings, not raw_resource_settings".into())
            }
            GroupMode::RawMode if self.r_u_settings.is_some() => {
                return invalid("raw mode takes raw_resource_settings, not r_u_settings".into())
            }
            GroupMode::Unknown => return invalid("the mode must be 1 (RU) or 2 (raw)".into()),
            _ => {}
        }
        if self.priority > MAX_PRIORITY {
            return invalid(format!("priority {} is over {MAX_PRIORITY}", self.priority));
        }
        let limits = [
            self.r_u_settings.as_ref().and_then(|s| s.r_u.as_ref()),
            self.raw_resource_settings
                .as_ref()
                .and_then(|s| s.cpu.as_ref()),
            self.raw_resource_settings
                .as_ref()
                .and_then(|s| s.io_read.as_ref()),
            self.raw_resource_settings
                .as_ref()
                .and_then(|s| s.io_write.as_ref()),
        ];
        for s in limits
            .into_iter()
            .flatten()
            .filter_map(|b| b.settings.as_ref())
        {
            if s.burst_limit < -1 {
                return invalid(format!("burst_limit {} is below -1", s.burst_limit));
            }
        }
        for (field, v) in [
            ("runaway_settings", &self.runaway_settings),
            ("background_settings", &self.background_settings),
        ] {
            if v.as_ref().is_some_and(|v| !v.is_object()) {
                return invalid(format!("{field} must be an object"));
            }
        }
        Ok(())
    }

    /// The settings alone: token counts belong to the token state.
    fn settings_only(mut self, keyspace: u32) -> Self {
        for b in self.buckets_mut() {
            b.tokens = 0.0;
        }
        self.keyspace_id = Some(KeyspaceIdValue { value: keyspace });
        self
    }

    fn buckets_mut(&mut self) -> impl Iterator<Item = &mut TokenBucket> {
        let ru = self.r_u_settings.as_mut().and_then(|s| s.r_u.as_mut());
        let raw = self.raw_resource_settings.as_mut().map(|s| {
            [s.cpu.as_mut(), s.io_read.as_mut(), s.io_write.as_mut()]
                .into_iter()
                .flatten()
        });
        ru.into_iter().chain(raw.into_iter().flatten())
    }
}

/// A group's token state, written only by token writers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenState {
    /// Tokens left in the RU bucket (or the CPU bucket in raw mode).
    pub tokens: f64,
    /// When the tokens were last computed, in Unix milliseconds.
    pub last_update_ms: u64,
}

/// A keyspace name and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyspace {
    pub name: String,
    pub id: u32,
}

/// The resource manager's metadata in one store, written in one role.
#[derive(Clone)]
pub struct ResourceGroups {
    client: Client,
    role: WriteRole,
    prefix: String,
    keyspaces: String,
}

impl ResourceGroups {
    pub fn new(client: Client, layout: &Layout, role: WriteRole) -> Self {
        ResourceGroups {
            client,
            role,
            prefix: layout.namespace("resource_group"),
            keyspaces: layout.namespace("keyspace"),
        }
    }

    fn keyspace_dir(&self, keyspace: u32) -> String {
        format!("{}keyspace/{keyspace:010}/", self.prefix)
    }

    fn settings_key(&self, keyspace: u32, name: &str) -> String {
        format!("{}settings/{name}", self.keyspace_dir(keyspace))
    }

    fn legacy_settings_key(&self, name: &str) -> String {
        format!("{}settings/{name}", self.prefix)
    }

    fn state_key(&self, keyspace: u32, name: &str) -> String {
        format!("{}states/{name}", self.keyspace_dir(keyspace))
    }

    fn legacy_state_key(&self, name: &str) -> String {
        format!("{}states/{name}", self.prefix)
    }

    fn controller_key(&self) -> String {
        format!("{}controller", self.prefix)
    }

    fn service_limit_key(&self, keyspace: u32) -> String {
        format!("{}service_limit", self.keyspace_dir(keyspace))
    }

    fn check_settings_role(&self) -> std::result::Result<(), Refusal> {
        if self.role.may_write_settings() {
            Ok(())
        } else {
            Err(Refusal::WrongRole {
                role: self.role,
                what: "resource group settings",
            })
        }
    }

    async fn get_kv(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut c = self.client.clone();
        Ok(c.get(key, None).await?.kvs().first().cloned())
    }

    async fn range_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let mut c = self.client.clone();
        let opts = GetOptions::new().with_range(prefix_end(prefix.as_bytes()));
        Ok(c.get(prefix, Some(opts)).await?.kvs().to_vec())
    }

    async fn txn(&self, txn: Txn) -> Result<bool> {
        let mut c = self.client.clone();
        Ok(c.txn(txn).await?.succeeded())
    }

    // ---- keyspaces ----

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

    // ---- groups ----

    /// The keys a group's settings may be at, the keyspace path first.
    fn settings_keys(&self, keyspace: u32, name: &str) -> Vec<String> {
        let mut keys = vec![self.settings_key(keyspace, name)];
        if keyspace == NULL_KEYSPACE_ID {
            keys.push(self.legacy_settings_key(name));
        }
        keys
    }

    /// The group's settings record and the key it was read from (keyspace path first),
    /// both paths read at one revision.
    async fn read_settings(
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

    // ---- token state ----

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

    // ---- controller config ----

    /// The controller config: the stored one over the defaults.
    pub async fn controller_config(&self) -> Result<Value> {
        let mut config = default_controller_config();
        if let Some(kv) = self.get_kv(&self.controller_key()).await? {
            merge(&mut config, decode_json(kv.key(), kv.value())?);
        }
        Ok(config)
    }

    /// Update some items of the controller config. Every key must name an item (nested
    /// objects update nested items) and keep its JSON type.
    pub async fn update_controller_config(&self, update: Value) -> Result<Outcome<Value>> {
        if let Err(r) = self.check_settings_role() {
            return Ok(Err(r));
        }
        let key = self.controller_key();
        for _ in 0..MAX_ATTEMPTS {
            let stored = self.get_kv(&key).await?;
            let mut config = default_controller_config();
            if let Some(kv) = &stored {
                merge(&mut config, decode_json(kv.key(), kv.value())?);
            }
            if let Err(m) = check_items(&config, &update, "") {
                return Ok(Err(Refusal::Invalid(m)));
            }
            merge(&mut config, update.clone());
            let guard = unchanged(&key, &stored);
            let put = TxnOp::put(key.as_str(), encode_json(&config), None);
            if commit(&self.client, vec![guard], vec![put]).await? {
                return Ok(Ok(config));
            }
        }
        Ok(Err(Refusal::Contended("the controller config".into())))
    }

    // ---- service limits ----

    /// A keyspace's service limit (0 when none is set: unlimited).
    pub async fn service_limit(&self, keyspace: u32) -> Result<f64> {
        match self.get_kv(&self.service_limit_key(keyspace)).await? {
            Some(kv) => decode_json(kv.key(), kv.value()),
            None => Ok(0.0),
        }
    }

    pub async fn set_service_limit(&self, keyspace: u32, limit: f64) -> Result<Outcome<()>> {
        if let Err(r) = self.check_settings_role() {
            return Ok(Err(r));
        }
        if !limit.is_finite() || limit < 0.0 {
            return Ok(Err(Refusal::Invalid(format!(
                "service_limit must be a number >= 0, got {limit}"
            ))));
        }
        let mut c = self.client.clone();
        c.put(self.service_limit_key(keyspace), encode_json(&limit), None)
            .await?;
        Ok(Ok(()))
    }
}

/// The resource manager's controller defaults (its `ControllerConfig`).
pub fn default_controller_config() -> Value {
    serde_json::json!({
        "degraded-mode-wait-duration": "0s",
        "ltb-max-wait-duration": "30s",
        "ltb-token-rpc-max-delay": "1s",
        "request-unit": {
            "read-base-cost": 0.125,
            "read-per-batch-base-cost": 0.5,
            "read-cost-per-byte": 1.0 / 65536.0,
            "write-base-cost": 1.0,
            "write-per-batch-base-cost": 1.0,
            "write-cost-per-byte": 1.0 / 1024.0,
            "read-cpu-ms-cost": 1.0 / 3.0
        },
        "enable-controller-trace-log": false
    })
}

/// Overlay `update` on `base`, object by object.
fn merge(base: &mut Value, update: Value) {
    match (base, update) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Every key of `update` names an item of `config` and keeps its JSON type.
fn check_items(config: &Value, update: &Value, path: &str) -> std::result::Result<(), String> {
    let Value::Object(items) = update else {
        return Err("the update must be a JSON object".into());
    };
    if items.is_empty() && path.is_empty() {
        return Err("the update names no config item".into());
    }
    for (k, v) in items {
        let name = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        let Some(current) = config.get(k) else {
            return Err(format!("config item {name} not found"));
        };
        let same_type = match (current, v) {
            (Value::Object(_), Value::Object(_)) => {
                check_items(current, v, &name)?;
                true
            }
            (Value::Number(_), Value::Number(_))
            | (Value::String(_), Value::String(_))
            | (Value::Bool(_), Value::Bool(_)) => true,
            _ => false,
        };
        if !same_type {
            return Err(format!("config item {name} must be like {current}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ru_group(name: &str, fill_rate: u64) -> ResourceGroup {
        serde_json::from_value(serde_json::json!({
            "name": name, "mode": 1, "priority": 8,
            "r_u_settings": {"r_u": {"settings": {"fill_rate": fill_rate, "burst_limit": -1}, "tokens": 5.0}}
        }))
        .unwrap()
    }

    #[test]
    fn group_json_is_the_resource_managers() {
        let g = ru_group("g1", 100);
        let v = serde_json::to_value(g.clone().settings_only(7)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name": "g1", "mode": 1, "priority": 8,
                "r_u_settings": {"r_u": {"settings": {"fill_rate": 100, "burst_limit": -1}}},
                "keyspace_id": {"value": 7}})
        );
        assert_eq!(g.validate(), Ok(()));
    }

    #[test]
    fn validation() {
        let cases: Vec<(serde_json::Value, bool)> = vec![
            (serde_json::json!({"name": "a", "mode": 1}), true),
            (serde_json::json!({"name": "a", "mode": 0}), false),
            (serde_json::json!({"name": "", "mode": 1}), false),
            (serde_json::json!({"name": "a/b", "mode": 1}), false),
            (
                serde_json::json!({"name": "x".repeat(33), "mode": 1}),
                false,
            ),
            (
                serde_json::json!({"name": "a", "mode": 1, "priority": 17}),
                false,
            ),
            (
                serde_json::json!({"name": "a", "mode": 2, "r_u_settings": {}}),
                false,
            ),
            (
                serde_json::json!({"name": "a", "mode": 1, "runaway_settings": 3}),
                false,
            ),
            (
                serde_json::json!({"name": "a", "mode": 1,
                    "r_u_settings": {"r_u": {"settings": {"burst_limit": -2}}}}),
                false,
            ),
        ];
        for (json, ok) in cases {
            let g: ResourceGroup = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(g.validate().is_ok(), ok, "{json}");
        }
    }

    #[test]
    fn controller_updates_name_known_items_of_the_same_type() {
        let c = default_controller_config();
        assert!(check_items(&c, &serde_json::json!({"ltb-max-wait-duration": "1m"}), "").is_ok());
        assert!(check_items(
            &c,
            &serde_json::json!({"request-unit": {"read-base-cost": 2}}),
            ""
        )
        .is_ok());
        assert!(check_items(&c, &serde_json::json!({"nope": 1}), "").is_err());
        assert!(check_items(
            &c,
            &serde_json::json!({"enable-controller-trace-log": 1}),
            ""
        )
        .is_err());
        assert!(check_items(&c, &serde_json::json!({}), "").is_err());
        let mut m = c.clone();
        merge(
            &mut m,
            serde_json::json!({"request-unit": {"read-base-cost": 2}}),
        );
        assert_eq!(m["request-unit"]["read-base-cost"], 2);
        assert_eq!(m["request-unit"]["write-base-cost"], 1.0);
    }
}

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
//!
//! Files: `record.rs` (the resource manager's JSON records and their validation),
//! `groups.rs` (groups' settings), `keyspace.rs`, `tokens.rs` (token state), `controller.rs`
//! and `service_limit.rs`; [`ResourceGroups`], its keys and shared reads are here.

mod controller;
mod groups;
mod keyspace;
mod record;
mod service_limit;
mod tokens;

use etcd_client::{GetOptions, KeyValue, Txn};

pub use controller::default_controller_config;
pub use record::{
    GroupMode, Keyspace, KeyspaceIdValue, RawResourceSettings, ResourceGroup, RuSettings,
    TokenBucket, TokenLimitSettings, TokenState,
};

use super::{prefix_end, Client, Layout, Result};

/// The keyspace of requests that name none (the resource manager's `uint32` max).
pub const NULL_KEYSPACE_ID: u32 = u32::MAX;
/// The group every keyspace has; it cannot be deleted.
pub const DEFAULT_GROUP: &str = "default";

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
}

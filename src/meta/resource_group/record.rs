//! The resource manager's records in their JSON form, and the checks it makes on a group.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Refusal;

/// Longest group name the resource manager accepts.
const MAX_NAME_LEN: usize = 32;
/// Highest task priority (the resource manager's HIGH is 16).
const MAX_PRIORITY: u32 = 16;

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
    pub(super) fn settings_only(mut self, keyspace: u32) -> Self {
        for b in self.buckets_mut() {
            b.tokens = 0.0;
        }
        self.keyspace_id = Some(KeyspaceIdValue { value: keyspace });
        self
    }

    pub(super) fn buckets_mut(&mut self) -> impl Iterator<Item = &mut TokenBucket> {
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
}

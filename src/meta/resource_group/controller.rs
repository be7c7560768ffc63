//! The controller config: the stored items over the resource manager's defaults.

use etcd_client::TxnOp;
use serde_json::Value;

use super::{Outcome, Refusal, ResourceGroups};
use crate::meta::{commit, decode_json, encode_json, unchanged, Result, MAX_ATTEMPTS};

impl ResourceGroups {
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

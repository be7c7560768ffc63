//! Per-keyspace service limits (0: unlimited).

use super::{Outcome, Refusal, ResourceGroups};
use crate::meta::{decode_json, encode_json, Result};

impl ResourceGroups {
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

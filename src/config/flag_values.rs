//! The values of the etcd flags that have no field of their own in [`Config`] (rows of
//! `flags::ETCD_FLAGS`): typed readers for the ones served, the list of the ones with no
//! effect, and the refusals.

use std::time::Duration;

use super::{flags, parse_duration, Config, Error};

impl Config {
    /// Whether `--name` was given (on the command line, in the environment or the file).
    pub fn is_given(&self, name: &str) -> bool {
        self.given.iter().any(|g| g == name)
    }

    /// The value of an etcd flag that has no field of its own (see `flags::ETCD_FLAGS`):
    /// as given, or etcd's default.
    pub fn flag(&self, name: &str) -> &str {
        match self.etcd_flags.get(name) {
            Some(v) => v,
            None => flags::find(name).map_or("", |f| f.default),
        }
    }

    /// etcd's --auth-token-ttl: how long a simple token lives without use.
    pub fn auth_token_ttl(&self) -> Duration {
        Duration::from_secs(self.flag("auth-token-ttl").parse::<u64>().unwrap_or(300))
    }

    /// A flag of etcd 3.6 with its older `experimental-` name: the one given (the new
    /// name when both are).
    fn flag_renamed(&self, name: &str) -> &str {
        let old = format!("experimental-{name}");
        if !self.is_given(name) && self.is_given(&old) {
            self.flag(&old)
        } else {
            self.flag(name)
        }
    }

    /// The flags given that have no effect here, with their values and why: the member
    /// logs each once at start.
    pub fn no_effect_flags(&self) -> Vec<(String, String, &'static str)> {
        flags::ETCD_FLAGS
            .iter()
            .filter(|f| self.is_given(f.name))
            .filter_map(|f| match f.here {
                flags::Here::NoEffect(why) => {
                    let value = match self.etcd_flags.get(f.name) {
                        Some(v) => v.clone(),
                        None => self.field_text(f.name),
                    };
                    Some((f.name.to_string(), value, why))
                }
                _ => None,
            })
            .collect()
    }

    /// The text of a flag kept in a typed field, for the start-up lines.
    fn field_text(&self, name: &str) -> String {
        match name {
            "wal-dir" => self.wal_dir.clone().unwrap_or_default(),
            "force-new-cluster" => self.force_new_cluster.to_string(),
            "strict-reconfig-check" => self.strict_reconfig_check.to_string(),
            "bcrypt-cost" => self.bcrypt_cost.to_string(),
            "enable-grpc-gateway" => self.enable_grpc_gateway.to_string(),
            "enable-v2" => self.enable_v2.to_string(),
            "peer-cert-allowed-cn" => self.peer_cert_allowed_cn.clone().unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// A comma-separated list flag's items, trimmed, empty ones dropped.
    fn list(&self, name: &str) -> Vec<String> {
        self.flag(name)
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// `--host-whitelist`: the listed host names (`*` lets every host in).
    pub fn host_whitelist(&self) -> Vec<String> {
        self.list("host-whitelist")
    }

    /// `--cors`: the origins plain-HTTP answers allow (`*` allows every origin).
    pub fn cors(&self) -> Vec<String> {
        self.list("cors")
    }

    /// `--grpc-keepalive-interval` (`None`: off).
    pub fn grpc_keepalive_interval(&self) -> Option<Duration> {
        parse_duration(self.flag("grpc-keepalive-interval")).filter(|d| !d.is_zero())
    }

    /// `--grpc-keepalive-timeout` (`None`: off).
    pub fn grpc_keepalive_timeout(&self) -> Option<Duration> {
        parse_duration(self.flag("grpc-keepalive-timeout")).filter(|d| !d.is_zero())
    }

    /// `--max-learners`: learners a cluster may have.
    pub fn max_learners(&self) -> u32 {
        self.flag("max-learners").parse().unwrap_or(1)
    }

    /// `--snapshot-catchup-entries` (etcd 3.4/3.5: `--experimental-...`).
    pub fn snapshot_catchup_entries(&self) -> u64 {
        self.flag_renamed("snapshot-catchup-entries")
            .parse()
            .unwrap_or(5000)
    }

    /// `--compaction-batch-limit` (etcd 3.4/3.5: `--experimental-...`).
    pub fn compaction_batch_limit(&self) -> usize {
        self.flag_renamed("compaction-batch-limit")
            .parse()
            .unwrap_or(1000)
    }

    /// `--compaction-sleep-interval` (etcd 3.4/3.5: `--experimental-...`).
    pub fn compaction_sleep_interval(&self) -> Duration {
        parse_duration(self.flag_renamed("compaction-sleep-interval"))
            .unwrap_or(Duration::from_millis(10))
    }

    /// `--experimental-initial-corrupt-check` (etcd 3.6: the `InitialCorruptCheck`
    /// feature gate): compare HashKV with the peers before serving.
    pub fn initial_corrupt_check(&self) -> bool {
        self.flag("experimental-initial-corrupt-check") == "true"
            || self
                .flag("feature-gates")
                .split(',')
                .any(|g| g.trim() == "InitialCorruptCheck=true")
    }

    /// `--unsafe-no-fsync` (etcd 3.5): no `fdatasync` after the backend's writes.
    pub fn unsafe_no_fsync(&self) -> bool {
        self.flag("unsafe-no-fsync") == "true"
    }

    /// `--corrupt-check-time` (etcd 3.4/3.5: `--experimental-...`): how often the leader
    /// compares its HashKV with its followers'; `None` (0, the default) for never.
    pub fn corrupt_check_time(&self) -> Option<Duration> {
        parse_duration(self.flag_renamed("corrupt-check-time")).filter(|d| !d.is_zero())
    }

    /// The rows of `flags::ETCD_FLAGS` marked refused, given a value other than etcd's
    /// default (the peer TLS rows, kept in fields this does not read, are refused by
    /// `validate` with the peer URLs).
    pub(super) fn refusals(&self) -> Result<(), Error> {
        for f in flags::ETCD_FLAGS {
            let flags::Here::Refused(why) = f.here else {
                continue;
            };
            // a row with a field of its own (--force-new-cluster) is read from the field
            let value = match self.etcd_flags.get(f.name) {
                Some(v) => v.clone(),
                None => self.field_text(f.name),
            };
            let harmless = value == f.default || value.is_empty();
            if !harmless {
                return Err(Error::Unsupported(format!("--{}={value}: {why}", f.name)));
            }
        }
        Ok(())
    }
}

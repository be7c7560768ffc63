//! etcd's command line: flags, `ETCD_*` environment variables and `--config-file` YAML,
//! parsed into a [`Config`]. Pure parsing: nothing here opens a socket or a file but the
//! config file.
//!
//! Precedence is etcd's: with `--config-file`, the file is the whole configuration and
//! other flags and variables are ignored; otherwise a flag wins over its variable.

mod flag_values;
pub mod flags;
pub mod logging;
mod tls;
mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::Parser;

pub const DEFAULT_REPORT_VERSION: &str = "3.5.17";

/// `--backend-cache-bytes`'s default (storage::SledBackend's own default too).
pub const DEFAULT_BACKEND_CACHE_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "metastore",
    version,
    about = "An etcd-v3-compatible metadata server",
    disable_help_subcommand = true
)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: <name>.etcd).
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<String>,
    /// Accepted for compatibility; the raft log lives in the data directory.
    #[arg(long, env = "ETCD_WAL_DIR")]
    pub wal_dir: Option<String>,
    /// URLs to listen on for client traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub listen_client_urls: String,
    /// Client URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub listen_peer_urls: String,
    /// Peer URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping (default: <name>=<initial-advertise-peer-urls>).
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Initial cluster state ('new' or 'existing').
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    pub initial_cluster_state: String,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Force to create a new one member cluster.
    #[arg(long, env = "ETCD_FORCE_NEW_CLUSTER", default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub force_new_cluster: bool,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Reject reconfiguration requests that would cause quorum loss.
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK", default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub strict_reconfig_check: bool,
    /// Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: i64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: u32,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: u32,
    /// Maximum concurrent streams that each client can open at a time.
    #[arg(long, env = "ETCD_MAX_CONCURRENT_STREAMS", default_value_t = u32::MAX)]
    pub max_concurrent_streams: u32,
    /// Interpret 'auto-compaction-retention' one of: periodic|revision.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic")]
    pub auto_compaction_mode: String,
    /// Auto compaction retention (hours or duration for periodic, revisions for revision; 0 = off).
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// Specify auth token type and its options ('simple' or 'jwt,...').
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,
    /// Specify bcrypt algorithm cost factor for auth password hashing.
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = 10)]
    pub bcrypt_cost: u32,
    #[arg(long, env = "ETCD_CERT_FILE")]
    pub cert_file: Option<String>,
    #[arg(long, env = "ETCD_KEY_FILE")]
    pub key_file: Option<String>,
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<String>,
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub client_cert_auth: bool,
    #[arg(long, env = "ETCD_AUTO_TLS", default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auto_tls: bool,
    #[arg(long, env = "ETCD_CLIENT_CRL_FILE")]
    pub client_crl_file: Option<String>,
    #[arg(long, env = "ETCD_CIPHER_SUITES")]
    pub cipher_suites: Option<String>,
    #[arg(long, env = "ETCD_PEER_CERT_FILE")]
    pub peer_cert_file: Option<String>,
    #[arg(long, env = "ETCD_PEER_KEY_FILE")]
    pub peer_key_file: Option<String>,
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<String>,
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub peer_client_cert_auth: bool,
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub peer_auto_tls: bool,
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_CN")]
    pub peer_cert_allowed_cn: Option<String>,
    /// Additional URLs to listen on for /metrics and /health.
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,
    /// URLs to listen on for HTTP-only client traffic (the client URLs then serve gRPC only).
    #[arg(long, env = "ETCD_LISTEN_CLIENT_HTTP_URLS")]
    pub listen_client_http_urls: Option<String>,
    /// Validity of the generated certificates of --auto-tls and --peer-auto-tls, in years.
    #[arg(long, env = "ETCD_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    pub self_signed_cert_validity: u32,
    /// Minimum TLS version of the client and peer ports (TLS1.2 or TLS1.3).
    #[arg(long, env = "ETCD_TLS_MIN_VERSION", default_value = "TLS1.2")]
    pub tls_min_version: String,
    /// Maximum TLS version of the client and peer ports ("" = the newest).
    #[arg(long, env = "ETCD_TLS_MAX_VERSION", default_value = "")]
    pub tls_max_version: String,
    /// 'zap' or 'capnslog'.
    #[arg(long, env = "ETCD_LOGGER", default_value = "zap")]
    pub logger: String,
    /// debug, info, warn, error, panic, or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// stderr (default), stdout, or file paths; comma-separated.
    #[arg(long, env = "ETCD_LOG_OUTPUTS")]
    pub log_outputs: Option<String>,
    /// Enable the JSON gateway on the client port.
    #[arg(long, env = "ETCD_ENABLE_GRPC_GATEWAY", default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_grpc_gateway: bool,
    /// Accepted for compatibility; the v2 API is not served.
    #[arg(long, env = "ETCD_ENABLE_V2", default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_v2: bool,
    /// Duration of periodic watch progress notifications.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL",
        default_value = "10m"
    )]
    pub experimental_watch_progress_notify_interval: String,
    /// Enable debug-level logging.
    #[arg(long, env = "ETCD_DEBUG", default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub debug: bool,
    /// Path to the server configuration file (etcd's YAML).
    #[arg(long, env = "ETCD_CONFIG_FILE")]
    pub config_file: Option<String>,
    /// The etcd server version this member reports (/version, Maintenance.Status).
    #[arg(long, env = "METASTORE_REPORT_VERSION", default_value = DEFAULT_REPORT_VERSION)]
    pub report_version: String,
    /// The root prefix of the typed metadata (`meta`) served on the client port's HTTP paths
    /// (`meta::Layout::DEFAULT_ROOT`).
    #[arg(long, env = "METASTORE_META_ROOT", default_value = "/metastore/meta")]
    pub meta_root: String,
    /// What this server's resource-manager HTTP paths may write: LegacyAll (settings and
    /// token state), MetaOnly (settings) or TokenOnly (token state).
    #[arg(long, env = "METASTORE_META_WRITE_ROLE", default_value = "LegacyAll",
          value_parser = ["LegacyAll", "MetaOnly", "TokenOnly"])]
    pub meta_write_role: String,
    /// The user the member's own clients (the typed-metadata HTTP paths,
    /// `embed::Server::client()`) authenticate as once auth is enabled, as `name:password`
    /// (etcdctl's --user); without it they send no credentials and get the refusals any
    /// such client gets. Prefer the variable: a flag shows in the process list.
    #[arg(long, env = "METASTORE_META_USER")]
    pub meta_user: Option<String>,
    /// The storage backend's page cache in bytes (sled's cache capacity): what it keeps of
    /// the database in memory beyond what is in use. Ours; etcd relies on the OS page cache.
    #[arg(long, env = "METASTORE_BACKEND_CACHE_BYTES", default_value_t = DEFAULT_BACKEND_CACHE_BYTES)]
    pub backend_cache_bytes: u64,
    /// The etcd flags without a field of their own (`flags::ETCD_FLAGS`), by name: as
    /// given, or etcd's default.
    #[arg(skip)]
    pub etcd_flags: BTreeMap<String, String>,
    /// The flags given on the command line, in the environment or in the config file.
    #[arg(skip)]
    pub given: Vec<String>,
}

/// The command line: the typed fields above, and an argument for every other row of
/// `flags::ETCD_FLAGS`. As Go's flag package does, a flag given twice takes the last value.
/// The `ETCD_*` variables are read by [`Config::from_args_env`], not by clap.
fn command() -> clap::Command {
    let mut cmd = <Config as clap::CommandFactory>::command()
        .args_override_self(true)
        .mut_args(|a| a.env(None::<&str>).hide_env(true));
    for f in flags::ETCD_FLAGS {
        if cmd.get_arguments().any(|a| a.get_long() == Some(f.name)) {
            continue;
        }
        let ty = f.ty;
        let mut arg = clap::Arg::new(f.name)
            .long(f.name)
            .value_parser(move |v: &str| flags::check(ty, v).map(|()| v.to_string()));
        if !f.default.is_empty() {
            arg = arg.default_value(f.default);
        }
        if ty == flags::Ty::Bool {
            arg = arg.num_args(0..=1).default_missing_value("true");
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

/// Every flag's variable: `(variable, flag)`, from the fields' `env` and the table.
fn env_names() -> Vec<(String, String)> {
    let mut names: Vec<(String, String)> = <Config as clap::CommandFactory>::command()
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_string_lossy().to_string();
            Some((env, a.get_long()?.to_string()))
        })
        .collect();
    for f in flags::ETCD_FLAGS {
        if !names.iter().any(|(_, flag)| flag == f.name) {
            names.push((f.env(), f.name.to_string()));
        }
    }
    names
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
}

/// The options of `--auth-token jwt,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtOptions {
    pub sign_method: String,
    pub pub_key: Option<PathBuf>,
    pub priv_key: Option<PathBuf>,
    pub ttl: Duration,
}

/// One member of `--initial-cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_urls: Vec<String>,
}

impl Config {
    /// Parse etcd's command line from the process arguments and environment.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Config, Error> {
        Config::from_args_env(args, std::env::vars())
    }

    /// Parse etcd's command line with `env` as the environment: an `ETCD_*` variable
    /// sets its flag unless the command line does (a flag wins over its variable).
    pub fn from_args_env<I, E>(args: I, env: E) -> Result<Config, Error>
    where
        I: IntoIterator<Item = String>,
        E: IntoIterator<Item = (String, String)>,
    {
        let mut args = normalize_single_dash(args.into_iter().collect()).into_iter();
        let names = env_names();
        let mut full: Vec<String> = args.next().into_iter().collect();
        for (var, value) in env {
            if value.is_empty() {
                continue;
            }
            if let Some((_, flag)) = names.iter().find(|(v, _)| *v == var) {
                full.push(format!("--{flag}={value}"));
            }
        }
        full.extend(args);
        let cfg = Config::parse_with(command(), full)?;
        let cfg = match &cfg.config_file {
            Some(path) => {
                let mut from_file = Config::from_yaml_file(path)?;
                from_file.config_file = Some(path.clone());
                from_file.given.push("config-file".into());
                from_file
            }
            None => cfg,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// etcd's YAML file: the keys are the flag names (or etcd's own YAML keys, see
    /// `flags::ETCD_FLAGS`).
    pub fn from_yaml_file(path: &str) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("cannot read config file {path}: {e}")))?;
        Config::from_yaml(&text)
    }

    pub fn from_yaml(text: &str) -> Result<Config, Error> {
        // Flags and ETCD_* variables are not consulted when a config file is given.
        Config::parse_with(command(), yaml::to_args(text, &command())?)
    }

    /// Parse `args` with `cmd`; the flags without a field of their own go to `etcd_flags`.
    fn parse_with(cmd: clap::Command, args: Vec<String>) -> Result<Config, Error> {
        let matches = cmd
            .clone()
            .try_get_matches_from(args)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut cfg = <Config as clap::FromArgMatches>::from_arg_matches(&matches)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        for arg in cmd.get_arguments() {
            let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
                continue;
            };
            if matches.value_source(id) == Some(ValueSource::CommandLine) {
                cfg.given.push(long.to_string());
            }
            if id == long {
                if let Ok(Some(v)) = matches.try_get_one::<String>(id) {
                    cfg.etcd_flags.insert(long.to_string(), v.clone());
                }
            }
        }
        Ok(cfg)
    }

    /// Every `ETCD_*` variable that names no flag: etcd warns and ignores them.
    pub fn unknown_env_vars() -> Vec<String> {
        let known: Vec<String> = env_names().into_iter().map(|(env, _)| env).collect();
        std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("ETCD_") && !known.contains(k))
            .collect()
    }

    fn validate(&self) -> Result<(), Error> {
        if self.initial_cluster_state != "new" && self.initial_cluster_state != "existing" {
            return Err(Error::Invalid(format!(
                "invalid value {:?} for flag -initial-cluster-state: invalid value {:?} for flag -initial-cluster-state",
                self.initial_cluster_state, self.initial_cluster_state
            )));
        }
        if self.auto_compaction_mode != "periodic" && self.auto_compaction_mode != "revision" {
            return Err(Error::Invalid(format!(
                "unknown auto-compaction-mode {:?}",
                self.auto_compaction_mode
            )));
        }
        self.auto_compaction().map(|_| ())?;
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(Error::Invalid(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout, self.heartbeat_interval
            )));
        }
        let auth_kind = self.auth_token.split(',').next().unwrap_or_default();
        if auth_kind != "simple" && auth_kind != "jwt" {
            return Err(Error::Invalid(format!("unknown token type: {auth_kind}")));
        }
        self.log_settings()?;
        self.refusals()?;
        self.client_tls()?;
        self.peer_tls()?;
        self.jwt_options()?;
        let members = self.initial_members()?;
        if !members.iter().any(|m| m.name == self.name) {
            return Err(Error::Invalid(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        }
        Ok(())
    }

    /// `--auth-token jwt,pub-key=FILE,priv-key=FILE,sign-method=NAME,ttl=DURATION`
    /// (etcd: auth/options.go), `None` for simple tokens. An option without `=` or of
    /// another name is etcd's "auth: invalid auth options"; the TTL defaults to 5 minutes.
    pub fn jwt_options(&self) -> Result<Option<JwtOptions>, Error> {
        let mut parts = self.auth_token.split(',');
        if parts.next() != Some("jwt") {
            return Ok(None);
        }
        let invalid = || Error::Invalid("auth: invalid auth options".into());
        let mut o = JwtOptions {
            sign_method: String::new(),
            pub_key: None,
            priv_key: None,
            ttl: Duration::from_secs(300),
        };
        for part in parts {
            let (k, v) = part.split_once('=').ok_or_else(invalid)?;
            match k {
                "sign-method" => o.sign_method = v.to_string(),
                "pub-key" if !v.is_empty() => o.pub_key = Some(PathBuf::from(v)),
                "priv-key" if !v.is_empty() => o.priv_key = Some(PathBuf::from(v)),
                "pub-key" | "priv-key" => {}
                "ttl" => {
                    o.ttl = parse_duration(v)
                        .ok_or_else(|| Error::Invalid(format!("time: invalid duration {v:?}")))?
                }
                _ => return Err(invalid()),
            }
        }
        Ok(Some(o))
    }

    /// `--meta-user` as (name, password); a value without `:` is a user with an empty
    /// password, as etcdctl takes it.
    pub fn meta_credentials(&self) -> Option<(String, String)> {
        let u = self.meta_user.as_deref().filter(|u| !u.is_empty())?;
        let (name, password) = u.split_once(':').unwrap_or((u, ""));
        Some((name.to_string(), password.to_string()))
    }

    pub fn data_dir(&self) -> String {
        self.data_dir
            .clone()
            .unwrap_or_else(|| format!("{}.etcd", self.name))
    }

    pub fn client_urls(&self) -> Result<Vec<String>, Error> {
        parse_urls("listen-client-urls", &self.listen_client_urls)
    }

    /// `--listen-client-http-urls`: HTTP-only client listeners (none by default).
    pub fn client_http_urls(&self) -> Result<Vec<String>, Error> {
        match &self.listen_client_http_urls {
            Some(s) if !s.trim().is_empty() => parse_urls("listen-client-http-urls", s),
            _ => Ok(Vec::new()),
        }
    }

    /// `--listen-metrics-urls`: listeners of `/metrics` and `/health` only.
    pub fn metrics_urls(&self) -> Result<Vec<String>, Error> {
        match &self.listen_metrics_urls {
            Some(s) if !s.trim().is_empty() => parse_urls("listen-metrics-urls", s),
            _ => Ok(Vec::new()),
        }
    }

    pub fn advertise_client_urls(&self) -> Result<Vec<String>, Error> {
        parse_urls("advertise-client-urls", &self.advertise_client_urls)
    }

    pub fn peer_urls(&self) -> Result<Vec<String>, Error> {
        parse_urls(
            "initial-advertise-peer-urls",
            &self.initial_advertise_peer_urls,
        )
    }

    pub fn listen_peer_urls(&self) -> Result<Vec<String>, Error> {
        parse_urls("listen-peer-urls", &self.listen_peer_urls)
    }

    pub fn initial_members(&self) -> Result<Vec<InitialMember>, Error> {
        let spec = match &self.initial_cluster {
            Some(s) if !s.is_empty() => s.clone(),
            _ => self
                .peer_urls()?
                .iter()
                .map(|u| format!("{}={u}", self.name))
                .collect::<Vec<_>>()
                .join(","),
        };
        let mut members: Vec<InitialMember> = Vec::new();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (name, url) = part
                .split_once('=')
                .ok_or_else(|| Error::Invalid(format!("invalid initial-cluster entry {part:?}")))?;
            let url = parse_urls("initial-cluster", url)?.remove(0);
            match members.iter_mut().find(|m| m.name == name) {
                Some(m) => m.peer_urls.push(url),
                None => members.push(InitialMember {
                    name: name.to_string(),
                    peer_urls: vec![url],
                }),
            }
        }
        Ok(members)
    }

    pub fn quota_backend_bytes(&self) -> u64 {
        if self.quota_backend_bytes <= 0 {
            2 * 1024 * 1024 * 1024
        } else {
            self.quota_backend_bytes as u64
        }
    }

    /// The auto-compaction policy, if any.
    pub fn auto_compaction(&self) -> Result<Option<AutoCompaction>, Error> {
        let r = self.auto_compaction_retention.trim();
        if r.is_empty() || r == "0" {
            return Ok(None);
        }
        let bad = || Error::Invalid(format!("invalid auto-compaction-retention {r:?}"));
        if self.auto_compaction_mode == "revision" {
            let n: i64 = r.parse().map_err(|_| bad())?;
            return Ok((n > 0).then_some(AutoCompaction::Revision(n)));
        }
        // periodic: a bare number is hours, otherwise a Go duration.
        let d = match r.parse::<u64>() {
            Ok(h) => Duration::from_secs(h * 3600),
            Err(_) => parse_duration(r).ok_or_else(bad)?,
        };
        Ok((!d.is_zero()).then_some(AutoCompaction::Periodic(d)))
    }

    pub fn progress_notify_interval(&self) -> Duration {
        let text = if self.is_given("watch-progress-notify-interval") {
            self.flag("watch-progress-notify-interval")
        } else {
            &self.experimental_watch_progress_notify_interval
        };
        parse_duration(text).unwrap_or(Duration::from_secs(600))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    Periodic(Duration),
    Revision(i64),
}

/// Go's flag package takes `-flag` as well as `--flag`.
fn normalize_single_dash(args: Vec<String>) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i > 0 && a.starts_with('-') && !a.starts_with("--") && a.len() > 2 {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

fn parse_urls(flag: &str, s: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for u in s.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let ok = ["http://", "https://", "unix://", "unixs://"]
            .iter()
            .any(|p| u.starts_with(p));
        if !ok {
            return Err(Error::Invalid(format!(
                "--{flag}: URL scheme must be http, https, unix or unixs: {u}"
            )));
        }
        out.push(u.trim_end_matches('/').to_string());
    }
    if out.is_empty() {
        return Err(Error::Invalid(format!("--{flag}: no URL given")));
    }
    Ok(out)
}

/// A Go duration such as `10m`, `1h30m`, `500ms`, `2s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ns" => n / 1e9,
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_end..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, Error> {
        Config::from_args(
            std::iter::once("metastore")
                .chain(args.iter().copied())
                .map(String::from),
        )
    }

    /// etcd checks --cipher-suites and the TLS versions at start, TLS URLs or not.
    #[test]
    fn tls_options_are_checked_without_tls() {
        let e = parse(&["--cipher-suites", "BOGUS"])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "unexpected TLS cipher suite \"BOGUS\"");
        let e = parse(&["--tls-min-version", "bogus"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unexpected TLS version \"bogus\" (must be one of: TLS1.2, TLS1.3)"
        );
    }

    #[test]
    fn defaults_are_etcds() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir(), "default.etcd");
        assert_eq!(c.client_urls().unwrap(), vec!["http://localhost:2379"]);
        assert_eq!(c.max_request_bytes, 1_572_864);
        assert_eq!(c.max_txn_ops, 128);
        assert_eq!(c.snapshot_count, 100_000);
        assert_eq!(c.quota_backend_bytes(), 2 << 30);
        assert_eq!(
            c.initial_members().unwrap(),
            vec![InitialMember {
                name: "default".into(),
                peer_urls: vec!["http://localhost:2380".into()]
            }]
        );
    }

    #[test]
    fn both_flag_forms_and_single_dash() {
        let c = parse(&[
            "--name",
            "n1",
            "--data-dir=/tmp/x",
            "-max-txn-ops",
            "7",
            "--initial-cluster=n1=http://localhost:2380",
        ])
        .unwrap();
        assert_eq!(c.name, "n1");
        assert_eq!(c.data_dir(), "/tmp/x");
        assert_eq!(c.max_txn_ops, 7);
    }

    #[test]
    fn yaml_config_file() {
        let c = Config::from_yaml(
            "name: y1\ndata-dir: /tmp/y1\nlisten-client-urls: http://127.0.0.1:3379\nmax-txn-ops: 9\ninitial-cluster: y1=http://localhost:2380\nauto-compaction-mode: revision\nauto-compaction-retention: \"100\"\n",
        )
        .unwrap();
        assert_eq!(c.name, "y1");
        assert_eq!(c.max_txn_ops, 9);
        assert_eq!(c.client_urls().unwrap(), vec!["http://127.0.0.1:3379"]);
        assert_eq!(
            c.auto_compaction().unwrap(),
            Some(AutoCompaction::Revision(100))
        );
    }

    #[test]
    fn refusals_are_clear() {
        // client and peer TLS are served; on http:// URLs the files go unused, as etcd
        // ignores them; an https:// URL without a certificate is etcd's start error
        assert!(parse(&["--cert-file", "x.pem", "--key-file", "y.pem"]).is_ok());
        assert!(parse(&["--peer-cert-file", "x.pem", "--peer-key-file", "y.pem"]).is_ok());
        let https_peer = "https://127.0.0.1:2380";
        let peer_tls = |extra: &[&str]| {
            let mut args = vec![
                "--listen-peer-urls",
                https_peer,
                "--initial-advertise-peer-urls",
                https_peer,
                "--initial-cluster",
            ];
            let cluster = format!("default={https_peer}");
            args.push(&cluster);
            args.extend_from_slice(extra);
            parse(&args).map(|c| c.peer_tls().unwrap())
        };
        assert!(
            matches!(peer_tls(&[]), Err(Error::Invalid(m)) if m.contains("KeyFile and CertFile"))
        );
        let auto = peer_tls(&["--peer-auto-tls"]).unwrap().unwrap();
        assert!(auto.self_signed && auto.cert_file.is_none());
        assert!(matches!(
            peer_tls(&["--peer-cert-file", "x.pem", "--peer-key-file", "y.pem", "--peer-client-cert-auth"]),
            Err(Error::Invalid(m)) if m.contains("--peer-trusted-ca-file")
        ));
        assert!(matches!(
            parse(&["--listen-client-urls", "https://127.0.0.1:2379"]),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            parse(&["--initial-cluster-state", "bogus"]),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            parse(&[
                "--name",
                "zz",
                "--initial-cluster",
                "default=http://localhost:2380"
            ]),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("x"), None);
    }
}

//! The gateway's TOML configuration: parsed into [`RawConfig`], then validated into [`Config`].
//!
//! The file holds structure (accounts, routing rules, callers and grants). Secrets are never
//! inline: each account names an environment variable or a file that holds its client secret, and
//! callers are identified by the SHA-256 of their API key.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::SecretString;
use serde::Deserialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::accounts::{Account, AccountBudget, AccountName, Accounts, Plan};
use crate::policy::{Policy, RawCaller, RawUserGroup};
use crate::routing::RoutingRules;
use crate::store;
use crate::token::TokenSettings;

/// The configuration as written in the file, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address the gRPC server listens on. Default `127.0.0.1:50051`.
    #[serde(default = "default_listen_addr")]
    pub listen_addr: String,
    /// Address of the ops HTTP listener (`/livez`, `/readyz`). Default `127.0.0.1:9090`.
    #[serde(default = "default_ops_listen_addr")]
    pub ops_listen_addr: String,
    /// Base URL of Zoom's REST API, including `/v2`. Default `https://api.zoom.us/v2`.
    #[serde(default = "default_zoom_api_url")]
    pub zoom_api_url: String,
    /// Zoom's OAuth token endpoint. Default `https://zoom.us/oauth/token`.
    #[serde(default = "default_zoom_oauth_url")]
    pub zoom_oauth_url: String,
    /// Upper bound for one gRPC request, in seconds, 1 to 3600. Default 30.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Upper bound for one call to Zoom, in seconds, 1 to 3600. Default 10.
    #[serde(default = "default_zoom_timeout_secs")]
    pub zoom_timeout_secs: u64,
    /// How long shutdown waits for requests in flight, in seconds, 0 to 3600. Default 20.
    #[serde(default = "default_shutdown_grace_period_secs")]
    pub shutdown_grace_period_secs: u64,
    /// How long a create's `request_id` is remembered, in hours, 1 to 8760. Default 24.
    #[serde(default = "default_request_id_retention_hours")]
    pub request_id_retention_hours: u64,
    /// Where durable state lives: `sqlite:PATH`, a bare path, or a `postgres://` URL without
    /// a password. Default `sqlite:zoomgate.db`.
    #[serde(default = "default_store")]
    pub store: String,
    /// The environment variable holding the PostgreSQL store's password.
    pub store_password_env: Option<String>,
    /// The file holding the PostgreSQL store's password (e.g. a mounted Secret).
    pub store_password_file: Option<PathBuf>,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub token: RawTokenSettings,
    #[serde(default)]
    pub routing: RawRoutingSettings,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub accounts: Vec<RawAccount>,
    #[serde(default)]
    pub user_groups: Vec<RawUserGroup>,
    #[serde(default)]
    pub callers: Vec<RawCaller>,
}

/// Where traces go. Read at start only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// An OTLP/gRPC collector, e.g. `http://otel-collector:4317`. Unset: the standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` variables decide; with neither, spans are not exported.
    pub otlp_endpoint: Option<String>,
}

/// TLS for the gRPC listener; with `client_ca_file`, callers may authenticate by client certificate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA that signs caller certificates. Without it, TLS is server-side only.
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenSettings {
    /// A token is replaced this long before it expires, in seconds, 0 to 86400. Default 300.
    #[serde(default = "default_refresh_margin_secs")]
    pub refresh_margin_secs: u64,
    /// First pause after a failed token fetch, in seconds, 1 to 86400; it doubles up to
    /// `max_cooldown_secs`. Default 1.
    #[serde(default = "default_failure_cooldown_secs")]
    pub failure_cooldown_secs: u64,
    /// Longest pause between failed token fetches, in seconds, 1 to 86400. Default 60.
    #[serde(default = "default_max_cooldown_secs")]
    pub max_cooldown_secs: u64,
}

impl Default for RawTokenSettings {
    fn default() -> Self {
        Self {
            refresh_margin_secs: default_refresh_margin_secs(),
            failure_cooldown_secs: default_failure_cooldown_secs(),
            max_cooldown_secs: default_max_cooldown_secs(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutingSettings {
    /// How long a user found by a probe stays mapped to its account, in seconds, 0 to 2592000
    /// (30 days). Default 600.
    #[serde(default = "default_user_cache_ttl_secs")]
    pub user_cache_ttl_secs: u64,
    /// How long "user is not in this account" is remembered, in seconds, 0 to 2592000 (30 days).
    /// Default 60.
    #[serde(default = "default_negative_cache_ttl_secs")]
    pub negative_cache_ttl_secs: u64,
    /// How often the directory sync reads every account's users, in seconds, 60 to 604800 (a
    /// week); 0 (the default) syncs only when the Admin API asks. Each sync spends the
    /// accounts' MEDIUM budget: one call per 300 users.
    #[serde(default)]
    pub directory_sync_interval_secs: u64,
}

impl Default for RawRoutingSettings {
    fn default() -> Self {
        Self {
            user_cache_ttl_secs: default_user_cache_ttl_secs(),
            negative_cache_ttl_secs: default_negative_cache_ttl_secs(),
            directory_sync_interval_secs: 0,
        }
    }
}

/// Bounds on what clients may hold of the gateway: connections, streams, buffers, requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Connections served at once; beyond it the gateway stops accepting. Default 10000.
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
    /// Time from accepting a connection to its first request (TCP, TLS, HTTP/2 preface), in
    /// seconds. Default 10.
    #[serde(default = "default_handshake_timeout_secs")]
    pub handshake_timeout_secs: u64,
    /// A connection with no request in flight for this long is closed, in seconds. Default 60.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Interval of HTTP/2 PINGs that check the peer is alive, in seconds. Default 20.
    #[serde(default = "default_keepalive_interval_secs")]
    pub keepalive_interval_secs: u64,
    /// How long a PING may go unanswered before the connection is closed, in seconds. Default 10.
    #[serde(default = "default_keepalive_timeout_secs")]
    pub keepalive_timeout_secs: u64,
    /// How long a connection may refuse to take the gateway's writes (a client that does not
    /// read) before it is closed, in seconds. Default 10.
    #[serde(default = "default_write_stall_timeout_secs")]
    pub write_stall_timeout_secs: u64,
    /// Concurrent HTTP/2 streams per connection, advertised in SETTINGS. Default 100.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u64,
    /// HTTP/2 receive window per connection, in bytes: what one client may make the gateway
    /// buffer of its requests. Default 1048576 (1 MiB).
    #[serde(default = "default_connection_window_bytes")]
    pub connection_window_bytes: u64,
    /// HTTP/2 receive window per stream, in bytes. Default 262144 (256 KiB).
    #[serde(default = "default_stream_window_bytes")]
    pub stream_window_bytes: u64,
    /// Largest request message, in bytes. Default 1048576 (1 MiB).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    /// Requests one caller may have in flight; more are refused with RESOURCE_EXHAUSTED. Default 64.
    #[serde(default = "default_max_requests_in_flight_per_caller")]
    pub max_requests_in_flight_per_caller: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            handshake_timeout_secs: default_handshake_timeout_secs(),
            idle_timeout_secs: default_idle_timeout_secs(),
            keepalive_interval_secs: default_keepalive_interval_secs(),
            keepalive_timeout_secs: default_keepalive_timeout_secs(),
            write_stall_timeout_secs: default_write_stall_timeout_secs(),
            max_concurrent_streams: default_max_concurrent_streams(),
            connection_window_bytes: default_connection_window_bytes(),
            stream_window_bytes: default_stream_window_bytes(),
            max_message_bytes: default_max_message_bytes(),
            max_requests_in_flight_per_caller: default_max_requests_in_flight_per_caller(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    /// The gateway's name for the account; callers' grants and the API use it.
    pub name: String,
    /// Zoom's account id of the Server-to-Server OAuth app.
    pub zoom_account_id: String,
    pub client_id: String,
    /// Environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// File holding the client secret (e.g. a mounted Kubernetes Secret); trailing newlines are ignored.
    pub client_secret_file: Option<PathBuf>,
    /// Zoom plan tier: `free`, `pro` (default) or `business`.
    #[serde(default)]
    pub plan: Plan,
    /// Share of the account's Zoom rate limits this gateway may spend (above 0, at most 1;
    /// default 1): the rest is left to other apps installed on the account.
    pub budget_share: Option<f64>,
    /// Per-second limits where Zoom support raised them for this account; the plan's table
    /// otherwise.
    #[serde(default)]
    pub rate_limits: RawRateLimits,
    /// Routing rule: these user emails live in this account.
    #[serde(default)]
    pub users: Vec<String>,
    /// Routing rule: users of these email domains live in this account.
    #[serde(default)]
    pub domains: Vec<String>,
}

/// `accounts[].rate_limits`: requests per second per Zoom rate-limit category.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    pub light: Option<u32>,
    pub medium: Option<u32>,
    pub heavy: Option<u32>,
}

/// Highest per-second limit an account may be given: far above any plan Zoom sells (benchmarks
/// use it to take Zoom's budget out of the measurement).
const MAX_RATE_LIMIT: u32 = 1_000_000;

/// TLS material of the listener, read at load time.
#[derive(Clone)]
pub struct TlsConfig {
    pub cert_pem: Vec<u8>,
    pub key_pem: SecretBytes,
    pub client_ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("client_auth", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// Private key bytes that never print.
#[derive(Clone)]
pub struct SecretBytes(pub Vec<u8>);

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Settings of the user -> account probe cache.
#[derive(Clone, Debug)]
pub struct RoutingSettings {
    pub rules: RoutingRules,
    pub user_cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    /// `None`: the directory is synced on demand only.
    pub directory_sync_interval: Option<Duration>,
}

/// Validated [`RawLimits`]: what one client may hold of the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub write_stall_timeout: Duration,
    pub max_concurrent_streams: u32,
    pub connection_window_bytes: u32,
    pub stream_window_bytes: u32,
    pub max_message_bytes: usize,
    pub max_requests_in_flight_per_caller: usize,
}

impl Default for Limits {
    fn default() -> Self {
        RawLimits::default()
            .validate()
            .expect("the default limits are valid")
    }
}

impl RawLimits {
    fn validate(&self) -> Result<Limits, ConfigError> {
        let secs = |field: &str, value: u64, max: u64| {
            bounded(&format!("limits.{field}"), value, 1, max).map(Duration::from_secs)
        };
        let count = |field: &str, value: u64, min: u64, max: u64| {
            bounded(&format!("limits.{field}"), value, min, max)
        };
        Ok(Limits {
            max_connections: to_usize(count(
                "max_connections",
                self.max_connections,
                1,
                1_000_000,
            )?),
            handshake_timeout: secs("handshake_timeout_secs", self.handshake_timeout_secs, 300)?,
            idle_timeout: secs("idle_timeout_secs", self.idle_timeout_secs, 86_400)?,
            keepalive_interval: secs(
                "keepalive_interval_secs",
                self.keepalive_interval_secs,
                3_600,
            )?,
            keepalive_timeout: secs("keepalive_timeout_secs", self.keepalive_timeout_secs, 300)?,
            write_stall_timeout: secs(
                "write_stall_timeout_secs",
                self.write_stall_timeout_secs,
                300,
            )?,
            max_concurrent_streams: to_u32(count(
                "max_concurrent_streams",
                self.max_concurrent_streams,
                1,
                10_000,
            )?),
            // HTTP/2 windows: at least the protocol's initial 65535, at most 2^31 - 1.
            connection_window_bytes: to_u32(count(
                "connection_window_bytes",
                self.connection_window_bytes,
                65_535,
                (1 << 31) - 1,
            )?),
            stream_window_bytes: to_u32(count(
                "stream_window_bytes",
                self.stream_window_bytes,
                65_535,
                (1 << 31) - 1,
            )?),
            max_message_bytes: to_usize(count(
                "max_message_bytes",
                self.max_message_bytes,
                1_024,
                64 << 20,
            )?),
            max_requests_in_flight_per_caller: to_usize(count(
                "max_requests_in_flight_per_caller",
                self.max_requests_in_flight_per_caller,
                1,
                100_000,
            )?),
        })
    }
}

/// Longest timeout (`request_timeout_secs`, `zoom_timeout_secs`) and shutdown grace period, in
/// seconds: one hour.
pub const MAX_TIMEOUT_SECS: u64 = 3_600;
/// Longest token refresh margin and fetch cooldown, in seconds: one day.
pub const MAX_TOKEN_SECS: u64 = 86_400;
/// Longest lifetime of a probe cache entry, in seconds: 30 days.
pub const MAX_CACHE_TTL_SECS: u64 = 30 * 86_400;

/// Checks a duration setting in seconds with [`bounded`]. Every duration of the config has an
/// upper bound: `Instant + Duration` panics past what an `Instant` can hold.
/// Longest `request_id_retention_hours`: a year.
const MAX_RETENTION_HOURS: u64 = 8_760;

fn bounded_secs(field: &str, value: u64, min: u64, max: u64) -> Result<Duration, ConfigError> {
    bounded(field, value, min, max).map(Duration::from_secs)
}

/// Checks that `value` lies in `min..=max`, naming the field and the range otherwise.
fn bounded(field: &str, value: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(field, format!("must be between {min} and {max}")))
    }
}

fn to_u32(value: u64) -> u32 {
    u32::try_from(value).expect("bounded below u32::MAX")
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).expect("bounded below usize::MAX")
}

/// The validated configuration the program runs with.
#[derive(Debug)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub ops_listen_addr: SocketAddr,
    pub zoom_api_url: String,
    pub zoom_oauth_url: String,
    pub request_timeout: Duration,
    pub zoom_timeout: Duration,
    pub shutdown_grace_period: Duration,
    pub request_id_retention: Duration,
    pub store: String,
    /// The PostgreSQL store's password, from `store_password_env` or `store_password_file`.
    pub store_password: Option<SecretString>,
    pub tls: Option<TlsConfig>,
    pub token: TokenSettings,
    pub routing: RoutingSettings,
    pub limits: Limits,
    /// `[telemetry] otlp_endpoint`.
    pub otlp_endpoint: Option<String>,
    pub accounts: Accounts,
    pub policy: Policy,
}

/// What is wrong with a configuration; `Invalid` names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Syntax(String),
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
}

/// Checks an account's `budget_share` and `rate_limits`.
fn account_budget(
    raw: &RawAccount,
    at: &dyn Fn(&str) -> String,
) -> Result<AccountBudget, ConfigError> {
    let share = raw.budget_share.unwrap_or(1.0);
    if !(share > 0.0 && share <= 1.0) {
        return Err(invalid(
            at("budget_share"),
            format!("{share} is not above 0 and at most 1"),
        ));
    }
    let limits = &raw.rate_limits;
    let mut per_second = [None; 3];
    for (slot, (name, limit)) in per_second.iter_mut().zip([
        ("light", limits.light),
        ("medium", limits.medium),
        ("heavy", limits.heavy),
    ]) {
        if let Some(limit) = limit
            && !(1..=MAX_RATE_LIMIT).contains(&limit)
        {
            return Err(invalid(
                at(&format!("rate_limits.{name}")),
                format!("{limit} is not between 1 and {MAX_RATE_LIMIT} requests per second"),
            ));
        }
        *slot = limit;
    }
    Ok(AccountBudget { per_second, share })
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

impl Config {
    /// Reads and validates the file at `path`. Relative paths inside it resolve against the
    /// file's directory; secrets come from `env` or from files.
    pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let text = read_config_text(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, env, base)
    }

    /// Parses `text` and resolves relative paths against `base_dir` and secrets from `env`.
    pub fn from_toml(
        text: &str,
        env: &HashMap<String, String>,
        base_dir: &Path,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        raw.validate(env, base_dir)
    }

    /// Settings that are valid but probably not what was meant; shown by `check-config` and
    /// logged at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let client_certificates = self
            .tls
            .as_ref()
            .is_some_and(|tls| tls.client_ca_pem.is_some());
        let mut warnings = Vec::new();
        if self.policy.declares_sans() && !client_certificates {
            warnings.push(
                "callers declare mtls_sans, but without tls.client_ca_file no client certificate \
                 is asked for: those callers can only use their API keys"
                    .to_owned(),
            );
        }
        warnings
    }
}

/// What a config is validated for.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// Serving: secrets from this environment, TLS files and the store checked.
    Serve(&'a HashMap<String, String>),
    /// Reviewing: see [`RawConfig::validate_for_review`].
    Review,
}

impl Config {
    /// Reads the file at `path` for a review (see [`RawConfig::validate_for_review`]).
    pub fn load_for_review(path: &Path) -> Result<Config, ConfigError> {
        let text = read_config_text(path)?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| syntax_error(&text, &e))?;
        raw.validate_for_review(path.parent().unwrap_or(Path::new(".")))
    }
}

/// Reads only the store location of a config file, for tools that need no secrets (`zoomgate audit`).
pub fn store_location(path: &Path) -> Result<String, ConfigError> {
    #[derive(Deserialize)]
    struct StoreOnly {
        #[serde(default = "default_store")]
        store: String,
    }
    let text = read_config_text(path)?;
    let raw: StoreOnly = toml::from_str(&text).map_err(|e| syntax_error(&text, &e))?;
    store::resolve_location(&raw.store, path.parent().unwrap_or(Path::new(".")))
        .map_err(|e| invalid("store", e.to_string()))
}

impl RawConfig {
    /// Parses config text; the error gives the position, never the line (it may hold a secret).
    pub fn parse(text: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| syntax_error(text, &e))
    }

    /// Checks every field and resolves secrets, naming the first field that is wrong.
    pub fn validate(
        self,
        env: &HashMap<String, String>,
        base_dir: &Path,
    ) -> Result<Config, ConfigError> {
        self.validate_in(Mode::Serve(env), base_dir)
    }

    /// Checks the structure a review needs (accounts, rules, callers, grants) without reading
    /// secrets, TLS files or the store, which a reviewer's machine does not have. The result
    /// holds placeholder secrets and no TLS: it is for answering questions, never for serving.
    pub fn validate_for_review(self, base_dir: &Path) -> Result<Config, ConfigError> {
        self.validate_in(Mode::Review, base_dir)
    }

    fn validate_in(self, mode: Mode<'_>, base_dir: &Path) -> Result<Config, ConfigError> {
        let listen_addr: SocketAddr = self.listen_addr.parse().map_err(|_| {
            invalid(
                "listen_addr",
                format!(
                    "`{}` is not an address like 127.0.0.1:50051",
                    self.listen_addr
                ),
            )
        })?;
        let ops_listen_addr: SocketAddr = self.ops_listen_addr.parse().map_err(|_| {
            invalid(
                "ops_listen_addr",
                format!(
                    "`{}` is not an address like 127.0.0.1:9090",
                    self.ops_listen_addr
                ),
            )
        })?;
        if ops_listen_addr == listen_addr && listen_addr.port() != 0 {
            return Err(invalid("ops_listen_addr", "must differ from listen_addr"));
        }
        check_url("zoom_api_url", &self.zoom_api_url)?;
        check_url("zoom_oauth_url", &self.zoom_oauth_url)?;
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            check_url("telemetry.otlp_endpoint", endpoint)?;
        }
        let request_timeout = bounded_secs(
            "request_timeout_secs",
            self.request_timeout_secs,
            1,
            MAX_TIMEOUT_SECS,
        )?;
        let zoom_timeout = bounded_secs(
            "zoom_timeout_secs",
            self.zoom_timeout_secs,
            1,
            MAX_TIMEOUT_SECS,
        )?;
        let shutdown_grace_period = bounded_secs(
            "shutdown_grace_period_secs",
            self.shutdown_grace_period_secs,
            0,
            MAX_TIMEOUT_SECS,
        )?;
        let request_id_retention = bounded(
            "request_id_retention_hours",
            self.request_id_retention_hours,
            1,
            MAX_RETENTION_HOURS,
        )
        .map(|hours| Duration::from_secs(hours * 3600))?;
        if self.store.trim().is_empty() {
            return Err(invalid(
                "store",
                "must name a database, e.g. sqlite:zoomgate.db",
            ));
        }
        let store = store::resolve_location(&self.store, base_dir)
            .map_err(|e| invalid("store", e.to_string()))?;
        let password = SecretSource {
            env_key: "store_password_env".into(),
            file_key: "store_password_file".into(),
            var: self.store_password_env.as_deref(),
            file: self.store_password_file.as_deref(),
            what: "the store password",
        };
        if (password.var.is_some() || password.file.is_some()) && !store::is_postgres(&store) {
            return Err(invalid(
                "store_password_env",
                "only a postgres:// store takes a password",
            ));
        }
        let (tls, store_password) = match mode {
            Mode::Serve(env) => {
                check_store_file(&store)?;
                (
                    self.tls.map(|tls| load_tls(&tls, base_dir)).transpose()?,
                    password.read(env, base_dir)?,
                )
            }
            Mode::Review => (None, None),
        };
        let limits = self.limits.validate()?;

        let token = TokenSettings {
            refresh_margin: bounded_secs(
                "token.refresh_margin_secs",
                self.token.refresh_margin_secs,
                0,
                MAX_TOKEN_SECS,
            )?,
            failure_cooldown: bounded_secs(
                "token.failure_cooldown_secs",
                self.token.failure_cooldown_secs,
                1,
                MAX_TOKEN_SECS,
            )?,
            max_cooldown: bounded_secs(
                "token.max_cooldown_secs",
                self.token.max_cooldown_secs,
                1,
                MAX_TOKEN_SECS,
            )?,
        };
        let user_cache_ttl = bounded_secs(
            "routing.user_cache_ttl_secs",
            self.routing.user_cache_ttl_secs,
            0,
            MAX_CACHE_TTL_SECS,
        )?;
        let negative_cache_ttl = bounded_secs(
            "routing.negative_cache_ttl_secs",
            self.routing.negative_cache_ttl_secs,
            0,
            MAX_CACHE_TTL_SECS,
        )?;
        let directory_sync_interval = match self.routing.directory_sync_interval_secs {
            0 => None,
            secs => Some(bounded_secs(
                "routing.directory_sync_interval_secs",
                secs,
                60,
                7 * 86_400,
            )?),
        };
        if token.max_cooldown < token.failure_cooldown {
            return Err(invalid(
                "token.max_cooldown_secs",
                "must not be below token.failure_cooldown_secs",
            ));
        }

        if self.accounts.is_empty() {
            return Err(invalid("accounts", "at least one account is needed"));
        }
        let mut accounts = Vec::with_capacity(self.accounts.len());
        let mut zoom_ids = BTreeMap::new();
        let mut rules = RoutingRules::default();
        for (i, raw) in self.accounts.iter().enumerate() {
            let at = |field: &str| format!("accounts[{i}].{field}");
            let name = AccountName::parse(&raw.name).map_err(|e| invalid(at("name"), e))?;
            if accounts.iter().any(|a: &Account| a.name == name) {
                return Err(invalid(at("name"), format!("duplicate account `{name}`")));
            }
            if raw.zoom_account_id.trim().is_empty() {
                return Err(invalid(at("zoom_account_id"), "must not be empty"));
            }
            if let Some(other) = zoom_ids.insert(raw.zoom_account_id.clone(), name.clone()) {
                return Err(invalid(
                    at("zoom_account_id"),
                    format!("also used by account `{other}`"),
                ));
            }
            if raw.client_id.trim().is_empty() {
                return Err(invalid(at("client_id"), "must not be empty"));
            }
            let client_secret = match mode {
                Mode::Serve(env) => resolve_secret(raw, env, base_dir, &at)?,
                Mode::Review => SecretString::from("not read for a review"),
            };
            for (j, email) in raw.users.iter().enumerate() {
                let place = at(&format!("users[{j}]"));
                rules
                    .add_user(email, &name, &place)
                    .map_err(|e| invalid(place.clone(), e))?;
            }
            for (j, domain) in raw.domains.iter().enumerate() {
                let place = at(&format!("domains[{j}]"));
                rules
                    .add_domain(domain, &name, &place)
                    .map_err(|e| invalid(place.clone(), e))?;
            }
            let budget = account_budget(raw, &at)?;
            accounts.push(Account {
                name,
                zoom_account_id: raw.zoom_account_id.clone(),
                client_id: raw.client_id.clone(),
                client_secret,
                plan: raw.plan,
                budget,
            });
        }
        let accounts = Accounts::new(accounts);

        if self.callers.is_empty() {
            return Err(invalid(
                "callers",
                "at least one caller is needed; without one every request is refused",
            ));
        }
        let policy = Policy::build(&self.callers, &self.user_groups, &accounts)?;

        Ok(Config {
            listen_addr,
            ops_listen_addr,
            zoom_api_url: self.zoom_api_url.trim_end_matches('/').to_owned(),
            zoom_oauth_url: self.zoom_oauth_url,
            request_timeout,
            zoom_timeout,
            shutdown_grace_period,
            request_id_retention,
            store,
            store_password,
            tls,
            token,
            routing: RoutingSettings {
                rules,
                user_cache_ttl,
                negative_cache_ttl,
                directory_sync_interval,
            },
            limits,
            otlp_endpoint: self.telemetry.otlp_endpoint,
            accounts,
            policy,
        })
    }
}

/// Checks a Zoom URL: `http` or `https`, a host written out, no credentials, no whitespace or
/// control characters.
///
/// The URL parser alone is not enough: it reads `http:///v2` as the host `v2`, and would
/// keep `user:password@`. The authority is therefore checked as written. Errors never echo
/// the URL, which may carry a password.
fn check_url(field: &str, value: &str) -> Result<(), ConfigError> {
    const FORM: &str = "must be an http(s) URL with a host, e.g. https://api.zoom.us/v2";
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(invalid(field, FORM));
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(invalid(field, FORM));
    }
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid(
            field,
            "must not carry credentials (user:password@): Zoom credentials come from each \
             account's client secret",
        ));
    }
    let Ok(url) = reqwest::Url::parse(value) else {
        return Err(invalid(field, FORM));
    };
    let has_host = !authority.is_empty()
        && !authority.starts_with(':')
        && url.host_str().is_some_and(|host| !host.is_empty());
    if !has_host || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(field, FORM));
    }
    Ok(())
}

/// Checks what `serve` needs of an SQLite store without creating anything: its directory
/// exists, and the file, if it is there already, is a regular file (not a directory, device or
/// FIFO). `location` is the resolved form, `sqlite:PATH` or `sqlite::memory:`.
fn check_store_file(location: &str) -> Result<(), ConfigError> {
    let Some(path) = location.strip_prefix("sqlite:") else {
        return Ok(());
    };
    if path == ":memory:" {
        return Ok(());
    }
    let path = Path::new(path);
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(invalid(
                "store",
                format!("{} is not a directory", dir.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(invalid(
                "store",
                format!("the directory {} does not exist", dir.display()),
            ));
        }
        Err(e) => {
            return Err(invalid(
                "store",
                format!("cannot inspect {}: {e}", dir.display()),
            ));
        }
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) => Err(invalid(
            "store",
            format!("{} {}", path.display(), not_regular(&meta)),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(invalid(
            "store",
            format!("cannot inspect {}: {e}", path.display()),
        )),
    }
}

// === files ===

/// Largest config file read, in bytes (16 MiB): room for tens of thousands of callers.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Largest `client_secret_file`, in bytes (64 KiB).
pub const MAX_SECRET_BYTES: u64 = 64 << 10;
/// Largest `tls.cert_file` or `tls.key_file`, in bytes (64 KiB).
pub const MAX_PEM_BYTES: u64 = 64 << 10;
/// Largest `tls.client_ca_file`, in bytes (1 MiB): a bundle may hold many CAs.
pub const MAX_CA_BYTES: u64 = 1 << 20;

/// Reads a file the configuration names, or the configuration itself: a regular file (after
/// following symlinks, as Kubernetes mounts ConfigMaps and Secrets) of at most `limit` bytes.
///
/// Anything else is refused before it is opened: `/dev/zero` would fill memory, a FIFO would
/// block start-up. The size is checked before reading and enforced while reading.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            not_regular(&meta),
        ));
    }
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is larger than {limit} bytes"),
        )
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        // Replaced between the check and the open.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            not_regular(&meta),
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Reads a config file with [`read_limited`] and [`MAX_CONFIG_BYTES`], as UTF-8.
pub fn read_config_text(path: &Path) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let bytes = read_limited(path, MAX_CONFIG_BYTES).map_err(read_error)?;
    String::from_utf8(bytes)
        .map_err(|_| read_error(io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8")))
}

fn not_regular(meta: &std::fs::Metadata) -> &'static str {
    if meta.is_dir() {
        "is a directory, not a regular file"
    } else {
        "is not a regular file (a device, FIFO or socket)"
    }
}

/// Formats a TOML error as the message, the key path when known and the position, never the
/// offending line: `client_secret = "…"` is refused as an unknown field, and toml's own Display
/// would quote it, secret included. Values quoted in the message (serde's `invalid type:
/// string "…"`) are left out for the same reason.
fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let message = redact_quoted_strings(error.message());
    let message = message.lines().collect::<Vec<_>>().join("; ");
    // Without its input, the error's Display is the message plus "in `KEY.PATH`".
    let mut bare = error.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let key = shown
        .lines()
        .last()
        .and_then(|line| line.strip_prefix("in `"))
        .and_then(|line| line.strip_suffix('`'))
        .map(|key| format!("{key}: "))
        .unwrap_or_default();
    let position = error
        .span()
        .map(|span| {
            let (line, column) = line_and_column(text, span.start);
            format!(" (line {line}, column {column})")
        })
        .unwrap_or_default();
    ConfigError::Syntax(format!("{key}{message}{position}"))
}

/// Returns the 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Replaces every double-quoted string in a serde message with `"…"`: such quotes hold a value
/// from the file (`invalid type: string "…", expected a sequence`). Backslash escapes inside
/// the quotes are skipped, so an escaped quote does not end the elision early.
fn redact_quoted_strings(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        out.push_str("\"…\"");
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
    }
    out
}

fn resolve_secret(
    raw: &RawAccount,
    env: &HashMap<String, String>,
    base_dir: &Path,
    at: &dyn Fn(&str) -> String,
) -> Result<SecretString, ConfigError> {
    let source = SecretSource {
        env_key: at("client_secret_env"),
        file_key: at("client_secret_file"),
        var: raw.client_secret_env.as_deref(),
        file: raw.client_secret_file.as_deref(),
        what: "the client secret",
    };
    source.read(env, base_dir)?.ok_or_else(|| {
        invalid(
            at("client_secret_env"),
            "the client secret must come from client_secret_env or client_secret_file (never inline)",
        )
    })
}

/// Where a secret comes from: an environment variable or a file, never the config itself.
struct SecretSource<'a> {
    env_key: String,
    file_key: String,
    var: Option<&'a str>,
    file: Option<&'a Path>,
    /// What the secret is, for errors ("the client secret").
    what: &'static str,
}

impl SecretSource<'_> {
    /// The secret, or `None` when neither key is set.
    fn read(
        &self,
        env: &HashMap<String, String>,
        base_dir: &Path,
    ) -> Result<Option<SecretString>, ConfigError> {
        let what = self.what;
        let (secret, key) = match (self.var, self.file) {
            (Some(var), None) => (
                env.get(var)
                    .cloned()
                    .ok_or_else(|| invalid(&self.env_key, format!("{var} is not set")))?,
                &self.env_key,
            ),
            (None, Some(file)) => {
                let path = base_dir.join(file);
                let cannot_read = |e: io::Error| {
                    invalid(
                        &self.file_key,
                        format!("cannot read {}: {e}", path.display()),
                    )
                };
                let bytes = read_limited(&path, MAX_SECRET_BYTES).map_err(cannot_read)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| invalid(&self.file_key, format!("{what} is not UTF-8")))?;
                (
                    text.trim_end_matches(['\r', '\n']).to_owned(),
                    &self.file_key,
                )
            }
            (Some(_), Some(_)) => {
                // The keys as written in their table, e.g. `client_secret_env`.
                let short = |key: &str| key.rsplit('.').next().unwrap_or(key).to_owned();
                return Err(invalid(
                    &self.env_key,
                    format!(
                        "set {} or {}, not both",
                        short(&self.env_key),
                        short(&self.file_key)
                    ),
                ));
            }
            (None, None) => return Ok(None),
        };
        if secret.trim().is_empty() {
            return Err(invalid(key, format!("{what} is empty")));
        }
        Ok(Some(SecretString::from(secret)))
    }
}

fn load_tls(tls: &RawTls, base_dir: &Path) -> Result<TlsConfig, ConfigError> {
    let read = |field: &str, file: &Path, limit: u64| {
        let path = base_dir.join(file);
        read_limited(&path, limit).map_err(|e| {
            invalid(
                format!("tls.{field}"),
                format!("cannot read {}: {e}", path.display()),
            )
        })
    };
    let config = TlsConfig {
        cert_pem: read("cert_file", &tls.cert_file, MAX_PEM_BYTES)?,
        key_pem: SecretBytes(read("key_file", &tls.key_file, MAX_PEM_BYTES)?),
        client_ca_pem: tls
            .client_ca_file
            .as_deref()
            .map(|f| read("client_ca_file", f, MAX_CA_BYTES))
            .transpose()?,
    };
    check_tls(&config)?;
    Ok(config)
}

/// Parses the TLS material as the server will when it starts (rustls with aws-lc-rs, like
/// tonic), so that a file `check-config` accepts also serves: certificates, key, key matching
/// the certificate, and the client CAs. Errors name the key and never show key material.
fn check_tls(tls: &TlsConfig) -> Result<(), ConfigError> {
    use rustls::server::WebPkiClientVerifier;

    let certs = parse_certificates("tls.cert_file", &tls.cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem.0).map_err(|_| {
        invalid(
            "tls.key_file",
            "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("tls", e.to_string()))?;
    builder
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => invalid(
                "tls.key_file",
                "does not match the certificate of tls.cert_file",
            ),
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                invalid("tls.cert_file", format!("is not a usable certificate: {e}"))
            }
            _ => invalid("tls.key_file", "is not a usable private key"),
        })?;

    if let Some(ca_pem) = &tls.client_ca_pem {
        let mut roots = rustls::RootCertStore::empty();
        for (i, ca) in parse_certificates("tls.client_ca_file", ca_pem)?
            .into_iter()
            .enumerate()
        {
            roots.add(ca).map_err(|e| {
                invalid(
                    "tls.client_ca_file",
                    format!("certificate {} is not a usable CA: {e}", i + 1),
                )
            })?;
        }
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| invalid("tls.client_ca_file", e.to_string()))?;
    }
    Ok(())
}

/// Parses every certificate of a PEM file: at least one, each valid X.509.
fn parse_certificates(
    field: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(field, pem_problem(&e)))?;
    if certs.is_empty() {
        return Err(invalid(
            field,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    for (i, cert) in certs.iter().enumerate() {
        if X509Certificate::from_der(cert).is_err() {
            return Err(invalid(
                field,
                format!("certificate {} is not a valid X.509 certificate", i + 1),
            ));
        }
    }
    Ok(certs)
}

/// Describes a PEM error without the bytes some variants carry.
fn pem_problem(error: &rustls_pki_types::pem::Error) -> &'static str {
    use rustls_pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        Error::Base64Decode(_) => "a PEM section is not valid base64",
        _ => "is not valid PEM",
    }
}

fn default_listen_addr() -> String {
    "127.0.0.1:50051".into()
}
fn default_ops_listen_addr() -> String {
    "127.0.0.1:9090".into()
}
fn default_zoom_api_url() -> String {
    "https://api.zoom.us/v2".into()
}
fn default_zoom_oauth_url() -> String {
    "https://zoom.us/oauth/token".into()
}
fn default_request_timeout_secs() -> u64 {
    30
}
fn default_zoom_timeout_secs() -> u64 {
    10
}
fn default_request_id_retention_hours() -> u64 {
    24
}

fn default_shutdown_grace_period_secs() -> u64 {
    20
}
fn default_store() -> String {
    "sqlite:zoomgate.db".into()
}
fn default_refresh_margin_secs() -> u64 {
    300
}
fn default_failure_cooldown_secs() -> u64 {
    1
}
fn default_max_cooldown_secs() -> u64 {
    60
}
fn default_user_cache_ttl_secs() -> u64 {
    600
}
fn default_max_connections() -> u64 {
    10_000
}
fn default_handshake_timeout_secs() -> u64 {
    10
}
fn default_idle_timeout_secs() -> u64 {
    60
}
fn default_keepalive_interval_secs() -> u64 {
    20
}
fn default_keepalive_timeout_secs() -> u64 {
    10
}
fn default_write_stall_timeout_secs() -> u64 {
    10
}
fn default_max_concurrent_streams() -> u64 {
    100
}
fn default_connection_window_bytes() -> u64 {
    1 << 20
}
fn default_stream_window_bytes() -> u64 {
    256 << 10
}
fn default_max_message_bytes() -> u64 {
    1 << 20
}
fn default_max_requests_in_flight_per_caller() -> u64 {
    64
}
fn default_negative_cache_ttl_secs() -> u64 {
    60
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HASH: &str = "15e09c17f3d771ab3c35b8f087f4cbe90866d90fa281152dd4e1a787ebd088d9";

    fn config(accounts: &str) -> String {
        format!(
            r#"
{accounts}

[[callers]]
name = "app"
api_key_sha256 = ["{KEY_HASH}"]
  [[callers.grants]]
  accounts = ["*"]
  users = ["*"]
  operations = ["read"]
"#
        )
    }

    const SALES: &str = r#"
[[accounts]]
name = "sales"
zoom_account_id = "Z1"
client_id = "c1"
client_secret_env = "SALES_SECRET"
users = ["boss@x.test"]
domains = ["sales.x.test"]
"#;

    fn env() -> HashMap<String, String> {
        HashMap::from([("SALES_SECRET".to_owned(), "s3cret".to_owned())])
    }

    fn error_of(text: &str, env: &HashMap<String, String>) -> String {
        Config::from_toml(text, env, Path::new("."))
            .expect_err("config is refused")
            .to_string()
    }

    #[test]
    fn a_minimal_config_gets_defaults() {
        // A real directory: the store's directory must exist.
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_toml(&config(SALES), &env(), dir.path()).unwrap();
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(config.zoom_api_url, "https://api.zoom.us/v2");
        assert_eq!(
            config.store,
            format!("sqlite:{}/zoomgate.db", dir.path().display())
        );
        assert_eq!(config.token.refresh_margin, Duration::from_secs(300));
        let name = AccountName::parse("sales").unwrap();
        let rule = |email| config.routing.rules.rule_for(email).unwrap();
        assert_eq!(rule("ann@sales.x.test").account, name);
        assert_eq!(rule("boss@x.test").account, name);
        assert_eq!(&*rule("boss@x.test").place, "accounts[0].users[0]");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn secrets_come_from_env_or_file_never_inline() {
        assert_eq!(
            error_of(&config(SALES), &HashMap::new()),
            "accounts[0].client_secret_env: SALES_SECRET is not set"
        );
        let inline = SALES.replace(
            "client_secret_env = \"SALES_SECRET\"",
            "client_secret = \"x\"",
        );
        assert!(error_of(&config(&inline), &env()).contains("unknown field `client_secret`"));

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "from-file\n").unwrap();
        let from_file = SALES.replace(
            "client_secret_env = \"SALES_SECRET\"",
            "client_secret_file = \"secret\"",
        );
        let config = Config::from_toml(&config(&from_file), &HashMap::new(), dir.path()).unwrap();
        let account = config.accounts.iter().next().unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(account.client_secret.expose_secret(), "from-file");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                config(SALES).replace("[[accounts]]", "listen_addr = \"nowhere\"\n[[accounts]]"),
                "listen_addr",
            ),
            (
                config(SALES).replace("[[accounts]]", "zoom_api_url = \"ftp://x\"\n[[accounts]]"),
                "zoom_api_url",
            ),
            (
                config(&SALES.replace("\"sales\"", "\"Sales!\"")),
                "accounts[0].name",
            ),
            (
                config(&SALES.replace("\"Z1\"", "\"\"")),
                "accounts[0].zoom_account_id",
            ),
            (
                config(&SALES.replace("\"boss@x.test\"", "\"boss\"")),
                "accounts[0].users[0]",
            ),
            (
                config(&format!(
                    "{SALES}{}",
                    SALES.replace("\"sales\"", "\"other\"")
                )),
                "accounts[1].zoom_account_id",
            ),
            (
                config(&format!(
                    "{SALES}{}",
                    SALES.replace("\"sales\"", "\"other\"").replace("Z1", "Z2")
                )),
                "accounts[1].users[0]",
            ),
            (
                config(SALES).replace("\"read\"", "\"destroy\""),
                "callers[0].grants[0].operations[0]",
            ),
            (config(""), "accounts"),
        ];
        for (text, field) in cases {
            let error = error_of(&text, &env());
            assert!(error.starts_with(&format!("{field}: ")), "{field}: {error}");
        }
        let no_callers = SALES.to_owned();
        assert!(error_of(&no_callers, &env()).starts_with("callers: "));
    }

    #[test]
    fn certificate_callers_without_a_client_ca_are_warned_about() {
        let plain = Config::from_toml(&config(SALES), &env(), Path::new(".")).unwrap();
        assert!(plain.warnings().is_empty());
        let text = config(SALES).replace(
            "api_key_sha256 = [",
            "mtls_sans = [\"spiffe://x.test/app\"]\napi_key_sha256 = [",
        );
        let with_sans = Config::from_toml(&text, &env(), Path::new(".")).unwrap();
        assert_eq!(with_sans.warnings().len(), 1);
        assert!(with_sans.warnings()[0].contains("tls.client_ca_file"));
    }

    #[test]
    fn other_databases_are_refused_at_load_without_echoing_the_url() {
        let text = config(SALES).replace(
            "[[accounts]]",
            "store = \"postgres://zoomgate:pa55word@db/zoomgate\"\n[[accounts]]",
        );
        let error = error_of(&text, &env());
        assert!(error.starts_with("store: "), "{error}");
        assert!(!error.contains("pa55word"), "{error}");
    }

    #[test]
    fn an_empty_secret_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "\n").unwrap();
        let text = config(&SALES.replace(
            "client_secret_env = \"SALES_SECRET\"",
            "client_secret_file = \"secret\"",
        ));
        let error = Config::from_toml(&text, &HashMap::new(), dir.path())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "accounts[0].client_secret_file: the client secret is empty"
        );
    }

    // === bounds of durations ===

    /// Every numeric key of the file: (table, key, smallest, largest accepted value).
    const NUMERIC_FIELDS: [(&str, &str, u64, u64); 20] = [
        ("", "request_timeout_secs", 1, 3_600),
        ("", "request_id_retention_hours", 1, 8_760),
        ("", "zoom_timeout_secs", 1, 3_600),
        ("", "shutdown_grace_period_secs", 0, 3_600),
        ("token", "refresh_margin_secs", 0, 86_400),
        ("token", "failure_cooldown_secs", 1, 86_400),
        ("token", "max_cooldown_secs", 1, 86_400),
        ("routing", "user_cache_ttl_secs", 0, 2_592_000),
        ("routing", "negative_cache_ttl_secs", 0, 2_592_000),
        ("limits", "max_connections", 1, 1_000_000),
        ("limits", "handshake_timeout_secs", 1, 300),
        ("limits", "idle_timeout_secs", 1, 86_400),
        ("limits", "keepalive_interval_secs", 1, 3_600),
        ("limits", "keepalive_timeout_secs", 1, 300),
        ("limits", "write_stall_timeout_secs", 1, 300),
        ("limits", "max_concurrent_streams", 1, 10_000),
        ("limits", "connection_window_bytes", 65_535, (1 << 31) - 1),
        ("limits", "stream_window_bytes", 65_535, (1 << 31) - 1),
        ("limits", "max_message_bytes", 1_024, 64 << 20),
        ("limits", "max_requests_in_flight_per_caller", 1, 100_000),
    ];

    /// The test config with one numeric key set; returns it and the key's path.
    fn with_number(table: &str, key: &str, value: u64) -> (String, String) {
        if table.is_empty() {
            let text =
                config(SALES).replace("[[accounts]]", &format!("{key} = {value}\n[[accounts]]"));
            (text, key.to_owned())
        } else {
            let text = format!("{}\n[{table}]\n{key} = {value}\n", config(SALES));
            (text, format!("{table}.{key}"))
        }
    }

    #[test]
    fn the_directory_sync_interval_is_off_or_a_minute_to_a_week() {
        let interval = |value| {
            let (text, _) = with_number("routing", "directory_sync_interval_secs", value);
            Config::from_toml(&text, &env(), Path::new("."))
                .map(|config| config.routing.directory_sync_interval)
        };
        assert_eq!(interval(0).unwrap(), None);
        assert_eq!(interval(60).unwrap(), Some(Duration::from_secs(60)));
        assert_eq!(
            interval(604_800).unwrap(),
            Some(Duration::from_secs(604_800))
        );
        for refused in [1, 59, 604_801] {
            let error = interval(refused).unwrap_err().to_string();
            assert!(
                error.starts_with("routing.directory_sync_interval_secs"),
                "{error}"
            );
        }
    }

    #[test]
    fn every_number_is_bounded_and_errors_name_the_field_and_range() {
        for (table, key, min, max) in NUMERIC_FIELDS {
            let (text, field) = with_number(table, key, max);
            let accepted = Config::from_toml(&text, &env(), Path::new("."));
            // Only the cooldown pair has a rule across keys: the first pause may not exceed the
            // longest.
            if field != "token.failure_cooldown_secs" {
                accepted.unwrap_or_else(|e| panic!("{field} = {max}: {e}"));
            }
            let mut refused = vec![max + 1, i64::MAX as u64, u64::MAX];
            if min > 0 {
                refused.push(min - 1);
            }
            for value in refused {
                let (text, _) = with_number(table, key, value);
                assert_eq!(
                    error_of(&text, &env()),
                    format!("{field}: must be between {min} and {max}"),
                    "{field} = {value}"
                );
            }
        }
    }

    #[test]
    fn the_cache_ttl_of_the_attack_is_refused() {
        let text = format!(
            "{}\n[routing]\nuser_cache_ttl_secs = 9223372036854775807\n",
            config(SALES)
        );
        assert_eq!(
            error_of(&text, &env()),
            "routing.user_cache_ttl_secs: must be between 0 and 2592000"
        );
    }

    fn numeric_value() -> impl proptest::strategy::Strategy<Value = u64> {
        use proptest::prelude::*;
        prop_oneof![
            0..=10u64,
            proptest::sample::select(vec![
                59,
                60,
                299,
                300,
                301,
                1_023,
                1_024,
                3_599,
                3_600,
                3_601,
                65_534,
                65_535,
                86_400,
                86_401,
                2_592_000,
                2_592_001,
                (1 << 31) - 1,
                1 << 31,
                u32::MAX as u64,
                u32::MAX as u64 + 1,
                i64::MAX as u64,
                i64::MAX as u64 + 1,
                u64::MAX,
            ]),
            any::<u64>(),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// For any value of any numeric key, loading never panics, and either names the key or
        /// gives durations the directory and the clock take without overflowing.
        #[test]
        fn any_number_in_any_field_is_named_or_usable(
            index in 0..NUMERIC_FIELDS.len(),
            value in numeric_value(),
        ) {
            let (table, key, _, _) = NUMERIC_FIELDS[index];
            let (text, field) = with_number(table, key, value);
            match Config::from_toml(&text, &env(), Path::new(".")) {
                Err(error) => {
                    let error = error.to_string();
                    proptest::prop_assert!(error.contains(&field), "{field} = {value}: {error}");
                }
                Ok(config) => {
                    let now = tokio::time::Instant::now();
                    let limits = config.limits;
                    for duration in [
                        config.request_timeout,
                        config.zoom_timeout,
                        config.shutdown_grace_period,
                        config.token.refresh_margin,
                        config.token.failure_cooldown,
                        config.token.max_cooldown,
                        config.routing.user_cache_ttl,
                        config.routing.negative_cache_ttl,
                        limits.handshake_timeout,
                        limits.idle_timeout,
                        limits.keepalive_interval,
                        limits.keepalive_timeout,
                        limits.write_stall_timeout,
                    ] {
                        // What the server does with a setting: deadlines from now.
                        let _ = now + duration;
                        proptest::prop_assert!(duration <= Duration::from_secs(MAX_CACHE_TTL_SECS));
                    }
                    let directory = crate::routing::ProbeCache::new(
                        config.routing.user_cache_ttl,
                        config.routing.negative_cache_ttl,
                    );
                    let sales = AccountName::parse("sales").unwrap();
                    directory.record_found(crate::routing::UserLocation {
                        account: sales.clone(),
                        user_id: "u1".into(),
                        email: "ann@x.test".into(),
                    });
                    directory.record_absent("bob@x.test", &sales);
                    proptest::prop_assert_eq!(
                        directory.lookup("u1").is_some(),
                        !config.routing.user_cache_ttl.is_zero()
                    );
                    let _ = directory.known_absent("bob@x.test", &sales);
                }
            }
        }
    }

    // === files ===

    fn secret_file(path: &str) -> String {
        config(&SALES.replace(
            "client_secret_env = \"SALES_SECRET\"",
            &format!("client_secret_file = \"{path}\""),
        ))
    }

    fn error_in(text: &str, dir: &Path) -> String {
        Config::from_toml(text, &HashMap::new(), dir)
            .expect_err("config is refused")
            .to_string()
    }

    #[test]
    fn secret_files_must_be_small_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a-dir")).unwrap();
        std::fs::write(dir.path().join("huge"), vec![b'x'; 64 * 1024 + 1]).unwrap();
        std::fs::write(dir.path().join("just-fits"), vec![b'x'; 64 * 1024]).unwrap();

        let error = error_in(&secret_file("/dev/zero"), dir.path());
        assert!(
            error.starts_with("accounts[0].client_secret_file: cannot read /dev/zero: ")
                && error.contains("not a regular file"),
            "{error}"
        );
        let error = error_in(&secret_file("a-dir"), dir.path());
        assert!(
            error.starts_with("accounts[0].client_secret_file: ") && error.contains("directory"),
            "{error}"
        );
        let error = error_in(&secret_file("huge"), dir.path());
        assert!(
            error.starts_with("accounts[0].client_secret_file: ")
                && error.contains("larger than 65536 bytes"),
            "{error}"
        );
        Config::from_toml(&secret_file("just-fits"), &HashMap::new(), dir.path()).unwrap();
    }

    #[test]
    fn symlinked_files_are_followed_as_kubernetes_mounts_them() {
        // A Secret volume: `secret -> ..data/secret`, `..data -> ..2024_01_01/`.
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("..2024_01_01");
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("secret"), "mounted\n").unwrap();
        std::os::unix::fs::symlink("..2024_01_01", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/secret", dir.path().join("secret")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();

        let config =
            Config::from_toml(&secret_file("secret"), &HashMap::new(), dir.path()).unwrap();
        use secrecy::ExposeSecret;
        let account = config.accounts.iter().next().unwrap();
        assert_eq!(account.client_secret.expose_secret(), "mounted");

        let error = error_in(&secret_file("zero"), dir.path());
        assert!(error.contains("not a regular file"), "{error}");
    }

    #[test]
    fn the_config_file_itself_must_be_a_small_regular_file() {
        let env = env();
        for path in ["/dev/zero", "/"] {
            let error = Config::load(Path::new(path), &env).unwrap_err();
            assert!(
                matches!(error, ConfigError::Read { .. })
                    && error.to_string().contains("regular file"),
                "{path}: {error}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_CONFIG_BYTES + 1).unwrap();
        let error = Config::load(&big, &env).unwrap_err().to_string();
        assert!(error.contains("larger than 16777216 bytes"), "{error}");
        assert!(store_location(&big).is_err());
        assert!(store_location(Path::new("/dev/zero")).is_err());
    }

    // === TLS ===

    /// A self-signed certificate and its key, as PEM.
    fn certificate() -> (String, String) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    /// The test config with `[tls]` over `cert`, `key` and maybe `ca`, written into `dir`.
    fn with_tls(dir: &Path, cert: &[u8], key: &[u8], ca: Option<&[u8]>) -> String {
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        let mut tls = "[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n".to_owned();
        if let Some(ca) = ca {
            std::fs::write(dir.join("ca.pem"), ca).unwrap();
            tls.push_str("client_ca_file = \"ca.pem\"\n");
        }
        config(SALES).replace("[[accounts]]", &format!("{tls}\n[[accounts]]"))
    }

    /// Certificate, key and client CA PEM, and how the error starts.
    type TlsCase<'a> = (&'a [u8], &'a [u8], Option<&'a [u8]>, &'a str);

    fn tls_error(dir: &Path, cert: &[u8], key: &[u8], ca: Option<&[u8]>) -> String {
        Config::from_toml(&with_tls(dir, cert, key, ca), &env(), dir)
            .expect_err("TLS material is refused")
            .to_string()
    }

    #[test]
    fn tls_material_is_parsed_when_the_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let (cert, key) = certificate();
        let (other_cert, other_key) = certificate();
        let garbage_pem =
            "-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n".to_owned();

        let config = Config::from_toml(
            &with_tls(
                dir,
                cert.as_bytes(),
                key.as_bytes(),
                Some(other_cert.as_bytes()),
            ),
            &env(),
            dir,
        )
        .unwrap();
        assert!(config.tls.unwrap().client_ca_pem.is_some());

        let cases: [TlsCase; 9] = [
            (
                b"not a certificate",
                key.as_bytes(),
                None,
                "tls.cert_file: ",
            ),
            (
                garbage_pem.as_bytes(),
                key.as_bytes(),
                None,
                "tls.cert_file: ",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nZ2Fy\n",
                key.as_bytes(),
                None,
                "tls.cert_file: ",
            ),
            (key.as_bytes(), key.as_bytes(), None, "tls.cert_file: "),
            (cert.as_bytes(), b"not a key", None, "tls.key_file: "),
            (cert.as_bytes(), cert.as_bytes(), None, "tls.key_file: "),
            (
                cert.as_bytes(),
                other_key.as_bytes(),
                None,
                "tls.key_file: does not match",
            ),
            (
                cert.as_bytes(),
                key.as_bytes(),
                Some(b"no CA here"),
                "tls.client_ca_file: ",
            ),
            (
                cert.as_bytes(),
                key.as_bytes(),
                Some(garbage_pem.as_bytes()),
                "tls.client_ca_file: ",
            ),
        ];
        for (i, (cert, key_pem, ca, expected)) in cases.into_iter().enumerate() {
            let error = tls_error(dir, cert, key_pem, ca);
            assert!(error.starts_with(expected), "case {i}: {error}");
        }

        // Key material never shows, not even from a key that does not fit.
        let body = |pem: &str| pem.lines().nth(1).unwrap().to_owned();
        for key_pem in [
            other_key.as_str(),
            &other_key.replace(&body(&other_key), "AAAA"),
        ] {
            let error = tls_error(dir, cert.as_bytes(), key_pem.as_bytes(), None);
            assert!(!error.contains(&body(&other_key)), "{error}");
            assert!(!error.contains("PRIVATE"), "{error}");
        }
    }

    #[test]
    fn tls_files_must_be_small_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = certificate();
        let text = with_tls(dir.path(), cert.as_bytes(), key.as_bytes(), None);
        for (field, name) in [("cert_file", "cert.pem"), ("key_file", "key.pem")] {
            let zero = text.replace(&format!("\"{name}\""), "\"/dev/zero\"");
            let error = error_in(&zero, dir.path());
            assert!(
                error.starts_with(&format!("tls.{field}: cannot read /dev/zero: ")),
                "{error}"
            );
        }
        let with_ca = text.replace("key_file", "client_ca_file = \"/dev/zero\"\nkey_file");
        let error = error_in(&with_ca, dir.path());
        assert!(error.starts_with("tls.client_ca_file: "), "{error}");
    }

    // === URLs ===

    #[test]
    fn zoom_urls_need_a_host_and_no_credentials() {
        let url_error = |field: &str, url: &str| {
            let text = config(SALES).replace(
                "[[accounts]]",
                &format!("{field} = \"{url}\"\n[[accounts]]"),
            );
            Config::from_toml(&text, &env(), Path::new("."))
                .err()
                .map(|e| e.to_string())
        };
        for field in ["zoom_api_url", "zoom_oauth_url"] {
            for good in [
                "https://api.zoom.us/v2",
                "http://127.0.0.1:8080/v2",
                "http://[::1]:8080/v2",
                "HTTPS://Zoom.US/oauth/token",
            ] {
                assert_eq!(url_error(field, good), None, "{field} = {good}");
            }
            for bad in [
                "http:///v2",
                "http://",
                "https:api.zoom.us/v2",
                "http:/api.zoom.us",
                "http://:8080/v2",
                "ftp://x/v2",
                "https://api zoom.us/v2",
                "https://api.zoom.us/v2\\n",
                "api.zoom.us/v2",
            ] {
                let error = url_error(field, bad).unwrap_or_else(|| panic!("{field} = {bad:?}"));
                assert!(error.starts_with(&format!("{field}: ")), "{error}");
            }
            for secret in [
                "https://user:hunter2@api.zoom.us/v2",
                "https://:hunter2@api.zoom.us/v2",
                "https://hunter2@api.zoom.us/v2",
                "http:/u:hunter2@api.zoom.us/v2",
                "http:///u:hunter2@v2",
            ] {
                let error =
                    url_error(field, secret).unwrap_or_else(|| panic!("{field} = {secret}"));
                assert!(error.starts_with(&format!("{field}: ")), "{error}");
                assert!(!error.contains("hunter2"), "{error}");
            }
        }
    }

    // === store ===

    #[test]
    fn the_store_must_be_openable_and_is_not_created_by_checking() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a-dir")).unwrap();
        let store_error = |store: &str| {
            let text = config(SALES).replace(
                "[[accounts]]",
                &format!("store = \"{store}\"\n[[accounts]]"),
            );
            Config::from_toml(&text, &env(), dir.path())
                .err()
                .map(|e| e.to_string())
        };
        for bad in [
            "sqlite:missing/zoomgate.db",
            "missing/zoomgate.db",
            "sqlite:a-dir",
            "sqlite:/dev/zero",
            "/dev/null",
            "sqlite:/dev/zero/x.db",
        ] {
            let error = store_error(bad).unwrap_or_else(|| panic!("store = {bad}"));
            assert!(error.starts_with("store: "), "{bad}: {error}");
        }
        assert_eq!(store_error("sqlite::memory:"), None);
        assert_eq!(store_error("sqlite:a-dir/new.db"), None);
        assert!(
            !dir.path().join("a-dir/new.db").exists(),
            "checking creates nothing"
        );
        std::fs::write(dir.path().join("existing.db"), b"").unwrap();
        assert_eq!(store_error("existing.db"), None);
    }

    #[test]
    fn a_postgres_store_takes_its_password_from_the_environment_or_a_file() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let with = |keys: &str| {
            config(SALES).replace(
                "[[accounts]]",
                &format!("store = \"postgres://zoomgate@db:5432/zoomgate\"\n{keys}\n[[accounts]]"),
            )
        };
        let mut env = env();
        env.insert("DB_PASSWORD".into(), "pg-s3cret".into());
        let from_env = Config::from_toml(
            &with("store_password_env = \"DB_PASSWORD\""),
            &env,
            dir.path(),
        )
        .expect("a postgres store with a password from the environment");
        assert_eq!(from_env.store, "postgres://zoomgate@db:5432/zoomgate");
        assert_eq!(
            from_env.store_password.unwrap().expose_secret(),
            "pg-s3cret"
        );
        std::fs::write(dir.path().join("pg-password"), "from-a-file\n").unwrap();
        let from_file = Config::from_toml(
            &with("store_password_file = \"pg-password\""),
            &env,
            dir.path(),
        )
        .expect("a postgres store with a password file");
        assert_eq!(
            from_file.store_password.unwrap().expose_secret(),
            "from-a-file"
        );
        let without = Config::from_toml(&with(""), &env, dir.path()).unwrap();
        assert!(without.store_password.is_none());

        for (keys, expected) in [
            (
                "store_password_env = \"UNSET\"",
                "store_password_env: UNSET is not set",
            ),
            (
                "store_password_env = \"DB_PASSWORD\"\nstore_password_file = \"pg-password\"",
                "store_password_env: set store_password_env or store_password_file, not both",
            ),
        ] {
            let error = error_of(&with(keys), &env);
            assert_eq!(error, expected);
            assert!(!error.contains("pg-s3cret"));
        }
        let on_sqlite = config(SALES).replace(
            "[[accounts]]",
            "store_password_env = \"DB_PASSWORD\"\n[[accounts]]",
        );
        assert_eq!(
            error_of(&on_sqlite, &env),
            "store_password_env: only a postgres:// store takes a password"
        );
    }

    #[test]
    fn a_password_in_a_store_url_is_never_echoed() {
        let text = config(SALES).replace(
            "[[accounts]]",
            "store = \"postgres://u:hunter2@h/db\"\n[[accounts]]",
        );
        let error = error_of(&text, &env());
        assert!(error.starts_with("store: "), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    // === syntax errors ===

    #[test]
    fn syntax_errors_give_the_position_and_never_the_line() {
        let inline = config(&SALES.replace(
            "client_secret_env = \"SALES_SECRET\"",
            "client_secret = \"hunter2-inline-secret\"",
        ));
        let error = error_of(&inline, &env());
        assert!(error.contains("unknown field `client_secret`"), "{error}");
        assert!(error.contains("(line 7, column 1)"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");

        let raw_key = config(SALES).replace(
            &format!("api_key_sha256 = [\"{KEY_HASH}\"]"),
            "api_key_sha256 = \"hunter2-raw-key\\\"quoted\\\"-tail\"",
        );
        let error = error_of(&raw_key, &env());
        assert!(
            error.starts_with("callers.api_key_sha256: invalid type"),
            "{error}"
        );
        assert!(
            !error.contains("hunter2") && !error.contains("tail"),
            "{error}"
        );

        let broken = "listen_addr = \"127.0.0.1:1\"\nzoom_api_url = hunter2\n";
        let error = error_of(broken, &env());
        assert!(error.contains("(line 2, column 16)"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(!error.contains('\n'), "{error:?}");
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_and_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_and_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_and_column("é = x", 4), (1, 4));
        assert_eq!(line_and_column("ab", 99), (1, 3));
        assert_eq!(redact_quoted_strings(r#"a "x\"y" b "z""#), r#"a "…" b "…""#);
    }
}

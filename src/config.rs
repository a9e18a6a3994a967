//! The gateway's TOML configuration: parsed into [`RawConfig`], then validated into [`Config`].
//!
//! The file holds structure (accounts, routing rules, callers and grants). Secrets are never
//! inline: each account names an environment variable or a file that holds its client secret, and
//! callers are identified by the SHA-256 of their API key.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::accounts::{Account, AccountName, Accounts, Plan};
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
    /// Base URL of Zoom's REST API, including `/v2`. Default `https://api.zoom.us/v2`.
    #[serde(default = "default_zoom_api_url")]
    pub zoom_api_url: String,
    /// Zoom's OAuth token endpoint. Default `https://zoom.us/oauth/token`.
    #[serde(default = "default_zoom_oauth_url")]
    pub zoom_oauth_url: String,
    /// Upper bound for one gRPC request, in seconds. Default 30.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Upper bound for one call to Zoom, in seconds. Default 10.
    #[serde(default = "default_zoom_timeout_secs")]
    pub zoom_timeout_secs: u64,
    /// How long shutdown waits for requests in flight, in seconds. Default 20.
    #[serde(default = "default_shutdown_grace_period_secs")]
    pub shutdown_grace_period_secs: u64,
    /// Where durable state lives: `sqlite:PATH` or a bare path. Default `sqlite:zoomgate.db`.
    #[serde(default = "default_store")]
    pub store: String,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub token: RawTokenSettings,
    #[serde(default)]
    pub routing: RawRoutingSettings,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub accounts: Vec<RawAccount>,
    #[serde(default)]
    pub user_groups: Vec<RawUserGroup>,
    #[serde(default)]
    pub callers: Vec<RawCaller>,
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
    /// A token is replaced this long before it expires, in seconds. Default 300.
    #[serde(default = "default_refresh_margin_secs")]
    pub refresh_margin_secs: u64,
    /// First pause after a failed token fetch, in seconds; it doubles up to `max_cooldown_secs`. Default 1.
    #[serde(default = "default_failure_cooldown_secs")]
    pub failure_cooldown_secs: u64,
    /// Longest pause between failed token fetches, in seconds. Default 60.
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
    /// How long a user found by a probe stays mapped to its account, in seconds. Default 600.
    #[serde(default = "default_user_cache_ttl_secs")]
    pub user_cache_ttl_secs: u64,
    /// How long "user is not in this account" is remembered, in seconds. Default 60.
    #[serde(default = "default_negative_cache_ttl_secs")]
    pub negative_cache_ttl_secs: u64,
}

impl Default for RawRoutingSettings {
    fn default() -> Self {
        Self {
            user_cache_ttl_secs: default_user_cache_ttl_secs(),
            negative_cache_ttl_secs: default_negative_cache_ttl_secs(),
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
    /// Routing rule: these user emails live in this account.
    #[serde(default)]
    pub users: Vec<String>,
    /// Routing rule: users of these email domains live in this account.
    #[serde(default)]
    pub domains: Vec<String>,
}

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

/// Settings of the user -> account directory.
#[derive(Clone, Debug)]
pub struct RoutingSettings {
    pub rules: RoutingRules,
    pub user_cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
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
    pub zoom_api_url: String,
    pub zoom_oauth_url: String,
    pub request_timeout: Duration,
    pub zoom_timeout: Duration,
    pub shutdown_grace_period: Duration,
    pub store: String,
    pub tls: Option<TlsConfig>,
    pub token: TokenSettings,
    pub routing: RoutingSettings,
    pub limits: Limits,
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, env, base)
    }

    /// Parses `text` and resolves relative paths against `base_dir` and secrets from `env`.
    pub fn from_toml(
        text: &str,
        env: &HashMap<String, String>,
        base_dir: &Path,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
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

/// Reads only the store location of a config file, for tools that need no secrets (`zoomgate audit`).
pub fn store_location(path: &Path) -> Result<String, ConfigError> {
    #[derive(Deserialize)]
    struct StoreOnly {
        #[serde(default = "default_store")]
        store: String,
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let raw: StoreOnly = toml::from_str(&text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
    store::resolve_location(&raw.store, path.parent().unwrap_or(Path::new(".")))
        .map_err(|e| invalid("store", e.to_string()))
}

impl RawConfig {
    /// Checks every field and resolves secrets, naming the first field that is wrong.
    pub fn validate(
        self,
        env: &HashMap<String, String>,
        base_dir: &Path,
    ) -> Result<Config, ConfigError> {
        let listen_addr = self.listen_addr.parse().map_err(|_| {
            invalid(
                "listen_addr",
                format!(
                    "`{}` is not an address like 127.0.0.1:50051",
                    self.listen_addr
                ),
            )
        })?;
        check_url("zoom_api_url", &self.zoom_api_url)?;
        check_url("zoom_oauth_url", &self.zoom_oauth_url)?;
        let request_timeout = positive_secs("request_timeout_secs", self.request_timeout_secs)?;
        let zoom_timeout = positive_secs("zoom_timeout_secs", self.zoom_timeout_secs)?;
        let shutdown_grace_period = Duration::from_secs(self.shutdown_grace_period_secs);
        if self.store.trim().is_empty() {
            return Err(invalid(
                "store",
                "must name a database, e.g. sqlite:zoomgate.db",
            ));
        }
        let store = store::resolve_location(&self.store, base_dir)
            .map_err(|e| invalid("store", e.to_string()))?;
        let tls = self.tls.map(|tls| load_tls(&tls, base_dir)).transpose()?;
        let limits = self.limits.validate()?;

        let token = TokenSettings {
            refresh_margin: Duration::from_secs(self.token.refresh_margin_secs),
            failure_cooldown: positive_secs(
                "token.failure_cooldown_secs",
                self.token.failure_cooldown_secs,
            )?,
            max_cooldown: positive_secs("token.max_cooldown_secs", self.token.max_cooldown_secs)?,
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
            let client_secret = resolve_secret(raw, env, base_dir, &at)?;
            for (j, email) in raw.users.iter().enumerate() {
                rules
                    .add_user(email, &name)
                    .map_err(|e| invalid(at(&format!("users[{j}]")), e))?;
            }
            for (j, domain) in raw.domains.iter().enumerate() {
                rules
                    .add_domain(domain, &name)
                    .map_err(|e| invalid(at(&format!("domains[{j}]")), e))?;
            }
            accounts.push(Account {
                name,
                zoom_account_id: raw.zoom_account_id.clone(),
                client_id: raw.client_id.clone(),
                client_secret,
                plan: raw.plan,
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
            zoom_api_url: self.zoom_api_url.trim_end_matches('/').to_owned(),
            zoom_oauth_url: self.zoom_oauth_url,
            request_timeout,
            zoom_timeout,
            shutdown_grace_period,
            store,
            tls,
            token,
            routing: RoutingSettings {
                rules,
                user_cache_ttl: Duration::from_secs(self.routing.user_cache_ttl_secs),
                negative_cache_ttl: Duration::from_secs(self.routing.negative_cache_ttl_secs),
            },
            limits,
            accounts,
            policy,
        })
    }
}

fn check_url(field: &str, value: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(invalid(field, format!("`{value}` is not an http(s) URL"))),
    }
}

fn positive_secs(field: &str, secs: u64) -> Result<Duration, ConfigError> {
    if secs == 0 {
        return Err(invalid(field, "must be at least 1"));
    }
    Ok(Duration::from_secs(secs))
}

fn resolve_secret(
    raw: &RawAccount,
    env: &HashMap<String, String>,
    base_dir: &Path,
    at: &dyn Fn(&str) -> String,
) -> Result<SecretString, ConfigError> {
    let secret = match (&raw.client_secret_env, &raw.client_secret_file) {
        (Some(var), None) => env
            .get(var)
            .cloned()
            .ok_or_else(|| invalid(at("client_secret_env"), format!("{var} is not set")))?,
        (None, Some(file)) => {
            let path = base_dir.join(file);
            std::fs::read_to_string(&path)
                .map_err(|e| {
                    invalid(
                        at("client_secret_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?
                .trim_end_matches(['\r', '\n'])
                .to_owned()
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                at("client_secret_env"),
                "set client_secret_env or client_secret_file, not both",
            ));
        }
        (None, None) => {
            return Err(invalid(
                at("client_secret_env"),
                "the client secret must come from client_secret_env or client_secret_file (never inline)",
            ));
        }
    };
    if secret.trim().is_empty() {
        let field = match raw.client_secret_file {
            Some(_) => "client_secret_file",
            None => "client_secret_env",
        };
        return Err(invalid(at(field), "the client secret is empty"));
    }
    Ok(SecretString::from(secret))
}

fn load_tls(tls: &RawTls, base_dir: &Path) -> Result<TlsConfig, ConfigError> {
    let read = |field: &str, file: &Path| {
        let path = base_dir.join(file);
        std::fs::read(&path).map_err(|e| {
            invalid(
                format!("tls.{field}"),
                format!("cannot read {}: {e}", path.display()),
            )
        })
    };
    Ok(TlsConfig {
        cert_pem: read("cert_file", &tls.cert_file)?,
        key_pem: SecretBytes(read("key_file", &tls.key_file)?),
        client_ca_pem: tls
            .client_ca_file
            .as_deref()
            .map(|f| read("client_ca_file", f))
            .transpose()?,
    })
}

fn default_listen_addr() -> String {
    "127.0.0.1:50051".into()
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
        let config = Config::from_toml(&config(SALES), &env(), Path::new("/etc/zoomgate")).unwrap();
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(config.zoom_api_url, "https://api.zoom.us/v2");
        assert_eq!(config.store, "sqlite:/etc/zoomgate/zoomgate.db");
        assert_eq!(config.token.refresh_margin, Duration::from_secs(300));
        let name = AccountName::parse("sales").unwrap();
        assert_eq!(
            config.routing.rules.account_for("ann@sales.x.test"),
            Some(&name)
        );
        assert_eq!(config.routing.rules.account_for("boss@x.test"), Some(&name));
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
}

//! The emulator's TOML configuration: accounts, their apps and users, webhook target.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use secrecy::SecretString;
use serde::Deserialize;

use crate::accounts::Plan;

/// The whole emulator configuration, as read from `config/emulator.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorConfig {
    /// Where `zoomgate emulator` listens; tests pass their own address to `Emulator::start`.
    #[serde(default = "default_listen_addr")]
    pub listen_addr: SocketAddr,
    /// Lifetime of issued access tokens in seconds (Zoom: 3600). Tests shorten it.
    #[serde(default = "default_token_ttl_secs")]
    pub token_ttl_secs: u64,
    /// Enforces Zoom's rate limits (default true). Benchmarks turn it off so the emulator's
    /// faithful 30-80 requests/s per account do not cap the gateway under test.
    #[serde(default = "default_true")]
    pub enforce_rate_limits: bool,
    /// Where Zoom-signed meeting events are posted; no webhooks when absent.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// The emulated Zoom accounts, each with one Server-to-Server OAuth app.
    pub accounts: Vec<AccountConfig>,
}

/// The event subscription of the emulated app: one URL, one secret token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Endpoint URL that receives `POST`s with JSON events.
    pub url: String,
    /// Zoom's "secret token": the HMAC-SHA256 key of `x-zm-signature`.
    pub secret_token: SecretString,
}

/// One Zoom account and its Server-to-Server OAuth app.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Zoom's account id, sent by clients as `account_id` in the token request.
    pub account_id: String,
    /// The S2S app's client id.
    pub client_id: String,
    /// The S2S app's client secret.
    pub client_secret: SecretString,
    /// Plan tier: sets the per-second and daily rate limits.
    #[serde(default)]
    pub plan: Plan,
    /// Scopes granted to the app, classic or granular; every token carries all of them.
    pub scopes: Vec<String>,
    /// The account's users.
    #[serde(default)]
    pub users: Vec<UserConfig>,
}

/// One user of an account.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Zoom user id (an opaque string such as `KDcuGIm1QgePTO8WbOqwIQ`).
    pub id: String,
    /// Email address; unique across all accounts, as in Zoom.
    pub email: String,
    /// 1 Basic, 2 Licensed, 4 Unassigned without Meetings Basic, 99 None.
    #[serde(default = "default_user_type", rename = "type")]
    pub user_type: u8,
    /// `active`, `inactive` or `pending`.
    #[serde(default)]
    pub status: UserStatus,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// IANA time zone of the user; the default time zone of their meetings.
    #[serde(default = "default_timezone")]
    pub timezone: String,
}

/// A user's status in Zoom.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    #[default]
    Active,
    Inactive,
    Pending,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
            UserStatus::Pending => "pending",
        }
    }
}

/// Why a configuration was rejected; each variant names the offending value.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid emulator config: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("token_ttl_secs must be at least 1")]
    ZeroTokenTtl,
    #[error("at least one account is required")]
    NoAccounts,
    #[error("{field} must not be empty")]
    Empty { field: String },
    #[error("duplicate {what} `{value}`")]
    Duplicate { what: &'static str, value: String },
    #[error("user `{user}`: type {user_type} is not one of 1, 2, 4, 99")]
    UserType { user: String, user_type: u8 },
    #[error("user `{user}`: unknown time zone `{timezone}`")]
    TimeZone { user: String, timezone: String },
    #[error("webhook url `{0}` must start with http:// or https://")]
    WebhookUrl(String),
}

fn default_listen_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9900))
}

fn default_token_ttl_secs() -> u64 {
    3600
}

fn default_true() -> bool {
    true
}

fn default_user_type() -> u8 {
    2
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

impl EmulatorConfig {
    /// Parses and validates a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Self, EmulatorConfigError> {
        let config: EmulatorConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, EmulatorConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmulatorConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    fn validate(&self) -> Result<(), EmulatorConfigError> {
        if self.token_ttl_secs == 0 {
            return Err(EmulatorConfigError::ZeroTokenTtl);
        }
        if self.accounts.is_empty() {
            return Err(EmulatorConfigError::NoAccounts);
        }
        if let Some(webhook) = &self.webhook
            && !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://"))
        {
            return Err(EmulatorConfigError::WebhookUrl(webhook.url.clone()));
        }
        let mut account_ids = HashSet::new();
        let mut client_ids = HashSet::new();
        let mut user_ids = HashSet::new();
        let mut emails = HashSet::new();
        for account in &self.accounts {
            non_empty("accounts.account_id", &account.account_id)?;
            non_empty("accounts.client_id", &account.client_id)?;
            unique(&mut account_ids, "account_id", &account.account_id)?;
            unique(&mut client_ids, "client_id", &account.client_id)?;
            for scope in &account.scopes {
                non_empty("accounts.scopes[]", scope.trim())?;
            }
            for user in &account.users {
                non_empty("accounts.users.id", &user.id)?;
                non_empty("accounts.users.email", &user.email)?;
                unique(&mut user_ids, "user id", &user.id)?;
                unique(&mut emails, "user email", &user.email.to_ascii_lowercase())?;
                if ![1, 2, 4, 99].contains(&user.user_type) {
                    return Err(EmulatorConfigError::UserType {
                        user: user.id.clone(),
                        user_type: user.user_type,
                    });
                }
                if user.timezone.parse::<chrono_tz::Tz>().is_err() {
                    return Err(EmulatorConfigError::TimeZone {
                        user: user.id.clone(),
                        timezone: user.timezone.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

fn non_empty(field: &str, value: &str) -> Result<(), EmulatorConfigError> {
    if value.is_empty() {
        return Err(EmulatorConfigError::Empty {
            field: field.to_owned(),
        });
    }
    Ok(())
}

fn unique(
    seen: &mut HashSet<String>,
    what: &'static str,
    value: &str,
) -> Result<(), EmulatorConfigError> {
    if !seen.insert(value.to_owned()) {
        return Err(EmulatorConfigError::Duplicate {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
        [[accounts]]
        account_id = "acc1"
        client_id = "cid1"
        client_secret = "very-secret"
        plan = "business"
        scopes = ["meeting:read:meeting:admin"]
        [[accounts.users]]
        id = "u1"
        email = "a@x.test"
    "#;

    #[test]
    fn parses_with_defaults() {
        let config = EmulatorConfig::from_toml(ONE).expect("valid");
        assert_eq!(config.token_ttl_secs, 3600);
        assert!(config.enforce_rate_limits);
        assert_eq!(config.accounts[0].plan, Plan::Business);
        let user = &config.accounts[0].users[0];
        assert_eq!(
            (user.user_type, user.status, user.timezone.as_str()),
            (2, UserStatus::Active, "UTC")
        );
    }

    #[test]
    fn demo_config_is_valid() {
        let config = EmulatorConfig::from_toml(include_str!("../../config/emulator.toml"))
            .expect("config/emulator.toml is valid");
        let ids: Vec<&str> = config
            .accounts
            .iter()
            .map(|a| a.account_id.as_str())
            .collect();
        assert_eq!(ids, ["acme-sales", "acme-support"]);
    }

    #[test]
    fn debug_hides_secret() {
        let config = EmulatorConfig::from_toml(ONE).expect("valid");
        assert!(!format!("{config:?}").contains("very-secret"));
    }

    #[test]
    fn rejects_duplicate_email_across_accounts() {
        let text = format!(
            "{ONE}\n[[accounts]]\naccount_id = \"acc2\"\nclient_id = \"cid2\"\nclient_secret = \"s\"\nscopes = []\n[[accounts.users]]\nid = \"u2\"\nemail = \"A@x.test\"\n"
        );
        let err = EmulatorConfig::from_toml(&text).expect_err("duplicate email");
        assert!(matches!(
            err,
            EmulatorConfigError::Duplicate {
                what: "user email",
                ..
            }
        ));
    }

    #[test]
    fn rejects_unknown_fields_bad_type_and_zero_ttl() {
        assert!(EmulatorConfig::from_toml(&format!("colour = 1\n{ONE}")).is_err());
        assert!(matches!(
            EmulatorConfig::from_toml(&format!("token_ttl_secs = 0\n{ONE}")),
            Err(EmulatorConfigError::ZeroTokenTtl)
        ));
        assert!(matches!(
            EmulatorConfig::from_toml(&format!("{ONE}type = 3\n")),
            Err(EmulatorConfigError::UserType { .. })
        ));
    }
}

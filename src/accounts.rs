//! The fixed table of Zoom accounts from the config: ids, plan tier and S2S credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use secrecy::SecretString;
use serde::Deserialize;

/// The gateway's own name for a Zoom account (`accounts[].name` in the config).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountName(Arc<str>);

impl AccountName {
    /// Accepts 1 to 63 characters of `[a-z0-9-]`, starting with a letter.
    pub fn parse(name: &str) -> Result<Self, String> {
        let valid = (1..=63).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(Self(name.into()))
        } else {
            Err(format!(
                "`{name}` is not a valid account name (1-63 of a-z, 0-9, '-', starting with a letter)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by account name be read with a `&str` from the store or a request.
impl std::borrow::Borrow<str> for AccountName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for AccountName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Zoom plan tier of an account: Zoom sets its rate limits by it (see [`crate::quota`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    #[default]
    Pro,
    Business,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Business => "business",
        }
    }
}

/// One Zoom account and the credentials of its Server-to-Server OAuth app.
///
/// `Debug` never shows the secret: `SecretString` prints as redacted.
#[derive(Clone, Debug)]
pub struct Account {
    pub name: AccountName,
    /// Zoom's account id, sent as `account_id` in the token request.
    pub zoom_account_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub plan: Plan,
    pub budget: AccountBudget,
}

/// How much of Zoom's budget in an account the gateway may spend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccountBudget {
    /// Per-second limits of Light, Medium and Heavy where Zoom support raised them
    /// (`accounts[].rate_limits`); the plan's otherwise.
    pub per_second: [Option<u32>; 3],
    /// Share of the limits this gateway may use, leaving the rest to other apps on the account
    /// (`accounts[].budget_share`, above 0 and at most 1).
    pub share: f64,
}

impl Default for AccountBudget {
    fn default() -> Self {
        Self {
            per_second: [None; 3],
            share: 1.0,
        }
    }
}

impl AccountBudget {
    pub fn per_second(&self, category: crate::zoom::RateCategory) -> Option<u32> {
        use crate::zoom::RateCategory;
        let index = match category {
            RateCategory::Light => 0,
            RateCategory::Medium => 1,
            RateCategory::Heavy => 2,
        };
        self.per_second[index]
    }
}

/// The accounts in force, swapped whole when a config reload changes them.
pub type LiveAccounts = Arc<arc_swap::ArcSwap<Accounts>>;

/// All configured accounts, by name: one snapshot of the config.
#[derive(Clone, Debug, Default)]
pub struct Accounts {
    by_name: BTreeMap<AccountName, Arc<Account>>,
}

impl Accounts {
    pub fn new(accounts: impl IntoIterator<Item = Account>) -> Self {
        let by_name = accounts
            .into_iter()
            .map(|a| (a.name.clone(), Arc::new(a)))
            .collect();
        Self { by_name }
    }

    pub fn get(&self, name: &AccountName) -> Option<&Arc<Account>> {
        self.by_name.get(name)
    }

    /// Looks an account up by its name as a string, e.g. from the store.
    pub fn find(&self, name: &str) -> Option<&Arc<Account>> {
        self.by_name
            .iter()
            .find_map(|(n, a)| (n.as_str() == name).then_some(a))
    }

    /// Accounts in name order, so probes run in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Account>> {
        self.by_name.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &AccountName> {
        self.by_name.keys()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_are_checked() {
        assert!(AccountName::parse("sales-eu").is_ok());
        for bad in ["", "Sales", "1sales", "sales_eu", &"a".repeat(64)] {
            assert!(AccountName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_redacts_the_secret() {
        let account = Account {
            name: AccountName::parse("sales").unwrap(),
            zoom_account_id: "acc".into(),
            client_id: "cid".into(),
            client_secret: SecretString::from("hunter2"),
            plan: Plan::Pro,
            budget: Default::default(),
        };
        assert!(!format!("{account:?}").contains("hunter2"));
    }
}

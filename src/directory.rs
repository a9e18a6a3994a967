//! Zoom's user directory as the gateway knows it: which account each user is in, read page by
//! page from every account by the directory sync, and what in it contradicts the config rules
//! and the route overrides.
//!
//! Routing asks it after the overrides and the rules and before probing. A user listed by two
//! accounts is a conflict: the directory places it nowhere until the conflict is resolved.

use std::collections::{BTreeMap, BTreeSet};

use dashmap::DashMap;

use crate::accounts::AccountName;
use crate::routing::{RouteOverrides, RoutingRules, UserLocation};
use crate::store::DirectoryEntry;

/// Users by lowercased email, each with the accounts (and user ids) that list it.
#[derive(Debug, Default)]
pub struct Directory {
    by_email: DashMap<String, BTreeMap<AccountName, String>>,
}

impl Directory {
    /// The directory as the store holds it from the last syncs.
    pub fn from_entries(entries: impl IntoIterator<Item = DirectoryEntry>) -> Self {
        let directory = Self::default();
        for entry in entries {
            directory
                .by_email
                .entry(entry.email)
                .or_default()
                .insert(entry.account, entry.user_id);
        }
        directory
    }

    /// The one account that lists `email`; `None` when none does, or several (a conflict).
    pub fn locate(&self, email: &str) -> Option<UserLocation> {
        let accounts = self.by_email.get(email)?;
        let mut listed = accounts.iter();
        let (account, user_id) = listed.next()?;
        if listed.next().is_some() {
            return None;
        }
        Some(UserLocation {
            account: account.clone(),
            user_id: user_id.clone(),
            email: email.to_owned(),
        })
    }

    /// Holds exactly `entries` from now on (the store's directory, read again).
    pub fn replace_all(&self, entries: impl IntoIterator<Item = DirectoryEntry>) {
        let fresh = Self::from_entries(entries);
        self.by_email
            .retain(|email, _| fresh.by_email.contains_key(email));
        for (email, accounts) in fresh.by_email {
            self.by_email.insert(email, accounts);
        }
    }

    /// Replaces what `account` lists with `users`, after a sync read them.
    pub fn replace_account(&self, account: &AccountName, users: &[DirectoryEntry]) {
        self.by_email.retain(|_, accounts| {
            accounts.remove(account);
            !accounts.is_empty()
        });
        for user in users {
            self.by_email
                .entry(user.email.clone())
                .or_default()
                .insert(account.clone(), user.user_id.clone());
        }
    }

    /// The accounts that list at least one user.
    pub fn accounts(&self) -> BTreeSet<AccountName> {
        self.by_email
            .iter()
            .flat_map(|entry| entry.value().keys().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Forgets that `account` lists `email`: Zoom said the user is not there (it moved).
    pub fn forget(&self, email: &str, account: &AccountName) {
        if let Some(mut accounts) = self.by_email.get_mut(email) {
            accounts.remove(account);
        }
        self.by_email
            .remove_if(email, |_, accounts| accounts.is_empty());
    }

    /// Everything in the directory that contradicts itself, the rules or the overrides.
    pub fn conflicts(&self, rules: &RoutingRules, overrides: &RouteOverrides) -> Vec<Conflict> {
        let mut conflicts = Vec::new();
        let mut listed: Vec<(String, Vec<AccountName>)> = self
            .by_email
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().keys().cloned().collect()))
            .collect();
        listed.sort();
        for (email, found) in listed {
            if found.len() > 1 {
                conflicts.push(Conflict::InSeveralAccounts {
                    email: email.clone(),
                    accounts: found.clone(),
                });
            }
            if let Some(rule) = rules.rule_for(&email)
                && !found.contains(&rule.account)
            {
                conflicts.push(Conflict::RuleElsewhere {
                    email,
                    place: rule.place.to_string(),
                    rule_account: rule.account.clone(),
                    found,
                });
            }
        }
        for (email, account) in overrides.all() {
            let found: Vec<AccountName> = self
                .by_email
                .get(&email)
                .map(|listed| listed.keys().cloned().collect())
                .unwrap_or_default();
            if found.is_empty() {
                conflicts.push(Conflict::RouteToMissingUser { email, account });
            } else if !found.contains(&account) {
                conflicts.push(Conflict::RouteElsewhere {
                    email,
                    route_account: account,
                    found,
                });
            }
        }
        conflicts
    }
}

/// Something the directory sync found that needs the platform team.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// Two or more accounts list the user: routing cannot tell from the directory.
    InSeveralAccounts {
        email: String,
        accounts: Vec<AccountName>,
    },
    /// A config rule sends the user to an account that does not list it.
    RuleElsewhere {
        email: String,
        place: String,
        rule_account: AccountName,
        found: Vec<AccountName>,
    },
    /// A route override sends the user to an account that does not list it.
    RouteElsewhere {
        email: String,
        route_account: AccountName,
        found: Vec<AccountName>,
    },
    /// A route override names a user no account lists (any more).
    RouteToMissingUser { email: String, account: AccountName },
}

impl Conflict {
    /// A stable name of the kind of conflict, for the API and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Conflict::InSeveralAccounts { .. } => "USER_IN_SEVERAL_ACCOUNTS",
            Conflict::RuleElsewhere { .. } => "RULE_CONTRADICTS_ZOOM",
            Conflict::RouteElsewhere { .. } => "ROUTE_CONTRADICTS_ZOOM",
            Conflict::RouteToMissingUser { .. } => "ROUTE_TO_MISSING_USER",
        }
    }

    pub fn email(&self) -> &str {
        match self {
            Conflict::InSeveralAccounts { email, .. }
            | Conflict::RuleElsewhere { email, .. }
            | Conflict::RouteElsewhere { email, .. }
            | Conflict::RouteToMissingUser { email, .. } => email,
        }
    }
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |accounts: &[AccountName]| {
            accounts
                .iter()
                .map(AccountName::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Conflict::InSeveralAccounts { email, accounts } => {
                write!(f, "{email} is in several accounts: {}", names(accounts))
            }
            Conflict::RuleElsewhere {
                email,
                place,
                rule_account,
                found,
            } => write!(
                f,
                "{place} sends {email} to {rule_account}, but Zoom lists it in {}",
                names(found)
            ),
            Conflict::RouteElsewhere {
                email,
                route_account,
                found,
            } => write!(
                f,
                "the route of {email} sends it to {route_account}, but Zoom lists it in {}",
                names(found)
            ),
            Conflict::RouteToMissingUser { email, account } => write!(
                f,
                "the route of {email} sends it to {account}, but no account lists it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn name(text: &str) -> AccountName {
        AccountName::parse(text).unwrap()
    }

    fn entry(email: &str, account: &str) -> DirectoryEntry {
        DirectoryEntry {
            email: email.into(),
            account: name(account),
            user_id: format!("id-{email}"),
            synced_at: Utc::now(),
        }
    }

    #[test]
    fn a_user_in_one_account_is_placed_and_one_in_two_is_not() {
        let directory = Directory::from_entries([
            entry("ann@x.test", "sales"),
            entry("bob@x.test", "sales"),
            entry("bob@x.test", "support"),
        ]);
        assert_eq!(
            directory.locate("ann@x.test").unwrap().account,
            name("sales")
        );
        assert!(directory.locate("bob@x.test").is_none());
        assert!(directory.locate("cat@x.test").is_none());
        directory.forget("bob@x.test", &name("support"));
        assert_eq!(
            directory.locate("bob@x.test").unwrap().account,
            name("sales")
        );
        directory.replace_account(&name("sales"), &[entry("cat@x.test", "sales")]);
        assert!(directory.locate("ann@x.test").is_none());
        assert_eq!(
            directory.locate("cat@x.test").unwrap().account,
            name("sales")
        );
    }

    #[test]
    fn conflicts_name_what_contradicts_zoom() {
        let directory = Directory::from_entries([
            entry("ann@sales.test", "support"),
            entry("bob@x.test", "sales"),
            entry("bob@x.test", "support"),
            entry("cat@x.test", "sales"),
        ]);
        let mut rules = RoutingRules::default();
        rules
            .add_domain("sales.test", &name("sales"), "accounts[0].domains[0]")
            .unwrap();
        let overrides = RouteOverrides::default();
        overrides.set("cat@x.test".into(), name("support"));
        overrides.set("dan@x.test".into(), name("sales"));
        let all = directory.conflicts(&rules, &overrides);
        assert_eq!(all.len(), 4, "{all:?}");
        assert!(all.contains(&Conflict::RuleElsewhere {
            email: "ann@sales.test".into(),
            place: "accounts[0].domains[0]".into(),
            rule_account: name("sales"),
            found: vec![name("support")],
        }));
        assert!(all.contains(&Conflict::InSeveralAccounts {
            email: "bob@x.test".into(),
            accounts: vec![name("sales"), name("support")],
        }));
        assert!(all.contains(&Conflict::RouteElsewhere {
            email: "cat@x.test".into(),
            route_account: name("support"),
            found: vec![name("sales")],
        }));
        assert!(all.contains(&Conflict::RouteToMissingUser {
            email: "dan@x.test".into(),
            account: name("sales"),
        }));
    }
}

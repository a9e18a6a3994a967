//! Which Zoom account owns a user: route overrides first, then config rules, then what probes
//! found, cached with TTLs.
//!
//! Everything here is pure and synchronous; the probing itself (calls to Zoom) happens in
//! [`crate::meetings`], which reports the outcome back into the [`ProbeCache`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::accounts::AccountName;

/// Where the account of a user or meeting came from, for logs and `explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteSource {
    /// A route override set through the Admin API.
    Override,
    /// A config rule, by its place in the file, e.g. `accounts[0].domains[1]`.
    ConfigRule(Arc<str>),
    /// The directory sync found the user in that account.
    Directory,
    /// A probe made for an earlier request, remembered in the [`ProbeCache`].
    ProbeCache,
    /// A probe made for this request.
    Probe,
    /// The meeting ledger.
    Ledger,
}

impl fmt::Display for RouteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteSource::Override => f.write_str("route override"),
            RouteSource::ConfigRule(place) => write!(f, "config rule {place}"),
            RouteSource::Directory => f.write_str("directory"),
            RouteSource::ProbeCache => f.write_str("probe cache"),
            RouteSource::Probe => f.write_str("probe"),
            RouteSource::Ledger => f.write_str("ledger"),
        }
    }
}

/// The route overrides of the store, held in memory: every request by email reads them. The
/// store stays the truth; this copy is loaded at start and written through by the Admin API.
#[derive(Debug, Default)]
pub struct RouteOverrides {
    by_email: DashMap<String, AccountName>,
}

impl RouteOverrides {
    /// Returns the account a route override sends `email` (lowercase) to.
    pub fn get(&self, email: &str) -> Option<AccountName> {
        self.by_email.get(email).map(|entry| entry.clone())
    }

    pub fn set(&self, email: String, account: AccountName) {
        self.by_email.insert(email, account);
    }

    pub fn remove(&self, email: &str) {
        self.by_email.remove(email);
    }

    /// Holds exactly `routes` from now on (read again from the store).
    pub fn replace(&self, routes: Vec<(String, AccountName)>) {
        let keep: std::collections::HashSet<&str> =
            routes.iter().map(|(email, _)| email.as_str()).collect();
        self.by_email
            .retain(|email, _| keep.contains(email.as_str()));
        for (email, account) in routes {
            self.by_email.insert(email, account);
        }
    }

    /// Every override, in email order.
    pub fn all(&self) -> Vec<(String, AccountName)> {
        let mut all: Vec<(String, AccountName)> = self
            .by_email
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        all.sort();
        all
    }
}

/// Everything that places a user in an account without asking Zoom, in the order it is asked.
pub struct UserRouting {
    pub overrides: Arc<RouteOverrides>,
    /// Swapped whole when the config is reloaded.
    pub rules: LiveRules,
    pub directory: Arc<crate::directory::Directory>,
    pub probe_cache: ProbeCache,
}

/// The routing rules in force.
pub type LiveRules = Arc<arc_swap::ArcSwap<RoutingRules>>;

/// A config rule: the account it routes to and where it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub account: AccountName,
    pub place: Arc<str>,
}

/// Routing rules from the config: explicit emails, then email domains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingRules {
    users: HashMap<String, Rule>,
    domains: HashMap<String, Rule>,
}

impl RoutingRules {
    /// Adds "`email` lives in `account`", written at `place`; an email claimed by two accounts is
    /// an error.
    pub fn add_user(
        &mut self,
        email: &str,
        account: &AccountName,
        place: &str,
    ) -> Result<(), String> {
        let email =
            normalize_email(email).ok_or_else(|| format!("`{email}` is not an email address"))?;
        claim(&mut self.users, email, account, place)
    }

    /// Adds "users of `domain` live in `account`", written at `place`; `@` in front is optional.
    pub fn add_domain(
        &mut self,
        domain: &str,
        account: &AccountName,
        place: &str,
    ) -> Result<(), String> {
        let domain = domain.trim_start_matches('@').to_ascii_lowercase();
        if !is_domain(&domain) {
            return Err(format!("`{domain}` is not an email domain"));
        }
        claim(&mut self.domains, domain, account, place)
    }

    /// Returns the rule that assigns `email` (lowercase) an account, explicit emails first.
    pub fn rule_for(&self, email: &str) -> Option<&Rule> {
        self.users.get(email).or_else(|| {
            let (_, domain) = email.rsplit_once('@')?;
            self.domains.get(domain)
        })
    }
}

/// Routes `key` (an email or a domain) to `account`, unless another account has it; a repeat for
/// the same account keeps the first place it is written.
fn claim(
    rules: &mut HashMap<String, Rule>,
    key: String,
    account: &AccountName,
    place: &str,
) -> Result<(), String> {
    match rules.entry(key) {
        Entry::Occupied(entry) if &entry.get().account != account => Err(format!(
            "`{}` is already routed to account `{}`",
            entry.key(),
            entry.get().account
        )),
        Entry::Occupied(_) => Ok(()),
        Entry::Vacant(entry) => {
            entry.insert(Rule {
                account: account.clone(),
                place: place.into(),
            });
            Ok(())
        }
    }
}

/// Lowercases and checks an email address: one `@`, a non-empty local part, a domain.
///
/// Control and format characters (see [`is_control_or_format`]) are refused anywhere in the
/// address, so that no address that reaches a log, the audit log or a terminal can rewrite it.
pub fn normalize_email(email: &str) -> Option<String> {
    if email.chars().any(is_control_or_format) {
        return None;
    }
    let email = email.trim();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && local.len() <= 64
        && email.len() <= 254
        && !local
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '?' || c == '#')
        && is_domain(domain);
    valid.then(|| email.to_ascii_lowercase())
}

/// Tells whether `c` is a control character (Unicode category Cc: C0, DEL, C1) or a format
/// character (Cf: bidi overrides and isolates such as U+202E, zero-width spaces and joiners,
/// the BOM, tag characters, ...).
///
/// Neither has any business in an identifier: they are invisible, and in a terminal they
/// reorder or rewrite what is shown (ANSI/OSC escapes start with ESC, a Cc).
pub fn is_control_or_format(c: char) -> bool {
    c.is_control() || is_format(c)
}

/// Unicode general category Cf (as of Unicode 16), which std does not expose.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

fn is_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A Zoom user and the account it lives in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserLocation {
    pub account: AccountName,
    /// Zoom's user id.
    pub user_id: String,
    /// Lowercased email.
    pub email: String,
}

/// Results of user probes: where users were found, and where they were not, each with a TTL.
///
/// Keys are lowercased emails and Zoom user ids. Absence is remembered per account, because a
/// probe on behalf of one caller only looks into the accounts that caller may use.
#[derive(Debug)]
pub struct ProbeCache {
    found: DashMap<String, (UserLocation, Instant)>,
    absent: DashMap<(String, AccountName), Instant>,
    found_ttl: Duration,
    absent_ttl: Duration,
    /// Writes so far; every [`SWEEP_EVERY`] writes the expired entries are dropped, so keys
    /// nobody asks for again (typos, made-up ids) do not pile up.
    writes: AtomicUsize,
}

/// Writes between two sweeps of expired entries; a sweep costs one pass over both maps.
const SWEEP_EVERY: usize = 4096;

impl ProbeCache {
    pub fn new(found_ttl: Duration, absent_ttl: Duration) -> Self {
        Self {
            found: DashMap::new(),
            absent: DashMap::new(),
            found_ttl,
            absent_ttl,
            writes: AtomicUsize::new(0),
        }
    }

    /// Returns where `key` (email or user id) was last found, unless that has expired.
    pub fn lookup(&self, key: &str) -> Option<UserLocation> {
        let entry = self.found.get(key)?;
        let (location, expires) = entry.value();
        (Instant::now() < *expires).then(|| location.clone())
    }

    /// Tells whether a recent probe found `key` missing from `account`.
    pub fn known_absent(&self, key: &str, account: &AccountName) -> bool {
        self.absent
            .get(&(key.to_owned(), account.clone()))
            .is_some_and(|expires| Instant::now() < *expires)
    }

    /// Remembers a user found by a probe, under both its email and its id.
    pub fn record_found(&self, location: UserLocation) {
        let expires = expiry(Instant::now(), self.found_ttl);
        self.found
            .insert(location.user_id.clone(), (location.clone(), expires));
        self.found
            .insert(location.email.clone(), (location, expires));
        self.count_write();
    }

    /// Remembers that `account` answered "no such user" for `key`.
    pub fn record_absent(&self, key: &str, account: &AccountName) {
        self.absent.insert(
            (key.to_owned(), account.clone()),
            expiry(Instant::now(), self.absent_ttl),
        );
        self.count_write();
    }

    fn count_write(&self) {
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let now = Instant::now();
            self.found.retain(|_, (_, expires)| now < *expires);
            self.absent.retain(|_, expires| now < *expires);
        }
    }

    /// Drops what is known about `key`, e.g. after Zoom said the user does not exist.
    pub fn forget(&self, key: &str) {
        if let Some((_, (location, _))) = self.found.remove(key) {
            self.found.remove(&location.user_id);
            self.found.remove(&location.email);
        }
    }
}

/// Returns `now + ttl`; when that is past what an [`Instant`] can hold, 30 years from now (what
/// tokio uses for "never"), which no cache entry outlives.
fn expiry(now: Instant, ttl: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);
    now.checked_add(ttl)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> AccountName {
        AccountName::parse(n).unwrap()
    }

    #[test]
    fn explicit_users_win_over_domains() {
        let mut rules = RoutingRules::default();
        rules
            .add_domain("@sales.example", &name("sales"), "accounts[0].domains[0]")
            .unwrap();
        rules
            .add_user("Boss@Sales.Example", &name("exec"), "accounts[1].users[0]")
            .unwrap();
        let account = |email| rules.rule_for(email).map(|rule| &rule.account);
        assert_eq!(account("boss@sales.example"), Some(&name("exec")));
        assert_eq!(account("ann@sales.example"), Some(&name("sales")));
        assert_eq!(account("ann@sub.sales.example"), None);
        assert_eq!(account("ann@other.example"), None);
        let place = |email| rules.rule_for(email).map(|rule| rule.place.to_string());
        assert_eq!(place("boss@sales.example").unwrap(), "accounts[1].users[0]");
        assert_eq!(
            place("ann@sales.example").unwrap(),
            "accounts[0].domains[0]"
        );
    }

    #[test]
    fn one_email_or_domain_belongs_to_one_account() {
        let mut rules = RoutingRules::default();
        rules.add_user("a@x.example", &name("one"), "here").unwrap();
        assert!(rules.add_user("A@X.example", &name("two"), "here").is_err());
        rules.add_domain("x.example", &name("one"), "here").unwrap();
        assert!(
            rules
                .add_domain("@x.example", &name("two"), "here")
                .is_err()
        );
        assert!(
            rules
                .add_user("not-an-email", &name("one"), "here")
                .is_err()
        );
        assert!(
            rules
                .add_domain("bad domain", &name("one"), "here")
                .is_err()
        );
    }

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email(" Ann@X.Example ").as_deref(),
            Some("ann@x.example")
        );
        for bad in [
            "",
            "ann",
            "@x.example",
            "ann@",
            "ann@x..example",
            "a/b@x.example",
            "a@b@c",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn emails_with_control_or_format_characters_are_refused() {
        for bad in [
            "a\u{1b}[31m@x.example",
            "a\u{1b}]0;x\u{7}@x.example",
            "a\0b@x.example",
            "a\u{7f}@x.example",
            "a\u{85}@x.example",
            "evil\u{202e}moc@x.example",
            "a\u{200b}b@x.example",
            "a\u{2066}b@x.example",
            "a\u{feff}@x.example",
            "a\u{e0041}@x.example",
            "ann@x.example\n",
            "\tann@x.example",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
        assert!(is_control_or_format('\u{202e}'));
        assert!(is_control_or_format('\u{ad}'));
        assert!(!is_control_or_format('é'));
        assert!(!is_control_or_format(' '));
        assert_eq!(
            normalize_email("José@X.example").as_deref(),
            Some("josé@x.example")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn directory_entries_expire() {
        let dir = ProbeCache::new(Duration::from_secs(10), Duration::from_secs(5));
        let loc = UserLocation {
            account: name("sales"),
            user_id: "u1".into(),
            email: "ann@x.example".into(),
        };
        dir.record_found(loc.clone());
        dir.record_absent("bob@x.example", &name("sales"));
        assert_eq!(dir.lookup("u1"), Some(loc.clone()));
        assert_eq!(dir.lookup("ann@x.example"), Some(loc));
        assert!(dir.known_absent("bob@x.example", &name("sales")));
        assert!(!dir.known_absent("bob@x.example", &name("support")));

        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!dir.known_absent("bob@x.example", &name("sales")));
        assert!(dir.lookup("u1").is_some());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(dir.lookup("u1").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_swept_as_new_ones_arrive() {
        let dir = ProbeCache::new(Duration::from_secs(10), Duration::from_secs(5));
        for n in 0..SWEEP_EVERY - 1 {
            dir.record_absent(&format!("user{n}@x.example"), &name("sales"));
        }
        assert_eq!(dir.absent.len(), SWEEP_EVERY - 1);
        tokio::time::advance(Duration::from_secs(6)).await;
        dir.record_absent("late@x.example", &name("sales"));
        assert_eq!(dir.absent.len(), 1, "only the unexpired entry is left");
        assert!(dir.known_absent("late@x.example", &name("sales")));
    }

    #[tokio::test]
    async fn ttls_past_what_an_instant_holds_saturate() {
        let dir = ProbeCache::new(Duration::MAX, Duration::MAX);
        let loc = UserLocation {
            account: name("sales"),
            user_id: "u1".into(),
            email: "ann@x.example".into(),
        };
        dir.record_found(loc.clone());
        dir.record_absent("bob@x.example", &name("sales"));
        assert_eq!(dir.lookup("u1"), Some(loc));
        assert!(dir.known_absent("bob@x.example", &name("sales")));
    }

    #[test]
    fn forget_drops_both_keys() {
        let dir = ProbeCache::new(Duration::from_secs(10), Duration::from_secs(5));
        dir.record_found(UserLocation {
            account: name("sales"),
            user_id: "u1".into(),
            email: "ann@x.example".into(),
        });
        dir.forget("ann@x.example");
        assert!(dir.lookup("u1").is_none());
    }
}

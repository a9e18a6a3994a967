//! Live config. The file is read again on SIGHUP and whenever its content changes, validated
//! as at start, and its accounts, callers, grants, user groups and routing rules are swapped in
//! together. An account whose credentials did not change keeps its token; a new one fetches its
//! own on first use; a removed one is no longer served.
//!
//! - Changes are seen by reading the path every [`POLL_INTERVAL`] and comparing a hash of the
//!   content: that follows in-place edits as well as Kubernetes' symlink swaps of a mounted
//!   ConfigMap, without depending on file-system events.
//! - Requests in flight keep the snapshot they started with (their caller carries its grants).
//! - A file that does not validate is refused with a log line naming the field, and the old
//!   config stays in force.
//! - Every reload, applied or refused, is audited (`config.reload`) with what changed.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::accounts::{Accounts, LiveAccounts, Plan};
use crate::config::{ConfigError, RawConfig, read_config_text};
use crate::policy::{LivePolicy, RawCaller, RawUserGroup};
use crate::routing::LiveRules;
use crate::store::{AuditRecord, Outcome, Recorder};
use crate::telemetry::metrics::Metrics;
use crate::token::TokenCache;

/// How often the file is read to see whether it changed.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The caller name of reload audit records.
const AUDIT_CALLER: &str = "config";

/// What identifies an account's credentials and budget, compared between snapshots; the secret
/// only as a hash.
type AccountKey = (String, String, String, Plan, [u8; 32]);

/// The parts of the running gateway a reload swaps.
pub struct Live {
    pub accounts: LiveAccounts,
    pub tokens: TokenCache,
    pub policy: LivePolicy,
    pub rules: LiveRules,
}

/// Watches one config file and swaps what it may into the running gateway.
pub struct Reloader {
    path: PathBuf,
    env: HashMap<String, String>,
    policy: LivePolicy,
    rules: LiveRules,
    live_accounts: LiveAccounts,
    tokens: TokenCache,
    recorder: Arc<Recorder>,
    metrics: Arc<Metrics>,
    callers: Vec<RawCaller>,
    groups: Vec<RawUserGroup>,
    /// Registered when the reloader is made, so that a SIGHUP from then on (the default action
    /// would end the process) is taken as a reload.
    hangups: Option<tokio::signal::unix::Signal>,
    /// Hash of the content last read, applied or not: a refused file is not retried until it
    /// changes again (or SIGHUP asks).
    seen: [u8; 32],
}

impl Reloader {
    /// Starts from the file as it is now, which is what the gateway was built from; secrets
    /// come from `env` at every reload. Must be called within a Tokio runtime.
    pub fn new(
        path: PathBuf,
        env: HashMap<String, String>,
        live: Live,
        recorder: Arc<Recorder>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ConfigError> {
        let text = read_config_text(&path)?;
        let raw = RawConfig::parse(&text)?;
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .inspect_err(|error| {
                tracing::warn!(%error, "no SIGHUP handler; the config file is still watched");
            })
            .ok();
        Ok(Self {
            hangups,
            path,
            env,
            policy: live.policy,
            rules: live.rules,
            live_accounts: live.accounts,
            tokens: live.tokens,
            recorder,
            metrics,
            callers: raw.callers,
            groups: raw.user_groups,
            seen: Sha256::digest(text.as_bytes()).into(),
        })
    }

    /// Reloads on SIGHUP and when the file changes, until `stopping`.
    pub async fn run(mut self, stopping: CancellationToken) {
        let mut hangups = self.hangups.take();
        let mut ticks = tokio::time::interval(POLL_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = ticks.tick() => false,
                Some(()) = async { hangups.as_mut()?.recv().await } => true,
                () = stopping.cancelled() => return,
            };
            self.check(forced).await;
        }
    }

    /// Reads the file and reloads it if it changed, or if `forced`.
    async fn check(&mut self, forced: bool) {
        let text = match read_config_text(&self.path) {
            Ok(text) => text,
            Err(error) => {
                // A ConfigMap mid-swap can be briefly absent; the next tick reads it again.
                tracing::warn!(%error, "config file not readable; the old config stays");
                return;
            }
        };
        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if hash == self.seen && !forced {
            return;
        }
        self.seen = hash;
        let (outcome, detail) = match self.reload(&text) {
            Ok(changes) => {
                tracing::info!(changes = %changes, "config reloaded");
                self.metrics.reload("applied");
                (Outcome::Allowed, changes)
            }
            Err(why) => {
                tracing::error!(error = %why, "config reload refused; the old config stays in force");
                self.metrics.reload("refused");
                (Outcome::Failed, why)
            }
        };
        self.recorder
            .append(AuditRecord {
                id: 0,
                at: Utc::now(),
                caller: AUDIT_CALLER.to_owned(),
                operation: "config.reload".to_owned(),
                account: None,
                user: None,
                meeting_id: None,
                outcome,
                detail: Some(detail),
            })
            .await;
    }

    /// Swaps in the snapshot `text` describes; says what changed, or why the old one stays.
    fn reload(&mut self, text: &str) -> Result<String, String> {
        let raw = RawConfig::parse(text).map_err(|error| error.to_string())?;
        let (callers, groups) = (raw.callers.clone(), raw.user_groups.clone());
        let base = self.path.parent().unwrap_or(std::path::Path::new("."));
        let config = raw
            .validate(&self.env, base)
            .map_err(|error| error.to_string())?;
        let before = account_keys(&self.live_accounts.load());
        let mut changes = account_changes(&before, &account_keys(&config.accounts));
        changes.extend(caller_changes(&self.callers, &callers));
        if groups != self.groups {
            changes.push("user groups changed".to_owned());
        }
        if config.routing.rules != **self.rules.load() {
            changes.push("routing rules changed".to_owned());
        }
        // Accounts first: the new grants and rules may name a new account.
        self.tokens.set_accounts(&config.accounts);
        self.live_accounts.store(Arc::new(config.accounts));
        self.policy.store(Arc::new(config.policy));
        self.rules.store(Arc::new(config.routing.rules));
        self.callers = callers;
        self.groups = groups;
        Ok(if changes.is_empty() {
            "nothing changed".to_owned()
        } else {
            changes.join("; ")
        })
    }
}

fn account_keys(accounts: &Accounts) -> Vec<AccountKey> {
    accounts
        .iter()
        .map(|a| {
            let secret = Sha256::digest(a.client_secret.expose_secret().as_bytes()).into();
            (
                a.name.to_string(),
                a.zoom_account_id.clone(),
                a.client_id.clone(),
                a.plan,
                secret,
            )
        })
        .collect()
}

/// "accounts added: a; removed: b; changed: c", by name; a changed account has another Zoom
/// account, app, secret or plan.
fn account_changes(old: &[AccountKey], new: &[AccountKey]) -> Vec<String> {
    let named = |keys: &[AccountKey]| -> Vec<(String, AccountKey)> {
        keys.iter()
            .map(|key| (key.0.clone(), key.clone()))
            .collect()
    };
    changes("accounts", &named(old), &named(new))
}

/// "callers added: a; removed: b; changed: c", by name; a changed caller has other keys,
/// identities, grants or admin role.
fn caller_changes(old: &[RawCaller], new: &[RawCaller]) -> Vec<String> {
    let named = |callers: &[RawCaller]| -> Vec<(String, RawCaller)> {
        callers
            .iter()
            .map(|c| (c.name.clone(), c.clone()))
            .collect()
    };
    changes("callers", &named(old), &named(new))
}

/// What was added, removed and changed between two lists of named things.
fn changes<T: PartialEq>(what: &str, old: &[(String, T)], new: &[(String, T)]) -> Vec<String> {
    let names = |list: &[(String, T)]| -> BTreeSet<String> {
        list.iter().map(|(name, _)| name.clone()).collect()
    };
    let (before, after) = (names(old), names(new));
    fn value<'a, T>(list: &'a [(String, T)], name: &str) -> Option<&'a T> {
        list.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
    let changed: Vec<&String> = before
        .intersection(&after)
        .filter(|name| value(old, name) != value(new, name))
        .collect();
    let list = |label: &str, set: Vec<&String>| {
        (!set.is_empty()).then(|| {
            let names: Vec<&str> = set.iter().map(|s| s.as_str()).collect();
            format!("{what} {label}: {}", names.join(", "))
        })
    };
    [
        list("added", after.difference(&before).collect()),
        list("removed", before.difference(&after).collect()),
        list("changed", changed),
    ]
    .into_iter()
    .flatten()
    .collect()
}

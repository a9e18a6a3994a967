//! How the requests routed to each account ended since start, for the Admin API's accounts view.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::accounts::{AccountName, Accounts};
use crate::store::Outcome;

/// Requests of one account by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub allowed: u64,
    pub denied: u64,
    pub failed: u64,
    pub unknown: u64,
}

/// Counters per account since start; an account added by a reload starts at zero.
pub(super) struct OutcomeCounts {
    by_account: DashMap<AccountName, [AtomicU64; 4]>,
}

impl OutcomeCounts {
    pub(super) fn new(accounts: &Accounts) -> Self {
        let by_account = accounts
            .names()
            .map(|name| (name.clone(), Default::default()))
            .collect();
        Self { by_account }
    }

    /// Counts one request that ended with `outcome` in `account` (an account name).
    pub(super) fn count(&self, account: &str, outcome: Outcome) {
        if let Some(counters) = self.by_account.get(account) {
            counters[slot(outcome)].fetch_add(1, Ordering::Relaxed);
        } else if let Ok(name) = AccountName::parse(account) {
            self.by_account.entry(name).or_default()[slot(outcome)].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn get(&self, account: &AccountName) -> Option<RequestCounts> {
        let counters = self.by_account.get(account)?;
        let read = |outcome| counters[slot(outcome)].load(Ordering::Relaxed);
        Some(RequestCounts {
            allowed: read(Outcome::Allowed),
            denied: read(Outcome::Denied),
            failed: read(Outcome::Failed),
            unknown: read(Outcome::Unknown),
        })
    }
}

fn slot(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Allowed => 0,
        Outcome::Denied => 1,
        Outcome::Failed => 2,
        Outcome::Unknown => 3,
    }
}

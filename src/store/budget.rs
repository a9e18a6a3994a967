//! The Zoom budget that every gateway on a shared store spends together: one pace per account
//! and rate-limit category, kept by the database, so that replicas add up to Zoom's limit and
//! never to a multiple of it.
//!
//! A gateway reserves one place at a time per budget for the call first in its own fair queue;
//! the database hands places out in the order the gateways ask, never two closer than the
//! interval. A gateway that dies holds at most the one place it reserved, so its share goes to
//! the others at once.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::accounts::AccountName;

/// One call asking for a place.
#[derive(Clone, Debug)]
pub struct SlotAsk {
    pub account: AccountName,
    /// The rate-limit category (`light`, `medium`, `heavy`).
    pub category: &'static str,
    /// Time between two calls of all the gateways together.
    pub interval: Duration,
    /// A place further away than this is not taken.
    pub within: Duration,
    /// Calls allowed per day of Zoom's, if the category has a daily cap.
    pub daily_cap: Option<u64>,
    /// Zoom's current day, numbered from the epoch.
    pub day: i64,
}

/// The database's answer to a [`SlotAsk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The place is reserved: the call may go after `wait`. `spent_today` counts it.
    Reserved { wait: Duration, spent_today: u64 },
    /// The first free place is `wait` away, more than the ask allowed; nothing was spent.
    Later { wait: Duration },
    /// The day's cap is spent.
    DaySpent,
}

/// A budget shared through the store; see the module documentation.
#[async_trait]
pub trait SharedBudget: Send + Sync + 'static {
    async fn reserve(&self, ask: &SlotAsk) -> Result<Slot, StoreError>;

    /// Zoom answered 429: no gateway sends a call of `category` into `account` for `wait`.
    async fn pause(
        &self,
        account: &AccountName,
        category: &'static str,
        wait: Duration,
    ) -> Result<(), StoreError>;

    /// Zoom named a lower limit: every gateway paces by `interval` at least, from now on.
    async fn slow_to(
        &self,
        account: &AccountName,
        category: &'static str,
        interval: Duration,
    ) -> Result<(), StoreError>;

    /// A reserved place of `day` went unused: it no longer counts against the daily cap.
    async fn give_back(
        &self,
        account: &AccountName,
        category: &'static str,
        day: i64,
    ) -> Result<(), StoreError>;
}

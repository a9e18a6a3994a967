//! Zoom's budget, spent well: admission per account and rate-limit category against Zoom's
//! published limits, fair share between the callers of an account, Zoom's 429s folded back in,
//! the per-user daily cap on creates and updates, and a circuit breaker per account.
//!
//! Only the Zoom choke point (`meetings::upstream`) calls it: every Zoom call of the gateway,
//! requests, probes and the directory sync alike, spends the same budget.

mod breaker;
mod budget;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use dashmap::DashMap;
use tokio::time::Instant;

use crate::accounts::{Account, AccountName, Plan};
use crate::policy::Caller;
use crate::store::{Store, StoreError, UserDay};
use crate::zoom::{RateCategory, ZoomClock};

use breaker::Breaker;
pub use breaker::{CircuitState, Open, Pass};
use budget::{Ask, Budget, Shared};
pub use budget::{Refusal, ZoomDay};

/// Meeting creates and updates Zoom allows per host user and UTC day.
pub const USER_DAILY_CAP: u32 = 100;

/// Zoom's per-second limit of a category on a plan (DOC-RL, "Main REST API limits").
pub const fn zoom_per_second(plan: Plan, category: RateCategory) -> u32 {
    match (plan, category) {
        (Plan::Free, RateCategory::Light) => 4,
        (Plan::Free, RateCategory::Medium) => 2,
        (Plan::Free, RateCategory::Heavy) => 1,
        (Plan::Pro, RateCategory::Light) => 30,
        (Plan::Pro, RateCategory::Medium) => 20,
        (Plan::Pro, RateCategory::Heavy) => 10,
        (Plan::Business, RateCategory::Light) => 80,
        (Plan::Business, RateCategory::Medium) => 60,
        (Plan::Business, RateCategory::Heavy) => 40,
    }
}

/// Zoom's daily cap of a category on a plan, where it has one.
pub const fn zoom_daily(plan: Plan, category: RateCategory) -> Option<u64> {
    match (plan, category) {
        (Plan::Free, RateCategory::Light) => Some(6_000),
        (Plan::Free, RateCategory::Medium) => Some(2_000),
        (Plan::Free, RateCategory::Heavy) => Some(1_000),
        (Plan::Pro, RateCategory::Heavy) => Some(30_000),
        (Plan::Business, RateCategory::Heavy) => Some(60_000),
        _ => None,
    }
}

/// What the gateway may spend of one account's budget in one category.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Allowance {
    /// Zoom's limit (the plan's, or the account's `rate_limits`) times `budget_share`.
    pub per_second: f64,
    pub daily: Option<u64>,
}

impl Allowance {
    pub fn of(account: &Account, category: RateCategory) -> Self {
        let share = account.budget.share;
        let limit = account
            .budget
            .per_second(category)
            .unwrap_or_else(|| zoom_per_second(account.plan, category));
        Self {
            per_second: f64::from(limit) * share,
            daily: zoom_daily(account.plan, category).map(|cap| (cap as f64 * share) as u64),
        }
    }

    /// The time between two calls. The pace leaves one call per second of headroom (at most
    /// half the rate): an evenly spaced call that is a little late on the wire then still
    /// lands in a second of Zoom's with room for it.
    pub fn interval(self) -> Duration {
        let paced = (self.per_second - 1.0).max(self.per_second / 2.0);
        if paced.is_finite() && paced > 0.0 {
            Duration::from_secs_f64(1.0 / paced)
        } else {
            Duration::from_secs(3600)
        }
    }
}

/// The budgets and circuits of every account; cloning is shallow.
#[derive(Clone)]
pub struct Quota {
    inner: Arc<Inner>,
}

struct Inner {
    budgets: DashMap<(AccountName, RateCategory), Arc<Budget>>,
    breakers: DashMap<AccountName, Arc<Breaker>>,
    clock: ZoomClock,
    /// Where the per-user daily counts live, so that a restart does not reset them.
    store: Arc<dyn Store>,
    /// Shutting down: budgets made from now on drain by then too.
    drain_by: Mutex<Option<Instant>>,
}

/// A host user's creates and updates today were all spent.
#[derive(Debug)]
pub enum UserCapError {
    Spent { retry_after: Duration },
    Store(StoreError),
}

impl Quota {
    pub fn new(clock: ZoomClock, store: Arc<dyn Store>) -> Self {
        Self {
            inner: Arc::new(Inner {
                budgets: DashMap::new(),
                breakers: DashMap::new(),
                clock,
                store,
                drain_by: Mutex::new(None),
            }),
        }
    }

    /// Waits until one call of `caller` into `account` may go in `category`, or refuses it at
    /// once if it could not go by `latest_start`. A refused call spends nothing.
    pub async fn admit(
        &self,
        account: &Account,
        category: RateCategory,
        caller: &Caller,
        latest_start: Instant,
    ) -> Result<(), Refusal> {
        let allowance = Allowance::of(account, category);
        let budget = self.budget(&account.name, category, allowance);
        budget
            .admit(Ask {
                caller: &caller.name,
                weight: caller.weight,
                latest_start,
                interval: allowance.interval(),
                daily_cap: allowance.daily,
                today: self.today(),
            })
            .await
    }

    /// Zoom answered 429: no call of `category` goes into `account` for `wait`.
    pub fn zoom_limited(&self, account: &Account, category: RateCategory, wait: Duration) {
        let until = Instant::now()
            .checked_add(wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        let allowance = Allowance::of(account, category);
        self.budget(&account.name, category, allowance).pause(until);
    }

    /// Zoom's 429 named the category's per-second limit (`X-RateLimit-Limit`): below what the
    /// config says (the plan changed, or support lowered it), the lower one holds from now on.
    pub fn zoom_says_limit(&self, account: &Account, category: RateCategory, limit: u32) {
        let configured = Allowance::of(account, category);
        let told = Allowance {
            per_second: f64::from(limit) * account.budget.share,
            ..configured
        };
        if told.per_second < configured.per_second {
            tracing::warn!(
                account = %account.name,
                category = category.as_str(),
                limit,
                "zoom names a lower rate limit than the config; pacing by it"
            );
            self.budget(&account.name, category, configured)
                .slow_to(told.interval());
        }
    }

    /// How long Zoom's last 429 still holds `category` of `account` back.
    pub fn paused_for(&self, account: &AccountName, category: RateCategory) -> Option<Duration> {
        self.inner
            .budgets
            .get(&(account.clone(), category))?
            .paused_for()
    }

    /// Calls of `category` admitted into `account` on Zoom's current day (counted only in
    /// categories with a daily cap).
    pub fn spent_today(&self, account: &AccountName, category: RateCategory) -> u64 {
        let today = self.today().number;
        self.inner
            .budgets
            .get(&(account.clone(), category))
            .map_or(0, |budget| budget.spent_on(today))
    }

    /// Calls waiting for a place in `account`, over all categories.
    pub fn waiting(&self, account: &AccountName) -> usize {
        self.inner
            .budgets
            .iter()
            .filter(|entry| &entry.key().0 == account)
            .map(|entry| entry.value().waiting())
            .sum()
    }

    /// Counts one create or update hosted by `user` in `account` against Zoom's 100 a day.
    pub async fn take_user_call(
        &self,
        account: &AccountName,
        user: &str,
    ) -> Result<UserDay, UserCapError> {
        let today = self.today();
        let day = UserDay::new(account, user, today.number);
        match self.inner.store.take_user_call(&day, USER_DAILY_CAP).await {
            Ok(true) => Ok(day),
            Ok(false) => Err(UserCapError::Spent {
                retry_after: today.left,
            }),
            Err(error) => Err(UserCapError::Store(error)),
        }
    }

    /// Gives back a counted call that never reached Zoom.
    pub async fn give_back_user_call(&self, day: &UserDay) {
        if let Err(error) = self.inner.store.give_back_user_call(day).await {
            tracing::warn!(%error, "could not give back a user's daily call");
        }
    }

    /// Zoom says the user's day is spent (its count is ahead of ours: another app).
    pub async fn user_day_spent(&self, day: &UserDay) {
        if let Err(error) = self.inner.store.fill_user_day(day, USER_DAILY_CAP).await {
            tracing::warn!(%error, "could not record that a user's daily calls are spent");
        }
    }

    /// The breaker's word on a call into `account`.
    pub fn pass(&self, account: &AccountName) -> Result<Pass, Open> {
        self.breaker(account).pass()
    }

    /// Whether a call into `account` would fail fast now, without taking the check's turn.
    pub fn pass_would_fail(&self, account: &AccountName) -> Option<Open> {
        self.inner.breakers.get(account)?.open_now()
    }

    pub fn succeeded(&self, account: &AccountName) {
        self.breaker(account).succeeded();
    }

    pub fn failed(&self, account: &AccountName, pass: Pass, failure: String) {
        self.breaker(account).failed(pass, failure);
    }

    pub fn check_abandoned(&self, account: &AccountName, pass: Pass) {
        self.breaker(account).check_abandoned(pass);
    }

    pub fn circuit(&self, account: &AccountName) -> CircuitState {
        self.inner
            .breakers
            .get(account)
            .map_or(CircuitState::Closed, |breaker| breaker.state())
    }

    /// Shutting down: calls that could not start by `by` are refused, waiting ones at once.
    pub fn drain(&self, by: Instant) {
        *self
            .inner
            .drain_by
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(by);
        for budget in self.inner.budgets.iter() {
            budget.drain(by);
        }
    }

    /// Zoom's current UTC day and how long it has left.
    pub fn today(&self) -> ZoomDay {
        day_of(self.inner.clock.now())
    }

    fn budget(
        &self,
        account: &AccountName,
        category: RateCategory,
        allowance: Allowance,
    ) -> Arc<Budget> {
        let key = (account.clone(), category);
        if let Some(budget) = self.inner.budgets.get(&key) {
            return Arc::clone(&budget);
        }
        let budget = self
            .inner
            .budgets
            .entry(key)
            .or_insert_with(|| {
                let shared = self.inner.store.shared_budget().map(|engine| Shared {
                    engine,
                    account: account.clone(),
                    category,
                });
                Budget::new(allowance.interval(), shared)
            })
            .clone();
        let drain_by = *self
            .inner
            .drain_by
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(by) = drain_by {
            budget.drain(by);
        }
        budget
    }

    fn breaker(&self, account: &AccountName) -> Arc<Breaker> {
        if let Some(breaker) = self.inner.breakers.get(account) {
            return Arc::clone(&breaker);
        }
        self.inner
            .breakers
            .entry(account.clone())
            .or_default()
            .clone()
    }
}

/// The UTC day of `now`, numbered from the epoch, and the time to its end.
fn day_of(now: DateTime<Utc>) -> ZoomDay {
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_time(NaiveTime::MIN)
        .and_utc();
    ZoomDay {
        number: now.timestamp().div_euclid(86_400),
        left: (midnight - now).to_std().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::accounts::AccountBudget;

    fn account(plan: Plan, budget: AccountBudget) -> Account {
        Account {
            name: AccountName::parse("sales").unwrap(),
            zoom_account_id: "z".into(),
            client_id: "c".into(),
            client_secret: SecretString::from("s"),
            plan,
            budget,
        }
    }

    #[test]
    fn the_allowance_follows_zoom_s_table_the_overrides_and_the_share() {
        let pro = account(Plan::Pro, AccountBudget::default());
        let light = Allowance::of(&pro, RateCategory::Light);
        assert_eq!(light.per_second, 30.0);
        assert_eq!(light.daily, None);
        assert_eq!(light.interval(), Duration::from_secs_f64(1.0 / 29.0));
        assert_eq!(Allowance::of(&pro, RateCategory::Heavy).daily, Some(30_000));

        let shared = account(
            Plan::Free,
            AccountBudget {
                share: 0.5,
                per_second: [Some(10), None, None],
            },
        );
        let light = Allowance::of(&shared, RateCategory::Light);
        assert_eq!(light.per_second, 5.0, "raised by support, then halved");
        assert_eq!(light.daily, Some(3_000));
        let medium = Allowance::of(&shared, RateCategory::Medium);
        assert_eq!(medium.per_second, 1.0);
        assert_eq!(
            medium.interval(),
            Duration::from_secs(2),
            "half the rate at most"
        );
    }

    #[test]
    fn days_end_at_midnight_utc() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        let day = day_of(at("2030-01-01T23:59:50Z"));
        assert_eq!(day.left, Duration::from_secs(10));
        assert_eq!(day_of(at("2030-01-02T00:00:00Z")).number, day.number + 1);
    }

    /// Three gateways' quotas on one PostgreSQL schema, each with a store of its own.
    async fn on_one_database() -> Option<(Vec<Quota>, impl Sized)> {
        let (first, guard) = crate::store::postgres_scratch_store().await?;
        assert!(
            first.shared_budget().is_some(),
            "a PostgreSQL store shares its budget"
        );
        let schema = guard.schema.clone();
        let mut quotas = vec![Quota::new(ZoomClock::default(), first)];
        for _ in 1..3 {
            let store = crate::store::PostgresStore::connect(
                &crate::store::postgres_test_url(),
                None,
                Some(&schema),
            )
            .await
            .unwrap();
            quotas.push(Quota::new(ZoomClock::default(), Arc::new(store)));
        }
        Some((quotas, guard))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gateways_sharing_a_store_share_one_pace_and_the_day() {
        let Some((quotas, _guard)) = on_one_database().await else {
            return;
        };
        // 100 calls a second in all: every gateway floods, together they keep the pace.
        let fast = account(
            Plan::Free,
            AccountBudget {
                share: 1.0,
                per_second: [Some(100), None, None],
            },
        );
        let started = Instant::now();
        let mut calls = Vec::new();
        for (gateway, quota) in quotas.iter().enumerate() {
            for _ in 0..50 {
                let (quota, fast) = (quota.clone(), fast.clone());
                calls.push(tokio::spawn(async move {
                    let who = Caller::internal(&format!("caller-{gateway}"));
                    let deadline = Instant::now() + Duration::from_secs(10);
                    quota
                        .admit(&fast, RateCategory::Light, &who, deadline)
                        .await
                        .map(|()| (gateway, started.elapsed()))
                }));
            }
        }
        let mut admitted = Vec::new();
        for call in calls {
            admitted.push(call.await.unwrap().expect("admitted before its deadline"));
        }
        admitted.sort_by_key(|(_, at)| *at);
        let interval = Allowance::of(&fast, RateCategory::Light).interval();
        // No 100 ms of the run held more places than the pace allows (one of slack for the
        // grants' own timing), in all three gateways together.
        for (i, (_, from)) in admitted.iter().enumerate() {
            let within = admitted[i..]
                .iter()
                .take_while(|(_, at)| *at < *from + Duration::from_millis(100))
                .count();
            assert!(within <= 11, "{within} places within 100 ms from {from:?}");
        }
        let took = admitted.last().unwrap().1;
        let ideal = interval * 149;
        assert!(
            took.as_secs_f64() <= ideal.as_secs_f64() / 0.9,
            "150 places took {took:?}, the pace alone {ideal:?}"
        );
        for gateway in 0..3 {
            let first_hundred = admitted[..100]
                .iter()
                .filter(|(g, _)| *g == gateway)
                .count();
            assert!(
                (25..=42).contains(&first_hundred),
                "gateway {gateway} got {first_hundred} of the first 100 places"
            );
        }

        // The daily cap is one count for all: Free's 1,000 heavy calls, at a thousandth.
        let capped = account(
            Plan::Free,
            AccountBudget {
                share: 0.003,
                per_second: [None, None, Some(30_000)],
            },
        );
        let mut outcomes = Vec::new();
        for quota in quotas.iter().chain(&quotas) {
            let deadline = Instant::now() + Duration::from_secs(2);
            outcomes.push(
                quota
                    .admit(
                        &capped,
                        RateCategory::Heavy,
                        &Caller::internal("a"),
                        deadline,
                    )
                    .await,
            );
        }
        assert_eq!(
            outcomes.iter().filter(|o| o.is_ok()).count(),
            3,
            "{outcomes:?}"
        );
        assert!(
            outcomes[3..]
                .iter()
                .all(|o| matches!(o, Err(Refusal::Exhausted { daily: true, .. }))),
            "{outcomes:?}"
        );
        assert_eq!(quotas[2].spent_today(&capped.name, RateCategory::Heavy), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn zoom_s_pause_heard_by_one_gateway_holds_every_gateway_back() {
        let Some((quotas, _guard)) = on_one_database().await else {
            return;
        };
        let pro = account(Plan::Pro, AccountBudget::default());
        let deadline = || Instant::now() + Duration::from_secs(5);
        quotas[1]
            .admit(
                &pro,
                RateCategory::Medium,
                &Caller::internal("a"),
                deadline(),
            )
            .await
            .unwrap();
        quotas[0].zoom_limited(&pro, RateCategory::Medium, Duration::from_millis(600));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked = Instant::now();
        quotas[2]
            .admit(
                &pro,
                RateCategory::Medium,
                &Caller::internal("b"),
                deadline(),
            )
            .await
            .unwrap();
        let waited = asked.elapsed();
        assert!(
            waited >= Duration::from_millis(400),
            "another gateway went after {waited:?}, during zoom's pause"
        );
        // A call that cannot wait for the pause's end is refused at once, and spends nothing.
        quotas[0].zoom_limited(&pro, RateCategory::Medium, Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let short = Instant::now() + Duration::from_millis(300);
        let refused = quotas[1]
            .admit(&pro, RateCategory::Medium, &Caller::internal("c"), short)
            .await;
        assert!(
            matches!(refused, Err(Refusal::Exhausted { retry_after, daily: false }) if retry_after > Duration::from_millis(1500)),
            "{refused:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gateway_alone_again_after_sharing_goes_at_the_whole_pace() {
        let Some((quotas, _guard)) = on_one_database().await else {
            return;
        };
        let ten = account(
            Plan::Pro,
            AccountBudget {
                share: 1.0,
                per_second: [Some(10), None, None],
            },
        );
        // Two gateways flood together, and many calls are refused for want of time.
        let mut calls = Vec::new();
        for quota in &quotas[..2] {
            for _ in 0..15 {
                let (quota, ten) = (quota.clone(), ten.clone());
                calls.push(tokio::spawn(async move {
                    let deadline = Instant::now() + Duration::from_millis(600);
                    quota
                        .admit(&ten, RateCategory::Light, &Caller::internal("a"), deadline)
                        .await
                }));
            }
        }
        for call in calls {
            let _ = call.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Alone now, one call after another: each waits one interval at most, not the gaps
        // that sharing, and then idling, put between its places.
        let interval = Allowance::of(&ten, RateCategory::Light).interval();
        for _ in 0..3 {
            let asked = Instant::now();
            let deadline = asked + Duration::from_millis(300);
            quotas[0]
                .admit(&ten, RateCategory::Light, &Caller::internal("a"), deadline)
                .await
                .unwrap();
            let waited = asked.elapsed();
            assert!(
                waited <= interval + Duration::from_millis(80),
                "waited {waited:?} for a place of a pace of {interval:?}"
            );
        }
    }
}

//! Per-account Server-to-Server token cache: early refresh, one fetch in flight, purge on 401,
//! cooldown after failures.
//!
//! Every gateway request asks for a token, so the hot path is one `RwLock` read of an `Arc`.
//! Only a missing or ageing token takes the account's `tokio::sync::Mutex`, which is held across
//! the fetch so that however many requests wait, Zoom sees one token request per account.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use thiserror::Error;
use tokio::time::Instant;
use tracing::Instrument;

use crate::accounts::{Account, AccountName, Accounts};
use crate::telemetry::metrics::Metrics;
use crate::zoom::{AccessToken, TokenError, TokenGrant, ZoomClient, ZoomError};

/// How soon a token endpoint that is down or unreachable is asked again. Rejections and
/// malformed answers (a broken app, which retries do not fix) cool down exponentially instead.
const TRANSIENT_RETRY: Duration = Duration::from_millis(200);

/// Error of [`TokenCache::call`]: no token, or Zoom's answer.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CallError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Zoom(#[from] ZoomError),
}

/// Refresh and failure timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenSettings {
    /// A token is replaced once its remaining lifetime drops below this (default 5 min); clamped
    /// to half the lifetime for short-lived tokens.
    pub refresh_margin: Duration,
    /// Cooldown after the first failed fetch (default 1 s); doubles with each further failure.
    pub failure_cooldown: Duration,
    /// Upper bound of the cooldown (default 60 s).
    pub max_cooldown: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(300),
            failure_cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(60),
        }
    }
}

/// Tokens of all configured accounts. Cloning is shallow.
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    fetcher: Fetcher,
    settings: TokenSettings,
    /// One per configured account; replaced whole when the config's accounts change, keeping
    /// the slots (and tokens) of the accounts that did not.
    slots: ArcSwap<HashMap<AccountName, Arc<Slot>>>,
    metrics: Arc<Metrics>,
}

/// Where tokens come from: Zoom, or a scripted source in tests.
enum Fetcher {
    Zoom(ZoomClient),
    #[cfg(test)]
    Fake(tests::FakeFetch),
}

impl Fetcher {
    async fn fetch(&self, account: &Account) -> Result<TokenGrant, TokenError> {
        match self {
            Self::Zoom(client) => client.request_token(account).await,
            #[cfg(test)]
            Self::Fake(fake) => fake(account).await,
        }
    }
}

/// One account's token state.
struct Slot {
    account: Arc<Account>,
    /// The token served on the hot path.
    current: RwLock<Option<Arc<CachedToken>>>,
    /// Held across a fetch: one flight per account. Owned by the fetch task, hence the `Arc`.
    flight: Arc<tokio::sync::Mutex<Flight>>,
    /// Number of finished flights; a waiter that sees it move knows a flight ended meanwhile.
    flights_done: AtomicU64,
    /// Token requests sent to Zoom.
    fetches: AtomicU64,
    /// Tokens in a row that Zoom rejected even after a retry with another one; a fetch that
    /// succeeds does not reset it, a Zoom answer that accepts the token does.
    rejected_streak: AtomicU32,
    /// No token is fetched before then, after a streak of rejected tokens. Kept apart from the
    /// flight, which a successful fetch resets.
    rejected_until: std::sync::Mutex<Option<Instant>>,
    /// What the Admin API shows of past fetches.
    history: std::sync::Mutex<FetchHistory>,
}

impl Slot {
    fn new(account: &Arc<Account>) -> Self {
        Slot {
            account: Arc::clone(account),
            current: RwLock::new(None),
            flight: Arc::new(tokio::sync::Mutex::new(Flight::default())),
            flights_done: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            rejected_streak: AtomicU32::new(0),
            rejected_until: std::sync::Mutex::new(None),
            history: std::sync::Mutex::new(FetchHistory::default()),
        }
    }
}

/// Whether a token of `old` is also one of `new`: same Zoom account, app and secret.
fn same_credentials(old: &Account, new: &Account) -> bool {
    old.zoom_account_id == new.zoom_account_id
        && old.client_id == new.client_id
        && old.client_secret.expose_secret() == new.client_secret.expose_secret()
}

/// When the last fetch ended, and the last failure, which a later success does not erase.
#[derive(Clone, Debug, Default)]
struct FetchHistory {
    last_fetch: Option<DateTime<Utc>>,
    last_error: Option<(DateTime<Utc>, String)>,
}

/// An account's token state as operators see it. Holds no token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenState {
    /// When the cached token expires; `None` without one.
    pub valid_until: Option<DateTime<Utc>>,
    /// When the last fetch ended, successful or not.
    pub last_fetch: Option<DateTime<Utc>>,
    /// The last failed fetch and why, even if a later one succeeded.
    pub last_error: Option<(DateTime<Utc>, String)>,
    /// How long fetches still cool down after failures.
    pub cooldown: Option<Duration>,
    /// Token requests sent to Zoom since start.
    pub fetches: u64,
}

struct CachedToken {
    token: AccessToken,
    /// From then on a new token is fetched (expiry minus the margin).
    refresh_at: Instant,
    /// From then on the token is never served.
    expires_at: Instant,
}

/// Failure bookkeeping, guarded by the flight mutex.
#[derive(Default)]
struct Flight {
    consecutive_failures: u32,
    cooldown_until: Option<Instant>,
    /// Outcome of the last flight if it failed, handed to those who waited for it.
    last_failure: Option<TokenError>,
}

// === impl TokenCache ===

impl TokenCache {
    pub fn new(
        client: ZoomClient,
        accounts: &Accounts,
        settings: TokenSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::with_fetcher(Fetcher::Zoom(client), accounts, settings, metrics)
    }

    fn with_fetcher(
        fetcher: Fetcher,
        accounts: &Accounts,
        settings: TokenSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let slots = accounts
            .iter()
            .map(|account| (account.name.clone(), Arc::new(Slot::new(account))))
            .collect();
        Self {
            inner: Arc::new(Inner {
                fetcher,
                settings,
                slots: ArcSwap::from_pointee(slots),
                metrics,
            }),
        }
    }

    /// Serves `accounts` from now on. An account whose credentials did not change keeps its
    /// slot: its token, failure state and counters; a new or changed one starts empty.
    pub fn set_accounts(&self, accounts: &Accounts) {
        let old = self.inner.slots.load();
        let slots = accounts
            .iter()
            .map(|account| {
                let kept = old
                    .get(&account.name)
                    .filter(|slot| same_credentials(&slot.account, account));
                let slot = kept
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Slot::new(account)));
                (account.name.clone(), slot)
            })
            .collect();
        self.inner.slots.store(Arc::new(slots));
    }

    /// Returns a token of `account` valid for at least the margin, fetching one if needed.
    ///
    /// While fetches fail, a token that is due for refresh but not expired is still returned.
    pub async fn token(&self, account: &AccountName) -> Result<AccessToken, TokenError> {
        let slot = self.slot(account)?;
        if let Some(token) = slot.fresh(Instant::now()) {
            return Ok(token);
        }
        if let Some(retry_after) = slot.rejected_wait(Instant::now()) {
            return Err(TokenError::CoolingDown { retry_after });
        }
        let flights_seen = slot.flights_done.load(Ordering::Acquire);
        let flight = Arc::clone(&slot.flight).lock_owned().await;

        // Someone else's flight may have ended while we waited: share its result.
        let now = Instant::now();
        if let Some(token) = slot.fresh(now) {
            return Ok(token);
        }
        let shared_failure = if slot.flights_done.load(Ordering::Acquire) == flights_seen {
            None
        } else {
            flight.last_failure.clone()
        };
        let cooling = flight.cooldown_until.filter(|&until| until > now);
        let failure = match (shared_failure, cooling) {
            (Some(error), _) => Some(error),
            (None, Some(until)) => Some(TokenError::CoolingDown {
                retry_after: until - now,
            }),
            (None, None) => None,
        };
        if let Some(error) = failure {
            // An ageing token is still better than an error, until it expires.
            return slot.unexpired(now).ok_or(error);
        }
        // The fetch runs in a task of its own: a request that gives up (deadline, disconnect)
        // must not cancel the fetch that every request behind it waits for. Its span is a child
        // of the request that started it.
        // The slot whose flight lock is held, even if a reload replaced it meanwhile.
        let this = self.clone();
        let slot_name = slot.account.name.clone();
        let fetch = async move {
            let mut flight = flight;
            this.fetch(&slot, &mut flight).await
        };
        let span = tracing::info_span!("token_fetch", account = %slot_name);
        tokio::spawn(fetch.instrument(span))
            .await
            .unwrap_or_else(|error| {
                Err(TokenError::Unavailable(format!(
                    "token fetch task: {error}"
                )))
            })
    }

    /// Forgets `token` if it is still the cached one (after Zoom said 401/124), so that a
    /// concurrent purge of an older token never throws away a newer one. Tells whether it did.
    pub fn purge(&self, account: &AccountName, token: &AccessToken) -> bool {
        let Ok(slot) = self.slot(account) else {
            return false;
        };
        let mut current = slot.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| c.token == *token) {
            *current = None;
            tracing::info!(account = %account, "purged the token zoom rejected");
            return true;
        }
        false
    }

    /// Runs `call` with the account's token; on [`ZoomError::InvalidToken`] purges that token
    /// and runs `call` once more with a fresh one.
    ///
    /// Retrying is safe even for writes: Zoom rejected the token before doing anything.
    pub async fn call<T, F, Fut>(&self, account: &AccountName, call: F) -> Result<T, CallError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, ZoomError>>,
    {
        let token = self.token(account).await?;
        let result = match call(token.clone()).await {
            Err(ZoomError::InvalidToken { .. }) => {
                self.purge(account, &token);
                tracing::info!(account = %account, "zoom rejected the token, retrying with a new one");
                let fresh = self.token(account).await?;
                let result = call(fresh.clone()).await;
                if matches!(result, Err(ZoomError::InvalidToken { .. })) {
                    // Counted once per token: concurrent requests share the purge.
                    if self.purge(account, &fresh) {
                        self.record_rejected_token(account);
                    }
                    return result.map_err(CallError::Zoom);
                }
                result
            }
            result => result,
        };
        // Only an answer about the request itself shows that Zoom took the token.
        let accepted = matches!(
            result,
            Ok(_)
                | Err(ZoomError::NotFound { .. }
                    | ZoomError::MissingScope { .. }
                    | ZoomError::RateLimited { .. }
                    | ZoomError::BadRequest { .. }
                    | ZoomError::Rejected { .. })
        );
        if accepted {
            self.reset_rejections(account);
        }
        result.map_err(CallError::Zoom)
    }

    /// Returns how many token requests were sent to Zoom for `account` (0 if unknown).
    pub fn fetches(&self, account: &AccountName) -> u64 {
        self.slot(account)
            .map_or(0, |slot| slot.fetches.load(Ordering::Relaxed))
    }

    /// Returns how long token fetches of `account` still cool down after failures; `None` when
    /// they do not, or while a fetch is in flight.
    pub fn cooldown_left(&self, account: &AccountName) -> Option<Duration> {
        let slot = self.slot(account).ok()?;
        let now = Instant::now();
        let flight = slot.flight.try_lock().ok()?;
        let from_flight = flight
            .cooldown_until
            .and_then(|until| until.checked_duration_since(now));
        from_flight
            .or_else(|| slot.rejected_wait(now))
            .filter(|left| !left.is_zero())
    }

    /// Returns the token state of `account`, for the Admin API; `None` for an unknown account.
    pub fn state(&self, account: &AccountName) -> Option<TokenState> {
        let slot = self.slot(account).ok()?;
        let now = Instant::now();
        let valid_until = slot.unexpired_until(now).map(|expires_at| {
            let left = expires_at.saturating_duration_since(now);
            Utc::now() + chrono::TimeDelta::from_std(left).unwrap_or(chrono::TimeDelta::MAX)
        });
        let history = slot
            .history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Some(TokenState {
            valid_until,
            last_fetch: history.last_fetch,
            last_error: history.last_error,
            cooldown: self.cooldown_left(account),
            fetches: slot.fetches.load(Ordering::Relaxed),
        })
    }

    /// Tells whether `account` holds an unexpired token.
    #[cfg(test)]
    pub(crate) fn has_token(&self, account: &AccountName) -> bool {
        self.slot(account)
            .is_ok_and(|slot| slot.unexpired(Instant::now()).is_some())
    }

    /// Starts a cooldown, growing with the streak, when Zoom rejects even a second token: an
    /// account whose app was deactivated then stops fetching a token per request.
    fn record_rejected_token(&self, account: &AccountName) {
        let Ok(slot) = self.slot(account) else {
            return;
        };
        let streak = slot
            .rejected_streak
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let cooldown = self.cooldown(streak);
        let until = Some(later(Instant::now(), cooldown));
        let mut rejected_until = slot
            .rejected_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *rejected_until = (*rejected_until).max(until);
        tracing::warn!(
            account = %account,
            streak,
            cooldown_ms = cooldown.as_millis() as u64,
            "zoom rejected a second access token in a row, cooling down"
        );
    }

    /// Ends a streak of rejected tokens once Zoom accepts one again.
    fn reset_rejections(&self, account: &AccountName) {
        if let Ok(slot) = self.slot(account)
            && slot.rejected_streak.load(Ordering::Relaxed) != 0
        {
            slot.rejected_streak.store(0, Ordering::Relaxed);
            *slot
                .rejected_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    fn slot(&self, account: &AccountName) -> Result<Arc<Slot>, TokenError> {
        self.inner
            .slots
            .load()
            .get(account)
            .cloned()
            .ok_or_else(|| TokenError::UnknownAccount(account.clone()))
    }

    /// Fetches a token while holding the flight lock and records the outcome.
    async fn fetch(&self, slot: &Slot, flight: &mut Flight) -> Result<AccessToken, TokenError> {
        let name = &slot.account.name;
        slot.fetches.fetch_add(1, Ordering::Relaxed);
        // The lifetime counts from the moment the request leaves, never from the answer.
        let sent_at = Instant::now();
        let result = self
            .inner
            .fetcher
            .fetch(&slot.account)
            .await
            .and_then(|grant| self.cache_entry(grant, sent_at));
        self.inner
            .metrics
            .token_fetch(name.as_str(), result.is_ok(), sent_at.elapsed());
        slot.flights_done.fetch_add(1, Ordering::Release);
        {
            let mut history = slot.history.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Utc::now();
            history.last_fetch = Some(now);
            if let Err(error) = &result {
                history.last_error = Some((now, error.to_string()));
            }
        }
        match result {
            Ok(entry) => {
                let token = entry.token.clone();
                *slot.current.write().unwrap_or_else(PoisonError::into_inner) = Some(entry);
                *flight = Flight::default();
                tracing::debug!(account = %name, "fetched a zoom token");
                Ok(token)
            }
            Err(error) => {
                flight.consecutive_failures = flight.consecutive_failures.saturating_add(1);
                let cooldown = match error {
                    // Down or unreachable: asked again soon, so that requests recover as soon
                    // as it is back; the account's circuit breaker keeps that to one request
                    // at a time.
                    TokenError::Unavailable(_) => {
                        TRANSIENT_RETRY.min(self.cooldown(flight.consecutive_failures))
                    }
                    _ => self.cooldown(flight.consecutive_failures),
                };
                flight.cooldown_until = Some(later(Instant::now(), cooldown));
                flight.last_failure = Some(error.clone());
                tracing::warn!(
                    account = %name,
                    error = %error,
                    failures = flight.consecutive_failures,
                    cooldown_ms = cooldown.as_millis() as u64,
                    "zoom token fetch failed"
                );
                slot.unexpired(Instant::now()).ok_or(error)
            }
        }
    }

    /// Computes when a granted token must be refreshed and when it expires.
    fn cache_entry(
        &self,
        grant: TokenGrant,
        sent_at: Instant,
    ) -> Result<Arc<CachedToken>, TokenError> {
        let lifetime = grant.expires_in;
        let margin = self.inner.settings.refresh_margin.min(lifetime / 2);
        let expires_at = sent_at
            .checked_add(lifetime)
            .ok_or(TokenError::Malformed("expires_in is out of range"))?;
        if expires_at <= Instant::now() {
            return Err(TokenError::Malformed("token expired before it arrived"));
        }
        Ok(Arc::new(CachedToken {
            token: grant.access_token,
            refresh_at: expires_at - margin,
            expires_at,
        }))
    }

    /// Returns the cooldown after `failures` consecutive failures: doubling, capped.
    fn cooldown(&self, failures: u32) -> Duration {
        let TokenSettings {
            failure_cooldown,
            max_cooldown,
            ..
        } = self.inner.settings;
        let factor = 1_u32 << failures.saturating_sub(1).min(20);
        failure_cooldown
            .checked_mul(factor)
            .unwrap_or(max_cooldown)
            .min(max_cooldown)
    }
}

/// Returns `now + by`; when that is past what an [`Instant`] can hold, 30 years from now (what
/// tokio uses for "never"), so that a huge cooldown still cools down instead of being dropped.
fn later(now: Instant, by: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);
    now.checked_add(by)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("accounts", &self.inner.slots.load().len())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

// === impl Slot ===

impl Slot {
    fn cached(&self) -> Option<Arc<CachedToken>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns how long fetches still wait after a streak of rejected tokens.
    fn rejected_wait(&self, now: Instant) -> Option<Duration> {
        let until = (*self
            .rejected_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner))?;
        until
            .checked_duration_since(now)
            .filter(|left| !left.is_zero())
    }

    /// Returns the cached token if it needs no refresh yet.
    fn fresh(&self, now: Instant) -> Option<AccessToken> {
        self.cached()
            .filter(|c| now < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// Returns when the cached token expires, if it has not yet.
    fn unexpired_until(&self, now: Instant) -> Option<Instant> {
        self.cached()
            .filter(|c| now < c.expires_at)
            .map(|c| c.expires_at)
    }

    /// Returns the cached token if it has not expired, even if it is due for refresh.
    fn unexpired(&self, now: Instant) -> Option<AccessToken> {
        self.cached()
            .filter(|c| now < c.expires_at)
            .map(|c| c.token.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Mutex;

    use secrecy::SecretString;

    use super::*;
    use crate::accounts::Plan;

    pub(super) type FakeFetch = Arc<
        dyn Fn(&Account) -> Pin<Box<dyn Future<Output = Result<TokenGrant, TokenError>> + Send>>
            + Send
            + Sync,
    >;

    /// A scripted token endpoint: answers from a queue (then repeats the last answer), after
    /// `delay` of (paused) time, numbering tokens so tests can tell them apart.
    #[derive(Clone, Default)]
    struct Script {
        answers: Arc<Mutex<Vec<Answer>>>,
        served: Arc<AtomicU64>,
        delay: Duration,
    }

    #[derive(Clone)]
    enum Answer {
        Token { expires_in: Duration },
        Fail(TokenError),
    }

    impl Script {
        fn new(answers: Vec<Answer>) -> Self {
            Self {
                answers: Arc::new(Mutex::new(answers)),
                ..Self::default()
            }
        }

        fn delayed(mut self, delay: Duration) -> Self {
            self.delay = delay;
            self
        }

        fn fetcher(&self) -> Fetcher {
            let script = self.clone();
            Fetcher::Fake(Arc::new(move |_account| {
                let script = script.clone();
                Box::pin(async move {
                    tokio::time::sleep(script.delay).await;
                    let answer = {
                        let mut answers = script.answers.lock().unwrap();
                        if answers.len() > 1 {
                            answers.remove(0)
                        } else {
                            answers[0].clone()
                        }
                    };
                    let n = script.served.fetch_add(1, Ordering::SeqCst) + 1;
                    match answer {
                        Answer::Token { expires_in } => Ok(TokenGrant {
                            access_token: AccessToken::new(format!("token-{n}")),
                            expires_in,
                        }),
                        Answer::Fail(error) => Err(error),
                    }
                })
            }))
        }
    }

    fn hour() -> Answer {
        Answer::Token {
            expires_in: Duration::from_secs(3600),
        }
    }

    fn unavailable() -> Answer {
        Answer::Fail(TokenError::Unavailable("zoom answered 503".into()))
    }

    fn malformed() -> Answer {
        Answer::Fail(TokenError::Malformed("token response has no access_token"))
    }

    fn sales() -> AccountName {
        AccountName::parse("sales").unwrap()
    }

    fn accounts() -> Accounts {
        Accounts::new([Account {
            name: sales(),
            zoom_account_id: "acc-1".into(),
            client_id: "cid".into(),
            client_secret: SecretString::from("hunter2"),
            plan: Plan::Pro,
            budget: Default::default(),
        }])
    }

    fn cache(script: &Script) -> TokenCache {
        TokenCache::with_fetcher(
            script.fetcher(),
            &accounts(),
            TokenSettings::default(),
            Default::default(),
        )
    }

    async fn advance(by: Duration) {
        tokio::time::advance(by).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_token_is_served_from_the_cache() {
        let script = Script::new(vec![hour()]);
        let cache = cache(&script);

        let first = cache.token(&sales()).await.unwrap();
        let second = cache.token(&sales()).await.unwrap();

        assert_eq!(first, second);
        assert_eq!(cache.fetches(&sales()), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_token_is_refreshed_before_it_expires() {
        let script = Script::new(vec![hour()]);
        let cache = cache(&script);
        let first = cache.token(&sales()).await.unwrap();

        advance(Duration::from_secs(3600 - 300 - 1)).await;
        assert_eq!(cache.token(&sales()).await.unwrap(), first);

        advance(Duration::from_secs(2)).await;
        let second = cache.token(&sales()).await.unwrap();
        assert_ne!(second, first);
        assert_eq!(cache.fetches(&sales()), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_margin_is_clamped_to_half_a_short_lifetime() {
        let script = Script::new(vec![Answer::Token {
            expires_in: Duration::from_secs(60),
        }]);
        let cache = cache(&script);
        let first = cache.token(&sales()).await.unwrap();

        advance(Duration::from_secs(29)).await;
        assert_eq!(cache.token(&sales()).await.unwrap(), first);
        advance(Duration::from_secs(2)).await;
        assert_ne!(cache.token(&sales()).await.unwrap(), first);
    }

    #[tokio::test(start_paused = true)]
    async fn the_lifetime_counts_from_when_the_request_was_sent() {
        let script = Script::new(vec![hour()]).delayed(Duration::from_secs(10));
        let cache = cache(&script);
        let first = cache.token(&sales()).await.unwrap();

        // Sent at 0, received at 10: refresh is due at 3300 from sending, i.e. 3290 from now.
        advance(Duration::from_secs(3289)).await;
        assert_eq!(cache.token(&sales()).await.unwrap(), first);
        advance(Duration::from_secs(2)).await;
        assert_ne!(cache.token(&sales()).await.unwrap(), first);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ageing_token_is_served_while_refresh_fails_but_never_past_expiry() {
        let script = Script::new(vec![hour(), unavailable()]);
        let cache = cache(&script);
        let first = cache.token(&sales()).await.unwrap();

        advance(Duration::from_secs(3500)).await;
        assert_eq!(cache.token(&sales()).await.unwrap(), first);
        assert_eq!(cache.fetches(&sales()), 2);
        assert!(cache.has_token(&sales()));

        advance(Duration::from_secs(100)).await;
        assert!(cache.token(&sales()).await.is_err());
        assert!(!cache.has_token(&sales()));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_fetch() {
        let script = Script::new(vec![hour()]).delayed(Duration::from_secs(1));
        let cache = cache(&script);

        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.token(&sales()).await })
            })
            .collect();
        let mut tokens = Vec::new();
        for task in tasks {
            tokens.push(task.await.unwrap().unwrap());
        }

        assert_eq!(cache.fetches(&sales()), 1);
        assert!(tokens.iter().all(|t| *t == tokens[0]));
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_share_the_failure_of_their_flight() {
        let rejected = TokenError::Rejected {
            status: 400,
            error: "invalid_client".into(),
            reason: "Invalid client_id or client_secret".into(),
        };
        let script =
            Script::new(vec![Answer::Fail(rejected.clone())]).delayed(Duration::from_secs(1));
        let cache = cache(&script);

        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.token(&sales()).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Err(rejected.clone()));
        }
        assert_eq!(cache.fetches(&sales()), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_cool_down_exponentially_and_a_success_resets() {
        let script = Script::new(vec![
            malformed(),
            malformed(),
            malformed(),
            hour(),
            malformed(),
        ]);
        let settings = TokenSettings {
            refresh_margin: Duration::from_secs(300),
            failure_cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(3),
        };
        let cache =
            TokenCache::with_fetcher(script.fetcher(), &accounts(), settings, Default::default());
        let cooling = |retry_after| Err(TokenError::CoolingDown { retry_after });

        assert!(matches!(
            cache.token(&sales()).await,
            Err(TokenError::Malformed(_))
        ));
        assert_eq!(cache.cooldown_left(&sales()), Some(Duration::from_secs(1)));
        assert_eq!(cache.token(&sales()).await, cooling(Duration::from_secs(1)));
        assert_eq!(cache.fetches(&sales()), 1, "no fetch during the cooldown");

        advance(Duration::from_secs(1)).await;
        assert!(cache.token(&sales()).await.is_err());
        assert_eq!(cache.token(&sales()).await, cooling(Duration::from_secs(2)));

        advance(Duration::from_secs(2)).await;
        assert!(cache.token(&sales()).await.is_err());
        assert_eq!(
            cache.token(&sales()).await,
            cooling(Duration::from_secs(3)),
            "capped at max_cooldown"
        );
        assert_eq!(cache.fetches(&sales()), 3);

        advance(Duration::from_secs(3)).await;
        assert!(cache.token(&sales()).await.is_ok());

        // After a success the next failure starts over at the first cooldown.
        advance(Duration::from_secs(3600)).await;
        assert!(cache.token(&sales()).await.is_err());
        assert_eq!(cache.token(&sales()).await, cooling(Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cooldown_past_what_an_instant_holds_still_cools_down() {
        let script = Script::new(vec![malformed(), hour()]);
        let settings = TokenSettings {
            refresh_margin: Duration::from_secs(300),
            failure_cooldown: Duration::MAX,
            max_cooldown: Duration::MAX,
        };
        let cache =
            TokenCache::with_fetcher(script.fetcher(), &accounts(), settings, Default::default());

        assert!(matches!(
            cache.token(&sales()).await,
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            cache.token(&sales()).await,
            Err(TokenError::CoolingDown { .. })
        ));
        assert_eq!(cache.fetches(&sales()), 1, "no fetch during the cooldown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_endpoint_that_is_down_is_asked_again_soon_however_long_it_lasts() {
        let script = Script::new(vec![unavailable(); 6].into_iter().chain([hour()]).collect());
        let cache = cache(&script);
        for fetches in 1..=6 {
            assert!(matches!(
                cache.token(&sales()).await,
                Err(TokenError::Unavailable(_))
            ));
            assert_eq!(cache.cooldown_left(&sales()), Some(TRANSIENT_RETRY));
            assert_eq!(cache.fetches(&sales()), fetches);
            advance(TRANSIENT_RETRY).await;
        }
        assert!(
            cache.token(&sales()).await.is_ok(),
            "back within one short wait"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_response_counts_as_a_failure() {
        let script = Script::new(vec![Answer::Fail(TokenError::Malformed(
            "token response has no access_token",
        ))]);
        let cache = cache(&script);

        assert!(matches!(
            cache.token(&sales()).await,
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            cache.token(&sales()).await,
            Err(TokenError::CoolingDown { .. })
        ));
        assert_eq!(cache.fetches(&sales()), 1);
        assert!(!cache.has_token(&sales()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_that_expired_in_flight_is_a_failure() {
        let script = Script::new(vec![Answer::Token {
            expires_in: Duration::from_secs(5),
        }])
        .delayed(Duration::from_secs(5));
        let cache = cache(&script);

        assert!(matches!(
            cache.token(&sales()).await,
            Err(TokenError::Malformed(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn purge_forgets_only_the_token_still_cached() {
        let script = Script::new(vec![hour()]);
        let cache = cache(&script);
        let first = cache.token(&sales()).await.unwrap();

        cache.purge(&sales(), &first);
        assert!(!cache.has_token(&sales()));
        let second = cache.token(&sales()).await.unwrap();
        assert_ne!(first, second);

        // A late purge of the old token leaves the new one alone.
        cache.purge(&sales(), &first);
        assert_eq!(cache.token(&sales()).await.unwrap(), second);
        assert_eq!(cache.fetches(&sales()), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn call_retries_once_with_a_new_token_after_invalid_token() {
        let script = Script::new(vec![hour()]);
        let cache = cache(&script);
        let used = Arc::new(Mutex::new(Vec::new()));

        let result = cache
            .call(&sales(), |token| {
                let used = Arc::clone(&used);
                async move {
                    let mut used = used.lock().unwrap();
                    used.push(token.expose().to_owned());
                    if used.len() == 1 {
                        Err(ZoomError::InvalidToken {
                            message: "Invalid access token.".into(),
                        })
                    } else {
                        Ok(used.len())
                    }
                }
            })
            .await;

        assert_eq!(result, Ok(2));
        assert_eq!(*used.lock().unwrap(), ["token-1", "token-2"]);
        assert_eq!(cache.fetches(&sales()), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn call_gives_up_after_the_second_invalid_token() {
        let script = Script::new(vec![hour()]);
        let cache = cache(&script);
        let calls = AtomicU64::new(0);

        let result: Result<(), _> = cache
            .call(&sales(), |_token| {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    Err(ZoomError::InvalidToken {
                        message: "Access token is expired.".into(),
                    })
                }
            })
            .await;

        assert!(matches!(
            result,
            Err(CallError::Zoom(ZoomError::InvalidToken { .. }))
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(!cache.has_token(&sales()), "the rejected token is purged");

        // Zoom rejects even fresh tokens (app deactivated): requests cool down, no fetch storm.
        let next = cache.call(&sales(), |_token| async { Ok(()) }).await;
        assert!(matches!(
            next,
            Err(CallError::Token(TokenError::CoolingDown { .. }))
        ));
        assert_eq!(cache.fetches(&sales()), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn rejected_tokens_cool_down_longer_each_time_until_one_is_accepted() {
        let script = Script::new(vec![hour()]);
        let cache = cache(&script);
        let zoom_accepts = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let account = sales();
        let call = || {
            let zoom_accepts = zoom_accepts.clone();
            cache.call(&account, move |_token| {
                let accepted = zoom_accepts.load(Ordering::SeqCst);
                async move {
                    if accepted {
                        Ok(())
                    } else {
                        Err(ZoomError::InvalidToken {
                            message: "Invalid access token.".into(),
                        })
                    }
                }
            })
        };
        let cooling = |result: Result<(), CallError>| {
            matches!(
                result,
                Err(CallError::Token(TokenError::CoolingDown { .. }))
            )
        };

        assert!(call().await.is_err());
        assert!(cooling(call().await), "1 s after the first rejected pair");
        advance(Duration::from_millis(1100)).await;
        assert!(call().await.is_err());
        advance(Duration::from_millis(1500)).await;
        assert!(
            cooling(call().await),
            "2 s after the second: the fetch success did not reset it"
        );
        advance(Duration::from_millis(600)).await;
        zoom_accepts.store(true, Ordering::SeqCst);
        call().await.expect("zoom accepts tokens again");
        assert_eq!(
            cache.inner.slots.load()[&sales()]
                .rejected_streak
                .load(Ordering::SeqCst),
            0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_gives_up_does_not_cancel_the_fetch() {
        let script = Script::new(vec![hour()]).delayed(Duration::from_secs(2));
        let cache = cache(&script);

        let gave_up = tokio::time::timeout(Duration::from_secs(1), cache.token(&sales())).await;
        assert!(gave_up.is_err(), "the first request times out mid-fetch");
        cache.token(&sales()).await.unwrap();

        assert_eq!(
            cache.fetches(&sales()),
            1,
            "the second request joined the first fetch"
        );
        assert_eq!(script.served.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn call_does_not_retry_other_errors() {
        let script = Script::new(vec![hour()]);
        let cache = cache(&script);
        let calls = AtomicU64::new(0);

        let result: Result<(), _> = cache
            .call(&sales(), |_token| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(ZoomError::Timeout) }
            })
            .await;

        assert_eq!(result, Err(CallError::Zoom(ZoomError::Timeout)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(cache.has_token(&sales()));
    }

    #[tokio::test(start_paused = true)]
    async fn call_reports_token_failures_without_calling_zoom() {
        let script = Script::new(vec![unavailable()]);
        let cache = cache(&script);
        let calls = AtomicU64::new(0);

        let result: Result<(), _> = cache
            .call(&sales(), |_token| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
            .await;

        assert!(matches!(
            result,
            Err(CallError::Token(TokenError::Unavailable(_)))
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_accounts_are_an_error() {
        let cache = cache(&Script::new(vec![hour()]));
        let other = AccountName::parse("other").unwrap();

        assert_eq!(
            cache.token(&other).await,
            Err(TokenError::UnknownAccount(other.clone()))
        );
        assert_eq!(cache.fetches(&other), 0);
        assert!(!cache.has_token(&other));
    }

    #[test]
    fn tokens_are_redacted_in_debug_output() {
        let token = AccessToken::new("eyJsecret");
        assert!(!format!("{token:?}").contains("eyJsecret"));
        let grant = TokenGrant {
            access_token: token,
            expires_in: Duration::from_secs(1),
        };
        assert!(!format!("{grant:?}").contains("eyJsecret"));
    }
}

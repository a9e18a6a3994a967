//! The one place every Zoom call of the gateway passes: requests, probes and the directory sync
//! alike. It knows the request, the account, the endpoint and the host, so the circuit breaker,
//! the per-user daily cap, admission against the account's budget, retries, metrics per
//! endpoint and the Zoom call's span live here and nowhere else.
//!
//! A call goes: circuit closed (or this call checks it) -> host user's daily cap -> token ->
//! a place in the account's budget -> Zoom. Admission comes after the token, so that calls held
//! up by a token fetch do not leave in a burst. A 429 pauses the budget for the wait Zoom asked
//! for and the call tries again if its deadline allows; idempotent calls are tried again with
//! backoff after a 5xx, a reset or a timeout.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;
use tracing::Instrument;

use super::RequestContext;
use crate::accounts::{Account, AccountName, LiveAccounts};
use crate::error::{Error, TargetKind};
use crate::quota::{Open, Quota, Refusal, USER_DAILY_CAP, UserCapError};
use crate::store::UserDay;
use crate::telemetry::metrics::Metrics;
use crate::token::{CallError, TokenCache};
use crate::zoom::{LimitHit, RateCategory, TokenError, ZoomCall, ZoomClient, ZoomError};

/// Time kept free before the deadline for Zoom's answer: a call that could only start later
/// is refused before it spends any budget.
const ANSWER_RESERVE: Duration = Duration::from_millis(100);
/// How long a 429 without `Retry-After` pauses the budget: Zoom's window is one second.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// Tries of one call after the first, on a 429 or (idempotent calls) a transient failure.
const MAX_RETRIES: usize = 5;

/// What a call is about, so that Zoom's 404 becomes the caller's NOT_FOUND of that target. The
/// id is only turned into text when that happens.
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    User(&'a str),
    Meeting(i64),
    /// The account itself, e.g. its user list.
    Account,
}

impl Target<'_> {
    fn not_found(self) -> Error {
        match self {
            Target::User(id) => Error::NotFound {
                kind: TargetKind::User,
                id: id.to_owned(),
            },
            Target::Meeting(id) => Error::NotFound {
                kind: TargetKind::Meeting,
                id: id.to_string(),
            },
            Target::Account => Error::Internal("zoom answered 404 for an account call".into()),
        }
    }
}

pub(super) struct Upstream {
    zoom: ZoomClient,
    tokens: TokenCache,
    accounts: LiveAccounts,
    quota: Quota,
    metrics: Arc<Metrics>,
}

/// Where one call goes and what it is about.
#[derive(Clone, Copy)]
struct Aim<'a> {
    account: &'a Account,
    target: Target<'a>,
    host: Option<&'a str>,
}

/// How one try of a call ended, when it did not succeed.
enum Failed {
    /// Zoom said 429; the budget is paused for `wait`.
    Throttled { error: Error, wait: Duration },
    /// No answer, a 5xx or a timeout: Zoom may be down; an idempotent call may try again.
    Transient(Error),
    /// No token: Zoom's token endpoint is down or refuses.
    NoToken(Error),
    /// Refused before it was sent: budget, daily cap, deadline.
    NotSent(Error),
    /// Zoom answered, and the answer is final.
    Answered(Error),
}

impl Upstream {
    pub(super) fn new(
        zoom: ZoomClient,
        tokens: TokenCache,
        accounts: LiveAccounts,
        quota: Quota,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            zoom,
            tokens,
            accounts,
            quota,
            metrics,
        }
    }

    pub(super) fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Sends `call` to `account` with its token, on behalf of `cx`; `host` is the Zoom user the
    /// call acts for (email when known, else id): creates and updates count against their day.
    pub(super) async fn call<C: ZoomCall>(
        &self,
        cx: &RequestContext,
        account: &AccountName,
        target: Target<'_>,
        host: Option<&str>,
        call: C,
    ) -> Result<C::Output, Error> {
        let endpoint = call.endpoint();
        cx.span.record("zoom_endpoint", endpoint.as_str());
        // No host: it is a user's email or id.
        let span = tracing::info_span!(
            "zoom",
            endpoint = endpoint.as_str(),
            category = endpoint.category().as_str(),
            account = %account,
            status = tracing::field::Empty,
        );
        async {
            let Some(config) = self.accounts.load().get(account).cloned() else {
                return Err(Error::Internal(format!(
                    "account `{account}` is no longer configured"
                )));
            };
            let user_day = match host {
                Some(host) if endpoint.counts_per_user() => {
                    let taken = self.take_user_call(account, host).await;
                    if let Err(Error::UserDailyCap { .. }) = &taken {
                        self.metrics.quota_refused(
                            account.as_str(),
                            endpoint.category().as_str(),
                            "user_daily",
                        );
                    }
                    Some(taken?)
                }
                _ => None,
            };
            let aim = Aim {
                account: &config,
                target,
                host,
            };
            let result = self.with_retries(cx, aim, user_day.as_ref(), &call).await;
            // Refused before it went out, or by Zoom's per-second limit: Zoom counted nothing.
            let unspent = matches!(
                result,
                Err(Failed::NotSent(_) | Failed::NoToken(_) | Failed::Throttled { .. })
            );
            if let (Some(day), true) = (&user_day, unspent) {
                self.quota.give_back_user_call(day).await;
            }
            result.map_err(|failed| match failed {
                Failed::Throttled { error, .. }
                | Failed::Transient(error)
                | Failed::NoToken(error)
                | Failed::NotSent(error)
                | Failed::Answered(error) => error,
            })
        }
        .instrument(span)
        .await
    }

    /// Tries `call` until it succeeds, fails for good, or its deadline leaves no time to try
    /// again.
    async fn with_retries<C: ZoomCall>(
        &self,
        cx: &RequestContext,
        aim: Aim<'_>,
        user_day: Option<&UserDay>,
        call: &C,
    ) -> Result<C::Output, Failed> {
        let endpoint = call.endpoint();
        let latest_start = cx
            .deadline
            .checked_sub(ANSWER_RESERVE)
            .unwrap_or(cx.deadline);
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(1))
            .with_max_times(MAX_RETRIES)
            .with_jitter()
            .build();
        // An earlier try got no answer: Zoom may have applied it.
        let mut maybe_applied = false;
        loop {
            let result = self.try_once(cx, aim, latest_start, call).await;
            let retry_in = match &result {
                // A 429 applied nothing, so any call may go again once the pause is over.
                Err(Failed::Throttled { wait, .. }) => backoff.next().map(|d| d.max(*wait)),
                Err(Failed::Transient(_)) if endpoint.idempotent() => backoff.next(),
                // A retried delete that finds the meeting gone was applied by an earlier try.
                Err(Failed::Answered(Error::NotFound { .. })) if maybe_applied => {
                    if let Some(done) = call.done_when_gone() {
                        return Ok(done);
                    }
                    None
                }
                Err(Failed::Answered(Error::UserDailyCap { .. })) => {
                    if let Some(day) = user_day {
                        self.quota.user_day_spent(day).await;
                    }
                    None
                }
                _ => None,
            };
            match retry_in {
                Some(delay) if Instant::now() + delay < latest_start => {
                    tracing::debug!(delay_ms = delay.as_millis() as u64, "trying zoom again");
                    // After a 429 the paused budget does the waiting.
                    if let Err(Failed::Transient(_)) = result {
                        maybe_applied = true;
                        tokio::time::sleep(delay).await;
                    }
                }
                _ => return result,
            }
        }
    }

    /// One try, through the account's circuit breaker, which learns how it went.
    async fn try_once<C: ZoomCall>(
        &self,
        cx: &RequestContext,
        aim: Aim<'_>,
        latest_start: Instant,
        call: &C,
    ) -> Result<C::Output, Failed> {
        let account = &aim.account.name;
        let pass = self.quota.pass(account).map_err(|open| {
            let category = call.endpoint().category().as_str();
            self.metrics
                .quota_refused(account.as_str(), category, "circuit_open");
            Failed::NotSent(circuit_open(account, open))
        })?;
        let result = self.send_once(cx, aim, latest_start, call).await;
        match &result {
            Ok(_) | Err(Failed::Answered(_) | Failed::Throttled { .. }) => {
                self.quota.succeeded(account);
            }
            Err(Failed::Transient(error) | Failed::NoToken(error)) => {
                self.quota.failed(account, pass, error.to_string());
            }
            Err(Failed::NotSent(_)) => self.quota.check_abandoned(account, pass),
        }
        result
    }

    /// One try: a token, a place in the budget, one exchange with Zoom.
    async fn send_once<C: ZoomCall>(
        &self,
        cx: &RequestContext,
        aim: Aim<'_>,
        latest_start: Instant,
        call: &C,
    ) -> Result<C::Output, Failed> {
        let account = aim.account;
        let endpoint = call.endpoint();
        let category = endpoint.category();
        if Instant::now() >= latest_start {
            return Err(Failed::NotSent(Error::DeadlineExceeded {
                sent: cx.change_sent(),
            }));
        }
        let (zoom, quota, metrics) = (&self.zoom, &self.quota, &self.metrics);
        let name = account.name.as_str();
        let answer = self
            .tokens
            .call(&account.name, |token| async move {
                let asked = std::time::Instant::now();
                if let Err(refusal) = quota
                    .admit(account, category, &cx.caller, latest_start)
                    .await
                {
                    metrics.quota_refused(name, category.as_str(), refusal.reason());
                    return Ok(Err(refusal));
                }
                metrics.quota_admitted(name, category.as_str(), asked.elapsed());
                // Only now may Zoom apply a change: a token or a place that never came sends
                // nothing.
                if endpoint.mutates() {
                    cx.note_change_sent();
                }
                let sent = std::time::Instant::now();
                let answer = call.send(zoom, &token).await;
                let status = answer.as_ref().map_or_else(ZoomError::status, |_| "ok");
                tracing::Span::current().record("status", status);
                metrics.zoom_call(name, endpoint.as_str(), status, sent.elapsed());
                answer.map(Ok)
            })
            .await;
        match answer {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(refusal)) => Err(Failed::NotSent(refused(account, category, refusal))),
            Err(error) => Err(self.failed(aim, category, error)),
        }
    }

    /// Counts a create or update against its host's 100 of the day, in the store. The day is
    /// Zoom's: a gateway that has not heard from Zoom yet (just started) learns its clock from
    /// the token exchange first.
    async fn take_user_call(&self, account: &AccountName, host: &str) -> Result<UserDay, Error> {
        if let Err(error) = self.tokens.token(account).await {
            return Err(self.no_token(account, error));
        }
        self.quota
            .take_user_call(account, host)
            .await
            .map_err(|error| match error {
                UserCapError::Spent { retry_after } => Error::UserDailyCap {
                    account: account.clone(),
                    user: host.to_owned(),
                    cap: USER_DAILY_CAP,
                    retry_after,
                },
                UserCapError::Store(error) => Error::StoreUnavailable(format!(
                    "counting the user's calls of the day: {error}"
                )),
            })
    }

    /// No token for `account`: Zoom's token endpoint is down or refuses.
    fn no_token(&self, account: &AccountName, error: TokenError) -> Error {
        let retry_after = match &error {
            TokenError::CoolingDown { retry_after } => Some(*retry_after),
            // A failed token fetch starts a cooldown: tell the caller when to come back.
            _ => self.tokens.cooldown_left(account),
        };
        Error::ZoomUnavailable {
            account: account.clone(),
            detail: format!("token: {error}"),
            retry_after,
            sent: false,
        }
    }

    fn failed(&self, aim: Aim<'_>, category: RateCategory, error: CallError) -> Failed {
        let Aim {
            account,
            target,
            host,
        } = aim;
        let name = account.name.clone();
        match error {
            CallError::Token(error) => Failed::NoToken(self.no_token(&name, error)),
            CallError::Zoom(ZoomError::RateLimited { retry_after, hit }) => {
                let wait = match hit {
                    LimitHit::UserDaily => {
                        let left = self.quota.today().left;
                        return Failed::Answered(Error::UserDailyCap {
                            account: name,
                            user: host.unwrap_or_default().to_owned(),
                            cap: USER_DAILY_CAP,
                            retry_after: retry_after.unwrap_or(left),
                        });
                    }
                    LimitHit::Daily => retry_after.unwrap_or(self.quota.today().left),
                    LimitHit::PerSecond { limit } => {
                        if let Some(limit) = limit {
                            self.quota.zoom_says_limit(account, category, limit);
                        }
                        retry_after.unwrap_or(DEFAULT_PAUSE)
                    }
                };
                self.quota.zoom_limited(account, category, wait);
                Failed::Throttled {
                    error: Error::RateLimited {
                        account: name,
                        retry_after: Some(wait),
                    },
                    wait,
                }
            }
            CallError::Zoom(error) => match error {
                ZoomError::NotFound { .. } => Failed::Answered(target.not_found()),
                ZoomError::MissingScope { message } => Failed::Answered(Error::MissingScope {
                    account: name,
                    detail: message,
                }),
                ZoomError::Timeout => Failed::Transient(Error::ZoomTimeout { account: name }),
                ZoomError::Rejected {
                    status,
                    code,
                    message,
                } => Failed::Answered(Error::ZoomRefused {
                    account: name,
                    status,
                    code,
                    message,
                }),
                ZoomError::InvalidInput(reason) => Failed::Answered(Error::Internal(format!(
                    "request not sent to zoom: {reason}"
                ))),
                ZoomError::BadRequest {
                    code,
                    message,
                    errors,
                } => Failed::Answered(Error::ZoomRejected {
                    account: name,
                    code: code.unwrap_or_default(),
                    message,
                    fields: errors.into_iter().map(|error| error.field).collect(),
                }),
                other => Failed::Transient(Error::ZoomUnavailable {
                    account: name,
                    detail: other.to_string(),
                    retry_after: None,
                    sent: true,
                }),
            },
        }
    }
}

fn refused(account: &Account, category: RateCategory, refusal: Refusal) -> Error {
    match refusal {
        Refusal::Exhausted { retry_after, daily } => Error::BudgetExhausted {
            account: account.name.clone(),
            category,
            daily,
            retry_after,
        },
        Refusal::Draining => Error::ShuttingDown,
        Refusal::Unavailable => Error::StoreUnavailable(format!(
            "reserving a place in the shared zoom budget of account {}",
            account.name
        )),
    }
}

/// What a call into `account` meets while its circuit is open.
pub(super) fn circuit_open(account: &AccountName, open: Open) -> Error {
    Error::ZoomUnavailable {
        account: account.clone(),
        detail: format!("circuit open: {}", open.last_failure),
        retry_after: Some(open.retry_after),
        sent: false,
    }
}

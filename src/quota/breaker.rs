//! The circuit breaker of one account: after a run of failed calls, calls fail fast instead of
//! piling onto a Zoom (or a token endpoint) that is down, and a single call at a time checks
//! whether it is back.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Consecutive failed tries that open the circuit: enough that Zoom failing one try in three
/// at random almost never opens it (0.3^10 is about 6 in a million), few enough that a Zoom
/// that is down stops a storm of retries within a fraction of a second.
const FAILURES_TO_OPEN: u32 = 10;
/// How long an open circuit fails calls fast before it lets one through to check: short, since
/// that one call is all it costs Zoom, and a recovered account should serve again at once.
const OPEN_FOR: Duration = Duration::from_millis(500);
/// Shortest wait a fast failure names: a retry sooner would fail again.
const MIN_RETRY_AFTER: Duration = Duration::from_millis(50);
/// A check that has not reported back by then is taken as lost, and another may go.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// What the breaker lets a call do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// The circuit is closed: go.
    Go,
    /// The circuit was open: this call checks whether the account is back.
    Check,
}

/// The circuit is open: calls fail fast until `retry_after` has passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    pub retry_after: Duration,
    /// What the last failed call met, for logs and the caller's message.
    pub last_failure: String,
}

/// The circuit's state, for the Admin API and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open {
        retry_after: Duration,
    },
    /// Open, and one call is checking.
    Checking,
}

impl CircuitState {
    /// Every state's name, in [`CircuitState::as_str`]'s words.
    pub const NAMES: [&'static str; 3] = ["closed", "open", "checking"];

    pub fn as_str(&self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open { .. } => "open",
            CircuitState::Checking => "checking",
        }
    }
}

#[derive(Default)]
pub(super) struct Breaker {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    failures: u32,
    /// Set while open: when the next check may go.
    open_until: Option<Instant>,
    /// A check is out since then.
    checking_since: Option<Instant>,
    last_failure: String,
}

impl Breaker {
    /// Lets a call go, makes it the check of an open circuit, or fails it fast.
    pub(super) fn pass(&self) -> Result<Pass, Open> {
        let mut state = self.lock();
        if state.open_until.is_none() {
            return Ok(Pass::Go);
        }
        let now = Instant::now();
        if let Some(open) = state.open_at(now) {
            return Err(open);
        }
        state.checking_since = Some(now);
        Ok(Pass::Check)
    }

    /// The fast failure a call would meet now, without making it the check.
    pub(super) fn open_now(&self) -> Option<Open> {
        self.lock().open_at(Instant::now())
    }

    /// A call reached Zoom and got an answer (any answer: a 404 or a 429 shows Zoom is up).
    pub(super) fn succeeded(&self) {
        let mut state = self.lock();
        if state.open_until.is_some() {
            tracing::info!("zoom answers again, circuit closed");
        }
        *state = State::default();
    }

    /// A call failed for want of Zoom: no answer, a 5xx, or no token.
    pub(super) fn failed(&self, pass: Pass, failure: String) {
        let mut state = self.lock();
        state.failures = state.failures.saturating_add(1);
        state.last_failure = failure;
        let reopen = pass == Pass::Check
            || (state.open_until.is_none() && state.failures >= FAILURES_TO_OPEN);
        if reopen {
            if state.open_until.is_none() {
                tracing::warn!(
                    failures = state.failures,
                    last_failure = %state.last_failure,
                    "zoom keeps failing, circuit open"
                );
            }
            state.open_until = Some(Instant::now() + OPEN_FOR);
            state.checking_since = None;
        }
    }

    /// A check ended without telling (the call was refused before it was sent): let another go.
    pub(super) fn check_abandoned(&self, pass: Pass) {
        if pass == Pass::Check {
            self.lock().checking_since = None;
        }
    }

    pub(super) fn state(&self) -> CircuitState {
        let state = self.lock();
        match (state.open_until, state.checking_since) {
            (None, _) => CircuitState::Closed,
            (Some(_), Some(_)) => CircuitState::Checking,
            (Some(until), None) => CircuitState::Open {
                retry_after: until.saturating_duration_since(Instant::now()),
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Open, and not (or no longer) the turn of a check.
    fn open_at(&self, now: Instant) -> Option<Open> {
        let open_until = self.open_until?;
        let check_out = self
            .checking_since
            .is_some_and(|since| now < since + CHECK_TIMEOUT);
        (now < open_until || check_out).then(|| Open {
            retry_after: open_until
                .saturating_duration_since(now)
                .max(MIN_RETRY_AFTER),
            last_failure: self.last_failure.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(breaker: &Breaker, times: u32) {
        for _ in 0..times {
            let pass = breaker.pass().expect("lets the call go");
            breaker.failed(pass, "zoom answered 503".into());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_a_run_of_failures_and_one_check_closes_it() {
        let breaker = Breaker::default();
        fail(&breaker, FAILURES_TO_OPEN - 1);
        breaker.succeeded();
        fail(&breaker, FAILURES_TO_OPEN - 1);
        assert_eq!(
            breaker.state(),
            CircuitState::Closed,
            "a success ends the run"
        );
        fail(&breaker, 1);

        let open = breaker.pass().unwrap_err();
        assert_eq!(open.retry_after, OPEN_FOR);
        assert_eq!(open.last_failure, "zoom answered 503");

        tokio::time::advance(OPEN_FOR).await;
        assert_eq!(breaker.pass(), Ok(Pass::Check));
        assert!(breaker.pass().is_err(), "one check at a time");
        assert_eq!(breaker.state(), CircuitState::Checking);
        breaker.succeeded();
        assert_eq!(breaker.pass(), Ok(Pass::Go));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_check_opens_it_again_and_an_abandoned_one_lets_another_go() {
        let breaker = Breaker::default();
        fail(&breaker, FAILURES_TO_OPEN);
        tokio::time::advance(OPEN_FOR).await;
        let check = breaker.pass().unwrap();
        breaker.failed(check, "connect failed".into());
        assert!(matches!(breaker.state(), CircuitState::Open { .. }));

        tokio::time::advance(OPEN_FOR).await;
        let check = breaker.pass().unwrap();
        breaker.check_abandoned(check);
        assert_eq!(breaker.pass(), Ok(Pass::Check));
    }
}

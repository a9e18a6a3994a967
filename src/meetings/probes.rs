//! What probes have taught the gateway about each account: how long Zoom takes to answer one,
//! and whether the account is failing right now.
//!
//! Both serve one rule: an answer about a target that is not the caller's must not show whether
//! Zoom was asked. A NOT_FOUND known from the ledger or a cache is held as long as the probes it
//! saved would have taken, and becomes the failure those probes would have met while an account
//! is failing; and while an account is marked failing, real probes meet that same failure
//! without asking Zoom, so both paths answer from one source.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::accounts::{AccountName, Accounts};
use crate::error::{Error, TargetKind};

/// Assumed duration of a probe until an account's first one is measured.
const FIRST_GUESS: Duration = Duration::from_millis(100);
/// How long a failed probe marks its account as failing, unless Zoom asked for a longer wait.
const FAILURE_MEMORY: Duration = Duration::from_secs(2);
/// Longest wait a failure mark honours, whatever a `Retry-After` said.
const MAX_FAILURE_MEMORY: Duration = Duration::from_secs(3600);
/// Longest hold of one answer; well below the default request timeout.
const MAX_HOLD: Duration = Duration::from_secs(5);

pub(super) struct Probes {
    /// Fixed at start-up like the account table.
    times: HashMap<AccountName, ProbeTime>,
    /// Until when, and with which error, probes of that kind into that account fail.
    failing: DashMap<(AccountName, TargetKind), (Instant, Error)>,
}

impl Probes {
    pub(super) fn new(accounts: &Accounts) -> Self {
        Self {
            times: accounts
                .names()
                .map(|name| (name.clone(), ProbeTime::default()))
                .collect(),
            failing: DashMap::new(),
        }
    }

    /// Learns from one probe that Zoom answered (or failed to) after being asked at `asked`.
    pub(super) fn learn<T>(
        &self,
        account: &AccountName,
        kind: TargetKind,
        asked: Instant,
        answer: &Result<T, Error>,
    ) {
        match answer {
            Ok(_) | Err(Error::NotFound { .. }) => {
                if let Some(time) = self.times.get(account) {
                    time.record(asked.elapsed());
                }
                self.failing.remove(&(account.clone(), kind));
            }
            Err(error) => {
                let asked_to_wait = match error {
                    Error::RateLimited { retry_after, .. }
                    | Error::ZoomUnavailable { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let memory = asked_to_wait
                    .unwrap_or_default()
                    .clamp(FAILURE_MEMORY, MAX_FAILURE_MEMORY);
                self.failing.insert(
                    (account.clone(), kind),
                    (Instant::now() + memory, error.clone()),
                );
            }
        }
    }

    /// The failure a probe of `kind` into `account` meets now, if the account is marked failing;
    /// a wait Zoom asked for counts down.
    pub(super) fn failure(&self, account: &AccountName, kind: TargetKind) -> Option<Error> {
        let entry = self.failing.get(&(account.clone(), kind))?;
        let (until, error) = entry.value();
        let left = time_left(*until)?;
        let mut error = error.clone();
        if let Error::RateLimited { retry_after, .. } | Error::ZoomUnavailable { retry_after, .. } =
            &mut error
            && retry_after.is_some()
        {
            *retry_after = Some(left);
        }
        Some(error)
    }

    /// How long probing `accounts` would take now; accounts marked failing are not asked.
    pub(super) fn hold(&self, accounts: &[&AccountName], kind: TargetKind) -> Duration {
        let failing = |account: &AccountName| {
            self.failing
                .get(&(account.clone(), kind))
                .is_some_and(|entry| time_left(entry.0).is_some())
        };
        accounts
            .iter()
            .filter(|account| !failing(account))
            .filter_map(|account| self.times.get(*account))
            .map(ProbeTime::estimate)
            .sum::<Duration>()
            .min(MAX_HOLD)
    }
}

/// Time until `until`, if any is left.
fn time_left(until: Instant) -> Option<Duration> {
    until
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

/// A running average of one account's probe durations.
#[derive(Default)]
struct ProbeTime {
    micros: AtomicU64,
    samples: AtomicU64,
}

impl ProbeTime {
    fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let next = if self.samples.fetch_add(1, Ordering::Relaxed) == 0 {
            took
        } else {
            let average = self.micros.load(Ordering::Relaxed);
            average - average / 8 + took / 8
        };
        self.micros.store(next, Ordering::Relaxed);
    }

    fn estimate(&self) -> Duration {
        if self.samples.load(Ordering::Relaxed) == 0 {
            return FIRST_GUESS;
        }
        Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::accounts::{Account, Plan};

    fn name(n: &str) -> AccountName {
        AccountName::parse(n).unwrap()
    }

    fn probes() -> Probes {
        let account = |n: &str| Account {
            name: name(n),
            zoom_account_id: n.into(),
            client_id: n.into(),
            client_secret: SecretString::from("s"),
            plan: Plan::Pro,
        };
        Probes::new(&Accounts::new([account("fast"), account("slow")]))
    }

    fn not_found() -> Result<(), Error> {
        Err(Error::NotFound {
            kind: TargetKind::Meeting,
            id: "1".into(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_hold_adds_up_each_accounts_own_probe_time() {
        let probes = probes();
        let (fast, slow) = (name("fast"), name("slow"));
        assert_eq!(probes.hold(&[&fast], TargetKind::Meeting), FIRST_GUESS);

        let asked = Instant::now();
        tokio::time::advance(Duration::from_millis(40)).await;
        probes.learn(&fast, TargetKind::Meeting, asked, &not_found());
        let asked = Instant::now();
        tokio::time::advance(Duration::from_millis(400)).await;
        probes.learn(&slow, TargetKind::Meeting, asked, &Ok(()));

        let both = probes.hold(&[&fast, &slow], TargetKind::Meeting);
        assert_eq!(both, Duration::from_millis(440));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_account_is_remembered_and_not_counted_in_the_hold() {
        let probes = probes();
        let fast = name("fast");
        let throttled: Result<(), Error> = Err(Error::RateLimited {
            account: fast.clone(),
            retry_after: Some(Duration::from_secs(5)),
        });
        probes.learn(&fast, TargetKind::Meeting, Instant::now(), &throttled);

        tokio::time::advance(Duration::from_secs(2)).await;
        let Some(Error::RateLimited { retry_after, .. }) =
            probes.failure(&fast, TargetKind::Meeting)
        else {
            panic!("the account is marked failing");
        };
        assert_eq!(
            retry_after,
            Some(Duration::from_secs(3)),
            "the wait counts down"
        );
        assert!(
            probes.failure(&fast, TargetKind::User).is_none(),
            "per kind"
        );
        assert_eq!(probes.hold(&[&fast], TargetKind::Meeting), Duration::ZERO);

        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(probes.failure(&fast, TargetKind::Meeting).is_none());
    }

    #[test]
    fn an_absurd_retry_after_is_clamped() {
        let probes = probes();
        let fast = name("fast");
        let forever: Result<(), Error> = Err(Error::ZoomUnavailable {
            account: fast.clone(),
            detail: "cooling".into(),
            retry_after: Some(Duration::MAX),
            sent: false,
        });
        probes.learn(&fast, TargetKind::User, Instant::now(), &forever);
        assert!(probes.failure(&fast, TargetKind::User).is_some());
    }
}

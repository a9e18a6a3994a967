//! What probes have taught the gateway about each account: how long Zoom took to answer its
//! recent ones, per kind of lookup, and whether the account is failing right now.
//!
//! Both serve one rule: an answer about a target that is not the caller's must not show whether
//! Zoom was asked. A NOT_FOUND known from the ledger or a cache is held as long as the probes it
//! saved would have taken, and becomes the failure those probes would have met while an account
//! is failing; and while an account is marked failing, real probes meet that same failure
//! without asking Zoom, so both paths answer from one source.
//!
//! A hold is not an average: Zoom's latency often has clusters (a pooled connection, a new TLS
//! handshake), and answers all held for the mean would stand apart from real ones. Each saved
//! probe is held for one of its account's recent probe times, drawn at random, so held answers
//! spread as real ones do.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use dashmap::DashMap;
use rand::Rng;
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
/// How many of the latest probe times of an account and kind a hold is drawn from: enough to
/// show each cluster of Zoom's latency, few enough to follow it when it shifts.
const RECENT_PROBES: usize = 64;

pub(super) struct Probes {
    /// Per account; an account added by a reload starts with none.
    times: DashMap<AccountName, AccountProbeTimes>,
    /// Until when, and with which error, probes of that kind into that account fail.
    failing: DashMap<(AccountName, TargetKind), (Instant, Error)>,
}

impl Probes {
    pub(super) fn new(accounts: &Accounts) -> Self {
        Self {
            times: accounts
                .names()
                .map(|name| (name.clone(), AccountProbeTimes::default()))
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
                self.times
                    .entry(account.clone())
                    .or_default()
                    .of(kind)
                    .record(asked.elapsed());
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

    /// How long probing `accounts` would take now: for each, one of its recent probe times of
    /// `kind`, drawn at random. Accounts marked failing are not asked.
    pub(super) fn hold(&self, accounts: &[&AccountName], kind: TargetKind) -> Duration {
        let failing = |account: &AccountName| {
            self.failing
                .get(&(account.clone(), kind))
                .is_some_and(|entry| time_left(entry.0).is_some())
        };
        accounts
            .iter()
            .filter(|account| !failing(account))
            .map(|account| match self.times.get(*account) {
                Some(times) => times.of(kind).draw(),
                None => AccountProbeTimes::default().of(kind).draw(),
            })
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

/// One account's recent probe times, per kind of lookup: finding a user and finding a meeting
/// are different calls and need not take as long.
#[derive(Default)]
struct AccountProbeTimes {
    meeting: ProbeTimes,
    user: ProbeTimes,
}

impl AccountProbeTimes {
    fn of(&self, kind: TargetKind) -> &ProbeTimes {
        match kind {
            TargetKind::Meeting => &self.meeting,
            TargetKind::User => &self.user,
        }
    }
}

/// The latest [`RECENT_PROBES`] durations of one account's probes of one kind, in a ring.
#[derive(Default)]
struct ProbeTimes {
    recent: Mutex<Ring>,
}

struct Ring {
    took: [Duration; RECENT_PROBES],
    /// How many slots hold a measured time.
    len: usize,
    /// The slot the next time overwrites: the oldest one once the ring is full.
    next: usize,
}

impl Default for Ring {
    fn default() -> Self {
        Self {
            took: [Duration::ZERO; RECENT_PROBES],
            len: 0,
            next: 0,
        }
    }
}

impl ProbeTimes {
    fn record(&self, took: Duration) {
        let mut ring = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let next = ring.next;
        ring.took[next] = took;
        ring.next = (next + 1) % RECENT_PROBES;
        ring.len = (ring.len + 1).min(RECENT_PROBES);
    }

    /// One of the recent times, each as likely; [`FIRST_GUESS`] until one is measured.
    fn draw(&self) -> Duration {
        let ring = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len == 0 {
            return FIRST_GUESS;
        }
        ring.took[rand::rng().random_range(0..ring.len)]
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
            budget: Default::default(),
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
        assert_eq!(
            probes.hold(&[&fast], TargetKind::User),
            FIRST_GUESS,
            "per kind"
        );
    }

    /// Learns one probe of `account` that took `took`.
    async fn probe_taking(probes: &Probes, account: &AccountName, took: Duration) {
        let asked = Instant::now();
        tokio::time::advance(took).await;
        probes.learn(account, TargetKind::User, asked, &not_found());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_is_one_of_the_recent_probe_times_not_their_mean() {
        let probes = probes();
        let fast = name("fast");
        let (pooled, handshake) = (Duration::from_millis(5), Duration::from_millis(80));
        for took in [pooled, handshake, pooled] {
            probe_taking(&probes, &fast, took).await;
        }

        let holds: Vec<Duration> = (0..200)
            .map(|_| probes.hold(&[&fast], TargetKind::User))
            .collect();

        assert!(
            holds.iter().all(|hold| [pooled, handshake].contains(hold)),
            "{holds:?}"
        );
        // One value in 200 draws has a chance below 2^-100.
        assert!(holds.contains(&pooled) && holds.contains(&handshake));
    }

    #[tokio::test(start_paused = true)]
    async fn old_probe_times_are_forgotten() {
        let probes = probes();
        let fast = name("fast");
        probe_taking(&probes, &fast, Duration::from_millis(5)).await;
        for _ in 0..RECENT_PROBES {
            probe_taking(&probes, &fast, Duration::from_millis(80)).await;
        }

        for _ in 0..50 {
            assert_eq!(
                probes.hold(&[&fast], TargetKind::User),
                Duration::from_millis(80)
            );
        }
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

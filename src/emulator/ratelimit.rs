//! Zoom's rate limits: per account by plan and endpoint label, and per host user per UTC day.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::Serialize;

use crate::accounts::Plan;

/// Meeting creates plus updates one host user may make per UTC day.
pub const USER_DAILY_LIMIT: u32 = 100;

/// The rate-limit label Zoom gives each endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    Light,
    Medium,
    Heavy,
}

impl Label {
    const ALL: [Label; 3] = [Label::Light, Label::Medium, Label::Heavy];

    /// The value of `X-RateLimit-Category`.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Light => "Light",
            Label::Medium => "Medium",
            Label::Heavy => "Heavy",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Requests per second per label, and the daily caps (free plan; Heavy on paid plans).
fn limits(plan: Plan) -> ([u32; 3], [Option<u64>; 3]) {
    match plan {
        Plan::Free => ([4, 2, 1], [Some(6_000), Some(2_000), Some(1_000)]),
        Plan::Pro => ([30, 20, 10], [None, None, Some(30_000)]),
        Plan::Business => ([80, 60, 40], [None, None, Some(60_000)]),
    }
}

/// What the limiter decided about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted; `remaining` is left in this second's window.
    Allowed { limit: u32, remaining: u32 },
    /// The per-second limit of the label is spent.
    PerSecond { limit: u32 },
    /// The daily cap of the label is spent until `reset_at`.
    Daily { limit: u64, reset_at: DateTime<Utc> },
}

/// The per-user daily cap is spent until `reset_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserLimitExceeded {
    pub reset_at: DateTime<Utc>,
}

/// Counters as tests read them, for the current second and UTC day of the emulator clock.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RateLimitCounters {
    /// Admitted requests per label in the current second.
    pub per_second: BTreeMap<String, u32>,
    /// Admitted requests per label in the current UTC day.
    pub daily: BTreeMap<String, u64>,
    /// Admitted meeting creates + updates per host user id in the current UTC day.
    pub user_daily: BTreeMap<String, u32>,
}

/// One account's limiter. A blocking mutex: nothing awaits while it is held.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: [u32; 3],
    daily: [Option<u64>; 3],
    window: Mutex<Window>,
    /// Since start: requests let through, and requests answered 429 (any limit).
    admitted: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Window {
    second: i64,
    second_counts: [u32; 3],
    day: i64,
    daily_counts: [u64; 3],
    /// Host user id -> (UTC day number, creates + updates that day).
    users: HashMap<String, (i64, u32)>,
}

impl Window {
    fn roll(&mut self, now: DateTime<Utc>) {
        let second = now.timestamp();
        if second != self.second {
            self.second = second;
            self.second_counts = [0; 3];
        }
        let day = day_number(now);
        if day != self.day {
            self.day = day;
            self.daily_counts = [0; 3];
        }
    }
}

fn day_number(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(86_400)
}

/// The next 00:00 UTC after `now`.
pub fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    (now.date_naive() + Duration::days(1))
        .and_time(NaiveTime::MIN)
        .and_utc()
}

impl RateLimiter {
    pub fn new(plan: Plan) -> Self {
        let (per_second, daily) = limits(plan);
        Self {
            per_second,
            daily,
            window: Mutex::new(Window::default()),
            admitted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// (let through, answered 429) since start.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.admitted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }

    /// Counts a 429 this limiter did not decide itself (the `force_429` fault).
    pub fn count_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Admits one request of `label` at `now`, counting it only if admitted.
    pub fn admit(&self, label: Label, now: DateTime<Utc>) -> Verdict {
        let i = label.index();
        let limit = self.per_second[i];
        let mut window = self.lock();
        window.roll(now);
        if let Some(cap) = self.daily[i]
            && window.daily_counts[i] >= cap
        {
            self.count_refused();
            return Verdict::Daily {
                limit: cap,
                reset_at: next_midnight(now),
            };
        }
        if window.second_counts[i] >= limit {
            self.count_refused();
            return Verdict::PerSecond { limit };
        }
        self.admitted.fetch_add(1, Ordering::Relaxed);
        window.second_counts[i] += 1;
        window.daily_counts[i] += 1;
        Verdict::Allowed {
            limit,
            remaining: limit - window.second_counts[i],
        }
    }

    /// Counts one meeting create or update hosted by `user_id`, unless the day's 100 are spent.
    pub fn admit_user(&self, user_id: &str, now: DateTime<Utc>) -> Result<(), UserLimitExceeded> {
        let day = day_number(now);
        let mut window = self.lock();
        let entry = window.users.entry(user_id.to_owned()).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        if entry.1 >= USER_DAILY_LIMIT {
            self.count_refused();
            return Err(UserLimitExceeded {
                reset_at: next_midnight(now),
            });
        }
        entry.1 += 1;
        Ok(())
    }

    /// Reads the counters of the current second and day.
    pub fn counters(&self, now: DateTime<Utc>) -> RateLimitCounters {
        let mut window = self.lock();
        window.roll(now);
        let day = day_number(now);
        RateLimitCounters {
            per_second: Label::ALL
                .iter()
                .map(|l| (l.as_str().to_owned(), window.second_counts[l.index()]))
                .collect(),
            daily: Label::ALL
                .iter()
                .map(|l| (l.as_str().to_owned(), window.daily_counts[l.index()]))
                .collect(),
            user_daily: window
                .users
                .iter()
                .filter(|(_, (d, _))| *d == day)
                .map(|(user, (_, count))| (user.clone(), *count))
                .collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // A poisoned window only means a panic elsewhere; the counters are still usable.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid date")
            .with_timezone(&Utc)
    }

    #[test]
    fn per_second_window_resets_each_second() {
        let limiter = RateLimiter::new(Plan::Free);
        let t = at("2030-01-01T10:00:00.100Z");
        for left in (0..4).rev() {
            assert_eq!(
                limiter.admit(Label::Light, t),
                Verdict::Allowed {
                    limit: 4,
                    remaining: left
                }
            );
        }
        assert_eq!(
            limiter.admit(Label::Light, t),
            Verdict::PerSecond { limit: 4 }
        );
        assert!(matches!(
            limiter.admit(Label::Light, at("2030-01-01T10:00:01Z")),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn free_daily_cap_until_midnight() {
        let limiter = RateLimiter::new(Plan::Free);
        let mut t = at("2030-01-01T00:00:00Z");
        for _ in 0..1_000 {
            assert!(matches!(
                limiter.admit(Label::Heavy, t),
                Verdict::Allowed { .. }
            ));
            t += Duration::seconds(1);
        }
        assert_eq!(
            limiter.admit(Label::Heavy, t),
            Verdict::Daily {
                limit: 1_000,
                reset_at: at("2030-01-02T00:00:00Z")
            }
        );
        assert!(matches!(
            limiter.admit(Label::Heavy, at("2030-01-02T00:00:00Z")),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn user_cap_resets_at_utc_midnight() {
        let limiter = RateLimiter::new(Plan::Business);
        let t = at("2030-01-01T23:59:00Z");
        for _ in 0..USER_DAILY_LIMIT {
            assert!(limiter.admit_user("u1", t).is_ok());
        }
        assert!(limiter.admit_user("u1", t).is_err());
        assert!(limiter.admit_user("u2", t).is_ok());
        assert!(limiter.admit_user("u1", at("2030-01-02T00:00:01Z")).is_ok());
        let counters = limiter.counters(at("2030-01-02T00:00:02Z"));
        assert_eq!(counters.user_daily.get("u1"), Some(&1));
        assert_eq!(counters.user_daily.get("u2"), None);
    }
}

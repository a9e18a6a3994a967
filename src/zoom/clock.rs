//! Zoom's clock, as the `Date` header of its answers shows it. Zoom's daily limits reset at
//! 00:00 UTC by that clock, and a `Retry-After` date is in it, so the gateway counts days and
//! waits by it rather than by its own, which may be off.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use reqwest::header::{DATE, HeaderMap};

/// Stands for "no answer seen yet": until then Zoom's clock is taken to be ours.
const UNKNOWN: i64 = i64::MIN;
/// A `Date` is whole seconds, cut down: the true time is up to a second later. Offsets that
/// differ by less than this are the same offset seen through that rounding.
const ROUNDING_MILLIS: i64 = 1_000;

/// Cloning is shallow: every clone reads and learns the same offset.
#[derive(Clone, Debug)]
pub struct ZoomClock {
    /// Zoom's time minus ours, in milliseconds.
    offset_millis: Arc<AtomicI64>,
}

impl Default for ZoomClock {
    fn default() -> Self {
        Self {
            offset_millis: Arc::new(AtomicI64::new(UNKNOWN)),
        }
    }
}

impl ZoomClock {
    /// Zoom's current time, as far as its answers tell.
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match self.offset_millis.load(Ordering::Relaxed) {
            UNKNOWN => now,
            offset => now + chrono::Duration::milliseconds(offset),
        }
    }

    /// Learns from the `Date` header of one answer, if it has a valid one.
    pub fn observe(&self, headers: &HeaderMap) {
        let Some(date) = headers
            .get(DATE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| DateTime::parse_from_rfc2822(value).ok())
        else {
            return;
        };
        self.learn(date.with_timezone(&Utc), Utc::now());
    }

    fn learn(&self, zoom_time: DateTime<Utc>, our_time: DateTime<Utc>) {
        let seen = (zoom_time - our_time).num_milliseconds() + ROUNDING_MILLIS / 2;
        let known = self.offset_millis.load(Ordering::Relaxed);
        if known == UNKNOWN || (seen - known).abs() > ROUNDING_MILLIS {
            self.offset_millis.store(seen, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn follows_the_date_zoom_sends_and_ignores_its_rounding() {
        let clock = ZoomClock::default();
        let drift = |clock: &ZoomClock| (clock.now() - Utc::now()).num_milliseconds();
        assert!(drift(&clock).abs() < 100, "ours until zoom answers");

        let mut headers = HeaderMap::new();
        let zoom = Utc::now() + chrono::Duration::hours(7);
        headers.insert(DATE, zoom.to_rfc2822().parse().unwrap());
        clock.observe(&headers);
        let hours = drift(&clock) as f64 / 3_600_000.0;
        assert!((hours - 7.0).abs() < 0.001, "{hours}");

        headers.insert(DATE, "not a date".parse().unwrap());
        clock.observe(&headers);
        let hours = drift(&clock) as f64 / 3_600_000.0;
        assert!((hours - 7.0).abs() < 0.001, "kept: {hours}");

        let clock = ZoomClock::default();
        let offset = |clock: &ZoomClock| clock.offset_millis.load(Ordering::Relaxed);
        let ours = at("2030-01-01T00:00:00.400Z");
        clock.learn(at("2030-01-01T07:00:00Z"), ours);
        assert_eq!(offset(&clock), 25_200_100, "the middle of the second");
        clock.learn(at("2030-01-01T07:00:01Z"), ours);
        assert_eq!(offset(&clock), 25_200_100, "rounding is not a new offset");
        clock.learn(at("2030-01-01T06:00:00Z"), ours);
        assert_eq!(offset(&clock), 21_600_100, "a jump is");
    }
}

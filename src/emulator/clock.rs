//! The emulator's settable clock: real time shifted by an offset that tests can set.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Real time plus an offset, so the clock keeps ticking after it is set.
///
/// Tokens, `created_at`, the daily limits and webhook timestamps read this clock.
#[derive(Debug, Default)]
pub struct Clock {
    offset_micros: AtomicI64,
}

impl Clock {
    /// Returns the emulator's current time.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = self.offset_micros.load(Ordering::Relaxed);
        Utc::now() + chrono::Duration::microseconds(offset)
    }

    /// Makes the clock read `now` at this instant; it keeps ticking from there.
    pub fn set_now(&self, now: DateTime<Utc>) {
        let offset = (now - Utc::now()).num_microseconds().unwrap_or(i64::MAX);
        self.offset_micros.store(offset, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_now_moves_the_clock() {
        let clock = Clock::default();
        let target = DateTime::parse_from_rfc3339("2030-01-01T23:59:59Z")
            .expect("valid date")
            .with_timezone(&Utc);
        clock.set_now(target);
        let drift = clock.now() - target;
        assert!(drift >= chrono::Duration::zero() && drift < chrono::Duration::seconds(5));
    }
}

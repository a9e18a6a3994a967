//! Fault injection per account: latency (steady or for a share of requests), 5xx, connection
//! resets, token endpoint failures, 429s.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Faults injected into one account's traffic; all off by default.
///
/// `latency_ms` delays the token endpoint and `/v2`; `slow_rate`, `error_rate`, `reset_rate` and
/// `force_429` apply to `/v2` requests, `create_then_reset_rate` to meeting creates;
/// `token_endpoint_down` and `malformed_token` to `/oauth/token`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added delay before answering, in milliseconds.
    pub latency_ms: u64,
    /// Share (0.0..=1.0) of `/v2` requests delayed by `slow_latency_ms` on top of `latency_ms`:
    /// two clusters of latency, as a pooled connection and a new TLS connection give.
    pub slow_rate: f64,
    /// Extra delay of the `slow_rate` share, in milliseconds.
    pub slow_latency_ms: u64,
    /// Share (0.0..=1.0) of `/v2` requests answered with a 5xx.
    pub error_rate: f64,
    /// Share (0.0..=1.0) of `/v2` requests whose connection is reset without an answer.
    pub reset_rate: f64,
    /// Share (0.0..=1.0) of meeting creates that are applied and whose connection is then
    /// reset: the client cannot tell whether the meeting exists.
    pub create_then_reset_rate: f64,
    /// The token endpoint answers 503 for this account.
    pub token_endpoint_down: bool,
    /// The token endpoint answers 200 with a body that is not a token response.
    pub malformed_token: bool,
    /// Every `/v2` request gets Zoom's per-second 429.
    pub force_429: bool,
}

impl Faults {
    /// Keeps the rates inside 0.0..=1.0 (NaN counts as 0).
    pub fn clamped(mut self) -> Self {
        self.slow_rate = clamp_rate(self.slow_rate);
        self.error_rate = clamp_rate(self.error_rate);
        self.reset_rate = clamp_rate(self.reset_rate);
        self.create_then_reset_rate = clamp_rate(self.create_then_reset_rate);
        self
    }

    /// Whether the rates are valid shares, for rejecting bad control requests.
    pub fn rates_valid(&self) -> bool {
        [
            self.slow_rate,
            self.error_rate,
            self.reset_rate,
            self.create_then_reset_rate,
        ]
        .iter()
        .all(|rate| (0.0..=1.0).contains(rate))
    }

    /// How long to wait before answering one `/v2` request: `latency_ms`, plus
    /// `slow_latency_ms` for the `slow_rate` share.
    pub(crate) fn api_delay(&self) -> Duration {
        let slow = if roll(self.slow_rate) {
            self.slow_latency_ms
        } else {
            0
        };
        Duration::from_millis(self.latency_ms.saturating_add(slow))
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

/// Returns true with probability `rate`; exact at 0 and 1 so tests stay deterministic.
pub(crate) fn roll(rate: f64) -> bool {
    if rate <= 0.0 {
        false
    } else if rate >= 1.0 {
        true
    } else {
        rand::random::<f64>() < rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_rates_and_rolls_at_the_edges() {
        let faults = Faults {
            error_rate: 3.0,
            reset_rate: f64::NAN,
            slow_rate: -1.0,
            ..Faults::default()
        }
        .clamped();
        assert_eq!(
            (faults.error_rate, faults.reset_rate, faults.slow_rate),
            (1.0, 0.0, 0.0)
        );
        assert!(roll(1.0));
        assert!(!roll(0.0));
        assert!(
            !Faults {
                error_rate: -0.1,
                ..Faults::default()
            }
            .rates_valid()
        );
        assert!(
            !Faults {
                slow_rate: 1.5,
                ..Faults::default()
            }
            .rates_valid()
        );
    }

    #[test]
    fn the_slow_share_adds_its_latency_on_top() {
        let faults = |slow_rate| Faults {
            latency_ms: 5,
            slow_rate,
            slow_latency_ms: 75,
            ..Faults::default()
        };
        assert_eq!(faults(0.0).api_delay(), Duration::from_millis(5));
        assert_eq!(faults(1.0).api_delay(), Duration::from_millis(80));
    }
}

//! How many requests each caller has in flight, so that one caller cannot hold every task,
//! connection buffer and Zoom call of the gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

/// Requests in flight per caller name, refused beyond a limit.
pub(super) struct InFlight {
    limit: usize,
    callers: DashMap<String, Arc<AtomicUsize>>,
}

/// One admitted request; dropping it ends the request's count.
#[derive(Debug)]
pub struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            callers: DashMap::new(),
        }
    }

    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// Counts one more request of `caller`, or `None` when it already has `limit` in flight.
    pub(super) fn admit(&self, caller: &str) -> Option<Admitted> {
        let count = match self.callers.get(caller) {
            Some(count) => count.clone(),
            None => self.callers.entry(caller.to_owned()).or_default().clone(),
        };
        let admitted = count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| Admitted(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_caller_has_its_own_limit_and_gets_it_back() {
        let in_flight = InFlight::new(2);
        let a1 = in_flight.admit("a").unwrap();
        let _a2 = in_flight.admit("a").unwrap();
        assert!(in_flight.admit("a").is_none());
        assert!(
            in_flight.admit("b").is_some(),
            "another caller is not affected"
        );
        drop(a1);
        assert!(in_flight.admit("a").is_some());
    }
}

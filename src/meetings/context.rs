//! What travels with one request from the front end through the whole path: who asks, under which
//! id, until when, and the span its log lines belong to.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::policy::{Caller, Operation};

/// Longest request id taken from a client; longer ones are replaced.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// One request on its way through the gateway. Built once by the front end.
pub struct RequestContext {
    pub caller: Arc<Caller>,
    pub operation: Operation,
    pub request_id: RequestId,
    /// Every wait of the request ends by then.
    pub deadline: Instant,
    /// The request's span; spawned work enters it too.
    pub span: tracing::Span,
    /// When the front end took the request in.
    pub started: Instant,
    /// The account the request went to, once known; the front end reads it back when the
    /// request ends (see [`RequestContext::routed`]).
    account: Arc<OnceLock<String>>,
    /// A change went out to Zoom, so a request cut at its deadline may have been applied.
    change_sent: AtomicBool,
}

impl RequestContext {
    /// Starts a request of `caller` that may last `timeout`; `request_id` is the client's, taken
    /// when well-formed (see [`RequestId::from_client`]).
    pub fn new(
        caller: Arc<Caller>,
        operation: Operation,
        request_id: Option<&str>,
        timeout: Duration,
    ) -> Self {
        let request_id = RequestId::from_client(request_id);
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            caller = %caller.name,
            operation = %operation,
            account = tracing::field::Empty,
            zoom_endpoint = tracing::field::Empty,
            code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let now = Instant::now();
        Self {
            caller,
            operation,
            request_id,
            deadline: now.checked_add(timeout).unwrap_or(now),
            span,
            started: now,
            account: Arc::default(),
            change_sent: AtomicBool::new(false),
        }
    }

    /// What the front end keeps to learn, once the path is done, which account the request
    /// went to (empty if it never got that far).
    pub fn routed(&self) -> Routed {
        Routed(self.account.clone())
    }

    /// The request was resolved to `account`.
    pub(super) fn note_account(&self, account: &str) {
        if self.account.set(account.to_owned()).is_ok() {
            self.span.record("account", account);
        }
    }

    /// Notes that a change is about to reach Zoom.
    pub(super) fn note_change_sent(&self) {
        self.change_sent.store(true, Ordering::Relaxed);
    }

    /// Zoom refused the change it was sent without applying it (the user is not there).
    pub(super) fn note_change_refused(&self) {
        self.change_sent.store(false, Ordering::Relaxed);
    }

    pub(super) fn change_sent(&self) -> bool {
        self.change_sent.load(Ordering::Relaxed)
    }
}

/// The account a request went to, read by its front end after the request ended.
#[derive(Clone, Debug)]
pub struct Routed(Arc<OnceLock<String>>);

impl Routed {
    /// The account's name, or `""` when the request ended before it was routed.
    pub fn account(&self) -> &str {
        self.0.get().map_or("", String::as_str)
    }
}

/// The id of a request in logs, spans and the `x-request-id` answer header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// Takes the client's id when it is 1 to 128 characters of letters, digits and `-_.:`
    /// (enough for UUIDs, ULIDs and trace ids; nothing a log line or terminal would read as
    /// structure), else makes a new one.
    pub fn from_client(id: Option<&str>) -> Self {
        match id {
            Some(id) if is_well_formed(id) => Self(id.into()),
            _ => Self::generate(),
        }
    }

    /// 128 random bits in hex.
    pub fn generate() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_well_formed(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_is_kept_only_when_well_formed() {
        let uuid = "0b0e8f3c-5d3a-4d8e-9d2b-2f6c1a7e9b10";
        assert_eq!(RequestId::from_client(Some(uuid)).as_str(), uuid);
        for bad in ["", "has space", "new\nline", "quote\"", &"x".repeat(129)] {
            let id = RequestId::from_client(Some(bad));
            assert_ne!(id.as_str(), bad);
            assert_eq!(id.as_str().len(), 32, "generated instead of {bad:?}");
        }
        assert_ne!(RequestId::generate(), RequestId::generate());
    }
}

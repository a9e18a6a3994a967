//! Typed errors of Zoom REST calls, classified from the HTTP status and Zoom's error body.

use std::time::Duration;

use thiserror::Error;

/// One field problem from a Zoom `Validation Failed` answer (`errors[].field` / `errors[].message`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Which of Zoom's limits a 429 says was hit, from `X-RateLimit-Type` or the message (Zoom
/// does not always send the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitHit {
    /// The account's per-second limit of the category (`QPS`); also any 429 that says nothing.
    /// `limit` is Zoom's `X-RateLimit-Limit`, when it sent a usable one.
    PerSecond { limit: Option<u32> },
    /// The account's daily cap of the category (`Daily-limit`).
    Daily,
    /// The host user's 100 meeting creates and updates of the UTC day.
    UserDaily,
}

/// A failed Zoom REST call.
///
/// Messages are Zoom's own text, kept for logs; they may echo user ids or emails and must not be
/// forwarded verbatim to gateway callers. No variant ever holds a token or a secret.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ZoomError {
    /// 404 with a Zoom error code: 1001 (user does not exist) or 3001 (meeting does not exist).
    #[error("zoom: not found (code {code}): {message}")]
    NotFound { code: i64, message: String },
    /// The bearer token is invalid or expired (401, or code 124 on any status).
    #[error("zoom: invalid access token: {message}")]
    InvalidToken { message: String },
    /// The account's app lacks a scope for this call (code 4711, formerly 4700).
    #[error("zoom: token lacks a required scope: {message}")]
    MissingScope { message: String },
    /// 429: a per-second, daily or per-user limit was hit.
    #[error("zoom: rate limited, {hit:?} (retry after: {retry_after:?})")]
    RateLimited {
        /// From `Retry-After` (seconds or a date); Zoom often omits it.
        retry_after: Option<Duration>,
        hit: LimitHit,
    },
    /// 400 other than token or scope problems, e.g. code 300 `Validation Failed`.
    #[error("zoom: bad request (code {code:?}): {message}")]
    BadRequest {
        code: Option<i64>,
        message: String,
        errors: Vec<FieldError>,
    },
    /// 5xx, or the connection failed or was reset: the call may not have reached Zoom.
    #[error("zoom: unavailable ({detail})")]
    Unavailable {
        /// The HTTP status when Zoom answered, `None` for transport failures.
        status: Option<u16>,
        detail: String,
    },
    /// No complete answer within the client's request timeout.
    #[error("zoom: request timed out")]
    Timeout,
    /// A 2xx answer whose body is not the documented JSON.
    #[error("zoom: cannot decode the response: {detail}")]
    Decode { detail: String },
    /// The request was refused before it was sent, e.g. a user id that is not a single path segment.
    #[error("zoom: invalid request: {0}")]
    InvalidInput(&'static str),
    /// Any other non-2xx answer (403, 409, a 404 without a Zoom error body, ...).
    #[error("zoom: rejected with status {status} (code {code:?}): {message}")]
    Rejected {
        status: u16,
        code: Option<i64>,
        message: String,
    },
}

impl ZoomError {
    /// How the exchange ended, as a metric label and span field: one of a fixed set.
    pub fn status(&self) -> &'static str {
        match self {
            ZoomError::NotFound { .. } => "not_found",
            ZoomError::InvalidToken { .. } => "invalid_token",
            ZoomError::MissingScope { .. } => "missing_scope",
            ZoomError::RateLimited { .. } => "rate_limited",
            ZoomError::BadRequest { .. } => "bad_request",
            ZoomError::Unavailable {
                status: Some(_), ..
            } => "server_error",
            ZoomError::Unavailable { status: None, .. } => "connection_failed",
            ZoomError::Timeout => "timeout",
            ZoomError::Decode { .. } => "undecodable",
            ZoomError::InvalidInput(_) => "not_sent",
            ZoomError::Rejected { .. } => "rejected",
        }
    }
}

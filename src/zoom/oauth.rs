//! What Zoom's OAuth token endpoint gives and refuses: the bearer token and why none came.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::accounts::AccountName;

/// A Zoom bearer token. `Debug` is redacted; [`AccessToken::expose`] is the only way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        Self(token.into())
    }

    /// Returns the token text, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// A successful answer of Zoom's token endpoint.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    pub access_token: AccessToken,
    /// Lifetime Zoom granted (`expires_in`, always > 0).
    pub expires_in: Duration,
}

/// Why no token is available. Never holds the secret or a token.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    /// The account is not in the configuration.
    #[error("unknown account `{0}`")]
    UnknownAccount(AccountName),
    /// Zoom refused the credentials or the request (4xx with an OAuth error body).
    #[error("zoom rejected the token request with status {status} ({error}): {reason}")]
    Rejected {
        status: u16,
        error: String,
        reason: String,
    },
    /// The token endpoint answered, but not with a usable token.
    #[error("malformed token response: {0}")]
    Malformed(&'static str),
    /// The token endpoint failed (5xx, 429, connection error or timeout).
    #[error("zoom token endpoint unavailable: {0}")]
    Unavailable(String),
    /// Recent fetches failed; no new one is tried before `retry_after`.
    #[error("token fetch cooling down after failures, retry after {retry_after:?}")]
    CoolingDown { retry_after: Duration },
}

//! The one place every Zoom call of the gateway passes: requests and probes alike. It knows the
//! request, the account, the endpoint and the host, so admission against Zoom's budget, metrics
//! and spans per endpoint belong here and nowhere else.

use tracing::Instrument;

use super::RequestContext;
use crate::accounts::AccountName;
use crate::error::{Error, TargetKind};
use crate::token::{CallError, TokenCache};
use crate::zoom::{TokenError, ZoomCall, ZoomClient, ZoomError};

/// What a call is about, so that Zoom's 404 becomes the caller's NOT_FOUND of that target. The
/// id is only turned into text when that happens.
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    User(&'a str),
    Meeting(i64),
    /// The account itself, e.g. its user list.
    Account,
}

impl Target<'_> {
    fn not_found(self) -> Error {
        match self {
            Target::User(id) => Error::NotFound {
                kind: TargetKind::User,
                id: id.to_owned(),
            },
            Target::Meeting(id) => Error::NotFound {
                kind: TargetKind::Meeting,
                id: id.to_string(),
            },
            Target::Account => Error::Internal("zoom answered 404 for an account call".into()),
        }
    }
}

pub(super) struct Upstream {
    zoom: ZoomClient,
    tokens: TokenCache,
}

impl Upstream {
    pub(super) fn new(zoom: ZoomClient, tokens: TokenCache) -> Self {
        Self { zoom, tokens }
    }

    /// Sends `call` to `account` with its token, on behalf of `cx`; `host` is the Zoom user the
    /// call acts for, when known. A call past the request's deadline is not sent.
    pub(super) async fn call<C: ZoomCall>(
        &self,
        cx: &RequestContext,
        account: &AccountName,
        target: Target<'_>,
        host: Option<&str>,
        call: C,
    ) -> Result<C::Output, Error> {
        let endpoint = call.endpoint();
        if tokio::time::Instant::now() >= cx.deadline {
            return Err(Error::DeadlineExceeded {
                sent: cx.change_sent(),
            });
        }
        let span = tracing::debug_span!(
            "zoom",
            endpoint = endpoint.as_str(),
            category = endpoint.category().as_str(),
            account = %account,
            host,
        );
        let zoom = &self.zoom;
        let call = &call;
        self.tokens
            .call(account, |token| async move {
                // Only now may Zoom apply a change: a token that never came sends nothing.
                if endpoint.mutates() {
                    cx.note_change_sent();
                }
                call.send(zoom, &token).await
            })
            .instrument(span)
            .await
            .map_err(|error| {
                let mut error = map_call_error(account, target, error);
                // A failed token fetch starts a cooldown: tell the caller when to come back.
                if let Error::ZoomUnavailable { retry_after, .. } = &mut error
                    && retry_after.is_none()
                {
                    *retry_after = self.tokens.cooldown_left(account);
                }
                error
            })
    }
}

fn map_call_error(account: &AccountName, target: Target<'_>, error: CallError) -> Error {
    let account = account.clone();
    match error {
        CallError::Token(error) => {
            let retry_after = match &error {
                TokenError::CoolingDown { retry_after } => Some(*retry_after),
                _ => None,
            };
            Error::ZoomUnavailable {
                account,
                detail: format!("token: {error}"),
                retry_after,
                sent: false,
            }
        }
        CallError::Zoom(error) => match error {
            ZoomError::NotFound { .. } => target.not_found(),
            ZoomError::RateLimited { retry_after } => Error::RateLimited {
                account,
                retry_after,
            },
            ZoomError::MissingScope { message } => Error::MissingScope {
                account,
                detail: message,
            },
            ZoomError::Timeout => Error::ZoomTimeout { account },
            ZoomError::Rejected {
                status,
                code,
                message,
            } => Error::ZoomRefused {
                account,
                status,
                code,
                message,
            },
            ZoomError::InvalidInput(reason) => {
                Error::Internal(format!("request not sent to zoom: {reason}"))
            }
            ZoomError::BadRequest {
                code,
                message,
                errors,
            } => Error::ZoomRejected {
                account,
                code: code.unwrap_or_default(),
                message,
                fields: errors.into_iter().map(|error| error.field).collect(),
            },
            other => Error::ZoomUnavailable {
                account,
                detail: other.to_string(),
                retry_after: None,
                sent: true,
            },
        },
    }
}

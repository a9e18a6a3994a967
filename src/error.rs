//! The error of the request path. [`crate::grpc`] turns it into a `Status`, in one place.

use std::time::Duration;

use crate::accounts::AccountName;
use crate::policy::{AdminRole, Operation};
use crate::zoom::RateCategory;

/// One invalid field of a request, reported as a `google.rpc.BadRequest` field violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, e.g. `meeting.duration_minutes`.
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// What went wrong with a request. Display is for logs: it may name Zoom's own message, which
/// never reaches the caller (see [`Error::public_message`]).
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("caller is not authenticated")]
    Unauthenticated,
    /// The target does not exist, or exists where the caller has no grant: the two are never
    /// told apart.
    #[error("{kind} {id} not found")]
    NotFound { kind: TargetKind, id: String },
    /// The caller may see the target but not do this operation on it.
    #[error("caller `{caller}` may not {operation} {kind} {id}")]
    PermissionDenied {
        caller: String,
        operation: Operation,
        kind: TargetKind,
        id: String,
    },
    #[error("zoom rate limit reached in account `{account}`")]
    RateLimited {
        account: AccountName,
        retry_after: Option<Duration>,
    },
    /// The gateway's own admission: the call could not go within its deadline without
    /// spending more of the account's Zoom budget than Zoom allows. Nothing was sent.
    #[error("{} zoom budget of account `{account}` is spent for now", budget_name(*.category, *.daily))]
    BudgetExhausted {
        account: AccountName,
        category: RateCategory,
        /// The day's cap, not the per-second pace.
        daily: bool,
        retry_after: Duration,
    },
    /// The host user's 100 meeting creates and updates of the UTC day are spent.
    #[error("user `{user}` has made its {cap} meeting creates and updates of the day (UTC)")]
    UserDailyCap {
        account: AccountName,
        user: String,
        cap: u32,
        retry_after: Duration,
    },
    /// A create went out to Zoom and its answer was lost: Zoom may have made the meeting.
    #[error("the outcome of the create is unknown: {cause}")]
    CreateOutcomeUnknown {
        /// The create carried a `request_id`: a retry with it finds the meeting if it exists.
        with_request_id: bool,
        cause: Box<Error>,
    },
    /// Another try of a create with the same `request_id` is still running.
    #[error("a create with this request_id is still running")]
    CreateInProgress { retry_after: Duration },
    /// The gateway is shutting down and the request could not be served before it stops.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("zoom failed for account `{account}`: {detail}")]
    ZoomUnavailable {
        account: AccountName,
        detail: String,
        retry_after: Option<Duration>,
        /// The request went out to Zoom (not a token failure), so a change may have been applied.
        sent: bool,
    },
    #[error("zoom did not answer in time for account `{account}`")]
    ZoomTimeout { account: AccountName },
    /// The request's deadline (the client's, capped by `request_timeout_secs`) passed.
    #[error("the request's deadline passed before it finished")]
    DeadlineExceeded {
        /// A change had gone out to Zoom, so it may have been applied.
        sent: bool,
    },
    #[error("account `{account}` lacks a zoom scope: {detail}")]
    MissingScope {
        account: AccountName,
        detail: String,
    },
    #[error("zoom rejected the request in account `{account}` (code {code}): {message}")]
    ZoomRejected {
        account: AccountName,
        code: i64,
        message: String,
        fields: Vec<String>,
    },
    /// Zoom refused for a reason a retry will not change (403, 409, ...).
    #[error(
        "zoom refused the request in account `{account}` (status {status}, code {code:?}): {message}"
    )]
    ZoomRefused {
        account: AccountName,
        status: u16,
        code: Option<i64>,
        message: String,
    },
    /// The caller already has as many requests in flight as it may.
    #[error("caller `{caller}` has {limit} requests in flight, the most it may")]
    TooManyRequests { caller: String, limit: usize },
    /// The store refused a read or the intent of a change: nothing reached Zoom.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// Zoom applied the change, and its outcome is not durable yet: the gateway keeps it and
    /// writes it when the store recovers. The caller must not repeat the change.
    #[error("{operation} applied in zoom, its record is not written yet")]
    NotRecorded {
        operation: Operation,
        meeting_id: Option<i64>,
    },
    /// An Admin API call by a caller without the role it needs.
    #[error("caller `{caller}` needs the admin role `{needed}`")]
    AdminDenied { caller: String, needed: AdminRole },
    /// An Admin API call named an account, caller or route that does not exist.
    #[error("{kind} `{name}` not found")]
    AdminNotFound { kind: AdminObject, name: String },
    /// A route was put to an account where Zoom does not know the user.
    #[error("user `{email}` does not exist in account `{account}`")]
    UserNotInAccount { email: String, account: AccountName },
    #[error("internal error: {0}")]
    Internal(String),
}

/// What an Admin API call names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminObject {
    Account,
    Caller,
    Route,
    SyncReport,
}

impl std::fmt::Display for AdminObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdminObject::Account => "account",
            AdminObject::Caller => "caller",
            AdminObject::Route => "route of user",
            AdminObject::SyncReport => "directory sync report",
        })
    }
}

/// What a request was about, for messages and `ErrorInfo` reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetKind {
    Meeting,
    User,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::Meeting => "meeting",
            TargetKind::User => "user",
        })
    }
}

fn budget_name(category: RateCategory, daily: bool) -> String {
    let per = if daily { "daily" } else { "per-second" };
    format!("the {per} {}", category.as_str())
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// Returns the message a caller may see: no Zoom bodies, URLs, tokens or secrets.
    pub fn public_message(&self) -> String {
        match self {
            Error::InvalidArgument(_)
            | Error::Unauthenticated
            | Error::NotFound { .. }
            | Error::PermissionDenied { .. }
            | Error::RateLimited { .. }
            | Error::BudgetExhausted { .. }
            | Error::UserDailyCap { .. }
            | Error::ShuttingDown
            | Error::CreateInProgress { .. }
            | Error::TooManyRequests { .. }
            | Error::ZoomTimeout { .. }
            | Error::DeadlineExceeded { .. }
            | Error::AdminDenied { .. }
            | Error::AdminNotFound { .. } => self.to_string(),
            Error::UserNotInAccount { .. } => {
                format!("{self}; check the account, or put the route with force")
            }
            Error::CreateOutcomeUnknown {
                with_request_id: true,
                ..
            } => "zoom may have created the meeting, and its answer was lost; a retry with the \
                  same request_id finds that meeting instead of creating another"
                .to_owned(),
            Error::CreateOutcomeUnknown { .. } => {
                "zoom may have created the meeting, and its answer was lost; look for it among \
                 the host's meetings before creating it again, or send creates with a request_id"
                    .to_owned()
            }
            Error::ZoomUnavailable { account, .. } => {
                format!("zoom is unavailable for account `{account}`")
            }
            Error::MissingScope { account, .. } => {
                format!("the zoom app of account `{account}` lacks a scope this operation needs")
            }
            Error::ZoomRejected { account, code, .. } => {
                format!("zoom rejected the request in account `{account}` (zoom code {code})")
            }
            Error::ZoomRefused {
                account, status, ..
            } => {
                format!("zoom refused the request in account `{account}` (HTTP {status})")
            }
            Error::StoreUnavailable(_) => {
                "the gateway's store is unavailable; nothing was sent to zoom".to_owned()
            }
            Error::NotRecorded {
                operation,
                meeting_id,
            } => {
                let meeting = meeting_id.map_or_else(String::new, |id| format!(" of meeting {id}"));
                format!(
                    "the {operation}{meeting} was applied in zoom, but the gateway could not \
                     record it yet; it will be recorded when its store recovers: do not repeat it"
                )
            }
            Error::Internal(_) => "internal error".to_owned(),
        }
    }

    /// Whether a change that failed this way may still have been applied by Zoom: the request
    /// went out and no clear answer came back (timeout, reset, 5xx, an undecodable 2xx).
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Error::ZoomTimeout { .. }
                | Error::ZoomUnavailable { sent: true, .. }
                | Error::DeadlineExceeded { sent: true }
                | Error::CreateOutcomeUnknown { .. }
        )
    }

    /// Machine-readable reason for `google.rpc.ErrorInfo`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::Unauthenticated => "UNAUTHENTICATED",
            Error::NotFound {
                kind: TargetKind::Meeting,
                ..
            } => "MEETING_NOT_FOUND",
            Error::NotFound {
                kind: TargetKind::User,
                ..
            } => "USER_NOT_FOUND",
            Error::PermissionDenied { .. } => "OPERATION_NOT_GRANTED",
            Error::RateLimited { .. } => "ZOOM_RATE_LIMITED",
            Error::BudgetExhausted { .. } => "ZOOM_BUDGET_EXHAUSTED",
            Error::UserDailyCap { .. } => "USER_DAILY_CAP_REACHED",
            Error::ShuttingDown => "SHUTTING_DOWN",
            Error::CreateOutcomeUnknown { .. } => "CREATE_OUTCOME_UNKNOWN",
            Error::CreateInProgress { .. } => "CREATE_IN_PROGRESS",
            Error::ZoomUnavailable { .. } => "ZOOM_UNAVAILABLE",
            Error::ZoomTimeout { .. } => "ZOOM_TIMEOUT",
            Error::DeadlineExceeded { .. } => "DEADLINE_EXCEEDED",
            Error::MissingScope { .. } => "ZOOM_SCOPE_MISSING",
            Error::ZoomRejected { .. } => "ZOOM_REJECTED",
            Error::ZoomRefused { .. } => "ZOOM_REFUSED",
            Error::TooManyRequests { .. } => "TOO_MANY_REQUESTS_IN_FLIGHT",
            Error::StoreUnavailable(_) => "STORE_UNAVAILABLE",
            Error::NotRecorded { .. } => "CHANGE_NOT_RECORDED",
            Error::AdminDenied { .. } => "ADMIN_ROLE_REQUIRED",
            Error::AdminNotFound {
                kind: AdminObject::Account,
                ..
            } => "ACCOUNT_NOT_FOUND",
            Error::AdminNotFound {
                kind: AdminObject::Caller,
                ..
            } => "CALLER_NOT_FOUND",
            Error::AdminNotFound {
                kind: AdminObject::Route,
                ..
            } => "ROUTE_NOT_FOUND",
            Error::AdminNotFound {
                kind: AdminObject::SyncReport,
                ..
            } => "SYNC_REPORT_NOT_FOUND",
            Error::UserNotInAccount { .. } => "USER_NOT_IN_ACCOUNT",
            Error::Internal(_) => "INTERNAL",
        }
    }
}

//! The gRPC face of the gateway: caller authentication, the `zoomgate.v1.Meetings` service, and
//! the one mapping from [`Error`] to `Status`. Proto types stop here.

pub mod admin;
pub mod convert;
pub mod decode_errors;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::server::TlsConnectInfo;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;
use crate::listener::ConnectionInfo;
use crate::meetings::{Meetings, RequestContext, RequestId, Routed, validate};
use crate::policy::{Caller, Identity, LivePolicy, Operation};
use crate::proto;
use crate::proto::meetings_server::MeetingsServer;
use crate::telemetry::metrics::Metrics;

/// `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "zoomgate.dev";

/// Metadata a client may set to name its request; the answer carries the id used.
const REQUEST_ID_HEADER: &str = "x-request-id";
/// The client's deadline, as gRPC over HTTP/2 sends it.
const GRPC_TIMEOUT_HEADER: &str = "grpc-timeout";

/// When to try again after the store refused: the interval of its write checks.
const STORE_RETRY_AFTER: std::time::Duration = crate::app::STORE_CHECK_INTERVAL;

/// The `zoomgate.v1.Meetings` service.
#[derive(Clone)]
pub struct MeetingsService {
    meetings: Meetings,
    /// The longest a request may take, whatever deadline its client sets.
    request_timeout: Duration,
    metrics: Arc<Metrics>,
}

/// The service behind caller authentication; health and reflection stay open.
pub type AuthenticatedMeetings =
    tonic::service::interceptor::InterceptedService<MeetingsServer<MeetingsService>, Authenticator>;

impl MeetingsService {
    pub fn new(meetings: Meetings, request_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            meetings,
            request_timeout,
            metrics,
        }
    }

    /// Wraps the service so that every call carries an authenticated [`Caller`]; requests
    /// larger than `max_message_bytes` are refused before they are decoded.
    pub fn into_server(
        self,
        policy: LivePolicy,
        max_message_bytes: usize,
    ) -> AuthenticatedMeetings {
        let metrics = self.metrics.clone();
        let server = MeetingsServer::new(self).max_decoding_message_size(max_message_bytes);
        tonic::service::interceptor::InterceptedService::new(
            server,
            Authenticator { policy, metrics },
        )
    }

    /// Answers a request and counts it: its code on its span, in the metrics and in one log
    /// line (the access log, with the request's span and so its trace id).
    fn answer<T>(&self, mut end: Ending, result: Result<T, Error>) -> Result<Response<T>, Status> {
        end.finish(result.as_ref().map_or_else(code, |_| Code::Ok));
        answer(&end.id, result)
    }

    /// Builds the context of one call: its caller, request id and deadline.
    fn context<T>(
        &self,
        request: &Request<T>,
        operation: Operation,
    ) -> Result<RequestContext, Status> {
        let call = CallMetadata::of(request, self.request_timeout)?;
        Ok(RequestContext::new(
            call.caller,
            operation,
            call.request_id,
            call.timeout,
        ))
    }
}

/// What every call of every service carries: its caller, the client's request id, and how long
/// it may take (the client's deadline, capped by `request_timeout_secs`).
pub(crate) struct CallMetadata<'a> {
    pub caller: Arc<Caller>,
    pub request_id: Option<&'a str>,
    pub timeout: Duration,
}

impl<'a> CallMetadata<'a> {
    pub(crate) fn of<T>(
        request: &'a Request<T>,
        request_timeout: Duration,
    ) -> Result<Self, Status> {
        let caller = request
            .extensions()
            .get::<Arc<Caller>>()
            .cloned()
            .ok_or_else(|| status(Error::Unauthenticated))?;
        let metadata = request.metadata();
        let request_id = metadata
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok());
        let timeout = metadata
            .get(GRPC_TIMEOUT_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(request_timeout, |client| client.min(request_timeout));
        Ok(Self {
            caller,
            request_id,
            timeout,
        })
    }
}

/// What a handler keeps of a request it handed to the domain, to answer and count it. A
/// handler dropped before it answered (the caller hung up) counts its request as CANCELLED.
struct Ending {
    id: RequestId,
    operation: Operation,
    routed: Routed,
    started: tokio::time::Instant,
    span: tracing::Span,
    metrics: Arc<Metrics>,
    counted: bool,
}

impl Ending {
    fn of(cx: &RequestContext, metrics: &Arc<Metrics>) -> Self {
        Self {
            id: cx.request_id.clone(),
            operation: cx.operation,
            routed: cx.routed(),
            started: cx.started,
            span: cx.span.clone(),
            metrics: metrics.clone(),
            counted: false,
        }
    }

    /// Counts the request once, with `code`.
    fn finish(&mut self, code: Code) {
        self.counted = true;
        let name = code_name(code);
        let took = self.started.elapsed();
        self.span.record("code", name);
        if code != Code::Ok {
            self.span.record("otel.status_code", "ERROR");
        }
        tracing::info!(
            parent: &self.span,
            code = name,
            duration_us = took.as_micros() as u64,
            "request answered"
        );
        self.metrics
            .request(self.operation.as_str(), self.routed.account(), name, took);
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if !self.counted {
            self.finish(Code::Cancelled);
        }
    }
}

/// Identifies the caller of each request: by client certificate SAN, else by API key.
#[derive(Clone)]
pub struct Authenticator {
    policy: LivePolicy,
    /// Where refused callers are counted.
    metrics: Arc<Metrics>,
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let certificates = request
            .extensions()
            .get::<TlsConnectInfo<ConnectionInfo>>()
            .and_then(TlsConnectInfo::peer_certs);
        let identity = Identity {
            authorization: request
                .metadata()
                .get("authorization")
                .and_then(|value| value.to_str().ok()),
            // The first certificate is the client's own; the rest is its chain.
            certificate: certificates
                .as_ref()
                .and_then(|certs| certs.first())
                .map(|leaf| leaf.as_ref()),
        };
        let caller = self.policy.load().authenticate(&identity).ok_or_else(|| {
            self.metrics.unauthenticated();
            status(Error::Unauthenticated)
        })?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Answers with the request id, so that a client can quote it.
pub(crate) fn answer<T>(
    cx_id: &RequestId,
    result: Result<T, Error>,
) -> Result<Response<T>, Status> {
    let id = MetadataValue::try_from(cx_id.as_str()).ok();
    match result {
        Ok(message) => {
            let mut response = Response::new(message);
            if let Some(id) = id {
                response.metadata_mut().insert(REQUEST_ID_HEADER, id);
            }
            Ok(response)
        }
        Err(error) => {
            let mut status = status(error);
            if let Some(id) = id {
                status.metadata_mut().insert(REQUEST_ID_HEADER, id);
            }
            Err(status)
        }
    }
}

#[tonic::async_trait]
impl proto::meetings_server::Meetings for MeetingsService {
    async fn create_meeting(
        &self,
        request: Request<proto::CreateMeetingRequest>,
    ) -> Result<Response<proto::Meeting>, Status> {
        let cx = self.context(&request, Operation::Create)?;
        let end = Ending::of(&cx, &self.metrics);
        let request = request.into_inner();
        let (user, body) = (
            convert::user_ref(request.user.as_ref()),
            convert::meeting_draft(request.meeting.as_ref())
                .and_then(|draft| validate::create_body(&draft)),
        );
        let request_id = validate::request_id(&request.request_id);
        let result = match both(both(user, body), request_id) {
            Ok(((user, body), request_id)) => {
                self.meetings.create(cx, user, body, request_id).await
            }
            Err(error) => Err(error),
        };
        self.answer(end, result.map(convert::meeting_to_proto))
    }

    async fn get_meeting(
        &self,
        request: Request<proto::GetMeetingRequest>,
    ) -> Result<Response<proto::Meeting>, Status> {
        let cx = self.context(&request, Operation::Read)?;
        let end = Ending::of(&cx, &self.metrics);
        let request = request.into_inner();
        let ids = both(
            validate::meeting_id(request.meeting_id),
            validate::occurrence_id(&request.occurrence_id),
        );
        let result = match ids {
            Ok((meeting, occurrence)) => self.meetings.get(cx, meeting, occurrence).await,
            Err(error) => Err(error),
        };
        self.answer(end, result.map(convert::meeting_to_proto))
    }

    async fn update_meeting(
        &self,
        request: Request<proto::UpdateMeetingRequest>,
    ) -> Result<Response<proto::Meeting>, Status> {
        let cx = self.context(&request, Operation::Update)?;
        let end = Ending::of(&cx, &self.metrics);
        let request = request.into_inner();
        let ids = both(
            validate::meeting_id(request.meeting_id),
            validate::occurrence_id(&request.occurrence_id),
        );
        let mask = request
            .update_mask
            .as_ref()
            .map(|mask| mask.paths.as_slice());
        let body = convert::meeting_draft(request.meeting.as_ref())
            .and_then(|draft| validate::update_body(&draft, mask));
        let result = match both(ids, body) {
            Ok(((meeting, occurrence), body)) => {
                self.meetings.update(cx, meeting, occurrence, body).await
            }
            Err(error) => Err(error),
        };
        self.answer(end, result.map(convert::meeting_to_proto))
    }

    async fn delete_meeting(
        &self,
        request: Request<proto::DeleteMeetingRequest>,
    ) -> Result<Response<()>, Status> {
        let cx = self.context(&request, Operation::Delete)?;
        let end = Ending::of(&cx, &self.metrics);
        let request = request.into_inner();
        let ids = both(
            validate::meeting_id(request.meeting_id),
            validate::occurrence_id(&request.occurrence_id),
        );
        let result = match ids {
            Ok((meeting, occurrence)) => self.meetings.delete(cx, meeting, occurrence).await,
            Err(error) => Err(error),
        };
        self.answer(end, result)
    }

    async fn list_meetings(
        &self,
        request: Request<proto::ListMeetingsRequest>,
    ) -> Result<Response<proto::ListMeetingsResponse>, Status> {
        let cx = self.context(&request, Operation::List)?;
        let end = Ending::of(&cx, &self.metrics);
        let request = request.into_inner();
        let parsed = both(
            convert::list_user_ref(request.user.as_ref()),
            convert::list_query(&request),
        );
        let result = match parsed {
            Ok((user, query)) => self.meetings.list(cx, user, query).await,
            Err(error) => Err(error),
        };
        self.answer(end, result.map(convert::list_to_proto))
    }

    async fn end_meeting(
        &self,
        request: Request<proto::EndMeetingRequest>,
    ) -> Result<Response<proto::EndMeetingResponse>, Status> {
        let cx = self.context(&request, Operation::End)?;
        let end = Ending::of(&cx, &self.metrics);
        let result = match validate::meeting_id(request.get_ref().meeting_id) {
            Ok(meeting) => self.meetings.end(cx, meeting).await,
            Err(error) => Err(error),
        };
        self.answer(end, result.map(|()| proto::EndMeetingResponse {}))
    }
}

/// Reads a `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Combines two validations so that the caller learns about every bad field at once.
pub(crate) fn both<A, B>(a: Result<A, Error>, b: Result<B, Error>) -> Result<(A, B), Error> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(Error::InvalidArgument(mut x)), Err(Error::InvalidArgument(y))) => {
            x.extend(y);
            Err(Error::InvalidArgument(x))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// The canonical name of a gRPC code, as in `google.rpc.Code`: a metric label and span field.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Returns the code the caller sees. Add codes thoughtfully.
pub fn code(error: &Error) -> Code {
    match error {
        // As the failure it wraps: UNAVAILABLE or DEADLINE_EXCEEDED.
        Error::CreateOutcomeUnknown { cause, .. } => code(cause),
        Error::CreateInProgress { .. } => Code::Aborted,
        Error::InvalidArgument(_) | Error::ZoomRejected { .. } => Code::InvalidArgument,
        Error::Unauthenticated => Code::Unauthenticated,
        Error::NotFound { .. } | Error::AdminNotFound { .. } => Code::NotFound,
        Error::PermissionDenied { .. } | Error::AdminDenied { .. } => Code::PermissionDenied,
        Error::RateLimited { .. }
        | Error::BudgetExhausted { .. }
        | Error::UserDailyCap { .. }
        | Error::TooManyRequests { .. } => Code::ResourceExhausted,
        Error::ZoomUnavailable { .. } | Error::StoreUnavailable(_) | Error::ShuttingDown => {
            Code::Unavailable
        }
        Error::ZoomTimeout { .. } | Error::DeadlineExceeded { .. } => Code::DeadlineExceeded,
        Error::MissingScope { .. } | Error::ZoomRefused { .. } | Error::UserNotInAccount { .. } => {
            Code::FailedPrecondition
        }
        // Not UNAVAILABLE: retry policies repeat that, and this change must not be repeated.
        Error::Internal(_) | Error::NotRecorded { .. } => Code::Internal,
    }
}

/// Turns an error into a `Status` with `google.rpc` details; logs server-side faults once.
pub fn status(error: Error) -> Status {
    let code = code(&error);
    match code {
        Code::Internal | Code::Unavailable | Code::FailedPrecondition | Code::DeadlineExceeded => {
            tracing::warn!(%error, "request failed");
        }
        _ => tracing::debug!(%error, "request refused"),
    }
    let mut details = ErrorDetails::new();
    let mut metadata = HashMap::new();
    match &error {
        Error::InvalidArgument(violations) => {
            for v in violations {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
        }
        Error::ZoomRejected { fields, code, .. } => {
            metadata.insert("zoom_code".to_owned(), code.to_string());
            for field in fields {
                details.add_bad_request_violation(field.clone(), "rejected by Zoom");
            }
        }
        Error::RateLimited {
            account,
            retry_after,
        } => {
            metadata.insert("account".to_owned(), account.to_string());
            details.set_retry_info(*retry_after);
        }
        Error::BudgetExhausted {
            account,
            category,
            daily,
            retry_after,
        } => {
            metadata.insert("account".to_owned(), account.to_string());
            metadata.insert("category".to_owned(), category.as_str().to_owned());
            details.set_retry_info(Some(*retry_after));
            let per = if *daily { "day" } else { "second" };
            details.add_quota_failure_violation(
                format!("account:{account}/{}", category.as_str()),
                format!(
                    "zoom's {} requests per {per} in account `{account}`",
                    category.as_str()
                ),
            );
        }
        Error::UserDailyCap {
            account,
            user,
            cap,
            retry_after,
        } => {
            metadata.insert("account".to_owned(), account.to_string());
            details.set_retry_info(Some(*retry_after));
            details.add_quota_failure_violation(
                format!("user:{user}"),
                format!("zoom's {cap} meeting creates and updates per user and UTC day"),
            );
        }
        Error::ZoomUnavailable {
            account,
            retry_after,
            ..
        } => {
            metadata.insert("account".to_owned(), account.to_string());
            if retry_after.is_some() {
                details.set_retry_info(*retry_after);
            }
        }
        Error::ZoomRefused { account, code, .. } => {
            metadata.insert("account".to_owned(), account.to_string());
            if let Some(code) = code {
                metadata.insert("zoom_code".to_owned(), code.to_string());
            }
        }
        Error::ZoomTimeout { account } | Error::MissingScope { account, .. } => {
            metadata.insert("account".to_owned(), account.to_string());
        }
        Error::StoreUnavailable(_) => {
            details.set_retry_info(Some(STORE_RETRY_AFTER));
        }
        Error::TooManyRequests { limit, .. } => {
            metadata.insert("limit".to_owned(), limit.to_string());
        }
        Error::NotRecorded { meeting_id, .. } => {
            if let Some(id) = meeting_id {
                metadata.insert("meeting_id".to_owned(), id.to_string());
            }
        }
        Error::UserNotInAccount { account, .. } => {
            metadata.insert("account".to_owned(), account.to_string());
        }
        Error::AdminDenied { needed, .. } => {
            metadata.insert("needed_role".to_owned(), needed.to_string());
        }
        Error::Unauthenticated
        | Error::DeadlineExceeded { .. }
        | Error::NotFound { .. }
        | Error::AdminNotFound { .. }
        | Error::PermissionDenied { .. }
        | Error::ShuttingDown
        | Error::Internal(_) => {}
        Error::CreateOutcomeUnknown {
            with_request_id,
            cause,
        } => {
            metadata.insert("cause".to_owned(), cause.reason().to_owned());
            if *with_request_id {
                details.set_retry_info(Some(Duration::ZERO));
            }
        }
        Error::CreateInProgress { retry_after } => {
            details.set_retry_info(Some(*retry_after));
        }
    }
    details.set_error_info(error.reason(), ERROR_DOMAIN, metadata);
    Status::with_error_details(code, error.public_message(), details)
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;
    use crate::accounts::AccountName;

    fn sales() -> AccountName {
        AccountName::parse("sales").unwrap()
    }

    #[test]
    fn a_refusal_a_retry_cannot_fix_is_not_unavailable() {
        let refused = status(Error::ZoomRefused {
            account: sales(),
            status: 403,
            code: Some(200),
            message: "No permission.".into(),
        });
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert!(refused.get_details_retry_info().is_none());
        let info = refused.get_details_error_info().unwrap();
        assert_eq!(info.reason, "ZOOM_REFUSED");
        assert_eq!(info.metadata["zoom_code"], "200");
        assert!(
            !refused.message().contains("No permission"),
            "zoom's text stays in logs"
        );
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("300m"), Some(Duration::from_millis(300)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5M"), Some(Duration::from_secs(300)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "123456789S", "10x", "-1S", "1.5S", "é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_info_only_when_a_retry_may_succeed() {
        let down = |retry_after| {
            status(Error::ZoomUnavailable {
                account: sales(),
                detail: "503".into(),
                retry_after,
                sent: true,
            })
        };
        assert!(down(None).get_details_retry_info().is_none());
        let cooling = down(Some(std::time::Duration::from_secs(2)));
        assert_eq!(cooling.code(), Code::Unavailable);
        assert!(cooling.get_details_retry_info().is_some());
    }
}

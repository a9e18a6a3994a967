//! The gRPC face of the gateway: caller authentication, the `zoomgate.v1.Meetings` service, and
//! the one mapping from [`Error`] to `Status`. Proto types stop here.

pub mod convert;
pub mod decode_errors;

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::task::TaskTracker;
use tonic::transport::server::TlsConnectInfo;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;
use crate::listener::ConnectionInfo;
use crate::meetings::Meetings;
use crate::policy::{Caller, Policy, sans_of_certificate};
use crate::proto;
use crate::proto::meetings_server::MeetingsServer;

/// `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "zoomgate.dev";

/// When to try again after the store refused: the interval of its write checks.
const STORE_RETRY_AFTER: std::time::Duration = crate::app::STORE_CHECK_INTERVAL;

/// The `zoomgate.v1.Meetings` service.
#[derive(Clone)]
pub struct MeetingsService {
    meetings: Meetings,
    /// The request tasks, so that shutdown can wait for the ones whose callers left.
    tasks: TaskTracker,
}

/// The service behind caller authentication; health and reflection stay open.
pub type AuthenticatedMeetings =
    tonic::service::interceptor::InterceptedService<MeetingsServer<MeetingsService>, Authenticator>;

impl MeetingsService {
    pub fn new(meetings: Meetings) -> Self {
        Self {
            meetings,
            tasks: TaskTracker::new(),
        }
    }

    /// Runs the request path in a task of its own, so that a caller who hangs up or runs out of
    /// time cannot cut it between Zoom's answer and the ledger and audit writes that must follow.
    /// The request counts against the caller's requests in flight until that task ends.
    async fn detached<T, Fut>(
        &self,
        caller: Arc<Caller>,
        request: impl FnOnce(Meetings, Arc<Caller>) -> Fut,
    ) -> Result<T, Status>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let admitted = self.meetings.admit(&caller).map_err(status)?;
        let request = request(self.meetings.clone(), caller);
        let task = async move {
            let result = request.await;
            drop(admitted);
            result
        };
        match self.tasks.spawn(task).await {
            Ok(result) => result.map_err(status),
            Err(error) => Err(status(Error::Internal(format!(
                "request task failed: {error}"
            )))),
        }
    }

    /// The tracker of request tasks; shutdown closes it and waits for it.
    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }

    /// Wraps the service so that every call carries an authenticated [`Caller`]; requests
    /// larger than `max_message_bytes` are refused before they are decoded.
    pub fn into_server(
        self,
        policy: Arc<Policy>,
        max_message_bytes: usize,
    ) -> AuthenticatedMeetings {
        let server = MeetingsServer::new(self).max_decoding_message_size(max_message_bytes);
        tonic::service::interceptor::InterceptedService::new(server, Authenticator { policy })
    }
}

/// Identifies the caller of each request: by client certificate SAN, else by API key.
#[derive(Clone)]
pub struct Authenticator {
    policy: Arc<Policy>,
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self
            .authenticate(&request)
            .ok_or_else(|| status(Error::Unauthenticated))?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

impl Authenticator {
    fn authenticate(&self, request: &Request<()>) -> Option<Arc<Caller>> {
        let certs = request
            .extensions()
            .get::<TlsConnectInfo<ConnectionInfo>>()
            .and_then(TlsConnectInfo::peer_certs);
        if let Some(certs) = certs {
            // The first certificate is the client's own; the rest is its chain.
            if let Some(leaf) = certs.first() {
                let sans = sans_of_certificate(leaf.as_ref());
                if let Some(caller) = self.policy.caller_by_sans(&sans) {
                    return Some(caller);
                }
            }
        }
        let header = request.metadata().get("authorization")?.to_str().ok()?;
        let (scheme, key) = header.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.policy.caller_by_api_key(key.trim())
    }
}

fn caller_of<T>(request: &Request<T>) -> Result<Arc<Caller>, Status> {
    request
        .extensions()
        .get::<Arc<Caller>>()
        .cloned()
        .ok_or_else(|| status(Error::Unauthenticated))
}

#[tonic::async_trait]
impl proto::meetings_server::Meetings for MeetingsService {
    async fn create_meeting(
        &self,
        request: Request<proto::CreateMeetingRequest>,
    ) -> Result<Response<proto::Meeting>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let (user, body) = (
            convert::user_ref(request.user.as_ref()),
            convert::create_body(request.meeting.as_ref()),
        );
        let (user, body) = both(user, body).map_err(status)?;
        let view = self
            .detached(caller, |meetings, caller| async move {
                meetings.create(&caller, user, body).await
            })
            .await?;
        Ok(Response::new(convert::meeting_to_proto(view)))
    }

    async fn get_meeting(
        &self,
        request: Request<proto::GetMeetingRequest>,
    ) -> Result<Response<proto::Meeting>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let (id, occurrence) = both(
            convert::meeting_id(request.meeting_id),
            convert::occurrence_id(&request.occurrence_id),
        )
        .map_err(status)?;
        let view = self
            .detached(caller, |meetings, caller| async move {
                meetings.get(&caller, id, occurrence).await
            })
            .await?;
        Ok(Response::new(convert::meeting_to_proto(view)))
    }

    async fn update_meeting(
        &self,
        request: Request<proto::UpdateMeetingRequest>,
    ) -> Result<Response<proto::Meeting>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let ids = both(
            convert::meeting_id(request.meeting_id),
            convert::occurrence_id(&request.occurrence_id),
        );
        let body = convert::update_body(request.meeting.as_ref(), request.update_mask.as_ref());
        let ((id, occurrence), body) = both(ids, body).map_err(status)?;
        let view = self
            .detached(caller, |meetings, caller| async move {
                meetings.update(&caller, id, occurrence, body).await
            })
            .await?;
        Ok(Response::new(convert::meeting_to_proto(view)))
    }

    async fn delete_meeting(
        &self,
        request: Request<proto::DeleteMeetingRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let (id, occurrence) = both(
            convert::meeting_id(request.meeting_id),
            convert::occurrence_id(&request.occurrence_id),
        )
        .map_err(status)?;
        self.detached(caller, |meetings, caller| async move {
            meetings.delete(&caller, id, occurrence).await
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn list_meetings(
        &self,
        request: Request<proto::ListMeetingsRequest>,
    ) -> Result<Response<proto::ListMeetingsResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let (user, query) = both(
            convert::list_user_ref(request.user.as_ref()),
            convert::list_query(&request),
        )
        .map_err(status)?;
        let list = self
            .detached(caller, |meetings, caller| async move {
                meetings.list(&caller, user, query).await
            })
            .await?;
        Ok(Response::new(convert::list_to_proto(list)))
    }

    async fn end_meeting(
        &self,
        request: Request<proto::EndMeetingRequest>,
    ) -> Result<Response<proto::EndMeetingResponse>, Status> {
        let caller = caller_of(&request)?;
        let id = convert::meeting_id(request.get_ref().meeting_id).map_err(status)?;
        self.detached(caller, |meetings, caller| async move {
            meetings.end(&caller, id).await
        })
        .await?;
        Ok(Response::new(proto::EndMeetingResponse {}))
    }
}

/// Combines two validations so that the caller learns about every bad field at once.
fn both<A, B>(a: Result<A, Error>, b: Result<B, Error>) -> Result<(A, B), Error> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(Error::InvalidArgument(mut x)), Err(Error::InvalidArgument(y))) => {
            x.extend(y);
            Err(Error::InvalidArgument(x))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// Returns the code the caller sees. Add codes thoughtfully.
pub fn code(error: &Error) -> Code {
    match error {
        Error::InvalidArgument(_) | Error::ZoomRejected { .. } => Code::InvalidArgument,
        Error::Unauthenticated => Code::Unauthenticated,
        Error::NotFound { .. } => Code::NotFound,
        Error::PermissionDenied { .. } => Code::PermissionDenied,
        Error::RateLimited { .. } | Error::TooManyRequests { .. } => Code::ResourceExhausted,
        Error::ZoomUnavailable { .. } | Error::StoreUnavailable(_) => Code::Unavailable,
        Error::ZoomTimeout { .. } => Code::DeadlineExceeded,
        Error::MissingScope { .. } | Error::ZoomRefused { .. } => Code::FailedPrecondition,
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
        Error::Unauthenticated
        | Error::NotFound { .. }
        | Error::PermissionDenied { .. }
        | Error::Internal(_) => {}
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

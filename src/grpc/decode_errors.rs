//! Requests that tonic refuses before any handler runs, put in the error contract.
//!
//! tonic answers a message above the size limit with OUT_OF_RANGE and an undecodable one (for
//! example a `Struct` nested deeper than prost's recursion limit) with INTERNAL, both without
//! `ErrorInfo`. Both are the client's mistakes: this layer turns them into INVALID_ARGUMENT with
//! an `ErrorInfo`. It only sees tonic's own answers: the services never use OUT_OF_RANGE, and
//! their INTERNAL message is never tonic's "failed to decode".

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::ERROR_DOMAIN;

/// Prefix of tonic's message for a message over the decoding limit.
const TOO_LARGE: &str = "Error, decoded message length too large";
/// Prefix of tonic's message for a message prost could not decode.
const UNDECODABLE: &str = "failed to decode Protobuf message";

/// See the [module documentation](self).
#[derive(Clone, Copy, Debug)]
pub struct DecodeErrorsLayer {
    /// The decoding limit, named in the answer.
    pub max_message_bytes: usize,
}

impl<S> tower::Layer<S> for DecodeErrorsLayer {
    type Service = DecodeErrors<S>;

    fn layer(&self, inner: S) -> DecodeErrors<S> {
        DecodeErrors {
            inner,
            max_message_bytes: self.max_message_bytes,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DecodeErrors<S> {
    inner: S,
    max_message_bytes: usize,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for DecodeErrors<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let response = self.inner.call(request);
        let limit = self.max_message_bytes;
        Box::pin(async move {
            let mut response = response.await?;
            if let Some(status) = Status::from_header_map(response.headers())
                && let Some(replacement) = replacement(&status, limit)
            {
                let headers = response.headers_mut();
                for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
                    headers.remove(name);
                }
                // Fails only for header values that cannot be encoded; ours are ASCII.
                let _ = replacement.add_header(headers);
            }
            Ok(response)
        })
    }
}

/// The status a client should see instead of one of tonic's decoding refusals.
fn replacement(status: &Status, limit: usize) -> Option<Status> {
    let (reason, message, metadata) = match status.code() {
        Code::OutOfRange if status.message().starts_with(TOO_LARGE) => (
            "MESSAGE_TOO_LARGE",
            format!("the request message is larger than the limit of {limit} bytes"),
            HashMap::from([("limit_bytes".to_owned(), limit.to_string())]),
        ),
        Code::Internal if status.message().starts_with(UNDECODABLE) => (
            "MALFORMED_MESSAGE",
            "the request message could not be decoded (malformed, or nested too deeply)".to_owned(),
            HashMap::new(),
        ),
        _ => return None,
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    Some(Status::with_error_details(
        Code::InvalidArgument,
        message,
        details,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tonics_decoding_refusals_are_replaced() {
        let too_large =
            Status::out_of_range(format!("{TOO_LARGE}: found 9 bytes, the limit is: 4 bytes"));
        let replaced = replacement(&too_large, 4).unwrap();
        assert_eq!(replaced.code(), Code::InvalidArgument);
        assert_eq!(
            replaced.get_details_error_info().unwrap().reason,
            "MESSAGE_TOO_LARGE"
        );

        let undecodable = Status::internal(format!("{UNDECODABLE}: recursion limit reached"));
        let replaced = replacement(&undecodable, 4).unwrap();
        assert_eq!(
            replaced.get_details_error_info().unwrap().reason,
            "MALFORMED_MESSAGE"
        );

        assert!(replacement(&Status::internal("internal error"), 4).is_none());
        assert!(replacement(&Status::not_found("meeting 1 not found"), 4).is_none());
    }
}

//! Typed Zoom REST client: the S2S token request, meetings and users.
//!
//! One [`ZoomClient`] serves every account: the account only changes the bearer token (see
//! [`crate::token`]). The client neither retries nor rate-limits; it turns each HTTP exchange
//! into a typed value or a typed [`ZoomError`] / [`TokenError`].

mod calls;
mod clock;
mod endpoint;
mod error;
mod oauth;
mod types;

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::accounts::Account;

pub use calls::{
    CreateMeeting, DeleteMeeting, EndMeeting, GetMeeting, GetUser, ListMeetingsOf, ListUsers,
    UpdateMeeting, ZoomCall,
};
pub use clock::ZoomClock;
pub use endpoint::{Endpoint, RateCategory};
pub use error::{FieldError, LimitHit, ZoomError};
pub use oauth::{AccessToken, TokenError, TokenGrant};
pub use types::{
    ListMeetings, ListedUser, MeetingListKind, MeetingPage, Occurrence, Recurrence, UserPage,
    ZoomMeeting, ZoomUser,
};

/// Largest 2xx body accepted; a page of 300 meetings is well under 1 MiB.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Largest error body read; Zoom's are a few hundred bytes.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Zoom messages longer than this are cut before they go into errors and logs.
const MAX_MESSAGE_CHARS: usize = 500;
/// Zoom's code for an invalid or expired access token.
const CODE_INVALID_TOKEN: i64 = 124;
/// Zoom's codes for a token without the scope the call needs (4700 older, 4711 current).
const CODES_MISSING_SCOPE: [i64; 2] = [4700, 4711];

/// Base URLs of Zoom; tests point both at a local fake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoomEndpoints {
    /// REST base including the version, e.g. `https://api.zoom.us/v2`.
    pub api_url: String,
    /// Token endpoint, e.g. `https://zoom.us/oauth/token`.
    pub oauth_url: String,
}

/// Why a [`ZoomClient`] could not be built.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error("zoom {field} `{url}` is not a valid http(s) url")]
    InvalidUrl { field: &'static str, url: String },
    #[error("cannot build the zoom http client: {0}")]
    Http(#[source] reqwest::Error),
}

/// Zoom REST client; cloning is shallow and clones share one connection pool.
#[derive(Clone, Debug)]
pub struct ZoomClient {
    http: reqwest::Client,
    urls: Arc<Urls>,
    clock: ZoomClock,
}

#[derive(Debug)]
struct Urls {
    api: Url,
    oauth: Url,
}

// === impl ZoomClient ===

impl ZoomClient {
    /// Builds the client; `timeout` bounds each whole exchange, connect to last body byte.
    pub fn new(endpoints: &ZoomEndpoints, timeout: Duration) -> Result<Self, BuildError> {
        let api = parse_base("api_url", &endpoints.api_url)?;
        let oauth = parse_base("oauth_url", &endpoints.oauth_url)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("zoomgate/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            // Keep-alive HTTP/1.1 connections, reused across requests and accounts.
            .http1_only()
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(60))
            // A redirect is never a valid Zoom answer; following it could resend credentials.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(BuildError::Http)?;
        Ok(Self {
            http,
            urls: Arc::new(Urls { api, oauth }),
            clock: ZoomClock::default(),
        })
    }

    /// Zoom's clock, as the answers of this client have shown it.
    pub fn clock(&self) -> &ZoomClock {
        &self.clock
    }

    /// Requests a Server-to-Server token for `account` (`grant_type=account_credentials`).
    ///
    /// Sends the form body with Basic auth as Zoom documents; the 200 body is checked strictly,
    /// since a token without a usable lifetime must never be cached.
    pub async fn request_token(&self, account: &Account) -> Result<TokenGrant, TokenError> {
        let form = [
            ("grant_type", "account_credentials"),
            ("account_id", account.zoom_account_id.as_str()),
        ];
        let response = self
            .http
            .post(self.urls.oauth.clone())
            .basic_auth(
                &account.client_id,
                Some(account.client_secret.expose_secret()),
            )
            .form(&form)
            .send()
            .await
            .map_err(|e| TokenError::Unavailable(transport_detail(&e)))?;
        self.clock.observe(response.headers());
        let status = response.status();
        let body = match read_body(response, MAX_BODY_BYTES).await {
            Ok(body) => body,
            Err(BodyError::Read(e)) => return Err(TokenError::Unavailable(transport_detail(&e))),
            Err(BodyError::TooLarge) => {
                return Err(TokenError::Malformed("token response body too large"));
            }
        };
        tracing::debug!(account = %account.name, status = status.as_u16(), "zoom token response");
        token_from_response(status, &body)
    }

    /// Returns a user by Zoom user id or email (`GET /users/{userId}`).
    pub async fn get_user(&self, token: &AccessToken, user: &str) -> Result<ZoomUser, ZoomError> {
        let url = self.api_url(&["users", checked_segment(user)?]);
        let response = self
            .send(token, self.http.get(url), Endpoint::GetUser)
            .await?;
        decode(response).await
    }

    /// Returns one page of the account's active users (`GET /users`).
    pub async fn list_users(
        &self,
        token: &AccessToken,
        page_size: u32,
        next_page_token: Option<&str>,
    ) -> Result<UserPage, ZoomError> {
        let url = self.api_url(&["users"]);
        let mut params = vec![
            ("status", "active".to_owned()),
            ("page_size", page_size.to_string()),
        ];
        if let Some(next) = next_page_token {
            params.push(("next_page_token", next.to_owned()));
        }
        let request = self.http.get(url).query(&params);
        let response = self.send(token, request, Endpoint::ListUsers).await?;
        decode(response).await
    }

    /// Creates a meeting hosted by `user` (`POST /users/{userId}/meetings`, 201).
    pub async fn create_meeting(
        &self,
        token: &AccessToken,
        user: &str,
        body: &Map<String, Value>,
    ) -> Result<ZoomMeeting, ZoomError> {
        let url = self.api_url(&["users", checked_segment(user)?, "meetings"]);
        let request = self.http.post(url).json(body);
        let response = self.send(token, request, Endpoint::CreateMeeting).await?;
        decode(response).await
    }

    /// Returns a meeting, or one occurrence of it (`GET /meetings/{meetingId}`).
    pub async fn get_meeting(
        &self,
        token: &AccessToken,
        id: i64,
        occurrence_id: Option<&str>,
    ) -> Result<ZoomMeeting, ZoomError> {
        let request = self.meeting_request(Method::GET, id, occurrence_id);
        let response = self.send(token, request, Endpoint::GetMeeting).await?;
        decode(response).await
    }

    /// Changes a meeting, or one occurrence of it (`PATCH /meetings/{meetingId}`, 204).
    pub async fn update_meeting(
        &self,
        token: &AccessToken,
        id: i64,
        occurrence_id: Option<&str>,
        body: &Map<String, Value>,
    ) -> Result<(), ZoomError> {
        let request = self
            .meeting_request(Method::PATCH, id, occurrence_id)
            .json(body);
        self.send(token, request, Endpoint::UpdateMeeting).await?;
        Ok(())
    }

    /// Deletes a meeting (`DELETE /meetings/{meetingId}`, 204); without `occurrence_id` Zoom
    /// deletes the whole series of a recurring meeting.
    pub async fn delete_meeting(
        &self,
        token: &AccessToken,
        id: i64,
        occurrence_id: Option<&str>,
    ) -> Result<(), ZoomError> {
        let request = self.meeting_request(Method::DELETE, id, occurrence_id);
        self.send(token, request, Endpoint::DeleteMeeting).await?;
        Ok(())
    }

    /// Returns one page of `user`'s meetings (`GET /users/{userId}/meetings`).
    pub async fn list_meetings(
        &self,
        token: &AccessToken,
        user: &str,
        query: &ListMeetings,
    ) -> Result<MeetingPage, ZoomError> {
        let url = self.api_url(&["users", checked_segment(user)?, "meetings"]);
        let mut params = vec![("type", query.kind.as_str().to_owned())];
        if let Some(size) = query.page_size {
            params.push(("page_size", size.to_string()));
        }
        if let Some(next) = &query.next_page_token {
            params.push(("next_page_token", next.clone()));
        }
        let request = self.http.get(url).query(&params);
        let response = self.send(token, request, Endpoint::ListMeetings).await?;
        decode(response).await
    }

    /// Ends a running meeting (`PUT /meetings/{meetingId}/status` `{"action":"end"}`, 204).
    pub async fn end_meeting(&self, token: &AccessToken, id: i64) -> Result<(), ZoomError> {
        let url = self.api_url(&["meetings", &id.to_string(), "status"]);
        let request = self
            .http
            .put(url)
            .json(&serde_json::json!({ "action": "end" }));
        self.send(token, request, Endpoint::EndMeeting).await?;
        Ok(())
    }

    fn meeting_request(
        &self,
        method: Method,
        id: i64,
        occurrence_id: Option<&str>,
    ) -> RequestBuilder {
        let url = self.api_url(&["meetings", &id.to_string()]);
        let request = self.http.request(method, url);
        match occurrence_id {
            Some(occurrence) => request.query(&[("occurrence_id", occurrence)]),
            None => request,
        }
    }

    /// Appends percent-encoded `segments` to the API base.
    fn api_url(&self, segments: &[&str]) -> Url {
        let mut url = self.urls.api.clone();
        // `parse_base` only accepts http(s) urls, which always have path segments.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends an authenticated request; returns the response only if it is a 2xx.
    async fn send(
        &self,
        token: &AccessToken,
        request: RequestBuilder,
        endpoint: Endpoint,
    ) -> Result<Response, ZoomError> {
        let op = endpoint.as_str();
        let started = tokio::time::Instant::now();
        let result = request.bearer_auth(token.expose()).send().await;
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                let error = transport_error(&e);
                tracing::debug!(op, error = %error, "zoom call failed");
                return Err(error);
            }
        };
        self.clock.observe(response.headers());
        let status = response.status();
        tracing::debug!(
            op,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "zoom call"
        );
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = read_body(response, MAX_ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        let error = classify(status, &headers, &body, self.clock.now());
        tracing::debug!(
            op,
            tracking_id = headers.get("x-zm-trackingid").and_then(|v| v.to_str().ok()),
            error = %error,
            "zoom call rejected"
        );
        Err(error)
    }
}

fn parse_base(field: &'static str, raw: &str) -> Result<Url, BuildError> {
    let invalid = || BuildError::InvalidUrl {
        field,
        url: raw.to_owned(),
    };
    let url = Url::parse(raw).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(invalid());
    }
    Ok(url)
}

/// Accepts `value` as one path segment; `url` drops `.`/`..` segments and an empty one would
/// turn `/users/{id}` into `/users/`, so those never reach Zoom.
fn checked_segment(value: &str) -> Result<&str, ZoomError> {
    match value {
        "" => Err(ZoomError::InvalidInput("empty user id")),
        "." | ".." => Err(ZoomError::InvalidInput("user id is a dot segment")),
        _ => Ok(value),
    }
}

/// Reads at most `limit` bytes of the body; a longer body is an error, not a truncation.
async fn read_body(mut response: Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug)]
enum BodyError {
    Read(reqwest::Error),
    TooLarge,
}

/// Parses a 2xx body into `T`; the error names the problem but never quotes the body.
async fn decode<T: DeserializeOwned>(response: Response) -> Result<T, ZoomError> {
    let body = match read_body(response, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return Err(ZoomError::Decode {
                detail: format!("body larger than {MAX_BODY_BYTES} bytes"),
            });
        }
        Err(BodyError::Read(e)) => return Err(transport_error(&e)),
    };
    serde_json::from_slice(&body).map_err(|e| ZoomError::Decode {
        detail: json_error_detail(&e),
    })
}

/// Describes a serde_json error by kind and position only: its Display can quote body values,
/// and a meeting body holds `start_url`, which lets anyone start the meeting as its host.
fn json_error_detail(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "unreadable body",
        serde_json::error::Category::Syntax => "invalid json",
        serde_json::error::Category::Data => "json does not match the expected shape",
        serde_json::error::Category::Eof => "truncated json",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// Maps a reqwest failure (connect, reset, timeout) to a [`ZoomError`].
fn transport_error(e: &reqwest::Error) -> ZoomError {
    if e.is_timeout() {
        ZoomError::Timeout
    } else {
        ZoomError::Unavailable {
            status: None,
            detail: transport_detail(e),
        }
    }
}

/// Describes a transport failure with its causes, without the url (which may hold an email).
fn transport_detail(e: &reqwest::Error) -> String {
    let mut detail = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connect failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

// === token response ===

/// The 200 body of the token endpoint (DOC-S2S).
#[derive(Deserialize)]
struct RawGrant {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<Value>,
}

/// The error body of the token endpoint, e.g. `{"reason":"Invalid client_id or client_secret","error":"invalid_client"}`.
#[derive(Deserialize)]
struct RawTokenError {
    error: String,
    #[serde(default)]
    reason: Option<String>,
}

/// Turns a token endpoint answer into a grant or an error; pure so every shape is unit-tested.
fn token_from_response(status: StatusCode, body: &[u8]) -> Result<TokenGrant, TokenError> {
    if status.is_success() {
        return parse_grant(body);
    }
    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        return match serde_json::from_slice::<RawTokenError>(body) {
            Ok(raw) => Err(TokenError::Rejected {
                status: status.as_u16(),
                error: truncate(&raw.error),
                reason: truncate(raw.reason.as_deref().unwrap_or_default()),
            }),
            Err(_) => Err(TokenError::Malformed(
                "client error from the token endpoint without an oauth error body",
            )),
        };
    }
    Err(TokenError::Unavailable(format!(
        "token endpoint answered {}",
        status.as_u16()
    )))
}

fn parse_grant(body: &[u8]) -> Result<TokenGrant, TokenError> {
    let raw: RawGrant = serde_json::from_slice(body)
        .map_err(|_| TokenError::Malformed("token response is not the documented json"))?;
    let access_token = raw
        .access_token
        .filter(|t| !t.trim().is_empty())
        .ok_or(TokenError::Malformed("token response has no access_token"))?;
    if access_token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(TokenError::Malformed(
            "access_token is not a valid header value",
        ));
    }
    if raw
        .token_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err(TokenError::Malformed("token_type is not bearer"));
    }
    let expires_in = raw
        .expires_in
        .as_ref()
        .and_then(Value::as_u64)
        .filter(|&secs| secs > 0)
        .ok_or(TokenError::Malformed(
            "token response has no positive integer expires_in",
        ))?;
    Ok(TokenGrant {
        access_token: AccessToken::new(access_token),
        expires_in: Duration::from_secs(expires_in),
    })
}

// === error responses ===

/// Zoom's REST error body: `{"code":300,"message":"Validation Failed.","errors":[{"field","message"}]}`.
#[derive(Deserialize)]
struct RawZoomError {
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Option<Vec<RawFieldError>>,
}

#[derive(Deserialize)]
struct RawFieldError {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Classifies a non-2xx REST answer. `now` resolves a date-valued `Retry-After`.
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> ZoomError {
    let parsed = serde_json::from_slice::<RawZoomError>(body).ok();
    let code = parsed.as_ref().and_then(|p| p.code);
    let message = parsed
        .as_ref()
        .and_then(|p| p.message.as_deref())
        .map(truncate)
        .unwrap_or_default();

    if status == StatusCode::UNAUTHORIZED || code == Some(CODE_INVALID_TOKEN) {
        return ZoomError::InvalidToken { message };
    }
    if code.is_some_and(|c| CODES_MISSING_SCOPE.contains(&c)) {
        return ZoomError::MissingScope { message };
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        return ZoomError::RateLimited {
            retry_after,
            hit: limit_hit(headers, &message),
        };
    }
    if status.is_server_error() {
        return ZoomError::Unavailable {
            status: Some(status.as_u16()),
            detail: format!("zoom answered {}", status.as_u16()),
        };
    }
    match (status, code) {
        // Without Zoom's code a 404 is more likely a wrong `api_url` than a missing user, and
        // must not make routing conclude that an account lacks the user.
        (StatusCode::NOT_FOUND, Some(code)) => ZoomError::NotFound { code, message },
        (StatusCode::BAD_REQUEST, _) => ZoomError::BadRequest {
            code,
            message,
            errors: parsed
                .and_then(|p| p.errors)
                .unwrap_or_default()
                .into_iter()
                .map(|e| FieldError {
                    field: truncate(e.field.as_deref().unwrap_or_default()),
                    message: truncate(e.message.as_deref().unwrap_or_default()),
                })
                .collect(),
        },
        _ => ZoomError::Rejected {
            status: status.as_u16(),
            code,
            message,
        },
    }
}

/// Tells which limit a 429 hit: the per-user cap by its message (Zoom sends no type with it),
/// else by `X-RateLimit-Type`, else by the message.
fn limit_hit(headers: &HeaderMap, message: &str) -> LimitHit {
    let message = message.to_ascii_lowercase();
    if message.contains("particular user") || message.contains("create/update") {
        return LimitHit::UserDaily;
    }
    let kind = headers
        .get("x-ratelimit-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if kind.eq_ignore_ascii_case("daily-limit") || (kind.is_empty() && message.contains("daily")) {
        LimitHit::Daily
    } else {
        let limit = headers
            .get("x-ratelimit-limit")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|&limit| limit > 0);
        LimitHit::PerSecond { limit }
    }
}

/// Parses `Retry-After` as delay seconds, an RFC 3339 date (what Zoom documented) or an HTTP
/// date; a date in the past means "now".
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc3339(value)
        .or_else(|_| DateTime::parse_from_rfc2822(value))
        .ok()?;
    Some(
        at.with_timezone(&Utc)
            .signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Caps Zoom-provided text so a huge message cannot flood logs.
fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;

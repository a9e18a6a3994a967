//! `POST /oauth/token`: Zoom's Server-to-Server OAuth `account_credentials` grant.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::ExposeSecret;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::meeting::{ALPHANUMERIC, random_string};
use super::state::{AccountState, IssuedToken, Shared};

pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/oauth/token", post(token))
}

/// Zoom's OAuth error body: `{"reason": .., "error": ..}`, status 400.
fn oauth_error(reason: &str, error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "reason": reason, "error": error })),
    )
        .into_response()
}

fn invalid_client() -> Response {
    oauth_error("Invalid client_id or client_secret", "invalid_client")
}

/// `client_id` and `client_secret` from `Authorization: Basic base64(id:secret)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Issues a token. Parameters come from the form body or, as many clients send them, the
/// query string; body values win.
async fn token(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let mut params = query;
    if let Ok(Form(body)) = form {
        params.extend(body);
    }
    let credentials = basic_credentials(&headers);
    let client_account = credentials
        .as_ref()
        .and_then(|(id, _)| shared.account_by_client_id.get(id));
    // The request belongs to the named account if it exists, else to the client's account.
    let target = params
        .get("account_id")
        .and_then(|id| shared.accounts.get(id))
        .or(client_account)
        .cloned();
    if let Some(account) = &target {
        account.token_fetches.fetch_add(1, Ordering::Relaxed);
        let faults = account.faults();
        if faults.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
        }
        if faults.token_endpoint_down {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "reason": "Service Unavailable", "error": "server_error" })),
            )
                .into_response();
        }
    }

    let Some((account, secret)) = credentials
        .as_ref()
        .and_then(|(_, secret)| client_account.map(|a| (a, secret)))
    else {
        return invalid_client();
    };
    let secret_ok: bool = account
        .client_secret
        .expose_secret()
        .as_bytes()
        .ct_eq(secret.as_bytes())
        .into();
    if !secret_ok {
        return invalid_client();
    }
    if params.get("grant_type").map(String::as_str) != Some("account_credentials") {
        return oauth_error("unsupported grant type", "unsupported_grant_type");
    }
    match params.get("account_id") {
        None => return oauth_error("Missing account_id", "invalid_request"),
        Some(id) if id.as_str() != account.account_id.as_ref() => {
            return oauth_error("Invalid account_id", "invalid_request");
        }
        Some(_) => {}
    }
    if account.faults().malformed_token {
        // A 200 that is not a token response: JSON without `access_token`.
        return (
            StatusCode::OK,
            axum::Json(json!({ "token_type": "bearer", "expires_in": 3599 })),
        )
            .into_response();
    }
    issue(&shared, account)
}

const MAX_TOKEN_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

fn issue(shared: &Shared, account: &Arc<AccountState>) -> Response {
    let now = shared.clock.now();
    shared.prune_tokens(now);
    // Clamped to ten years, so no configured lifetime can overflow the clock.
    let ttl = shared
        .token_ttl_secs
        .load(Ordering::Relaxed)
        .min(MAX_TOKEN_TTL_SECS);
    let expires_at = now + chrono::Duration::seconds(ttl as i64);
    // JWT-shaped like Zoom's (`eyJ...`), but opaque: only the emulator reads it, by lookup.
    let claims = json!({ "aid": account.account_id.as_ref(), "iat": now.timestamp() });
    let access_token = format!(
        "eyJhbGciOiJIUzUxMiIsInYiOiIyLjAifQ.{}.{}",
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        random_string(43, ALPHANUMERIC)
    );
    shared.tokens.insert(
        access_token.clone(),
        IssuedToken {
            account: account.clone(),
            generation: account.generation.load(Ordering::Relaxed),
            expires_at,
        },
    );
    axum::Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": ttl,
        "scope": account.scope_string,
        "api_url": shared.base_url,
    }))
    .into_response()
}

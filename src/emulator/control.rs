//! The control endpoint under `/_emulator/`: faults, tokens, clock, counters, meetings.
//!
//! It is the HTTP face of the [`Emulator`](super::Emulator) inspection methods, for demos and
//! for code that runs the emulator in another process.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::api::start_meeting;
use super::faults::Faults;
use super::meeting::zoom_time;
use super::state::{AccountState, Shared};

type Ctx = State<Arc<Shared>>;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/accounts", get(list_accounts))
        .route("/_emulator/accounts/{account_id}/counters", get(counters))
        .route(
            "/_emulator/accounts/{account_id}/faults",
            get(get_faults).put(set_faults),
        )
        .route(
            "/_emulator/accounts/{account_id}/revoke_tokens",
            post(revoke_tokens),
        )
        .route("/_emulator/accounts/{account_id}/meetings", get(meetings))
        .route("/_emulator/meetings/{meeting_id}/start", post(start))
        .route("/_emulator/users/{user}/move", post(move_user))
        .route("/_emulator/clock", get(get_clock).put(set_clock))
        .route("/_emulator/token_ttl", put(set_token_ttl))
        .route("/_emulator/webhook/validate", post(validate_webhook))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn unknown_account() -> Response {
    error(StatusCode::NOT_FOUND, "unknown account")
}

/// Every counter of one account, as `GET /_emulator/accounts/{id}/counters` returns it.
pub fn counters_json(shared: &Shared, account: &AccountState) -> serde_json::Value {
    let (admitted, refused) = account.limiter.totals();
    let (delivered, failed) = shared.webhooks.as_ref().map_or((0, 0), |w| w.counts());
    json!({
        "token_fetches": account.token_fetches.load(Ordering::Relaxed),
        "total_requests": account.total_requests(),
        "requests": account.requests(),
        "rate_limits": account.limiter.counters(shared.clock.now()),
        "rate_limit_totals": {
            "admitted": admitted,
            "refused_429": refused,
        },
        "webhooks": { "delivered": delivered, "failed": failed },
    })
}

/// All meetings of an account (deleted ones excluded), as `GET /v2/meetings/{id}` returns them.
pub fn meetings_json(shared: &Shared, account_id: &str) -> Vec<serde_json::Value> {
    let now = shared.clock.now();
    let mut meetings: Vec<(u64, serde_json::Value)> = shared
        .meetings
        .iter()
        .filter(|m| m.account_id.as_ref() == account_id && !m.deleted)
        .map(|m| (m.seq, m.to_json(&shared.base_url, now, None, true)))
        .collect();
    meetings.sort_by_key(|(seq, _)| *seq);
    meetings.into_iter().map(|(_, m)| m).collect()
}

async fn list_accounts(State(shared): Ctx) -> Response {
    let mut ids: Vec<&str> = shared.accounts.keys().map(String::as_str).collect();
    ids.sort_unstable();
    axum::Json(json!({ "accounts": ids })).into_response()
}

async fn counters(State(shared): Ctx, Path(account_id): Path<String>) -> Response {
    match shared.accounts.get(&account_id) {
        Some(account) => axum::Json(counters_json(&shared, account)).into_response(),
        None => unknown_account(),
    }
}

async fn get_faults(State(shared): Ctx, Path(account_id): Path<String>) -> Response {
    match shared.accounts.get(&account_id) {
        Some(account) => axum::Json(account.faults()).into_response(),
        None => unknown_account(),
    }
}

async fn set_faults(
    State(shared): Ctx,
    Path(account_id): Path<String>,
    axum::Json(faults): axum::Json<Faults>,
) -> Response {
    let Some(account) = shared.accounts.get(&account_id) else {
        return unknown_account();
    };
    if !faults.rates_valid() {
        return error(
            StatusCode::BAD_REQUEST,
            "slow_rate, error_rate and reset_rate must be within 0.0..=1.0",
        );
    }
    account.set_faults(faults);
    StatusCode::NO_CONTENT.into_response()
}

async fn revoke_tokens(State(shared): Ctx, Path(account_id): Path<String>) -> Response {
    match shared.accounts.get(&account_id) {
        Some(account) => {
            account.generation.fetch_add(1, Ordering::Relaxed);
            StatusCode::NO_CONTENT.into_response()
        }
        None => unknown_account(),
    }
}

/// Where `POST /_emulator/users/{user}/move` sends the user.
#[derive(serde::Deserialize)]
struct MoveTo {
    account_id: String,
}

async fn move_user(
    State(shared): Ctx,
    Path(user): Path<String>,
    axum::Json(to): axum::Json<MoveTo>,
) -> Response {
    if !shared.accounts.contains_key(&to.account_id) {
        return unknown_account();
    }
    if move_user_to(&shared, &user, &to.account_id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "unknown user")
    }
}

/// Moves the user named by id or email into `account_id`; false if no such user or account.
pub fn move_user_to(shared: &Shared, user: &str, account_id: &str) -> bool {
    let Some(account) = shared.accounts.get(account_id) else {
        return false;
    };
    let found = shared
        .users_by_id
        .get(user)
        .or_else(|| shared.users_by_email.get(&user.to_ascii_lowercase()));
    match found {
        Some(user) => {
            user.move_to(account.account_id.clone());
            true
        }
        None => false,
    }
}

async fn meetings(State(shared): Ctx, Path(account_id): Path<String>) -> Response {
    if !shared.accounts.contains_key(&account_id) {
        return unknown_account();
    }
    axum::Json(json!({ "meetings": meetings_json(&shared, &account_id) })).into_response()
}

async fn start(State(shared): Ctx, Path(meeting_id): Path<String>) -> Response {
    match meeting_id.parse::<i64>() {
        Ok(id) if start_meeting(&shared, id) => StatusCode::NO_CONTENT.into_response(),
        _ => error(StatusCode::NOT_FOUND, "unknown meeting"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    now: DateTime<Utc>,
}

async fn get_clock(State(shared): Ctx) -> Response {
    axum::Json(json!({ "now": zoom_time(shared.clock.now()) })).into_response()
}

async fn set_clock(State(shared): Ctx, axum::Json(body): axum::Json<ClockBody>) -> Response {
    shared.clock.set_now(body.now);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TtlBody {
    secs: u64,
}

async fn set_token_ttl(State(shared): Ctx, axum::Json(body): axum::Json<TtlBody>) -> Response {
    if body.secs == 0 {
        return error(StatusCode::BAD_REQUEST, "secs must be at least 1");
    }
    shared.token_ttl_secs.store(body.secs, Ordering::Relaxed);
    StatusCode::NO_CONTENT.into_response()
}

async fn validate_webhook(State(shared): Ctx) -> Response {
    let Some(webhooks) = &shared.webhooks else {
        return error(StatusCode::NOT_FOUND, "no webhook is configured");
    };
    match webhooks.validate_url(shared.clock.now()).await {
        Ok(()) => axum::Json(json!({ "valid": true })).into_response(),
        Err(e) => axum::Json(json!({ "valid": false, "error": e.to_string() })).into_response(),
    }
}

//! The `/v2` endpoints: users and meetings, with Zoom's status codes, bodies and error codes.
//!
//! Every request passes [`gate`] first: token (124), per-endpoint counting, faults, scopes
//! (4711) and the account's rate limit (429), in that order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rand::Rng;
use serde_json::{Map, Value, json};

use super::conn::ResetSwitch;
use super::faults::roll;
use super::meeting::{
    ALPHANUMERIC, FieldError, Meeting, MeetingInput, default_settings, parse_start_time,
    random_string, zoom_time,
};
use super::ratelimit::{USER_DAILY_LIMIT, Verdict};
use super::state::{AccountState, Endpoint, Shared, User};

type Ctx = State<Arc<Shared>>;
type Conn = ConnectInfo<ResetSwitch>;
type Params = Query<HashMap<String, String>>;

/// `next_page_token`s expire after 15 minutes, as Zoom's do.
const PAGE_TOKEN_TTL_SECS: i64 = 15 * 60;

/// The `/v2` routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v2/users", get(list_users))
        .route("/v2/users/{user_id}", get(get_user))
        .route(
            "/v2/users/{user_id}/meetings",
            get(list_meetings).post(create_meeting),
        )
        .route(
            "/v2/meetings/{meeting_id}",
            get(get_meeting)
                .patch(update_meeting)
                .delete(delete_meeting),
        )
        .route("/v2/meetings/{meeting_id}/status", put(update_status))
}

// === errors ===

/// A Zoom error answer: `{"code": .., "message": ..}`, plus `errors` for validation failures.
#[derive(Debug)]
pub struct ZoomError {
    status: StatusCode,
    code: u32,
    message: String,
    errors: Vec<FieldError>,
    headers: Vec<(HeaderName, String)>,
}

impl ZoomError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    fn validation(errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(StatusCode::BAD_REQUEST, 300, "Validation Failed.")
        }
    }

    fn invalid_json() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            300,
            "Request Body should be a valid JSON object.",
        )
    }

    fn user_not_found(user_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            1001,
            format!("User does not exist: {user_id}."),
        )
    }

    fn meeting_not_found(meeting_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            3001,
            format!("Meeting does not exist: {meeting_id}."),
        )
    }

    fn bad_occurrence() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            300,
            "Invalid parameter: `occurrence_id`.",
        )
    }

    fn bad_page_token() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            300,
            "The next page token is invalid or expired.",
        )
    }

    fn header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers
            .push((HeaderName::from_static(name), value.to_string()));
        self
    }
}

impl IntoResponse for ZoomError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message });
        if !self.errors.is_empty()
            && let Value::Object(map) = &mut body
        {
            map.insert("errors".into(), json!(self.errors));
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

type ApiResult = Result<Response, ZoomError>;

// === the gate ===

/// What a request that passed the gate carries on: its account and the rate headers.
struct Admitted {
    account: Arc<AccountState>,
    now: DateTime<Utc>,
    rate_headers: [(HeaderName, String); 4],
}

impl Admitted {
    fn respond(&self, status: StatusCode, body: Option<Value>) -> Response {
        let mut response = match body {
            Some(body) => (status, axum::Json(body)).into_response(),
            None => status.into_response(),
        };
        for (name, value) in &self.rate_headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                response.headers_mut().insert(name.clone(), value);
            }
        }
        response
    }
}

fn invalid_token() -> ZoomError {
    ZoomError::new(StatusCode::UNAUTHORIZED, 124, "Invalid access token.")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn per_second_429(category: &str, limit: u32) -> ZoomError {
    ZoomError::new(
        StatusCode::TOO_MANY_REQUESTS,
        429,
        "You have reached the maximum per-second rate limit for this API. Try again later.",
    )
    .header("x-ratelimit-category", category)
    .header("x-ratelimit-type", "QPS")
    .header("x-ratelimit-limit", limit)
    .header("x-ratelimit-remaining", 0)
}

/// Authenticates, counts, injects faults, checks scopes and admits by rate limit.
async fn gate(
    shared: &Shared,
    switch: &ResetSwitch,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    endpoint: Endpoint,
) -> Result<Admitted, ZoomError> {
    if query.contains_key("access_token") {
        return Err(ZoomError::new(
            StatusCode::UNAUTHORIZED,
            124,
            "Invalid access token, this access token is not supported as query parameter string.",
        ));
    }
    let token = bearer(headers).ok_or_else(invalid_token)?;
    let now = shared.clock.now();
    let (account, valid, expired) = {
        let issued = shared.tokens.get(token).ok_or_else(invalid_token)?;
        let valid = issued.generation == issued.account.generation.load(Ordering::Relaxed);
        (issued.account.clone(), valid, issued.expires_at <= now)
    };
    account.count_request(endpoint);
    if !valid {
        return Err(invalid_token());
    }
    if expired {
        return Err(ZoomError::new(
            StatusCode::UNAUTHORIZED,
            124,
            "Access token is expired.",
        ));
    }

    let faults = account.faults();
    let delay = faults.api_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if roll(faults.reset_rate) {
        switch.reset();
        return Err(ZoomError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            500,
            "connection reset",
        ));
    }
    if roll(faults.error_rate) {
        return Err(ZoomError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            503,
            "Service temporarily unavailable.",
        ));
    }
    let label = endpoint.label();
    if faults.force_429 {
        account.limiter.count_refused();
        return Err(per_second_429(label.as_str(), 0));
    }

    if !endpoint
        .scopes()
        .iter()
        .any(|s| account.scopes.contains(*s))
    {
        return Err(ZoomError::new(
            StatusCode::BAD_REQUEST,
            4711,
            format!(
                "Invalid access token, does not contain scopes:[{}].",
                endpoint.granular_scopes().join(", ")
            ),
        ));
    }

    let verdict = if shared.enforce_rate_limits {
        account.limiter.admit(label, now)
    } else {
        Verdict::Allowed {
            limit: u32::MAX,
            remaining: u32::MAX,
        }
    };
    match verdict {
        Verdict::Allowed { limit, remaining } => Ok(Admitted {
            account,
            now,
            rate_headers: [
                (HeaderName::from_static("x-ratelimit-category"), label.as_str().to_owned()),
                (HeaderName::from_static("x-ratelimit-type"), "QPS".to_owned()),
                (HeaderName::from_static("x-ratelimit-limit"), limit.to_string()),
                (HeaderName::from_static("x-ratelimit-remaining"), remaining.to_string()),
            ],
        }),
        Verdict::PerSecond { limit } => Err(per_second_429(label.as_str(), limit)),
        Verdict::Daily { limit, reset_at } => Err(ZoomError::new(
            StatusCode::TOO_MANY_REQUESTS,
            429,
            "You have reached the maximum daily rate limit for this API. Refer to the response header for details on when you can make another request.",
        )
        .header("x-ratelimit-category", label.as_str())
        .header("x-ratelimit-type", "Daily-limit")
        .header("x-ratelimit-limit", limit)
        .header("x-ratelimit-remaining", 0)
        .header("retry-after", zoom_time(reset_at))),
    }
}

/// Counts one create or update against the host's 100 per UTC day.
fn admit_host(shared: &Shared, admitted: &Admitted, host_id: &str) -> Result<(), ZoomError> {
    if !shared.enforce_rate_limits {
        return Ok(());
    }
    admitted
        .account
        .limiter
        .admit_user(host_id, admitted.now)
        .map_err(|exceeded| {
            ZoomError::new(
                StatusCode::TOO_MANY_REQUESTS,
                429,
                format!(
                    "You have exceeded the daily rate limit ({USER_DAILY_LIMIT}) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00."
                ),
            )
            .header("x-ratelimit-category", "Light")
            .header("x-ratelimit-type", "Daily-limit")
            .header("x-ratelimit-limit", USER_DAILY_LIMIT)
            .header("x-ratelimit-remaining", 0)
            .header("retry-after", zoom_time(exceeded.reset_at))
        })
}

fn json_object(body: &Bytes) -> Result<Map<String, Value>, ZoomError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ZoomError::invalid_json()),
    }
}

// === paging ===

/// Page size from the query: default 30, clamped to `1..=max`; not a number is a 300.
fn page_size(query: &HashMap<String, String>, max: usize) -> Result<usize, ZoomError> {
    match query.get("page_size") {
        None => Ok(30),
        Some(text) => text
            .parse::<usize>()
            .map(|n| n.clamp(1, max))
            .map_err(|_| ZoomError::validation(vec![field_error("page_size")])),
    }
}

fn field_error(field: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: "Invalid field.".to_owned(),
    }
}

/// Opaque token for the next page: the listing it belongs to, the offset and its expiry.
fn page_token(scope: &str, offset: usize, now: DateTime<Utc>) -> String {
    let exp = now.timestamp() + PAGE_TOKEN_TTL_SECS;
    URL_SAFE_NO_PAD.encode(format!("{scope}\n{offset}\n{exp}"))
}

/// The offset a `next_page_token` points at, if it is this listing's and still fresh.
fn page_offset(
    query: &HashMap<String, String>,
    scope: &str,
    now: DateTime<Utc>,
) -> Result<usize, ZoomError> {
    let Some(token) = query.get("next_page_token").filter(|t| !t.is_empty()) else {
        let page_number = query
            .get("page_number")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(1);
        return Ok(page_number.saturating_sub(1) * page_size(query, usize::MAX)?);
    };
    let decoded = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(ZoomError::bad_page_token)?;
    let mut parts = decoded.split('\n');
    let (Some(s), Some(offset), Some(exp)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ZoomError::bad_page_token());
    };
    let offset = offset.parse::<usize>().ok();
    let exp = exp.parse::<i64>().ok();
    match (offset, exp) {
        (Some(offset), Some(exp)) if s == scope && exp > now.timestamp() => Ok(offset),
        _ => Err(ZoomError::bad_page_token()),
    }
}

/// Zoom's paging envelope around `items` (`key` names the array).
fn page(
    key: &str,
    items: Vec<Value>,
    offset: usize,
    size: usize,
    scope: &str,
    now: DateTime<Utc>,
) -> Value {
    let total = items.len();
    let next = offset + size;
    let page_items: Vec<Value> = items.into_iter().skip(offset).take(size).collect();
    json!({
        "next_page_token": if next < total { page_token(scope, next, now) } else { String::new() },
        "page_count": total.div_ceil(size),
        "page_number": offset / size + 1,
        "page_size": size,
        "total_records": total,
        key: page_items,
    })
}

// === users ===

fn user_json(user: &User, account: &AccountState, base_url: &str) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "display_name": format!("{} {}", user.first_name, user.last_name).trim().to_owned(),
        "type": user.user_type,
        "status": user.status.as_str(),
        "account_id": account.account_id.as_ref(),
        "account_number": account.account_number,
        "role_name": "Member",
        "role_id": "2",
        "pmi": user.pmi,
        "use_pmi": false,
        "personal_meeting_url": format!("{base_url}/j/{}", user.pmi),
        "timezone": user.timezone,
        "verified": 1,
        "dept": "",
        "created_at": "2024-01-01T00:00:00Z",
        "user_created_at": "2024-01-01T00:00:00Z",
        "language": "en-US",
        "cluster": "us05",
        "group_ids": [],
        "login_types": [100],
    })
}

async fn get_user(
    State(shared): Ctx,
    ConnectInfo(switch): Conn,
    Path(user_id): Path<String>,
    Query(query): Params,
    headers: HeaderMap,
) -> ApiResult {
    let admitted = gate(&shared, &switch, &headers, &query, Endpoint::GetUser).await?;
    let user = shared
        .find_user(&admitted.account, &user_id)
        .ok_or_else(|| ZoomError::user_not_found(&user_id))?;
    let body = user_json(&user, &admitted.account, &shared.base_url);
    Ok(admitted.respond(StatusCode::OK, Some(body)))
}

async fn list_users(
    State(shared): Ctx,
    ConnectInfo(switch): Conn,
    Query(query): Params,
    headers: HeaderMap,
) -> ApiResult {
    let admitted = gate(&shared, &switch, &headers, &query, Endpoint::ListUsers).await?;
    let status = query.get("status").map_or("active", String::as_str);
    if !["active", "inactive", "pending"].contains(&status) {
        return Err(ZoomError::validation(vec![field_error("status")]));
    }
    let size = page_size(&query, 2000)?;
    let scope = format!("users:{}:{status}", admitted.account.account_id);
    let offset = page_offset(&query, &scope, admitted.now)?;
    let items: Vec<Value> = shared
        .users
        .iter()
        .filter(|u| u.account_id() == admitted.account.account_id && u.status.as_str() == status)
        .map(|u| {
            let mut item = user_json(u, &admitted.account, &shared.base_url);
            if let Value::Object(map) = &mut item {
                // List items carry no account fields, and pending users no id.
                for key in [
                    "account_id",
                    "account_number",
                    "role_name",
                    "personal_meeting_url",
                    "use_pmi",
                    "cluster",
                    "login_types",
                ] {
                    map.remove(key);
                }
                if u.status.as_str() == "pending" {
                    map.remove("id");
                }
            }
            item
        })
        .collect();
    let body = page("users", items, offset, size, &scope, admitted.now);
    Ok(admitted.respond(StatusCode::OK, Some(body)))
}

// === meetings ===

fn parse_meeting_id(text: &str) -> Result<i64, ZoomError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ZoomError::meeting_not_found(text))
}

fn new_meeting_id(shared: &Shared) -> i64 {
    let mut rng = rand::rng();
    loop {
        let id = rng.random_range(80_000_000_000_i64..=99_999_999_999);
        if !shared.meetings.contains_key(&id) {
            return id;
        }
    }
}

fn new_uuid() -> String {
    let bytes: [u8; 16] = rand::random();
    STANDARD.encode(bytes)
}

fn webhook(shared: &Shared, event: &'static str, at: DateTime<Utc>, payload: Value) {
    if let Some(webhooks) = &shared.webhooks {
        webhooks.send(event, at, payload);
    }
}

fn time_zone(name: &str) -> Tz {
    name.parse::<Tz>().unwrap_or(Tz::UTC)
}

async fn create_meeting(
    State(shared): Ctx,
    ConnectInfo(switch): Conn,
    Path(user_id): Path<String>,
    Query(query): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let admitted = gate(&shared, &switch, &headers, &query, Endpoint::CreateMeeting).await?;
    let host = shared
        .find_user(&admitted.account, &user_id)
        .ok_or_else(|| ZoomError::user_not_found(&user_id))?;
    let input = MeetingInput::parse(&json_object(&body)?).map_err(ZoomError::validation)?;
    let meeting_type = input.meeting_type.unwrap_or(2);
    let timezone = input
        .timezone
        .clone()
        .unwrap_or_else(|| host.timezone.clone());
    let now = admitted.now;
    let start_time = if matches!(meeting_type, 2 | 8) {
        match &input.start_time {
            Some(text) => Some(
                parse_start_time(text, time_zone(&timezone))
                    .ok_or_else(|| ZoomError::validation(vec![field_error("start_time")]))?,
            ),
            None => Some(now),
        }
    } else {
        None
    };
    if meeting_type == 8 && input.recurrence.is_none() {
        return Err(ZoomError::validation(vec![field_error("recurrence")]));
    }
    admit_host(&shared, &admitted, &host.id)?;

    let mut settings = default_settings();
    settings.extend(input.settings.unwrap_or_default());
    let password = match input.password {
        Some(password) => password,
        None if input.default_password.unwrap_or(true) => random_string(6, ALPHANUMERIC),
        None => String::new(),
    };
    let mut meeting = Meeting {
        id: new_meeting_id(&shared),
        seq: shared.meeting_seq.fetch_add(1, Ordering::Relaxed),
        uuid: new_uuid(),
        account_id: admitted.account.account_id.clone(),
        host_id: host.id.clone(),
        host_email: host.email.clone(),
        topic: input.topic.unwrap_or_else(|| "Zoom Meeting".to_owned()),
        meeting_type,
        started: false,
        started_at: None,
        deleted: false,
        start_time,
        duration: input.duration.unwrap_or(60),
        timezone,
        agenda: input.agenda.unwrap_or_default(),
        created_at: now,
        password,
        encrypted_password: random_string(32, ALPHANUMERIC),
        zak: random_string(40, ALPHANUMERIC),
        settings,
        recurrence: input.recurrence.filter(|_| matches!(meeting_type, 3 | 8)),
        occurrences: Vec::new(),
        tracking_fields: input.tracking_fields.unwrap_or_default(),
        pre_schedule: input.pre_schedule.unwrap_or(false),
        template_id: input.template_id,
    };
    meeting.refresh_occurrences();
    let body = meeting.to_json(&shared.base_url, now, None, false);
    webhook(
        &shared,
        "meeting.created",
        now,
        json!({
            "account_id": meeting.account_id.as_ref(),
            "operator": host.email,
            "operator_id": host.id,
            "operation": "single",
            "object": meeting.webhook_object(&shared.base_url),
        }),
    );
    shared.meetings.insert(meeting.id, meeting);
    if roll(admitted.account.faults().create_then_reset_rate) {
        // Applied, and the answer never leaves: the client cannot know whether it was.
        switch.reset();
        return Err(ZoomError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            500,
            "connection reset",
        ));
    }
    Ok(admitted.respond(StatusCode::CREATED, Some(body)))
}

async fn list_meetings(
    State(shared): Ctx,
    ConnectInfo(switch): Conn,
    Path(user_id): Path<String>,
    Query(query): Params,
    headers: HeaderMap,
) -> ApiResult {
    let admitted = gate(&shared, &switch, &headers, &query, Endpoint::ListMeetings).await?;
    let host = shared
        .find_user(&admitted.account, &user_id)
        .ok_or_else(|| ZoomError::user_not_found(&user_id))?;
    let kind = query.get("type").map_or("scheduled", String::as_str);
    if ![
        "scheduled",
        "live",
        "upcoming",
        "upcoming_meetings",
        "previous_meetings",
    ]
    .contains(&kind)
    {
        return Err(ZoomError::validation(vec![field_error("type")]));
    }
    let size = page_size(&query, 300)?;
    let scope = format!("meetings:{}:{kind}", host.id);
    let offset = page_offset(&query, &scope, admitted.now)?;
    let now = admitted.now;
    let mut listed: Vec<(u64, Value)> = shared
        .meetings
        .iter()
        .filter(|m| m.host_id == host.id && !m.deleted && m.meeting_type != 1)
        .filter(|m| {
            let last_start = m
                .occurrences
                .iter()
                .filter(|o| !o.deleted)
                .map(|o| o.start_time)
                .max()
                .or(m.start_time);
            let ends = last_start.map(|s| s + chrono::Duration::minutes(m.duration.into()));
            match kind {
                "live" => m.started,
                "upcoming" | "upcoming_meetings" => ends.is_none_or(|e| e >= now),
                "previous_meetings" => ends.is_some_and(|e| e < now),
                _ => true,
            }
        })
        .map(|m| (m.seq, m.to_list_item(&shared.base_url)))
        .collect();
    listed.sort_by_key(|(seq, _)| *seq);
    let items = listed.into_iter().map(|(_, item)| item).collect();
    let body = page("meetings", items, offset, size, &scope, now);
    Ok(admitted.respond(StatusCode::OK, Some(body)))
}

async fn get_meeting(
    State(shared): Ctx,
    ConnectInfo(switch): Conn,
    Path(meeting_id): Path<String>,
    Query(query): Params,
    headers: HeaderMap,
) -> ApiResult {
    let admitted = gate(&shared, &switch, &headers, &query, Endpoint::GetMeeting).await?;
    let id = parse_meeting_id(&meeting_id)?;
    let meeting = shared
        .meetings
        .get(&id)
        .filter(|m| m.account_id == admitted.account.account_id && !m.deleted)
        .ok_or_else(|| ZoomError::meeting_not_found(&meeting_id))?;
    let occurrence = match query.get("occurrence_id") {
        Some(occurrence_id) => Some(
            meeting
                .occurrences
                .iter()
                .find(|o| &o.id() == occurrence_id && !o.deleted)
                .ok_or_else(ZoomError::bad_occurrence)?,
        ),
        None => None,
    };
    let show_previous = query
        .get("show_previous_occurrences")
        .is_some_and(|v| v == "true");
    let body = meeting.to_json(&shared.base_url, admitted.now, occurrence, show_previous);
    drop(meeting);
    Ok(admitted.respond(StatusCode::OK, Some(body)))
}

async fn update_meeting(
    State(shared): Ctx,
    ConnectInfo(switch): Conn,
    Path(meeting_id): Path<String>,
    Query(query): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let admitted = gate(&shared, &switch, &headers, &query, Endpoint::UpdateMeeting).await?;
    let id = parse_meeting_id(&meeting_id)?;
    let now = admitted.now;
    let mut meeting = shared
        .meetings
        .get_mut(&id)
        .filter(|m| m.account_id == admitted.account.account_id && !m.deleted)
        .ok_or_else(|| ZoomError::meeting_not_found(&meeting_id))?;
    let input = MeetingInput::parse(&json_object(&body)?).map_err(ZoomError::validation)?;
    let timezone = input
        .timezone
        .clone()
        .unwrap_or_else(|| meeting.timezone.clone());
    // A start time in the past is ignored, as Zoom documents for PATCH.
    let start_time = match &input.start_time {
        Some(text) => {
            let start = parse_start_time(text, time_zone(&timezone))
                .ok_or_else(|| ZoomError::validation(vec![field_error("start_time")]))?;
            (start > now).then_some(start)
        }
        None => None,
    };
    let new_type = input.meeting_type.unwrap_or(meeting.meeting_type);
    if new_type == 8 && input.recurrence.is_none() && meeting.recurrence.is_none() {
        return Err(ZoomError::validation(vec![field_error("recurrence")]));
    }
    admit_host(&shared, &admitted, &meeting.host_id)?;

    let old = meeting.webhook_object(&shared.base_url);
    if let Some(occurrence_id) = query.get("occurrence_id") {
        let occurrence = meeting
            .occurrences
            .iter_mut()
            .find(|o| &o.id() == occurrence_id && !o.deleted)
            .ok_or_else(ZoomError::bad_occurrence)?;
        if let Some(start) = start_time {
            occurrence.start_time = start;
        }
        if let Some(duration) = input.duration {
            occurrence.duration = duration;
        }
        if let Some(agenda) = input.agenda {
            meeting.agenda = agenda;
        }
    } else {
        let reschedule = start_time.is_some()
            || input.duration.is_some()
            || input.recurrence.is_some()
            || input.timezone.is_some()
            || new_type != meeting.meeting_type;
        if let Some(topic) = input.topic {
            meeting.topic = topic;
        }
        if let Some(agenda) = input.agenda {
            meeting.agenda = agenda;
        }
        if let Some(password) = input.password {
            meeting.password = password;
        }
        if let Some(duration) = input.duration {
            meeting.duration = duration;
        }
        if let Some(settings) = input.settings {
            meeting.settings.extend(settings);
        }
        if let Some(fields) = input.tracking_fields {
            meeting.tracking_fields = fields;
        }
        if let Some(pre_schedule) = input.pre_schedule {
            meeting.pre_schedule = pre_schedule;
        }
        if input.recurrence.is_some() {
            meeting.recurrence = input.recurrence;
        }
        meeting.timezone = timezone;
        meeting.meeting_type = new_type;
        if let Some(start) = start_time {
            meeting.start_time = Some(start);
        } else if matches!(new_type, 2 | 8) && meeting.start_time.is_none() {
            meeting.start_time = Some(now);
        }
        if reschedule {
            meeting.refresh_occurrences();
        }
    }
    let new = meeting.webhook_object(&shared.base_url);
    let account_id = meeting.account_id.clone();
    let (host_email, host_id) = (meeting.host_email.clone(), meeting.host_id.clone());
    drop(meeting);
    webhook(
        &shared,
        "meeting.updated",
        now,
        json!({
            "account_id": account_id.as_ref(),
            "operator": host_email,
            "operator_id": host_id,
            "scope": if query.contains_key("occurrence_id") { "single" } else { "all" },
            "object": changed_fields(&new, &old),
            "old_object": changed_fields(&old, &new),
            "time_stamp": now.timestamp_millis(),
        }),
    );
    Ok(admitted.respond(StatusCode::NO_CONTENT, None))
}

/// `id`, `uuid` and the fields of `object` whose value differs in `other`, as in
/// `meeting.updated`'s `object` / `old_object`.
fn changed_fields(object: &Value, other: &Value) -> Value {
    let mut out = Map::new();
    if let (Value::Object(object), Value::Object(other)) = (object, other) {
        for (key, value) in object {
            if matches!(key.as_str(), "id" | "uuid") || other.get(key) != Some(value) {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

async fn delete_meeting(
    State(shared): Ctx,
    ConnectInfo(switch): Conn,
    Path(meeting_id): Path<String>,
    Query(query): Params,
    headers: HeaderMap,
) -> ApiResult {
    let admitted = gate(&shared, &switch, &headers, &query, Endpoint::DeleteMeeting).await?;
    let id = parse_meeting_id(&meeting_id)?;
    let mut meeting = shared
        .meetings
        .get_mut(&id)
        .filter(|m| m.account_id == admitted.account.account_id && !m.deleted)
        .ok_or_else(|| ZoomError::meeting_not_found(&meeting_id))?;
    let mut object = meeting.webhook_object(&shared.base_url);
    let operation = match query.get("occurrence_id") {
        Some(occurrence_id) => {
            let occurrence = meeting
                .occurrences
                .iter_mut()
                .find(|o| &o.id() == occurrence_id && !o.deleted)
                .ok_or_else(ZoomError::bad_occurrence)?;
            occurrence.deleted = true;
            if let Value::Object(map) = &mut object {
                map.insert(
                    "occurrences".into(),
                    json!([{
                        "occurrence_id": occurrence.id(),
                        "start_time": zoom_time(occurrence.start_time),
                    }]),
                );
            }
            "single"
        }
        None => {
            meeting.deleted = true;
            meeting.started = false;
            "all"
        }
    };
    let account_id = meeting.account_id.clone();
    let (host_email, host_id) = (meeting.host_email.clone(), meeting.host_id.clone());
    drop(meeting);
    webhook(
        &shared,
        "meeting.deleted",
        admitted.now,
        json!({
            "account_id": account_id.as_ref(),
            "operator": host_email,
            "operator_id": host_id,
            "operation": operation,
            "object": object,
        }),
    );
    Ok(admitted.respond(StatusCode::NO_CONTENT, None))
}

async fn update_status(
    State(shared): Ctx,
    ConnectInfo(switch): Conn,
    Path(meeting_id): Path<String>,
    Query(query): Params,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let admitted = gate(
        &shared,
        &switch,
        &headers,
        &query,
        Endpoint::UpdateMeetingStatus,
    )
    .await?;
    let id = parse_meeting_id(&meeting_id)?;
    let body = json_object(&body)?;
    let recover = match body.get("action").and_then(Value::as_str) {
        Some("end") => false,
        Some("recover") => true,
        _ => return Err(ZoomError::validation(vec![field_error("action")])),
    };
    let mut meeting = shared
        .meetings
        .get_mut(&id)
        .filter(|m| m.account_id == admitted.account.account_id && (recover || !m.deleted))
        .ok_or_else(|| ZoomError::meeting_not_found(&meeting_id))?;
    if recover {
        meeting.deleted = false;
        return Ok(admitted.respond(StatusCode::NO_CONTENT, None));
    }
    if meeting.started {
        meeting.started = false;
        let started_at = meeting.started_at.unwrap_or(admitted.now);
        let object = meeting.lifecycle_object(started_at, Some(admitted.now));
        let account_id = meeting.account_id.clone();
        drop(meeting);
        webhook(
            &shared,
            "meeting.ended",
            admitted.now,
            json!({ "account_id": account_id.as_ref(), "object": object }),
        );
    }
    Ok(admitted.respond(StatusCode::NO_CONTENT, None))
}

/// Marks a meeting started and sends `meeting.started`, as if its host had joined.
pub fn start_meeting(shared: &Shared, meeting_id: i64) -> bool {
    let now = shared.clock.now();
    let Some(mut meeting) = shared.meetings.get_mut(&meeting_id).filter(|m| !m.deleted) else {
        return false;
    };
    if meeting.started {
        return true;
    }
    meeting.started = true;
    meeting.started_at = Some(now);
    let object = meeting.lifecycle_object(now, None);
    let account_id = meeting.account_id.clone();
    drop(meeting);
    webhook(
        shared,
        "meeting.started",
        now,
        json!({ "account_id": account_id.as_ref(), "object": object }),
    );
    true
}

//! Client tests against a hand-made fake Zoom on 127.0.0.1:0 serving canned, often broken, answers.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response as AxumResponse};
use base64::Engine as _;
use chrono::TimeZone as _;
use secrecy::SecretString;
use serde_json::json;
use tokio::net::TcpListener;

use super::*;
use crate::accounts::{AccountName, Accounts, Plan};
use crate::token::{TokenCache, TokenSettings};

const SECRET: &str = "hunter2-secret";

/// One request as the fake saw it, with the raw (still percent-encoded) path and query.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

struct Fake {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    /// Starts a fake that records each request and answers with `respond(&request)`.
    async fn start(respond: impl Fn(&Seen) -> AxumResponse + Send + Sync + 'static) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let respond = Arc::new(respond);
        let record = Arc::clone(&seen);
        let app = Router::new().fallback(move |request: Request| {
            let record = Arc::clone(&record);
            let respond = Arc::clone(&respond);
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let seen = Seen {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body: body.to_vec(),
                };
                let response = respond(&seen);
                record.lock().unwrap().push(seen);
                response
            }
        });
        Self {
            base: serve(app).await,
            seen,
        }
    }

    fn client(&self) -> ZoomClient {
        client_for(&self.base, Duration::from_secs(5))
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn only_request(&self) -> Seen {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "{requests:?}");
        requests[0].clone()
    }
}

async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Starts a server that accepts requests and never answers them.
async fn hanging_zoom() -> String {
    serve(Router::new().fallback(std::future::pending::<AxumStatus>)).await
}

fn client_for(base: &str, timeout: Duration) -> ZoomClient {
    let endpoints = ZoomEndpoints {
        api_url: format!("{base}/v2"),
        oauth_url: format!("{base}/oauth/token"),
    };
    ZoomClient::new(&endpoints, timeout).unwrap()
}

fn reply(status: u16, body: Value) -> AxumResponse {
    let status = AxumStatus::from_u16(status).unwrap();
    (status, axum::Json(body)).into_response()
}

fn reply_raw(status: u16, body: &'static str) -> AxumResponse {
    (AxumStatus::from_u16(status).unwrap(), body).into_response()
}

fn no_content() -> AxumResponse {
    AxumStatus::NO_CONTENT.into_response()
}

fn account() -> Account {
    Account {
        name: AccountName::parse("sales").unwrap(),
        zoom_account_id: "AbC123_x-Y".into(),
        client_id: "client-id".into(),
        client_secret: SecretString::from(SECRET),
        plan: Plan::Pro,
        budget: Default::default(),
    }
}

fn token() -> AccessToken {
    AccessToken::new("eyJtest.token")
}

fn grant_body() -> Value {
    json!({
        "access_token": "eyJhbGciOiJIUzUxMiJ9.test", "token_type": "bearer",
        "expires_in": 3599, "scope": "meeting:read:meeting:admin user:read:user:admin",
        "api_url": "https://api.zoom.us"
    })
}

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// A fake that answers every request with the same status and JSON body.
async fn answering(status: u16, body: Value) -> Fake {
    Fake::start(move |_| reply(status, body.clone())).await
}

// === token endpoint ===

#[tokio::test]
async fn token_request_uses_basic_auth_and_a_form_body() {
    let fake = answering(200, grant_body()).await;

    let grant = fake.client().request_token(&account()).await.unwrap();

    assert_eq!(grant.access_token.expose(), "eyJhbGciOiJIUzUxMiJ9.test");
    assert_eq!(grant.expires_in, Duration::from_secs(3599));
    let request = fake.only_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/oauth/token", "nothing in the query string");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("client-id:{SECRET}"));
    assert_eq!(header(&request, "authorization"), format!("Basic {basic}"));
    assert_eq!(
        header(&request, "content-type"),
        "application/x-www-form-urlencoded"
    );
    let mut form: Vec<_> = std::str::from_utf8(&request.body)
        .unwrap()
        .split('&')
        .collect();
    form.sort_unstable();
    assert_eq!(
        form,
        ["account_id=AbC123_x-Y", "grant_type=account_credentials"]
    );
}

#[test]
fn malformed_token_responses_are_rejected() {
    let bodies: [&[u8]; 12] = [
        b"",
        b"not json",
        b"null",
        b"[]",
        br#"{"token_type":"bearer","expires_in":3600}"#,
        br#"{"access_token":"","expires_in":3600}"#,
        br#"{"access_token":"   ","expires_in":3600}"#,
        br#"{"access_token":"eyJ","expires_in":0}"#,
        br#"{"access_token":"eyJ","expires_in":"3600"}"#,
        br#"{"access_token":"eyJ","expires_in":-5}"#,
        br#"{"access_token":"eyJ","expires_in":3600.5}"#,
        br#"{"access_token":"eyJ","expires_in":3600,"token_type":"mac"}"#,
    ];
    for body in bodies {
        let result = token_from_response(StatusCode::OK, body);
        assert!(
            matches!(result, Err(TokenError::Malformed(_))),
            "{}: {result:?}",
            String::from_utf8_lossy(body)
        );
    }
    let minimal = token_from_response(StatusCode::OK, br#"{"access_token":"eyJ","expires_in":1}"#);
    assert_eq!(minimal.unwrap().expires_in, Duration::from_secs(1));
}

#[test]
fn token_errors_are_classified_by_status() {
    let rejected = token_from_response(
        StatusCode::BAD_REQUEST,
        br#"{"reason":"Invalid client_id or client_secret","error":"invalid_client"}"#,
    );
    assert_eq!(
        rejected.unwrap_err(),
        TokenError::Rejected {
            status: 400,
            error: "invalid_client".into(),
            reason: "Invalid client_id or client_secret".into(),
        }
    );
    assert!(matches!(
        token_from_response(StatusCode::UNAUTHORIZED, b"<html>nope</html>"),
        Err(TokenError::Malformed(_))
    ));
    for status in [
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::FOUND,
    ] {
        assert!(
            matches!(
                token_from_response(status, br#"{"error":"x"}"#),
                Err(TokenError::Unavailable(_))
            ),
            "{status}"
        );
    }
}

#[tokio::test]
async fn rejected_credentials_never_echo_the_secret() {
    let fake = answering(
        400,
        json!({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}),
    )
    .await;

    let error = fake.client().request_token(&account()).await.unwrap_err();

    assert!(matches!(error, TokenError::Rejected { status: 400, .. }));
    assert!(!format!("{error} {error:?}").contains(SECRET));
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);

    let error = client_for(&base, Duration::from_secs(5))
        .request_token(&account())
        .await
        .unwrap_err();

    assert!(matches!(error, TokenError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn a_hanging_token_endpoint_times_out_as_unavailable() {
    let base = hanging_zoom().await;

    let error = client_for(&base, Duration::from_millis(200))
        .request_token(&account())
        .await
        .unwrap_err();

    assert!(matches!(error, TokenError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn the_token_cache_fetches_through_the_client_once() {
    let fake = answering(200, grant_body()).await;
    let accounts = Accounts::new([account()]);
    let cache = TokenCache::new(
        fake.client(),
        &accounts,
        TokenSettings::default(),
        Default::default(),
    );
    let name = AccountName::parse("sales").unwrap();

    let first = cache.token(&name).await.unwrap();
    let second = cache.token(&name).await.unwrap();

    assert_eq!(first.expose(), "eyJhbGciOiJIUzUxMiJ9.test");
    assert_eq!(first, second);
    assert_eq!(fake.requests().len(), 1);
    assert!(cache.has_token(&name));
}

// === REST calls ===

#[tokio::test]
async fn get_user_sends_the_bearer_token_and_encodes_the_user() {
    let fake = answering(
        200,
        json!({"id": "KDcuGIm1QgePTO8WbOqwIQ", "email": "a@example.com", "account_id": "acc"}),
    )
    .await;

    let user = fake
        .client()
        .get_user(&token(), "a/b c?#%@example.com")
        .await
        .unwrap();

    assert_eq!(user.id, "KDcuGIm1QgePTO8WbOqwIQ");
    assert_eq!(user.account_id.as_deref(), Some("acc"));
    let request = fake.only_request();
    assert_eq!(request.method, "GET");
    assert_eq!(request.uri, "/v2/users/a%2Fb%20c%3F%23%25@example.com");
    assert_eq!(header(&request, "authorization"), "Bearer eyJtest.token");
}

#[tokio::test]
async fn user_ids_that_are_not_one_segment_are_refused_locally() {
    let fake = answering(200, json!({"id": "x"})).await;
    let client = fake.client();

    for user in ["", ".", ".."] {
        let error = client.get_user(&token(), user).await.unwrap_err();
        assert!(matches!(error, ZoomError::InvalidInput(_)), "{user:?}");
        let error = client
            .list_meetings(&token(), user, &ListMeetings::default())
            .await
            .unwrap_err();
        assert!(matches!(error, ZoomError::InvalidInput(_)), "{user:?}");
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn create_meeting_posts_the_body_and_keeps_every_field() {
    let fake = answering(
        201,
        json!({
            "id": 92674392836_i64, "uuid": "aDYlohsHRtCd4ii1uC2+hA==", "host_id": "h1",
            "topic": "Planning", "type": 2, "start_time": "2030-01-01T10:00:00Z", "duration": 30,
            "join_url": "https://zoom.us/j/92674392836", "start_url": "https://zoom.us/s/1?zak=x",
            "settings": {"waiting_room": true}, "creation_source": "open_api", "pmi": "123"
        }),
    )
    .await;
    let body = json!({"topic": "Planning", "type": 2, "duration": 30});

    let meeting = fake
        .client()
        .create_meeting(&token(), "user@example.com", body.as_object().unwrap())
        .await
        .unwrap();

    assert_eq!(meeting.id, 92_674_392_836);
    assert_eq!(meeting.duration, Some(30));
    assert_eq!(meeting.settings.unwrap()["waiting_room"], true);
    assert_eq!(meeting.rest["creation_source"], "open_api");
    let request = fake.only_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/v2/users/user@example.com/meetings");
    assert_eq!(header(&request, "content-type"), "application/json");
    assert_eq!(
        serde_json::from_slice::<Value>(&request.body).unwrap(),
        body
    );
}

#[tokio::test]
async fn get_meeting_passes_the_occurrence() {
    let fake = answering(200, json!({"id": 5, "topic": "t"})).await;
    let client = fake.client();

    client.get_meeting(&token(), 5, None).await.unwrap();
    client
        .get_meeting(&token(), 5, Some("1648194360000"))
        .await
        .unwrap();

    let uris: Vec<_> = fake.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(
        uris,
        [
            "/v2/meetings/5",
            "/v2/meetings/5?occurrence_id=1648194360000"
        ]
    );
}

#[tokio::test]
async fn update_delete_and_end_use_the_documented_methods() {
    let fake = Fake::start(|_| no_content()).await;
    let client = fake.client();
    let body = json!({"agenda": "new"});

    client
        .update_meeting(&token(), 7, Some("16"), body.as_object().unwrap())
        .await
        .unwrap();
    client.delete_meeting(&token(), 7, None).await.unwrap();
    client
        .delete_meeting(&token(), 7, Some("16"))
        .await
        .unwrap();
    client.end_meeting(&token(), 7).await.unwrap();

    let requests = fake.requests();
    let calls: Vec<_> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    assert_eq!(
        calls,
        [
            "PATCH /v2/meetings/7?occurrence_id=16",
            "DELETE /v2/meetings/7",
            "DELETE /v2/meetings/7?occurrence_id=16",
            "PUT /v2/meetings/7/status",
        ]
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&requests[0].body).unwrap(),
        body
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&requests[3].body).unwrap(),
        json!({"action": "end"})
    );
}

#[tokio::test]
async fn list_meetings_sends_the_query_and_reads_the_page() {
    let fake = answering(
        200,
        json!({
            "next_page_token": "Tva2CuIdTgsv8wAnhyAdU3m06Y2HuLQtlh3", "page_count": 2,
            "page_size": 300, "total_records": 301,
            "meetings": [{"id": 1, "topic": "a"}, {"id": 2, "agenda": "b"}]
        }),
    )
    .await;
    let query = ListMeetings {
        kind: MeetingListKind::Upcoming,
        page_size: Some(300),
        next_page_token: Some("abc+/=".into()),
    };

    let page = fake
        .client()
        .list_meetings(&token(), "u1", &query)
        .await
        .unwrap();

    assert_eq!(page.meetings.len(), 2);
    assert_eq!(page.total_records, Some(301));
    assert_eq!(
        page.next_page_token.as_deref(),
        Some("Tva2CuIdTgsv8wAnhyAdU3m06Y2HuLQtlh3")
    );
    assert_eq!(page.rest["page_count"], 2);
    assert_eq!(
        fake.only_request().uri,
        "/v2/users/u1/meetings?type=upcoming&page_size=300&next_page_token=abc%2B%2F%3D"
    );
}

// === errors ===

#[tokio::test]
async fn zoom_error_bodies_become_typed_errors() {
    let fake = Fake::start(|seen| match seen.uri.as_str() {
        "/v2/users/missing" => reply(
            404,
            json!({"code": 1001, "message": "User does not exist: missing."}),
        ),
        "/v2/meetings/1" => reply(404, json!({"code": 3001, "message": "Meeting does not exist: 1."})),
        "/v2/meetings/2" => reply(401, json!({"code": 124, "message": "Invalid access token."})),
        "/v2/meetings/3" => reply(
            400,
            json!({"code": 4711, "message": "Invalid access token, does not contain scopes:[meeting:read:meeting:admin]."}),
        ),
        "/v2/meetings/4" => reply(
            400,
            json!({"code": 300, "message": "Validation Failed.",
                   "errors": [{"field": "duration", "message": "Invalid field."}]}),
        ),
        "/v2/meetings/5" => reply(503, json!({"code": 5000, "message": "down"})),
        _ => reply(409, json!({"code": 3000, "message": "conflict"})),
    })
    .await;
    let client = fake.client();

    assert_eq!(
        client.get_user(&token(), "missing").await.unwrap_err(),
        ZoomError::NotFound {
            code: 1001,
            message: "User does not exist: missing.".into()
        }
    );
    assert!(matches!(
        client.get_meeting(&token(), 1, None).await,
        Err(ZoomError::NotFound { code: 3001, .. })
    ));
    assert!(matches!(
        client.get_meeting(&token(), 2, None).await,
        Err(ZoomError::InvalidToken { .. })
    ));
    assert!(matches!(
        client.get_meeting(&token(), 3, None).await,
        Err(ZoomError::MissingScope { .. })
    ));
    assert_eq!(
        client.get_meeting(&token(), 4, None).await.unwrap_err(),
        ZoomError::BadRequest {
            code: Some(300),
            message: "Validation Failed.".into(),
            errors: vec![FieldError {
                field: "duration".into(),
                message: "Invalid field.".into()
            }],
        }
    );
    assert!(matches!(
        client.get_meeting(&token(), 5, None).await,
        Err(ZoomError::Unavailable {
            status: Some(503),
            ..
        })
    ));
    assert!(matches!(
        client.delete_meeting(&token(), 6, None).await,
        Err(ZoomError::Rejected {
            status: 409,
            code: Some(3000),
            ..
        })
    ));
}

#[tokio::test]
async fn rate_limits_read_retry_after() {
    let fake = Fake::start(|_| {
        let mut response = reply(
            429,
            json!({"code": 429, "message": "You have reached the maximum daily rate limit for this API."}),
        );
        let headers = response.headers_mut();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        headers.insert("x-ratelimit-type", HeaderValue::from_static("Daily-limit"));
        response
    })
    .await;

    let error = fake
        .client()
        .get_meeting(&token(), 1, None)
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ZoomError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            hit: LimitHit::Daily,
        }
    );
}

fn classify_json(status: u16, headers: &[(&'static str, &'static str)], body: Value) -> ZoomError {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, HeaderValue::from_static(value));
    }
    let now = Utc.with_ymd_and_hms(2030, 5, 30, 23, 0, 0).unwrap();
    classify(
        StatusCode::from_u16(status).unwrap(),
        &map,
        body.to_string().as_bytes(),
        now,
    )
}

#[test]
fn classify_covers_zoom_codes_and_statuses() {
    let per_second = json!({"code": 429, "message": "You have reached the maximum per-second rate limit for this API. Try again later."});
    assert_eq!(
        classify_json(429, &[("x-ratelimit-type", "QPS")], per_second.clone()),
        ZoomError::RateLimited {
            retry_after: None,
            hit: LimitHit::PerSecond { limit: None }
        }
    );
    let told = [("x-ratelimit-type", "QPS"), ("x-ratelimit-limit", "20")];
    assert_eq!(
        classify_json(429, &told, per_second.clone()),
        ZoomError::RateLimited {
            retry_after: None,
            hit: LimitHit::PerSecond { limit: Some(20) }
        }
    );
    let zero = [("x-ratelimit-type", "QPS"), ("x-ratelimit-limit", "0")];
    assert_eq!(
        classify_json(429, &zero, per_second),
        ZoomError::RateLimited {
            retry_after: None,
            hit: LimitHit::PerSecond { limit: None }
        }
    );
    let per_user = json!({"code": 429, "message": "You have exceeded the daily rate limit (100) of Meeting Create/Update API requests permitted for this particular user."});
    assert_eq!(
        classify_json(429, &[("x-ratelimit-type", "Daily-limit")], per_user),
        ZoomError::RateLimited {
            retry_after: None,
            hit: LimitHit::UserDaily
        }
    );
    assert_eq!(
        classify_json(429, &[("retry-after", "2030-05-31T00:00:00Z")], json!({})),
        ZoomError::RateLimited {
            retry_after: Some(Duration::from_secs(3600)),
            hit: LimitHit::PerSecond { limit: None }
        }
    );
    assert!(matches!(
        classify_json(
            400,
            &[],
            json!({"code": 124, "message": "Access token is expired."})
        ),
        ZoomError::InvalidToken { .. }
    ));
    assert!(matches!(
        classify_json(401, &[], json!("not an object")),
        ZoomError::InvalidToken { .. }
    ));
    assert!(matches!(
        classify_json(
            400,
            &[],
            json!({"code": 4700, "message": "Invalid access token, does not contain scopes"})
        ),
        ZoomError::MissingScope { .. }
    ));
    assert!(matches!(
        classify_json(400, &[], json!({"message": "no code"})),
        ZoomError::BadRequest { code: None, .. }
    ));
    assert!(matches!(
        classify_json(403, &[], json!({"code": 200, "message": "No permission."})),
        ZoomError::Rejected {
            status: 403,
            code: Some(200),
            ..
        }
    ));
    assert!(matches!(
        classify_json(500, &[], json!({})),
        ZoomError::Unavailable {
            status: Some(500),
            ..
        }
    ));
}

#[test]
fn a_404_without_a_zoom_code_is_not_a_missing_user() {
    let error = classify(
        StatusCode::NOT_FOUND,
        &HeaderMap::new(),
        b"<html>404 page not found</html>",
        Utc::now(),
    );
    assert!(
        matches!(
            error,
            ZoomError::Rejected {
                status: 404,
                code: None,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn long_zoom_messages_are_truncated() {
    let long = "x".repeat(10_000);
    let error = classify_json(404, &[], json!({"code": 3001, "message": long}));
    let ZoomError::NotFound { message, .. } = error else {
        panic!("{error:?}");
    };
    assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1);
}

#[test]
fn retry_after_accepts_seconds_and_dates() {
    let now = Utc.with_ymd_and_hms(2030, 5, 30, 23, 0, 0).unwrap();
    assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
    assert_eq!(
        parse_retry_after(" 2030-05-31T00:00:00Z ", now),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(
        parse_retry_after("Thu, 30 May 2030 23:00:10 GMT", now),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        parse_retry_after("2020-01-01T00:00:00Z", now),
        Some(Duration::ZERO)
    );
    for bad in ["", "soon", "-5", "1.5"] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
}

#[tokio::test]
async fn undecodable_success_bodies_are_decode_errors_without_body_text() {
    let fake = Fake::start(|seen| match seen.uri.as_str() {
        "/v2/meetings/1" => reply_raw(200, "<html>maintenance</html>"),
        "/v2/meetings/2" => reply(200, json!({"topic": "no id"})),
        _ => reply(200, json!({"id": "https://zoom.us/s/1?zak=secret-zak"})),
    })
    .await;
    let client = fake.client();

    for id in [1, 2, 3] {
        let error = client.get_meeting(&token(), id, None).await.unwrap_err();
        assert!(matches!(error, ZoomError::Decode { .. }), "{error:?}");
        assert!(!error.to_string().contains("secret-zak"), "{error}");
    }
}

#[tokio::test]
async fn a_slow_zoom_is_a_timeout() {
    let base = hanging_zoom().await;

    let error = client_for(&base, Duration::from_millis(200))
        .get_meeting(&token(), 1, None)
        .await
        .unwrap_err();

    assert_eq!(error, ZoomError::Timeout);
}

#[tokio::test]
async fn a_reset_connection_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Accepts each connection and drops it before answering.
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });

    let error = client_for(&base, Duration::from_secs(5))
        .get_meeting(&token(), 1, None)
        .await
        .unwrap_err();

    assert!(
        matches!(error, ZoomError::Unavailable { status: None, .. }),
        "{error:?}"
    );
}

#[test]
fn invalid_base_urls_are_refused() {
    for bad in ["", "not a url", "ftp://zoom.us/v2", "mailto:a@example.com"] {
        let endpoints = ZoomEndpoints {
            api_url: bad.into(),
            oauth_url: "https://zoom.us/oauth/token".into(),
        };
        assert!(
            matches!(
                ZoomClient::new(&endpoints, Duration::from_secs(1)),
                Err(BuildError::InvalidUrl {
                    field: "api_url",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn a_trailing_slash_in_the_api_url_is_harmless() {
    let fake = answering(200, json!({"id": 1})).await;
    let endpoints = ZoomEndpoints {
        api_url: format!("{}/v2/", fake.base),
        oauth_url: format!("{}/oauth/token", fake.base),
    };
    let client = ZoomClient::new(&endpoints, Duration::from_secs(5)).unwrap();

    client.get_meeting(&token(), 1, None).await.unwrap();

    assert_eq!(fake.only_request().uri, "/v2/meetings/1");
}

#[tokio::test]
async fn a_rejected_token_is_replaced_and_the_call_retried_once() {
    let issued = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let fake = Fake::start(move |seen| {
        if seen.uri == "/oauth/token" {
            let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            return reply(
                200,
                json!({"access_token": format!("eyJ{n}"), "expires_in": 3600}),
            );
        }
        match header(seen, "authorization") {
            "Bearer eyJ1" => reply(
                401,
                json!({"code": 124, "message": "Invalid access token."}),
            ),
            _ => reply(200, json!({"id": 9, "topic": "ok"})),
        }
    })
    .await;
    let client = fake.client();
    let cache = TokenCache::new(
        client.clone(),
        &Accounts::new([account()]),
        TokenSettings::default(),
        Default::default(),
    );
    let name = AccountName::parse("sales").unwrap();

    let meeting = cache
        .call(&name, |token| {
            let client = client.clone();
            async move { client.get_meeting(&token, 9, None).await }
        })
        .await
        .unwrap();

    assert_eq!(meeting.id, 9);
    assert_eq!(cache.fetches(&name), 2);
    let calls: Vec<_> = fake
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.uri, header(r, "authorization")))
        .filter(|c| c.starts_with("/v2"))
        .collect();
    assert_eq!(
        calls,
        ["/v2/meetings/9 Bearer eyJ1", "/v2/meetings/9 Bearer eyJ2"]
    );
}

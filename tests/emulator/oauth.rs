//! `POST /oauth/token`: success shapes, errors, expiry, several tokens, account isolation.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{read, spawn};

#[tokio::test]
async fn form_body_token_has_zooms_fields() {
    let zoom = spawn().await;
    let answer = read(zoom.token_response("acc-a").await).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = &answer.body;
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("eyJ"))
    );
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["api_url"], zoom.emu.base_url());
    let scopes: Vec<&str> = body["scope"].as_str().expect("scope").split(' ').collect();
    assert!(scopes.contains(&"meeting:read:meeting:admin") && scopes.len() == 8);
    assert_eq!(zoom.emu.token_fetches("acc-a"), 1);
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn query_string_parameters_are_accepted() {
    let zoom = spawn().await;
    let response = zoom
        .http
        .post(format!(
            "{}?grant_type=account_credentials&account_id=acc-b",
            zoom.emu.oauth_url()
        ))
        .basic_auth("client-b", Some("secret-b"))
        .send()
        .await
        .expect("token request");
    let answer = read(response).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["token_type"], "bearer");
    zoom.emu.shutdown().await;
}

async fn token_error(zoom: &crate::support::TestZoom, request: reqwest::RequestBuilder) -> Value {
    let answer = read(request.send().await.expect("token request")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{:?}", answer.body);
    assert!(answer.body["reason"].is_string());
    let _ = zoom;
    answer.body["error"].clone()
}

#[tokio::test]
async fn each_error_case_has_zooms_body() {
    let zoom = spawn().await;
    let url = zoom.emu.oauth_url();
    let form = [
        ("grant_type", "account_credentials"),
        ("account_id", "acc-a"),
    ];

    let wrong_secret = zoom
        .http
        .post(&url)
        .basic_auth("client-a", Some("nope"))
        .form(&form);
    assert_eq!(token_error(&zoom, wrong_secret).await, "invalid_client");
    let unknown_client = zoom
        .http
        .post(&url)
        .basic_auth("who", Some("secret-a"))
        .form(&form);
    assert_eq!(token_error(&zoom, unknown_client).await, "invalid_client");
    let no_auth = zoom.http.post(&url).form(&form);
    assert_eq!(token_error(&zoom, no_auth).await, "invalid_client");

    let wrong_grant = zoom
        .http
        .post(&url)
        .basic_auth("client-a", Some("secret-a"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("account_id", "acc-a"),
        ]);
    assert_eq!(
        token_error(&zoom, wrong_grant).await,
        "unsupported_grant_type"
    );
    let json_body = zoom
        .http
        .post(&url)
        .basic_auth("client-a", Some("secret-a"))
        .json(&json!({"grant_type": "account_credentials", "account_id": "acc-a"}));
    assert_eq!(
        token_error(&zoom, json_body).await,
        "unsupported_grant_type"
    );

    let unknown_account = zoom
        .http
        .post(&url)
        .basic_auth("client-a", Some("secret-a"))
        .form(&[
            ("grant_type", "account_credentials"),
            ("account_id", "nope"),
        ]);
    assert_eq!(token_error(&zoom, unknown_account).await, "invalid_request");
    let other_account = zoom
        .http
        .post(&url)
        .basic_auth("client-a", Some("secret-a"))
        .form(&[
            ("grant_type", "account_credentials"),
            ("account_id", "acc-b"),
        ]);
    assert_eq!(token_error(&zoom, other_account).await, "invalid_request");

    // Failed requests count too, for the named account or else the client's account:
    // all but the cross-account request are acc-a's.
    assert_eq!(zoom.emu.token_fetches("acc-a"), 6);
    assert_eq!(zoom.emu.token_fetches("acc-b"), 1);
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn tokens_expire_and_several_are_valid_at_once() {
    let zoom = spawn().await;
    zoom.emu.set_token_ttl(Duration::from_secs(60));
    let first = zoom.token("acc-a").await;
    let second = zoom.token("acc-a").await;
    assert_ne!(first, second);
    for token in [&first, &second] {
        let answer = zoom
            .call(token, "GET /users/{userId}", "/users/ua-alice", None)
            .await;
        assert_eq!(answer.status, StatusCode::OK);
    }

    zoom.emu
        .set_now(zoom.emu.now() + chrono::Duration::seconds(61));
    let expired = zoom
        .call(&first, "GET /users/{userId}", "/users/ua-alice", None)
        .await;
    assert_eq!(
        (expired.status, expired.code()),
        (StatusCode::UNAUTHORIZED, Some(124))
    );
    assert_eq!(expired.body["message"], "Access token is expired.");

    let fresh = zoom.token("acc-a").await;
    let answer = zoom
        .call(&fresh, "GET /users/{userId}", "/users/ua-alice", None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn revoked_and_unknown_tokens_get_124() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    zoom.emu.revoke_tokens("acc-a");
    let revoked = zoom
        .call(&token, "GET /users/{userId}", "/users/ua-alice", None)
        .await;
    assert_eq!(
        (revoked.status, revoked.code()),
        (StatusCode::UNAUTHORIZED, Some(124))
    );
    let unknown = zoom
        .call("eyJnot-a-token", "GET /users", "/users", None)
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::UNAUTHORIZED, Some(124))
    );
    assert_eq!(unknown.body["message"], "Invalid access token.");

    let fresh = zoom.token("acc-a").await;
    let in_query = zoom
        .http
        .get(format!("{}/users?access_token={fresh}", zoom.emu.api_url()))
        .send()
        .await
        .expect("request");
    let in_query = read(in_query).await;
    assert_eq!(
        (in_query.status, in_query.code()),
        (StatusCode::UNAUTHORIZED, Some(124))
    );
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn a_token_never_sees_another_accounts_users_or_meetings() {
    let zoom = spawn().await;
    let token_a = zoom.token("acc-a").await;
    let token_b = zoom.token("acc-b").await;
    let by_id = zoom
        .call(&token_a, "GET /users/{userId}", "/users/ub-carol", None)
        .await;
    assert_eq!(
        (by_id.status, by_id.code()),
        (StatusCode::NOT_FOUND, Some(1001))
    );
    assert_eq!(by_id.body["message"], "User does not exist: ub-carol.");
    let by_email = zoom
        .call(&token_a, "GET /users/{userId}", "/users/carol@b.test", None)
        .await;
    assert_eq!(
        (by_email.status, by_email.code()),
        (StatusCode::NOT_FOUND, Some(1001))
    );

    let meeting = zoom
        .create_meeting(&token_b, "ub-carol", &json!({"topic": "b only"}))
        .await;
    let id = meeting["id"].as_i64().expect("id");
    let path = format!("/meetings/{id}");
    let cross = zoom
        .call(&token_a, "GET /meetings/{meetingId}", &path, None)
        .await;
    assert_eq!(
        (cross.status, cross.code()),
        (StatusCode::NOT_FOUND, Some(3001))
    );
    let own = zoom
        .call(&token_b, "GET /meetings/{meetingId}", &path, None)
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(zoom.emu.total_requests("acc-a"), 3);
    zoom.emu.shutdown().await;
}

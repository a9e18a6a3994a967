//! Scopes: a token without any scope the operation accepts gets 400 / 4711.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::spawn;

#[tokio::test]
async fn missing_scope_gets_4711_listing_the_granular_scopes() {
    let zoom = spawn().await;
    let token = zoom.token("acc-limited").await;
    let body = json!({"topic": "not allowed"});
    let create = zoom
        .call(
            &token,
            "POST /users/{userId}/meetings",
            "/users/ul-lena/meetings",
            Some(&body),
        )
        .await;
    assert_eq!(
        (create.status, create.code()),
        (StatusCode::BAD_REQUEST, Some(4711))
    );
    assert_eq!(
        create.body["message"],
        "Invalid access token, does not contain scopes:[meeting:write:meeting, meeting:write:meeting:admin]."
    );
    let list = zoom.call(&token, "GET /users", "/users", None).await;
    assert_eq!(
        (list.status, list.code()),
        (StatusCode::BAD_REQUEST, Some(4711))
    );
    assert!(zoom.emu.meetings("acc-limited").is_empty());
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn classic_and_granular_scopes_both_grant() {
    let zoom = spawn().await;
    // acc-limited holds the classic `meeting:read:admin`: listing meetings is allowed.
    let limited = zoom.token("acc-limited").await;
    let list = zoom
        .call(
            &limited,
            "GET /users/{userId}/meetings",
            "/users/ul-lena/meetings",
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    // acc-b holds granular read/write but not list_meetings nor delete.
    let b = zoom.token("acc-b").await;
    let list = zoom
        .call(
            &b,
            "GET /users/{userId}/meetings",
            "/users/ub-carol/meetings",
            None,
        )
        .await;
    assert_eq!(list.code(), Some(4711));
    let meeting = zoom.create_meeting(&b, "ub-carol", &json!({})).await;
    let path = format!("/meetings/{}", meeting["id"]);
    let delete = zoom
        .call(&b, "DELETE /meetings/{meetingId}", &path, None)
        .await;
    assert_eq!(
        (delete.status, delete.code()),
        (StatusCode::BAD_REQUEST, Some(4711))
    );
    zoom.emu.shutdown().await;
}

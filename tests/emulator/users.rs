//! `GET /users/{userId}` and `GET /users`.

use reqwest::StatusCode;

use crate::support::spawn;

#[tokio::test]
async fn get_user_by_id_or_email() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    let by_id = zoom
        .call(&token, "GET /users/{userId}", "/users/ua-alice", None)
        .await;
    assert_eq!(by_id.status, StatusCode::OK);
    assert_eq!(by_id.body["email"], "alice@a.test");
    assert_eq!(by_id.body["account_id"], "acc-a");
    assert_eq!(by_id.body["type"], 2);
    assert_eq!(by_id.body["status"], "active");
    assert_eq!(by_id.body["timezone"], "America/New_York");
    let by_email = zoom
        .call(&token, "GET /users/{userId}", "/users/ALICE@a.test", None)
        .await;
    assert_eq!(by_email.body["id"], "ua-alice");
    let unknown = zoom
        .call(&token, "GET /users/{userId}", "/users/ghost@a.test", None)
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, Some(1001))
    );
    assert!(unknown.header("x-zm-trackingid").is_some());
    assert_eq!(
        zoom.emu.requests("acc-a").get("GET /users/{userId}"),
        Some(&3)
    );
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn list_users_pages_with_next_page_token() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    let first = zoom
        .call(&token, "GET /users", "/users?page_size=2", None)
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.body["total_records"], 3,
        "active users only by default"
    );
    assert_eq!(first.body["page_count"], 2);
    assert_eq!(first.body["page_size"], 2);
    assert!(first.body["users"][0].get("account_id").is_none());
    let next = first.body["next_page_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert!(!next.is_empty());
    let second = zoom
        .call(
            &token,
            "GET /users",
            &format!("/users?page_size=2&next_page_token={next}"),
            None,
        )
        .await;
    let emails: Vec<&str> = first.body["users"]
        .as_array()
        .into_iter()
        .chain(second.body["users"].as_array())
        .flatten()
        .filter_map(|u| u["email"].as_str())
        .collect();
    assert_eq!(emails, ["alice@a.test", "bob@a.test", "cleo@a.test"]);
    assert_eq!(second.body["next_page_token"], "");

    let pending = zoom
        .call(&token, "GET /users", "/users?status=pending", None)
        .await;
    assert_eq!(pending.body["total_records"], 1);
    assert!(pending.body["users"][0].get("id").is_none());

    let bad = zoom
        .call(&token, "GET /users", "/users?next_page_token=garbage", None)
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, Some(300))
    );

    zoom.emu
        .set_now(zoom.emu.now() + chrono::Duration::minutes(16));
    let fresh = zoom.token("acc-a").await;
    let stale = zoom
        .call(
            &fresh,
            "GET /users",
            &format!("/users?page_size=2&next_page_token={next}"),
            None,
        )
        .await;
    assert_eq!(
        stale.code(),
        Some(300),
        "page tokens expire after 15 minutes"
    );
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn a_moved_user_leaves_one_account_and_joins_another() {
    let zoom = spawn().await;
    let (a, b) = (zoom.token("acc-a").await, zoom.token("acc-b").await);
    let moved = zoom
        .control(
            reqwest::Method::POST,
            "/users/Carol@b.test/move",
            Some(&serde_json::json!({ "account_id": "acc-a" })),
        )
        .await;
    assert_eq!(moved.status, StatusCode::NO_CONTENT);
    let gone = zoom
        .call(&b, "GET /users/{userId}", "/users/carol@b.test", None)
        .await;
    assert_eq!(
        (gone.status, gone.code()),
        (StatusCode::NOT_FOUND, Some(1001))
    );
    let there = zoom
        .call(&a, "GET /users/{userId}", "/users/ub-carol", None)
        .await;
    assert_eq!(there.status, StatusCode::OK);
    assert_eq!(there.body["account_id"], "acc-a");
    let listed = zoom.call(&a, "GET /users", "/users", None).await;
    let emails: Vec<&str> = listed.body["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["email"].as_str())
        .collect();
    assert_eq!(
        emails,
        ["alice@a.test", "bob@a.test", "cleo@a.test", "carol@b.test"]
    );

    for (path, body) in [
        (
            "/users/ghost@a.test/move",
            serde_json::json!({ "account_id": "acc-b" }),
        ),
        (
            "/users/bob@a.test/move",
            serde_json::json!({ "account_id": "acc-nope" }),
        ),
    ] {
        let refused = zoom.control(reqwest::Method::POST, path, Some(&body)).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{path}");
    }
    zoom.emu.shutdown().await;
}

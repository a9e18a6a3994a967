//! Rate limits: per account per second by plan and label, and per host user per UTC day.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{CONFIG, at, spawn, spawn_with};

#[tokio::test]
async fn free_plan_per_second_limit_gives_429_with_headers() {
    let zoom = spawn().await;
    // Start at the top of a second so the burst below fits in one window.
    zoom.emu.set_now(at("2030-05-01T10:00:00Z"));
    let token = zoom.token("acc-free").await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..5 {
        let answer = zoom
            .call(&token, "GET /users/{userId}", "/users/uf-fred", None)
            .await;
        statuses.push(answer.status);
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(answer);
        }
    }
    assert_eq!(statuses[..4], [StatusCode::OK; 4], "free Light is 4/s");
    let limited = limited.expect("the fifth request is limited");
    assert_eq!(limited.code(), Some(429));
    assert_eq!(
        limited.body["message"],
        "You have reached the maximum per-second rate limit for this API. Try again later."
    );
    assert_eq!(limited.header("x-ratelimit-category"), Some("Light"));
    assert_eq!(limited.header("x-ratelimit-type"), Some("QPS"));
    assert_eq!(limited.header("x-ratelimit-limit"), Some("4"));
    let counters = zoom.emu.rate_limit_counters("acc-free");
    assert_eq!(
        counters.per_second.get("Light"),
        Some(&4),
        "rejected requests are not counted"
    );
    assert_eq!(counters.daily.get("Light"), Some(&4));

    // Another label has its own budget; the next second has a fresh one.
    let list = zoom.call(&token, "GET /users", "/users", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.header("x-ratelimit-category"), Some("Medium"));
    zoom.emu.set_now(at("2030-05-01T10:00:01Z"));
    let next = zoom
        .call(&token, "GET /users/{userId}", "/users/uf-fred", None)
        .await;
    assert_eq!(next.status, StatusCode::OK);
    assert_eq!(zoom.emu.total_requests("acc-free"), 7);
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn user_daily_limit_of_100_creates_and_updates_resets_at_midnight_utc() {
    let zoom = spawn().await;
    let start = at("2030-05-01T22:00:00Z");
    zoom.emu.set_now(start);
    let token = zoom.token("acc-a").await;
    let mut first_id = None;
    for i in 0..100_i64 {
        // Pro Light is 30/s: move the clock a second every 25 requests.
        if i % 25 == 0 {
            zoom.emu.set_now(start + chrono::Duration::seconds(i / 25));
        }
        if i < 99 {
            let created = zoom
                .create_meeting(&token, "ua-alice", &json!({"topic": format!("m{i}")}))
                .await;
            first_id.get_or_insert(created["id"].as_i64().expect("id"));
        } else {
            let path = format!("/meetings/{}", first_id.expect("created one"));
            let answer = zoom
                .call(
                    &token,
                    "PATCH /meetings/{meetingId}",
                    &path,
                    Some(&json!({"topic": "u"})),
                )
                .await;
            assert_eq!(answer.status, StatusCode::NO_CONTENT, "updates count too");
        }
    }
    zoom.emu.set_now(start + chrono::Duration::seconds(10));
    let counters = zoom.emu.rate_limit_counters("acc-a");
    assert_eq!(counters.user_daily.get("ua-alice"), Some(&100));

    let body = json!({"topic": "one too many"});
    let over = zoom
        .call(
            &token,
            "POST /users/{userId}/meetings",
            "/users/ua-alice/meetings",
            Some(&body),
        )
        .await;
    assert_eq!(
        (over.status, over.code()),
        (StatusCode::TOO_MANY_REQUESTS, Some(429))
    );
    assert_eq!(
        over.body["message"],
        "You have exceeded the daily rate limit (100) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00."
    );
    assert_eq!(over.header("retry-after"), Some("2030-05-02T00:00:00Z"));
    // Other hosts are not affected.
    zoom.create_meeting(&token, "ua-bob", &body).await;

    // Past midnight UTC the budget is back (tokens outlive the jump: ttl is an hour).
    zoom.emu.set_now(at("2030-05-02T00:00:05Z"));
    let token = zoom.token("acc-a").await;
    zoom.create_meeting(&token, "ua-alice", &body).await;
    let counters = zoom.emu.rate_limit_counters("acc-a");
    assert_eq!(counters.user_daily.get("ua-alice"), Some(&1));
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn limits_can_be_turned_off_for_benchmarks() {
    let zoom = spawn_with(&format!("enforce_rate_limits = false\n{CONFIG}")).await;
    zoom.emu.set_now(at("2030-05-01T10:00:00Z"));
    let token = zoom.token("acc-free").await;
    for _ in 0..8 {
        let answer = zoom
            .call(&token, "GET /users/{userId}", "/users/uf-fred", None)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "free Light would allow only 4/s"
        );
    }
    zoom.emu.shutdown().await;
}

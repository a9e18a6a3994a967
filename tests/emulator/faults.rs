//! Fault injection, through the handle and through the HTTP control endpoint.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use zoomgate::emulator::Faults;

use crate::support::{CONFIG, at, read, spawn, spawn_with};

const GET_USER: &str = "GET /users/{userId}";

#[tokio::test]
async fn latency_delays_answers() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    zoom.emu.set_faults(
        "acc-a",
        Faults {
            latency_ms: 300,
            ..Faults::default()
        },
    );
    let started = Instant::now();
    let answer = zoom.call(&token, GET_USER, "/users/ua-alice", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Other accounts are not slowed down: same call on acc-b, well under the injected delay.
    let token_b = zoom.token("acc-b").await;
    let started = Instant::now();
    zoom.call(&token_b, GET_USER, "/users/ub-carol", None).await;
    assert!(started.elapsed() < Duration::from_millis(300));
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn slow_rate_delays_a_share_of_answers() {
    // 40 calls in a row, about 30 a second: more than Zoom's per-second limit allows.
    let zoom = spawn_with(&format!("enforce_rate_limits = false\n{CONFIG}")).await;
    let token = zoom.token("acc-a").await;
    let set = |faults: Value| {
        let zoom = &zoom;
        async move {
            zoom.control(Method::PUT, "/accounts/acc-a/faults", Some(&faults))
                .await
                .status
        }
    };
    let slow = Duration::from_millis(60);
    let timed = async || {
        let started = Instant::now();
        let answer = zoom.call(&token, GET_USER, "/users/ua-alice", None).await;
        assert_eq!(answer.status, StatusCode::OK);
        started.elapsed()
    };

    let bimodal = json!({"latency_ms": 5, "slow_rate": 0.5, "slow_latency_ms": 55});
    assert_eq!(set(bimodal).await, StatusCode::NO_CONTENT);
    let read_back = zoom
        .control(Method::GET, "/accounts/acc-a/faults", None)
        .await;
    assert_eq!(
        (
            read_back.body["slow_rate"].clone(),
            read_back.body["slow_latency_ms"].clone()
        ),
        (json!(0.5), json!(55))
    );
    let mut slow_answers = 0;
    for _ in 0..40 {
        let took = timed().await;
        assert!(took >= Duration::from_millis(5), "{took:?}");
        slow_answers += usize::from(took >= slow);
    }
    // Both clusters show; all 40 on one side has a chance of 2^-39.
    assert!((1..40).contains(&slow_answers), "{slow_answers} of 40 slow");

    assert_eq!(
        set(json!({"slow_rate": 1.0, "slow_latency_ms": 60})).await,
        StatusCode::NO_CONTENT
    );
    assert!(timed().await >= slow);
    assert_eq!(
        set(json!({"slow_rate": 1.5})).await,
        StatusCode::BAD_REQUEST
    );
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn error_rate_one_gives_5xx_and_zero_heals() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    zoom.emu.set_faults(
        "acc-a",
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    );
    let answer = zoom.call(&token, GET_USER, "/users/ua-alice", None).await;
    assert!(answer.status.is_server_error());
    zoom.emu.set_faults("acc-a", Faults::default());
    let answer = zoom.call(&token, GET_USER, "/users/ua-alice", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn reset_rate_breaks_the_connection_without_an_answer() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    zoom.emu.set_faults(
        "acc-a",
        Faults {
            reset_rate: 1.0,
            ..Faults::default()
        },
    );
    let result = zoom
        .http
        .get(format!("{}/users/ua-alice", zoom.emu.api_url()))
        .bearer_auth(&token)
        .send()
        .await;
    let error = result.expect_err("a reset connection gives no HTTP response");
    assert!(error.status().is_none() && !error.is_timeout(), "{error:?}");
    assert_eq!(zoom.emu.total_requests("acc-a"), 1);
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn create_then_reset_applies_the_create_and_drops_the_answer() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    zoom.emu.set_faults(
        "acc-a",
        Faults {
            create_then_reset_rate: 1.0,
            ..Faults::default()
        },
    );
    let result = zoom
        .http
        .post(format!("{}/users/ua-alice/meetings", zoom.emu.api_url()))
        .bearer_auth(&token)
        .json(&json!({"topic": "applied, answer lost"}))
        .send()
        .await;
    let error = result.expect_err("a reset connection gives no HTTP response");
    assert!(error.status().is_none(), "{error:?}");
    let made = zoom.emu.meetings("acc-a");
    assert!(
        made.iter().any(|m| m["topic"] == "applied, answer lost"),
        "{made:?}"
    );
    // Only creates: a read is answered.
    let answer = zoom.call(&token, GET_USER, "/users/ua-alice", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn answers_carry_the_emulator_clock_s_date_and_the_limiter_counts_429s() {
    let zoom = spawn().await;
    zoom.emu.set_now(at("2030-01-01T23:59:50Z"));
    let response = zoom.token_response("acc-a").await;
    let date = response.headers()["date"].to_str().unwrap().to_owned();
    assert!(date.starts_with("Tue, 01 Jan 2030 23:59:5"), "{date}");
    let token = zoom.token("acc-a").await;
    zoom.call(&token, GET_USER, "/users/ua-alice", None).await;
    zoom.emu.set_faults(
        "acc-a",
        Faults {
            force_429: true,
            ..Faults::default()
        },
    );
    let limited = zoom
        .call_unchecked(&token, GET_USER, "/users/ua-alice", None)
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(zoom.emu.rate_limit_totals("acc-a"), (1, 1));
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn force_429_and_token_endpoint_faults() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    zoom.emu.set_faults(
        "acc-a",
        Faults {
            force_429: true,
            ..Faults::default()
        },
    );
    let limited = zoom.call(&token, GET_USER, "/users/ua-alice", None).await;
    assert_eq!(
        (limited.status, limited.code()),
        (StatusCode::TOO_MANY_REQUESTS, Some(429))
    );

    zoom.emu.set_faults(
        "acc-a",
        Faults {
            token_endpoint_down: true,
            ..Faults::default()
        },
    );
    let down = zoom.token_response("acc-a").await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);

    zoom.emu.set_faults(
        "acc-a",
        Faults {
            malformed_token: true,
            ..Faults::default()
        },
    );
    let malformed = read(zoom.token_response("acc-a").await).await;
    assert_eq!(malformed.status, StatusCode::OK);
    assert!(malformed.body.get("access_token").is_none());
    // Other accounts keep working.
    assert_eq!(zoom.token_response("acc-b").await.status(), StatusCode::OK);
    assert_eq!(zoom.emu.token_fetches("acc-a"), 3);
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn control_endpoint_sets_faults_and_reports_counters() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    let faults = json!({"force_429": true});
    let set = zoom
        .control(Method::PUT, "/accounts/acc-a/faults", Some(&faults))
        .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT);
    let read_back = zoom
        .control(Method::GET, "/accounts/acc-a/faults", None)
        .await;
    assert_eq!(read_back.body["force_429"], true);
    assert_eq!(read_back.body["error_rate"], 0.0);
    let limited = zoom.call(&token, GET_USER, "/users/ua-alice", None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);

    let bad = zoom
        .control(
            Method::PUT,
            "/accounts/acc-a/faults",
            Some(&json!({"error_rate": 2.0})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unknown = zoom
        .control(Method::PUT, "/accounts/nope/faults", Some(&json!({})))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    zoom.control(Method::PUT, "/accounts/acc-a/faults", Some(&json!({})))
        .await;
    zoom.call(&token, "GET /users", "/users", None).await;

    let counters = zoom
        .control(Method::GET, "/accounts/acc-a/counters", None)
        .await;
    assert_eq!(counters.body["token_fetches"], 1);
    assert_eq!(counters.body["total_requests"], 2);
    assert_eq!(counters.body["requests"][GET_USER], 1);
    assert_eq!(counters.body["requests"]["GET /users"], 1);
    assert_eq!(counters.body["rate_limits"]["daily"]["Medium"], 1);

    // Revoke, clock, ttl, meetings and start through HTTP as well.
    let revoke = zoom
        .control(Method::POST, "/accounts/acc-a/revoke_tokens", None)
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    assert_eq!(
        zoom.call(&token, GET_USER, "/users/ua-alice", None)
            .await
            .code(),
        Some(124)
    );
    let clock = json!({"now": "2031-01-01T00:00:00Z"});
    assert_eq!(
        zoom.control(Method::PUT, "/clock", Some(&clock))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let now = zoom.control(Method::GET, "/clock", None).await;
    assert!(
        now.body["now"]
            .as_str()
            .is_some_and(|t| t.starts_with("2031-01-01T00:00"))
    );
    let ttl = json!({"secs": 5});
    assert_eq!(
        zoom.control(Method::PUT, "/token_ttl", Some(&ttl))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let fresh = read(zoom.token_response("acc-a").await).await;
    assert_eq!(fresh.body["expires_in"], 5);
    let token = fresh.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let meeting = zoom
        .create_meeting(&token, "ua-bob", &json!({"topic": "ctl"}))
        .await;
    let start_path = format!("/meetings/{}/start", meeting["id"]);
    assert_eq!(
        zoom.control(Method::POST, &start_path, None).await.status,
        StatusCode::NO_CONTENT
    );
    let listed = zoom
        .control(Method::GET, "/accounts/acc-a/meetings", None)
        .await;
    let meetings = listed.body["meetings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(meetings.len(), 1);
    assert_eq!(meetings[0]["status"], Value::from("started"));
    zoom.emu.shutdown().await;
}

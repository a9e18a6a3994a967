//! Fidelity: every exchange the other tests make is checked against Zoom's OpenAPI description
//! in `support::call`. These tests make sure those checks bite, and sweep every operation once.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{at, openapi_to_json_schema, spawn, spec};

#[test]
fn the_spec_checks_can_fail() {
    let spec = spec();
    let bad_request = json!({"topic": "x".repeat(201), "type": 7});
    assert!(
        !spec
            .request_errors("POST /users/{userId}/meetings", &bad_request)
            .is_empty()
    );
    let bad_meeting = json!({"id": "not-an-int64", "type": 9, "status": "paused"});
    assert_eq!(
        spec.response_errors("GET /meetings/{meetingId}", &bad_meeting)
            .len(),
        3
    );
    let bad_user = json!({"email": "a@b.test"});
    assert!(
        !spec
            .response_errors("GET /users/{userId}", &bad_user)
            .is_empty(),
        "type is required"
    );
    assert!(
        !spec
            .request_errors(
                "PUT /meetings/{meetingId}/status",
                &json!({"action": "pause"})
            )
            .is_empty()
    );
}

#[test]
fn nullable_becomes_a_null_type() {
    let schema =
        json!({"type": "object", "properties": {"a": {"type": "string", "nullable": true}}});
    let converted = openapi_to_json_schema(&schema);
    assert_eq!(
        converted["properties"]["a"],
        json!({"type": ["string", "null"]})
    );
}

#[tokio::test]
async fn every_operation_once_with_rich_bodies() {
    let zoom = spawn().await;
    zoom.emu.set_now(at("2030-06-01T00:00:00Z"));
    let token = zoom.token("acc-a").await;
    let body = json!({
        "topic": "Fidelity", "type": 8, "start_time": "2030-06-03T07:30:00Z", "duration": 30,
        "timezone": "Europe/Paris", "password": "abc123", "agenda": "all the fields",
        "default_password": false, "pre_schedule": false,
        "recurrence": {"type": 3, "repeat_interval": 1, "monthly_day": 3, "end_times": 4},
        "settings": {"host_video": true, "join_before_host": true, "jbh_time": 5, "approval_type": 2,
                     "audio": "both", "auto_recording": "cloud", "waiting_room": false},
        "tracking_fields": [{"field": "team", "value": "qa"}]
    });
    let created = zoom.create_meeting(&token, "ua-alice", &body).await;
    assert_eq!(created["occurrences"].as_array().map(Vec::len), Some(4));
    assert_eq!(created["start_time"], "2030-06-03T07:30:00Z");
    assert_eq!(created["timezone"], "Europe/Paris");
    assert_eq!(created["tracking_fields"][0]["field"], "team");
    let id = created["id"].as_i64().expect("id");
    let path = format!("/meetings/{id}");
    for (op, p) in [
        ("GET /users/{userId}", "/users/ua-alice".to_owned()),
        ("GET /users", "/users?page_size=300".to_owned()),
        (
            "GET /users/{userId}/meetings",
            "/users/ua-alice/meetings".to_owned(),
        ),
        ("GET /meetings/{meetingId}", path.clone()),
    ] {
        let answer = zoom.call(&token, op, &p, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{op}");
    }
    let patch = json!({"agenda": "changed", "settings": {"mute_upon_entry": true},
                       "recurrence": {"type": 2, "weekly_days": "2", "end_times": 2}});
    let answer = zoom
        .call(&token, "PATCH /meetings/{meetingId}", &path, Some(&patch))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let after = zoom
        .call(&token, "GET /meetings/{meetingId}", &path, None)
        .await;
    assert_eq!(after.body["occurrences"].as_array().map(Vec::len), Some(2));
    let status = json!({"action": "end"});
    let answer = zoom
        .call(
            &token,
            "PUT /meetings/{meetingId}/status",
            &format!("{path}/status"),
            Some(&status),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let answer = zoom
        .call(&token, "DELETE /meetings/{meetingId}", &path, None)
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    zoom.emu.shutdown().await;
}

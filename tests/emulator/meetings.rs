//! Meetings: create, get, list (paging, types), patch, delete (occurrences), status.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestZoom, at, spawn};

const GET: &str = "GET /meetings/{meetingId}";
const PATCH: &str = "PATCH /meetings/{meetingId}";
const DELETE: &str = "DELETE /meetings/{meetingId}";
const STATUS: &str = "PUT /meetings/{meetingId}/status";
const LIST: &str = "GET /users/{userId}/meetings";
const CREATE: &str = "POST /users/{userId}/meetings";

async fn get(zoom: &TestZoom, token: &str, id: i64, query: &str) -> crate::support::Answer {
    zoom.call(token, GET, &format!("/meetings/{id}{query}"), None)
        .await
}

#[tokio::test]
async fn create_and_get_a_scheduled_meeting() {
    let zoom = spawn().await;
    zoom.emu.set_now(at("2030-01-01T08:00:00Z"));
    let token = zoom.token("acc-a").await;
    let body = json!({
        "topic": "Quarterly review", "type": 2, "start_time": "2030-01-02T10:00:00",
        "duration": 45, "agenda": "numbers", "settings": {"waiting_room": true}
    });
    // Zoom's description says a `start_time` without `Z` is local time in `timezone`, but its
    // schema declares `format: date-time`, which needs an offset: the spec contradicts itself
    // here, so this one body is sent unchecked.
    let answer = zoom
        .call_unchecked(&token, CREATE, "/users/alice@a.test/meetings", Some(&body))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let created = answer.body;
    let id = created["id"].as_i64().expect("int64 id");
    assert!(id > 9_999_999_999, "meeting ids have more than 10 digits");
    assert_eq!(created["host_id"], "ua-alice");
    assert_eq!(created["host_email"], "alice@a.test");
    assert_eq!(created["topic"], "Quarterly review");
    // No `Z`: local time in the host's zone (America/New_York, UTC-5 in January).
    assert_eq!(created["start_time"], "2030-01-02T15:00:00Z");
    assert_eq!(created["timezone"], "America/New_York");
    assert_eq!(created["created_at"], "2030-01-01T08:00:00Z");
    assert_eq!(created["status"], "waiting");
    assert_eq!(created["settings"]["waiting_room"], true);
    for key in ["uuid", "join_url", "start_url", "password"] {
        assert!(
            created[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key}"
        );
    }

    let fetched = get(&zoom, &token, id, "").await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, created);
    assert_eq!(zoom.emu.meetings("acc-a"), vec![created]);
    let unknown = get(&zoom, &token, 12_345_678_901, "").await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, Some(3001))
    );
    assert_eq!(
        unknown.body["message"],
        "Meeting does not exist: 12345678901."
    );
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn instant_and_unknown_user() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    let instant = zoom
        .create_meeting(&token, "ua-bob", &json!({"type": 1}))
        .await;
    assert_eq!(instant["type"], 1);
    assert!(instant.get("start_time").is_none());
    let body = json!({"topic": "x"});
    let ghost = zoom
        .call(&token, CREATE, "/users/ghost/meetings", Some(&body))
        .await;
    assert_eq!(
        (ghost.status, ghost.code()),
        (StatusCode::NOT_FOUND, Some(1001))
    );
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn invalid_fields_get_validation_failed() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    let path = "/users/ua-alice/meetings";
    for (body, field) in [
        (json!({"topic": "t".repeat(201)}), "topic"),
        (json!({"duration": 0}), "duration"),
        (json!({"duration": 1441}), "duration"),
        (json!({"type": 5}), "type"),
        (
            json!({"type": 8, "recurrence": {"type": 9}}),
            "recurrence.type",
        ),
    ] {
        let answer = zoom.call_unchecked(&token, CREATE, path, Some(&body)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::BAD_REQUEST, Some(300)),
            "{body}"
        );
        assert_eq!(answer.body["message"], "Validation Failed.");
        assert_eq!(answer.body["errors"][0]["field"], field);
    }
    let not_json = zoom
        .http
        .post(format!("{}{path}", zoom.emu.api_url()))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    let not_json = crate::support::read(not_json).await;
    assert_eq!(not_json.code(), Some(300));
    assert_eq!(
        not_json.body["message"],
        "Request Body should be a valid JSON object."
    );
    // Boundaries are valid.
    zoom.create_meeting(
        &token,
        "ua-alice",
        &json!({"duration": 1440, "topic": "t".repeat(200)}),
    )
    .await;
    assert_eq!(zoom.emu.meetings("acc-a").len(), 1);
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn recurring_meetings_have_occurrences() {
    let zoom = spawn().await;
    zoom.emu.set_now(at("2030-01-01T08:00:00Z"));
    let token = zoom.token("acc-a").await;
    let body = json!({
        "topic": "Standup", "type": 8, "start_time": "2030-01-01T09:00:00Z", "duration": 15,
        "timezone": "UTC", "recurrence": {"type": 1, "repeat_interval": 2, "end_times": 3}
    });
    let created = zoom.create_meeting(&token, "ua-bob", &body).await;
    let id = created["id"].as_i64().expect("id");
    let starts: Vec<&str> = created["occurrences"]
        .as_array()
        .expect("occurrences")
        .iter()
        .filter_map(|o| o["start_time"].as_str())
        .collect();
    assert_eq!(
        starts,
        [
            "2030-01-01T09:00:00Z",
            "2030-01-03T09:00:00Z",
            "2030-01-05T09:00:00Z"
        ]
    );
    assert_eq!(created["recurrence"]["type"], 1);
    let second = created["occurrences"][1]["occurrence_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        second,
        at("2030-01-03T09:00:00Z").timestamp_millis().to_string()
    );

    // One occurrence: GET by occurrence, PATCH it, DELETE it.
    let one = get(&zoom, &token, id, &format!("?occurrence_id={second}")).await;
    assert_eq!(one.body["start_time"], "2030-01-03T09:00:00Z");
    let patch = json!({"duration": 30});
    let patched = zoom
        .call(
            &token,
            PATCH,
            &format!("/meetings/{id}?occurrence_id={second}"),
            Some(&patch),
        )
        .await;
    assert_eq!(patched.status, StatusCode::NO_CONTENT);
    let deleted = zoom
        .call(
            &token,
            DELETE,
            &format!("/meetings/{id}?occurrence_id={second}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let after = get(&zoom, &token, id, "").await;
    assert_eq!(after.body["occurrences"][1]["status"], "deleted");
    assert_eq!(after.body["occurrences"][1]["duration"], 30);
    assert_eq!(after.body["occurrences"][0]["status"], "available");
    let bad = zoom
        .call(
            &token,
            DELETE,
            &format!("/meetings/{id}?occurrence_id=123"),
            None,
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, Some(300))
    );

    // Past occurrences are hidden unless asked for.
    zoom.emu.set_now(at("2030-01-04T00:00:00Z"));
    let token = zoom.token("acc-a").await;
    let later = get(&zoom, &token, id, "").await;
    assert_eq!(later.body["occurrences"].as_array().map(Vec::len), Some(1));
    let all = get(&zoom, &token, id, "?show_previous_occurrences=true").await;
    assert_eq!(all.body["occurrences"].as_array().map(Vec::len), Some(3));
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn weekly_series_and_no_fixed_time() {
    let zoom = spawn().await;
    zoom.emu.set_now(at("2030-01-01T00:00:00Z"));
    let token = zoom.token("acc-a").await;
    let weekly = json!({
        "type": 8, "start_time": "2030-01-01T09:00:00Z", "timezone": "UTC",
        "recurrence": {"type": 2, "weekly_days": "5", "end_date_time": "2030-01-31T23:59:00Z"}
    });
    let created = zoom.create_meeting(&token, "ua-alice", &weekly).await;
    let starts: Vec<&str> = created["occurrences"]
        .as_array()
        .expect("occurrences")
        .iter()
        .filter_map(|o| o["start_time"].as_str())
        .collect();
    // Thursdays (5) of January 2030.
    assert_eq!(
        starts,
        [
            "2030-01-03T09:00:00Z",
            "2030-01-10T09:00:00Z",
            "2030-01-17T09:00:00Z",
            "2030-01-24T09:00:00Z",
            "2030-01-31T09:00:00Z"
        ]
    );
    let floating = zoom
        .create_meeting(&token, "ua-alice", &json!({"type": 3}))
        .await;
    assert!(floating.get("occurrences").is_none() && floating.get("start_time").is_none());
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn list_meetings_pages_and_filters_by_type() {
    let zoom = spawn().await;
    zoom.emu.set_now(at("2030-03-01T12:00:00Z"));
    let token = zoom.token("acc-a").await;
    let mut ids = Vec::new();
    for day in 2..=6 {
        let body = json!({"topic": format!("day {day}"), "start_time": format!("2030-03-0{day}T10:00:00Z")});
        ids.push(zoom.create_meeting(&token, "ua-bob", &body).await["id"].clone());
    }
    let past = json!({"topic": "past", "start_time": "2030-02-01T10:00:00Z"});
    let past_id = zoom.create_meeting(&token, "ua-bob", &past).await["id"].clone();
    zoom.create_meeting(&token, "ua-bob", &json!({"type": 1}))
        .await;
    zoom.create_meeting(&token, "ua-alice", &json!({"topic": "not bob's"}))
        .await;

    let mut seen: Vec<Value> = Vec::new();
    let mut next = String::new();
    let mut pages = 0;
    loop {
        let path = format!("/users/ua-bob/meetings?page_size=2&next_page_token={next}");
        let page = zoom.call(&token, LIST, &path, None).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(
            page.body["total_records"], 6,
            "instant meetings are never listed"
        );
        assert_eq!(page.body["page_count"], 3);
        seen.extend(
            page.body["meetings"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|m| m["id"].clone()),
        );
        pages += 1;
        next = page.body["next_page_token"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if next.is_empty() || pages > 5 {
            break;
        }
    }
    assert_eq!(pages, 3);
    let mut expected = ids.clone();
    expected.push(past_id.clone());
    assert_eq!(seen, expected);

    let upcoming = zoom
        .call(&token, LIST, "/users/ua-bob/meetings?type=upcoming", None)
        .await;
    assert_eq!(upcoming.body["total_records"], 5);
    let previous = zoom
        .call(
            &token,
            LIST,
            "/users/ua-bob/meetings?type=previous_meetings",
            None,
        )
        .await;
    assert_eq!(previous.body["meetings"][0]["id"], past_id);
    let live = zoom
        .call(&token, LIST, "/users/ua-bob/meetings?type=live", None)
        .await;
    assert_eq!(live.body["total_records"], 0);
    let bad = zoom
        .call(&token, LIST, "/users/ua-bob/meetings?type=weird", None)
        .await;
    assert_eq!(bad.code(), Some(300));
    let ghost = zoom
        .call(&token, LIST, "/users/nobody/meetings", None)
        .await;
    assert_eq!(
        (ghost.status, ghost.code()),
        (StatusCode::NOT_FOUND, Some(1001))
    );
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn patch_changes_fields_and_validates() {
    let zoom = spawn().await;
    zoom.emu.set_now(at("2030-01-01T00:00:00Z"));
    let token = zoom.token("acc-a").await;
    let created = zoom
        .create_meeting(
            &token,
            "ua-alice",
            &json!({"topic": "old", "start_time": "2030-01-05T10:00:00Z"}),
        )
        .await;
    let id = created["id"].as_i64().expect("id");
    let path = format!("/meetings/{id}");
    let patch = json!({"topic": "new", "duration": 90, "start_time": "2030-01-06T11:00:00Z", "settings": {"mute_upon_entry": true}});
    let answer = zoom.call(&token, PATCH, &path, Some(&patch)).await;
    assert_eq!(
        (answer.status, &answer.body),
        (StatusCode::NO_CONTENT, &Value::Null)
    );
    let after = get(&zoom, &token, id, "").await.body;
    assert_eq!(
        (after["topic"].as_str(), after["duration"].as_i64()),
        (Some("new"), Some(90))
    );
    assert_eq!(after["start_time"], "2030-01-06T11:00:00Z");
    assert_eq!(after["settings"]["mute_upon_entry"], true);
    assert_eq!(after["uuid"], created["uuid"]);

    // A start time in the past is ignored.
    let past = json!({"start_time": "2020-01-01T00:00:00Z"});
    zoom.call(&token, PATCH, &path, Some(&past)).await;
    assert_eq!(
        get(&zoom, &token, id, "").await.body["start_time"],
        "2030-01-06T11:00:00Z"
    );

    let invalid = json!({"topic": "x".repeat(201)});
    let answer = zoom
        .call_unchecked(&token, PATCH, &path, Some(&invalid))
        .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, Some(300))
    );
    let missing = zoom
        .call(&token, PATCH, "/meetings/98765432101", Some(&json!({})))
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, Some(3001))
    );
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn delete_status_end_and_recover() {
    let zoom = spawn().await;
    let token = zoom.token("acc-a").await;
    let created = zoom
        .create_meeting(&token, "ua-alice", &json!({"topic": "live one"}))
        .await;
    let id = created["id"].as_i64().expect("id");
    let path = format!("/meetings/{id}");
    let status_path = format!("/meetings/{id}/status");

    assert!(zoom.emu.start_meeting(id));
    assert_eq!(get(&zoom, &token, id, "").await.body["status"], "started");
    let live = zoom
        .call(&token, LIST, "/users/ua-alice/meetings?type=live", None)
        .await;
    assert_eq!(live.body["total_records"], 1);
    let end = zoom
        .call(
            &token,
            STATUS,
            &status_path,
            Some(&json!({"action": "end"})),
        )
        .await;
    assert_eq!(end.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&zoom, &token, id, "").await.body["status"], "waiting");

    let deleted = zoom.call(&token, DELETE, &path, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&zoom, &token, id, "").await.code(), Some(3001));
    let again = zoom.call(&token, DELETE, &path, None).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::NOT_FOUND, Some(3001))
    );
    assert!(zoom.emu.meetings("acc-a").is_empty());

    let recover = zoom
        .call(
            &token,
            STATUS,
            &status_path,
            Some(&json!({"action": "recover"})),
        )
        .await;
    assert_eq!(recover.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&zoom, &token, id, "").await.status, StatusCode::OK);

    let bad = zoom
        .call_unchecked(
            &token,
            STATUS,
            &status_path,
            Some(&json!({"action": "pause"})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, Some(300))
    );
    let counts = zoom.emu.requests("acc-a");
    assert_eq!(counts.get(STATUS), Some(&3));
    assert_eq!(counts.get(DELETE), Some(&2));
    zoom.emu.shutdown().await;
}

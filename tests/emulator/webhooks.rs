//! Webhooks: Zoom-signed meeting events and the URL validation challenge.

use reqwest::StatusCode;
use serde_json::{Value, json};
use zoomgate::emulator::WebhookError;

use crate::support::{CONFIG, Receiver, hmac_hex, spawn_with, spec};

const SECRET: &str = "whsec-test-token";

async fn spawn_with_webhook(receiver: &Receiver) -> crate::support::TestZoom {
    let config = format!(
        "{CONFIG}\n[webhook]\nurl = \"{}\"\nsecret_token = \"{SECRET}\"\n",
        receiver.url
    );
    spawn_with(&config).await
}

#[tokio::test]
async fn meeting_events_are_signed_as_zoom_signs_them() {
    let receiver = Receiver::start(SECRET).await;
    let zoom = spawn_with_webhook(&receiver).await;
    let token = zoom.token("acc-a").await;
    let created = zoom
        .create_meeting(&token, "ua-alice", &json!({"topic": "hooked"}))
        .await;
    let id = created["id"].as_i64().expect("id");
    let path = format!("/meetings/{id}");
    let patch = json!({"topic": "renamed"});
    let answer = zoom
        .call(&token, "PATCH /meetings/{meetingId}", &path, Some(&patch))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(zoom.emu.start_meeting(id));
    let end = json!({"action": "end"});
    zoom.call(
        &token,
        "PUT /meetings/{meetingId}/status",
        &format!("{path}/status"),
        Some(&end),
    )
    .await;
    zoom.call(&token, "DELETE /meetings/{meetingId}", &path, None)
        .await;

    let received = receiver.wait_for(5).await;
    let mut events = Vec::new();
    for request in &received {
        let timestamp = &request.headers["x-zm-request-timestamp"];
        let message = [b"v0:", timestamp.as_bytes(), b":", &request.body[..]].concat();
        let expected = format!("v0={}", hmac_hex(SECRET.as_bytes(), &message));
        assert_eq!(request.headers["x-zm-signature"], expected);
        assert!(request.headers["content-type"].starts_with("application/json"));
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        let event = body["event"].as_str().expect("event").to_owned();
        let errors = spec().webhook_errors(&event, &body);
        assert!(errors.is_empty(), "{event} breaks SPEC-WH: {errors:?}");
        assert_eq!(body["payload"]["account_id"], "acc-a");
        // SPEC-WH types `object.id` as int64, except for started/ended where it is a string.
        let object_id = &body["payload"]["object"]["id"];
        assert!(
            object_id == &json!(id) || object_id == &json!(id.to_string()),
            "{object_id}"
        );
        let seconds: i64 = timestamp.parse().expect("epoch seconds");
        assert_eq!(body["event_ts"].as_i64().map(|ms| ms / 1000), Some(seconds));
        events.push(event);
    }
    assert_eq!(
        events,
        [
            "meeting.created",
            "meeting.updated",
            "meeting.started",
            "meeting.ended",
            "meeting.deleted"
        ]
    );
    let updated: Value = serde_json::from_slice(&received[1].body).expect("json");
    assert_eq!(updated["payload"]["object"]["topic"], "renamed");
    assert_eq!(updated["payload"]["old_object"]["topic"], "hooked");
    zoom.emu.shutdown().await;
}

#[tokio::test]
async fn url_validation_succeeds_only_with_the_right_secret() {
    let good = Receiver::start(SECRET).await;
    let zoom = spawn_with_webhook(&good).await;
    zoom.emu
        .validate_webhook_url()
        .await
        .expect("validation passes");
    let challenge = good.wait_for(1).await;
    let body: Value = serde_json::from_slice(&challenge[0].body).expect("json");
    assert_eq!(body["event"], "endpoint.url_validation");
    assert!(body["payload"]["plainToken"].is_string());
    zoom.emu.shutdown().await;

    let wrong = Receiver::start("another-secret").await;
    let zoom = spawn_with_webhook(&wrong).await;
    let error = zoom
        .emu
        .validate_webhook_url()
        .await
        .expect_err("wrong secret fails");
    assert!(matches!(error, WebhookError::WrongToken));
    zoom.emu.shutdown().await;
}

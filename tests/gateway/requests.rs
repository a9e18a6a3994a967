//! Creates with a `request_id` (AIP-155): one meeting per id and caller, across retries, lost
//! answers and restarts.

use tonic::Code;
use tonic_types::StatusExt;
use zoomgate::emulator::Faults;
use zoomgate::proto;

use crate::support::*;

const ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

fn create_with_id(email: &str, topic: &str, id: &str) -> proto::CreateMeetingRequest {
    proto::CreateMeetingRequest {
        request_id: id.to_owned(),
        ..create_for(email, topic)
    }
}

/// Meetings in the sales account with this topic.
fn made_in_zoom(gateway: &TestGateway, topic: &str) -> usize {
    gateway
        .zoom
        .meetings(SALES_ZOOM_ID)
        .iter()
        .filter(|m| m["topic"] == topic)
        .count()
}

#[tokio::test]
async fn the_same_id_returns_the_first_meeting_even_after_a_restart() {
    let mut gateway = TestGateway::spawn().await;
    let mut admin = gateway.client(ADMIN_KEY).await;
    let first = admin
        .create_meeting(create_with_id("alice@sales.acme.test", "once", ID))
        .await
        .unwrap()
        .into_inner();
    let again = admin
        .create_meeting(create_with_id(
            "alice@sales.acme.test",
            "once",
            &ID.to_uppercase(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, first.id);
    assert_eq!(again.topic, "once");
    assert_eq!(
        again.password, first.password,
        "as the caller saw it the first time"
    );

    gateway.restart().await;
    let mut admin = gateway.client(ADMIN_KEY).await;
    let after_restart = admin
        .create_meeting(create_with_id("alice@sales.acme.test", "once", ID))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after_restart.id, first.id);
    assert_eq!(made_in_zoom(&gateway, "once"), 1);

    // Another caller's id is its own.
    let mut sales = gateway.client(SALES_KEY).await;
    let theirs = sales
        .create_meeting(create_with_id("alice@sales.acme.test", "once", ID))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(theirs.id, first.id);
    assert_eq!(made_in_zoom(&gateway, "once"), 2);
    gateway.stop().await;
}

#[tokio::test]
async fn an_id_used_for_another_create_or_not_a_uuid_is_invalid() {
    let gateway = TestGateway::spawn().await;
    let mut admin = gateway.client(ADMIN_KEY).await;
    admin
        .create_meeting(create_with_id("alice@sales.acme.test", "first", ID))
        .await
        .unwrap();
    let reused = admin
        .create_meeting(create_with_id("alice@sales.acme.test", "second", ID))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");
    assert_eq!(violated_fields(&reused), ["request_id"]);

    for bad in [
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        "7c9e6679742540de944be07fc1f90ae7",
    ] {
        let status = admin
            .create_meeting(create_with_id("alice@sales.acme.test", "bad", bad))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(violated_fields(&status), ["request_id"], "{bad}");
    }
    assert_eq!(
        made_in_zoom(&gateway, "second") + made_in_zoom(&gateway, "bad"),
        0
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_with_an_id_never_duplicate_when_zoom_applies_them_and_drops_the_answer() {
    let gateway = TestGateway::spawn().await;
    let mut admin = gateway.client(ADMIN_KEY).await;
    // Without an id, the caller learns that the outcome is unknown.
    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            create_then_reset_rate: 1.0,
            ..Default::default()
        },
    );
    let lost = admin
        .create_meeting(create_for("alice@sales.acme.test", "lost answer"))
        .await
        .unwrap_err();
    assert_eq!(lost.code(), Code::Unavailable, "{lost:?}");
    assert_eq!(reason(&lost), "CREATE_OUTCOME_UNKNOWN");
    assert!(lost.message().contains("request_id"), "{}", lost.message());
    assert_eq!(made_in_zoom(&gateway, "lost answer"), 1, "zoom made it");

    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            create_then_reset_rate: 0.5,
            error_rate: 0.1,
            ..Default::default()
        },
    );
    let mut unknown = 0;
    for n in 0..20 {
        let id = format!("7c9e6679-7425-40de-944b-{n:012}");
        let topic = format!("exactly once {n}");
        let mut tries = 0;
        let meeting = loop {
            tries += 1;
            match admin
                .create_meeting(create_with_id("alice@sales.acme.test", &topic, &id))
                .await
            {
                Ok(meeting) => break meeting.into_inner(),
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                    if reason(&status) == "CREATE_OUTCOME_UNKNOWN" {
                        unknown += 1;
                        assert!(status.get_details_retry_info().is_some());
                    }
                    assert!(tries < 20, "{topic}: still failing after {tries} tries");
                }
            }
        };
        assert_eq!(meeting.topic, topic);
    }
    assert!(unknown >= 3, "the fault struck {unknown} times");
    for n in 0..20 {
        assert_eq!(
            made_in_zoom(&gateway, &format!("exactly once {n}")),
            1,
            "meeting {n}"
        );
    }
    // Every one is in the ledger: it routes without a probe.
    gateway.zoom.set_faults(SALES_ZOOM_ID, Faults::default());
    let before = gateway.zoom.total_requests(SALES_ZOOM_ID);
    let mut sales = gateway.client(SALES_KEY).await;
    let listed = gateway.zoom.meetings(SALES_ZOOM_ID);
    let found = listed
        .iter()
        .find(|m| m["topic"] == "exactly once 7")
        .unwrap();
    sales
        .get_meeting(get(found["id"].as_i64().unwrap()))
        .await
        .expect("routed by the ledger");
    assert_eq!(gateway.zoom.total_requests(SALES_ZOOM_ID), before + 1);
    gateway.stop().await;
}

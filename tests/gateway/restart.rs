//! The meeting ledger survives a restart: routing needs no probe afterwards.

use crate::support::*;

#[tokio::test]
async fn a_restart_keeps_the_ledger() {
    let mut gateway = TestGateway::spawn().await;
    let mut client = gateway.client(ADMIN_KEY).await;
    let created = client
        .create_meeting(create_for("carol@support.acme.test", "Before restart"))
        .await
        .unwrap()
        .into_inner();

    gateway.restart().await;
    let sales_before = gateway.zoom.total_requests(SALES_ZOOM_ID);
    let support_before = gateway.zoom.requests(SUPPORT_ZOOM_ID);

    let mut client = gateway.client(ADMIN_KEY).await;
    let got = client
        .get_meeting(get(created.id))
        .await
        .expect("routed after restart")
        .into_inner();
    assert_eq!(got.account, "acme-support");

    // No probe: the other account saw nothing, the owner saw exactly one GET.
    assert_eq!(gateway.zoom.total_requests(SALES_ZOOM_ID), sales_before);
    let support_after = gateway.zoom.requests(SUPPORT_ZOOM_ID);
    let gets = |m: &std::collections::BTreeMap<String, u64>| {
        m.get("GET /meetings/{meetingId}").copied().unwrap_or(0)
    };
    assert_eq!(gets(&support_after), gets(&support_before) + 1);
    assert_eq!(
        support_after.values().sum::<u64>(),
        support_before.values().sum::<u64>() + 1
    );

    gateway.stop().await;
}

#[tokio::test]
async fn a_caller_that_hangs_up_leaves_no_change_unrecorded_even_at_shutdown() {
    let mut gateway = TestGateway::spawn().await;
    let slow = zoomgate::emulator::Faults {
        latency_ms: 400,
        ..Default::default()
    };
    gateway.zoom.set_faults(SALES_ZOOM_ID, slow);
    let mut client = gateway.client(ADMIN_KEY).await;

    // The caller gives up while Zoom is still creating the meeting, and the gateway stops.
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        client.create_meeting(create_for("alice@sales.acme.test", "Abandoned")),
    )
    .await;
    assert!(gave_up.is_err(), "the call was still in flight");
    gateway.restart().await;

    let created = gateway.zoom.meetings(SALES_ZOOM_ID);
    assert_eq!(created.len(), 1, "Zoom created the meeting");
    let id = created[0]["id"].as_i64().unwrap();
    assert!(
        gateway.store.meeting(id).await.unwrap().is_some(),
        "the ledger has it"
    );
    let audit = gateway
        .store
        .audit(&zoomgate::store::AuditFilter::default())
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.meeting_id == Some(id) && r.operation == "meetings.create"),
        "{audit:?}"
    );
    gateway.stop().await;
}

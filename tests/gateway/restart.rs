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

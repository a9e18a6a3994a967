//! Token handling seen from outside: one fetch per cold account, refresh before expiry, purge on 401.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn concurrent_first_requests_share_one_token_fetch() {
    let gateway = TestGateway::spawn().await;
    let client = gateway.client(ADMIN_KEY).await;
    assert_eq!(gateway.zoom.token_fetches(SALES_ZOOM_ID), 0);

    let calls: Vec<_> = (0..200)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                client
                    .list_meetings(list_for("alice@sales.acme.test"))
                    .await
            })
        })
        .collect();
    // Zoom's per-second limit (emulated faithfully) may refuse some of the burst; none may
    // fail for want of a token.
    let mut succeeded = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => succeeded += 1,
            Err(status) => assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}"),
        }
    }
    assert!(succeeded > 0);
    assert_eq!(gateway.zoom.token_fetches(SALES_ZOOM_ID), 1);
    assert_eq!(gateway.zoom.token_fetches(SUPPORT_ZOOM_ID), 0);
    gateway.stop().await;
}

#[tokio::test]
async fn an_expiring_token_is_replaced_without_a_failed_request() {
    let gateway = TestGateway::spawn().await;
    gateway.zoom.set_token_ttl(Duration::from_secs(2));
    let mut client = gateway.client(ADMIN_KEY).await;

    let deadline = tokio::time::Instant::now() + Duration::from_millis(3500);
    let mut calls = 0;
    while tokio::time::Instant::now() < deadline {
        client
            .list_meetings(list_for("alice@sales.acme.test"))
            .await
            .expect("no request fails while tokens roll over");
        calls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(calls > 20);
    let fetches = gateway.zoom.token_fetches(SALES_ZOOM_ID);
    assert!((2..=8).contains(&fetches), "{fetches} token fetches");
    gateway.stop().await;
}

#[tokio::test]
async fn a_revoked_token_is_purged_and_the_request_retried_once() {
    let gateway = TestGateway::spawn().await;
    let mut client = gateway.client(ADMIN_KEY).await;
    client
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .unwrap();
    assert_eq!(gateway.zoom.token_fetches(SALES_ZOOM_ID), 1);
    let before = gateway.zoom.total_requests(SALES_ZOOM_ID);

    gateway.zoom.revoke_tokens(SALES_ZOOM_ID);
    client
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .expect("the retry with a fresh token succeeds");

    assert_eq!(gateway.zoom.token_fetches(SALES_ZOOM_ID), 2);
    // One rejected call, one retry.
    assert_eq!(gateway.zoom.total_requests(SALES_ZOOM_ID), before + 2);
    gateway.stop().await;
}

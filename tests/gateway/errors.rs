//! Each Zoom failure maps to its gRPC code, with google.rpc details and no Zoom internals.

use tonic::Code;
use tonic_types::StatusExt;
use zoomgate::emulator::Faults;
use zoomgate::proto;

use crate::support::*;

#[tokio::test]
async fn unknown_users_and_meetings_are_not_found() {
    let gateway = TestGateway::spawn().await;
    let mut client = gateway.client(ADMIN_KEY).await;

    let status = client
        .create_meeting(create_for("nobody@sales.acme.test", "x"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "USER_NOT_FOUND");

    let status = client
        .create_meeting(create_for("nobody@nowhere.test", "x"))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "probed in every account, found in none"
    );

    let status = client.get_meeting(get(987_654_321_012)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "MEETING_NOT_FOUND");
    gateway.stop().await;
}

#[tokio::test]
async fn a_missing_zoom_scope_is_a_failed_precondition() {
    let gateway = TestGateway::spawn().await;
    let mut client = gateway.client(ADMIN_KEY).await;
    let status = client
        .create_meeting(create_for("gina@limited.test", "x"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "ZOOM_SCOPE_MISSING");
    assert!(
        !status.message().contains("meeting:write"),
        "{}",
        status.message()
    );
    gateway.stop().await;
}

#[tokio::test]
async fn zoom_faults_map_to_retryable_codes() {
    let gateway = TestGateway::spawn().await;
    let mut client = gateway.client(ADMIN_KEY).await;
    client
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .unwrap();

    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            force_429: true,
            ..Default::default()
        },
    );
    let status = client
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "ZOOM_RATE_LIMITED");

    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    let status = client
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            reset_rate: 1.0,
            ..Default::default()
        },
    );
    let status = client
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    // Faults cleared: the same account serves again, at once or, if the failures opened its
    // circuit, once the circuit's RetryInfo has passed.
    gateway.zoom.set_faults(SALES_ZOOM_ID, Faults::default());
    if let Err(status) = client
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
    {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        let retry = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
            .expect("an open circuit says when to come back");
        assert!(retry <= std::time::Duration::from_secs(1), "{retry:?}");
        tokio::time::sleep(retry).await;
    }
    client
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .expect("recovers");
    gateway.stop().await;
}

#[tokio::test]
async fn a_failing_token_endpoint_is_unavailable_not_unauthenticated() {
    let gateway = TestGateway::spawn().await;
    let mut client = gateway.client(ADMIN_KEY).await;

    gateway.zoom.set_faults(
        SUPPORT_ZOOM_ID,
        Faults {
            token_endpoint_down: true,
            ..Default::default()
        },
    );
    let status = client
        .list_meetings(list_for("carol@support.acme.test"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "ZOOM_UNAVAILABLE");
    let retry = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("the first failure already says when the cooldown ends");
    assert!(retry > std::time::Duration::ZERO && retry <= std::time::Duration::from_secs(1));

    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            malformed_token: true,
            ..Default::default()
        },
    );
    let status = client
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    // Repeated failures cool down: the next call fails fast without asking Zoom again.
    let fetches = gateway.zoom.token_fetches(SALES_ZOOM_ID);
    let status = client
        .list_meetings(list_for("alice@sales.acme.test"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(gateway.zoom.token_fetches(SALES_ZOOM_ID), fetches);
    gateway.stop().await;
}

#[tokio::test]
async fn calls_without_valid_credentials_are_unauthenticated() {
    let gateway = TestGateway::spawn().await;
    let mut anonymous = gateway.anonymous_client().await;
    let status = anonymous.get_meeting(get(1)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut wrong = gateway.client("not-a-key").await;
    let status = wrong
        .list_meetings(proto::ListMeetingsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(gateway.zoom.token_fetches(SALES_ZOOM_ID), 0);
    gateway.stop().await;
}

//! A request ends by its deadline (the client's `grpc-timeout`, capped by
//! `request_timeout_secs`), and so does the work it started: only a change that already reached
//! Zoom finishes its ledger and audit writes.

use std::time::{Duration, Instant};

use tonic::Code;
use zoomgate::emulator::Faults;
use zoomgate::store::{AuditFilter, Outcome};

use crate::support::*;

fn slow_zoom() -> Faults {
    Faults {
        latency_ms: 3_000,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_read_ends_by_the_client_s_deadline_and_its_task_with_it() {
    // One request in flight per caller: the second is admitted only once the first task ended.
    let gateway =
        TestGateway::spawn_with(with_limits("max_requests_in_flight_per_caller = 1")).await;
    let mut admin = gateway.client(ADMIN_KEY).await;
    let meeting = admin
        .create_meeting(create_for("alice@sales.acme.test", "slow"))
        .await
        .unwrap()
        .into_inner();
    gateway.zoom.set_faults(SALES_ZOOM_ID, slow_zoom());

    for attempt in 0..2 {
        let started = Instant::now();
        let error = admin
            .get_meeting(within(Duration::from_millis(300), get(meeting.id)))
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            matches!(error.code(), Code::DeadlineExceeded | Code::Cancelled),
            "attempt {attempt}: {error:?}"
        );
        assert!(
            elapsed < Duration::from_millis(400),
            "attempt {attempt} took {elapsed:?}"
        );
        // The request task stops waiting for Zoom at the deadline too.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_change_cut_by_the_deadline_after_it_was_sent_is_recorded_as_unknown() {
    let gateway = TestGateway::spawn().await;
    let mut admin = gateway.client(ADMIN_KEY).await;
    // Fetches the account's token while Zoom is fast.
    admin
        .create_meeting(create_for("alice@sales.acme.test", "first"))
        .await
        .unwrap();
    gateway.zoom.set_faults(SALES_ZOOM_ID, slow_zoom());

    let started = Instant::now();
    let error = admin
        .create_meeting(within(
            Duration::from_millis(300),
            create_for("alice@sales.acme.test", "cut"),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(error.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(400));

    // The create went out before the deadline: Zoom may have made it, and the audit says so.
    let unknown = loop {
        let records = gateway
            .store
            .audit(&AuditFilter {
                operation: Some("meetings.create".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let concluded: Vec<_> = records
            .into_iter()
            .filter(|r| r.detail.as_deref() == Some("DEADLINE_EXCEEDED"))
            .collect();
        if !concluded.is_empty() || started.elapsed() > Duration::from_secs(2) {
            break concluded;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert_eq!(unknown[0].outcome, Outcome::Unknown);
}

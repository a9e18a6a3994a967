//! Timing: a NOT_FOUND answered without asking Zoom takes as long as a real lookup, also when
//! Zoom's latency has two clusters (a pooled connection against a new TLS connection).

use std::time::{Duration, Instant};

use tonic::Code;
use zoomgate::emulator::Faults;
use zoomgate::proto;

use crate::support::*;

/// Lookups of each sort per test: enough for steady medians, few enough for a few seconds.
const LOOKUPS: usize = 80;

/// Two clusters of Zoom's latency: every answer waits `fast_ms`, a `slow_rate` share `slow_ms`
/// in all.
fn bimodal(fast_ms: u64, slow_ms: u64, slow_rate: f64) -> Faults {
    Faults {
        latency_ms: fast_ms,
        slow_rate,
        slow_latency_ms: slow_ms - fast_ms,
        ..Faults::default()
    }
}

/// A gateway whose sales account answers with `faults`, its token already fetched.
async fn gateway_with(faults: Faults) -> TestGateway {
    let gateway = TestGateway::spawn_unthrottled().await;
    // Routed by rule, so no probe is timed: only the token fetch is out of the way.
    gateway
        .client(SALES_KEY)
        .await
        .create_meeting(create_for("alice@sales.acme.test", "Warm-up"))
        .await
        .expect("sales-bot creates");
    gateway.zoom.set_faults(SALES_ZOOM_ID, faults);
    gateway
}

/// Meeting ids the emulator has never issued.
fn missing_meeting(n: usize) -> i64 {
    7_000_000_000 + i64::try_from(n).expect("small")
}

/// Looks up a meeting that does not exist.
async fn get_missing(sales: &mut Client, n: usize) -> Result<(), tonic::Status> {
    sales.get_meeting(get(missing_meeting(n))).await.map(drop)
}

/// How long a NOT_FOUND from `lookup` takes.
async fn not_found_after<F>(lookup: F) -> Duration
where
    F: Future<Output = Result<(), tonic::Status>>,
{
    let started = Instant::now();
    let status = lookup.await.expect_err("the target does not exist");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    started.elapsed()
}

/// Against a gateway whose sales account answers with `faults`: times `lookup(n)` of new
/// targets, which only a probe can answer, each followed by the same target again, which the
/// gateway answers without Zoom, and asserts that the medians of the two agree within 10%.
async fn assert_held_takes_as_long_as_real(
    faults: Faults,
    lookup: impl AsyncFn(&mut Client, usize) -> Result<(), tonic::Status>,
) {
    let _turn = measuring().await;
    let gateway = gateway_with(faults).await;
    let mut sales = gateway.client(SALES_KEY).await;
    let (mut real, mut held) = (Vec::new(), Vec::new());
    for n in 0..LOOKUPS {
        let before = gateway.zoom.total_requests(SALES_ZOOM_ID);
        real.push(not_found_after(lookup(&mut sales, n)).await);
        let probed = gateway.zoom.total_requests(SALES_ZOOM_ID);
        held.push(not_found_after(lookup(&mut sales, n)).await);
        assert_eq!(probed, before + 1, "the first lookup asks Zoom once");
        assert_eq!(
            gateway.zoom.total_requests(SALES_ZOOM_ID),
            probed,
            "the second is answered without Zoom"
        );
    }
    assert_medians_agree(real, held);
    gateway.stop().await;
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// Asserts that the medians of `held` and `real` differ by at most 10% of the real one.
fn assert_medians_agree(real: Vec<Duration>, held: Vec<Duration>) {
    let (real, held) = (median(real), median(held));
    eprintln!("median of held NOT_FOUND answers {held:?}, of real lookups {real:?}");
    assert!(
        real.abs_diff(held) <= real / 10,
        "median of held answers {held:?}, of real lookups {real:?}"
    );
}

#[tokio::test]
async fn held_meeting_not_found_takes_as_long_as_a_probe_when_most_answers_are_slow() {
    // Held for the mean of the two clusters, held answers would come out faster than the
    // median real lookup.
    assert_held_takes_as_long_as_real(bimodal(5, 60, 0.75), get_missing).await;
}

#[tokio::test]
async fn held_user_not_found_takes_as_long_as_a_probe_when_most_answers_are_fast() {
    assert_held_takes_as_long_as_real(bimodal(30, 90, 0.25), async |sales, n| {
        let user = proto::list_meetings_request::User::UserId(format!("no-such-user-{n}"));
        let request = proto::ListMeetingsRequest {
            user: Some(user),
            ..Default::default()
        };
        sales.list_meetings(request).await.map(drop)
    })
    .await;
}

#[tokio::test]
async fn a_lookup_that_asks_zoom_is_not_held_on_top() {
    let _turn = measuring().await;
    // Every probe so far took 60 ms; then Zoom speeds up.
    let gateway = gateway_with(bimodal(20, 60, 1.0)).await;
    let mut sales = gateway.client(SALES_KEY).await;
    for n in 0..10 {
        not_found_after(get_missing(&mut sales, n)).await;
    }
    gateway.zoom.set_faults(SALES_ZOOM_ID, bimodal(20, 60, 0.0));

    let took = not_found_after(get_missing(&mut sales, 10)).await;

    // Its own probe is its time: no hold drawn from the slow past comes on top of it.
    assert!(
        took < Duration::from_millis(50),
        "a real lookup answered in {took:?}"
    );
    gateway.stop().await;
}

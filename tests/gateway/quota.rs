//! Zoom's budget, seen from outside with the emulator's rate limits on: the gateway admits
//! against the account's published limits instead of tripping them, shares them fairly between
//! callers, refuses what cannot be served in time at once, and stays correct when Zoom fails.

use std::time::{Duration, Instant};

use tonic::Code;
use tonic_types::StatusExt;
use zoomgate::emulator::Faults;

use crate::support::*;

/// Pro plan, Light category: Zoom's limit per second.
const PRO_LIGHT: f64 = 30.0;

/// How one request of a load ended.
struct Answer {
    took: Duration,
    result: Result<(), (Code, String)>,
}

impl Answer {
    fn ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// Sends `get_meeting(meeting)` as `key` at `per_second` for `length`, each with `deadline`;
/// returns every answer once all came back.
async fn load(
    gateway: &TestGateway,
    key: &str,
    meeting: i64,
    per_second: f64,
    length: Duration,
    deadline: Duration,
) -> Vec<Answer> {
    let client = gateway.client(key).await;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut calls = Vec::new();
    while started.elapsed() < length {
        ticks.tick().await;
        let mut client = client.clone();
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            let result = client
                .get_meeting(within(deadline, get(meeting)))
                .await
                .map(drop)
                .map_err(|status| (status.code(), reason(&status)));
            Answer {
                took: sent.elapsed(),
                result,
            }
        }));
    }
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    answers
}

/// A meeting in the sales account (Pro) to read under load.
async fn sales_meeting(gateway: &TestGateway) -> i64 {
    let mut admin = gateway.client(ADMIN_KEY).await;
    admin
        .create_meeting(create_for("alice@sales.acme.test", "under load"))
        .await
        .unwrap()
        .into_inner()
        .id
}

fn percentile(mut times: Vec<Duration>, p: f64) -> Duration {
    times.sort();
    let index = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
    times[index]
}

/// Every refusal is the gateway's own, at once, and nothing timed out after it was admitted.
fn assert_refusals_are_budget_refusals(answers: &[Answer]) {
    for answer in answers {
        if let Err((code, reason)) = &answer.result {
            assert!(
                *code == Code::ResourceExhausted
                    && ["ZOOM_BUDGET_EXHAUSTED", "TOO_MANY_REQUESTS_IN_FLIGHT"]
                        .contains(&reason.as_str()),
                "{code:?} {reason}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_times_the_allowed_load_gives_no_429_and_near_full_goodput() {
    let _turn = measuring().await;
    let gateway = TestGateway::spawn().await;
    let meeting = sales_meeting(&gateway).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (admitted_before, refused_before) = gateway.zoom.rate_limit_totals(SALES_ZOOM_ID);

    let length = Duration::from_secs(10);
    let flood = {
        let gateway = &gateway;
        load(
            gateway,
            ADMIN_KEY,
            meeting,
            3.0 * PRO_LIGHT,
            length,
            Duration::from_secs(1),
        )
    };
    let counted_at_the_end = async {
        tokio::time::sleep(length).await;
        gateway.zoom.rate_limit_totals(SALES_ZOOM_ID)
    };
    let (answers, (admitted, refused)) = tokio::join!(flood, counted_at_the_end);

    assert_eq!(refused - refused_before, 0, "zoom answered 429");
    let goodput = (admitted - admitted_before) as f64 / length.as_secs_f64();
    assert!(
        goodput >= 0.95 * PRO_LIGHT,
        "goodput {goodput:.1}/s of {PRO_LIGHT}/s"
    );
    assert_refusals_are_budget_refusals(&answers);
    let served = answers.iter().filter(|a| a.ok()).count();
    assert!(
        served as f64 >= 0.95 * PRO_LIGHT * length.as_secs_f64(),
        "{served} served"
    );
    eprintln!(
        "overload: {goodput:.1}/s admitted by zoom, {served} of {} answered, p99 of served {:?}",
        answers.len(),
        percentile(
            answers.iter().filter(|a| a.ok()).map(|a| a.took).collect(),
            0.99
        )
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_wait_would_pass_its_deadline_is_refused_at_once_and_says_why() {
    let _turn = measuring().await;
    let gateway = TestGateway::spawn().await;
    let meeting = sales_meeting(&gateway).await;
    // Two seconds of the account's budget wait in line.
    let queue = {
        let gateway = &gateway;
        load(
            gateway,
            ADMIN_KEY,
            meeting,
            200.0,
            Duration::from_millis(300),
            Duration::from_secs(5),
        )
    };
    let probe = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut sales = gateway.client(SALES_KEY).await;
        // Fair share puts a new caller near the front: fill its own line first.
        let mut own = Vec::new();
        for _ in 0..10 {
            let mut sales = sales.clone();
            own.push(tokio::spawn(async move {
                sales
                    .get_meeting(within(Duration::from_secs(5), get(meeting)))
                    .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let refused = sales
            .get_meeting(within(Duration::from_millis(200), get(meeting)))
            .await
            .unwrap_err();
        let took = started.elapsed();
        for call in own {
            call.await.unwrap().expect("its own line is served");
        }
        (refused, took)
    };
    let (answers, (refused, took)) = tokio::join!(queue, probe);

    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "ZOOM_BUDGET_EXHAUSTED");
    assert!(took < Duration::from_millis(100), "refused after {took:?}");
    let retry = refused
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("RetryInfo");
    assert!(retry > Duration::ZERO, "{retry:?}");
    let quota = refused.get_details_quota_failure().expect("QuotaFailure");
    assert_eq!(quota.violations[0].subject, "account:acme-sales/light");
    assert!(
        refused.message().contains("acme-sales") && refused.message().contains("light"),
        "{}",
        refused.message()
    );
    assert!(answers.iter().all(|a| a.ok()), "the long line is served");
    assert_eq!(gateway.zoom.rate_limit_totals(SALES_ZOOM_ID).1, 0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_caller_cannot_starve_one_that_keeps_to_its_share() {
    let _turn = measuring().await;
    let gateway = TestGateway::spawn().await;
    let meeting = sales_meeting(&gateway).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (admitted_before, refused_before) = gateway.zoom.rate_limit_totals(SALES_ZOOM_ID);

    // Two callers of equal weight: each has half the account's 29/s pace.
    let share = 14.0;
    let length = Duration::from_secs(10);
    let deadline = Duration::from_secs(1);
    let flood = load(&gateway, ADMIN_KEY, meeting, 10.0 * share, length, deadline);
    let fair = load(&gateway, SALES_KEY, meeting, share, length, deadline);
    let counted_at_the_end = async {
        tokio::time::sleep(length).await;
        gateway.zoom.rate_limit_totals(SALES_ZOOM_ID)
    };
    let (flood, fair, (admitted, refused)) = tokio::join!(flood, fair, counted_at_the_end);

    let fair_served = fair.iter().filter(|a| a.ok() && a.took < deadline).count();
    assert!(
        fair_served as f64 >= 0.9 * fair.len() as f64,
        "{fair_served} of {} fair requests served",
        fair.len()
    );
    let flood_served = flood.iter().filter(|a| a.ok()).count();
    let goodput = (admitted - admitted_before) as f64 / length.as_secs_f64();
    assert!(goodput >= 0.95 * PRO_LIGHT, "goodput {goodput:.1}/s");
    assert!(
        flood_served as f64 >= (0.95 * PRO_LIGHT - share) * length.as_secs_f64(),
        "the flooder gets the rest: {flood_served}"
    );
    assert_eq!(refused - refused_before, 0, "zoom answered 429");
    assert_refusals_are_budget_refusals(&flood);
    eprintln!(
        "fairness: fair caller {fair_served}/{}, flooder {flood_served}/{}, {goodput:.1}/s",
        fair.len(),
        flood.len()
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_calls_ride_out_zoom_s_5xx_and_resets() {
    let _turn = measuring().await;
    let gateway = TestGateway::spawn().await;
    let meeting = sales_meeting(&gateway).await;
    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            error_rate: 0.15,
            reset_rate: 0.15,
            ..Default::default()
        },
    );
    // 20 a second: retries stay within the account's budget.
    let answers = load(
        &gateway,
        ADMIN_KEY,
        meeting,
        20.0,
        Duration::from_secs(15),
        Duration::from_secs(10),
    )
    .await;
    let served = answers.iter().filter(|a| a.ok()).count();
    let failures: Vec<_> = answers
        .iter()
        .filter_map(|a| a.result.clone().err())
        .collect();
    assert!(
        served as f64 >= 0.99 * answers.len() as f64,
        "{served} of {} served; failures: {failures:?}",
        answers.len()
    );
    assert_eq!(gateway.zoom.rate_limit_totals(SALES_ZOOM_ID).1, 0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_down_for_two_lifetimes_fails_clearly_and_recovers_within_a_second() {
    let _turn = measuring().await;
    let gateway = TestGateway::spawn().await;
    let meeting = sales_meeting(&gateway).await;
    let mut admin = gateway.client(ADMIN_KEY).await;
    let lifetime = Duration::from_secs(2);
    gateway.zoom.set_token_ttl(lifetime);
    gateway.zoom.revoke_tokens(SALES_ZOOM_ID);
    admin
        .get_meeting(get(meeting))
        .await
        .expect("a new short token");

    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            token_endpoint_down: true,
            ..Default::default()
        },
    );
    let down_until = Instant::now() + 2 * lifetime;
    let mut failed = 0;
    while Instant::now() < down_until {
        match admin.get_meeting(get(meeting)).await {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert_eq!(reason(&status), "ZOOM_UNAVAILABLE");
                let retry = status
                    .get_details_retry_info()
                    .and_then(|info| info.retry_delay)
                    .expect("says when to come back");
                assert!(retry <= Duration::from_secs(1), "{retry:?}");
                failed += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failed > 10, "the token expired while the endpoint was down");

    gateway.zoom.set_faults(SALES_ZOOM_ID, Faults::default());
    let back = Instant::now();
    loop {
        if admin.get_meeting(get(meeting)).await.is_ok() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(1),
            "not back after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "token endpoint back: served again after {:?}",
        back.elapsed()
    );
    for _ in 0..10 {
        admin.get_meeting(get(meeting)).await.expect("stays back");
    }
    gateway.stop().await;
}

/// p99 of reads of carol's meeting (support account) at 40 a second while the sales account
/// carries 20 a second under `faults`.
async fn support_p99_beside(
    gateway: &TestGateway,
    sales: i64,
    support: i64,
    faults: Faults,
) -> Duration {
    gateway.zoom.set_faults(SALES_ZOOM_ID, faults);
    let length = Duration::from_secs(3);
    let (_, answers) = tokio::join!(
        load(
            gateway,
            ADMIN_KEY,
            sales,
            20.0,
            length,
            Duration::from_secs(2)
        ),
        load(
            gateway,
            ADMIN_KEY,
            support,
            40.0,
            length,
            Duration::from_secs(2)
        ),
    );
    assert!(answers.iter().all(Answer::ok));
    percentile(answers.iter().map(|a| a.took).collect(), 0.99)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_account_leaves_the_others_latency_alone() {
    let _turn = measuring().await;
    let gateway = TestGateway::spawn().await;
    let sales = sales_meeting(&gateway).await;
    let mut admin = gateway.client(ADMIN_KEY).await;
    let support = admin
        .create_meeting(create_for("carol@support.acme.test", "beside"))
        .await
        .unwrap()
        .into_inner()
        .id;
    let failing = Faults {
        error_rate: 1.0,
        ..Default::default()
    };
    // Alternated, so that a noisy neighbour on the machine hits both alike.
    let (mut healthy, mut broken) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        healthy.push(support_p99_beside(&gateway, sales, support, Faults::default()).await);
        broken.push(support_p99_beside(&gateway, sales, support, failing.clone()).await);
    }
    let (healthy, broken) = (
        healthy.into_iter().min().unwrap(),
        broken.into_iter().min().unwrap(),
    );
    eprintln!("support p99: {healthy:?} beside a healthy account, {broken:?} beside a failing one");
    assert!(
        broken.as_secs_f64() <= 1.2 * healthy.as_secs_f64(),
        "p99 {broken:?} beside a failing account, {healthy:?} beside a healthy one"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_s_101st_create_of_the_day_waits_for_zoom_s_midnight_even_across_a_restart() {
    let mut gateway = TestGateway::spawn().await;
    let midnight = (chrono::Utc::now().date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    gateway
        .zoom
        .set_now(midnight - chrono::Duration::seconds(15));
    let admin = gateway.client(ADMIN_KEY).await;
    // In waves of 20: well within what one caller may have in flight.
    for wave in 0..5 {
        let creates: Vec<_> = (0..20)
            .map(|i| {
                let mut admin = admin.clone();
                let topic = format!("m{wave}-{i}");
                tokio::spawn(async move {
                    admin
                        .create_meeting(create_for("alice@sales.acme.test", &topic))
                        .await
                })
            })
            .collect();
        for create in creates {
            create.await.unwrap().expect("within the day's 100");
        }
    }
    assert!(gateway.zoom.now() < midnight, "the creates took too long");

    let refused_at_once = |gateway: &TestGateway| {
        let (gateway_zoom, addr) = (gateway.zoom.clone(), gateway.addr);
        async move {
            let sent_before = gateway_zoom.total_requests(SALES_ZOOM_ID);
            let mut admin = client_at(addr, ADMIN_KEY).await;
            let refused = admin
                .create_meeting(create_for("alice@sales.acme.test", "one too many"))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
            assert_eq!(reason(&refused), "USER_DAILY_CAP_REACHED");
            let quota = refused.get_details_quota_failure().expect("QuotaFailure");
            assert_eq!(quota.violations[0].subject, "user:alice@sales.acme.test");
            let retry = refused
                .get_details_retry_info()
                .and_then(|info| info.retry_delay)
                .expect("RetryInfo");
            assert!(
                retry <= Duration::from_secs(16),
                "until zoom's midnight: {retry:?}"
            );
            assert_eq!(
                gateway_zoom.total_requests(SALES_ZOOM_ID),
                sent_before,
                "zoom was not asked"
            );
        }
    };
    refused_at_once(&gateway).await;
    // Another user of the same account still has the day's 100.
    let mut admin = gateway.client(ADMIN_KEY).await;
    admin
        .create_meeting(create_for("bob@sales.acme.test", "bob's first"))
        .await
        .expect("bob's day is his own");

    gateway.restart().await;
    refused_at_once(&gateway).await;

    while gateway.zoom.now() < midnight + chrono::Duration::milliseconds(1500) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut admin = gateway.client(ADMIN_KEY).await;
    admin
        .create_meeting(create_for("alice@sales.acme.test", "a new day"))
        .await
        .expect("zoom's new day");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_serves_what_it_can_within_the_grace_period_and_refuses_the_rest_at_once() {
    let gateway =
        TestGateway::spawn_with(|toml| toml.insert_str(0, "shutdown_grace_period_secs = 1\n"))
            .await;
    let meeting = sales_meeting(&gateway).await;
    let admin = gateway.client(ADMIN_KEY).await;
    // About three seconds of the account's budget, each with time to wait for it.
    let calls: Vec<_> = (0..60)
        .map(|_| {
            let mut admin = admin.clone();
            tokio::spawn(async move {
                let result = admin
                    .get_meeting(within(Duration::from_secs(10), get(meeting)))
                    .await;
                (Instant::now(), result)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    gateway.stop().await;
    let stopped = stopping.elapsed();

    let (mut served, mut refused) = (0, 0);
    for call in calls {
        let (answered, result) = call.await.unwrap();
        match result {
            Ok(_) => served += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert_eq!(reason(&status), "SHUTTING_DOWN");
                assert!(
                    answered.duration_since(stopping) < Duration::from_millis(300),
                    "refused only after {:?}",
                    answered.duration_since(stopping)
                );
                refused += 1;
            }
        }
    }
    assert!(served >= 20, "{served} served in the grace period");
    assert!(refused >= 20, "{refused} refused");
    assert!(
        stopped < Duration::from_millis(1800),
        "stopped after {stopped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoom_s_own_user_cap_429_is_honoured_and_remembered() {
    let gateway = TestGateway::spawn().await;
    // Another app spent bob's day in Zoom, behind the gateway's back.
    for i in 0..100 {
        gateway
            .create_in_sales_zoom("u-bob", &format!("other app {i}"))
            .await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let mut admin = gateway.client(ADMIN_KEY).await;
    let refused = admin
        .create_meeting(create_for("bob@sales.acme.test", "one too many"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "USER_DAILY_CAP_REACHED");
    assert!(refused.get_details_retry_info().is_some());

    // Remembered: the next one does not ask Zoom.
    let sent = gateway.zoom.total_requests(SALES_ZOOM_ID);
    let again = admin
        .create_meeting(create_for("bob@sales.acme.test", "still too many"))
        .await
        .unwrap_err();
    assert_eq!(reason(&again), "USER_DAILY_CAP_REACHED");
    assert_eq!(gateway.zoom.total_requests(SALES_ZOOM_ID), sent);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_zoom_answers_429_the_gateway_waits_as_told_instead_of_forwarding_everything() {
    let _turn = measuring().await;
    let gateway = TestGateway::spawn().await;
    let meeting = sales_meeting(&gateway).await;
    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            force_429: true,
            ..Default::default()
        },
    );
    let before = gateway.zoom.total_requests(SALES_ZOOM_ID);
    let answers = load(
        &gateway,
        ADMIN_KEY,
        meeting,
        50.0,
        Duration::from_secs(3),
        Duration::from_millis(1500),
    )
    .await;
    let sent = gateway.zoom.total_requests(SALES_ZOOM_ID) - before;
    // 150 requests; Zoom asked for a second's pause after each 429.
    assert!(
        sent <= 10,
        "{sent} requests reached a Zoom that answers 429"
    );
    for answer in &answers {
        let (code, reason) = answer.result.clone().unwrap_err();
        assert_eq!(code, Code::ResourceExhausted);
        assert!(
            ["ZOOM_RATE_LIMITED", "ZOOM_BUDGET_EXHAUSTED"].contains(&reason.as_str()),
            "{reason}"
        );
    }
    let mut client = gateway.client(ADMIN_KEY).await;
    let limited = client
        .get_meeting(within(Duration::from_millis(1500), get(meeting)))
        .await
        .unwrap_err();
    let retry = limited
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("RetryInfo");
    assert!(retry > Duration::ZERO, "{retry:?}");
    gateway.stop().await;
}

//! Three times a Pro account's Light budget for `LENGTH`, against the emulator with Zoom's rate
//! limits on, sent two ways in one run:
//!
//! - through the gateway (`GetMeeting`, 1 s deadline), which admits against the budget;
//! - by a naive client straight to the emulator (`GET /meetings/{id}`), which retries a 429 with
//!   exponential backoff and jitter (50 ms doubling, 5 retries, 1 s deadline), as most Zoom
//!   client code does.
//!
//! For each: goodput (answers served per second), the 429s Zoom gave, and p50/p99 of the
//! served answers. `cargo bench --bench quota` (add `-- --quick` for 3 s runs).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use zoomgate::emulator::{Emulator, EmulatorConfig};
use zoomgate::proto;

const EMULATOR: &str = r#"
[[accounts]]
account_id = "BenchPro"
client_id = "bench-pro"
client_secret = "bench-pro-secret"
plan = "pro"
scopes = ["meeting:write:meeting:admin", "meeting:read:meeting:admin", "user:read:user:admin"]
  [[accounts.users]]
  id = "u-alice"
  email = "alice@pro.bench.test"
"#;

const API_KEY: &str = "bench-key";
/// Zoom's Light limit on Pro, per second.
const LIMIT: f64 = 30.0;

fn gateway_toml(emulator: &Emulator, store: &str) -> String {
    format!(
        r#"
listen_addr = "127.0.0.1:0"
ops_listen_addr = "127.0.0.1:0"
zoom_api_url = "{api}"
zoom_oauth_url = "{oauth}"
store = "{store}"

[[accounts]]
name = "pro"
zoom_account_id = "BenchPro"
client_id = "bench-pro"
client_secret_env = "PRO"
plan = "pro"
domains = ["pro.bench.test"]
{caller}"#,
        api = emulator.api_url(),
        oauth = emulator.oauth_url(),
        caller = support::bench_caller(API_KEY),
    )
}

/// What one way of sending the load got.
struct Outcome {
    served: Vec<Duration>,
    refused: usize,
    zoom_429: u64,
    /// From the first call to the last answer.
    length: Duration,
}

impl Outcome {
    fn report(mut self, name: &str) {
        self.served.sort_unstable();
        let at = |p: f64| {
            let index = ((self.served.len() as f64 - 1.0) * p).round() as usize;
            self.served
                .get(index)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
        };
        println!(
            "| {name} | {:.1} | {:.0}% | {} | {} | {:.1} | {:.1} |",
            self.served.len() as f64 / self.length.as_secs_f64(),
            100.0 * self.served.len() as f64 / (LIMIT * self.length.as_secs_f64()),
            self.zoom_429,
            self.refused,
            at(0.5),
            at(0.99),
        );
    }
}

/// Fires `call` at `per_second` for `length`; each returns how long it took if it was served.
/// Also returns the time from the first call to the last answer.
async fn offer<F, Fut>(
    per_second: f64,
    length: Duration,
    call: F,
) -> (Vec<Duration>, usize, Duration)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<Duration>> + Send + 'static,
{
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    let started = Instant::now();
    let mut calls = Vec::new();
    while started.elapsed() < length {
        ticks.tick().await;
        calls.push(tokio::spawn(call()));
    }
    let (mut served, mut refused) = (Vec::new(), 0);
    for call in calls {
        match call.await.expect("call task") {
            Some(took) => served.push(took),
            None => refused += 1,
        }
    }
    (served, refused, started.elapsed())
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let length = Duration::from_secs(if quick { 3 } else { 10 });
    let emulator_config = EmulatorConfig::from_toml(EMULATOR).expect("bench emulator config");
    let emulator = Emulator::start(emulator_config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite:{}", dir.path().join("bench.db").display());
    let app = support::build(
        &gateway_toml(&emulator, &store),
        &[("PRO", "bench-pro-secret")],
    )
    .await;
    let serving = support::Served::start(app);
    let client = serving.client(API_KEY).await;
    let meeting = client
        .clone()
        .create_meeting(proto::CreateMeetingRequest {
            user: Some(proto::create_meeting_request::User::UserEmail(
                "alice@pro.bench.test".into(),
            )),
            meeting: Some(proto::Meeting {
                topic: "bench".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("create through the gateway")
        .into_inner()
        .id;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Through the gateway.
    let before = emulator.rate_limit_totals("BenchPro").1;
    let (served, refused, took) = offer(3.0 * LIMIT, length, || {
        let mut client = client.clone();
        async move {
            let mut request = tonic::Request::new(proto::GetMeetingRequest {
                meeting_id: meeting,
                occurrence_id: String::new(),
            });
            request.set_timeout(Duration::from_secs(1));
            let started = Instant::now();
            client.get_meeting(request).await.ok()?;
            Some(started.elapsed())
        }
    })
    .await;
    let gateway = Outcome {
        served,
        refused,
        zoom_429: emulator.rate_limit_totals("BenchPro").1 - before,
        length: took,
    };
    // Let the budget's second pass before the naive client starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The naive client, straight to Zoom.
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(emulator.oauth_url())
        .basic_auth("bench-pro", Some("bench-pro-secret"))
        .form(&[
            ("grant_type", "account_credentials"),
            ("account_id", "BenchPro"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token body");
    let token: Arc<str> = token["access_token"].as_str().expect("access_token").into();
    let url: Arc<str> = format!("{}/meetings/{meeting}", emulator.api_url()).into();
    let before = emulator.rate_limit_totals("BenchPro").1;
    let (served, refused, took) = offer(3.0 * LIMIT, length, || {
        let (http, token, url) = (http.clone(), token.clone(), url.clone());
        async move {
            let started = Instant::now();
            let deadline = started + Duration::from_secs(1);
            let mut backoff = ExponentialBuilder::new()
                .with_min_delay(Duration::from_millis(50))
                .with_max_times(5)
                .with_jitter()
                .build();
            loop {
                let answer = http.get(&*url).bearer_auth(&*token).send().await.ok()?;
                if answer.status().is_success() {
                    return Some(started.elapsed());
                }
                let delay = backoff.next()?;
                if Instant::now() + delay >= deadline {
                    return None;
                }
                tokio::time::sleep(delay).await;
            }
        }
    })
    .await;
    let naive = Outcome {
        served,
        refused,
        zoom_429: emulator.rate_limit_totals("BenchPro").1 - before,
        length: took,
    };

    println!(
        "\n{:.0} req/s offered for {length:?} to a Pro account (Light: {LIMIT}/s), in one run\n",
        3.0 * LIMIT
    );
    println!(
        "| client | goodput (req/s) | of Zoom's limit | Zoom 429s | refused / gave up | p50 served (ms) | p99 served (ms) |"
    );
    println!("|---|---|---|---|---|---|---|");
    gateway.report("zoomgate (admission)");
    naive.report("naive client (retry on 429 with backoff)");

    serving.stop().await;
    emulator.shutdown().await;
}

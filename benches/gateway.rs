//! GetMeeting through the gateway versus the same Zoom GET sent straight to the emulator.
//!
//! Both run in one process against one in-process emulator (rate limits off), at concurrency 1
//! and 64, so the ratio between them is what the gateway adds on this machine. A third path, the
//! gateway's health check, is the floor: one gRPC round trip on the same server, no Zoom call.
//! Run: `cargo bench --bench gateway` (add `-- --quick` for a shorter run).

mod support;

use std::sync::Arc;

use support::{Run, measure, micros};

use tonic::transport::Channel;
use zoomgate::emulator::{Emulator, EmulatorConfig};
use zoomgate::proto;

const EMULATOR: &str = r#"
enforce_rate_limits = false

[[accounts]]
account_id = "BenchSales"
client_id = "bench-sales"
client_secret = "bench-sales-secret"
plan = "business"
scopes = ["meeting:write:meeting:admin", "meeting:read:meeting:admin", "user:read:user:admin"]
  [[accounts.users]]
  id = "u-alice"
  email = "alice@sales.bench.test"

[[accounts]]
account_id = "BenchSupport"
client_id = "bench-support"
client_secret = "bench-support-secret"
plan = "business"
scopes = ["meeting:write:meeting:admin", "meeting:read:meeting:admin", "user:read:user:admin"]
  [[accounts.users]]
  id = "u-carol"
  email = "carol@support.bench.test"
"#;

const API_KEY: &str = "bench-key";

fn gateway_toml(emulator: &Emulator, store: &str) -> String {
    format!(
        r#"
listen_addr = "127.0.0.1:0"
ops_listen_addr = "127.0.0.1:0"
zoom_api_url = "{api}"
zoom_oauth_url = "{oauth}"
store = "{store}"

[[accounts]]
name = "sales"
zoom_account_id = "BenchSales"
client_id = "bench-sales"
client_secret_env = "SALES"
domains = ["sales.bench.test"]
# The emulator enforces no limits here: the bench measures the gateway, not Zoom's budget.
rate_limits = {{ light = 1000000, medium = 1000000 }}

[[accounts]]
name = "support"
zoom_account_id = "BenchSupport"
client_id = "bench-support"
client_secret_env = "SUPPORT"
domains = ["support.bench.test"]
rate_limits = {{ light = 1000000, medium = 1000000 }}
{caller}"#,
        api = emulator.api_url(),
        oauth = emulator.oauth_url(),
        caller = support::bench_caller(API_KEY),
    )
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 5 };

    let emulator_config = EmulatorConfig::from_toml(EMULATOR).expect("bench emulator config");
    let emulator = Emulator::start(emulator_config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite:{}", dir.path().join("bench.db").display());
    let app = support::build(
        &gateway_toml(&emulator, &store),
        &[
            ("SALES", "bench-sales-secret"),
            ("SUPPORT", "bench-support-secret"),
        ],
    )
    .await;
    let tokens = app.tokens().clone();
    let served = support::Served::start(app);
    let addr = served.addr;

    // One meeting per account, created through the gateway so the ledger routes them.
    let client = served.client(API_KEY).await;
    let mut ids = Vec::new();
    for email in ["alice@sales.bench.test", "carol@support.bench.test"] {
        let meeting = client
            .clone()
            .create_meeting(proto::CreateMeetingRequest {
                user: Some(proto::create_meeting_request::User::UserEmail(email.into())),
                meeting: Some(proto::Meeting {
                    topic: "bench".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("create through the gateway")
            .into_inner();
        ids.push(meeting.id);
    }
    let ids = Arc::new(ids);
    let health = tonic_health::pb::health_client::HealthClient::new(
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );

    // The direct path: a keep-alive HTTP client with a token of the sales account.
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(emulator.oauth_url())
        .basic_auth("bench-sales", Some("bench-sales-secret"))
        .form(&[
            ("grant_type", "account_credentials"),
            ("account_id", "BenchSales"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let direct_url = Arc::new(format!("{}/meetings/{}", emulator.api_url(), ids[0]));

    println!("| concurrency | path | requests | p50 (µs) | p99 (µs) | throughput (req/s) |");
    println!("|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    for (concurrency, total) in [(1usize, 2_000 * scale), (64, 8_000 * scale)] {
        let (http, bearer, url) = (http.clone(), bearer.clone(), direct_url.clone());
        let direct_call = move |_| {
            let request = http
                .get(url.as_str())
                .header("authorization", bearer.clone());
            async move {
                let response = request.send().await.expect("direct GET");
                assert!(response.status().is_success(), "direct GET failed");
                response.bytes().await.expect("body");
            }
        };
        let (client, ids) = (client.clone(), ids.clone());
        let gateway_call = move |i: usize| {
            let mut client = client.clone();
            let id = ids[i % ids.len()];
            async move {
                client
                    .get_meeting(proto::GetMeetingRequest {
                        meeting_id: id,
                        occurrence_id: String::new(),
                    })
                    .await
                    .expect("GetMeeting through the gateway");
            }
        };
        let health = health.clone();
        let floor_call = move |_| {
            let mut health = health.clone();
            async move {
                health
                    .check(tonic_health::pb::HealthCheckRequest::default())
                    .await
                    .expect("health check");
            }
        };
        // Warm up every path, then measure.
        measure(concurrency, total / 10, direct_call.clone()).await;
        measure(concurrency, total / 10, gateway_call.clone()).await;
        measure(concurrency, total / 10, floor_call.clone()).await;
        let direct = measure(concurrency, total, direct_call).await;
        let gateway = measure(concurrency, total, gateway_call).await;
        let floor = measure(concurrency, total, floor_call).await;
        for (name, run) in [
            ("direct", &direct),
            ("gateway", &gateway),
            ("grpc floor (health check)", &floor),
        ] {
            println!(
                "| {concurrency} | {name} | {} | {:.0} | {:.0} | {:.0} |",
                run.latencies.len(),
                micros(run.percentile(0.5)),
                micros(run.percentile(0.99)),
                run.throughput()
            );
        }
        summary.push((concurrency, direct, gateway, floor));
    }
    println!();
    println!("| concurrency | added p50 (µs) | added p99 (µs) | throughput gateway/direct |");
    println!("|---|---|---|---|");
    for (concurrency, direct, gateway, _) in &summary {
        println!(
            "| {concurrency} | {:.0} | {:.0} | {:.2} |",
            micros(gateway.percentile(0.5)) - micros(direct.percentile(0.5)),
            micros(gateway.percentile(0.99)) - micros(direct.percentile(0.99)),
            gateway.throughput() / direct.throughput()
        );
    }
    println!();
    // The gateway's own cost, as issue 8 defines it (see BENCHMARKS.md).
    for (concurrency, direct, gateway, floor) in &summary {
        let p50 = |run: &Run| micros(run.percentile(0.5));
        let cost = |run: &Run| 1e6 / run.throughput();
        match concurrency {
            1 => println!(
                "own latency (c=1): {:.0} µs = gateway p50 − direct p50 − floor p50",
                p50(gateway) - p50(direct) - p50(floor)
            ),
            _ => println!(
                "own CPU (c={concurrency}): {:.1} µs per request = 1/gateway − 1/floor − 1/direct",
                cost(gateway) - cost(floor) - cost(direct)
            ),
        }
    }
    println!();
    for account in ["sales", "support"] {
        let name = zoomgate::accounts::AccountName::parse(account).unwrap();
        println!(
            "token fetches by the gateway, account {account}: {}",
            tokens.fetches(&name)
        );
    }

    served.stop().await;
    emulator.shutdown().await;
}

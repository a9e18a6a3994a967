//! Cost of finding the caller of an API key, with 2 callers and with 10,000 (issue 7, finding C).
//!
//! Two measurements, each alternating between the two settings so that both see the same
//! neighbours' load:
//! - **lookup**: `Policy::caller_by_api_key` called directly, for an unknown key (what every
//!   UNAUTHENTICATED request costs) and for the last configured caller's key;
//! - **round trip**: GetMeeting over gRPC on loopback with an unknown key, answered
//!   UNAUTHENTICATED by a real gateway before anything else happens (no Zoom call).
//!
//! Run: `cargo bench --bench auth` (add `-- --quick` for a fifth of the iterations).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use zoomgate::config::Config;
use zoomgate::emulator::{Emulator, EmulatorConfig};
use zoomgate::proto;
use zoomgate::proto::meetings_client::MeetingsClient;

const EMULATOR: &str = r#"
enforce_rate_limits = false

[[accounts]]
account_id = "BenchSales"
client_id = "bench-sales"
client_secret = "bench-sales-secret"
plan = "business"
scopes = ["meeting:read:meeting:admin", "user:read:user:admin"]
  [[accounts.users]]
  id = "u-alice"
  email = "alice@sales.bench.test"
"#;

const SETTINGS: [usize; 2] = [2, 10_000];

/// A gateway config with `callers` callers; caller `i` holds the key `bench-key-{i}`.
fn gateway_toml(emulator: &Emulator, callers: usize) -> String {
    let mut text = format!(
        r#"
listen_addr = "127.0.0.1:0"
ops_listen_addr = "127.0.0.1:0"
zoom_api_url = "{api}"
zoom_oauth_url = "{oauth}"
store = "sqlite::memory:"

[[accounts]]
name = "sales"
zoom_account_id = "BenchSales"
client_id = "bench-sales"
client_secret_env = "SALES"
domains = ["sales.bench.test"]
"#,
        api = emulator.api_url(),
        oauth = emulator.oauth_url(),
    );
    for i in 0..callers {
        let hash = zoomgate::policy::hash_api_key(&key(i));
        text.push_str(&format!(
            "\n[[callers]]\nname = \"caller-{i}\"\napi_key_sha256 = [\"{hash}\"]\n\
             grants = [{{ accounts = [\"*\"], users = [\"*\"], operations = [\"read\"] }}]\n"
        ));
    }
    text
}

fn key(i: usize) -> String {
    format!("bench-key-{i}")
}

fn config(emulator: &Emulator, callers: usize) -> Config {
    let env = [("SALES".to_owned(), "bench-sales-secret".to_owned())].into();
    Config::from_toml(
        &gateway_toml(emulator, callers),
        &env,
        std::path::Path::new("."),
    )
    .expect("bench gateway config")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Nanoseconds per lookup of each key in `keys`, over `iterations` lookups.
fn lookup_ns(config: &Config, keys: &[String], iterations: usize) -> f64 {
    let start = Instant::now();
    for i in 0..iterations {
        black_box(
            config
                .policy
                .caller_by_api_key(black_box(&keys[i % keys.len()])),
        );
    }
    start.elapsed().as_nanos() as f64 / iterations as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 5 };

    let emulator = Emulator::start(
        EmulatorConfig::from_toml(EMULATOR).expect("bench emulator config"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("emulator starts");
    let configs = SETTINGS.map(|callers| config(&emulator, callers));

    // === the lookup alone ===
    let unknown: Vec<String> = (0..1_024).map(|i| format!("unknown-key-{i}")).collect();
    let last: Vec<Vec<String>> = SETTINGS.iter().map(|&n| vec![key(n - 1)]).collect();
    let iterations = 200_000 * scale;
    let rounds = 7;
    let mut unknown_ns = [Vec::new(), Vec::new()];
    let mut known_ns = [Vec::new(), Vec::new()];
    for (s, config) in configs.iter().enumerate() {
        lookup_ns(config, &unknown, iterations / 10); // warm-up
        lookup_ns(config, &last[s], iterations / 10);
    }
    for _ in 0..rounds {
        for (s, config) in configs.iter().enumerate() {
            unknown_ns[s].push(lookup_ns(config, &unknown, iterations));
            known_ns[s].push(lookup_ns(config, &last[s], iterations));
        }
    }
    println!("Policy::caller_by_api_key, median of {rounds} rounds of {iterations} lookups:");
    println!();
    println!("| callers | unknown key (ns/lookup) | last caller's key (ns/lookup) |");
    println!("|---|---|---|");
    let mut medians = Vec::new();
    for (s, callers) in SETTINGS.iter().enumerate() {
        let (u, k) = (median(&mut unknown_ns[s]), median(&mut known_ns[s]));
        println!("| {callers} | {u:.0} | {k:.0} |");
        medians.push((u, k));
    }
    println!(
        "| ratio 10000/2 | {:.2} | {:.2} |",
        medians[1].0 / medians[0].0,
        medians[1].1 / medians[0].1
    );
    println!();

    // === UNAUTHENTICATED round trips through the gateway ===
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for config in configs {
        let app = zoomgate::App::build(config).await.expect("gateway builds");
        let addr = app.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        servers.push((
            stop,
            tokio::spawn(app.run(async {
                let _ = stopped.await;
            })),
        ));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let bad: MetadataValue<Ascii> = "Bearer not-a-configured-key".parse().unwrap();
        clients.push(MeetingsClient::with_interceptor(
            channel,
            move |mut req: tonic::Request<()>| {
                req.metadata_mut().insert("authorization", bad.clone());
                Ok(req)
            },
        ));
    }
    let per_round = 2_000 * scale;
    let rounds = 4;
    let mut latencies = [Vec::new(), Vec::new()];
    for round in 0..=rounds {
        for (s, client) in clients.iter_mut().enumerate() {
            for _ in 0..per_round {
                let start = Instant::now();
                let status = client
                    .get_meeting(proto::GetMeetingRequest {
                        meeting_id: 1,
                        occurrence_id: String::new(),
                    })
                    .await
                    .expect_err("an unknown key is refused");
                let elapsed = start.elapsed();
                assert_eq!(status.code(), Code::Unauthenticated);
                // Round 0 warms up connections and caches.
                if round > 0 {
                    latencies[s].push(elapsed);
                }
            }
        }
    }
    println!(
        "UNAUTHENTICATED GetMeeting round trips on loopback, concurrency 1, {rounds} alternating rounds of {per_round}:"
    );
    println!();
    println!("| callers | requests | p50 (µs) | p99 (µs) |");
    println!("|---|---|---|---|");
    let mut p = Vec::new();
    for (s, callers) in SETTINGS.iter().enumerate() {
        latencies[s].sort_unstable();
        let (p50, p99) = (
            percentile(&latencies[s], 0.5),
            percentile(&latencies[s], 0.99),
        );
        println!(
            "| {callers} | {} | {:.0} | {:.0} |",
            latencies[s].len(),
            micros(p50),
            micros(p99)
        );
        p.push((p50, p99));
    }
    println!(
        "| ratio 10000/2 | | {:.2} | {:.2} |",
        p[1].0.as_secs_f64() / p[0].0.as_secs_f64(),
        p[1].1.as_secs_f64() / p[0].1.as_secs_f64()
    );

    for (stop, server) in servers {
        let _ = stop.send(());
        server
            .await
            .expect("server task")
            .expect("server stops cleanly");
    }
    emulator.shutdown().await;
}

//! What a shared PostgreSQL store and the shared Zoom budget add per request, against the
//! single-replica SQLite mode: two gateways in one process, one on each store, against one
//! in-process emulator (rate limits off, budgets set so high that nobody waits: every Zoom call
//! still reserves its place). They are measured alternately in one run, reads and creates, and
//! the shared budget's reservation alone.
//!
//! Needs the PostgreSQL of the tests (`ZOOMGATE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`); works in a schema of its own, dropped at the end.
//! Run: `cargo bench --bench shared` (add `-- --quick` for a fifth of the requests).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::Connection;
use zoomgate::emulator::{Emulator, EmulatorConfig};
use zoomgate::proto;
use zoomgate::store::{SlotAsk, Store};

use support::{Client, Run, Served, bench_caller, build, measure, micros};

const API_KEY: &str = "bench-key";
/// Hosts of the creates: the gateway lets each create 100 meetings a day, as Zoom does.
const USERS: usize = 20;

fn emulator_toml() -> String {
    let mut text = String::from(
        r#"
enforce_rate_limits = false

[[accounts]]
account_id = "BenchSales"
client_id = "bench-sales"
client_secret = "bench-sales-secret"
plan = "business"
scopes = ["meeting:write:meeting:admin", "meeting:read:meeting:admin", "user:read:user:admin"]
"#,
    );
    for user in 0..USERS {
        text.push_str(&format!(
            "  [[accounts.users]]\n  id = \"u-{user}\"\n  email = \"user{user}@sales.bench.test\"\n"
        ));
    }
    text
}

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
rate_limits = {{ light = 1000000, medium = 1000000, heavy = 1000000 }}
{caller}"#,
        api = emulator.api_url(),
        oauth = emulator.oauth_url(),
        caller = bench_caller(API_KEY),
    )
}

/// One gateway under test, and a meeting it created.
struct Gateway {
    served: Served,
    client: Client,
    store: Arc<dyn Store>,
    meeting: i64,
}

impl Gateway {
    async fn start(emulator: &Emulator, store: &str) -> Gateway {
        let app = build(
            &gateway_toml(emulator, store),
            &[("SALES", "bench-sales-secret")],
        )
        .await;
        let served = Served::start(app);
        let mut client = served.client(API_KEY).await;
        let meeting = client
            .create_meeting(create(0))
            .await
            .expect("a create through the gateway")
            .into_inner()
            .id;
        Gateway {
            served,
            client,
            store: zoomgate::store::open(store, None)
                .await
                .expect("the store opens"),
            meeting,
        }
    }

    async fn reads(&self, concurrency: usize, total: usize) -> Run {
        let (client, id) = (self.client.clone(), self.meeting);
        measure(concurrency, total, move |_| {
            let mut client = client.clone();
            async move {
                client
                    .get_meeting(proto::GetMeetingRequest {
                        meeting_id: id,
                        occurrence_id: String::new(),
                    })
                    .await
                    .expect("GetMeeting");
            }
        })
        .await
    }

    /// `total` creates, spread over the hosts; `made` counts them across runs.
    async fn creates(&self, concurrency: usize, total: usize, made: Arc<AtomicUsize>) -> Run {
        let client = self.client.clone();
        measure(concurrency, total, move |_| {
            let mut client = client.clone();
            let n = made.fetch_add(1, Ordering::Relaxed);
            async move {
                client
                    .create_meeting(create(n))
                    .await
                    .expect("CreateMeeting");
            }
        })
        .await
    }

    async fn stop(self) {
        self.served.stop().await;
        self.store.close().await;
    }
}

fn create(n: usize) -> proto::CreateMeetingRequest {
    let email = format!("user{}@sales.bench.test", n % USERS);
    proto::CreateMeetingRequest {
        user: Some(proto::create_meeting_request::User::UserEmail(email)),
        meeting: Some(proto::Meeting {
            topic: "bench".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// CPU time the whole machine spent so far (all cores, every process: the gateways, the
/// emulator and PostgreSQL), from `/proc/stat` in USER_HZ ticks of 10 ms.
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let ticks: u64 = stat
        .lines()
        .next()
        .expect("the cpu line")
        .split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        // user nice system idle iowait irq softirq steal: all but idle and iowait.
        .filter(|(field, _)| ![3, 4].contains(field))
        .map(|(_, ticks)| ticks.parse::<u64>().unwrap_or_default())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// A run and the machine's CPU time per request during it.
async fn measured(run: impl Future<Output = Run>) -> (Run, Duration) {
    let before = machine_busy();
    let run = run.await;
    let cpu = (machine_busy() - before) / run.latencies.len() as u32;
    (run, cpu)
}

fn row(what: &str, store: &str, concurrency: usize, (run, cpu): &(Run, Duration)) {
    println!(
        "| {what} | {store} | {concurrency} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        run.latencies.len(),
        micros(run.percentile(0.5)),
        micros(run.percentile(0.99)),
        run.throughput(),
        micros(*cpu)
    );
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 5 };
    let server = std::env::var("ZOOMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("zoomgate_bench_{:016x}", rand::random::<u64>());
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|error| panic!("this bench needs PostgreSQL at {server}: {error}"));
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap();

    let emulator = Emulator::start(
        EmulatorConfig::from_toml(&emulator_toml()).expect("bench emulator config"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("emulator starts");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Gateway::start(
        &emulator,
        &format!("sqlite:{}", dir.path().join("bench.db").display()),
    )
    .await;
    let postgres = Gateway::start(
        &emulator,
        &format!("{server}?options=-c%20search_path%3D{schema}"),
    )
    .await;
    let stores = [("sqlite", &sqlite), ("postgres", &postgres)];

    println!(
        "| request | store | concurrency | requests | p50 (µs) | p99 (µs) | throughput (req/s) | CPU per request (µs, whole machine) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut added = Vec::new();
    for (concurrency, total) in [(1, 1_000 * scale), (64, 4_000 * scale)] {
        for (_, gateway) in stores {
            gateway.reads(concurrency, total / 10).await;
        }
        let on_sqlite = measured(sqlite.reads(concurrency, total)).await;
        let on_postgres = measured(postgres.reads(concurrency, total)).await;
        row("GetMeeting", "sqlite", concurrency, &on_sqlite);
        row("GetMeeting", "postgres", concurrency, &on_postgres);
        added.push(("GetMeeting", concurrency, on_sqlite, on_postgres));
    }
    // The gateway lets each host create 100 meetings a day: every store gets fewer than that.
    let made = [Arc::new(AtomicUsize::new(1)), Arc::new(AtomicUsize::new(1))];
    for (concurrency, total) in [(1, 60 * scale.min(3)), (16, 240 * scale.min(3))] {
        let on_sqlite = measured(sqlite.creates(concurrency, total, made[0].clone())).await;
        let on_postgres = measured(postgres.creates(concurrency, total, made[1].clone())).await;
        row("CreateMeeting", "sqlite", concurrency, &on_sqlite);
        row("CreateMeeting", "postgres", concurrency, &on_postgres);
        added.push(("CreateMeeting", concurrency, on_sqlite, on_postgres));
    }
    println!();
    println!(
        "| request | concurrency | added p50 (µs) | added p99 (µs) | added CPU per request (µs) |"
    );
    println!("|---|---|---|---|---|");
    for (what, concurrency, (on_sqlite, sqlite_cpu), (on_postgres, postgres_cpu)) in &added {
        println!(
            "| {what} | {concurrency} | {:.0} | {:.0} | {:.0} |",
            micros(on_postgres.percentile(0.5)) - micros(on_sqlite.percentile(0.5)),
            micros(on_postgres.percentile(0.99)) - micros(on_sqlite.percentile(0.99)),
            micros(*postgres_cpu) - micros(*sqlite_cpu)
        );
    }

    // The reservation alone, as every Zoom call of a replica makes it, and how many places a
    // second the database hands out to several gateways asking at once.
    let budget = postgres.store.shared_budget().expect("postgres shares");
    let ask = Arc::new(SlotAsk {
        account: zoomgate::accounts::AccountName::parse("bench").unwrap(),
        category: "light",
        interval: Duration::from_micros(1),
        within: Duration::from_secs(1),
        daily_cap: None,
        day: 1,
    });
    println!();
    println!("| reservation | concurrency | reservations | p50 (µs) | p99 (µs) | places/s |");
    println!("|---|---|---|---|---|---|");
    for (concurrency, total) in [(1, 2_000 * scale), (16, 8_000 * scale)] {
        let (budget, ask) = (budget.clone(), ask.clone());
        let run = measure(concurrency, total, move |_| {
            let (budget, ask) = (budget.clone(), ask.clone());
            async move {
                budget.reserve(&ask).await.expect("a place");
            }
        })
        .await;
        println!(
            "| reserve_budget_slot | {concurrency} | {} | {:.0} | {:.0} | {:.0} |",
            run.latencies.len(),
            micros(run.percentile(0.5)),
            micros(run.percentile(0.99)),
            run.throughput()
        );
    }

    sqlite.stop().await;
    postgres.stop().await;
    emulator.shutdown().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
}

//! What a gateway holds per 1,000 accounts and per 100,000 ledger entries: resident memory and
//! CPU time, for the README's sizing.
//!
//! Each measurement runs in a child process of its own (this binary, called again), so that
//! one does not inherit the heap of another. Memory is the growth of the process's resident
//! set (`/proc/self/statm`) over what it held before; CPU is user plus system time
//! (`/proc/self/stat`, 10 ms ticks). The emulator runs in the same process, started before the
//! first reading.
//! Run: `cargo bench --bench sizing` (add `-- --quick` for smaller sizes).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use zoomgate::accounts::AccountName;
use zoomgate::config::RawConfig;
use zoomgate::emulator::{Emulator, EmulatorConfig};
use zoomgate::store::{Durability, MeetingRecord, SqliteStore, Store};

const SECRET: &str = "sizing-client-secret";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, what, n] = &args[..]
        && role == "--child"
    {
        let n: usize = n.parse().expect("a size");
        let line = match what.as_str() {
            "accounts" => accounts(n).await,
            "ledger" => ledger(n).await,
            other => panic!("unknown measurement {other}"),
        };
        println!("{line}");
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (account_sizes, ledger_sizes): (&[usize], &[usize]) = if quick {
        (&[1, 1_000], &[20_000])
    } else {
        (&[1, 1_000, 10_000], &[100_000])
    };
    println!("| what | count | memory (MiB) | per 1,000 (KiB) | CPU (ms) | per 1,000 (ms) |");
    println!("|---|---|---|---|---|---|");
    for (what, sizes) in [("accounts", account_sizes), ("ledger", ledger_sizes)] {
        for n in sizes {
            let me = std::env::current_exe().expect("own path");
            let output = Command::new(me)
                .args(["--child", what, &n.to_string()])
                .output()
                .expect("child runs");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            print!("{}", String::from_utf8_lossy(&output.stdout));
        }
    }
}

/// Resident memory in bytes.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// User plus system CPU time in milliseconds.
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks * 10
}

fn row(what: &str, n: usize, bytes: u64, cpu: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let per_kib = bytes as f64 / 1024.0 / n as f64 * 1000.0;
    let per_ms = cpu as f64 / n as f64 * 1000.0;
    format!("| {what} | {n} | {mib:.1} | {per_kib:.0} | {cpu} | {per_ms:.1} |")
}

fn emulator_toml(accounts: usize) -> String {
    let mut text = String::from("enforce_rate_limits = false\n");
    for i in 0..accounts {
        text.push_str(&format!(
            "[[accounts]]\naccount_id = \"Zoom{i}\"\nclient_id = \"client-{i}\"\n\
             client_secret = \"{SECRET}\"\nplan = \"pro\"\n\
             scopes = [\"meeting:read:meeting:admin\"]\n"
        ));
    }
    text
}

fn gateway_toml(emulator: &Emulator, store: &str, accounts: usize) -> String {
    let mut text = format!(
        "listen_addr = \"127.0.0.1:0\"\nops_listen_addr = \"127.0.0.1:0\"\n\
         zoom_api_url = \"{}\"\nzoom_oauth_url = \"{}\"\nstore = \"{store}\"\n",
        emulator.api_url(),
        emulator.oauth_url()
    );
    for i in 0..accounts {
        text.push_str(&format!(
            "[[accounts]]\nname = \"account-{i}\"\nzoom_account_id = \"Zoom{i}\"\n\
             client_id = \"client-{i}\"\nclient_secret_env = \"SECRET\"\n\
             domains = [\"a{i}.sizing.test\"]\n"
        ));
    }
    text.push_str(&format!(
        "[[callers]]\nname = \"sizing\"\napi_key_sha256 = [\"{}\"]\n\
         [[callers.grants]]\naccounts = [\"*\"]\nusers = [\"*\"]\noperations = [\"read\"]\n",
        zoomgate::policy::hash_api_key("sizing-key")
    ));
    text
}

async fn gateway(emulator: &Emulator, store: &str, accounts: usize) -> zoomgate::App {
    let raw: RawConfig = toml::from_str(&gateway_toml(emulator, store, accounts)).unwrap();
    let env = [("SECRET".to_owned(), SECRET.to_owned())].into();
    let config = raw.validate(&env, Path::new(".")).expect("sizing config");
    zoomgate::App::build(config).await.expect("gateway builds")
}

async fn emulator(accounts: usize) -> Emulator {
    let config = EmulatorConfig::from_toml(&emulator_toml(accounts)).expect("emulator config");
    Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts")
}

/// `n` configured accounts: memory and CPU of building the gateway, then of fetching and
/// holding one token for each (what every account costs once it has served a request; the
/// emulator's record of each token it issued counts too).
async fn accounts(n: usize) -> String {
    let zoom = emulator(n).await;
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("sizing.db").display());
    let (memory, cpu) = (resident(), cpu_ms());
    let started = Instant::now();
    let app = gateway(&zoom, &store, n).await;
    let built = started.elapsed();
    let idle = row("accounts, idle", n, resident() - memory, cpu_ms() - cpu);
    let (memory, cpu) = (resident(), cpu_ms());
    // One after the other, over one pooled connection: what the accounts hold, not the
    // buffers of a thousand connections opened at once.
    for i in 0..n {
        let name = AccountName::parse(&format!("account-{i}")).unwrap();
        app.tokens().token(&name).await.expect("a token");
    }
    let held = row(
        "accounts, a token each",
        n,
        resident() - memory,
        cpu_ms() - cpu,
    );
    format!(
        "{idle}\n{held}\n| (build of {n} accounts took {} ms) | | | | | |",
        built.as_millis()
    )
}

/// `n` ledger entries in the store: memory and CPU of reading each once through the gateway's
/// ledger cache (which keeps up to 100,000), and of reading them again from it.
async fn ledger(n: usize) -> String {
    let zoom = emulator(1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sizing.db");
    {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open_file(&path, Durability::ProcessSafe)
                .await
                .expect("store"),
        );
        let account = AccountName::parse("account-0").unwrap();
        let writers = (0..8).map(|w| {
            let (store, account) = (store.clone(), account.clone());
            tokio::spawn(async move {
                for id in (w..n).step_by(8) {
                    let record = MeetingRecord {
                        meeting_id: 80_000_000_000 + id as i64,
                        account: account.clone(),
                        host_id: format!("user-{}", id % 1000),
                        host_email: format!("user-{}@a0.sizing.test", id % 1000),
                        created_by: "sizing".into(),
                        created_at: Utc::now(),
                    };
                    store.record_meeting(&record).await.expect("written");
                }
            })
        });
        for writer in writers.collect::<Vec<_>>() {
            writer.await.unwrap();
        }
        store.close().await;
    }
    let disk = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len());
    let app = gateway(&zoom, &format!("sqlite:{}", path.display()), 1).await;
    let meetings = app.meetings().clone();
    let (memory, cpu) = (resident(), cpu_ms());
    for id in 0..n {
        let record = meetings
            .ledger_record(80_000_000_000 + id as i64)
            .await
            .expect("read");
        assert!(record.is_some());
    }
    let cold = row(
        "ledger entries, read from the store",
        n,
        resident() - memory,
        cpu_ms() - cpu,
    );
    let (memory, cpu) = (resident(), cpu_ms());
    for id in 0..n {
        meetings
            .ledger_record(80_000_000_000 + id as i64)
            .await
            .expect("read");
    }
    let warm = row(
        "ledger entries, read again from the cache",
        n,
        resident().saturating_sub(memory),
        cpu_ms() - cpu,
    );
    format!(
        "{cold}\n{warm}\n| (store file with {n} entries: {:.1} MiB on disk) | | | | | |",
        disk as f64 / (1024.0 * 1024.0)
    )
}

//! What `synchronous=FULL` costs: one change's two writes (intent, then outcome with the ledger)
//! on a SQLite file store, power-safe against process-safe, in one run.
//!
//! Each round opens a fresh file in a temporary directory on the machine's disk (not tmpfs,
//! where a sync costs nothing) and records `CHANGES` creates, once one at a time and once from
//! 8 tasks at a time. The two modes alternate rounds, so the machine's noise falls on both.
//! Run: `cargo bench --bench durability`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use zoomgate::store::{
    AuditRecord, Completion, Durability, LedgerChange, MeetingRecord, Outcome, SqliteStore, Store,
};

const CHANGES: usize = 400;
const ROUNDS: usize = 3;
const CONCURRENCY: usize = 8;

#[tokio::main]
async fn main() {
    let mut rows = Vec::new();
    for concurrency in [1, CONCURRENCY] {
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            for (i, durability) in [Durability::ProcessSafe, Durability::PowerSafe]
                .into_iter()
                .enumerate()
            {
                times[i].push(run(durability, concurrency).await);
            }
        }
        let per_change = |t: &[Duration]| {
            let best = t.iter().min().expect("rounds ran");
            best.as_secs_f64() * 1e6 / CHANGES as f64
        };
        let (normal, full) = (per_change(&times[0]), per_change(&times[1]));
        rows.push((concurrency, normal, full));
    }
    println!("| concurrency | NORMAL µs/change | FULL µs/change | FULL/NORMAL | FULL changes/s |");
    println!("|---|---|---|---|---|");
    for (concurrency, normal, full) in rows {
        println!(
            "| {concurrency} | {normal:.0} | {full:.0} | {:.2} | {:.0} |",
            full / normal,
            1e6 / full
        );
    }
}

/// Records `CHANGES` creates with `concurrency` tasks; returns the time taken.
async fn run(durability: Durability, concurrency: usize) -> Duration {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open_file(&dir.path().join("bench.db"), durability)
            .await
            .expect("store opens"),
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (task..CHANGES).step_by(concurrency) {
                    change(store.as_ref(), i64::try_from(i).expect("small")).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task ran");
    }
    let elapsed = started.elapsed();
    store.close().await;
    elapsed
}

/// One create as the request path records it.
async fn change(store: &dyn Store, i: i64) {
    let mut record = AuditRecord {
        id: 0,
        at: Utc::now(),
        caller: "bench".into(),
        operation: "meetings.create".into(),
        account: Some("sales".into()),
        user: Some("alice@sales.bench.test".into()),
        meeting_id: None,
        outcome: Outcome::Unknown,
        detail: None,
    };
    let intent_id = store.begin_change(&record).await.expect("intent");
    record.outcome = Outcome::Allowed;
    record.meeting_id = Some(80_000_000_000 + i);
    let meeting = MeetingRecord {
        meeting_id: 80_000_000_000 + i,
        account: zoomgate::accounts::AccountName::parse("sales").unwrap(),
        host_id: "u-alice".into(),
        host_email: "alice@sales.bench.test".into(),
        created_by: "bench".into(),
        created_at: record.at,
    };
    store
        .complete_change(&Completion {
            intent_id,
            record,
            ledger: LedgerChange::Record(meeting),
        })
        .await
        .expect("completion");
}

//! Three `zoomgate serve` processes on one PostgreSQL and one emulator, as three replicas behind
//! a Service: they share routes, ledger and request ids, spend one Zoom budget between them,
//! lose nothing acknowledged when one is killed, and ride out a database restart.
//!
//! Each test works in a schema of its own, or on a PostgreSQL server of its own; where none can
//! be had, the tests say they were skipped (`ZOOMGATE_REQUIRE_POSTGRES=1` makes that a failure).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::Code;
use zoomgate::emulator::Emulator;
use zoomgate::proto::explanation::Source;

use crate::postgres::{Schema, skipped};
use crate::process::GatewayProcess;
use crate::support::*;

/// Pro plan, Light category: Zoom's limit per second, which reads and creates both spend.
const PRO_LIGHT: f64 = 30.0;

/// Three gateway processes on `store`, against one emulator with Zoom's limits on.
struct Replicas {
    zoom: Emulator,
    gateways: Vec<GatewayProcess>,
    _config: tempfile::TempPath,
}

impl Replicas {
    async fn start(store: &str) -> Replicas {
        let zoom = Emulator::start(emulator_config(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let config = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        std::fs::write(&config, gateway_toml(&zoom, store)).unwrap();
        let gateways = (0..3).map(|_| GatewayProcess::start(&config)).collect();
        Replicas {
            zoom,
            gateways,
            _config: config,
        }
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.gateways.iter().map(|gateway| gateway.addr).collect()
    }

    /// A meeting of alice's in the sales account, created through the first replica.
    async fn alice_meeting(&self, topic: &str) -> i64 {
        client_at(self.gateways[0].addr, ADMIN_KEY)
            .await
            .create_meeting(create_for("alice@sales.acme.test", topic))
            .await
            .unwrap()
            .into_inner()
            .id
    }

    /// Zoom's count of admitted and 429'd calls into the sales account so far.
    fn sales_totals(&self) -> (u64, u64) {
        self.zoom.rate_limit_totals(SALES_ZOOM_ID)
    }
}

/// Where replica `addr` would route a read of `target` by `admin`, from what it holds now.
async fn source_at(addr: SocketAddr, target: zoomgate::proto::explain_request::Target) -> Source {
    admin_at(addr, PLATFORM_KEY)
        .await
        .explain(zoomgate::proto::ExplainRequest {
            caller: "admin".into(),
            target: Some(target),
            operation: zoomgate::proto::Operation::Read.into(),
            probe: false,
        })
        .await
        .unwrap()
        .into_inner()
        .source()
}

/// Waits until every one of `addrs` routes `target` from `source`; fails after 1 s.
async fn seen_by_all(
    addrs: &[SocketAddr],
    target: zoomgate::proto::explain_request::Target,
    source: Source,
) -> Duration {
    let started = Instant::now();
    for addr in addrs {
        while source_at(*addr, target.clone()).await != source {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "replica {addr} does not route {target:?} from {source:?} after 1 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_routes_deletions_and_request_ids() {
    use zoomgate::proto::explain_request::Target;
    let Some(schema) = Schema::create().await else {
        return;
    };
    let replicas = Replicas::start(&schema.store()).await;
    let addrs = replicas.addrs();
    let frank = || Target::UserEmail("frank@partner.test".into());
    assert_eq!(source_at(addrs[1], frank()).await, Source::ProbeNeeded);

    // A route put and deleted through the first replica.
    let mut platform = admin_at(addrs[0], PLATFORM_KEY).await;
    platform
        .put_route(zoomgate::proto::PutRouteRequest {
            user_email: "frank@partner.test".into(),
            account: "acme-support".into(),
            force: true,
        })
        .await
        .unwrap();
    let put = seen_by_all(&addrs[1..], frank(), Source::Override).await;
    platform
        .delete_route(zoomgate::proto::DeleteRouteRequest {
            user_email: "frank@partner.test".into(),
        })
        .await
        .unwrap();
    let unrouted = seen_by_all(&addrs[1..], frank(), Source::ProbeNeeded).await;

    // A meeting every replica has read (so holds in its ledger cache), deleted through one.
    let mut admin = client_at(addrs[0], ADMIN_KEY).await;
    let meeting = admin
        .create_meeting(create_for("alice@sales.acme.test", "deleted elsewhere"))
        .await
        .unwrap()
        .into_inner();
    for addr in &addrs[1..] {
        let mut reader = client_at(*addr, ADMIN_KEY).await;
        reader.get_meeting(get(meeting.id)).await.unwrap();
        assert_eq!(
            source_at(*addr, Target::MeetingId(meeting.id)).await,
            Source::Ledger
        );
    }
    admin.delete_meeting(delete(meeting.id)).await.unwrap();
    let forgotten = seen_by_all(
        &addrs[1..],
        Target::MeetingId(meeting.id),
        Source::ProbeNeeded,
    )
    .await;
    let gone = client_at(addrs[2], ADMIN_KEY)
        .await
        .get_meeting(get(meeting.id))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");

    // A create's request id, used on one replica, is honoured on the two others.
    let create = || zoomgate::proto::CreateMeetingRequest {
        request_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        ..create_for("bob@sales.acme.test", "once across replicas")
    };
    let before = replicas.zoom.meetings(SALES_ZOOM_ID).len();
    let first = client_at(addrs[1], SALES_KEY)
        .await
        .create_meeting(create())
        .await
        .unwrap()
        .into_inner();
    for addr in [addrs[0], addrs[2]] {
        let again = client_at(addr, SALES_KEY)
            .await
            .create_meeting(create())
            .await
            .expect("another replica answers with the first create")
            .into_inner();
        assert_eq!(again.id, first.id);
    }
    assert_eq!(
        replicas.zoom.meetings(SALES_ZOOM_ID).len(),
        before + 1,
        "one meeting in Zoom"
    );
    let _ = writeln!(
        std::io::stderr(),
        "seen by every replica: route put after {put:?}, its deletion after {unrouted:?}, \
         a meeting's deletion after {forgotten:?}"
    );
    drop(replicas);
    schema.drop_it().await;
}

/// How one request of a load ended, and when it was sent from the start of the load.
struct Answer {
    sent: Duration,
    result: Result<(), Code>,
    /// The error's reason and message, when it failed.
    why: String,
}

/// Sends `call(client)` as `key` at `per_second` for `length`, round robin over `addrs`;
/// returns every answer once all came back.
async fn load<F, Fut>(
    addrs: &[SocketAddr],
    key: &str,
    per_second: f64,
    length: Duration,
    call: F,
) -> Vec<Answer>
where
    F: Fn(Client) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let mut clients = Vec::new();
    for addr in addrs {
        clients.push(client_at(*addr, key).await);
    }
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut calls = Vec::new();
    for turn in 0.. {
        ticks.tick().await;
        let sent = started.elapsed();
        if sent >= length {
            break;
        }
        let answer = call(clients[turn % clients.len()].clone());
        calls.push(tokio::spawn(async move {
            let result = answer.await;
            Answer {
                sent,
                why: result.as_ref().err().map_or_else(String::new, |status| {
                    format!("{} ({})", reason(status), status.message())
                }),
                result: result.map_err(|status| status.code()),
            }
        }));
    }
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    answers
}

/// One read of `meeting` in a load.
async fn read_meeting(mut client: Client, meeting: i64) -> Result<(), tonic::Status> {
    client
        .get_meeting(within(DEADLINE, get(meeting)))
        .await
        .map(drop)
}

/// Every request of the loads may take a second.
const DEADLINE: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_times_the_allowed_load_over_three_replicas_gives_no_429_and_near_full_goodput() {
    let _turn = measuring().await;
    let Some(schema) = Schema::create().await else {
        return;
    };
    let replicas = Replicas::start(&schema.store()).await;
    let addrs = replicas.addrs();
    let meeting = replicas.alice_meeting("under load").await;
    // Every replica has its token before the clock starts.
    for addr in &addrs {
        client_at(*addr, ADMIN_KEY)
            .await
            .get_meeting(get(meeting))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (admitted_before, refused_before) = replicas.sales_totals();

    // The admin floods every replica with three times the limit; the sales bot asks for a
    // sixth of it, through one replica only, and must not be starved by the flood.
    let length = Duration::from_secs(6);
    let read = move |client| read_meeting(client, meeting);
    let flood = load(&addrs, ADMIN_KEY, 3.0 * PRO_LIGHT, length, read);
    let modest = load(&addrs[2..], SALES_KEY, PRO_LIGHT / 6.0, length, read);
    let counted_at_the_end = async {
        tokio::time::sleep(length).await;
        replicas.sales_totals()
    };
    let (flooded, modest, (admitted, refused)) = tokio::join!(flood, modest, counted_at_the_end);

    assert_eq!(refused - refused_before, 0, "zoom answered 429");
    let goodput = (admitted - admitted_before) as f64 / length.as_secs_f64();
    assert!(
        goodput >= 0.9 * PRO_LIGHT,
        "zoom admitted {goodput:.1}/s of {PRO_LIGHT}/s"
    );
    for answer in flooded.iter().chain(&modest) {
        if let Err(code) = answer.result {
            assert_eq!(
                code,
                Code::ResourceExhausted,
                "only the budget refuses: {} at {:?}",
                answer.why,
                answer.sent
            );
        }
    }
    let served = |answers: &[Answer]| answers.iter().filter(|a| a.result.is_ok()).count();
    assert!(
        served(&modest) as f64 >= 0.95 * modest.len() as f64,
        "the sales bot got {} of {} through",
        served(&modest),
        modest.len()
    );
    let _ = writeln!(
        std::io::stderr(),
        "three replicas at 3x: zoom admitted {goodput:.1}/s, no 429; flood {} of {} served, \
         sales bot {} of {}",
        served(&flooded),
        flooded.len(),
        served(&modest),
        modest.len()
    );
    drop(replicas);
    schema.drop_it().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_load_loses_no_acknowledged_create_and_its_budget_goes_to_the_others()
{
    let _turn = measuring().await;
    let Some(schema) = Schema::create().await else {
        return;
    };
    let mut replicas = Replicas::start(&schema.store()).await;
    let addrs = replicas.addrs();
    // Six writers per replica create meetings back to back, more than the budget lets through.
    let acknowledged = Arc::new(Mutex::new(Vec::<(usize, i64, Duration)>::new()));
    let started = Instant::now();
    let length = Duration::from_secs(5);
    let mut writers = Vec::new();
    for (replica, addr) in addrs.iter().enumerate() {
        for writer in 0..6 {
            let (acknowledged, addr) = (acknowledged.clone(), *addr);
            writers.push(tokio::spawn(async move {
                let mut client = client_at(addr, ADMIN_KEY).await;
                let user = ["alice@sales.acme.test", "bob@sales.acme.test"][writer % 2];
                while started.elapsed() < length {
                    match client
                        .create_meeting(within(DEADLINE, create_for(user, "kill")))
                        .await
                    {
                        Ok(meeting) => acknowledged.lock().unwrap().push((
                            replica,
                            meeting.into_inner().id,
                            started.elapsed(),
                        )),
                        Err(status) if status.code() == Code::ResourceExhausted => {}
                        // The killed replica's connections break; its writer stops.
                        Err(_) => break,
                    }
                }
            }));
        }
    }
    let killed_at = Duration::from_millis(1500);
    tokio::time::sleep(killed_at).await;
    replicas.gateways[0].kill();
    // The pace of the two left, once the killed one's place is long gone.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (admitted_then, _) = replicas.sales_totals();
    let measured_from = Instant::now();
    for writer in writers {
        writer.await.unwrap();
    }
    let (admitted, refused) = replicas.sales_totals();
    let after_kill = (admitted - admitted_then) as f64 / measured_from.elapsed().as_secs_f64();

    let store = zoomgate::store::open(&schema.store(), None).await.unwrap();
    let audit = create_records(store.as_ref()).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_recorded(
        store.as_ref(),
        &audit,
        acknowledged.iter().map(|(_, id, _)| *id),
    )
    .await;
    let by_killed = acknowledged.iter().filter(|(r, _, _)| *r == 0).count();
    let later = acknowledged
        .iter()
        .filter(|(r, _, at)| *r != 0 && *at > killed_at + Duration::from_secs(1))
        .count();
    assert!(by_killed > 5, "only {by_killed} creates before the kill");
    assert!(
        later > 20,
        "the others made only {later} creates after the kill"
    );
    assert_eq!(refused, 0, "zoom answered 429");
    assert!(
        after_kill >= 0.9 * PRO_LIGHT,
        "after the kill zoom admitted {after_kill:.1}/s of {PRO_LIGHT}/s: the budget was not reclaimed"
    );
    let _ = writeln!(
        std::io::stderr(),
        "kill mid-load: {} acknowledged ({by_killed} by the killed replica), all in ledger and \
         audit; {after_kill:.1}/s admitted by zoom after the kill",
        acknowledged.len()
    );
    store.close().await;
    drop(replicas);
    schema.drop_it().await;
}

/// A PostgreSQL server of the test's own, on a free port, so that restarting it disturbs no
/// other test. Run as the `postgres` user when the test runs as root, as initdb requires.
struct OwnPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnPostgres {
    fn start() -> Option<OwnPostgres> {
        let Some(bin) = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| versions.filter_map(Result::ok).map(|v| v.path()).max())
            .map(|version| version.join("bin"))
            .filter(|bin| bin.join("initdb").exists())
        else {
            return skipped("a server of its own", "no PostgreSQL binaries");
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = OwnPostgres {
            bin,
            data: dir.path().join("data"),
            port,
            dir,
        };
        if is_root() {
            let owned = Command::new("chown")
                .args(["postgres"])
                .arg(server.dir.path())
                .status();
            assert!(owned.is_ok_and(|s| s.success()), "chown postgres");
        }
        let initdb = server.run(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-D"],
            &server.data,
        );
        assert!(initdb, "initdb");
        assert!(server.pg_ctl("start"), "pg_ctl start");
        Some(server)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl <action>` (start or stop, fast), waiting for it to finish.
    fn pg_ctl(&self, action: &str) -> bool {
        let dir = self.dir.path().display();
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {dir}", self.port);
        let log = format!("{dir}/server.log");
        let args = ["-w", "-m", "fast", "-l", &log, "-o", &options, action, "-D"];
        self.run("pg_ctl", &args, &self.data)
    }

    /// Runs `bin/<tool> <args> <data dir>` as the server's owner.
    fn run(&self, tool: &str, args: &[&str], data: &Path) -> bool {
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join(tool));
            command
        } else {
            Command::new(self.bin.join(tool))
        };
        command
            .args(args)
            .arg(data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-w", "-m", "immediate", "stop", "-D"],
            &self.data,
        );
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|me| me.uid() == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_load_gives_unavailable_then_recovers_without_a_gateway_restart() {
    let _turn = measuring().await;
    let Some(server) = OwnPostgres::start() else {
        return;
    };
    let replicas = Replicas::start(&server.url()).await;
    let addrs = replicas.addrs();
    let meeting = replicas.alice_meeting("through a restart").await;

    // Reads and creates at two thirds of the budget, over every replica, through a restart that
    // keeps the server away for 1.5 s.
    let length = Duration::from_secs(6);
    let read = move |client| read_meeting(client, meeting);
    let create = |mut client: Client| async move {
        client
            .create_meeting(within(
                DEADLINE,
                create_for("bob@sales.acme.test", "restart"),
            ))
            .await
            .map(drop)
    };
    let reads = load(&addrs, ADMIN_KEY, 15.0, length, read);
    let creates = load(&addrs, ADMIN_KEY, 5.0, length, create);
    let restart = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let down_at = Instant::now();
        assert!(server.pg_ctl("stop"), "pg_ctl stop");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(server.pg_ctl("start"), "pg_ctl start");
        down_at
    };
    let started = Instant::now();
    let (reads, creates, down_at) = tokio::join!(reads, creates, restart);
    let down_from = down_at - started;

    let mut codes = BTreeMap::<String, usize>::new();
    for answer in reads.iter().chain(&creates) {
        let code = answer.result.err().unwrap_or(Code::Ok);
        *codes.entry(format!("{code:?}")).or_default() += 1;
        assert!(
            [Code::Ok, Code::Unavailable].contains(&code),
            "{code:?} {} at {:?}: a restart answers UNAVAILABLE",
            answer.why,
            answer.sent
        );
    }
    assert!(
        codes.get("Unavailable").copied().unwrap_or_default() > 0,
        "no request noticed the restart: {codes:?}"
    );
    // The last two seconds, well after the server came back: every request served.
    let recovered_from = down_from + Duration::from_secs(3) + Duration::from_millis(500);
    for answer in reads.iter().chain(&creates) {
        if answer.sent >= recovered_from {
            assert_eq!(
                answer.result,
                Ok(()),
                "at {:?}, {:?} after the restart began",
                answer.sent,
                answer.sent - down_from
            );
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "postgres restart mid-load (down {down_from:?} + 1.5 s): {codes:?}"
    );
    drop(replicas);
}

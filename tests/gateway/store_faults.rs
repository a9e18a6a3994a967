//! The store failing under a running gateway: a full filesystem, a read-only file, and a volume
//! that goes away. They need root (tmpfs mounts, `chattr`); elsewhere they say that they were
//! skipped, and `ZOOMGATE_REQUIRE_FS_FAULTS=1` (set by CI) makes them fail instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;
use zoomgate::emulator::Faults;
use zoomgate::store::{AuditFilter, Outcome};

use crate::support::*;

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    /// Where the test's files live: the tmpfs itself, or a bind mount of it.
    mount: PathBuf,
    /// Mount points to unmount, innermost last.
    mounted: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"2m"`), or says why it cannot.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mount = dir.path().join("volume");
        std::fs::create_dir(&mount).unwrap();
        let mounted = run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &mount,
        );
        if !mounted {
            skip("cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Tmpfs {
            mounted: vec![mount.clone()],
            mount,
            _dir: dir,
        })
    }

    /// Mounts a tmpfs and binds it at a second place, so that the bind can go away and come
    /// back with the same files, like a network volume.
    fn mount_bound(size: &str) -> Option<Tmpfs> {
        let mut fs = Tmpfs::mount(size)?;
        let bound = fs._dir.path().join("bound");
        std::fs::create_dir(&bound).unwrap();
        assert!(run(
            "mount",
            &["--bind", fs.mount.to_str().unwrap()],
            &bound
        ));
        fs.mounted.push(bound.clone());
        fs.mount = bound;
        Some(fs)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.mount.join(name)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for mount in self.mounted.iter().rev() {
            run("umount", &["-l"], mount);
        }
    }
}

/// Runs `command args.. target`; returns whether it succeeded.
fn run(command: &str, args: &[&str], target: &Path) -> bool {
    Command::new(command)
        .args(args)
        .arg(target)
        .output()
        .is_ok_and(|out| out.status.success())
}

fn skip(why: &str) {
    assert!(
        std::env::var_os("ZOOMGATE_REQUIRE_FS_FAULTS").is_none(),
        "store fault tests are required here, but {why}"
    );
    eprintln!("store fault test skipped: {why}");
}

/// Fills the filesystem of `dir` until it has no space left.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    while file
        .write_all(&block)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
    path
}

/// What one create during the fault answered.
enum Answer {
    Acknowledged(i64),
    /// Refused before Zoom: the intent could not be written.
    Refused,
    /// Applied in Zoom, its record kept for later.
    NotRecorded(i64),
}

/// Whether meeting `id` is in the ledger and has an allowed audit record in the file at `db`,
/// read through a connection of its own, as a restart would find it.
async fn on_disk(db: &Path, id: i64) -> bool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true);
    let Ok(pool) = sqlx::SqlitePool::connect_with(options).await else {
        return false;
    };
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap_or(0)
        }
    };
    let ledger = count("SELECT COUNT(*) FROM meetings WHERE meeting_id = ?").await;
    let audit =
        count("SELECT COUNT(*) FROM audit WHERE meeting_id = ? AND outcome = 'allowed'").await;
    pool.close().await;
    ledger == 1 && audit >= 1
}

/// Sends creates one at a time while the store is broken, checking each against the emulator
/// and every OK against the file.
async fn creates_during_fault(gateway: &TestGateway, db: &Path, count: usize) -> Vec<Answer> {
    let mut client = gateway.client(ADMIN_KEY).await;
    let mut answers = Vec::new();
    for i in 0..count {
        let before = gateway.zoom.meetings(SALES_ZOOM_ID).len();
        let result = client
            .create_meeting(create_for("alice@sales.acme.test", &format!("fault {i}")))
            .await;
        let made = gateway.zoom.meetings(SALES_ZOOM_ID).len() - before;
        let answer = match result {
            Ok(meeting) => Answer::Acknowledged(meeting.into_inner().id),
            Err(status) if status.code() == Code::Unavailable => {
                assert_eq!(reason(&status), "STORE_UNAVAILABLE", "{status:?}");
                assert!(status.get_details_retry_info().is_some());
                Answer::Refused
            }
            Err(status) if reason(&status) == "CHANGE_NOT_RECORDED" => {
                assert_eq!(status.code(), Code::Internal);
                let id = status.get_details_error_info().unwrap().metadata["meeting_id"]
                    .parse()
                    .expect("the answer names the meeting");
                Answer::NotRecorded(id)
            }
            Err(status) => panic!("unexpected answer while the store fails: {status:?}"),
        };
        match answer {
            Answer::Refused => assert_eq!(made, 0, "a create whose intent failed reached Zoom"),
            Answer::Acknowledged(id) => {
                assert_eq!(made, 1);
                assert!(
                    on_disk(db, id).await,
                    "meeting {id} acknowledged, not on disk"
                );
            }
            Answer::NotRecorded(_) => assert_eq!(made, 1),
        }
        answers.push(answer);
    }
    answers
}

/// Every meeting the gateway made for alice has its ledger entry and an
/// `allowed` audit record naming it, and no intent is left unknown.
async fn everything_is_recorded(gateway: &TestGateway) {
    let store = gateway.store.clone();
    let audit = create_records(store.as_ref()).await;
    let made: Vec<i64> = gateway
        .zoom
        .meetings(SALES_ZOOM_ID)
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert!(!made.is_empty());
    for id in made {
        assert!(
            store.meeting(id).await.unwrap().is_some(),
            "meeting {id} is in Zoom but not in the ledger"
        );
        assert!(
            audit
                .iter()
                .any(|r| r.meeting_id == Some(id) && r.outcome == Outcome::Allowed),
            "meeting {id} has no allowed audit record"
        );
    }
    assert!(
        audit.iter().all(|r| r.outcome != Outcome::Unknown),
        "an intent was left without its outcome: {audit:?}"
    );
}

/// Whether an intent of outcome unknown is in the store.
async fn intent_written(gateway: &TestGateway) -> bool {
    let filter = AuditFilter {
        outcome: Some(Outcome::Unknown),
        limit: Some(1),
        ..Default::default()
    };
    !gateway.store.audit(&filter).await.unwrap().is_empty()
}

/// Breaks the store (first while a create waits for Zoom), checks every answer and readiness,
/// repairs it, and checks recovery.
async fn survives(
    gateway: &TestGateway,
    db: &Path,
    break_store: impl FnOnce(),
    repair: impl FnOnce(),
) {
    let mut client = gateway.client(ADMIN_KEY).await;
    for i in 0..3 {
        client
            .create_meeting(create_for("alice@sales.acme.test", &format!("before {i}")))
            .await
            .expect("the store works before the fault");
    }
    assert_eq!(gateway.health().await, ServingStatus::Serving);

    // Zoom applies this create after the store broke: the answer says so and names it.
    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            latency_ms: 2_000,
            ..Faults::default()
        },
    );
    let creates = |gateway: &TestGateway| {
        let requests = gateway.zoom.requests(SALES_ZOOM_ID);
        requests
            .get("POST /users/{userId}/meetings")
            .copied()
            .unwrap_or(0)
    };
    let creates_before = creates(gateway);
    let in_flight = tokio::spawn({
        let mut client = client.clone();
        async move {
            client
                .create_meeting(create_for("alice@sales.acme.test", "in flight"))
                .await
        }
    });
    // Broken once the intent is written and Zoom holds the create (the writes before it, the
    // intent and the host's daily count, are done then).
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1_500);
    while !(intent_written(gateway).await && creates(gateway) > creates_before) {
        assert!(tokio::time::Instant::now() < deadline, "no intent written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    break_store();
    let status = in_flight
        .await
        .unwrap()
        .expect_err("its record cannot be written");
    assert_eq!(reason(&status), "CHANGE_NOT_RECORDED", "{status:?}");
    assert_eq!(status.code(), Code::Internal);
    let unrecorded: i64 = status.get_details_error_info().unwrap().metadata["meeting_id"]
        .parse()
        .unwrap();
    gateway.zoom.set_faults(SALES_ZOOM_ID, Faults::default());

    let answers = creates_during_fault(gateway, db, 12).await;
    assert!(
        answers.iter().any(|a| matches!(a, Answer::Refused)),
        "the fault never reached the gateway"
    );
    assert!(
        gateway
            .health_becomes(ServingStatus::NotServing, Duration::from_secs(3))
            .await,
        "readiness must follow the store"
    );
    assert_eq!(gateway.readyz().await, 503, "/readyz follows the store too");

    repair();
    assert!(
        gateway
            .health_becomes(ServingStatus::Serving, Duration::from_secs(10))
            .await,
        "the gateway must recover without a restart"
    );
    assert_eq!(gateway.readyz().await, 200);
    let after = client
        .create_meeting(create_for("alice@sales.acme.test", "after"))
        .await
        .expect("creates work again")
        .into_inner();
    let acknowledged: Vec<i64> = answers
        .iter()
        .filter_map(|a| match a {
            Answer::Acknowledged(id) | Answer::NotRecorded(id) => Some(*id),
            Answer::Refused => None,
        })
        .chain([after.id, unrecorded])
        .collect();
    for id in acknowledged {
        assert!(
            gateway.store.meeting(id).await.unwrap().is_some(),
            "meeting {id} not in the ledger after recovery (unrecorded: {unrecorded}) {:?}",
            gateway
                .store
                .audit(&AuditFilter::default())
                .await
                .unwrap()
                .iter()
                .filter(|r| r.meeting_id.is_none() || r.outcome == Outcome::Unknown)
                .map(|r| (r.id, r.outcome, r.detail.clone()))
                .collect::<Vec<_>>()
        );
        assert!(
            on_disk(db, id).await,
            "meeting {id} not on disk after recovery"
        );
    }
    everything_is_recorded(gateway).await;
}

#[tokio::test]
async fn a_full_filesystem_acknowledges_nothing_it_cannot_record() {
    let Some(fs) = Tmpfs::mount("2m") else { return };
    let db = fs.file("zoomgate.db");
    let gateway = TestGateway::spawn_on(Some(db.clone()), |_| {}).await;
    let filler = std::cell::RefCell::new(None);
    survives(
        &gateway,
        &db,
        || *filler.borrow_mut() = Some(fill(&fs.mount)),
        || std::fs::remove_file(filler.borrow().as_ref().unwrap()).unwrap(),
    )
    .await;
    gateway.stop().await;
}

/// Makes files read-only even for root (`chattr +i`, on filesystems that have it, such as
/// ext4), with files already open: the closest to a volume remounted read-only under a writer.
/// The attribute is cleared when dropped.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(files: &[PathBuf]) -> Immutable {
        for file in files {
            assert!(run("chattr", &["+i"], file), "chattr +i {}", file.display());
        }
        Immutable(files.to_vec())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for file in &self.0 {
            run("chattr", &["-i"], file);
        }
    }
}

/// A gateway on an SQLite file in a directory of its own, with the files `chattr` can make
/// immutable; `None` (the test is skipped) where it cannot.
async fn on_a_store_that_can_be_made_read_only()
-> Option<(TestGateway, [PathBuf; 2], tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("zoomgate.db");
    let gateway = TestGateway::spawn_on(Some(db.clone()), |_| {}).await;
    // The write-ahead log takes the writes; the shared-memory index is left alone.
    let files = [db, dir.path().join("zoomgate.db-wal")];
    if !files
        .iter()
        .all(|file| run("chattr", &["+i"], file) && run("chattr", &["-i"], file))
    {
        skip("cannot make files immutable (needs root and a filesystem with chattr)");
        gateway.stop().await;
        return None;
    }
    Some((gateway, files, dir))
}

#[tokio::test]
async fn a_read_only_store_refuses_changes_and_a_restart_on_it_fails() {
    let Some((gateway, files, _dir)) = on_a_store_that_can_be_made_read_only().await else {
        return;
    };
    let db = files[0].clone();
    let read_only = std::cell::RefCell::new(None);
    survives(
        &gateway,
        &db,
        || *read_only.borrow_mut() = Some(Immutable::set(&files)),
        || drop(read_only.borrow_mut().take()),
    )
    .await;

    // A gateway does not start on a store it cannot write.
    let read_only = Immutable::set(&files);
    let error = gateway
        .build()
        .await
        .err()
        .expect("no start on a read-only store");
    assert!(
        matches!(error, zoomgate::app::AppError::StoreReadOnly(_)),
        "{error}"
    );
    drop(read_only);
    gateway.stop().await;
}

#[tokio::test]
async fn a_volume_that_goes_away_and_comes_back() {
    let Some(fs) = Tmpfs::mount_bound("8m") else {
        return;
    };
    let db = fs.file("zoomgate.db");
    let gateway = TestGateway::spawn_on(Some(db.clone()), |_| {}).await;
    let backing = fs.mounted[0].clone();
    survives(
        &gateway,
        &db,
        || assert!(run("umount", &["-l"], &fs.mount)),
        || {
            assert!(run(
                "mount",
                &["--bind", backing.to_str().unwrap()],
                &fs.mount
            ))
        },
    )
    .await;
    gateway.stop().await;
}

/// Every gRPC health service and `/readyz` say the same; liveness stays up throughout.
async fn readiness(gateway: &TestGateway) -> (Vec<ServingStatus>, u16, ServingStatus) {
    let mut services = Vec::new();
    for service in ["", "zoomgate.v1.Meetings", "zoomgate.v1.Admin"] {
        services.push(gateway.health_of(service).await);
    }
    let liveness = gateway.health_of("liveness").await;
    (services, gateway.readyz().await, liveness)
}

#[tokio::test]
async fn health_walks_start_up_a_store_outage_recovery_and_shutdown() {
    use ServingStatus::{NotServing, Serving};
    let Some((gateway, files, _dir)) = on_a_store_that_can_be_made_read_only().await else {
        return;
    };
    // Started: ready everywhere.
    assert!(
        gateway
            .health_becomes(Serving, Duration::from_secs(3))
            .await
    );
    assert_eq!(readiness(&gateway).await, (vec![Serving; 3], 200, Serving));

    // The store stops taking writes: not ready, but alive.
    let read_only = Immutable::set(&files);
    let mut client = gateway.client(ADMIN_KEY).await;
    let refused = client
        .create_meeting(create_for("alice@sales.acme.test", "store down"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        gateway
            .health_becomes(NotServing, Duration::from_secs(5))
            .await
    );
    assert_eq!(
        readiness(&gateway).await,
        (vec![NotServing; 3], 503, Serving)
    );
    let livez = reqwest::get(format!("http://{}/livez", gateway.ops_addr))
        .await
        .unwrap();
    assert_eq!(livez.status(), 200);

    // It takes writes again: ready without a restart.
    drop(read_only);
    assert!(
        gateway
            .health_becomes(Serving, Duration::from_secs(10))
            .await
    );
    assert_eq!(readiness(&gateway).await, (vec![Serving; 3], 200, Serving));

    // Shutdown with a request in flight: NOT_SERVING (seen by a watcher that was there
    // before) and 503 while it drains; the request still finishes.
    let meeting = client
        .create_meeting(create_for("alice@sales.acme.test", "in flight at shutdown"))
        .await
        .unwrap()
        .into_inner();
    gateway.zoom.set_faults(
        SALES_ZOOM_ID,
        Faults {
            latency_ms: 1_500,
            ..Default::default()
        },
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", gateway.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut watch = tonic_health::pb::health_client::HealthClient::new(channel)
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status(), Serving);
    let in_flight = tokio::spawn({
        let mut client = client.clone();
        async move { client.get_meeting(get(meeting.id)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ops = gateway.ops_addr;
    let stopped = tokio::spawn(gateway.stop());
    assert_eq!(watch.message().await.unwrap().unwrap().status(), NotServing);
    drop(watch);
    let readyz = reqwest::get(format!("http://{ops}/readyz")).await.unwrap();
    assert_eq!(readyz.status(), 503, "draining");
    in_flight
        .await
        .unwrap()
        .expect("the request in flight finishes");
    stopped.await.unwrap();
}

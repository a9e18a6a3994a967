//! SQLite implementation of [`Store`]: one WAL-mode file, or a private in-memory database for tests.
//!
//! A file store commits with `synchronous=FULL`, so what it acknowledged survives a power loss,
//! and checks after every write that its file is still the one at the path.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{
    AuditFilter, AuditRecord, Completion, LedgerChange, MeetingRecord, Outcome, Store, StoreError,
};

/// Schema migrations, embedded in the binary and applied at every open (already applied ones are skipped).
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a free pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite has one writer at a time; a few connections are enough for concurrent readers under WAL.
const MAX_FILE_CONNECTIONS: u32 = 4;

const AUDIT_COLUMNS: &str =
    "id, at, caller, operation, account, zoom_user, meeting_id, outcome, detail";

/// How much of what was committed survives a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is on disk before it returns (`synchronous=FULL`): survives a power loss.
    /// What the gateway uses.
    PowerSafe,
    /// Commits survive a crash of the process but the last ones may be lost with the machine
    /// (`synchronous=NORMAL`). Only to measure what durability costs.
    ProcessSafe,
}

/// The SQLite store: a small connection pool over one database.
#[derive(Debug)]
pub struct SqliteStore {
    /// Swapped when the file was removed or replaced and is opened again.
    pool: RwLock<SqlitePool>,
    /// The file and the identity it had when opened; `None` in memory.
    file: Option<OpenFile>,
    /// A write failed since the pool was opened. A connection that met an I/O error may stay
    /// unable to write after the cause is gone, so the next write check starts a fresh pool.
    failed_write: AtomicBool,
}

/// A database file and the identity (device, inode) of the file the pool has open.
#[derive(Debug)]
struct OpenFile {
    path: PathBuf,
    durability: Durability,
    identity: Mutex<FileIdentity>,
    /// Serializes reconnecting, so that concurrent checks open the file once.
    reconnecting: tokio::sync::Mutex<()>,
}

type FileIdentity = (u64, u64);

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and migrates it.
    ///
    /// The parent directory must exist: a typo in a volume path should fail loudly, not create a
    /// database nobody backs up.
    pub async fn open_file(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        let pool = connect_file(path, durability, true).await?;
        let identity = file_identity(path)?;
        tracing::info!(path = %path.display(), "store opened");
        Ok(Self {
            pool: RwLock::new(pool),
            file: Some(OpenFile {
                path: path.to_path_buf(),
                durability,
                identity: Mutex::new(identity),
                reconnecting: tokio::sync::Mutex::new(()),
            }),
            failed_write: AtomicBool::new(false),
        })
    }

    /// Opens an empty private in-memory database, for tests and the demo.
    ///
    /// It lives in a single connection that the pool never retires: a second connection, or a
    /// replaced one, would see a different, empty database.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let path = Path::new(":memory:");
        let options = SqliteConnectOptions::new()
            .filename(path)
            .in_memory(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        migrate(&pool, path).await?;
        Ok(Self {
            pool: RwLock::new(pool),
            file: None,
            failed_write: AtomicBool::new(false),
        })
    }

    fn pool(&self) -> SqlitePool {
        self.pool.read().expect("store pool lock").clone()
    }

    /// Fails when the file the pool writes to is no longer the one at the path: a write that
    /// lands in a removed file is lost at the next start. Called before and after every write.
    fn check_identity(&self) -> Result<(), StoreError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let opened = *file.identity.lock().expect("store identity lock");
        match file_identity(&file.path) {
            Ok(current) if current == opened => Ok(()),
            _ => Err(StoreError::Vanished(file.path.clone())),
        }
    }

    /// Runs one write on the pool, checking before and after it that the file is still the one
    /// at the path. After a failed write the pool is replaced first: a connection that met an
    /// I/O error (a full disk) can report later commits as done that a fresh connection never
    /// sees.
    async fn write<T, Fut>(&self, write: impl FnOnce(SqlitePool) -> Fut) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        if let Some(file) = &self.file
            && (self.failed_write.load(Ordering::Acquire) || self.check_identity().is_err())
        {
            self.reconnect(file).await?;
        }
        let value = write(self.pool())
            .await
            .inspect_err(|_| self.failed_write.store(true, Ordering::Release))?;
        self.check_identity()?;
        Ok(value)
    }

    /// Opens a fresh pool on the file now at the path: after a failed write, or once a
    /// database file is back at the path (a volume remounted), so the store recovers without a
    /// restart. A missing file is not created, and a file that is not a migrated gateway
    /// database is not taken: an empty audit log in place of a lost volume must be an
    /// operator's decision (a restart), not a side effect.
    async fn reconnect(&self, file: &OpenFile) -> Result<(), StoreError> {
        let _reconnecting = file.reconnecting.lock().await;
        let moved = self.check_identity().is_err();
        if !moved && !self.failed_write.load(Ordering::Acquire) {
            return Ok(());
        }
        let pool = connect_file(&file.path, file.durability, false)
            .await
            .map_err(|error| match moved {
                true => StoreError::Vanished(file.path.clone()),
                false => error,
            })?;
        let identity = file_identity(&file.path)?;
        self.failed_write.store(false, Ordering::Release);
        let old = std::mem::replace(&mut *self.pool.write().expect("store pool lock"), pool);
        *file.identity.lock().expect("store identity lock") = identity;
        if moved {
            tracing::error!(
                path = %file.path.display(),
                "store file was removed or replaced; opened the file now at that path"
            );
        }
        tokio::spawn(async move { old.close().await });
        Ok(())
    }
}

async fn connect_file(
    path: &Path,
    durability: Durability,
    create: bool,
) -> Result<SqlitePool, StoreError> {
    check_directory(path).await?;
    let synchronous = match durability {
        Durability::PowerSafe => SqliteSynchronous::Full,
        Durability::ProcessSafe => SqliteSynchronous::Normal,
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_FILE_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    if create {
        migrate(&pool, path).await?;
    } else {
        check_migrated(&pool, path).await?;
    }
    Ok(pool)
}

/// Fails unless every migration has been applied to the database: it is the gateway's own.
async fn check_migrated(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let applied: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1")
            .fetch_one(pool)
            .await
            .unwrap_or(0);
    let expected = MIGRATOR.iter().count();
    if usize::try_from(applied).is_ok_and(|applied| applied >= expected) {
        Ok(())
    } else {
        pool.close().await;
        Err(StoreError::Vanished(path.to_path_buf()))
    }
}

async fn migrate(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|source| StoreError::Migrate {
            path: path.to_path_buf(),
            source,
        })
}

/// The (device, inode) of the file at `path`.
fn file_identity(path: &Path) -> Result<FileIdentity, StoreError> {
    let meta = std::fs::metadata(path).map_err(|_| StoreError::Vanished(path.to_path_buf()))?;
    Ok((meta.dev(), meta.ino()))
}

/// Refuses a store path whose directory is missing or is not a directory. Other I/O errors (such
/// as permissions) are left for SQLite to report when it opens the file.
async fn check_directory(path: &Path) -> Result<(), StoreError> {
    let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    match tokio::fs::metadata(dir).await {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::InvalidLocation(format!(
            "`{}` is not a directory",
            dir.display()
        ))),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            Err(StoreError::MissingDirectory(PathBuf::from(dir)))
        }
        Err(_) => Ok(()),
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn record_meeting(&self, meeting: &MeetingRecord) -> Result<(), StoreError> {
        self.write(async |pool| upsert_meeting(&pool, meeting).await)
            .await
    }

    async fn meeting(&self, meeting_id: i64) -> Result<Option<MeetingRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT meeting_id, account, host_id, host_email, created_by, created_at \
             FROM meetings WHERE meeting_id = ?",
        )
        .bind(meeting_id)
        .fetch_optional(&self.pool())
        .await
        .map_err(query_error("meeting"))?;
        row.map(|row| meeting_from_row(&row)).transpose()
    }

    async fn forget_meeting(&self, meeting_id: i64) -> Result<(), StoreError> {
        self.write(async |pool| delete_meeting(&pool, meeting_id).await)
            .await
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.write(async |pool| insert_audit(&pool, record, record.outcome).await)
            .await
            .map(drop)
    }

    async fn begin_change(&self, intent: &AuditRecord) -> Result<i64, StoreError> {
        self.write(async |pool| insert_audit(&pool, intent, Outcome::Unknown).await)
            .await
    }

    async fn complete_change(&self, completion: &Completion) -> Result<(), StoreError> {
        self.write(async |pool| complete(&pool, completion).await)
            .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.write(async |pool| {
            sqlx::query(
                "INSERT INTO write_check (id, at) VALUES (1, ?) \
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            )
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&pool)
            .await
            .map_err(query_error("check_writable"))
        })
        .await
        .map(drop)
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = filter.effective_limit();
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Sqlite>::new(format!("SELECT {AUDIT_COLUMNS} FROM audit"));
        let mut conditions = Conditions::default();
        if let Some(caller) = &filter.caller {
            conditions.next(&mut query, "caller = ").push_bind(caller);
        }
        if let Some(operation) = &filter.operation {
            conditions
                .next(&mut query, "operation = ")
                .push_bind(operation);
        }
        if let Some(account) = &filter.account {
            conditions.next(&mut query, "account = ").push_bind(account);
        }
        if let Some(user) = &filter.user {
            conditions.next(&mut query, "zoom_user = ").push_bind(user);
        }
        if let Some(meeting_id) = filter.meeting_id {
            conditions
                .next(&mut query, "meeting_id = ")
                .push_bind(meeting_id);
        }
        if let Some(outcome) = filter.outcome {
            conditions
                .next(&mut query, "outcome = ")
                .push_bind(outcome.as_str());
        }
        if let Some(since) = filter.since {
            conditions
                .next(&mut query, "at >= ")
                .push_bind(since.timestamp_millis());
        }
        if let Some(until) = filter.until {
            conditions
                .next(&mut query, "at < ")
                .push_bind(until.timestamp_millis());
        }
        query
            .push(" ORDER BY at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));

        let rows = query
            .build()
            .fetch_all(&self.pool())
            .await
            .map_err(query_error("audit"))?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn close(&self) {
        self.pool().close().await;
    }
}

/// Completes a change in one transaction: the audit record and the ledger.
async fn complete(pool: &SqlitePool, completion: &Completion) -> Result<(), StoreError> {
    let record = &completion.record;
    let mut tx = pool.begin().await.map_err(query_error("complete_change"))?;
    // The intent is matched on what it said, not on its id alone: a store recreated after
    // its file was lost numbers its records anew. Writing the same completion twice (a
    // retry after an error that had committed) updates the same row again.
    let updated = sqlx::query(
        "UPDATE audit SET account = ?, zoom_user = ?, meeting_id = ?, outcome = ?, detail = ? \
             WHERE id = ? AND caller = ? AND operation = ? AND at = ?",
    )
    .bind(&record.account)
    .bind(&record.user)
    .bind(record.meeting_id)
    .bind(record.outcome.as_str())
    .bind(&record.detail)
    .bind(completion.intent_id)
    .bind(&record.caller)
    .bind(&record.operation)
    .bind(record.at.timestamp_millis())
    .execute(&mut *tx)
    .await
    .map_err(query_error("complete_change"))?;
    if updated.rows_affected() == 0 {
        insert_audit(&mut *tx, record, record.outcome).await?;
    }
    match &completion.ledger {
        LedgerChange::None => {}
        LedgerChange::Record(meeting) => upsert_meeting(&mut *tx, meeting).await?,
        LedgerChange::Forget(meeting_id) => delete_meeting(&mut *tx, *meeting_id).await?,
    }
    tx.commit().await.map_err(query_error("complete_change"))
}

async fn upsert_meeting<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    meeting: &MeetingRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO meetings (meeting_id, account, host_id, host_email, created_by, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (meeting_id) DO UPDATE SET \
         account = excluded.account, host_id = excluded.host_id, host_email = excluded.host_email, \
         created_by = excluded.created_by, created_at = excluded.created_at",
    )
    .bind(meeting.meeting_id)
    .bind(&meeting.account)
    .bind(&meeting.host_id)
    .bind(&meeting.host_email)
    .bind(&meeting.created_by)
    .bind(meeting.created_at.timestamp_millis())
    .execute(executor)
    .await
    .map_err(query_error("record_meeting"))?;
    Ok(())
}

async fn delete_meeting<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    meeting_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM meetings WHERE meeting_id = ?")
        .bind(meeting_id)
        .execute(executor)
        .await
        .map_err(query_error("forget_meeting"))?;
    Ok(())
}

/// Appends `record` with `outcome`, returning the id the store gave it.
async fn insert_audit<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    record: &AuditRecord,
    outcome: Outcome,
) -> Result<i64, StoreError> {
    let done = sqlx::query(
        "INSERT INTO audit (at, caller, operation, account, zoom_user, meeting_id, outcome, detail) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(record.at.timestamp_millis())
    .bind(&record.caller)
    .bind(&record.operation)
    .bind(&record.account)
    .bind(&record.user)
    .bind(record.meeting_id)
    .bind(outcome.as_str())
    .bind(&record.detail)
    .execute(executor)
    .await
    .map_err(query_error("append_audit"))?;
    Ok(done.last_insert_rowid())
}

/// Joins WHERE conditions: ` WHERE ` before the first, ` AND ` before the others.
#[derive(Default)]
struct Conditions {
    any: bool,
}

impl Conditions {
    fn next<'q, 'args>(
        &mut self,
        query: &'q mut QueryBuilder<'args, Sqlite>,
        condition: &str,
    ) -> &'q mut QueryBuilder<'args, Sqlite> {
        query.push(if self.any { " AND " } else { " WHERE " });
        self.any = true;
        query.push(condition)
    }
}

/// Wraps a driver error with the operation's name; the error never carries bound values.
fn query_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { operation, source }
}

fn meeting_from_row(row: &SqliteRow) -> Result<MeetingRecord, StoreError> {
    let read = || -> Result<_, sqlx::Error> {
        Ok((
            row.try_get::<i64, _>("meeting_id")?,
            row.try_get::<String, _>("account")?,
            row.try_get::<String, _>("host_id")?,
            row.try_get::<String, _>("host_email")?,
            row.try_get::<String, _>("created_by")?,
            row.try_get::<i64, _>("created_at")?,
        ))
    };
    let (meeting_id, account, host_id, host_email, created_by, created_at) =
        read().map_err(query_error("meeting"))?;
    Ok(MeetingRecord {
        meeting_id,
        account,
        host_id,
        host_email,
        created_by,
        created_at: from_millis(created_at, || {
            format!("meetings.created_at of meeting {meeting_id}")
        })?,
    })
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    let read = || -> Result<_, sqlx::Error> {
        Ok((
            row.try_get::<i64, _>("id")?,
            row.try_get::<i64, _>("at")?,
            row.try_get::<String, _>("caller")?,
            row.try_get::<String, _>("operation")?,
            row.try_get::<Option<String>, _>("account")?,
            row.try_get::<Option<String>, _>("zoom_user")?,
            row.try_get::<Option<i64>, _>("meeting_id")?,
            row.try_get::<String, _>("outcome")?,
            row.try_get::<Option<String>, _>("detail")?,
        ))
    };
    let (id, at, caller, operation, account, user, meeting_id, outcome, detail) =
        read().map_err(query_error("audit"))?;
    let outcome = outcome
        .parse::<Outcome>()
        .map_err(|_| StoreError::Corrupt(format!("audit.outcome of record {id}")))?;
    Ok(AuditRecord {
        id,
        at: from_millis(at, || format!("audit.at of record {id}"))?,
        caller,
        operation,
        account,
        user,
        meeting_id,
        outcome,
        detail,
    })
}

/// Converts stored unix milliseconds back to a timestamp; `what` names the column for the error.
fn from_millis(millis: i64, what: impl FnOnce() -> String) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| StoreError::Corrupt(what()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use chrono::TimeDelta;

    use super::*;
    use crate::store;

    /// Unix millis of an arbitrary fixed instant, so tests never depend on the clock.
    const T0: i64 = 1_750_000_000_000;

    fn at(offset_millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(T0 + offset_millis).expect("in range")
    }

    fn meeting(meeting_id: i64, account: &str, created_by: &str) -> MeetingRecord {
        MeetingRecord {
            meeting_id,
            account: account.into(),
            host_id: format!("host-{meeting_id}"),
            host_email: format!("host-{meeting_id}@example.com"),
            created_by: created_by.into(),
            created_at: at(meeting_id),
        }
    }

    fn event(at_offset: i64, caller: &str, operation: &str, outcome: Outcome) -> AuditRecord {
        AuditRecord {
            id: 0,
            at: at(at_offset),
            caller: caller.into(),
            operation: operation.into(),
            account: None,
            user: None,
            meeting_id: None,
            outcome,
            detail: None,
        }
    }

    async fn memory() -> SqliteStore {
        SqliteStore::open_in_memory()
            .await
            .expect("in-memory store")
    }

    /// A varied audit log: 40 events over 3 callers, 3 operations, 2 accounts, 4 users, 5 meetings,
    /// every outcome, some optional fields missing, timestamps out of insertion order and repeated.
    fn fixture() -> Vec<AuditRecord> {
        let callers = ["crm", "lms", "ops"];
        let operations = ["meetings.create", "meetings.get", "meetings.delete"];
        let outcomes = [Outcome::Allowed, Outcome::Denied, Outcome::Failed];
        (0..40i64)
            .map(|i| {
                let i_usize = usize::try_from(i).expect("small");
                let mut record = event(
                    (i * 7919) % 23 * 1000,
                    callers[i_usize % 3],
                    operations[i_usize % 3 / 2 + i_usize % 2],
                    outcomes[i_usize / 3 % 3],
                );
                record.account = (i % 4 != 0).then(|| ["sales", "support"][i_usize % 2].into());
                record.user = (i % 5 != 0).then(|| format!("user{}@example.com", i % 4));
                record.meeting_id = (i % 3 != 1).then_some(80_000_000_000 + i % 5);
                record.detail = (i % 6 == 0).then(|| format!("event {i}"));
                record
            })
            .collect()
    }

    /// Reference semantics of [`AuditFilter`], applied to records in memory.
    fn matches(filter: &AuditFilter, record: &AuditRecord) -> bool {
        filter.caller.as_ref().is_none_or(|c| *c == record.caller)
            && filter
                .operation
                .as_ref()
                .is_none_or(|o| *o == record.operation)
            && filter
                .account
                .as_ref()
                .is_none_or(|a| record.account.as_ref() == Some(a))
            && filter
                .user
                .as_ref()
                .is_none_or(|u| record.user.as_ref() == Some(u))
            && filter
                .meeting_id
                .is_none_or(|m| record.meeting_id == Some(m))
            && filter.outcome.is_none_or(|o| record.outcome == o)
            && filter.since.is_none_or(|s| record.at >= s)
            && filter.until.is_none_or(|u| record.at < u)
    }

    /// Appends `records` and returns them with the ids the store assigned (in append order).
    async fn append_all(store: &SqliteStore, records: &[AuditRecord]) -> Vec<AuditRecord> {
        for record in records {
            store.append_audit(record).await.expect("append");
        }
        let mut stored = store
            .audit(&AuditFilter {
                limit: Some(store::MAX_AUDIT_LIMIT),
                ..AuditFilter::default()
            })
            .await
            .expect("read back");
        stored.sort_by_key(|r| r.id);
        assert_eq!(stored.len(), records.len());
        stored
    }

    fn expected(stored: &[AuditRecord], filter: &AuditFilter) -> Vec<i64> {
        let mut hits: Vec<&AuditRecord> = stored.iter().filter(|r| matches(filter, r)).collect();
        hits.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
        hits.iter()
            .take(usize::try_from(filter.effective_limit()).expect("fits"))
            .map(|r| r.id)
            .collect()
    }

    async fn ids(store: &SqliteStore, filter: &AuditFilter) -> Vec<i64> {
        store
            .audit(filter)
            .await
            .expect("audit query")
            .iter()
            .map(|r| r.id)
            .collect()
    }

    // === ledger ===

    #[tokio::test]
    async fn ledger_records_reads_upserts_and_forgets() {
        let store = memory().await;
        let first = meeting(81_234_567_890, "sales", "crm");
        let other = meeting(81_234_567_891, "support", "lms");

        assert_eq!(store.meeting(first.meeting_id).await.unwrap(), None);
        store.record_meeting(&first).await.unwrap();
        store.record_meeting(&other).await.unwrap();
        assert_eq!(
            store.meeting(first.meeting_id).await.unwrap(),
            Some(first.clone())
        );

        let moved = MeetingRecord {
            account: "support".into(),
            host_id: "new-host".into(),
            host_email: "new-host@example.com".into(),
            created_by: "ops".into(),
            created_at: at(99_000),
            ..first.clone()
        };
        store.record_meeting(&moved).await.unwrap();
        assert_eq!(store.meeting(first.meeting_id).await.unwrap(), Some(moved));

        store.forget_meeting(first.meeting_id).await.unwrap();
        assert_eq!(store.meeting(first.meeting_id).await.unwrap(), None);
        assert_eq!(
            store.meeting(other.meeting_id).await.unwrap(),
            Some(other),
            "forgetting one meeting keeps the others"
        );
        store
            .forget_meeting(first.meeting_id)
            .await
            .expect("forgetting an unknown meeting is not an error");
    }

    #[tokio::test]
    async fn timestamps_keep_millisecond_precision() {
        let store = memory().await;
        let precise = at(1) + TimeDelta::nanoseconds(456_789);
        let record = MeetingRecord {
            created_at: precise,
            ..meeting(1, "sales", "crm")
        };
        store.record_meeting(&record).await.unwrap();
        let read = store.meeting(1).await.unwrap().expect("recorded");
        assert_eq!(read.created_at, at(1));
    }

    // === durability ===

    #[tokio::test]
    async fn reopening_the_file_keeps_ledger_and_audit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zoomgate.db");
        let record = meeting(85_000_000_001, "sales", "crm");
        let mut audited = event(5, "crm", "meetings.create", Outcome::Allowed);
        audited.meeting_id = Some(record.meeting_id);

        let first = store::open(&format!("sqlite:{}", path.display()))
            .await
            .expect("first open creates the file");
        first.record_meeting(&record).await.unwrap();
        first.append_audit(&audited).await.unwrap();
        first.close().await;
        drop(first);
        assert!(path.is_file());

        let path_text = path.to_str().expect("utf-8 temp path");
        let second = store::open(path_text)
            .await
            .expect("second open migrates nothing and keeps data");
        assert_eq!(
            second.meeting(record.meeting_id).await.unwrap(),
            Some(record)
        );
        let log = second.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].meeting_id, audited.meeting_id);
        assert_eq!(log[0].operation, audited.operation);

        // Ids keep increasing across restarts, so "newest first" survives them.
        second.append_audit(&audited).await.unwrap();
        let log = second.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(log.len(), 2);
        assert!(log[0].id > log[1].id);
        second.close().await;
    }

    #[tokio::test]
    async fn the_intents_migration_keeps_records_and_never_reuses_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        // A database as the first release left it: only the first migration, its top id deleted.
        let first = dir.path().join("first");
        std::fs::create_dir(&first).unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations/sqlite/0001_ledger_and_audit.sql"),
            first.join("0001_ledger_and_audit.sql"),
        )
        .unwrap();
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        Migrator::new(first.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        for i in 1..=3 {
            sqlx::query(
                "INSERT INTO audit (at, caller, operation, outcome) VALUES (?, 'crm', 'meetings.get', 'denied')",
            )
            .bind(T0 + i)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query("DELETE FROM audit WHERE id = 3")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;

        let store = SqliteStore::open_file(&path, Durability::PowerSafe)
            .await
            .unwrap();
        let kept = store.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(kept.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 1]);
        let id = store
            .begin_change(&event(10, "crm", "meetings.create", Outcome::Unknown))
            .await
            .unwrap();
        assert_eq!(id, 4, "id 3 was used once and must not come back");
        store.close().await;
    }

    #[tokio::test]
    async fn a_file_store_runs_in_wal_mode_and_syncs_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_file(&dir.path().join("wal.db"), Durability::PowerSafe)
            .await
            .unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        // Every pooled connection, not only the first: each commit must reach the disk.
        for _ in 0..MAX_FILE_CONNECTIONS {
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&store.pool())
                .await
                .unwrap();
            assert_eq!(
                synchronous, 2,
                "FULL survives a power loss; NORMAL does not"
            );
        }
        store.close().await;
    }

    // === bad locations ===

    #[tokio::test]
    async fn a_missing_directory_is_a_clear_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        let location = format!("sqlite:{}", missing.join("zoomgate.db").display());
        let err = store::open(&location).await.err().expect("must fail");
        assert!(matches!(&err, StoreError::MissingDirectory(p) if *p == missing));
        assert!(err.to_string().contains(&missing.display().to_string()));
        assert!(!missing.exists(), "the directory is not created");
    }

    #[tokio::test]
    async fn a_directory_or_a_file_as_parent_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = store::open(dir.path().to_str().unwrap())
            .await
            .err()
            .expect("a directory is not a database file");
        assert!(matches!(err, StoreError::Open { .. }), "{err}");

        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = store::open(file.join("db").to_str().unwrap())
            .await
            .err()
            .expect("a file is not a directory");
        assert!(matches!(err, StoreError::InvalidLocation(_)), "{err}");
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, vec![b'z'; 4096]).unwrap();
        let err = store::open(path.to_str().unwrap())
            .await
            .err()
            .expect("not a database");
        assert!(
            matches!(err, StoreError::Open { .. } | StoreError::Migrate { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn another_backend_is_refused_by_name() {
        let err = store::open("postgres://zoomgate:s3cret@127.0.0.1/zoomgate")
            .await
            .err()
            .expect("not supported yet");
        assert!(matches!(&err, StoreError::UnsupportedBackend(s) if s == "postgres"));
        assert!(!err.to_string().contains("s3cret"));
    }

    // === audit ===

    #[tokio::test]
    async fn append_ignores_the_given_id() {
        let store = memory().await;
        let mut record = event(0, "crm", "meetings.get", Outcome::Denied);
        record.id = 4242;
        record.account = Some("sales".into());
        record.user = Some("ann@example.com".into());
        record.meeting_id = Some(87_000_000_000);
        record.detail = Some("no grant for meetings.get".into());
        store.append_audit(&record).await.unwrap();
        store.append_audit(&record).await.unwrap();

        let log = store.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(log.len(), 2);
        assert_ne!(log[0].id, log[1].id);
        for stored in &log {
            assert_ne!(stored.id, 4242);
            assert_eq!(
                *stored,
                AuditRecord {
                    id: stored.id,
                    ..record.clone()
                }
            );
        }
    }

    #[tokio::test]
    async fn audit_is_newest_first_with_ties_broken_by_id() {
        let store = memory().await;
        let offsets = [30, 10, 30, 20, 10, 30];
        let records: Vec<_> = offsets
            .iter()
            .map(|&o| event(o, "crm", "meetings.get", Outcome::Allowed))
            .collect();
        let stored = append_all(&store, &records).await;

        let log = store.audit(&AuditFilter::default()).await.unwrap();
        let order: Vec<(i64, i64)> = log
            .iter()
            .map(|r| (r.at.timestamp_millis() - T0, r.id))
            .collect();
        let ids: Vec<i64> = stored.iter().map(|r| r.id).collect();
        // Appended ids in order: offsets 30,10,30,20,10,30 -> newest `at` first, then highest id.
        let want = vec![
            (30, ids[5]),
            (30, ids[2]),
            (30, ids[0]),
            (20, ids[3]),
            (10, ids[4]),
            (10, ids[1]),
        ];
        assert_eq!(order, want);
    }

    #[tokio::test]
    async fn every_audit_filter_selects_exactly_the_matching_records() {
        let store = memory().await;
        let stored = append_all(&store, &fixture()).await;
        let all = AuditFilter {
            limit: Some(1000),
            ..AuditFilter::default()
        };
        let filters = [
            AuditFilter {
                caller: Some("lms".into()),
                ..all.clone()
            },
            AuditFilter {
                operation: Some("meetings.delete".into()),
                ..all.clone()
            },
            AuditFilter {
                account: Some("support".into()),
                ..all.clone()
            },
            AuditFilter {
                user: Some("user2@example.com".into()),
                ..all.clone()
            },
            AuditFilter {
                meeting_id: Some(80_000_000_003),
                ..all.clone()
            },
            AuditFilter {
                outcome: Some(Outcome::Denied),
                ..all.clone()
            },
            AuditFilter {
                since: Some(at(11_000)),
                ..all.clone()
            },
            AuditFilter {
                until: Some(at(11_000)),
                ..all.clone()
            },
            AuditFilter {
                since: Some(at(5_000)),
                until: Some(at(15_000)),
                ..all.clone()
            },
            AuditFilter {
                caller: Some("crm".into()),
                outcome: Some(Outcome::Allowed),
                account: Some("support".into()),
                ..all.clone()
            },
            AuditFilter {
                caller: Some("nobody".into()),
                ..all.clone()
            },
        ];
        for filter in &filters {
            let want = expected(&stored, filter);
            assert_eq!(ids(&store, filter).await, want, "{filter:?}");
        }
        // Each single-field filter must narrow the log but still find something, or it tests nothing.
        for filter in &filters[..9] {
            let hits = expected(&stored, filter).len();
            assert!(hits > 0 && hits < stored.len(), "{filter:?} selects {hits}");
        }
    }

    #[tokio::test]
    async fn audit_honours_the_limit() {
        let store = memory().await;
        let records: Vec<_> = (0..130)
            .map(|i| event(i, "crm", "meetings.get", Outcome::Allowed))
            .collect();
        let stored = append_all(&store, &records).await;

        let default = AuditFilter::default();
        let got = ids(&store, &default).await;
        assert_eq!(got.len(), 100);
        assert_eq!(got, expected(&stored, &default));

        let seven = AuditFilter {
            limit: Some(7),
            ..AuditFilter::default()
        };
        assert_eq!(ids(&store, &seven).await, expected(&stored, &seven));
        assert_eq!(ids(&store, &seven).await.len(), 7);

        let huge = AuditFilter {
            limit: Some(u32::MAX),
            ..AuditFilter::default()
        };
        assert_eq!(ids(&store, &huge).await.len(), 130);

        let none = AuditFilter {
            limit: Some(0),
            ..AuditFilter::default()
        };
        assert!(ids(&store, &none).await.is_empty());

        let filtered = AuditFilter {
            since: Some(at(50)),
            limit: Some(10),
            ..AuditFilter::default()
        };
        assert_eq!(ids(&store, &filtered).await, expected(&stored, &filtered));
    }

    #[tokio::test]
    async fn an_unreadable_timestamp_is_reported_as_corrupt() {
        let store = memory().await;
        sqlx::query(
            "INSERT INTO audit (at, caller, operation, outcome) VALUES (?, 'crm', 'meetings.get', 'allowed')",
        )
        .bind(i64::MAX)
        .execute(&store.pool())
        .await
        .unwrap();
        let err = store.audit(&AuditFilter::default()).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_from_many_tasks_all_land() {
        const TASKS: i64 = 32;
        const PER_TASK: i64 = 25;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = store::open(dir.path().join("busy.db").to_str().unwrap())
            .await
            .unwrap();

        let appends = async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|task| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move {
                        for n in 0..PER_TASK {
                            let mut record = event(
                                n,
                                &format!("caller-{task}"),
                                "meetings.create",
                                Outcome::Allowed,
                            );
                            record.meeting_id = Some(task * 1000 + n);
                            store.append_audit(&record).await?;
                        }
                        Ok::<_, StoreError>(())
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("task ran").expect("append succeeded");
            }
        };
        tokio::time::timeout(Duration::from_secs(60), appends)
            .await
            .expect("appends finish in time");

        let log = store
            .audit(&AuditFilter {
                limit: Some(store::MAX_AUDIT_LIMIT),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(log.len() as i64, TASKS * PER_TASK);
        let ids: HashSet<i64> = log.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), log.len(), "ids are unique");
        let meetings: HashSet<i64> = log.iter().filter_map(|r| r.meeting_id).collect();
        assert_eq!(meetings.len(), log.len(), "every append landed once");
        let one_caller = store
            .audit(&AuditFilter {
                caller: Some("caller-7".into()),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(one_caller.len() as i64, PER_TASK);
        store.close().await;
    }
}

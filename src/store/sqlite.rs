//! SQLite implementation of [`Store`]: one WAL-mode file, or a private in-memory database for tests.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{AuditFilter, AuditRecord, MeetingRecord, Outcome, Store, StoreError};

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

/// The SQLite store: a small connection pool over one database.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and migrates it.
    ///
    /// The parent directory must exist: a typo in a volume path should fail loudly, not create a
    /// database nobody backs up.
    pub async fn open_file(path: &Path) -> Result<Self, StoreError> {
        check_directory(path).await?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
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
        let store = Self::migrated(pool, path).await?;
        tracing::info!(path = %path.display(), "store opened");
        Ok(store)
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
        Self::migrated(pool, path).await
    }

    async fn migrated(pool: SqlitePool, path: &Path) -> Result<Self, StoreError> {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self { pool })
    }
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
        .execute(&self.pool)
        .await
        .map_err(query_error("record_meeting"))?;
        Ok(())
    }

    async fn meeting(&self, meeting_id: i64) -> Result<Option<MeetingRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT meeting_id, account, host_id, host_email, created_by, created_at \
             FROM meetings WHERE meeting_id = ?",
        )
        .bind(meeting_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("meeting"))?;
        row.map(|row| meeting_from_row(&row)).transpose()
    }

    async fn forget_meeting(&self, meeting_id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM meetings WHERE meeting_id = ?")
            .bind(meeting_id)
            .execute(&self.pool)
            .await
            .map_err(query_error("forget_meeting"))?;
        Ok(())
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (at, caller, operation, account, zoom_user, meeting_id, outcome, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.at.timestamp_millis())
        .bind(&record.caller)
        .bind(&record.operation)
        .bind(&record.account)
        .bind(&record.user)
        .bind(record.meeting_id)
        .bind(record.outcome.as_str())
        .bind(&record.detail)
        .execute(&self.pool)
        .await
        .map_err(query_error("append_audit"))?;
        Ok(())
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
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("audit"))?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
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

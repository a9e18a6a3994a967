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
use sqlx::Sqlite;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::rows::{
    audit_from_row, audit_query, directory_from_row, earlier_claim, meeting_from_row, query_error,
    route_from_row,
};
use super::{
    AuditFilter, AuditRecord, Claim, Completion, CreateEnd, CreateRequest, DirectoryEntry,
    LedgerChange, MeetingRecord, Outcome, RouteChange, RouteRecord, Store, StoreError, UserDay,
};
use crate::accounts::AccountName;

/// Schema migrations, embedded in the binary and applied at every open (already applied ones are skipped).
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a free pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite has one writer at a time; a few connections are enough for concurrent readers under WAL.
const MAX_FILE_CONNECTIONS: u32 = 4;

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
        let mut query = audit_query::<Sqlite>(filter, limit);
        let rows = query
            .build()
            .fetch_all(&self.pool())
            .await
            .map_err(query_error("audit"))?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn change_route(
        &self,
        change: &RouteChange,
        audit: &AuditRecord,
    ) -> Result<Option<RouteRecord>, StoreError> {
        self.write(async |pool| {
            let mut tx = pool.begin().await.map_err(query_error("change_route"))?;
            let email = match change {
                RouteChange::Put(route) => &route.email,
                RouteChange::Delete(email) => email,
            };
            // The write comes first: a transaction that read first would have to upgrade its lock,
            // and SQLite refuses that at once (no busy wait) while another connection writes.
            insert_audit(&mut *tx, audit, audit.outcome).await?;
            let before = select_route(&mut *tx, email).await?;
            match change {
                RouteChange::Put(route) => {
                    sqlx::query(
                        "INSERT INTO user_routes (email, account, set_by, set_at, forced) \
                         VALUES (?, ?, ?, ?, ?) \
                         ON CONFLICT (email) DO UPDATE SET account = excluded.account, \
                         set_by = excluded.set_by, set_at = excluded.set_at, forced = excluded.forced",
                    )
                    .bind(&route.email)
                    .bind(route.account.as_str())
                    .bind(&route.set_by)
                    .bind(route.set_at.timestamp_millis())
                    .bind(route.forced)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_error("change_route"))?;
                }
                RouteChange::Delete(email) => {
                    sqlx::query("DELETE FROM user_routes WHERE email = ?")
                        .bind(email)
                        .execute(&mut *tx)
                        .await
                        .map_err(query_error("change_route"))?;
                }
            }
            tx.commit().await.map_err(query_error("change_route"))?;
            Ok(before)
        })
        .await
    }

    async fn route(&self, email: &str) -> Result<Option<RouteRecord>, StoreError> {
        select_route(&self.pool(), email).await
    }

    async fn routes(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RouteRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT email, account, set_by, set_at, forced FROM user_routes \
             WHERE email > ? ORDER BY email LIMIT ?",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool())
        .await
        .map_err(query_error("routes"))?;
        rows.iter().map(route_from_row).collect()
    }

    async fn claim_create(
        &self,
        request: &CreateRequest,
        expired_before: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        self.write(async |pool| {
            let mut tx = pool.begin().await.map_err(query_error("claim_create"))?;
            // Written first, as in `change_route`: a read first would have to upgrade its lock.
            let claimed = sqlx::query(
                "INSERT INTO create_requests \
                 (caller, request_id, body_sha256, state, account, meeting_id, created_at) \
                 VALUES (?, ?, ?, 'running', NULL, NULL, ?) \
                 ON CONFLICT (caller, request_id) DO UPDATE SET \
                 body_sha256 = excluded.body_sha256, state = 'running', account = NULL, \
                 meeting_id = NULL, created_at = excluded.created_at \
                 WHERE created_at < ?",
            )
            .bind(&request.caller)
            .bind(&request.request_id)
            .bind(&request.body_sha256)
            .bind(request.at.timestamp_millis())
            .bind(expired_before.timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(query_error("claim_create"))?;
            let claim = if claimed.rows_affected() == 1 {
                Claim::Claimed
            } else {
                let row = sqlx::query(
                    "SELECT body_sha256, state, account, meeting_id, created_at \
                     FROM create_requests WHERE caller = ? AND request_id = ?",
                )
                .bind(&request.caller)
                .bind(&request.request_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(query_error("claim_create"))?;
                earlier_claim(&row, request, stale_before)?
            };
            tx.commit().await.map_err(query_error("claim_create"))?;
            Ok(claim)
        })
        .await
    }

    async fn finish_create(
        &self,
        caller: &str,
        request_id: &str,
        end: CreateEnd,
    ) -> Result<(), StoreError> {
        self.write(async |pool| {
            let query = match &end {
                CreateEnd::Done {
                    account,
                    meeting_id,
                } => sqlx::query(
                    "UPDATE create_requests SET state = 'done', account = ?, meeting_id = ? \
                     WHERE caller = ? AND request_id = ?",
                )
                .bind(account.as_str())
                .bind(*meeting_id),
                CreateEnd::Unknown => sqlx::query(
                    "UPDATE create_requests SET state = 'unknown' \
                     WHERE caller = ? AND request_id = ? AND state <> 'done'",
                ),
                CreateEnd::Failed => sqlx::query(
                    "DELETE FROM create_requests \
                     WHERE caller = ? AND request_id = ? AND state <> 'done'",
                ),
            };
            query
                .bind(caller)
                .bind(request_id)
                .execute(&pool)
                .await
                .map_err(query_error("finish_create"))?;
            Ok(())
        })
        .await
    }

    async fn purge_creates(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.write(async |pool| {
            let purged = sqlx::query("DELETE FROM create_requests WHERE created_at < ?")
                .bind(before.timestamp_millis())
                .execute(&pool)
                .await
                .map_err(query_error("purge_creates"))?;
            Ok(purged.rows_affected())
        })
        .await
    }

    async fn take_user_call(&self, day: &UserDay, cap: u32) -> Result<bool, StoreError> {
        self.write(async |pool| {
            // One statement: two requests for the same user cannot both take the last call.
            let counted = sqlx::query(
                "INSERT INTO user_calls (account, user_key, day, calls) VALUES (?, ?, ?, 1) \
                 ON CONFLICT (account, user_key) DO UPDATE SET \
                 calls = CASE WHEN day = excluded.day THEN calls + 1 ELSE 1 END, \
                 day = excluded.day \
                 WHERE day <> excluded.day OR calls < ?",
            )
            .bind(day.account.as_str())
            .bind(&day.user)
            .bind(day.day)
            .bind(cap)
            .execute(&pool)
            .await
            .map_err(query_error("take_user_call"))?;
            Ok(counted.rows_affected() == 1)
        })
        .await
    }

    async fn give_back_user_call(&self, day: &UserDay) -> Result<(), StoreError> {
        self.write(async |pool| {
            sqlx::query(
                "UPDATE user_calls SET calls = calls - 1 \
                 WHERE account = ? AND user_key = ? AND day = ? AND calls > 0",
            )
            .bind(day.account.as_str())
            .bind(&day.user)
            .bind(day.day)
            .execute(&pool)
            .await
            .map_err(query_error("give_back_user_call"))?;
            Ok(())
        })
        .await
    }

    async fn fill_user_day(&self, day: &UserDay, cap: u32) -> Result<(), StoreError> {
        self.write(async |pool| {
            sqlx::query(
                "INSERT INTO user_calls (account, user_key, day, calls) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (account, user_key) DO UPDATE SET day = excluded.day, \
                 calls = excluded.calls WHERE day <= excluded.day",
            )
            .bind(day.account.as_str())
            .bind(&day.user)
            .bind(day.day)
            .bind(cap)
            .execute(&pool)
            .await
            .map_err(query_error("fill_user_day"))?;
            Ok(())
        })
        .await
    }

    async fn replace_directory(
        &self,
        account: &AccountName,
        users: &[DirectoryEntry],
    ) -> Result<(), StoreError> {
        self.write(async |pool| {
            let mut tx = pool.begin().await.map_err(query_error("replace_directory"))?;
            sqlx::query("DELETE FROM directory WHERE account = ?")
                .bind(account.as_str())
                .execute(&mut *tx)
                .await
                .map_err(query_error("replace_directory"))?;
            for user in users {
                sqlx::query(
                    "INSERT INTO directory (email, account, user_id, synced_at) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (email, account) DO UPDATE SET user_id = excluded.user_id, \
                     synced_at = excluded.synced_at",
                )
                .bind(&user.email)
                .bind(account.as_str())
                .bind(&user.user_id)
                .bind(user.synced_at.timestamp_millis())
                .execute(&mut *tx)
                .await
                .map_err(query_error("replace_directory"))?;
            }
            tx.commit().await.map_err(query_error("replace_directory"))
        })
        .await
    }

    async fn directory(&self) -> Result<Vec<DirectoryEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT email, account, user_id, synced_at FROM directory ORDER BY email, account",
        )
        .fetch_all(&self.pool())
        .await
        .map_err(query_error("directory"))?;
        rows.iter().map(directory_from_row).collect()
    }

    async fn close(&self) {
        self.pool().close().await;
    }
}

async fn select_route<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    email: &str,
) -> Result<Option<RouteRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT email, account, set_by, set_at, forced FROM user_routes WHERE email = ?",
    )
    .bind(email)
    .fetch_optional(executor)
    .await
    .map_err(query_error("route"))?;
    row.as_ref().map(route_from_row).transpose()
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
    .bind(meeting.account.as_str())
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store;
    use crate::store::contract::{T0, event, meeting};

    async fn memory() -> SqliteStore {
        SqliteStore::open_in_memory()
            .await
            .expect("in-memory store")
    }

    /// A store on a new file in its own temp directory, which the guard removes.
    async fn file_store() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open_file(&dir.path().join("contract.db"), Durability::PowerSafe)
            .await
            .expect("file store");
        (Arc::new(store) as Arc<dyn Store>, dir)
    }

    async fn memory_store() -> (Arc<dyn Store>, ()) {
        (Arc::new(memory().await) as Arc<dyn Store>, ())
    }

    /// The store contract on a file, as the gateway runs.
    mod on_file {
        crate::store::contract::contract_suite!(super::file_store());
    }

    /// The store contract in memory, as the demo and `sqlite::memory:` run.
    mod in_memory {
        crate::store::contract::contract_suite!(super::memory_store());
    }

    // === durability ===

    #[tokio::test]
    async fn reopening_the_file_keeps_ledger_and_audit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zoomgate.db");
        let record = meeting(85_000_000_001, "sales", "crm");
        let mut audited = event(5, "crm", "meetings.create", Outcome::Allowed);
        audited.meeting_id = Some(record.meeting_id);

        let first = store::open(&format!("sqlite:{}", path.display()), None)
            .await
            .expect("first open creates the file");
        first.record_meeting(&record).await.unwrap();
        first.append_audit(&audited).await.unwrap();
        first.close().await;
        drop(first);
        assert!(path.is_file());

        let path_text = path.to_str().expect("utf-8 temp path");
        let second = store::open(path_text, None)
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
        let err = store::open(&location, None).await.err().expect("must fail");
        assert!(matches!(&err, StoreError::MissingDirectory(p) if *p == missing));
        assert!(err.to_string().contains(&missing.display().to_string()));
        assert!(!missing.exists(), "the directory is not created");
    }

    #[tokio::test]
    async fn a_directory_or_a_file_as_parent_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = store::open(dir.path().to_str().unwrap(), None)
            .await
            .err()
            .expect("a directory is not a database file");
        assert!(matches!(err, StoreError::Open { .. }), "{err}");

        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = store::open(file.join("db").to_str().unwrap(), None)
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
        let err = store::open(path.to_str().unwrap(), None)
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
        let err = store::open("mysql://zoomgate:s3cret@127.0.0.1/zoomgate", None)
            .await
            .err()
            .expect("not supported");
        assert!(matches!(&err, StoreError::UnsupportedBackend(s) if s == "mysql"));
        assert!(!err.to_string().contains("s3cret"));
    }

    #[tokio::test]
    async fn a_postgres_url_with_a_password_is_refused_without_echoing_it() {
        let err = store::open("postgres://zoomgate:s3cret@127.0.0.1/zoomgate", None)
            .await
            .err()
            .expect("a password in the URL");
        assert!(matches!(&err, StoreError::InvalidLocation(_)), "{err}");
        assert!(err.to_string().contains("store_password_env"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    // === corrupt data ===

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
}

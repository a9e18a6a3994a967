//! PostgreSQL implementation of [`Store`], for several replicas sharing one database.
//!
//! The tables and columns are SQLite's (timestamps as unix milliseconds), so both backends read
//! rows back with the same code (`rows`). Migrations run at every start under PostgreSQL's
//! advisory lock, so replicas that start together migrate once. Every statement that must not
//! race (a user's daily count, a create's claim) is one statement or one transaction, so the
//! replicas agree without any lock of the gateway's own.
//!
//! What gateways cache (route overrides, ledger entries, the directory) is announced with
//! `pg_notify` in the transaction that changes it, so every gateway on the database hears of it
//! as it commits ([`Store::changes`]); after a lost connection they are told to read everything
//! again.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Postgres;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::rows::{
    audit_from_row, audit_query, directory_from_row, earlier_claim, meeting_from_row, query_error,
    route_from_row,
};
use super::{
    AuditFilter, AuditRecord, Change, Claim, Completion, CreateEnd, CreateRequest, DirectoryEntry,
    LedgerChange, MeetingRecord, Outcome, RouteChange, RouteRecord, SharedBudget, Slot, SlotAsk,
    Store, StoreError, UserDay,
};
use crate::accounts::AccountName;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a request waits for a free pooled connection before failing. A healthy pool hands
/// one out at once; a server that is down is retried for this long, and a request should learn
/// of it with time left to answer UNAVAILABLE before its own deadline passes.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_CONNECTIONS: u32 = 16;
/// A gateway reserves one place at a time per budget (account and category).
const BUDGET_CONNECTIONS: u32 = 4;
/// How long the listener waits before connecting again after it lost the database.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);
/// Announcements a slow gateway may fall behind by before it is told to read everything again.
const CHANGES_BUFFER: usize = 1024;
/// PostgreSQL's longest identifier, which a channel name is.
const MAX_CHANNEL_BYTES: usize = 63;
/// The PostgreSQL store: a connection pool over one database (and schema).
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    budget: Arc<PgBudget>,
    /// The notification channel of this database and schema.
    channel: String,
    changes: broadcast::Sender<Change>,
    /// Stops the listener task at close.
    listening: CancellationToken,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/database`), with `password` if the URL
    /// has none, and migrates. With `schema`, every connection works in that schema, which must
    /// exist (tests give each store a schema of its own).
    pub async fn connect(
        url: &str,
        password: Option<&SecretString>,
        schema: Option<&str>,
    ) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url).map_err(StoreError::Connect)?;
        if let Some(password) = password {
            options = options.password(password.expose_secret());
        }
        if let Some(schema) = schema {
            options = options.options([("search_path", schema)]);
        }
        // The budget's places are worth a few milliseconds: they need no wait for the disk at
        // commit (a database crash forgets the last of them, and the pace goes on from the
        // next), and a pool of their own never waits behind the store's writes.
        let budget = PgBudget {
            pool: PgPoolOptions::new()
                .max_connections(BUDGET_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_lazy_with(options.clone().options([
                    ("synchronous_commit", "off"),
                    // A database gone silent mid-statement fails the reservation, not the pace.
                    ("statement_timeout", "1s"),
                ])),
        };
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(StoreError::MigrateDatabase)?;
        // Channels are per database: the schema in the name keeps stores of other schemas apart.
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .map_err(query_error("connect"))?;
        let mut channel = format!("zoomgate_{schema}");
        while channel.len() > MAX_CHANNEL_BYTES {
            channel.pop();
        }
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        let listening = CancellationToken::new();
        tokio::spawn(listen(
            pool.clone(),
            channel.clone(),
            changes.clone(),
            listening.clone(),
        ));
        Ok(Self {
            pool,
            budget: Arc::new(budget),
            channel,
            changes,
            listening,
        })
    }

    async fn begin(
        &self,
        operation: &'static str,
    ) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(query_error(operation))
    }

    /// Announces `change` when the transaction `executor` belongs to commits.
    async fn announce<'e>(
        &self,
        executor: impl sqlx::PgExecutor<'e>,
        change: &Change,
    ) -> Result<(), StoreError> {
        let payload = match change {
            Change::Route(email) => format!("route:{email}"),
            Change::Meeting(id) => format!("meeting:{id}"),
            Change::Directory(account) => format!("directory:{account}"),
            Change::Resync => "resync".to_owned(),
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(payload)
            .execute(executor)
            .await
            .map_err(query_error("announce"))
            .map(drop)
    }
}

/// Hears the announcements of every gateway on the database and passes them on, until `stop`.
/// After a lost connection it connects again and tells its listeners to read everything anew,
/// since announcements made meanwhile are gone.
async fn listen(
    pool: PgPool,
    channel: String,
    changes: broadcast::Sender<Change>,
    stop: CancellationToken,
) {
    let mut first = true;
    loop {
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(&channel).await?;
            if !std::mem::take(&mut first) {
                let _ = changes.send(Change::Resync);
            }
            // `None`: the connection was lost.
            while let Some(notification) = listener.try_recv().await? {
                match parse_change(notification.payload()) {
                    Some(change) => {
                        let _ = changes.send(change);
                    }
                    None => tracing::warn!("an unreadable store announcement; ignored"),
                }
            }
            Ok::<_, sqlx::Error>(())
        };
        let lost = tokio::select! {
            lost = listening => lost,
            () = stop.cancelled() => return,
        };
        if let Err(error) = lost {
            tracing::warn!(%error, "lost the store's announcements; listening again");
        }
        tokio::select! {
            () = tokio::time::sleep(RELISTEN_AFTER) => {}
            () = stop.cancelled() => return,
        }
    }
}

fn parse_change(payload: &str) -> Option<Change> {
    let (kind, key) = payload.split_once(':').unwrap_or((payload, ""));
    Some(match kind {
        "route" => Change::Route(key.to_owned()),
        "meeting" => Change::Meeting(key.parse().ok()?),
        "directory" => Change::Directory(AccountName::parse(key).ok()?),
        "resync" => Change::Resync,
        _ => return None,
    })
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn record_meeting(&self, meeting: &MeetingRecord) -> Result<(), StoreError> {
        let mut tx = self.begin("record_meeting").await?;
        upsert_meeting(&mut *tx, meeting).await?;
        self.announce(&mut *tx, &Change::Meeting(meeting.meeting_id))
            .await?;
        tx.commit().await.map_err(query_error("record_meeting"))
    }

    async fn meeting(&self, meeting_id: i64) -> Result<Option<MeetingRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT meeting_id, account, host_id, host_email, created_by, created_at \
             FROM meetings WHERE meeting_id = $1",
        )
        .bind(meeting_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("meeting"))?;
        row.map(|row| meeting_from_row(&row)).transpose()
    }

    async fn forget_meeting(&self, meeting_id: i64) -> Result<(), StoreError> {
        let mut tx = self.begin("forget_meeting").await?;
        delete_meeting(&mut *tx, meeting_id).await?;
        self.announce(&mut *tx, &Change::Meeting(meeting_id))
            .await?;
        tx.commit().await.map_err(query_error("forget_meeting"))
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        insert_audit(&self.pool, record, record.outcome)
            .await
            .map(drop)
    }

    async fn begin_change(&self, intent: &AuditRecord) -> Result<i64, StoreError> {
        insert_audit(&self.pool, intent, Outcome::Unknown).await
    }

    async fn complete_change(&self, completion: &Completion) -> Result<(), StoreError> {
        let record = &completion.record;
        let mut tx = self.begin("complete_change").await?;
        // Matched on what the intent said, not on its id alone, as in the SQLite store.
        let updated = sqlx::query(
            "UPDATE audit SET account = $1, zoom_user = $2, meeting_id = $3, outcome = $4, \
             detail = $5 WHERE id = $6 AND caller = $7 AND operation = $8 AND at = $9",
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
            LedgerChange::Record(meeting) => {
                upsert_meeting(&mut *tx, meeting).await?;
                self.announce(&mut *tx, &Change::Meeting(meeting.meeting_id))
                    .await?;
            }
            LedgerChange::Forget(meeting_id) => {
                delete_meeting(&mut *tx, *meeting_id).await?;
                self.announce(&mut *tx, &Change::Meeting(*meeting_id))
                    .await?;
            }
        }
        tx.commit().await.map_err(query_error("complete_change"))
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO write_check (id, at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .bind(Utc::now().timestamp_millis())
        .execute(&self.pool)
        .await
        .map_err(query_error("check_writable"))
        .map(drop)
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = filter.effective_limit();
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut query = audit_query::<Postgres>(filter, limit);
        let rows = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("audit"))?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn change_route(
        &self,
        change: &RouteChange,
        audit: &AuditRecord,
    ) -> Result<Option<RouteRecord>, StoreError> {
        let email = match change {
            RouteChange::Put(route) => &route.email,
            RouteChange::Delete(email) => email,
        };
        let mut tx = self.begin("change_route").await?;
        // Locks the route (if there is one) until the change commits: two admins changing the
        // same route through two replicas each see the other's result as "before".
        let before = sqlx::query(
            "SELECT email, account, set_by, set_at, forced FROM user_routes \
             WHERE email = $1 FOR UPDATE",
        )
        .bind(email)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error("change_route"))?;
        let before = before.as_ref().map(route_from_row).transpose()?;
        match change {
            RouteChange::Put(route) => {
                sqlx::query(
                    "INSERT INTO user_routes (email, account, set_by, set_at, forced) \
                     VALUES ($1, $2, $3, $4, $5) \
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
                sqlx::query("DELETE FROM user_routes WHERE email = $1")
                    .bind(email)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_error("change_route"))?;
            }
        }
        insert_audit(&mut *tx, audit, audit.outcome).await?;
        self.announce(&mut *tx, &Change::Route(email.clone()))
            .await?;
        tx.commit().await.map_err(query_error("change_route"))?;
        Ok(before)
    }

    async fn route(&self, email: &str) -> Result<Option<RouteRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT email, account, set_by, set_at, forced FROM user_routes WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("route"))?;
        row.as_ref().map(route_from_row).transpose()
    }

    async fn routes(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RouteRecord>, StoreError> {
        // Byte order, as SQLite compares: the database's collation must not reorder the pages.
        let rows = sqlx::query(
            "SELECT email, account, set_by, set_at, forced FROM user_routes \
             WHERE email COLLATE \"C\" > $1 ORDER BY email COLLATE \"C\" LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("routes"))?;
        rows.iter().map(route_from_row).collect()
    }

    async fn replace_directory(
        &self,
        account: &AccountName,
        users: &[DirectoryEntry],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin("replace_directory").await?;
        sqlx::query("DELETE FROM directory WHERE account = $1")
            .bind(account.as_str())
            .execute(&mut *tx)
            .await
            .map_err(query_error("replace_directory"))?;
        for user in users {
            sqlx::query(
                "INSERT INTO directory (email, account, user_id, synced_at) \
                 VALUES ($1, $2, $3, $4) \
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
        self.announce(&mut *tx, &Change::Directory(account.clone()))
            .await?;
        tx.commit().await.map_err(query_error("replace_directory"))
    }

    async fn directory(&self) -> Result<Vec<DirectoryEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT email, account, user_id, synced_at FROM directory \
             ORDER BY email COLLATE \"C\", account COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("directory"))?;
        rows.iter().map(directory_from_row).collect()
    }

    async fn claim_create(
        &self,
        request: &CreateRequest,
        expired_before: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let mut tx = self.begin("claim_create").await?;
        // A second claim of the same id waits on the first one's row, then finds it.
        let claimed = sqlx::query(
            "INSERT INTO create_requests \
             (caller, request_id, body_sha256, state, account, meeting_id, created_at) \
             VALUES ($1, $2, $3, 'running', NULL, NULL, $4) \
             ON CONFLICT (caller, request_id) DO UPDATE SET \
             body_sha256 = excluded.body_sha256, state = 'running', account = NULL, \
             meeting_id = NULL, created_at = excluded.created_at \
             WHERE create_requests.created_at < $5",
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
                 FROM create_requests WHERE caller = $1 AND request_id = $2",
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
    }

    async fn finish_create(
        &self,
        caller: &str,
        request_id: &str,
        end: CreateEnd,
    ) -> Result<(), StoreError> {
        let query = match &end {
            CreateEnd::Done {
                account,
                meeting_id,
            } => sqlx::query(
                "UPDATE create_requests SET state = 'done', account = $3, meeting_id = $4 \
                 WHERE caller = $1 AND request_id = $2",
            )
            .bind(caller)
            .bind(request_id)
            .bind(account.as_str())
            .bind(*meeting_id),
            CreateEnd::Unknown => sqlx::query(
                "UPDATE create_requests SET state = 'unknown' \
                 WHERE caller = $1 AND request_id = $2 AND state <> 'done'",
            )
            .bind(caller)
            .bind(request_id),
            CreateEnd::Failed => sqlx::query(
                "DELETE FROM create_requests \
                 WHERE caller = $1 AND request_id = $2 AND state <> 'done'",
            )
            .bind(caller)
            .bind(request_id),
        };
        query
            .execute(&self.pool)
            .await
            .map_err(query_error("finish_create"))
            .map(drop)
    }

    async fn purge_creates(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let purged = sqlx::query("DELETE FROM create_requests WHERE created_at < $1")
            .bind(before.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(query_error("purge_creates"))?;
        Ok(purged.rows_affected())
    }

    async fn take_user_call(&self, day: &UserDay, cap: u32) -> Result<bool, StoreError> {
        // One statement: two replicas cannot both take a user's last call.
        let counted = sqlx::query(
            "INSERT INTO user_calls (account, user_key, day, calls) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (account, user_key) DO UPDATE SET \
             calls = CASE WHEN user_calls.day = excluded.day THEN user_calls.calls + 1 ELSE 1 END, \
             day = excluded.day \
             WHERE user_calls.day <> excluded.day OR user_calls.calls < $4",
        )
        .bind(day.account.as_str())
        .bind(&day.user)
        .bind(day.day)
        .bind(i64::from(cap))
        .execute(&self.pool)
        .await
        .map_err(query_error("take_user_call"))?;
        Ok(counted.rows_affected() == 1)
    }

    async fn give_back_user_call(&self, day: &UserDay) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE user_calls SET calls = calls - 1 \
             WHERE account = $1 AND user_key = $2 AND day = $3 AND calls > 0",
        )
        .bind(day.account.as_str())
        .bind(&day.user)
        .bind(day.day)
        .execute(&self.pool)
        .await
        .map_err(query_error("give_back_user_call"))
        .map(drop)
    }

    async fn fill_user_day(&self, day: &UserDay, cap: u32) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_calls (account, user_key, day, calls) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account, user_key) DO UPDATE SET day = excluded.day, \
             calls = excluded.calls WHERE user_calls.day <= excluded.day",
        )
        .bind(day.account.as_str())
        .bind(&day.user)
        .bind(day.day)
        .bind(i64::from(cap))
        .execute(&self.pool)
        .await
        .map_err(query_error("fill_user_day"))
        .map(drop)
    }

    async fn close(&self) {
        self.listening.cancel();
        self.budget.pool.close().await;
        self.pool.close().await;
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    fn shared_budget(&self) -> Option<Arc<dyn SharedBudget>> {
        Some(self.budget.clone())
    }
}

/// The Zoom budgets of every gateway on the database, in `budget_slots` (migration 0002).
#[derive(Debug)]
struct PgBudget {
    pool: PgPool,
}

/// Microseconds, as the database counts them.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn from_micros(micros: i64) -> Duration {
    Duration::from_micros(u64::try_from(micros).unwrap_or_default())
}

#[async_trait::async_trait]
impl SharedBudget for PgBudget {
    async fn reserve(&self, ask: &SlotAsk) -> Result<Slot, StoreError> {
        let (outcome, wait, spent): (String, i64, i64) = sqlx::query_as(
            "SELECT outcome, wait_us, spent_today FROM reserve_budget_slot($1, $2, $3, $4, $5, $6)",
        )
        .bind(ask.account.as_str())
        .bind(ask.category)
        .bind(micros(ask.interval))
        .bind(micros(ask.within))
        .bind(
            ask.daily_cap
                .map(|cap| i64::try_from(cap).unwrap_or(i64::MAX)),
        )
        .bind(ask.day)
        .fetch_one(&self.pool)
        .await
        .map_err(query_error("reserve_budget_slot"))?;
        match outcome.as_str() {
            "reserved" => Ok(Slot::Reserved {
                wait: from_micros(wait),
                spent_today: u64::try_from(spent).unwrap_or_default(),
            }),
            "later" => Ok(Slot::Later {
                wait: from_micros(wait),
            }),
            "day_spent" => Ok(Slot::DaySpent),
            other => Err(StoreError::Corrupt(format!(
                "reserve_budget_slot answered `{other}`"
            ))),
        }
    }

    async fn pause(
        &self,
        account: &AccountName,
        category: &'static str,
        wait: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO budget_slots (account, category, paused_until_us) \
             VALUES ($1, $2, budget_clock_us() + $3) \
             ON CONFLICT (account, category) DO UPDATE SET paused_until_us = \
             greatest(budget_slots.paused_until_us, excluded.paused_until_us)",
        )
        .bind(account.as_str())
        .bind(category)
        .bind(micros(wait))
        .execute(&self.pool)
        .await
        .map_err(query_error("pause_budget"))
        .map(drop)
    }

    async fn slow_to(
        &self,
        account: &AccountName,
        category: &'static str,
        interval: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO budget_slots (account, category, zoom_interval_us) VALUES ($1, $2, $3) \
             ON CONFLICT (account, category) DO UPDATE SET zoom_interval_us = \
             greatest(budget_slots.zoom_interval_us, excluded.zoom_interval_us)",
        )
        .bind(account.as_str())
        .bind(category)
        .bind(micros(interval))
        .execute(&self.pool)
        .await
        .map_err(query_error("slow_budget"))
        .map(drop)
    }

    async fn give_back(
        &self,
        account: &AccountName,
        category: &'static str,
        day: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE budget_slots SET spent = greatest(spent - 1, 0) \
             WHERE account = $1 AND category = $2 AND day = $3",
        )
        .bind(account.as_str())
        .bind(category)
        .bind(day)
        .execute(&self.pool)
        .await
        .map_err(query_error("give_back_budget"))
        .map(drop)
    }
}

async fn upsert_meeting<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    meeting: &MeetingRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO meetings (meeting_id, account, host_id, host_email, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
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
    .map_err(query_error("record_meeting"))
    .map(drop)
}

async fn delete_meeting<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    meeting_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM meetings WHERE meeting_id = $1")
        .bind(meeting_id)
        .execute(executor)
        .await
        .map_err(query_error("forget_meeting"))
        .map(drop)
}

/// Appends `record` with `outcome`, returning the id the store gave it.
async fn insert_audit<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    record: &AuditRecord,
    outcome: Outcome,
) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "INSERT INTO audit (at, caller, operation, account, zoom_user, meeting_id, outcome, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(record.at.timestamp_millis())
    .bind(&record.caller)
    .bind(&record.operation)
    .bind(&record.account)
    .bind(&record.user)
    .bind(record.meeting_id)
    .bind(outcome.as_str())
    .bind(&record.detail)
    .fetch_one(executor)
    .await
    .map_err(query_error("append_audit"))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use super::*;

    /// The server the tests use: CI's and the development machine's local PostgreSQL.
    pub(crate) fn test_url() -> String {
        std::env::var("ZOOMGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// A schema of its own in the test database, dropped with the guard, so that tests run in
    /// parallel and leave nothing behind.
    pub(crate) struct Scratch {
        pub(crate) schema: String,
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
            // Drop runs outside any `.await`: the schema goes on a runtime of its own.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async {
                    let pool = PgPool::connect(&test_url()).await?;
                    sqlx::query(&statement).execute(&pool).await?;
                    pool.close().await;
                    Ok::<_, sqlx::Error>(())
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test schema {}: {dropped:?}", self.schema);
            }
        }
    }

    /// A new, empty schema, or `None` where no PostgreSQL answers (the test says it was
    /// skipped; `ZOOMGATE_REQUIRE_POSTGRES=1`, set by CI, makes that a failure).
    async fn scratch_schema() -> Option<Scratch> {
        let url = test_url();
        // One connection, not a pool: a pool would retry a refused connection until it times out.
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            <sqlx::PgConnection as sqlx::Connection>::connect(&url),
        )
        .await;
        let mut admin = match connected {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return unavailable(&url, &error.to_string()),
            Err(_) => return unavailable(&url, "no answer within 5 s"),
        };
        let schema = format!("zoomgate_test_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .expect("a test schema");
        let _ = sqlx::Connection::close(admin).await;
        Some(Scratch { schema })
    }

    /// A migrated store in a schema of its own.
    pub(crate) async fn scratch_store() -> Option<(Arc<dyn Store>, Scratch)> {
        let guard = scratch_schema().await?;
        let store = PostgresStore::connect(&test_url(), None, Some(&guard.schema))
            .await
            .expect("the store connects and migrates");
        Some((Arc::new(store) as Arc<dyn Store>, guard))
    }

    fn unavailable<T>(url: &str, why: &str) -> Option<T> {
        assert!(
            std::env::var("ZOOMGATE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "ZOOMGATE_REQUIRE_POSTGRES=1 but PostgreSQL at {url} does not answer: {why}"
        );
        // Past the test harness's capture, so that a skip shows in every run.
        let _ = writeln!(
            std::io::stderr(),
            "PostgreSQL test skipped: no PostgreSQL at {url} ({why}); \
             ZOOMGATE_REQUIRE_POSTGRES=1 makes this a failure"
        );
        None
    }

    /// The store contract on PostgreSQL, as several replicas run.
    mod contract {
        crate::store::contract::contract_suite!(super::scratch_store());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_that_start_together_migrate_one_schema_once() {
        let Some(guard) = scratch_schema().await else {
            return;
        };
        let starts: Vec<_> = (0..3)
            .map(|_| {
                let schema = guard.schema.clone();
                tokio::spawn(async move {
                    PostgresStore::connect(&test_url(), None, Some(&schema)).await
                })
            })
            .collect();
        for start in starts {
            let store = start.await.unwrap().expect("every replica starts");
            store.check_writable().await.expect("and writes");
            store.close().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_shared_budget_hands_out_places_an_interval_apart_and_counts_the_day_once() {
        let Some((store, _guard)) = scratch_store().await else {
            return;
        };
        let budget = store.shared_budget().expect("PostgreSQL shares its budget");
        let ask = |within, daily_cap| SlotAsk {
            account: AccountName::parse("sales").unwrap(),
            category: "light",
            interval: Duration::from_millis(100),
            within,
            daily_cap,
            day: 20_000,
        };
        let wait = |slot| match slot {
            Slot::Reserved { wait, .. } => wait,
            other => panic!("{other:?}"),
        };
        // Asked back to back, the places are one interval apart, the first at once.
        let asked = std::time::Instant::now();
        let mut places = Vec::new();
        for _ in 0..4 {
            let slot = budget
                .reserve(&ask(Duration::from_secs(1), None))
                .await
                .unwrap();
            places.push(asked.elapsed() + wait(slot));
        }
        assert!(places[0] < Duration::from_millis(50), "{places:?}");
        for pair in places.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap > Duration::from_millis(90) && gap < Duration::from_millis(110),
                "{places:?}"
            );
        }
        // A place further away than the ask allows is not taken: the next ask gets it.
        let later = budget
            .reserve(&ask(Duration::from_millis(50), None))
            .await
            .unwrap();
        let Slot::Later { wait: first_free } = later else {
            panic!("{later:?}");
        };
        assert!(first_free > Duration::from_millis(300), "{first_free:?}");
        let taken = wait(
            budget
                .reserve(&ask(Duration::from_secs(1), None))
                .await
                .unwrap(),
        );
        assert!(taken <= first_free, "{taken:?} after {first_free:?}");

        // The day's cap holds for every ask, and a place given back counts no more.
        let category = "heavy";
        let capped = |day| SlotAsk {
            category,
            interval: Duration::from_micros(1),
            day,
            ..ask(Duration::from_secs(1), Some(2))
        };
        assert!(matches!(
            budget.reserve(&capped(20_000)).await.unwrap(),
            Slot::Reserved { spent_today: 1, .. }
        ));
        assert!(matches!(
            budget.reserve(&capped(20_000)).await.unwrap(),
            Slot::Reserved { spent_today: 2, .. }
        ));
        assert_eq!(
            budget.reserve(&capped(20_000)).await.unwrap(),
            Slot::DaySpent
        );
        let sales = AccountName::parse("sales").unwrap();
        budget.give_back(&sales, category, 20_000).await.unwrap();
        assert!(matches!(
            budget.reserve(&capped(20_000)).await.unwrap(),
            Slot::Reserved { spent_today: 2, .. }
        ));
        // The next day starts from nothing, and a gateway whose clock of Zoom's is still on
        // the day before counts against the new day instead of taking the old one back.
        assert!(matches!(
            budget.reserve(&capped(20_001)).await.unwrap(),
            Slot::Reserved { spent_today: 1, .. }
        ));
        assert!(matches!(
            budget.reserve(&capped(20_000)).await.unwrap(),
            Slot::Reserved { spent_today: 2, .. }
        ));
        assert_eq!(
            budget.reserve(&capped(20_001)).await.unwrap(),
            Slot::DaySpent
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_made_through_one_store_are_announced_to_every_store_on_the_schema() {
        use crate::store::contract::{account, meeting};
        let Some(guard) = scratch_schema().await else {
            return;
        };
        let url = test_url();
        let connect = || PostgresStore::connect(&url, None, Some(&guard.schema));
        let (one, other) = (connect().await.unwrap(), connect().await.unwrap());
        let mut heard = other.changes().expect("a shared store announces");
        let next = async |heard: &mut broadcast::Receiver<Change>| {
            tokio::time::timeout(Duration::from_secs(1), heard.recv())
                .await
                .expect("announced within a second")
                .expect("a change")
        };

        one.record_meeting(&meeting(7, "sales", "bot"))
            .await
            .unwrap();
        assert_eq!(next(&mut heard).await, Change::Meeting(7));
        one.forget_meeting(7).await.unwrap();
        assert_eq!(next(&mut heard).await, Change::Meeting(7));
        let route = RouteRecord {
            email: "erin@partner.test".into(),
            account: account("support"),
            set_by: "platform".into(),
            set_at: Utc::now(),
            forced: true,
        };
        let audit =
            crate::store::contract::event(0, "platform", "admin.put_route", Outcome::Allowed);
        one.change_route(&RouteChange::Put(route), &audit)
            .await
            .unwrap();
        assert_eq!(
            next(&mut heard).await,
            Change::Route("erin@partner.test".into())
        );
        one.replace_directory(&account("sales"), &[]).await.unwrap();
        assert_eq!(next(&mut heard).await, Change::Directory(account("sales")));
        one.close().await;
        other.close().await;
    }
}

//! Durable state of the gateway (meeting ledger, audit log) behind one trait; SQLite by default.
//!
//! The trait speaks in plain records so a PostgreSQL implementation (for several replicas) can sit
//! behind it later. Timestamps are stored as unix milliseconds: anything finer is truncated.
//!
//! A change to a meeting is written twice: its intent before it reaches Zoom
//! ([`Store::begin_change`]), and its outcome with the ledger's update afterwards
//! ([`Store::complete_change`]). A crash in between leaves an `unknown` outcome, never silence.
//! [`Recorder`] keeps what the store refused and writes it once the store recovers.
//!
//! Every backend's tests run the behaviour the trait promises from one place, `contract`.

mod budget;
#[cfg(test)]
mod contract;
mod metered;
mod postgres;
mod recorder;
mod rows;
mod sqlite;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::accounts::AccountName;
use secrecy::SecretString;

pub use budget::{SharedBudget, Slot, SlotAsk};
pub use metered::Metered;
pub use postgres::PostgresStore;
pub use recorder::Recorder;
pub use sqlite::{Durability, SqliteStore};

#[cfg(test)]
pub(crate) use postgres::tests::{
    scratch_store as postgres_scratch_store, test_url as postgres_test_url,
};

/// Number of audit records returned when the filter names no limit.
pub const DEFAULT_AUDIT_LIMIT: u32 = 100;
/// Largest number of audit records one query returns, whatever the filter asks for.
pub const MAX_AUDIT_LIMIT: u32 = 10_000;

/// Durable state of the gateway. SQLite file by default; one implementation per database.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records which account owns a meeting (written at create time, and after a successful probe). Upsert.
    async fn record_meeting(&self, meeting: &MeetingRecord) -> Result<(), StoreError>;

    /// Returns the ledger entry of a meeting, if the gateway has recorded one.
    async fn meeting(&self, meeting_id: i64) -> Result<Option<MeetingRecord>, StoreError>;

    /// Removes the ledger entry after the meeting was deleted. Forgetting an unknown meeting is not an error.
    async fn forget_meeting(&self, meeting_id: i64) -> Result<(), StoreError>;

    /// Appends one audit record; the store assigns its id (the record's `id` is ignored).
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError>;

    /// Writes the intent of a change before it reaches Zoom: `intent` with outcome
    /// [`Outcome::Unknown`], durably. Returns the id of the audit record.
    async fn begin_change(&self, intent: &AuditRecord) -> Result<i64, StoreError>;

    /// Completes a change begun with [`Store::begin_change`]: the audit record gets its outcome and
    /// the ledger its update, in one transaction. If the intent is not in the store (a store that
    /// was lost and recreated), the record is appended whole.
    async fn complete_change(&self, completion: &Completion) -> Result<(), StoreError>;

    /// Proves that the store takes durable writes now; start-up and readiness depend on it.
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// Newest first, at most `filter.limit` (default 100, max 10_000).
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;

    /// Puts or deletes a route override and appends the audit record of that change, in one
    /// transaction. Returns the route that was there before.
    async fn change_route(
        &self,
        change: &RouteChange,
        audit: &AuditRecord,
    ) -> Result<Option<RouteRecord>, StoreError>;

    /// Returns the route override of a user (a lowercased email), if any.
    async fn route(&self, email: &str) -> Result<Option<RouteRecord>, StoreError>;

    /// Route overrides in email order, those after `after` only, at most `limit`.
    async fn routes(&self, after: Option<&str>, limit: u32)
    -> Result<Vec<RouteRecord>, StoreError>;

    /// Replaces what the directory holds of `account` with `users`, in one transaction.
    async fn replace_directory(
        &self,
        account: &AccountName,
        users: &[DirectoryEntry],
    ) -> Result<(), StoreError>;

    /// The whole directory, in email then account order.
    async fn directory(&self) -> Result<Vec<DirectoryEntry>, StoreError>;

    /// Claims a create's `request_id` for one try, or tells what an earlier try with it left
    /// (see [`Claim`]). A claim older than `expired_before` is forgotten and claimed anew; a
    /// running one older than `stale_before` is taken as a try that died.
    async fn claim_create(
        &self,
        request: &CreateRequest,
        expired_before: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;

    /// Records how the try that claimed `request_id` ended.
    async fn finish_create(
        &self,
        caller: &str,
        request_id: &str,
        end: CreateEnd,
    ) -> Result<(), StoreError>;

    /// Forgets claims older than `before`; returns how many.
    async fn purge_creates(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Counts one create or update of a host user on a day, unless `cap` are counted already;
    /// tells whether it counted. A new day starts from zero.
    async fn take_user_call(&self, day: &UserDay, cap: u32) -> Result<bool, StoreError>;

    /// Takes back one call counted on that day (it never reached Zoom).
    async fn give_back_user_call(&self, day: &UserDay) -> Result<(), StoreError>;

    /// Marks the day's calls of the user all spent (Zoom said so).
    async fn fill_user_day(&self, day: &UserDay, cap: u32) -> Result<(), StoreError>;

    /// Waits until every connection is closed, so a restart finds a clean database. Used at shutdown;
    /// the store must not be used afterwards. Stores without connections have nothing to do.
    async fn close(&self) {}

    /// What other gateways sharing this store changed of what each gateway caches, as they
    /// commit it; `None` for a store only this process uses.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }

    /// The Zoom budget every gateway on this store spends together; `None` for a store only
    /// this process uses, whose budget is the process's own.
    fn shared_budget(&self) -> Option<Arc<dyn SharedBudget>> {
        None
    }
}

/// Which gateway account owns a Zoom meeting, and who created it through the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MeetingRecord {
    pub meeting_id: i64,
    /// Gateway account name (`accounts[].name`), not Zoom's account id.
    pub account: AccountName,
    pub host_id: String,
    pub host_email: String,
    /// Caller name that created the meeting (or whose request found it by probing).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A route override: the platform team's word on which account a user is in. It beats the
/// config rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteRecord {
    /// Lowercased.
    pub email: String,
    pub account: AccountName,
    /// The admin who set it.
    pub set_by: String,
    pub set_at: DateTime<Utc>,
    /// Set without checking in Zoom that the user exists in the account.
    pub forced: bool,
}

/// One user of one account, as the directory sync read it from Zoom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirectoryEntry {
    /// Lowercased.
    pub email: String,
    pub account: AccountName,
    pub user_id: String,
    pub synced_at: DateTime<Utc>,
}

/// A create sent with a `request_id`, as its claim records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    pub caller: String,
    pub request_id: String,
    /// Hex SHA-256 of what the create asks for: the same id with another body is refused.
    pub body_sha256: String,
    pub at: DateTime<Utc>,
}

/// What [`Store::claim_create`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// No earlier try: this one may create.
    Claimed,
    /// An earlier try with the same id asked for something else.
    OtherBody,
    /// An earlier try is still running.
    Running { since: DateTime<Utc> },
    /// An earlier try ended (or died) without knowing whether Zoom created the meeting.
    Unknown { since: DateTime<Utc> },
    /// An earlier try created this meeting.
    Done {
        account: AccountName,
        meeting_id: i64,
    },
}

/// How a claimed create ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateEnd {
    Done {
        account: AccountName,
        meeting_id: i64,
    },
    /// Zoom may or may not have created it: a retry looks before it creates.
    Unknown,
    /// Zoom created nothing: the id is free again.
    Failed,
}

/// A change to what gateways cache of a shared store, announced to every gateway using it
/// (the one that made it too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The route override of a user (a lowercased email) was put or deleted.
    Route(String),
    /// A meeting's ledger entry was written or removed.
    Meeting(i64),
    /// A directory sync replaced what the directory holds of an account.
    Directory(AccountName),
    /// Announcements may have been missed (the connection to the store was lost): read again
    /// everything that is cached.
    Resync,
}

/// One host user's day, as the per-user daily cap counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDay {
    pub account: AccountName,
    /// The user's email or Zoom id, lowercased.
    pub user: String,
    /// Days since the epoch, in UTC by Zoom's clock.
    pub day: i64,
}

impl UserDay {
    pub fn new(account: &AccountName, user: &str, day: i64) -> Self {
        Self {
            account: account.clone(),
            user: user.to_lowercase(),
            day,
        }
    }
}

/// A change to the route overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteChange {
    Put(RouteRecord),
    /// Deletes the route of this (lowercased) email; deleting none is not an error.
    Delete(String),
}

/// What a completed change does to the meeting ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerChange {
    /// Nothing (the change failed, or does not move the meeting).
    None,
    /// The meeting is new, or its owner changed: upsert.
    Record(MeetingRecord),
    /// The meeting was deleted.
    Forget(i64),
}

/// The outcome of a change whose intent is in the store as audit record `intent_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub intent_id: i64,
    /// The whole final record: `id` is ignored, `at` and `caller` and `operation` are the intent's.
    pub record: AuditRecord,
    pub ledger: LedgerChange,
}

/// One audited decision: who asked for what, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Assigned by the store, increasing with each append; ignored on append.
    pub id: i64,
    pub at: DateTime<Utc>,
    pub caller: String,
    /// Operation name, e.g. `meetings.create`.
    pub operation: String,
    pub account: Option<String>,
    /// The Zoom user the request acted on: the user's or host's email once known, else the id or
    /// email as the caller named it.
    pub user: Option<String>,
    pub meeting_id: Option<i64>,
    pub outcome: Outcome,
    /// Short human-readable reason; never a secret or an upstream response body.
    pub detail: Option<String>,
}

/// How an audited request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Authorized and done. Also when Zoom applied a change and a later step failed; `detail`
    /// then says which.
    Allowed,
    /// Refused by policy. The operation never reached Zoom; at most a lookup of the owner did.
    Denied,
    /// Authorized, but the upstream call or the gateway failed.
    Failed,
    /// Authorized and sent to Zoom, and the gateway stopped before it learned the outcome (a
    /// crash, or a store that refused the final record until the gateway stopped).
    Unknown,
}

impl Outcome {
    /// Returns the stored text form: `allowed`, `denied` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = ParseOutcomeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allowed" => Ok(Outcome::Allowed),
            "denied" => Ok(Outcome::Denied),
            "failed" => Ok(Outcome::Failed),
            "unknown" => Ok(Outcome::Unknown),
            other => Err(ParseOutcomeError(other.to_owned())),
        }
    }
}

/// Text that is not one of the three outcomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome `{0}` (expected allowed, denied, failed or unknown)")]
pub struct ParseOutcomeError(String);

/// Narrows an audit query; every field that is set must match. `Default` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub caller: Option<String>,
    pub operation: Option<String>,
    pub account: Option<String>,
    pub user: Option<String>,
    pub meeting_id: Option<i64>,
    pub outcome: Option<Outcome>,
    /// Inclusive lower bound on `at`.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `at`, so consecutive windows never overlap.
    pub until: Option<DateTime<Utc>>,
    /// Only records listed after this one (its `at` and `id`): the next page.
    pub after: Option<(DateTime<Utc>, i64)>,
    /// At most this many records; see [`AuditFilter::effective_limit`].
    pub limit: Option<u32>,
}

impl AuditFilter {
    /// Returns the number of records the query may return: [`DEFAULT_AUDIT_LIMIT`] when unset,
    /// capped at [`MAX_AUDIT_LIMIT`]. `Some(0)` asks for nothing and gets nothing.
    pub fn effective_limit(&self) -> u32 {
        self.limit
            .unwrap_or(DEFAULT_AUDIT_LIMIT)
            .min(MAX_AUDIT_LIMIT)
    }
}

/// Why the store could not be opened or could not answer.
///
/// Messages name paths and operations, never bound values: those may be personal data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid store location: {0}")]
    InvalidLocation(String),
    #[error(
        "store backend `{0}` is not supported (use sqlite:PATH, sqlite::memory:, a file path or postgres://)"
    )]
    UnsupportedBackend(String),
    #[error("directory `{}` of the store file does not exist", .0.display())]
    MissingDirectory(PathBuf),
    #[error("cannot open store `{}`: {source}", path.display())]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("cannot migrate store `{}`: {source}", path.display())]
    Migrate {
        path: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
    #[error("store query `{operation}` failed: {source}")]
    Query {
        operation: &'static str,
        source: sqlx::Error,
    },
    #[error("store holds an unreadable value in {0}")]
    Corrupt(String),
    /// PostgreSQL cannot be reached, or refused the connection. Names no password.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(sqlx::Error),
    #[error("cannot migrate the PostgreSQL store: {0}")]
    MigrateDatabase(sqlx::migrate::MigrateError),
    /// The file was removed or replaced under the gateway: what it writes would be lost.
    #[error("store file `{}` was removed or replaced while open", .0.display())]
    Vanished(PathBuf),
}

impl StoreError {
    /// No connection to the database could be had at all (it is down, or every pooled
    /// connection stayed busy): trying again at once would only wait as long again.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            StoreError::Connect(_)
                | StoreError::Query {
                    source: sqlx::Error::PoolTimedOut,
                    ..
                }
        )
    }
}

/// Opens the store named by `location` ("sqlite:PATH", "sqlite::memory:", a bare file path or
/// a `postgres://` URL, with `password` for PostgreSQL), creating the file or tables as needed
/// and running migrations.
pub async fn open(
    location: &str,
    password: Option<&SecretString>,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match Location::parse(location)? {
        Location::SqliteMemory => Arc::new(SqliteStore::open_in_memory().await?),
        Location::SqliteFile(path) => {
            Arc::new(SqliteStore::open_file(&path, Durability::PowerSafe).await?)
        }
        Location::Postgres(url) => Arc::new(PostgresStore::connect(&url, password, None).await?),
    })
}

/// Whether `location` names a PostgreSQL store.
pub fn is_postgres(location: &str) -> bool {
    matches!(Location::parse(location), Ok(Location::Postgres(_)))
}

/// Resolves a store location read from a config file: checked as [`open`] would check it, with
/// a relative SQLite path taken from `base_dir` (the file's directory), not the working directory.
pub fn resolve_location(location: &str, base_dir: &Path) -> Result<String, StoreError> {
    Ok(match Location::parse(location)? {
        Location::SqliteMemory => "sqlite::memory:".to_owned(),
        Location::SqliteFile(path) => format!("sqlite:{}", base_dir.join(path).display()),
        Location::Postgres(url) => url,
    })
}

/// A parsed store location.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    SqliteMemory,
    SqliteFile(PathBuf),
    /// A `postgres://` or `postgresql://` URL with no password in it.
    Postgres(String),
}

impl Location {
    fn parse(location: &str) -> Result<Self, StoreError> {
        let location = location.trim();
        let rest = if let Some(rest) = location
            .strip_prefix("sqlite://")
            .or_else(|| location.strip_prefix("sqlite:"))
        {
            rest
        } else if let Some(scheme @ ("postgres" | "postgresql")) = url_scheme(location) {
            // Checked here, never echoed: the URL may hold a password.
            let url = reqwest::Url::parse(location)
                .map_err(|_| StoreError::InvalidLocation(format!("not a valid {scheme}:// URL")))?;
            if url.password().is_some() {
                return Err(StoreError::InvalidLocation(
                    "a PostgreSQL URL must not carry a password: use store_password_env or \
                     store_password_file"
                        .into(),
                ));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(StoreError::InvalidLocation(
                    "a PostgreSQL URL needs a host".into(),
                ));
            }
            return Ok(Location::Postgres(location.to_owned()));
        } else if let Some(scheme) = url_scheme(location) {
            // Names only the scheme: the rest of a database URL may hold a password.
            return Err(StoreError::UnsupportedBackend(scheme.to_owned()));
        } else {
            location
        };
        if rest == ":memory:" {
            return Ok(Location::SqliteMemory);
        }
        if rest.is_empty() {
            return Err(StoreError::InvalidLocation("the path is empty".into()));
        }
        if rest.contains('?') {
            // Not echoed: what follows `?` may be a credential.
            return Err(StoreError::InvalidLocation(
                "query parameters are not supported".into(),
            ));
        }
        Ok(Location::SqliteFile(Path::new(rest).to_path_buf()))
    }
}

/// Returns the scheme of `location` if it starts like a URL (`postgres:…`), so another database is
/// refused rather than used as a file name. A file path with a `:` before any `/` needs `sqlite:`.
fn url_scheme(location: &str) -> Option<&str> {
    let (scheme, _) = location.split_once(':')?;
    let is_scheme = scheme.len() >= 2
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    is_scheme.then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_round_trips_through_text() {
        for outcome in [
            Outcome::Allowed,
            Outcome::Denied,
            Outcome::Failed,
            Outcome::Unknown,
        ] {
            assert_eq!(outcome.to_string().parse::<Outcome>(), Ok(outcome));
        }
        assert!("Allowed".parse::<Outcome>().is_err());
        assert!("".parse::<Outcome>().is_err());
    }

    #[test]
    fn locations_resolve_against_the_config_directory() {
        let base = Path::new("/srv");
        let resolve = |location| resolve_location(location, base).unwrap();
        assert_eq!(resolve("sqlite:data/z.db"), "sqlite:/srv/data/z.db");
        assert_eq!(resolve("z.db"), "sqlite:/srv/z.db");
        assert_eq!(resolve("sqlite:/var/z.db"), "sqlite:/var/z.db");
        assert_eq!(resolve("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(resolve("sqlite://z.db"), "sqlite:/srv/z.db");
    }

    #[test]
    fn location_accepts_sqlite_forms_and_bare_paths() {
        assert_eq!(
            Location::parse("sqlite::memory:").ok(),
            Some(Location::SqliteMemory)
        );
        assert_eq!(
            Location::parse("sqlite:data/zoomgate.db").ok(),
            Some(Location::SqliteFile("data/zoomgate.db".into()))
        );
        assert_eq!(
            Location::parse("sqlite:///var/lib/zoomgate.db").ok(),
            Some(Location::SqliteFile("/var/lib/zoomgate.db".into()))
        );
        assert_eq!(
            Location::parse("/var/lib/zoomgate/state.db").ok(),
            Some(Location::SqliteFile("/var/lib/zoomgate/state.db".into()))
        );
        assert_eq!(
            Location::parse("state.db").ok(),
            Some(Location::SqliteFile("state.db".into()))
        );
    }

    #[test]
    fn location_refuses_other_backends_without_echoing_the_url() {
        let err = Location::parse("mysql://zoomgate:hunter2@db/zoomgate").unwrap_err();
        assert!(matches!(&err, StoreError::UnsupportedBackend(s) if s == "mysql"));
        assert!(!err.to_string().contains("hunter2"));
        assert!(matches!(
            Location::parse("mysql:whatever"),
            Err(StoreError::UnsupportedBackend(_))
        ));
    }

    #[test]
    fn a_postgres_location_is_a_url_without_a_password() {
        for url in [
            "postgres://zoomgate@db:5432/zoomgate?sslmode=require",
            "postgresql://zoomgate@db/zoomgate",
        ] {
            assert_eq!(
                Location::parse(url).ok(),
                Some(Location::Postgres(url.into()))
            );
        }
        for bad in [
            "postgres://zoomgate:hunter2@db/zoomgate",
            "postgres:///zoomgate",
            "postgres://zoomgate:hunter2@",
        ] {
            let err = Location::parse(bad).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidLocation(_)),
                "{bad}: {err}"
            );
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn location_refuses_empty_paths_and_query_parameters() {
        assert!(matches!(
            Location::parse("sqlite:"),
            Err(StoreError::InvalidLocation(_))
        ));
        assert!(matches!(
            Location::parse(""),
            Err(StoreError::InvalidLocation(_))
        ));
        assert!(matches!(
            Location::parse("sqlite:a.db?mode=ro"),
            Err(StoreError::InvalidLocation(_))
        ));
    }

    #[test]
    fn filter_limit_defaults_and_caps() {
        let mut filter = AuditFilter::default();
        assert_eq!(filter.effective_limit(), DEFAULT_AUDIT_LIMIT);
        filter.limit = Some(7);
        assert_eq!(filter.effective_limit(), 7);
        filter.limit = Some(u32::MAX);
        assert_eq!(filter.effective_limit(), MAX_AUDIT_LIMIT);
    }
}

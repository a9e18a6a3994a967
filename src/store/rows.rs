//! Rows read back into records, for every SQL backend: the tables and columns are the same in
//! each, and so is what a value that cannot be read means (`StoreError::Corrupt`).

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use super::{
    AuditFilter, AuditRecord, Claim, CreateRequest, DirectoryEntry, MeetingRecord, Outcome,
    RouteRecord, StoreError,
};

/// What the decoders read of a row: the column types the store's tables hold, in any backend
/// (timestamps are unix milliseconds, so integers).
pub(super) trait Columns {
    fn text(&self, name: &str) -> Result<String, sqlx::Error>;
    fn maybe_text(&self, name: &str) -> Result<Option<String>, sqlx::Error>;
    fn number(&self, name: &str) -> Result<i64, sqlx::Error>;
    fn maybe_number(&self, name: &str) -> Result<Option<i64>, sqlx::Error>;
    fn flag(&self, name: &str) -> Result<bool, sqlx::Error>;
}

impl<R> Columns for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, name: &str) -> Result<String, sqlx::Error> {
        self.try_get(name)
    }

    fn maybe_text(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(name)
    }

    fn number(&self, name: &str) -> Result<i64, sqlx::Error> {
        self.try_get(name)
    }

    fn maybe_number(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(name)
    }

    fn flag(&self, name: &str) -> Result<bool, sqlx::Error> {
        self.try_get(name)
    }
}

const AUDIT_COLUMNS: &str =
    "id, at, caller, operation, account, zoom_user, meeting_id, outcome, detail";

/// The audit records `filter` selects, newest first, at most `limit`; placeholders are the
/// backend's own.
pub(super) fn audit_query<'a, DB>(filter: &'a AuditFilter, limit: u32) -> QueryBuilder<'a, DB>
where
    DB: Database,
    DB::Arguments<'a>: Default,
    &'a String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut query = QueryBuilder::<DB>::new(format!("SELECT {AUDIT_COLUMNS} FROM audit"));
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
    if let Some((at, id)) = filter.after {
        conditions
            .next(&mut query, "(at, id) < (")
            .push_bind(at.timestamp_millis())
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    query
        .push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(i64::from(limit));
    query
}

/// Joins WHERE conditions: ` WHERE ` before the first, ` AND ` before the others.
#[derive(Default)]
struct Conditions {
    any: bool,
}

impl Conditions {
    fn next<'q, 'args, DB: Database>(
        &mut self,
        query: &'q mut QueryBuilder<'args, DB>,
        condition: &str,
    ) -> &'q mut QueryBuilder<'args, DB> {
        query.push(if self.any { " AND " } else { " WHERE " });
        self.any = true;
        query.push(condition)
    }
}
use crate::accounts::AccountName;

/// What an earlier claim of the same request id left, as [`Store::claim_create`] reports it.
pub(super) fn earlier_claim(
    row: &impl Columns,
    request: &CreateRequest,
    stale_before: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    let body = row
        .text("body_sha256")
        .map_err(query_error("claim_create"))?;
    if body != request.body_sha256 {
        return Ok(Claim::OtherBody);
    }
    let state = row.text("state").map_err(query_error("claim_create"))?;
    let since = from_millis(
        row.number("created_at")
            .map_err(query_error("claim_create"))?,
        || "create_requests.created_at".into(),
    )?;
    Ok(match state.as_str() {
        "running" if since >= stale_before => Claim::Running { since },
        "running" | "unknown" => Claim::Unknown { since },
        "done" => {
            let account = row
                .maybe_text("account")
                .map_err(query_error("claim_create"))?;
            let meeting_id = row
                .maybe_number("meeting_id")
                .map_err(query_error("claim_create"))?;
            match (account.as_deref().map(AccountName::parse), meeting_id) {
                (Some(Ok(account)), Some(meeting_id)) => Claim::Done {
                    account,
                    meeting_id,
                },
                _ => {
                    return Err(StoreError::Corrupt(
                        "a done create without its meeting".into(),
                    ));
                }
            }
        }
        other => {
            return Err(StoreError::Corrupt(format!(
                "create request state `{other}`"
            )));
        }
    })
}

pub(super) fn directory_from_row(row: &impl Columns) -> Result<DirectoryEntry, StoreError> {
    let read = || -> Result<_, sqlx::Error> {
        Ok((
            row.text("email")?,
            row.text("account")?,
            row.text("user_id")?,
            row.number("synced_at")?,
        ))
    };
    let (email, account, user_id, synced_at) = read().map_err(query_error("directory"))?;
    let account = AccountName::parse(&account)
        .map_err(|_| StoreError::Corrupt("directory.account".to_owned()))?;
    Ok(DirectoryEntry {
        email,
        account,
        user_id,
        synced_at: from_millis(synced_at, || "directory.synced_at".to_owned())?,
    })
}

pub(super) fn route_from_row(row: &impl Columns) -> Result<RouteRecord, StoreError> {
    let read = || -> Result<_, sqlx::Error> {
        Ok((
            row.text("email")?,
            row.text("account")?,
            row.text("set_by")?,
            row.number("set_at")?,
            row.flag("forced")?,
        ))
    };
    let (email, account, set_by, set_at, forced) = read().map_err(query_error("route"))?;
    let account = AccountName::parse(&account)
        .map_err(|_| StoreError::Corrupt("user_routes.account".to_owned()))?;
    Ok(RouteRecord {
        email,
        account,
        set_by,
        set_at: from_millis(set_at, || "user_routes.set_at".to_owned())?,
        forced,
    })
}

/// Wraps a driver error with the operation's name; the error never carries bound values.
pub(super) fn query_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { operation, source }
}

pub(super) fn meeting_from_row(row: &impl Columns) -> Result<MeetingRecord, StoreError> {
    let read = || -> Result<_, sqlx::Error> {
        Ok((
            row.number("meeting_id")?,
            row.text("account")?,
            row.text("host_id")?,
            row.text("host_email")?,
            row.text("created_by")?,
            row.number("created_at")?,
        ))
    };
    let (meeting_id, account, host_id, host_email, created_by, created_at) =
        read().map_err(query_error("meeting"))?;
    let account = AccountName::parse(&account)
        .map_err(|_| StoreError::Corrupt(format!("meetings.account of meeting {meeting_id}")))?;
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

pub(super) fn audit_from_row(row: &impl Columns) -> Result<AuditRecord, StoreError> {
    let read = || -> Result<_, sqlx::Error> {
        Ok((
            row.number("id")?,
            row.number("at")?,
            row.text("caller")?,
            row.text("operation")?,
            row.maybe_text("account")?,
            row.maybe_text("zoom_user")?,
            row.maybe_number("meeting_id")?,
            row.text("outcome")?,
            row.maybe_text("detail")?,
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
pub(super) fn from_millis(
    millis: i64,
    what: impl FnOnce() -> String,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| StoreError::Corrupt(what()))
}

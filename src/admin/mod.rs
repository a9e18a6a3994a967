//! The platform team's use cases: the accounts view, route overrides, explain and the audit
//! trail. Every front end (the gRPC Admin service, later others) calls these; each checks the
//! admin role of the caller first, and each change is audited with the admin's name.

pub mod explain;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::accounts::{AccountName, LiveAccounts, Plan};
use crate::error::{AdminObject, Error, TargetKind};
use crate::meetings::{
    Meetings, RequestContext, RequestCounts, RequestId, SyncReport, UserRef, validate,
};
use crate::policy::{AdminRole, Caller, LivePolicy, Operation};
use crate::quota::{Allowance, CircuitState};
use crate::routing::{RouteOverrides, RouteSource};
use crate::store::{AuditFilter, AuditRecord, Outcome, RouteChange, RouteRecord, Store};
use crate::token::{TokenCache, TokenState};
use crate::zoom::RateCategory;

use self::explain::{ExplainTarget, Explanation, Placement};

/// Most routes or audit records one page holds, whatever the request asks for.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Page size when the request names none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// An account as the platform team sees it. Holds no secret and no token.
#[derive(Clone, Debug)]
pub struct AccountView {
    pub name: AccountName,
    pub zoom_account_id: String,
    pub plan: Plan,
    pub token: TokenState,
    /// Lookups that fail now without asking Zoom, with the reason they answer.
    pub failure_marks: Vec<(TargetKind, &'static str)>,
    pub requests: RequestCounts,
    pub budget: BudgetView,
}

/// How an account's Zoom budget stands (see [`crate::quota`]).
#[derive(Clone, Debug)]
pub struct BudgetView {
    pub circuit: CircuitState,
    pub waiting: usize,
    pub categories: Vec<CategoryView>,
}

/// One rate-limit category of an account's budget.
#[derive(Clone, Debug)]
pub struct CategoryView {
    pub category: RateCategory,
    /// What may be spent.
    pub allowance: Allowance,
    /// How long Zoom's last 429 still holds it back.
    pub paused_for: Option<Duration>,
    /// Calls left of the daily cap today; `None` without a cap.
    pub daily_left: Option<u64>,
}

/// One page of a listing, and the token of the next one (empty on the last).
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

impl<T> Page<T> {
    /// A page from up to `size + 1` items read: the one past the page only tells that another
    /// page follows, and `token_of` the last item kept names where it starts.
    fn of(mut items: Vec<T>, size: u32, token_of: impl Fn(&T) -> String) -> Self {
        let next_page_token = if items.len() > size as usize {
            items.truncate(size as usize);
            items.last().map(token_of).unwrap_or_default()
        } else {
            String::new()
        };
        Self {
            items,
            next_page_token,
        }
    }
}

/// What an explain request asks.
#[derive(Clone, Debug)]
pub struct ExplainQuery {
    pub caller: String,
    pub target: ExplainTarget,
    pub operation: Operation,
    pub probe: bool,
}

/// One Admin API call: who asks, under which request id, until when.
pub struct AdminContext {
    pub caller: Arc<Caller>,
    pub request_id: RequestId,
    pub deadline: Instant,
}

impl AdminContext {
    /// The context of a Zoom call made for this admin call, as `caller` doing `op` would make
    /// it: same request id, same deadline.
    fn acting_as(&self, caller: Arc<Caller>, op: Operation) -> RequestContext {
        let timeout = self.deadline.saturating_duration_since(Instant::now());
        RequestContext::new(caller, op, Some(self.request_id.as_str()), timeout)
    }
}

/// The Admin use cases over the gateway's parts; cloning is shallow.
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

struct Inner {
    accounts: LiveAccounts,
    policy: LivePolicy,
    meetings: Meetings,
    tokens: TokenCache,
    store: Arc<dyn Store>,
    overrides: Arc<RouteOverrides>,
    /// Held across a route's store write and its in-memory update, so that two admins changing
    /// routes at once leave memory as the store is. Route changes are rare.
    route_changes: tokio::sync::Mutex<()>,
}

impl Admin {
    pub fn new(
        accounts: LiveAccounts,
        policy: LivePolicy,
        meetings: Meetings,
        tokens: TokenCache,
        store: Arc<dyn Store>,
        overrides: Arc<RouteOverrides>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                accounts,
                policy,
                meetings,
                tokens,
                store,
                overrides,
                route_changes: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn list_accounts(&self, cx: &AdminContext) -> Result<Vec<AccountView>, Error> {
        require(&cx.caller, AdminRole::Read)?;
        Ok(self.account_states())
    }

    /// Every account's state, with no caller to check: for the gateway's own metrics.
    pub fn account_states(&self) -> Vec<AccountView> {
        let accounts = self.inner.accounts.load();
        accounts
            .names()
            .filter_map(|name| self.account_view(name))
            .collect()
    }

    pub fn get_account(&self, cx: &AdminContext, name: &str) -> Result<AccountView, Error> {
        require(&cx.caller, AdminRole::Read)?;
        let accounts = self.inner.accounts.load();
        accounts
            .find(name)
            .and_then(|account| self.account_view(&account.name))
            .ok_or_else(|| not_found(AdminObject::Account, name))
    }

    fn account_view(&self, name: &AccountName) -> Option<AccountView> {
        let accounts = self.inner.accounts.load();
        let account = accounts.get(name)?;
        let meetings = &self.inner.meetings;
        Some(AccountView {
            name: name.clone(),
            zoom_account_id: account.zoom_account_id.clone(),
            plan: account.plan,
            token: self.inner.tokens.state(name)?,
            failure_marks: meetings
                .failing_lookups(name)
                .into_iter()
                .map(|(kind, error)| (kind, error.reason()))
                .collect(),
            requests: meetings.request_counts(name).unwrap_or_default(),
            budget: BudgetView {
                circuit: meetings.circuit(name),
                waiting: meetings.waiting_calls(name),
                categories: [
                    RateCategory::Light,
                    RateCategory::Medium,
                    RateCategory::Heavy,
                ]
                .into_iter()
                .map(|category| {
                    let allowance = Allowance::of(account, category);
                    CategoryView {
                        category,
                        allowance,
                        paused_for: meetings.paused_for(name, category),
                        daily_left: allowance
                            .daily
                            .map(|cap| cap.saturating_sub(meetings.spent_today(name, category))),
                    }
                })
                .collect(),
            },
        })
    }

    pub async fn get_route(&self, cx: &AdminContext, email: &str) -> Result<RouteRecord, Error> {
        require(&cx.caller, AdminRole::Read)?;
        let email = route_email(email)?;
        self.inner
            .store
            .route(&email)
            .await
            .map_err(store_error)?
            .ok_or_else(|| not_found(AdminObject::Route, &email))
    }

    /// Sends `email` to `account` from now on. Unless `force`, Zoom must know the user there.
    pub async fn put_route(
        &self,
        cx: &AdminContext,
        email: &str,
        account: &str,
        force: bool,
    ) -> Result<RouteRecord, Error> {
        let operation = "admin.put_route";
        self.audit_denial(cx, operation, require(&cx.caller, AdminRole::Write))
            .await?;
        let email = route_email(email)?;
        let account = self
            .inner
            .accounts
            .load()
            .find(account)
            .map(|account| account.name.clone())
            .ok_or_else(|| not_found(AdminObject::Account, account))?;
        let zoom = cx.acting_as(cx.caller.clone(), Operation::Read);
        if !force
            && !self
                .inner
                .meetings
                .user_exists(&zoom, &account, &email)
                .await?
        {
            return Err(Error::UserNotInAccount { email, account });
        }
        let route = RouteRecord {
            email: email.clone(),
            account: account.clone(),
            set_by: cx.caller.name.clone(),
            set_at: Utc::now(),
            forced: force,
        };
        let mut record = admin_record(cx, operation, Some(&account), &email);
        record.detail = force.then(|| "forced: not checked in zoom".to_owned());
        let _one_at_a_time = self.inner.route_changes.lock().await;
        let before = self
            .inner
            .store
            .change_route(&RouteChange::Put(route.clone()), &record)
            .await
            .map_err(store_error)?;
        self.inner.overrides.set(email, account);
        if let Some(before) = before {
            tracing::info!(from = %before.account, to = %route.account, "route override replaced");
        }
        Ok(route)
    }

    /// Removes the route override of `email`; its user is routed by the config rules again.
    pub async fn delete_route(&self, cx: &AdminContext, email: &str) -> Result<RouteRecord, Error> {
        let operation = "admin.delete_route";
        self.audit_denial(cx, operation, require(&cx.caller, AdminRole::Write))
            .await?;
        let email = route_email(email)?;
        let _one_at_a_time = self.inner.route_changes.lock().await;
        let existing = self
            .inner
            .store
            .route(&email)
            .await
            .map_err(store_error)?
            .ok_or_else(|| not_found(AdminObject::Route, &email))?;
        let record = admin_record(cx, operation, Some(&existing.account), &email);
        let change = RouteChange::Delete(email.clone());
        let removed = self
            .inner
            .store
            .change_route(&change, &record)
            .await
            .map_err(store_error)?;
        self.inner.overrides.remove(&email);
        removed.ok_or_else(|| not_found(AdminObject::Route, &email))
    }

    pub async fn list_routes(
        &self,
        cx: &AdminContext,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<RouteRecord>, Error> {
        require(&cx.caller, AdminRole::Read)?;
        let size = page_size_of(page_size)?;
        let after = (!page_token.is_empty())
            .then(|| route_email(page_token))
            .transpose()
            .map_err(|_| Error::invalid("page_token", "is not a token this listing gave"))?;
        // One more than the page, to know whether another page follows.
        let routes = self
            .inner
            .store
            .routes(after.as_deref(), size + 1)
            .await
            .map_err(store_error)?;
        Ok(Page::of(routes, size, |r| r.email.clone()))
    }

    /// Explains `query` from what the gateway holds; asks Zoom only if `query.probe`.
    pub async fn explain(
        &self,
        cx: &AdminContext,
        query: ExplainQuery,
    ) -> Result<Explanation, Error> {
        require(&cx.caller, AdminRole::Read)?;
        let caller = self
            .inner
            .policy
            .load()
            .caller(&query.caller)
            .ok_or_else(|| not_found(AdminObject::Caller, &query.caller))?;
        let op = query.operation;
        // A probe runs as the explained caller's request would, within this request's deadline.
        let probe = query.probe.then(|| cx.acting_as(caller.clone(), op));
        let meetings = &self.inner.meetings;
        let (placement, email) = match &query.target {
            ExplainTarget::UserEmail(email) => {
                self.place_user(&caller, op, UserRef::Email(email.clone()), probe)
                    .await?
            }
            ExplainTarget::UserId(id) => {
                self.place_user(&caller, op, UserRef::Id(id.clone()), probe)
                    .await?
            }
            ExplainTarget::Meeting(id) => match (meetings.ledger_record(*id).await?, probe) {
                (Some(record), _) => {
                    let placement = Placement::Known {
                        account: record.account.clone(),
                        source: RouteSource::Ledger,
                    };
                    (placement, Some(record.host_email.clone()))
                }
                (None, Some(cx)) => {
                    let (found, asked) = meetings.probe_meeting_for(&cx, *id).await?;
                    let email = found.as_ref().map(|record| record.host_email.clone());
                    let found = found.map(|record| record.account.clone());
                    (Placement::Probed { found, asked }, email)
                }
                (None, None) => (explain::meeting_probe(&caller, op), None),
            },
        };
        Ok(Explanation::decide(&caller, op, placement, email))
    }

    /// Places a user as the request path would: from what the gateway holds, else by a probe
    /// with `probe` (the explained caller's context) when given. Returns the email the grants
    /// are checked against, when known.
    async fn place_user(
        &self,
        caller: &Caller,
        op: Operation,
        user: UserRef,
        probe: Option<RequestContext>,
    ) -> Result<(Placement, Option<String>), Error> {
        let meetings = &self.inner.meetings;
        if let Some((location, source)) = meetings.known_location(&user) {
            let email = (!location.email.is_empty()).then_some(location.email);
            let account = location.account;
            return Ok((Placement::Known { account, source }, email));
        }
        let asked_email = match &user {
            UserRef::Email(email) => Some(email.clone()),
            UserRef::Id(_) => None,
        };
        let needed = explain::user_probe(caller, op, asked_email.as_deref());
        match (needed, probe) {
            (Placement::ProbeNeeded { accounts }, Some(cx)) if !accounts.is_empty() => {
                let (found, asked) = meetings.probe_user_for(&cx, &user, &accounts).await?;
                let email = found
                    .as_ref()
                    .map(|location| location.email.clone())
                    .or(asked_email);
                let found = found.map(|location| location.account);
                Ok((Placement::Probed { found, asked }, email))
            }
            (needed, _) => Ok((needed, asked_email)),
        }
    }

    /// Audit records matching `filter`, newest first, one page at a time.
    pub async fn list_audit(
        &self,
        cx: &AdminContext,
        mut filter: AuditFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<AuditRecord>, Error> {
        require(&cx.caller, AdminRole::Read)?;
        let size = page_size_of(page_size)?;
        filter.after = (!page_token.is_empty())
            .then(|| parse_audit_token(page_token))
            .transpose()?;
        filter.limit = Some(size + 1);
        let records = self.inner.store.audit(&filter).await.map_err(store_error)?;
        Ok(Page::of(records, size, |r| {
            format!("{}.{}", r.at.timestamp_millis(), r.id)
        }))
    }

    /// Syncs the directory now; audited with the admin's name and what it found.
    pub async fn sync_directory(&self, cx: &AdminContext) -> Result<SyncReport, Error> {
        let operation = "admin.sync_directory";
        self.audit_denial(cx, operation, require(&cx.caller, AdminRole::Write))
            .await?;
        let zoom = cx.acting_as(cx.caller.clone(), Operation::Read);
        let report = self.inner.meetings.sync_directory(&zoom).await;
        let failed = report.accounts.iter().filter(|a| a.error.is_some()).count();
        let mut record = admin_record(cx, operation, None, "");
        record.user = None;
        record.detail = Some(format!(
            "{} accounts, {failed} failed, {} conflicts",
            report.accounts.len(),
            report.conflicts.len()
        ));
        if let Err(error) = self.inner.store.append_audit(&record).await {
            tracing::warn!(%error, "the audit record of a directory sync was not written");
        }
        Ok(report)
    }

    pub async fn last_sync(&self, cx: &AdminContext) -> Result<SyncReport, Error> {
        require(&cx.caller, AdminRole::Read)?;
        self.inner
            .meetings
            .last_sync()
            .await
            .ok_or_else(|| not_found(AdminObject::SyncReport, "since start"))
    }

    /// Audits a change refused for lack of the admin role, then passes the refusal on.
    async fn audit_denial(
        &self,
        cx: &AdminContext,
        operation: &str,
        allowed: Result<(), Error>,
    ) -> Result<(), Error> {
        let Err(error) = allowed else {
            return Ok(());
        };
        let mut record = admin_record(cx, operation, None, "");
        record.user = None;
        record.outcome = Outcome::Denied;
        record.detail = Some(error.reason().to_owned());
        if let Err(store) = self.inner.store.append_audit(&record).await {
            tracing::warn!(error = %store, "the audit record of a refused admin change was not written");
        }
        Err(error)
    }
}

fn require(caller: &Caller, needed: AdminRole) -> Result<(), Error> {
    if caller.is_admin(needed) {
        Ok(())
    } else {
        Err(Error::AdminDenied {
            caller: caller.name.clone(),
            needed,
        })
    }
}

fn not_found(kind: AdminObject, name: &str) -> Error {
    Error::AdminNotFound {
        kind,
        name: name.to_owned(),
    }
}

fn store_error(error: crate::store::StoreError) -> Error {
    Error::StoreUnavailable(error.to_string())
}

fn route_email(email: &str) -> Result<String, Error> {
    match validate::user_email(email)? {
        UserRef::Email(email) => Ok(email),
        UserRef::Id(_) => Err(Error::invalid("user_email", "is not an email address")),
    }
}

fn page_size_of(page_size: i32) -> Result<u32, Error> {
    match u32::try_from(page_size) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) => Ok(size.min(MAX_PAGE_SIZE)),
        Err(_) => Err(Error::invalid("page_size", "must not be negative")),
    }
}

/// Reads `<unix millis>.<id>` of the last record of the previous page.
fn parse_audit_token(token: &str) -> Result<(DateTime<Utc>, i64), Error> {
    let bad = || Error::invalid("page_token", "is not a token this listing gave");
    let (millis, id) = token.split_once('.').ok_or_else(bad)?;
    let at = millis
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

fn admin_record(
    cx: &AdminContext,
    operation: &str,
    account: Option<&AccountName>,
    user: &str,
) -> AuditRecord {
    AuditRecord {
        id: 0,
        at: Utc::now(),
        caller: cx.caller.name.clone(),
        operation: operation.to_owned(),
        account: account.map(AccountName::to_string),
        user: Some(user.to_owned()),
        meeting_id: None,
        outcome: Outcome::Allowed,
        detail: None,
    }
}

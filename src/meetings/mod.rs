//! The request path for meetings, shared by every front end: find the owning account
//! ([`resolve`]), authorize the caller ([`authorize`]), call Zoom through the one choke point
//! ([`upstream`]), redact what the caller may not see, and record ledger and audit ([`audit`]).
//!
//! Order matters: no Zoom call happens for a target the caller may not touch, and a target that
//! exists outside the caller's grants answers exactly like one that does not exist.

mod audit;
mod authorize;
mod context;
mod in_flight;
mod ledger;
mod outcomes;
mod probes;
mod redact;
mod requests;
mod resolve;
mod sync;
mod upstream;
pub mod validate;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use chrono::Utc;
use serde_json::{Map, Value};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::accounts::{AccountName, LiveAccounts};
use crate::error::{Error, TargetKind};
use crate::policy::Caller;
use crate::quota::{CircuitState, Quota};
use crate::routing::{UserLocation, UserRouting};
use crate::store::{LedgerChange, MeetingRecord, Recorder};
use crate::telemetry::metrics::Metrics;
use crate::token::TokenCache;
use crate::zoom::{
    CreateMeeting, DeleteMeeting, EndMeeting, ListMeetings, ListMeetingsOf, MeetingPage,
    UpdateMeeting, ZoomClient, ZoomMeeting,
};

use self::audit::{AuditContext, Progress};
pub use self::authorize::probe_accounts;
pub use self::context::{RequestContext, RequestId, Routed};
use self::in_flight::{Admitted, InFlight};
use self::ledger::LedgerCache;
use self::outcomes::OutcomeCounts;
pub use self::outcomes::RequestCounts;
use self::probes::Probes;
use self::redact::redact;
use self::requests::CreateRequests;
pub use self::sync::{AccountSync, SyncReport};
use self::upstream::{Target, Upstream};

/// A request future polled in place; dropped unfinished, it finishes in a tracked task.
struct Detached<'a, T: 'static> {
    future: Option<Pin<Box<dyn Future<Output = T> + Send + 'static>>>,
    tasks: &'a TaskTracker,
}

impl<T: 'static> Future for Detached<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let future = self.future.as_mut().expect("polled after completion");
        let output = ready!(future.as_mut().poll(cx));
        self.future = None;
        Poll::Ready(output)
    }
}

impl<T: 'static> Drop for Detached<'_, T> {
    fn drop(&mut self) {
        let Some(future) = self.future.take() else {
            return;
        };
        // Without a runtime (it is shutting down) there is nowhere left to finish the request.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.tasks.spawn_on(
                async move {
                    let _ = future.await;
                },
                &runtime,
            );
        }
    }
}

/// How a request names a Zoom user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRef {
    /// A lowercased email address.
    Email(String),
    /// Zoom's user id.
    Id(String),
}

impl UserRef {
    fn key(&self) -> &str {
        match self {
            UserRef::Email(key) | UserRef::Id(key) => key,
        }
    }
}

/// A meeting as the caller may see it, with the account that owns it.
#[derive(Clone, Debug)]
pub struct MeetingView {
    pub account: AccountName,
    pub meeting: ZoomMeeting,
}

/// One page of a user's meetings.
#[derive(Clone, Debug)]
pub struct MeetingList {
    pub account: AccountName,
    pub meetings: Vec<ZoomMeeting>,
    pub next_page_token: String,
    pub total_records: i64,
}

/// What the request path takes from the config.
#[derive(Clone, Copy, Debug)]
pub struct MeetingsSettings {
    /// `limits.max_requests_in_flight_per_caller`.
    pub max_in_flight_per_caller: usize,
    /// `request_timeout_secs`: no request lasts longer.
    pub request_timeout: std::time::Duration,
    /// `request_id_retention_hours`: how long a create's `request_id` is remembered.
    pub request_id_retention: std::time::Duration,
}

/// The meetings service of the gateway; cloning is shallow.
#[derive(Clone)]
pub struct Meetings {
    inner: Arc<Inner>,
}

struct Inner {
    accounts: LiveAccounts,
    routing: UserRouting,
    upstream: Upstream,
    recorder: Arc<Recorder>,
    /// Read-through cache of the store's meeting ledger; written through on every change.
    ledger: LedgerCache,
    probes: Probes,
    outcomes: OutcomeCounts,
    /// The last directory sync's report; held while a sync runs, so one runs at a time.
    sync: tokio::sync::Mutex<Option<SyncReport>>,
    in_flight: InFlight,
    requests: CreateRequests,
    /// The request tasks, so that shutdown can wait for the ones whose callers left.
    tasks: TaskTracker,
}

impl Meetings {
    pub fn new(
        accounts: LiveAccounts,
        routing: UserRouting,
        zoom: ZoomClient,
        tokens: TokenCache,
        recorder: Arc<Recorder>,
        settings: MeetingsSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        // The per-user daily counts live in the store, so that a restart does not reset them.
        let quota = Quota::new(zoom.clock().clone(), recorder.store().clone());
        Self {
            inner: Arc::new(Inner {
                probes: Probes::new(&accounts.load()),
                outcomes: OutcomeCounts::new(&accounts.load()),
                sync: tokio::sync::Mutex::new(None),
                upstream: Upstream::new(zoom, tokens, accounts.clone(), quota, metrics.clone()),
                accounts,
                routing,
                recorder,
                ledger: LedgerCache::new(ledger::LEDGER_CACHE_ENTRIES),
                in_flight: InFlight::new(settings.max_in_flight_per_caller),
                requests: CreateRequests::new(
                    settings.request_id_retention,
                    settings.request_timeout,
                ),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// How the requests routed to `account` ended since start.
    pub fn request_counts(&self, account: &AccountName) -> Option<RequestCounts> {
        self.inner.outcomes.get(account)
    }

    /// The lookups into `account` that fail now without asking Zoom, and why (see [`probes`]).
    pub fn failing_lookups(&self, account: &AccountName) -> Vec<(TargetKind, Error)> {
        [TargetKind::User, TargetKind::Meeting]
            .into_iter()
            .filter_map(|kind| Some((kind, self.inner.probes.failure(account, kind)?)))
            .collect()
    }

    /// The circuit breaker's state of `account`.
    pub fn circuit(&self, account: &AccountName) -> CircuitState {
        self.inner.upstream.quota().circuit(account)
    }

    /// How long Zoom's last 429 still holds `category` of `account` back.
    pub fn paused_for(
        &self,
        account: &AccountName,
        category: crate::zoom::RateCategory,
    ) -> Option<std::time::Duration> {
        self.inner.upstream.quota().paused_for(account, category)
    }

    /// Calls of `category` admitted into `account` today (Zoom's day), in categories with a
    /// daily cap.
    pub fn spent_today(&self, account: &AccountName, category: crate::zoom::RateCategory) -> u64 {
        self.inner.upstream.quota().spent_today(account, category)
    }

    /// Calls waiting for a place in `account`'s Zoom budget.
    pub fn waiting_calls(&self, account: &AccountName) -> usize {
        self.inner.upstream.quota().waiting(account)
    }

    /// Shutting down: requests waiting for Zoom's budget that could not go by `by` are refused
    /// with UNAVAILABLE now, instead of being cut at the end of the grace period.
    pub fn drain(&self, by: tokio::time::Instant) {
        self.inner.upstream.quota().drain(by);
    }

    /// The meeting ledger's entry of `meeting_id`, read through the cache.
    pub async fn ledger_record(
        &self,
        meeting_id: i64,
    ) -> Result<Option<Arc<MeetingRecord>>, Error> {
        self.ledger_entry(meeting_id).await
    }

    /// Another gateway sharing the store changed `meeting_id`'s ledger entry (or, with `None`,
    /// maybe any): the next request reads it from the store again.
    pub fn forget_cached(&self, meeting_id: Option<i64>) {
        match meeting_id {
            Some(id) => self.inner.ledger.remove(id),
            None => self.inner.ledger.clear(),
        }
    }

    /// The tracker of request tasks; shutdown closes it and waits for it.
    pub fn tasks(&self) -> TaskTracker {
        self.inner.tasks.clone()
    }

    /// Creates a meeting hosted by `user`; `body` is Zoom's create body. With a `request_id`
    /// (AIP-155), the same id from the same caller creates at most one meeting.
    pub async fn create(
        &self,
        cx: RequestContext,
        user: UserRef,
        body: Map<String, Value>,
        request_id: Option<String>,
    ) -> Result<MeetingView, Error> {
        self.detached(cx, move |this, cx| async move {
            match request_id {
                Some(id) => this.create_once(&cx, user, body, id).await,
                None => this.create_now(&cx, user, body, false).await,
            }
        })
        .await
    }

    /// Returns a meeting, or one occurrence of it.
    pub async fn get(
        &self,
        cx: RequestContext,
        meeting_id: i64,
        occurrence_id: Option<String>,
    ) -> Result<MeetingView, Error> {
        self.detached(cx, move |this, cx| async move {
            this.get_now(&cx, meeting_id, occurrence_id).await
        })
        .await
    }

    /// Applies Zoom's update body and returns the meeting as it is afterwards.
    pub async fn update(
        &self,
        cx: RequestContext,
        meeting_id: i64,
        occurrence_id: Option<String>,
        body: Map<String, Value>,
    ) -> Result<MeetingView, Error> {
        self.detached(cx, move |this, cx| async move {
            this.update_now(&cx, meeting_id, occurrence_id, body).await
        })
        .await
    }

    /// Deletes a meeting, or one occurrence of it.
    pub async fn delete(
        &self,
        cx: RequestContext,
        meeting_id: i64,
        occurrence_id: Option<String>,
    ) -> Result<(), Error> {
        self.detached(cx, move |this, cx| async move {
            this.delete_now(&cx, meeting_id, occurrence_id).await
        })
        .await
    }

    /// Ends a meeting in progress.
    pub async fn end(&self, cx: RequestContext, meeting_id: i64) -> Result<(), Error> {
        self.detached(cx, move |this, cx| async move {
            this.end_now(&cx, meeting_id).await
        })
        .await
    }

    /// Lists the meetings hosted by `user`.
    pub async fn list(
        &self,
        cx: RequestContext,
        user: UserRef,
        query: ListMeetings,
    ) -> Result<MeetingList, Error> {
        self.detached(cx, move |this, cx| async move {
            this.list_now(&cx, user, query).await
        })
        .await
    }

    /// Runs a request in place, in its span, but so that a caller who hangs up or runs out of
    /// time cannot cut it between Zoom's answer and the ledger and audit writes that must
    /// follow: if the handler is dropped before the request ends, the rest of the request moves
    /// into a task of its own (see [`Detached`]). The request counts against the caller's
    /// requests in flight until it ends, and against the tracker, so shutdown waits for it.
    ///
    /// Running in place instead of spawning saves two cross-task wake-ups per request.
    async fn detached<T, F, Fut>(&self, cx: RequestContext, request: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(Meetings, RequestContext) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let admitted = self.admit(&cx.caller)?;
        let span = cx.span.clone();
        let request = request(self.clone(), cx);
        let tracked = self.inner.tasks.token();
        let task = async move {
            let result = request.await;
            drop(admitted);
            drop(tracked);
            result
        };
        Detached {
            future: Some(Box::pin(task.instrument(span))),
            tasks: &self.inner.tasks,
        }
        .await
    }

    /// Admits one request of `caller`, or refuses it when the caller already has
    /// `limits.max_requests_in_flight_per_caller` in flight.
    fn admit(&self, caller: &Caller) -> Result<Admitted, Error> {
        self.inner
            .in_flight
            .admit(&caller.name)
            .ok_or_else(|| Error::TooManyRequests {
                caller: caller.name.clone(),
                limit: self.inner.in_flight.limit(),
            })
    }

    /// Creates once; an answer lost after the create went out is
    /// [`Error::CreateOutcomeUnknown`], which says whether it carried a `request_id`.
    async fn create_now(
        &self,
        cx: &RequestContext,
        user: UserRef,
        body: Map<String, Value>,
        with_request_id: bool,
    ) -> Result<MeetingView, Error> {
        let result = self
            .audited(cx, async |progress| {
                let mut target = self.resolve_user(cx, &user, progress).await?;
                self.begin_change(cx, &mut progress.audit).await?;
                let mut retried = false;
                let meeting = loop {
                    let zoom_user = zoom_user_of(&user, &target);
                    let call = CreateMeeting {
                        user: &zoom_user,
                        body: &body,
                    };
                    let on = Target::User(user.key());
                    let host = host_of(&user, &target);
                    let result = self
                        .inner
                        .upstream
                        .call(cx, &target.account, on, Some(host), call)
                        .await;
                    // Zoom's 1001 applied nothing: the user moved, and the create may go again.
                    if !retried && matches!(result, Err(Error::NotFound { .. })) {
                        retried = true;
                        if let Some(moved) =
                            self.resolve_again(cx, &user, &target, progress).await?
                        {
                            target = moved;
                            continue;
                        }
                    }
                    break result;
                }?;
                let account = target.account.clone();
                let audit = &mut progress.audit;
                audit.meeting_id = Some(meeting.id);
                audit.applied = true;
                let host_email = match lowercase_email(meeting.host_email.as_deref()) {
                    email if email.is_empty() => target.email.clone(),
                    email => email,
                };
                let record = MeetingRecord {
                    meeting_id: meeting.id,
                    account: account.clone(),
                    host_id: meeting.host_id.clone().unwrap_or(target.user_id.clone()),
                    host_email: host_email.clone(),
                    created_by: cx.caller.name.clone(),
                    created_at: Utc::now(),
                };
                // The store learns it with the outcome, in one transaction (see `audit`).
                self.inner.ledger.insert(Arc::new(record.clone()));
                audit.ledger = Some(LedgerChange::Record(record));
                Ok(self.view(cx, account, &host_email, meeting))
            })
            .await;
        result.map_err(|error| {
            if error.outcome_unknown() {
                Error::CreateOutcomeUnknown {
                    with_request_id,
                    cause: Box::new(error),
                }
            } else {
                error
            }
        })
    }

    async fn get_now(
        &self,
        cx: &RequestContext,
        meeting_id: i64,
        occurrence_id: Option<String>,
    ) -> Result<MeetingView, Error> {
        self.audited(cx, async |progress| {
            let target = self.resolve_meeting(cx, meeting_id, progress).await?;
            let meeting = match (&target.probed, &occurrence_id) {
                (Some(meeting), None) => meeting.clone(),
                _ => {
                    let host = Some(target.record.host_email.as_str());
                    let occurrence = occurrence_id.as_deref();
                    self.fetch_routed(cx, &target.account, host, meeting_id, occurrence)
                        .await?
                }
            };
            let record = self
                .reconcile_host(cx, &target, &meeting, &mut progress.audit)
                .await?;
            Ok(self.view(cx, target.account, &record.host_email, meeting))
        })
        .await
    }

    async fn update_now(
        &self,
        cx: &RequestContext,
        meeting_id: i64,
        occurrence_id: Option<String>,
        body: Map<String, Value>,
    ) -> Result<MeetingView, Error> {
        self.audited(cx, async |progress| {
            let target = self.resolve_for_change(cx, meeting_id, progress).await?;
            let occurrence = occurrence_id.as_deref();
            self.begin_change(cx, &mut progress.audit).await?;
            let call = UpdateMeeting {
                id: meeting_id,
                occurrence_id: occurrence,
                body: &body,
            };
            self.routed_call(cx, &target, occurrence, call).await?;
            progress.audit.applied = true;
            let host = Some(target.record.host_email.as_str());
            let meeting = self
                .fetch_routed(cx, &target.account, host, meeting_id, occurrence)
                .await?;
            let host_email = &target.record.host_email;
            Ok(self.view(cx, target.account.clone(), host_email, meeting))
        })
        .await
    }

    async fn delete_now(
        &self,
        cx: &RequestContext,
        meeting_id: i64,
        occurrence_id: Option<String>,
    ) -> Result<(), Error> {
        self.audited(cx, async |progress| {
            let target = self.resolve_for_change(cx, meeting_id, progress).await?;
            let occurrence = occurrence_id.as_deref();
            self.begin_change(cx, &mut progress.audit).await?;
            let call = DeleteMeeting {
                id: meeting_id,
                occurrence_id: occurrence,
            };
            self.routed_call(cx, &target, occurrence, call).await?;
            if occurrence_id.is_none() {
                self.inner.ledger.remove(meeting_id);
                progress.audit.ledger = Some(LedgerChange::Forget(meeting_id));
            }
            Ok(())
        })
        .await
    }

    async fn end_now(&self, cx: &RequestContext, meeting_id: i64) -> Result<(), Error> {
        self.audited(cx, async |progress| {
            let target = self.resolve_for_change(cx, meeting_id, progress).await?;
            self.begin_change(cx, &mut progress.audit).await?;
            let call = EndMeeting { id: meeting_id };
            self.routed_call(cx, &target, None, call).await
        })
        .await
    }

    async fn list_now(
        &self,
        cx: &RequestContext,
        user: UserRef,
        query: ListMeetings,
    ) -> Result<MeetingList, Error> {
        self.audited(cx, async |progress| {
            let mut target = self.resolve_user(cx, &user, progress).await?;
            let mut retried = false;
            let page: MeetingPage = loop {
                let zoom_user = zoom_user_of(&user, &target);
                let on = Target::User(user.key());
                let call = ListMeetingsOf {
                    user: &zoom_user,
                    query: &query,
                };
                let result = self
                    .inner
                    .upstream
                    .call(cx, &target.account, on, Some(&zoom_user), call)
                    .await;
                if !retried && matches!(result, Err(Error::NotFound { .. })) {
                    retried = true;
                    if let Some(moved) = self.resolve_again(cx, &user, &target, progress).await? {
                        target = moved;
                        continue;
                    }
                }
                break result;
            }?;
            let fields = cx
                .caller
                .visible_fields(cx.operation, &target.account, &target.email);
            let meetings = page
                .meetings
                .into_iter()
                .map(|mut m| {
                    redact(&mut m, fields);
                    // Zoom's list items leave out the host's email; every item is this user's.
                    if m.host_email.is_none() && !target.email.is_empty() {
                        m.host_email = Some(target.email.clone());
                    }
                    m
                })
                .collect();
            Ok(MeetingList {
                account: target.account,
                meetings,
                next_page_token: page.next_page_token.unwrap_or_default(),
                total_records: page.total_records.unwrap_or_default(),
            })
        })
        .await
    }

    fn view(
        &self,
        cx: &RequestContext,
        account: AccountName,
        host_email: &str,
        mut meeting: ZoomMeeting,
    ) -> MeetingView {
        let fields = cx.caller.visible_fields(cx.operation, &account, host_email);
        redact(&mut meeting, fields);
        MeetingView { account, meeting }
    }
}

/// Zoom's email of a user or host, lowercased; empty when Zoom sent none.
fn lowercase_email(email: Option<&str>) -> String {
    email.unwrap_or_default().to_ascii_lowercase()
}

/// How Zoom's per-user daily cap knows the host: the email when known (as the ledger keeps it
/// for updates), else what the caller sent.
fn host_of<'a>(user: &'a UserRef, location: &'a UserLocation) -> &'a str {
    if location.email.is_empty() {
        user.key()
    } else {
        &location.email
    }
}

/// The user path segment for Zoom: the id when known, else what the caller sent.
fn zoom_user_of(user: &UserRef, location: &UserLocation) -> String {
    if location.user_id.is_empty() {
        user.key().to_owned()
    } else {
        location.user_id.clone()
    }
}

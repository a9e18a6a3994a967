//! The request path for meetings: find the owning account, authorize the caller, call Zoom with
//! that account's token, redact what the caller may not see, and record ledger and audit.
//!
//! Order matters: no Zoom call happens for a target the caller may not touch, and a target that
//! exists outside the caller's grants answers exactly like one that does not exist.

mod in_flight;
mod ledger;
mod probes;
mod redact;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::accounts::{AccountName, Accounts};
use crate::error::{Error, TargetKind};
use crate::policy::{Caller, Operation};
use crate::routing::{Directory, RoutingRules, UserLocation};
use crate::store::{AuditRecord, Completion, LedgerChange, MeetingRecord, Outcome, Recorder};
use crate::token::{CallError, TokenCache, TokenError};
use crate::zoom::{ListMeetings, MeetingPage, ZoomClient, ZoomError, ZoomMeeting};

pub use self::in_flight::Admitted;
use self::in_flight::InFlight;
use self::ledger::LedgerCache;
use self::probes::Probes;
use self::redact::redact;

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

/// The meetings service of the gateway; cloning is shallow.
#[derive(Clone)]
pub struct Meetings {
    inner: Arc<Inner>,
}

struct Inner {
    accounts: Accounts,
    rules: RoutingRules,
    directory: Directory,
    zoom: ZoomClient,
    tokens: TokenCache,
    recorder: Arc<Recorder>,
    /// Read-through cache of the store's meeting ledger; written through on every change.
    ledger: LedgerCache,
    probes: Probes,
    in_flight: InFlight,
}

/// A meeting whose owner is known and whose caller is authorized.
struct MeetingTarget {
    account: AccountName,
    record: Arc<MeetingRecord>,
    /// The meeting as a probe fetched it, so a read needs no second call.
    probed: Option<ZoomMeeting>,
}

/// What an audit record says about the target; filled in as the request is resolved.
#[derive(Default)]
struct AuditContext {
    account: Option<String>,
    user: Option<String>,
    meeting_id: Option<i64>,
    denied: bool,
    /// The mutation reached Zoom and succeeded, whatever happens afterwards.
    applied: bool,
    /// The intent written before the change reached Zoom: its audit record id and time.
    intent: Option<(i64, DateTime<Utc>)>,
    /// What the change does to the ledger, written with its outcome.
    ledger: Option<LedgerChange>,
    /// The answer must not leave before then (see [`Meetings::settle`]).
    hold_until: Option<Instant>,
}

impl Meetings {
    pub fn new(
        accounts: Accounts,
        rules: RoutingRules,
        directory: Directory,
        zoom: ZoomClient,
        tokens: TokenCache,
        recorder: Arc<Recorder>,
        max_in_flight_per_caller: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                probes: Probes::new(&accounts),
                accounts,
                rules,
                directory,
                zoom,
                tokens,
                recorder,
                ledger: LedgerCache::new(ledger::LEDGER_CACHE_ENTRIES),
                in_flight: InFlight::new(max_in_flight_per_caller),
            }),
        }
    }

    /// Admits one request of `caller`, or refuses it when the caller already has
    /// `limits.max_requests_in_flight_per_caller` in flight. The request counts until the
    /// returned guard is dropped.
    pub fn admit(&self, caller: &Caller) -> Result<Admitted, Error> {
        self.inner
            .in_flight
            .admit(&caller.name)
            .ok_or_else(|| Error::TooManyRequests {
                caller: caller.name.clone(),
                limit: self.inner.in_flight.limit(),
            })
    }

    /// Creates a meeting hosted by `user`; `body` is Zoom's create body.
    pub async fn create(
        &self,
        caller: &Caller,
        user: UserRef,
        body: Map<String, Value>,
    ) -> Result<MeetingView, Error> {
        let op = Operation::Create;
        self.audited(caller, op, async |audit| {
            let target = self.resolve_user(caller, op, &user, audit).await?;
            let zoom_user = zoom_user_of(&user, &target);
            let account = target.account.clone();
            self.begin_change(caller, op, audit).await?;
            let meeting = self
                .zoom_call(&account, TargetKind::User, user.key(), |token| {
                    let zoom = self.inner.zoom.clone();
                    let (zoom_user, body) = (zoom_user.clone(), body.clone());
                    async move { zoom.create_meeting(&token, &zoom_user, &body).await }
                })
                .await;
            let meeting = self.forget_user_if_gone(&user, meeting)?;
            audit.meeting_id = Some(meeting.id);
            audit.applied = true;
            let host_email = match lowercase_email(meeting.host_email.as_deref()) {
                email if email.is_empty() => target.email.clone(),
                email => email,
            };
            let record = MeetingRecord {
                meeting_id: meeting.id,
                account: account.to_string(),
                host_id: meeting.host_id.clone().unwrap_or(target.user_id.clone()),
                host_email: host_email.clone(),
                created_by: caller.name.clone(),
                created_at: Utc::now(),
            };
            // The store learns it with the outcome, in one transaction (see `conclude`).
            self.inner.ledger.insert(Arc::new(record.clone()));
            audit.ledger = Some(LedgerChange::Record(record));
            Ok(self.view(caller, op, account, &host_email, meeting))
        })
        .await
    }

    /// Returns a meeting, or one occurrence of it.
    pub async fn get(
        &self,
        caller: &Caller,
        meeting_id: i64,
        occurrence_id: Option<String>,
    ) -> Result<MeetingView, Error> {
        let op = Operation::Read;
        self.audited(caller, op, async |audit| {
            let target = self.resolve_meeting(caller, op, meeting_id, audit).await?;
            let meeting = match (&target.probed, &occurrence_id) {
                (Some(meeting), None) => meeting.clone(),
                _ => {
                    self.fetch_routed(&target.account, meeting_id, occurrence_id.as_deref())
                        .await?
                }
            };
            let record = self
                .reconcile_host(caller, op, &target, &meeting, audit)
                .await?;
            Ok(self.view(caller, op, target.account, &record.host_email, meeting))
        })
        .await
    }

    /// Applies Zoom's update body and returns the meeting as it is afterwards.
    pub async fn update(
        &self,
        caller: &Caller,
        meeting_id: i64,
        occurrence_id: Option<String>,
        body: Map<String, Value>,
    ) -> Result<MeetingView, Error> {
        let op = Operation::Update;
        self.audited(caller, op, async |audit| {
            let target = self
                .resolve_for_change(caller, op, meeting_id, audit)
                .await?;
            let occurrence = occurrence_id.as_deref();
            self.begin_change(caller, op, audit).await?;
            self.routed_call(&target.account, meeting_id, occurrence, |token| {
                let zoom = self.inner.zoom.clone();
                let (occurrence, body) = (occurrence_id.clone(), body.clone());
                async move {
                    zoom.update_meeting(&token, meeting_id, occurrence.as_deref(), &body)
                        .await
                }
            })
            .await?;
            audit.applied = true;
            let meeting = self
                .fetch_routed(&target.account, meeting_id, occurrence)
                .await?;
            Ok(self.view(
                caller,
                op,
                target.account,
                &target.record.host_email,
                meeting,
            ))
        })
        .await
    }

    /// Deletes a meeting, or one occurrence of it.
    pub async fn delete(
        &self,
        caller: &Caller,
        meeting_id: i64,
        occurrence_id: Option<String>,
    ) -> Result<(), Error> {
        let op = Operation::Delete;
        self.audited(caller, op, async |audit| {
            let target = self
                .resolve_for_change(caller, op, meeting_id, audit)
                .await?;
            let occurrence = occurrence_id.as_deref();
            self.begin_change(caller, op, audit).await?;
            self.routed_call(&target.account, meeting_id, occurrence, |token| {
                let zoom = self.inner.zoom.clone();
                let occurrence = occurrence_id.clone();
                async move {
                    zoom.delete_meeting(&token, meeting_id, occurrence.as_deref())
                        .await
                }
            })
            .await?;
            if occurrence_id.is_none() {
                self.inner.ledger.remove(meeting_id);
                audit.ledger = Some(LedgerChange::Forget(meeting_id));
            }
            Ok(())
        })
        .await
    }

    /// Ends a meeting in progress.
    pub async fn end(&self, caller: &Caller, meeting_id: i64) -> Result<(), Error> {
        let op = Operation::End;
        self.audited(caller, op, async |audit| {
            let target = self
                .resolve_for_change(caller, op, meeting_id, audit)
                .await?;
            self.begin_change(caller, op, audit).await?;
            self.routed_call(&target.account, meeting_id, None, |token| {
                let zoom = self.inner.zoom.clone();
                async move { zoom.end_meeting(&token, meeting_id).await }
            })
            .await
        })
        .await
    }

    /// Lists the meetings hosted by `user`.
    pub async fn list(
        &self,
        caller: &Caller,
        user: UserRef,
        query: ListMeetings,
    ) -> Result<MeetingList, Error> {
        let op = Operation::List;
        self.audited(caller, op, async |audit| {
            let target = self.resolve_user(caller, op, &user, audit).await?;
            let zoom_user = zoom_user_of(&user, &target);
            let page = self
                .zoom_call(&target.account, TargetKind::User, user.key(), |token| {
                    let zoom = self.inner.zoom.clone();
                    let (zoom_user, query) = (zoom_user.clone(), query.clone());
                    async move { zoom.list_meetings(&token, &zoom_user, &query).await }
                })
                .await;
            let page: MeetingPage = self.forget_user_if_gone(&user, page)?;
            let fields = caller.visible_fields(op, &target.account, &target.email);
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

    // === routing and authorization ===

    /// Finds the account and host of a meeting, from the ledger or else by a probe, and
    /// authorizes `op` on it.
    async fn resolve_meeting(
        &self,
        caller: &Caller,
        op: Operation,
        meeting_id: i64,
        audit: &mut AuditContext,
    ) -> Result<MeetingTarget, Error> {
        let started = Instant::now();
        let result = self.locate_meeting(caller, op, meeting_id, audit).await;
        result.map_err(|error| {
            let accounts = probe_accounts(caller, op);
            self.settle(started, &accounts, TargetKind::Meeting, error, audit)
        })
    }

    async fn locate_meeting(
        &self,
        caller: &Caller,
        op: Operation,
        meeting_id: i64,
        audit: &mut AuditContext,
    ) -> Result<MeetingTarget, Error> {
        audit.meeting_id = Some(meeting_id);
        let (record, probed) = match self.ledger_entry(meeting_id).await? {
            Some(record) => (record, None),
            None => {
                let (record, meeting) = self.probe_meeting(caller, op, meeting_id).await?;
                (record, Some(meeting))
            }
        };
        let account = self
            .inner
            .accounts
            .find(&record.account)
            .map(|a| a.name.clone())
            .ok_or_else(|| {
                Error::Internal(format!("ledger names unknown account `{}`", record.account))
            })?;
        audit.account = Some(account.to_string());
        audit.user = Some(record.host_email.clone());
        authorize_meeting(caller, op, &account, &record.host_email, meeting_id, audit)?;
        Ok(MeetingTarget {
            account,
            record,
            probed,
        })
    }

    /// Looks for a meeting in the [`probe_accounts`] of the caller.
    ///
    /// The owner found goes into the ledger before any decision, so a denied caller asking again
    /// costs no further Zoom call.
    async fn probe_meeting(
        &self,
        caller: &Caller,
        op: Operation,
        meeting_id: i64,
    ) -> Result<(Arc<MeetingRecord>, ZoomMeeting), Error> {
        let probe_key = format!("meeting:{meeting_id}");
        let mut failure = None;
        for account in probe_accounts(caller, op) {
            if self.inner.directory.known_absent(&probe_key, account) {
                continue;
            }
            if let Some(error) = self.inner.probes.failure(account, TargetKind::Meeting) {
                failure = failure.or(Some(error));
                continue;
            }
            let asked = Instant::now();
            let found = self.fetch_meeting(account, meeting_id, None).await;
            self.inner
                .probes
                .learn(account, TargetKind::Meeting, asked, &found);
            match found {
                Ok(meeting) => {
                    let record = MeetingRecord {
                        meeting_id,
                        account: account.to_string(),
                        host_id: meeting.host_id.clone().unwrap_or_default(),
                        host_email: lowercase_email(meeting.host_email.as_deref()),
                        created_by: caller.name.clone(),
                        created_at: Utc::now(),
                    };
                    // Without a host no grant can match; a later probe may learn it.
                    let record = if record.host_email.is_empty() {
                        Arc::new(record)
                    } else {
                        self.remember_meeting(record).await
                    };
                    return Ok((record, meeting));
                }
                Err(Error::NotFound { .. }) => {
                    self.inner.directory.record_absent(&probe_key, account)
                }
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        Err(failure.unwrap_or(Error::NotFound {
            kind: TargetKind::Meeting,
            id: meeting_id.to_string(),
        }))
    }

    /// Follows a host change made outside the gateway (Zoom moves meetings when a host is
    /// transferred): the ledger learns the new host and the decision is taken again for it.
    async fn reconcile_host(
        &self,
        caller: &Caller,
        op: Operation,
        target: &MeetingTarget,
        meeting: &ZoomMeeting,
        audit: &mut AuditContext,
    ) -> Result<Arc<MeetingRecord>, Error> {
        let host_email = lowercase_email(meeting.host_email.as_deref());
        if host_email.is_empty() || host_email == target.record.host_email {
            return Ok(target.record.clone());
        }
        tracing::info!(
            meeting_id = meeting.id,
            "meeting changed host outside the gateway"
        );
        let record = self
            .remember_meeting(MeetingRecord {
                host_id: meeting.host_id.clone().unwrap_or_default(),
                host_email,
                ..(*target.record).clone()
            })
            .await;
        audit.user = Some(record.host_email.clone());
        authorize_meeting(
            caller,
            op,
            &target.account,
            &record.host_email,
            record.meeting_id,
            audit,
        )?;
        Ok(record)
    }

    /// Resolves a meeting about to be changed. A ledger entry may predate a host transfer made
    /// in Zoom, so the meeting is read first and the decision taken again on its current host.
    async fn resolve_for_change(
        &self,
        caller: &Caller,
        op: Operation,
        meeting_id: i64,
        audit: &mut AuditContext,
    ) -> Result<MeetingTarget, Error> {
        let target = self.resolve_meeting(caller, op, meeting_id, audit).await?;
        if target.probed.is_some() {
            return Ok(target);
        }
        let current = self.fetch_routed(&target.account, meeting_id, None).await?;
        let record = self
            .reconcile_host(caller, op, &target, &current, audit)
            .await?;
        Ok(MeetingTarget {
            account: target.account,
            record,
            probed: Some(current),
        })
    }

    /// Finds the account of a user and authorizes `op` on it: by rule, by an earlier probe, else
    /// by probing the accounts in which the caller may do `op`.
    async fn resolve_user(
        &self,
        caller: &Caller,
        op: Operation,
        user: &UserRef,
        audit: &mut AuditContext,
    ) -> Result<UserLocation, Error> {
        let key = user.key();
        audit.user = Some(key.to_owned());
        let candidates: Vec<AccountName> = match user {
            UserRef::Email(email) => caller
                .accounts_for(op)
                .iter()
                .filter(|account| caller.allows(op, account, email))
                .cloned()
                .collect(),
            UserRef::Id(_) => caller.accounts_for(op).to_vec(),
        };
        if candidates.is_empty() {
            // Decided from the grants alone: the same for every user, existing or not.
            audit.denied = true;
            return Err(user_denial(caller, op, user));
        }
        let started = Instant::now();
        let result = self.locate_user(caller, op, user, &candidates, audit).await;
        result.map_err(|error| {
            let candidates: Vec<&AccountName> = candidates.iter().collect();
            self.settle(started, &candidates, TargetKind::User, error, audit)
        })
    }

    async fn locate_user(
        &self,
        caller: &Caller,
        op: Operation,
        user: &UserRef,
        candidates: &[AccountName],
        audit: &mut AuditContext,
    ) -> Result<UserLocation, Error> {
        let key = user.key();
        let known = match user {
            UserRef::Email(email) => self
                .inner
                .rules
                .account_for(email)
                .map(|account| UserLocation {
                    account: account.clone(),
                    user_id: String::new(),
                    email: email.clone(),
                })
                .or_else(|| self.inner.directory.lookup(email)),
            UserRef::Id(id) => self.inner.directory.lookup(id),
        };
        let location = match known {
            Some(location) => location,
            None => self.probe_user(key, candidates).await?,
        };
        audit.account = Some(location.account.to_string());
        audit.user = Some(location.email.clone());
        if !caller.allows(op, &location.account, &location.email) {
            audit.denied = true;
            return Err(user_denial(caller, op, user));
        }
        Ok(location)
    }

    /// Asks each candidate account for the user; the first 200 decides.
    async fn probe_user(
        &self,
        key: &str,
        candidates: &[AccountName],
    ) -> Result<UserLocation, Error> {
        let mut failure = None;
        for account in candidates {
            if self.inner.directory.known_absent(key, account) {
                continue;
            }
            if let Some(error) = self.inner.probes.failure(account, TargetKind::User) {
                failure = failure.or(Some(error));
                continue;
            }
            let asked = Instant::now();
            let found = self
                .zoom_call(account, TargetKind::User, key, |token| {
                    let zoom = self.inner.zoom.clone();
                    let key = key.to_owned();
                    async move { zoom.get_user(&token, &key).await }
                })
                .await;
            self.inner
                .probes
                .learn(account, TargetKind::User, asked, &found);
            match found {
                Ok(zoom_user) => {
                    let location = UserLocation {
                        account: account.clone(),
                        user_id: zoom_user.id,
                        email: lowercase_email(zoom_user.email.as_deref()),
                    };
                    self.inner.directory.record_found(location.clone());
                    return Ok(location);
                }
                Err(Error::NotFound { .. }) => self.inner.directory.record_absent(key, account),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        Err(failure.unwrap_or(Error::NotFound {
            kind: TargetKind::User,
            id: key.to_owned(),
        }))
    }

    /// Makes the answer about a target that was not found, or could not be looked up, the same
    /// whether Zoom was asked or not (see [`probes`]): while an account a probe would ask is
    /// failing, a NOT_FOUND becomes that failure, and the answer is held (in
    /// [`Meetings::conclude`]) as long as the probes would take.
    fn settle(
        &self,
        started: Instant,
        accounts: &[&AccountName],
        kind: TargetKind,
        error: Error,
        audit: &mut AuditContext,
    ) -> Error {
        let error = match error {
            Error::NotFound { .. } => accounts
                .iter()
                .find_map(|account| self.inner.probes.failure(account, kind))
                .unwrap_or(error),
            other => other,
        };
        if !matches!(
            error,
            Error::PermissionDenied { .. } | Error::Internal(_) | Error::StoreUnavailable(_)
        ) {
            audit.hold_until = Some(started + self.inner.probes.hold(accounts, kind));
        }
        error
    }

    async fn ledger_entry(&self, meeting_id: i64) -> Result<Option<Arc<MeetingRecord>>, Error> {
        if let Some(record) = self.inner.ledger.get(meeting_id) {
            return Ok(Some(record));
        }
        let record = self
            .inner
            .recorder
            .store()
            .meeting(meeting_id)
            .await
            .map_err(|e| Error::StoreUnavailable(format!("reading the meeting ledger: {e}")))?;
        Ok(record.map(|record| self.inner.ledger.insert_read(record)))
    }

    /// Puts what a lookup learned into the ledger; a refused write is kept and made later.
    async fn remember_meeting(&self, record: MeetingRecord) -> Arc<MeetingRecord> {
        let record = Arc::new(record);
        self.inner.ledger.insert(record.clone());
        self.inner
            .recorder
            .ledger(LedgerChange::Record((*record).clone()))
            .await;
        record
    }

    /// Drops what the directory knows of a user Zoom no longer knows.
    fn forget_user_if_gone<T>(&self, user: &UserRef, result: Result<T, Error>) -> Result<T, Error> {
        if matches!(result, Err(Error::NotFound { .. })) {
            self.inner.directory.forget(user.key());
        }
        result
    }

    async fn forget_meeting(&self, meeting_id: i64) {
        self.inner.ledger.remove(meeting_id);
        self.inner
            .recorder
            .ledger(LedgerChange::Forget(meeting_id))
            .await;
    }

    // === Zoom calls ===

    async fn fetch_meeting(
        &self,
        account: &AccountName,
        meeting_id: i64,
        occurrence_id: Option<&str>,
    ) -> Result<ZoomMeeting, Error> {
        let id = meeting_id.to_string();
        self.zoom_call(account, TargetKind::Meeting, &id, |token| {
            let zoom = self.inner.zoom.clone();
            let occurrence = occurrence_id.map(str::to_owned);
            async move {
                zoom.get_meeting(&token, meeting_id, occurrence.as_deref())
                    .await
            }
        })
        .await
    }

    /// Runs one Zoom call on a meeting the ledger (or a probe) placed in `account`. A 404 for the
    /// whole meeting means it was deleted behind the gateway's back: its ledger entry goes too,
    /// so the next request looks for it again instead of trusting a stale owner.
    async fn routed_call<T, F, Fut>(
        &self,
        account: &AccountName,
        meeting_id: i64,
        occurrence_id: Option<&str>,
        call: F,
    ) -> Result<T, Error>
    where
        F: Fn(crate::token::AccessToken) -> Fut,
        Fut: Future<Output = Result<T, ZoomError>>,
    {
        let id = meeting_id.to_string();
        let result = self
            .zoom_call(account, TargetKind::Meeting, &id, call)
            .await;
        self.forget_if_gone(meeting_id, occurrence_id, result).await
    }

    /// Reads a meeting placed in `account`, as [`Meetings::routed_call`] does.
    async fn fetch_routed(
        &self,
        account: &AccountName,
        meeting_id: i64,
        occurrence_id: Option<&str>,
    ) -> Result<ZoomMeeting, Error> {
        let result = self.fetch_meeting(account, meeting_id, occurrence_id).await;
        self.forget_if_gone(meeting_id, occurrence_id, result).await
    }

    async fn forget_if_gone<T>(
        &self,
        meeting_id: i64,
        occurrence_id: Option<&str>,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        if occurrence_id.is_none() && matches!(result, Err(Error::NotFound { .. })) {
            self.forget_meeting(meeting_id).await;
        }
        result
    }

    /// Runs one Zoom call with the account's token and maps its failure.
    async fn zoom_call<T, F, Fut>(
        &self,
        account: &AccountName,
        kind: TargetKind,
        id: &str,
        call: F,
    ) -> Result<T, Error>
    where
        F: Fn(crate::token::AccessToken) -> Fut,
        Fut: Future<Output = Result<T, ZoomError>>,
    {
        self.inner
            .tokens
            .call(account, call)
            .await
            .map_err(|error| {
                let mut error = map_call_error(account, kind, id, error);
                // A failed token fetch starts a cooldown: tell the caller when to come back.
                if let Error::ZoomUnavailable { retry_after, .. } = &mut error
                    && retry_after.is_none()
                {
                    *retry_after = self.inner.tokens.cooldown_left(account);
                }
                error
            })
    }

    // === responses and audit ===

    fn view(
        &self,
        caller: &Caller,
        op: Operation,
        account: AccountName,
        host_email: &str,
        mut meeting: ZoomMeeting,
    ) -> MeetingView {
        let fields = caller.visible_fields(op, &account, host_email);
        redact(&mut meeting, fields);
        MeetingView { account, meeting }
    }

    /// Writes the intent of a change before it reaches Zoom, so that a crash leaves an audit
    /// record of outcome unknown. If the store refuses it, nothing reaches Zoom.
    async fn begin_change(
        &self,
        caller: &Caller,
        op: Operation,
        audit: &mut AuditContext,
    ) -> Result<(), Error> {
        let intent = AuditRecord {
            id: 0,
            at: Utc::now(),
            caller: caller.name.clone(),
            operation: format!("meetings.{op}"),
            account: audit.account.clone(),
            user: audit.user.clone(),
            meeting_id: audit.meeting_id,
            outcome: Outcome::Unknown,
            detail: None,
        };
        let id =
            self.inner.recorder.begin(&intent).await.map_err(|e| {
                Error::StoreUnavailable(format!("writing the intent of a change: {e}"))
            })?;
        audit.intent = Some((id, intent.at));
        Ok(())
    }

    /// Runs `request` with the audit context it fills in, then concludes it.
    async fn audited<T>(
        &self,
        caller: &Caller,
        op: Operation,
        request: impl AsyncFnOnce(&mut AuditContext) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut audit = AuditContext::default();
        let result = request(&mut audit).await;
        self.conclude(caller, op, audit, result).await
    }

    /// Ends a request: writes its audit record, then holds the answer if [`Meetings::settle`]
    /// asked for it, so that the write's time is inside the hold too.
    ///
    /// A change Zoom applied is acknowledged only once its outcome is durable; otherwise the
    /// answer says that it was applied and not yet recorded.
    async fn conclude<T>(
        &self,
        caller: &Caller,
        op: Operation,
        context: AuditContext,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        let hold_until = context.hold_until;
        let applied = context.applied || (context.intent.is_some() && result.is_ok());
        let meeting_id = context.meeting_id;
        let recorded = self.audit(caller, op, context, &result).await;
        if let Some(until) = hold_until {
            tokio::time::sleep_until(until).await;
        }
        match recorded {
            Err(error) if applied => {
                tracing::error!(%error, meeting_id, "a change was applied in Zoom and its record waits for the store");
                Err(Error::NotRecorded {
                    operation: op,
                    meeting_id,
                })
            }
            _ => result,
        }
    }

    /// Records mutating calls and every denial. A change's outcome completes its intent, and
    /// the error tells when that is not durable yet; other records are kept and written later
    /// if the store refuses them.
    async fn audit<T>(
        &self,
        caller: &Caller,
        op: Operation,
        context: AuditContext,
        result: &Result<T, Error>,
    ) -> Result<(), crate::store::StoreError> {
        let mutating = matches!(
            op,
            Operation::Create | Operation::Update | Operation::Delete | Operation::End
        );
        let (outcome, detail) = match result {
            Ok(_) => (Outcome::Allowed, None),
            Err(Error::NotFound { .. } | Error::PermissionDenied { .. }) if context.denied => {
                (Outcome::Denied, None)
            }
            // Refused, but answered with the failure a probe would have met.
            Err(error) if context.denied => (Outcome::Denied, Some(error.reason().to_owned())),
            Err(error) if context.applied => (
                Outcome::Allowed,
                Some(format!("applied, then {}", error.reason())),
            ),
            // Sent, and no clear answer: Zoom may have made the change.
            Err(error) if context.intent.is_some() && error.outcome_unknown() => {
                (Outcome::Unknown, Some(error.reason().to_owned()))
            }
            Err(error) => (Outcome::Failed, Some(error.reason().to_owned())),
        };
        if !mutating && outcome != Outcome::Denied {
            return Ok(());
        }
        let mut record = AuditRecord {
            id: 0,
            at: Utc::now(),
            caller: caller.name.clone(),
            operation: format!("meetings.{op}"),
            account: context.account,
            user: context.user,
            meeting_id: context.meeting_id,
            outcome,
            detail,
        };
        let Some((intent_id, at)) = context.intent else {
            self.inner.recorder.append(record).await;
            return Ok(());
        };
        record.at = at;
        let ledger = match (&result, context.ledger) {
            (Ok(_), Some(change)) => change,
            _ => LedgerChange::None,
        };
        self.inner
            .recorder
            .complete(Completion {
                intent_id,
                record,
                ledger,
            })
            .await
    }
}

/// The accounts a meeting lookup for `op` may ask: where the caller may do `op` or see meetings,
/// so that the answer does not depend on whether the ledger already knew the meeting.
fn probe_accounts(caller: &Caller, op: Operation) -> Vec<&AccountName> {
    let mut accounts: Vec<&AccountName> = Vec::new();
    for any in [op, Operation::Read, Operation::List] {
        for account in caller.accounts_for(any) {
            if !accounts.contains(&account) {
                accounts.push(account);
            }
        }
    }
    accounts
}

/// Allows `op` on a meeting, or answers PERMISSION_DENIED when the caller may see the meeting and
/// the same NOT_FOUND as a missing meeting when it may not.
fn authorize_meeting(
    caller: &Caller,
    op: Operation,
    account: &AccountName,
    host_email: &str,
    meeting_id: i64,
    audit: &mut AuditContext,
) -> Result<(), Error> {
    if caller.allows(op, account, host_email) {
        return Ok(());
    }
    audit.denied = true;
    let may_see = [Operation::Read, Operation::List]
        .into_iter()
        .any(|seeing| caller.allows(seeing, account, host_email));
    Err(denial(
        caller,
        op,
        TargetKind::Meeting,
        meeting_id.to_string(),
        may_see,
    ))
}

/// The answer when `op` on a user is not allowed, decided from the grants and the name the caller
/// gave alone, so it never shows where the user lives or whether a cache knew it.
///
/// PERMISSION_DENIED only for an email no account grants `op` on but some account lets the caller
/// see; NOT_FOUND otherwise, exactly as for a user that does not exist.
fn user_denial(caller: &Caller, op: Operation, user: &UserRef) -> Error {
    let may_see = match user {
        UserRef::Email(email) => {
            let grants_op = caller
                .accounts_for(op)
                .iter()
                .any(|account| caller.allows(op, account, email));
            !grants_op
                && [Operation::Read, Operation::List]
                    .into_iter()
                    .any(|seeing| {
                        caller
                            .accounts_for(seeing)
                            .iter()
                            .any(|account| caller.allows(seeing, account, email))
                    })
        }
        UserRef::Id(_) => false,
    };
    denial(caller, op, TargetKind::User, user.key().to_owned(), may_see)
}

fn denial(caller: &Caller, op: Operation, kind: TargetKind, id: String, may_see: bool) -> Error {
    if may_see {
        Error::PermissionDenied {
            caller: caller.name.clone(),
            operation: op,
            kind,
            id,
        }
    } else {
        Error::NotFound { kind, id }
    }
}

/// Zoom's email of a user or host, lowercased; empty when Zoom sent none.
fn lowercase_email(email: Option<&str>) -> String {
    email.unwrap_or_default().to_ascii_lowercase()
}

/// The user path segment for Zoom: the id when known, else what the caller sent.
fn zoom_user_of(user: &UserRef, location: &UserLocation) -> String {
    if location.user_id.is_empty() {
        user.key().to_owned()
    } else {
        location.user_id.clone()
    }
}

fn map_call_error(account: &AccountName, kind: TargetKind, id: &str, error: CallError) -> Error {
    let account = account.clone();
    match error {
        CallError::Token(error) => {
            let retry_after = match &error {
                TokenError::CoolingDown { retry_after } => Some(*retry_after),
                _ => None,
            };
            Error::ZoomUnavailable {
                account,
                detail: format!("token: {error}"),
                retry_after,
                sent: false,
            }
        }
        CallError::Zoom(error) => match error {
            ZoomError::NotFound { .. } => Error::NotFound {
                kind,
                id: id.to_owned(),
            },
            ZoomError::RateLimited { retry_after, .. } => Error::RateLimited {
                account,
                retry_after,
            },
            ZoomError::MissingScope { message } => Error::MissingScope {
                account,
                detail: message,
            },
            ZoomError::Timeout => Error::ZoomTimeout { account },
            ZoomError::Rejected {
                status,
                code,
                message,
            } => Error::ZoomRefused {
                account,
                status,
                code,
                message,
            },
            ZoomError::InvalidInput(reason) => {
                Error::Internal(format!("request not sent to zoom: {reason}"))
            }
            ZoomError::BadRequest {
                code,
                message,
                errors,
            } => Error::ZoomRejected {
                account,
                code: code.unwrap_or_default(),
                message,
                fields: errors.into_iter().map(|error| error.field).collect(),
            },
            other => Error::ZoomUnavailable {
                account,
                detail: other.to_string(),
                retry_after: None,
                sent: true,
            },
        },
    }
}

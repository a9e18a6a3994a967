//! Which account owns a target: a user by config rule, an earlier probe or a probe now; a meeting
//! by the ledger or a probe. Each answer says where it came from, and every lookup that fails is
//! settled so that its answer shows nothing of whether Zoom was asked.

use std::sync::Arc;

use chrono::Utc;
use tokio::time::Instant;

use super::authorize::{authorize_meeting, decide, probe_accounts, user_denial};
use super::upstream::Target;
use super::{AuditContext, Meetings, Progress, RequestContext, UserRef, lowercase_email};
use crate::accounts::AccountName;
use crate::error::{Error, TargetKind};
use crate::routing::{RouteSource, UserLocation};
use crate::store::{LedgerChange, MeetingRecord};
use crate::zoom::{GetMeeting, GetUser, ZoomCall, ZoomMeeting};

/// A meeting whose owner is known and whose caller is authorized.
pub(super) struct MeetingTarget {
    pub account: AccountName,
    pub record: Arc<MeetingRecord>,
    /// The meeting as a probe fetched it, so a read needs no second call.
    pub probed: Option<ZoomMeeting>,
}

impl Meetings {
    /// Finds the account and host of a meeting, from the ledger or else by a probe, and
    /// authorizes the operation on it.
    pub(super) async fn resolve_meeting(
        &self,
        cx: &RequestContext,
        meeting_id: i64,
        progress: &mut Progress,
    ) -> Result<MeetingTarget, Error> {
        let probed = &mut progress.probed_accounts;
        let result = self
            .locate_meeting(cx, meeting_id, &mut progress.audit, probed)
            .await;
        result.map_err(|error| {
            let accounts = probe_accounts(&cx.caller, cx.operation);
            self.settle(&accounts, TargetKind::Meeting, error, progress)
        })
    }

    async fn locate_meeting(
        &self,
        cx: &RequestContext,
        meeting_id: i64,
        audit: &mut AuditContext,
        probed: &mut Vec<AccountName>,
    ) -> Result<MeetingTarget, Error> {
        audit.meeting_id = Some(meeting_id);
        let (record, probed, source) = match self.ledger_entry(meeting_id).await? {
            Some(record) => (record, None, RouteSource::Ledger),
            None => {
                let (record, meeting) = self.probe_meeting(cx, meeting_id, probed).await?;
                (record, Some(meeting), RouteSource::Probe)
            }
        };
        let Some(account) = self
            .inner
            .accounts
            .load()
            .get(&record.account)
            .map(|a| a.name.clone())
        else {
            // Its account left the config (a reload): the gateway cannot reach the meeting.
            tracing::warn!(account = %record.account, "the ledger names an account no longer configured");
            return Err(Error::NotFound {
                kind: TargetKind::Meeting,
                id: meeting_id.to_string(),
            });
        };
        tracing::debug!(%account, %source, "meeting routed");
        audit.account = Some(account.to_string());
        audit.user = Some(record.host_email.clone());
        authorize_meeting(
            &cx.caller,
            cx.operation,
            &account,
            &record.host_email,
            meeting_id,
            audit,
        )?;
        Ok(MeetingTarget {
            account,
            record,
            probed,
        })
    }

    /// Looks for a meeting in the [`probe_accounts`] of the caller; each account asked goes into
    /// `probed`.
    ///
    /// The owner found goes into the ledger before any decision, so a denied caller asking again
    /// costs no further Zoom call.
    async fn probe_meeting(
        &self,
        cx: &RequestContext,
        meeting_id: i64,
        probed: &mut Vec<AccountName>,
    ) -> Result<(Arc<MeetingRecord>, ZoomMeeting), Error> {
        let probe_key = format!("meeting:{meeting_id}");
        let mut failure = None;
        for account in probe_accounts(&cx.caller, cx.operation) {
            let ask = self.fetch_meeting(cx, account, None, meeting_id, None);
            let kind = TargetKind::Meeting;
            match self
                .probe_account(account, kind, &probe_key, probed, ask)
                .await
            {
                Some(Ok(meeting)) => {
                    let record = MeetingRecord {
                        meeting_id,
                        account: account.clone(),
                        host_id: meeting.host_id.clone().unwrap_or_default(),
                        host_email: lowercase_email(meeting.host_email.as_deref()),
                        created_by: cx.caller.name.clone(),
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
                None | Some(Err(Error::NotFound { .. })) => {}
                Some(Err(error)) => failure = failure.or(Some(error)),
            }
        }
        Err(failure.unwrap_or(Error::NotFound {
            kind: TargetKind::Meeting,
            id: meeting_id.to_string(),
        }))
    }

    /// Follows a host change made outside the gateway (Zoom moves meetings when a host is
    /// transferred): the ledger learns the new host and the decision is taken again for it.
    pub(super) async fn reconcile_host(
        &self,
        cx: &RequestContext,
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
            &cx.caller,
            cx.operation,
            &target.account,
            &record.host_email,
            record.meeting_id,
            audit,
        )?;
        Ok(record)
    }

    /// Resolves a meeting about to be changed. A ledger entry may predate a host transfer made
    /// in Zoom, so the meeting is read first and the decision taken again on its current host.
    pub(super) async fn resolve_for_change(
        &self,
        cx: &RequestContext,
        meeting_id: i64,
        progress: &mut Progress,
    ) -> Result<MeetingTarget, Error> {
        let target = self.resolve_meeting(cx, meeting_id, progress).await?;
        if target.probed.is_some() {
            return Ok(target);
        }
        let host = Some(target.record.host_email.as_str());
        let current = self
            .fetch_routed(cx, &target.account, host, meeting_id, None)
            .await?;
        let record = self
            .reconcile_host(cx, &target, &current, &mut progress.audit)
            .await?;
        Ok(MeetingTarget {
            account: target.account,
            record,
            probed: Some(current),
        })
    }

    /// Finds the account of a user and authorizes the operation on it: by rule, by an earlier
    /// probe, else by probing the accounts in which the caller may do it.
    pub(super) async fn resolve_user(
        &self,
        cx: &RequestContext,
        user: &UserRef,
        progress: &mut Progress,
    ) -> Result<UserLocation, Error> {
        let (caller, op) = (&*cx.caller, cx.operation);
        progress.audit.user = Some(user.key().to_owned());
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
            progress.audit.denied = true;
            return Err(user_denial(caller, op, user));
        }
        let probed = &mut progress.probed_accounts;
        let result = self
            .locate_user(cx, user, &candidates, &mut progress.audit, probed)
            .await;
        result.map_err(|error| {
            let candidates: Vec<&AccountName> = candidates.iter().collect();
            self.settle(&candidates, TargetKind::User, error, progress)
        })
    }

    async fn locate_user(
        &self,
        cx: &RequestContext,
        user: &UserRef,
        candidates: &[AccountName],
        audit: &mut AuditContext,
        probed: &mut Vec<AccountName>,
    ) -> Result<UserLocation, Error> {
        let (location, source) = match self.known_location(user) {
            Some(known) => known,
            None => (
                self.probe_user(cx, user.key(), candidates, probed).await?,
                RouteSource::Probe,
            ),
        };
        tracing::debug!(account = %location.account, %source, "user routed");
        audit.account = Some(location.account.to_string());
        audit.user = Some(location.email.clone());
        let decision = decide(&cx.caller, cx.operation, &location.account, &location.email);
        if !decision.is_allowed() {
            audit.denied = true;
            return Err(user_denial(&cx.caller, cx.operation, user));
        }
        Ok(location)
    }

    /// Where `user` is without asking Zoom: a route override, a config rule, or what an earlier
    /// probe found, in that order.
    pub fn known_location(&self, user: &UserRef) -> Option<(UserLocation, RouteSource)> {
        let at = |account: AccountName, email: &str| UserLocation {
            account,
            user_id: String::new(),
            email: email.to_owned(),
        };
        if let UserRef::Email(email) = user {
            // An override to an account a reload removed is not followed; the sync reports it.
            if let Some(account) = self.inner.routing.overrides.get(email)
                && self.inner.accounts.load().get(&account).is_some()
            {
                return Some((at(account, email), RouteSource::Override));
            }
            if let Some(rule) = self.inner.routing.rules.load().rule_for(email) {
                let source = RouteSource::ConfigRule(rule.place.clone());
                return Some((at(rule.account.clone(), email), source));
            }
            // What Zoom said since the sync (the user is not there any more) beats the sync,
            // and so does a reload that removed the account.
            if let Some(listed) = self.inner.routing.directory.locate(email)
                && !self
                    .inner
                    .routing
                    .probe_cache
                    .known_absent(email, &listed.account)
                && self.inner.accounts.load().get(&listed.account).is_some()
            {
                return Some((listed, RouteSource::Directory));
            }
        }
        let cached = self.inner.routing.probe_cache.lookup(user.key())?;
        Some((cached, RouteSource::ProbeCache))
    }

    /// Resolves `user` once more after Zoom said it is not in `failed`'s account: the new
    /// place if it is elsewhere now, `None` if the resolution names the same account again (an
    /// override or a rule: the platform team's word, which the next sync reports).
    pub(super) async fn resolve_again(
        &self,
        cx: &RequestContext,
        user: &UserRef,
        failed: &UserLocation,
        progress: &mut Progress,
    ) -> Result<Option<UserLocation>, Error> {
        // Zoom's "no such user" applied nothing: what follows must not count as a change sent.
        cx.note_change_refused();
        self.user_left(user, &failed.account);
        let again = self.resolve_user(cx, user, progress).await?;
        Ok((again.account != failed.account).then_some(again))
    }

    /// Forgets that `user` is in `account`, after Zoom said it is not there: it moved. The
    /// next resolution probes unless an override or a rule names the account.
    pub(super) fn user_left(&self, user: &UserRef, account: &AccountName) {
        let routing = &self.inner.routing;
        routing.probe_cache.forget(user.key());
        routing.probe_cache.record_absent(user.key(), account);
        if let UserRef::Email(email) = user {
            routing.directory.forget(email, account);
        }
        tracing::info!(%account, "zoom no longer knows the user there; resolving it again");
    }

    /// Probes for `user` as `cx`'s request would, in `candidates`, for `explain`: the account
    /// where Zoom found the user, or `None`; and the accounts asked.
    pub async fn probe_user_for(
        &self,
        cx: &RequestContext,
        user: &UserRef,
        candidates: &[AccountName],
    ) -> Result<(Option<UserLocation>, Vec<AccountName>), Error> {
        let mut asked = Vec::new();
        let found = self
            .probe_user(cx, user.key(), candidates, &mut asked)
            .await;
        match found {
            Ok(location) => Ok((Some(location), asked)),
            Err(Error::NotFound { .. }) => Ok((None, asked)),
            Err(error) => Err(error),
        }
    }

    /// Probes for a meeting as `cx`'s request would, for `explain`: its ledger entry once
    /// found, or `None`; and the accounts asked.
    pub async fn probe_meeting_for(
        &self,
        cx: &RequestContext,
        meeting_id: i64,
    ) -> Result<(Option<Arc<MeetingRecord>>, Vec<AccountName>), Error> {
        let mut asked = Vec::new();
        match self.probe_meeting(cx, meeting_id, &mut asked).await {
            Ok((record, _)) => Ok((Some(record), asked)),
            Err(Error::NotFound { .. }) => Ok((None, asked)),
            Err(error) => Err(error),
        }
    }

    /// Asks Zoom whether `email` is a user of `account`, through the choke point.
    pub async fn user_exists(
        &self,
        cx: &RequestContext,
        account: &AccountName,
        email: &str,
    ) -> Result<bool, Error> {
        let call = GetUser { user: email };
        let target = Target::User(email);
        match self
            .inner
            .upstream
            .call(cx, account, target, Some(email), call)
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Asks each candidate account for the user; the first 200 decides. Each account asked goes
    /// into `probed`.
    async fn probe_user(
        &self,
        cx: &RequestContext,
        key: &str,
        candidates: &[AccountName],
        probed: &mut Vec<AccountName>,
    ) -> Result<UserLocation, Error> {
        let mut failure = None;
        for account in candidates {
            let ask = self.inner.upstream.call(
                cx,
                account,
                Target::User(key),
                Some(key),
                GetUser { user: key },
            );
            match self
                .probe_account(account, TargetKind::User, key, probed, ask)
                .await
            {
                Some(Ok(zoom_user)) => {
                    let location = UserLocation {
                        account: account.clone(),
                        user_id: zoom_user.id,
                        email: lowercase_email(zoom_user.email.as_deref()),
                    };
                    self.inner
                        .routing
                        .probe_cache
                        .record_found(location.clone());
                    return Ok(location);
                }
                None | Some(Err(Error::NotFound { .. })) => {}
                Some(Err(error)) => failure = failure.or(Some(error)),
            }
        }
        Err(failure.unwrap_or(Error::NotFound {
            kind: TargetKind::User,
            id: key.to_owned(),
        }))
    }

    /// Asks one account during a probe for `key` (what `ask` fetches): not at all when a recent
    /// probe found `key` absent there (`None`); with the account's failure mark while it is
    /// failing; else through Zoom, timed for the hold and noted in `probed`. A NOT_FOUND is
    /// remembered as absence.
    async fn probe_account<T>(
        &self,
        account: &AccountName,
        kind: TargetKind,
        key: &str,
        probed: &mut Vec<AccountName>,
        ask: impl Future<Output = Result<T, Error>>,
    ) -> Option<Result<T, Error>> {
        if self.inner.routing.probe_cache.known_absent(key, account) {
            return None;
        }
        if let Some(error) = self.lookup_failure(account, kind) {
            return Some(Err(error));
        }
        let asked = Instant::now();
        let found = ask.await;
        self.inner.probes.learn(account, kind, asked, &found);
        probed.push(account.clone());
        if matches!(found, Err(Error::NotFound { .. })) {
            self.inner.routing.probe_cache.record_absent(key, account);
        }
        Some(found)
    }

    /// The failure a lookup of `kind` into `account` meets now without asking Zoom: the
    /// account's failure mark, or its open circuit.
    fn lookup_failure(&self, account: &AccountName, kind: TargetKind) -> Option<Error> {
        self.inner.probes.failure(account, kind).or_else(|| {
            let open = self.inner.upstream.quota().pass_would_fail(account)?;
            Some(super::upstream::circuit_open(account, open))
        })
    }

    /// Makes the answer about a target that was not found, or could not be looked up, the same
    /// whether Zoom was asked or not (see [`super::probes`]): while an account a probe would ask
    /// is failing, a NOT_FOUND becomes that failure, and the answer is held as long as the
    /// probes this request did not make would take. Those it made took their real time already;
    /// holding them again would make a real lookup slower than a held one.
    fn settle(
        &self,
        accounts: &[&AccountName],
        kind: TargetKind,
        error: Error,
        progress: &mut Progress,
    ) -> Error {
        let error = match error {
            Error::NotFound { .. } => accounts
                .iter()
                .find_map(|account| self.lookup_failure(account, kind))
                .unwrap_or(error),
            other => other,
        };
        if !matches!(
            error,
            Error::PermissionDenied { .. } | Error::Internal(_) | Error::StoreUnavailable(_)
        ) {
            let saved: Vec<&AccountName> = accounts
                .iter()
                .filter(|account| !progress.probed_accounts.contains(account))
                .copied()
                .collect();
            progress.hold_until = Some(Instant::now() + self.inner.probes.hold(&saved, kind));
        }
        error
    }

    // === the ledger ===

    pub(super) async fn ledger_entry(
        &self,
        meeting_id: i64,
    ) -> Result<Option<Arc<MeetingRecord>>, Error> {
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

    async fn forget_meeting(&self, meeting_id: i64) {
        self.inner.ledger.remove(meeting_id);
        self.inner
            .recorder
            .ledger(LedgerChange::Forget(meeting_id))
            .await;
    }

    /// Reads a meeting in `account` (`host` when known).
    async fn fetch_meeting(
        &self,
        cx: &RequestContext,
        account: &AccountName,
        host: Option<&str>,
        meeting_id: i64,
        occurrence_id: Option<&str>,
    ) -> Result<ZoomMeeting, Error> {
        let target = Target::Meeting(meeting_id);
        let call = GetMeeting {
            id: meeting_id,
            occurrence_id,
        };
        self.inner
            .upstream
            .call(cx, account, target, host, call)
            .await
    }

    /// Runs one Zoom call on a meeting the ledger (or a probe) placed in `account`. A 404 for the
    /// whole meeting means it was deleted behind the gateway's back: its ledger entry goes too,
    /// so the next request looks for it again instead of trusting a stale owner.
    pub(super) async fn routed_call<C: ZoomCall>(
        &self,
        cx: &RequestContext,
        target: &MeetingTarget,
        occurrence_id: Option<&str>,
        call: C,
    ) -> Result<C::Output, Error> {
        let meeting_id = target.record.meeting_id;
        let on = Target::Meeting(meeting_id);
        let host = Some(target.record.host_email.as_str());
        let result = self
            .inner
            .upstream
            .call(cx, &target.account, on, host, call)
            .await;
        self.forget_if_gone(meeting_id, occurrence_id, result).await
    }

    /// Reads a meeting placed in `account`, as [`Meetings::routed_call`] does.
    pub(super) async fn fetch_routed(
        &self,
        cx: &RequestContext,
        account: &AccountName,
        host: Option<&str>,
        meeting_id: i64,
        occurrence_id: Option<&str>,
    ) -> Result<ZoomMeeting, Error> {
        let result = self
            .fetch_meeting(cx, account, host, meeting_id, occurrence_id)
            .await;
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
}

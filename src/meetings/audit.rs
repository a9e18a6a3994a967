//! How a request ends: its audit record, the intent written before a change reaches Zoom, and
//! the rule that an applied change is acknowledged only once its outcome is durable.

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::Instrument;

use super::{Meetings, RequestContext};
use crate::accounts::AccountName;
use crate::error::Error;
use crate::policy::Operation;
use crate::store::{AuditRecord, Completion, LedgerChange, Outcome, StoreError};

/// What an audit record says about the target; filled in as the request is resolved.
#[derive(Default)]
pub(super) struct AuditContext {
    pub account: Option<String>,
    pub user: Option<String>,
    pub meeting_id: Option<i64>,
    pub denied: bool,
    /// The mutation reached Zoom and succeeded, whatever happens afterwards.
    pub applied: bool,
    /// The intent written before the change reached Zoom: its audit record id and time.
    pub intent: Option<(i64, DateTime<Utc>)>,
    /// What the change does to the ledger, written with its outcome.
    pub ledger: Option<LedgerChange>,
}

/// What a request learns on its way: its audit record, and when its answer may leave.
#[derive(Default)]
pub(super) struct Progress {
    pub audit: AuditContext,
    /// The accounts this request's probes asked: their time is real, not held.
    pub probed_accounts: Vec<AccountName>,
    /// The answer must not leave before then (see [`Meetings::settle`]).
    pub hold_until: Option<Instant>,
}

impl Meetings {
    /// Writes the intent of a change before it reaches Zoom, so that a crash leaves an audit
    /// record of outcome unknown. If the store refuses it, nothing reaches Zoom.
    pub(super) async fn begin_change(
        &self,
        cx: &RequestContext,
        audit: &mut AuditContext,
    ) -> Result<(), Error> {
        let intent = AuditRecord {
            id: 0,
            at: Utc::now(),
            caller: cx.caller.name.clone(),
            operation: format!("meetings.{}", cx.operation),
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

    /// Runs `request` until the request's deadline with the progress it fills in, then concludes
    /// it. The conclusion is not cut by the deadline: a change that reached Zoom still gets its
    /// ledger and audit writes.
    pub(super) async fn audited<T>(
        &self,
        cx: &RequestContext,
        request: impl AsyncFnOnce(&mut Progress) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut progress = Progress::default();
        let result = tokio::time::timeout_at(cx.deadline, request(&mut progress))
            .await
            .unwrap_or_else(|_| {
                Err(Error::DeadlineExceeded {
                    sent: cx.change_sent(),
                })
            });
        self.conclude(cx, progress, result).await
    }

    /// Ends a request: writes its audit record, then holds the answer if [`Meetings::settle`]
    /// asked for it (no longer than the deadline), so that the write's time is inside the hold.
    ///
    /// A change Zoom applied is acknowledged only once its outcome is durable; otherwise the
    /// answer says that it was applied and not yet recorded.
    async fn conclude<T>(
        &self,
        cx: &RequestContext,
        progress: Progress,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        let Progress {
            audit, hold_until, ..
        } = progress;
        let applied = audit.applied || (audit.intent.is_some() && result.is_ok());
        let meeting_id = audit.meeting_id;
        let recorded = self.audit(cx, audit, &result).await;
        if let Some(until) = hold_until {
            tokio::time::sleep_until(until.min(cx.deadline)).await;
        }
        match recorded {
            Err(error) if applied => {
                tracing::error!(%error, meeting_id, "a change was applied in Zoom and its record waits for the store");
                Err(Error::NotRecorded {
                    operation: cx.operation,
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
        cx: &RequestContext,
        audit: AuditContext,
        result: &Result<T, Error>,
    ) -> Result<(), StoreError> {
        let mutating = matches!(
            cx.operation,
            Operation::Create | Operation::Update | Operation::Delete | Operation::End
        );
        let (outcome, detail) = match result {
            Ok(_) => (Outcome::Allowed, None),
            Err(Error::NotFound { .. } | Error::PermissionDenied { .. }) if audit.denied => {
                (Outcome::Denied, None)
            }
            // Refused, but answered with the failure a probe would have met.
            Err(error) if audit.denied => (Outcome::Denied, Some(error.reason().to_owned())),
            Err(error) if audit.applied => (
                Outcome::Allowed,
                Some(format!("applied, then {}", error.reason())),
            ),
            // Sent, and no clear answer: Zoom may have made the change.
            Err(error) if audit.intent.is_some() && error.outcome_unknown() => {
                (Outcome::Unknown, Some(error.reason().to_owned()))
            }
            Err(error) => (Outcome::Failed, Some(error.reason().to_owned())),
        };
        if let Some(account) = &audit.account {
            cx.note_account(account);
            self.inner.outcomes.count(account, outcome);
        }
        if !mutating && outcome != Outcome::Denied {
            return Ok(());
        }
        let mut record = AuditRecord {
            id: 0,
            at: Utc::now(),
            caller: cx.caller.name.clone(),
            operation: format!("meetings.{}", cx.operation),
            account: audit.account,
            user: audit.user,
            meeting_id: audit.meeting_id,
            outcome,
            detail,
        };
        let Some((intent_id, at)) = audit.intent else {
            if matches!(result, Err(Error::StoreUnavailable(_))) {
                // The store just refused this request: its record waits in the backlog for the
                // recovery loop, and the answer does not wait for a second refusal.
                let recorder = self.inner.recorder.clone();
                self.inner
                    .tasks
                    .spawn(async move { recorder.keep(record).await }.in_current_span());
            } else {
                self.inner.recorder.append(record).await;
            }
            return Ok(());
        };
        record.at = at;
        let ledger = match (&result, audit.ledger) {
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

//! Writes of the request path that must not be lost while the store refuses them.
//!
//! An intent that cannot be written fails its request before Zoom is called. Everything written
//! after Zoom answered (a change's outcome, a denial, what a probe learned) is kept in a backlog
//! when the store refuses it, and written, in order, as soon as the store takes writes again.
//! Readiness follows [`Recorder::writable`]: false from the first refused write until the
//! store has taken a write check and the backlog is empty.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use super::{AuditRecord, Completion, LedgerChange, Store, StoreError};

/// Best-effort records (denials, probe results) kept at most; completions are always kept,
/// and there are never more of them than changes were in flight when the store failed.
const MAX_BEST_EFFORT: usize = 100_000;

/// The store of the request path, with the writes it refused still to be made.
pub struct Recorder {
    store: Arc<dyn Store>,
    backlog: Mutex<Backlog>,
    /// Whether the backlog holds anything; lets writes skip its lock while the store is healthy.
    deferring: AtomicBool,
    writable: watch::Sender<bool>,
}

#[derive(Default)]
struct Backlog {
    /// In the order of their sequence numbers, given under the lock.
    writes: VecDeque<(u64, Deferred)>,
    next_seq: u64,
    /// The highest sequence number written so far, by any flush.
    written_through: Option<u64>,
    best_effort: usize,
    dropped: u64,
}

/// A write the store refused.
enum Deferred {
    Completion(Completion),
    Audit(AuditRecord),
    Ledger(LedgerChange),
}

impl Deferred {
    fn is_best_effort(&self) -> bool {
        !matches!(self, Deferred::Completion(_))
    }
}

impl Recorder {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            backlog: Mutex::default(),
            deferring: AtomicBool::new(false),
            writable: watch::Sender::new(true),
        }
    }

    /// The store itself, for reads.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Whether the store takes writes and nothing waits to be written; changes as it does.
    pub fn writable(&self) -> watch::Receiver<bool> {
        self.writable.subscribe()
    }

    /// Writes the intent of a change (see [`Store::begin_change`]). Never deferred: a change
    /// whose intent is not durable must not reach Zoom.
    pub async fn begin(&self, intent: &AuditRecord) -> Result<i64, StoreError> {
        self.store
            .begin_change(intent)
            .await
            .inspect_err(|error| self.refused(error))
    }

    /// Completes a change. When the store refuses, the completion is kept and written later,
    /// and the error says that it is not durable yet.
    pub async fn complete(&self, completion: Completion) -> Result<(), StoreError> {
        self.write(Deferred::Completion(completion)).await
    }

    /// Appends an audit record that is not part of a change (a denial, a refused request).
    pub async fn append(&self, record: AuditRecord) {
        // Kept on failure and written later; the caller's answer does not depend on it.
        let _ = self.write(Deferred::Audit(record)).await;
    }

    /// Keeps an audit record for the recovery loop to write, without asking the store now: the
    /// record of a request the store itself just refused.
    pub async fn keep(&self, record: AuditRecord) {
        self.defer(Deferred::Audit(record)).await;
    }

    /// Applies what a lookup learned about a meeting to the ledger.
    pub async fn ledger(&self, change: LedgerChange) {
        let _ = self.write(Deferred::Ledger(change)).await;
    }

    async fn write(&self, write: Deferred) -> Result<(), StoreError> {
        if !self.deferring.load(Ordering::Acquire) {
            match self.apply(&write).await {
                Ok(()) => return Ok(()),
                // A database that gave no connection at all is not asked again at once: the
                // write waits in the backlog for the recovery loop.
                Err(error) if error.is_unreachable() => {
                    self.refused(&error);
                    self.defer(write).await;
                    return Err(error);
                }
                Err(error) => self.refused(&error),
            }
        }
        // Behind earlier refused writes, so that the ledger sees its changes in order.
        let seq = self.defer(write).await;
        let result = self.flush().await;
        let written_through = self.backlog.lock().await.written_through;
        match result {
            // Written, by this flush or by another task's.
            _ if written_through.is_some_and(|w| w >= seq) => Ok(()),
            Ok(()) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn apply(&self, write: &Deferred) -> Result<(), StoreError> {
        match write {
            Deferred::Completion(completion) => self.store.complete_change(completion).await,
            Deferred::Audit(record) => self.store.append_audit(record).await,
            Deferred::Ledger(LedgerChange::Record(meeting)) => {
                self.store.record_meeting(meeting).await
            }
            Deferred::Ledger(LedgerChange::Forget(meeting_id)) => {
                self.store.forget_meeting(*meeting_id).await
            }
            Deferred::Ledger(LedgerChange::None) => Ok(()),
        }
    }

    async fn defer(&self, write: Deferred) -> u64 {
        let mut backlog = self.backlog.lock().await;
        let seq = backlog.next_seq;
        backlog.next_seq += 1;
        if write.is_best_effort() {
            if backlog.best_effort >= MAX_BEST_EFFORT {
                backlog.dropped += 1;
                if backlog.dropped.is_power_of_two() {
                    tracing::error!(
                        dropped = backlog.dropped,
                        "store backlog full: audit records of denials and ledger hints dropped"
                    );
                }
                return seq;
            }
            backlog.best_effort += 1;
        }
        backlog.writes.push_back((seq, write));
        self.deferring.store(true, Ordering::Release);
        seq
    }

    /// Writes the backlog in order until the store refuses.
    async fn flush(&self) -> Result<(), StoreError> {
        let mut backlog = self.backlog.lock().await;
        while let Some((seq, write)) = backlog.writes.front() {
            let seq = *seq;
            if let Err(error) = self.apply(write).await {
                self.refused(&error);
                return Err(error);
            }
            backlog.written_through = Some(seq);
            if let Some((_, write)) = backlog.writes.pop_front()
                && write.is_best_effort()
            {
                backlog.best_effort -= 1;
            }
        }
        self.deferring.store(false, Ordering::Release);
        Ok(())
    }

    /// Checks that the store takes writes, writes the backlog, and updates [`Recorder::writable`].
    /// Returns whether the store is healthy.
    pub async fn recover(&self) -> bool {
        let healthy = match self.store.check_writable().await {
            Ok(()) => self.flush().await.is_ok(),
            Err(error) => {
                self.refused(&error);
                false
            }
        };
        if healthy {
            self.writable.send_if_modified(|writable| {
                let changed = !*writable;
                if changed {
                    tracing::info!("store takes writes again; readiness restored");
                }
                *writable = true;
                changed
            });
        }
        healthy
    }

    /// Runs [`Recorder::recover`] every `interval` until `stop` resolves: also while healthy,
    /// so that a store that breaks while no request writes still turns readiness off.
    pub async fn run(&self, interval: Duration, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = ticks.tick() => {
                    self.recover().await;
                }
            }
        }
    }

    /// The last chance at shutdown: writes what it can and reports what stays unwritten.
    pub async fn finish(&self) {
        if !self.deferring.load(Ordering::Acquire) {
            return;
        }
        self.recover().await;
        let backlog = self.backlog.lock().await;
        if !backlog.writes.is_empty() {
            let completions = backlog.writes.len() - backlog.best_effort;
            tracing::error!(
                completions,
                other = backlog.best_effort,
                "stopping with records the store refused; their changes stay recorded with \
                 outcome unknown"
            );
        }
    }

    fn refused(&self, error: &StoreError) {
        let was_writable = self.writable.send_replace(false);
        if was_writable {
            tracing::error!(%error, "the store refused a write; not ready until it recovers");
        } else {
            tracing::debug!(%error, "the store refused a write");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::store::{
        AuditFilter, DirectoryEntry, MeetingRecord, Outcome, RouteChange, RouteRecord, SqliteStore,
    };

    /// An in-memory SQLite store that refuses every write while `refusing` is set.
    struct Flaky {
        inner: SqliteStore,
        refusing: AtomicBool,
    }

    impl Flaky {
        fn check(&self) -> Result<(), StoreError> {
            if self.refusing.load(Ordering::SeqCst) {
                Err(StoreError::Corrupt("refusing on purpose".into()))
            } else {
                Ok(())
            }
        }
    }

    #[async_trait::async_trait]
    impl Store for Flaky {
        async fn record_meeting(&self, meeting: &MeetingRecord) -> Result<(), StoreError> {
            self.check()?;
            self.inner.record_meeting(meeting).await
        }
        async fn meeting(&self, meeting_id: i64) -> Result<Option<MeetingRecord>, StoreError> {
            self.inner.meeting(meeting_id).await
        }
        async fn forget_meeting(&self, meeting_id: i64) -> Result<(), StoreError> {
            self.check()?;
            self.inner.forget_meeting(meeting_id).await
        }
        async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
            self.check()?;
            self.inner.append_audit(record).await
        }
        async fn begin_change(&self, intent: &AuditRecord) -> Result<i64, StoreError> {
            self.check()?;
            self.inner.begin_change(intent).await
        }
        async fn complete_change(&self, completion: &Completion) -> Result<(), StoreError> {
            self.check()?;
            self.inner.complete_change(completion).await
        }
        async fn check_writable(&self) -> Result<(), StoreError> {
            self.check()?;
            self.inner.check_writable().await
        }
        async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
            self.inner.audit(filter).await
        }
        async fn change_route(
            &self,
            change: &RouteChange,
            audit: &AuditRecord,
        ) -> Result<Option<RouteRecord>, StoreError> {
            self.check()?;
            self.inner.change_route(change, audit).await
        }
        async fn route(&self, email: &str) -> Result<Option<RouteRecord>, StoreError> {
            self.inner.route(email).await
        }
        async fn replace_directory(
            &self,
            account: &crate::accounts::AccountName,
            users: &[DirectoryEntry],
        ) -> Result<(), StoreError> {
            self.check()?;
            self.inner.replace_directory(account, users).await
        }
        async fn directory(&self) -> Result<Vec<DirectoryEntry>, StoreError> {
            self.inner.directory().await
        }
        async fn claim_create(
            &self,
            request: &super::super::CreateRequest,
            expired_before: chrono::DateTime<chrono::Utc>,
            stale_before: chrono::DateTime<chrono::Utc>,
        ) -> Result<super::super::Claim, StoreError> {
            self.check()?;
            self.inner
                .claim_create(request, expired_before, stale_before)
                .await
        }
        async fn finish_create(
            &self,
            caller: &str,
            request_id: &str,
            end: super::super::CreateEnd,
        ) -> Result<(), StoreError> {
            self.check()?;
            self.inner.finish_create(caller, request_id, end).await
        }
        async fn purge_creates(
            &self,
            before: chrono::DateTime<chrono::Utc>,
        ) -> Result<u64, StoreError> {
            self.check()?;
            self.inner.purge_creates(before).await
        }
        async fn take_user_call(
            &self,
            day: &super::super::UserDay,
            cap: u32,
        ) -> Result<bool, StoreError> {
            self.check()?;
            self.inner.take_user_call(day, cap).await
        }
        async fn give_back_user_call(&self, day: &super::super::UserDay) -> Result<(), StoreError> {
            self.check()?;
            self.inner.give_back_user_call(day).await
        }
        async fn fill_user_day(
            &self,
            day: &super::super::UserDay,
            cap: u32,
        ) -> Result<(), StoreError> {
            self.check()?;
            self.inner.fill_user_day(day, cap).await
        }
        async fn routes(
            &self,
            after: Option<&str>,
            limit: u32,
        ) -> Result<Vec<RouteRecord>, StoreError> {
            self.inner.routes(after, limit).await
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_750_000_000_000).expect("in range")
    }

    fn record(operation: &str, outcome: Outcome) -> AuditRecord {
        AuditRecord {
            id: 0,
            at: at(),
            caller: "crm".into(),
            operation: operation.into(),
            account: Some("sales".into()),
            user: Some("alice@example.com".into()),
            meeting_id: None,
            outcome,
            detail: None,
        }
    }

    fn meeting(meeting_id: i64) -> MeetingRecord {
        MeetingRecord {
            meeting_id,
            account: crate::accounts::AccountName::parse("sales").unwrap(),
            host_id: "u1".into(),
            host_email: "alice@example.com".into(),
            created_by: "crm".into(),
            created_at: at(),
        }
    }

    async fn flaky() -> Arc<Flaky> {
        Arc::new(Flaky {
            inner: SqliteStore::open_in_memory().await.unwrap(),
            refusing: AtomicBool::new(false),
        })
    }

    #[tokio::test]
    async fn a_refused_intent_fails_and_readiness_drops() {
        let store = flaky().await;
        let recorder = Recorder::new(store.clone());
        let writable = recorder.writable();
        store.refusing.store(true, Ordering::SeqCst);
        let intent = record("meetings.create", Outcome::Unknown);
        assert!(recorder.begin(&intent).await.is_err());
        assert!(!*writable.borrow());
        assert!(!recorder.recover().await);
        store.refusing.store(false, Ordering::SeqCst);
        assert!(recorder.recover().await);
        assert!(*writable.borrow());
    }

    #[tokio::test]
    async fn a_refused_completion_is_written_once_the_store_recovers() {
        let store = flaky().await;
        let recorder = Recorder::new(store.clone());
        let intent = record("meetings.create", Outcome::Unknown);
        let intent_id = recorder.begin(&intent).await.unwrap();

        store.refusing.store(true, Ordering::SeqCst);
        let mut done = record("meetings.create", Outcome::Allowed);
        done.meeting_id = Some(81);
        let completion = Completion {
            intent_id,
            record: done,
            ledger: LedgerChange::Record(meeting(81)),
        };
        assert!(recorder.complete(completion).await.is_err());
        recorder
            .append(record("meetings.get", Outcome::Denied))
            .await;
        let unknown = store.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].outcome, Outcome::Unknown, "the intent stays");
        assert!(!*recorder.writable().borrow());

        store.refusing.store(false, Ordering::SeqCst);
        assert!(recorder.recover().await);
        let log = store.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(
            log.len(),
            2,
            "the intent is completed, not duplicated: {log:?}"
        );
        let created = log.iter().find(|r| r.id == intent_id).unwrap();
        assert_eq!(created.outcome, Outcome::Allowed);
        assert_eq!(created.meeting_id, Some(81));
        assert!(log.iter().any(|r| r.outcome == Outcome::Denied));
        assert_eq!(store.meeting(81).await.unwrap(), Some(meeting(81)));
        assert!(*recorder.writable().borrow());
    }

    #[tokio::test]
    async fn deferred_ledger_changes_keep_their_order() {
        let store = flaky().await;
        let recorder = Recorder::new(store.clone());
        store.refusing.store(true, Ordering::SeqCst);
        recorder.ledger(LedgerChange::Record(meeting(7))).await;
        // The store is back, but the forget must not overtake the record still waiting.
        store.refusing.store(false, Ordering::SeqCst);
        recorder.ledger(LedgerChange::Forget(7)).await;
        assert!(recorder.recover().await);
        assert_eq!(store.meeting(7).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_completion_whose_intent_was_lost_is_appended_whole() {
        let store = flaky().await;
        let recorder = Recorder::new(store.clone());
        let mut done = record("meetings.delete", Outcome::Allowed);
        done.meeting_id = Some(5);
        let completion = Completion {
            intent_id: 999,
            record: done.clone(),
            ledger: LedgerChange::Forget(5),
        };
        recorder.complete(completion).await.unwrap();
        let log = store.audit(&AuditFilter::default()).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(
            AuditRecord {
                id: 0,
                ..log[0].clone()
            },
            done
        );
    }
}

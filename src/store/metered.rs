//! A [`Store`] that times every operation and counts its failures, for the gateway's metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AuditFilter, AuditRecord, Claim, Completion, CreateEnd, CreateRequest, DirectoryEntry,
    MeetingRecord, RouteChange, RouteRecord, Store, StoreError, UserDay,
};
use crate::accounts::AccountName;
use crate::telemetry::metrics::Metrics;

/// Wraps a store; every call goes to it unchanged.
pub struct Metered {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl Metered {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .store_operation(operation, result.is_err(), started.elapsed());
        result
    }
}

#[async_trait]
impl Store for Metered {
    async fn record_meeting(&self, meeting: &MeetingRecord) -> Result<(), StoreError> {
        self.timed("record_meeting", self.inner.record_meeting(meeting))
            .await
    }

    async fn meeting(&self, meeting_id: i64) -> Result<Option<MeetingRecord>, StoreError> {
        self.timed("meeting", self.inner.meeting(meeting_id)).await
    }

    async fn forget_meeting(&self, meeting_id: i64) -> Result<(), StoreError> {
        self.timed("forget_meeting", self.inner.forget_meeting(meeting_id))
            .await
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.timed("append_audit", self.inner.append_audit(record))
            .await
    }

    async fn begin_change(&self, intent: &AuditRecord) -> Result<i64, StoreError> {
        self.timed("begin_change", self.inner.begin_change(intent))
            .await
    }

    async fn complete_change(&self, completion: &Completion) -> Result<(), StoreError> {
        self.timed("complete_change", self.inner.complete_change(completion))
            .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.timed("check_writable", self.inner.check_writable())
            .await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.timed("audit", self.inner.audit(filter)).await
    }

    async fn change_route(
        &self,
        change: &RouteChange,
        audit: &AuditRecord,
    ) -> Result<Option<RouteRecord>, StoreError> {
        self.timed("change_route", self.inner.change_route(change, audit))
            .await
    }

    async fn route(&self, email: &str) -> Result<Option<RouteRecord>, StoreError> {
        self.timed("route", self.inner.route(email)).await
    }

    async fn routes(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RouteRecord>, StoreError> {
        self.timed("routes", self.inner.routes(after, limit)).await
    }

    async fn replace_directory(
        &self,
        account: &AccountName,
        users: &[DirectoryEntry],
    ) -> Result<(), StoreError> {
        self.timed(
            "replace_directory",
            self.inner.replace_directory(account, users),
        )
        .await
    }

    async fn directory(&self) -> Result<Vec<DirectoryEntry>, StoreError> {
        self.timed("directory", self.inner.directory()).await
    }

    async fn claim_create(
        &self,
        request: &CreateRequest,
        expired_before: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        self.timed(
            "claim_create",
            self.inner
                .claim_create(request, expired_before, stale_before),
        )
        .await
    }

    async fn finish_create(
        &self,
        caller: &str,
        request_id: &str,
        end: CreateEnd,
    ) -> Result<(), StoreError> {
        self.timed(
            "finish_create",
            self.inner.finish_create(caller, request_id, end),
        )
        .await
    }

    async fn purge_creates(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.timed("purge_creates", self.inner.purge_creates(before))
            .await
    }

    async fn take_user_call(&self, day: &UserDay, cap: u32) -> Result<bool, StoreError> {
        self.timed("take_user_call", self.inner.take_user_call(day, cap))
            .await
    }

    async fn give_back_user_call(&self, day: &UserDay) -> Result<(), StoreError> {
        self.timed("give_back_user_call", self.inner.give_back_user_call(day))
            .await
    }

    async fn fill_user_day(&self, day: &UserDay, cap: u32) -> Result<(), StoreError> {
        self.timed("fill_user_day", self.inner.fill_user_day(day, cap))
            .await
    }

    async fn close(&self) {
        self.inner.close().await;
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<super::Change>> {
        self.inner.changes()
    }

    fn shared_budget(&self) -> Option<Arc<dyn super::SharedBudget>> {
        self.inner.shared_budget()
    }
}

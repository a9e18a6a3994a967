//! The `zoomgate.v1.Admin` service: proto in, [`crate::admin`] use cases, proto out.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::{CallMetadata, answer};
use crate::accounts::AccountName;
use crate::admin::explain::{ExplainTarget, Explanation, Placement};
use crate::admin::{AccountView, Admin, AdminContext, ExplainQuery};
use crate::directory::Conflict;
use crate::error::{Error, TargetKind};
use crate::meetings::{RequestId, SyncReport, UserRef, validate};
use crate::policy::{Decision, LivePolicy, Operation};
use crate::proto;
use crate::proto::admin_server::AdminServer;
use crate::routing::RouteSource;
use crate::store::{AuditFilter, AuditRecord, Outcome, RouteRecord};
use crate::telemetry::metrics::Metrics;

/// The `zoomgate.v1.Admin` service.
#[derive(Clone)]
pub struct AdminService {
    admin: Admin,
    request_timeout: Duration,
}

/// The Admin service behind the same caller authentication as Meetings.
pub type AuthenticatedAdmin = tonic::service::interceptor::InterceptedService<
    AdminServer<AdminService>,
    super::Authenticator,
>;

impl AdminService {
    pub fn new(admin: Admin, request_timeout: Duration) -> Self {
        Self {
            admin,
            request_timeout,
        }
    }

    pub fn into_server(
        self,
        policy: LivePolicy,
        metrics: Arc<Metrics>,
        max_message_bytes: usize,
    ) -> AuthenticatedAdmin {
        let server = AdminServer::new(self).max_decoding_message_size(max_message_bytes);
        tonic::service::interceptor::InterceptedService::new(
            server,
            super::Authenticator { policy, metrics },
        )
    }

    /// Runs one admin call in its span, answering with its request id.
    async fn call<T, R, F, Fut>(
        &self,
        rpc: &'static str,
        request: Request<T>,
        run: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(Admin, AdminContext, T) -> Fut,
        Fut: Future<Output = Result<R, Error>>,
    {
        let call = CallMetadata::of(&request, self.request_timeout)?;
        let request_id = RequestId::from_client(call.request_id);
        let span = tracing::info_span!(
            "admin",
            request_id = %request_id,
            caller = %call.caller.name,
            rpc,
        );
        let now = tokio::time::Instant::now();
        let cx = AdminContext {
            caller: call.caller,
            request_id: request_id.clone(),
            deadline: now.checked_add(call.timeout).unwrap_or(now),
        };
        let deadline = cx.deadline;
        let work = run(self.admin.clone(), cx, request.into_inner());
        let result = tokio::time::timeout_at(deadline, work)
            .instrument(span)
            .await
            .unwrap_or(Err(Error::DeadlineExceeded { sent: false }));
        answer(&request_id, result)
    }
}

#[tonic::async_trait]
impl proto::admin_server::Admin for AdminService {
    async fn list_accounts(
        &self,
        request: Request<proto::ListAccountsRequest>,
    ) -> Result<Response<proto::ListAccountsResponse>, Status> {
        self.call("ListAccounts", request, async |admin, cx, _| {
            let accounts = admin.list_accounts(&cx)?;
            Ok(proto::ListAccountsResponse {
                accounts: accounts.into_iter().map(account_proto).collect(),
            })
        })
        .await
    }

    async fn get_account(
        &self,
        request: Request<proto::GetAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        self.call("GetAccount", request, async |admin, cx, request| {
            admin.get_account(&cx, &request.name).map(account_proto)
        })
        .await
    }

    async fn get_route(
        &self,
        request: Request<proto::GetRouteRequest>,
    ) -> Result<Response<proto::Route>, Status> {
        self.call("GetRoute", request, async |admin, cx, request| {
            admin
                .get_route(&cx, &request.user_email)
                .await
                .map(route_proto)
        })
        .await
    }

    async fn put_route(
        &self,
        request: Request<proto::PutRouteRequest>,
    ) -> Result<Response<proto::Route>, Status> {
        self.call("PutRoute", request, async |admin, cx, request| {
            let (email, account) = (&request.user_email, &request.account);
            admin
                .put_route(&cx, email, account, request.force)
                .await
                .map(route_proto)
        })
        .await
    }

    async fn delete_route(
        &self,
        request: Request<proto::DeleteRouteRequest>,
    ) -> Result<Response<proto::DeleteRouteResponse>, Status> {
        self.call("DeleteRoute", request, async |admin, cx, request| {
            let removed = admin.delete_route(&cx, &request.user_email).await?;
            Ok(proto::DeleteRouteResponse {
                removed: Some(route_proto(removed)),
            })
        })
        .await
    }

    async fn list_routes(
        &self,
        request: Request<proto::ListRoutesRequest>,
    ) -> Result<Response<proto::ListRoutesResponse>, Status> {
        self.call("ListRoutes", request, async |admin, cx, request| {
            let page = admin
                .list_routes(&cx, request.page_size, &request.page_token)
                .await?;
            Ok(proto::ListRoutesResponse {
                routes: page.items.into_iter().map(route_proto).collect(),
                next_page_token: page.next_page_token,
            })
        })
        .await
    }

    async fn explain(
        &self,
        request: Request<proto::ExplainRequest>,
    ) -> Result<Response<proto::Explanation>, Status> {
        self.call("Explain", request, async |admin, cx, request| {
            let query = explain_query(request)?;
            admin.explain(&cx, query).await.map(explanation_proto)
        })
        .await
    }

    async fn sync_directory(
        &self,
        request: Request<proto::SyncDirectoryRequest>,
    ) -> Result<Response<proto::SyncReport>, Status> {
        self.call("SyncDirectory", request, async |admin, cx, _| {
            admin.sync_directory(&cx).await.map(sync_report_proto)
        })
        .await
    }

    async fn get_sync_report(
        &self,
        request: Request<proto::GetSyncReportRequest>,
    ) -> Result<Response<proto::SyncReport>, Status> {
        self.call("GetSyncReport", request, async |admin, cx, _| {
            admin.last_sync(&cx).await.map(sync_report_proto)
        })
        .await
    }

    async fn list_audit(
        &self,
        request: Request<proto::ListAuditRequest>,
    ) -> Result<Response<proto::ListAuditResponse>, Status> {
        self.call("ListAudit", request, async |admin, cx, request| {
            let (size, token) = (request.page_size, request.page_token.clone());
            let filter = audit_filter(request)?;
            let page = admin.list_audit(&cx, filter, size, &token).await?;
            Ok(proto::ListAuditResponse {
                records: page.items.into_iter().map(audit_proto).collect(),
                next_page_token: page.next_page_token,
            })
        })
        .await
    }
}

// === requests ===

fn sync_report_proto(report: SyncReport) -> proto::SyncReport {
    let names = |accounts: &[AccountName]| accounts.iter().map(ToString::to_string).collect();
    proto::SyncReport {
        start_time: Some(timestamp(report.started_at)),
        finish_time: Some(timestamp(report.finished_at)),
        accounts: report
            .accounts
            .into_iter()
            .map(|a| proto::AccountSync {
                account: a.account.to_string(),
                users: u32::try_from(a.users).unwrap_or(u32::MAX),
                error: a.error.unwrap_or_default(),
            })
            .collect(),
        conflicts: report
            .conflicts
            .into_iter()
            .map(|conflict| {
                let mut answer = proto::Conflict {
                    kind: conflict.kind().to_owned(),
                    user_email: conflict.email().to_owned(),
                    description: conflict.to_string(),
                    ..Default::default()
                };
                match conflict {
                    Conflict::InSeveralAccounts { accounts, .. } => {
                        answer.found_in = names(&accounts);
                    }
                    Conflict::RuleElsewhere {
                        place,
                        rule_account,
                        found,
                        ..
                    } => {
                        answer.rule = place;
                        answer.claimed_account = rule_account.to_string();
                        answer.found_in = names(&found);
                    }
                    Conflict::RouteElsewhere {
                        route_account,
                        found,
                        ..
                    } => {
                        answer.claimed_account = route_account.to_string();
                        answer.found_in = names(&found);
                    }
                    Conflict::RouteToMissingUser { account, .. } => {
                        answer.claimed_account = account.to_string();
                    }
                }
                answer
            })
            .collect(),
    }
}

fn explain_query(request: proto::ExplainRequest) -> Result<ExplainQuery, Error> {
    use proto::explain_request::Target;
    let target = match &request.target {
        Some(Target::UserEmail(email)) => match validate::user_email(email)? {
            UserRef::Email(email) => Ok(ExplainTarget::UserEmail(email)),
            UserRef::Id(id) => Ok(ExplainTarget::UserId(id)),
        },
        Some(Target::UserId(id)) => match validate::user_id(id)? {
            UserRef::Id(id) => Ok(ExplainTarget::UserId(id)),
            UserRef::Email(email) => Ok(ExplainTarget::UserEmail(email)),
        },
        Some(Target::MeetingId(id)) => validate::meeting_id(*id).map(ExplainTarget::Meeting),
        None => Err(Error::invalid(
            "target",
            "set user_email, user_id or meeting_id",
        )),
    };
    let operation = operation_of(request.operation);
    let (target, operation) = super::both(target, operation)?;
    if request.caller.is_empty() {
        return Err(Error::invalid("caller", "must not be empty"));
    }
    Ok(ExplainQuery {
        caller: request.caller,
        target,
        operation,
        probe: request.probe,
    })
}

/// The API's name of an operation.
pub fn operation_proto(op: Operation) -> proto::Operation {
    use proto::Operation as P;
    match op {
        Operation::Read => P::Read,
        Operation::List => P::List,
        Operation::Create => P::Create,
        Operation::Update => P::Update,
        Operation::Delete => P::Delete,
        Operation::End => P::End,
    }
}

fn operation_of(value: i32) -> Result<Operation, Error> {
    use proto::Operation as P;
    match P::try_from(value) {
        Ok(P::Read) => Ok(Operation::Read),
        Ok(P::List) => Ok(Operation::List),
        Ok(P::Create) => Ok(Operation::Create),
        Ok(P::Update) => Ok(Operation::Update),
        Ok(P::Delete) => Ok(Operation::Delete),
        Ok(P::End) => Ok(Operation::End),
        Ok(P::Unspecified) | Err(_) => Err(Error::invalid(
            "operation",
            "set one of READ, LIST, CREATE, UPDATE, DELETE, END",
        )),
    }
}

fn audit_filter(request: proto::ListAuditRequest) -> Result<AuditFilter, Error> {
    let text = |value: String| (!value.is_empty()).then_some(value);
    let outcome = match request.outcome.as_str() {
        "" => None,
        other => Some(
            other
                .parse::<Outcome>()
                .map_err(|error| Error::invalid("outcome", error.to_string()))?,
        ),
    };
    let time = |ts: Option<Timestamp>, field: &str| -> Result<Option<DateTime<Utc>>, Error> {
        ts.map(|ts| {
            u32::try_from(ts.nanos)
                .ok()
                .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
                .ok_or_else(|| Error::invalid(field, "is not a valid time"))
        })
        .transpose()
    };
    Ok(AuditFilter {
        caller: text(request.caller),
        operation: text(request.operation),
        account: text(request.account),
        user: text(request.user),
        meeting_id: (request.meeting_id != 0).then_some(request.meeting_id),
        outcome,
        since: time(request.since, "since")?,
        until: time(request.until, "until")?,
        after: None,
        limit: None,
    })
}

// === responses ===

fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn account_proto(view: AccountView) -> proto::Account {
    let token = view.token;
    let (last_error_time, last_error) = match token.last_error {
        Some((at, error)) => (Some(timestamp(at)), error),
        None => (None, String::new()),
    };
    proto::Account {
        name: view.name.to_string(),
        zoom_account_id: view.zoom_account_id,
        plan: view.plan.as_str().to_owned(),
        token: Some(proto::TokenState {
            valid_until: token.valid_until.map(timestamp),
            last_fetch: token.last_fetch.map(timestamp),
            last_error_time,
            last_error,
            cooldown: token
                .cooldown
                .and_then(|left| prost_types::Duration::try_from(left).ok()),
            fetches: token.fetches,
        }),
        failure_marks: view
            .failure_marks
            .into_iter()
            .map(|(kind, reason)| proto::FailureMark {
                lookup: match kind {
                    TargetKind::User => "user",
                    TargetKind::Meeting => "meeting",
                }
                .to_owned(),
                reason: reason.to_owned(),
            })
            .collect(),
        requests: Some(proto::RequestCounts {
            allowed: view.requests.allowed,
            denied: view.requests.denied,
            failed: view.requests.failed,
            unknown: view.requests.unknown,
        }),
        budget: Some(proto::Budget {
            circuit: view.budget.circuit.as_str().to_owned(),
            waiting: u32::try_from(view.budget.waiting).unwrap_or(u32::MAX),
            categories: view
                .budget
                .categories
                .into_iter()
                .map(|budget| proto::CategoryBudget {
                    category: budget.category.as_str().to_owned(),
                    per_second: budget.allowance.per_second,
                    daily: budget.allowance.daily.unwrap_or_default(),
                    paused_for: budget
                        .paused_for
                        .and_then(|left| prost_types::Duration::try_from(left).ok()),
                    daily_left: budget.daily_left.unwrap_or_default(),
                })
                .collect(),
        }),
    }
}

fn route_proto(route: RouteRecord) -> proto::Route {
    proto::Route {
        user_email: route.email,
        account: route.account.to_string(),
        set_by: route.set_by,
        set_time: Some(timestamp(route.set_at)),
        forced: route.forced,
    }
}

/// The explanation as the API answers it; `zoomgate explain --config` prints the same.
pub fn explanation_proto(explanation: Explanation) -> proto::Explanation {
    use proto::explanation::Source;
    let mut answer = proto::Explanation {
        user_email: explanation.user_email.unwrap_or_default(),
        visible_fields: explanation
            .visible_fields
            .iter()
            .map(|field| field.as_str().to_owned())
            .collect(),
        ..Default::default()
    };
    match explanation.placement {
        Placement::Known { account, source } => {
            answer.account = account.to_string();
            let source = match source {
                RouteSource::Override => Source::Override,
                RouteSource::ConfigRule(place) => {
                    answer.rule = place.to_string();
                    Source::ConfigRule
                }
                RouteSource::Directory => Source::Directory,
                RouteSource::ProbeCache => Source::ProbeCache,
                RouteSource::Ledger => Source::Ledger,
                RouteSource::Probe => Source::Probe,
            };
            answer.set_source(source);
        }
        Placement::ProbeNeeded { accounts } => {
            answer.set_source(Source::ProbeNeeded);
            answer.probe_accounts = accounts.iter().map(ToString::to_string).collect();
        }
        Placement::Probed { found, asked } => {
            answer.set_source(Source::Probe);
            answer.account = found.map(|a| a.to_string()).unwrap_or_default();
            answer.probe_accounts = asked.iter().map(ToString::to_string).collect();
        }
    }
    match explanation.decision {
        Some(Decision::Allowed(grant)) => {
            answer.allowed = Some(true);
            answer.grant = grant.to_string();
        }
        Some(Decision::Denied(why)) => {
            answer.allowed = Some(false);
            answer.denial = why.to_string();
        }
        None => {}
    }
    answer
}

fn audit_proto(record: AuditRecord) -> proto::AuditRecord {
    proto::AuditRecord {
        id: record.id,
        time: Some(timestamp(record.at)),
        caller: record.caller,
        operation: record.operation,
        account: record.account.unwrap_or_default(),
        user: record.user.unwrap_or_default(),
        meeting_id: record.meeting_id.unwrap_or_default(),
        outcome: record.outcome.to_string(),
        detail: record.detail.unwrap_or_default(),
    }
}

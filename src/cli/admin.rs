//! `zoomgate admin ...` (the Admin API from a terminal) and `zoomgate explain --config` (the
//! same explanation from a candidate config file, no server).

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{AuditFilterArgs, EXIT_USAGE, ServerArgs, json_out, print_status};
use crate::admin::explain::{self, ExplainTarget};
use crate::config::Config;
use crate::grpc::admin::{explanation_proto, operation_proto};
use crate::meetings::{UserRef, validate};
use crate::policy::Operation;
use crate::proto;
use crate::proto::admin_client::AdminClient;

#[derive(Debug, Args)]
pub(super) struct AdminArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Shows the accounts: token state, failure marks, requests by outcome.
    Accounts {
        /// One account; all of them when omitted.
        name: Option<String>,
    },
    /// Shows and changes route overrides (user -> account).
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// Tells where a request would go and whether its caller's grants allow it.
    Explain {
        #[command(flatten)]
        question: Question,
        /// Ask Zoom when nothing the gateway holds places the target.
        #[arg(long)]
        probe: bool,
    },
    /// Lists audit records, newest first.
    Audit(AuditQuery),
    /// Reads every account's users into the directory now and reports conflicts.
    Sync {
        /// Shows the last sync's report instead of running one.
        #[arg(long)]
        last: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RoutesCommand {
    /// Lists route overrides in email order.
    List {
        #[arg(long)]
        page_size: Option<i32>,
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Shows the route of one user.
    Get { email: String },
    /// Sends a user to an account; the user must exist there unless --force.
    Put {
        email: String,
        account: String,
        #[arg(long)]
        force: bool,
    },
    /// Removes the route of a user.
    Delete { email: String },
}

/// Who does what to which target.
#[derive(Debug, Args)]
pub(super) struct Question {
    /// The caller, by its config name.
    #[arg(long)]
    caller: String,
    /// The target user's email.
    #[arg(long, group = "target")]
    user: Option<String>,
    /// The target user's Zoom id.
    #[arg(long, group = "target")]
    user_id: Option<String>,
    /// The target meeting.
    #[arg(long, group = "target")]
    meeting_id: Option<i64>,
    /// The operation: read, list, create, update, delete or end.
    #[arg(long, value_parser = parse_operation)]
    op: Operation,
}

/// Reads an operation as grants name it.
fn parse_operation(name: &str) -> Result<Operation, String> {
    Operation::parse(name)
        .ok_or_else(|| format!("`{name}`: use read, list, create, update, delete or end"))
}

#[derive(Debug, Args)]
struct AuditQuery {
    #[command(flatten)]
    filter: AuditFilterArgs,
    #[arg(long)]
    page_size: Option<i32>,
    #[arg(long)]
    page_token: Option<String>,
}

pub(super) async fn admin(args: AdminArgs) -> ExitCode {
    let mut client = match args.server.connect().await {
        Ok(channel) => AdminClient::new(channel),
        Err(code) => return code,
    };
    let json = args.server.json;
    let result = match args.command {
        AdminCommand::Accounts { name: None } => client
            .list_accounts(proto::ListAccountsRequest {})
            .await
            .map(|r| print_accounts(&r.into_inner().accounts, json)),
        AdminCommand::Accounts { name: Some(name) } => client
            .get_account(proto::GetAccountRequest { name })
            .await
            .map(|r| print_accounts(&[r.into_inner()], json)),
        AdminCommand::Routes(RoutesCommand::List {
            page_size,
            page_token,
        }) => client
            .list_routes(proto::ListRoutesRequest {
                page_size: page_size.unwrap_or_default(),
                page_token: page_token.unwrap_or_default(),
            })
            .await
            .map(|r| {
                let page = r.into_inner();
                print_routes(&page.routes, &page.next_page_token, json);
            }),
        AdminCommand::Routes(RoutesCommand::Get { email }) => client
            .get_route(proto::GetRouteRequest { user_email: email })
            .await
            .map(|r| print_routes(&[r.into_inner()], "", json)),
        AdminCommand::Routes(RoutesCommand::Put {
            email,
            account,
            force,
        }) => client
            .put_route(proto::PutRouteRequest {
                user_email: email,
                account,
                force,
            })
            .await
            .map(|r| print_routes(&[r.into_inner()], "", json)),
        AdminCommand::Routes(RoutesCommand::Delete { email }) => client
            .delete_route(proto::DeleteRouteRequest { user_email: email })
            .await
            .map(|r| {
                let removed: Vec<_> = r.into_inner().removed.into_iter().collect();
                print_routes(&removed, "", json);
            }),
        AdminCommand::Explain { question, probe } => {
            let request = explain_request(question, probe);
            client
                .explain(request)
                .await
                .map(|r| print_explanation(&r.into_inner(), json))
        }
        AdminCommand::Sync { last } => {
            let report = if last {
                client.get_sync_report(proto::GetSyncReportRequest {}).await
            } else {
                client.sync_directory(proto::SyncDirectoryRequest {}).await
            };
            report.map(|r| print_sync_report(&r.into_inner(), json))
        }
        AdminCommand::Audit(query) => client
            .list_audit(audit_request(query))
            .await
            .map(|r| print_audit_page(&r.into_inner(), json)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(status) => {
            print_status(&status, json);
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct OfflineExplainArgs {
    /// The candidate gateway config file; secrets, TLS files and the store are not read.
    #[arg(long, short)]
    config: PathBuf,
    #[command(flatten)]
    question: Question,
    #[arg(long)]
    json: bool,
}

/// Explains from a config file alone, with the decision code the gateway runs.
pub(super) fn offline_explain(args: OfflineExplainArgs) -> ExitCode {
    let config = match Config::load_for_review(&args.config) {
        Ok(config) => config,
        Err(error) => {
            errln!("{}: {error}", args.config.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let question = &args.question;
    let target = match target_of(question) {
        Ok(target) => target,
        Err(message) => {
            errln!("error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(caller) = config.policy.caller(&question.caller) else {
        errln!(
            "error: {}: no caller `{}`",
            args.config.display(),
            question.caller
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let op = question.op;
    let explanation = explain::offline(&caller, &config.routing.rules, &target, op);
    print_explanation(&explanation_proto(explanation), args.json);
    ExitCode::SUCCESS
}

/// The target of a question, checked as the gateway checks it.
fn target_of(question: &Question) -> Result<ExplainTarget, String> {
    let named = |result: Result<UserRef, crate::error::Error>| match result {
        Ok(UserRef::Email(email)) => Ok(ExplainTarget::UserEmail(email)),
        Ok(UserRef::Id(id)) => Ok(ExplainTarget::UserId(id)),
        Err(error) => Err(error.to_string()),
    };
    match (&question.user, &question.user_id, question.meeting_id) {
        (Some(email), _, _) => named(validate::user_email(email)),
        (_, Some(id), _) => named(validate::user_id(id)),
        (_, _, Some(id)) => validate::meeting_id(id)
            .map(ExplainTarget::Meeting)
            .map_err(|error| error.to_string()),
        _ => Err("give --user, --user-id or --meeting-id".to_owned()),
    }
}

fn explain_request(question: Question, probe: bool) -> proto::ExplainRequest {
    use proto::explain_request::Target;
    let target = match (question.user, question.user_id, question.meeting_id) {
        (Some(email), _, _) => Some(Target::UserEmail(email)),
        (_, Some(id), _) => Some(Target::UserId(id)),
        (_, _, Some(id)) => Some(Target::MeetingId(id)),
        _ => None,
    };
    proto::ExplainRequest {
        caller: question.caller,
        target,
        operation: operation_proto(question.op).into(),
        probe,
    }
}

fn audit_request(query: AuditQuery) -> proto::ListAuditRequest {
    let timestamp = |time: Option<DateTime<Utc>>| {
        time.map(|t| prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        })
    };
    let filter = query.filter.into_filter();
    proto::ListAuditRequest {
        caller: filter.caller.unwrap_or_default(),
        operation: filter.operation.unwrap_or_default(),
        account: filter.account.unwrap_or_default(),
        user: filter.user.unwrap_or_default(),
        meeting_id: filter.meeting_id.unwrap_or_default(),
        outcome: filter.outcome.map(|o| o.to_string()).unwrap_or_default(),
        since: timestamp(filter.since),
        until: timestamp(filter.until),
        page_size: query.page_size.unwrap_or_default(),
        page_token: query.page_token.unwrap_or_default(),
    }
}

// === output ===

fn time_text(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, 0))
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| "-".to_owned())
}

fn account_json(a: &proto::Account) -> Value {
    let token = a.token.clone().unwrap_or_default();
    let requests = a.requests.unwrap_or_default();
    json!({
        "name": a.name,
        "zoom_account_id": a.zoom_account_id,
        "plan": a.plan,
        "token": {
            "valid_until": token.valid_until.as_ref().map(|t| time_text(Some(t))),
            "last_fetch": token.last_fetch.as_ref().map(|t| time_text(Some(t))),
            "last_error": (!token.last_error.is_empty()).then_some(&token.last_error),
            "last_error_time": token.last_error_time.as_ref().map(|t| time_text(Some(t))),
            "cooldown_secs": token.cooldown.map(|d| d.seconds),
            "fetches": token.fetches,
        },
        "failure_marks": a.failure_marks.iter()
            .map(|m| json!({ "lookup": m.lookup, "reason": m.reason }))
            .collect::<Vec<_>>(),
        "requests": {
            "allowed": requests.allowed,
            "denied": requests.denied,
            "failed": requests.failed,
            "unknown": requests.unknown,
        },
        "budget": budget_json(a.budget.as_ref()),
    })
}

fn budget_json(budget: Option<&proto::Budget>) -> Value {
    let Some(budget) = budget else {
        return Value::Null;
    };
    json!({
        "circuit": budget.circuit,
        "waiting": budget.waiting,
        "categories": budget.categories.iter().map(|c| json!({
            "category": c.category,
            "per_second": c.per_second,
            "daily": (c.daily > 0).then_some(c.daily),
            "paused_for_ms": c.paused_for.map(|d| d.seconds * 1000 + i64::from(d.nanos) / 1_000_000),
        })).collect::<Vec<_>>(),
    })
}

fn print_accounts(accounts: &[proto::Account], json: bool) {
    if json {
        json_out(&Value::Array(accounts.iter().map(account_json).collect()));
        return;
    }
    outln!(
        "{:<20} {:<18} {:<9} {:<26} {:>7} {:>7} {:>7} {:>7}",
        "ACCOUNT",
        "ZOOM ID",
        "PLAN",
        "TOKEN VALID UNTIL",
        "ALLOWED",
        "DENIED",
        "FAILED",
        "UNKNOWN"
    );
    for a in accounts {
        let token = a.token.clone().unwrap_or_default();
        let requests = a.requests.unwrap_or_default();
        outln!(
            "{:<20} {:<18} {:<9} {:<26} {:>7} {:>7} {:>7} {:>7}",
            a.name,
            a.zoom_account_id,
            a.plan,
            time_text(token.valid_until.as_ref()),
            requests.allowed,
            requests.denied,
            requests.failed,
            requests.unknown
        );
        if !token.last_error.is_empty() {
            outln!(
                "  last token error at {}: {}",
                time_text(token.last_error_time.as_ref()),
                token.last_error
            );
        }
        if let Some(cooldown) = token.cooldown {
            outln!("  token fetches cool down for {} s", cooldown.seconds);
        }
        for mark in &a.failure_marks {
            outln!("  {} lookups failing: {}", mark.lookup, mark.reason);
        }
        if let Some(budget) = &a.budget {
            let pace: Vec<String> = budget
                .categories
                .iter()
                .map(|c| format!("{} {}/s", c.category, c.per_second))
                .collect();
            outln!(
                "  zoom budget: {}; circuit {}; {} waiting",
                pace.join(", "),
                budget.circuit,
                budget.waiting
            );
            for paused in budget.categories.iter().filter(|c| c.paused_for.is_some()) {
                outln!("  {} paused by zoom's 429", paused.category);
            }
        }
    }
}

fn print_routes(routes: &[proto::Route], next_page_token: &str, json: bool) {
    if json {
        let routes: Vec<Value> = routes
            .iter()
            .map(|r| {
                json!({
                    "user_email": r.user_email,
                    "account": r.account,
                    "set_by": r.set_by,
                    "set_time": time_text(r.set_time.as_ref()),
                    "forced": r.forced,
                })
            })
            .collect();
        json_out(&json!({ "routes": routes, "next_page_token": next_page_token }));
        return;
    }
    outln!(
        "{:<40} {:<20} {:<16} {:<26} FORCED",
        "USER",
        "ACCOUNT",
        "SET BY",
        "SET AT"
    );
    for r in routes {
        outln!(
            "{:<40} {:<20} {:<16} {:<26} {}",
            r.user_email,
            r.account,
            r.set_by,
            time_text(r.set_time.as_ref()),
            if r.forced { "yes" } else { "no" }
        );
    }
    if !next_page_token.is_empty() {
        outln!("next page: --page-token {next_page_token}");
    }
}

fn source_name(e: &proto::Explanation) -> &'static str {
    use proto::explanation::Source;
    match e.source() {
        Source::Override => "route override",
        Source::ConfigRule => "config rule",
        Source::Directory => "directory (the last sync)",
        Source::ProbeCache => "an earlier probe",
        Source::Ledger => "meeting ledger",
        Source::ProbeNeeded => "a probe would be needed",
        Source::Probe => "probe",
        Source::Unspecified => "unknown",
    }
}

fn print_explanation(e: &proto::Explanation, json: bool) {
    if json {
        json_out(&json!({
            "account": e.account,
            "source": e.source().as_str_name(),
            "rule": e.rule,
            "probe_accounts": e.probe_accounts,
            "user_email": e.user_email,
            "allowed": e.allowed,
            "grant": e.grant,
            "denial": e.denial,
            "visible_fields": e.visible_fields,
        }));
        return;
    }
    let account = if e.account.is_empty() {
        "-"
    } else {
        &e.account
    };
    outln!("account:   {account}");
    if e.rule.is_empty() {
        outln!("from:      {}", source_name(e));
    } else {
        outln!("from:      {} {}", source_name(e), e.rule);
    }
    if !e.probe_accounts.is_empty() {
        outln!("probes:    {}", e.probe_accounts.join(", "));
    }
    if !e.user_email.is_empty() {
        outln!("user:      {}", e.user_email);
    }
    match e.allowed {
        Some(true) => outln!("decision:  allowed by {}", e.grant),
        Some(false) => outln!("decision:  denied: {}", e.denial),
        None => outln!("decision:  depends on where the probe finds the target"),
    }
    if e.allowed == Some(true) {
        let fields = if e.visible_fields.is_empty() {
            "none".to_owned()
        } else {
            e.visible_fields.join(", ")
        };
        outln!("sees:      {fields}");
    }
}

fn print_sync_report(report: &proto::SyncReport, json: bool) {
    if json {
        json_out(&json!({
            "start_time": time_text(report.start_time.as_ref()),
            "finish_time": time_text(report.finish_time.as_ref()),
            "accounts": report.accounts.iter().map(|a| json!({
                "account": a.account,
                "users": a.users,
                "error": (!a.error.is_empty()).then_some(&a.error),
            })).collect::<Vec<_>>(),
            "conflicts": report.conflicts.iter().map(|c| json!({
                "kind": c.kind,
                "user_email": c.user_email,
                "found_in": c.found_in,
                "claimed_account": c.claimed_account,
                "rule": c.rule,
                "description": c.description,
            })).collect::<Vec<_>>(),
        }));
        return;
    }
    outln!(
        "sync {} .. {}",
        time_text(report.start_time.as_ref()),
        time_text(report.finish_time.as_ref())
    );
    for a in &report.accounts {
        if a.error.is_empty() {
            outln!("  {:<20} {} users", a.account, a.users);
        } else {
            outln!("  {:<20} not read: {}", a.account, a.error);
        }
    }
    if report.conflicts.is_empty() {
        outln!("no conflicts");
    }
    for c in &report.conflicts {
        outln!("  {:<26} {}", c.kind, c.description);
    }
}

fn print_audit_page(page: &proto::ListAuditResponse, json: bool) {
    if json {
        let records: Vec<Value> = page
            .records
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "at": time_text(r.time.as_ref()),
                    "caller": r.caller,
                    "operation": r.operation,
                    "account": r.account,
                    "user": r.user,
                    "meeting_id": (r.meeting_id != 0).then_some(r.meeting_id),
                    "outcome": r.outcome,
                    "detail": r.detail,
                })
            })
            .collect();
        json_out(&json!({ "records": records, "next_page_token": page.next_page_token }));
        return;
    }
    for r in &page.records {
        let or_dash = |text: &str| {
            if text.is_empty() {
                "-".to_owned()
            } else {
                text.to_owned()
            }
        };
        let meeting = if r.meeting_id == 0 {
            "-".to_owned()
        } else {
            r.meeting_id.to_string()
        };
        outln!(
            "{}  {:<8} {:<20} {:<16} {:<14} {:<28} {} {}",
            time_text(r.time.as_ref()),
            r.outcome,
            r.operation,
            r.caller,
            or_dash(&r.account),
            or_dash(&r.user),
            meeting,
            r.detail
        );
    }
    if !page.next_page_token.is_empty() {
        outln!("next page: --page-token {}", page.next_page_token);
    }
}

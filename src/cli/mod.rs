//! The `zoomgate` command line: serve, demo, emulator, check-config, meetings and admin clients,
//! audit, offline explain.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::config::Config;
use crate::proto;
use crate::proto::meetings_client::MeetingsClient;
use crate::store::{AuditFilter, AuditRecord};
use crate::telemetry::{self, LogFormat};

/// Exit code for a configuration or usage error (BSD `EX_USAGE`).
const EXIT_USAGE: u8 = 64;

/// `println!` for people: the line goes through [`escape_for_terminal`]. Every human-readable
/// line of the CLI is printed with it or with [`errln!`].
macro_rules! outln {
    ($($arg:tt)*) => {
        println!("{}", $crate::cli::escape_for_terminal(&format!($($arg)*)))
    };
}

/// `eprintln!` for people, through [`escape_for_terminal`].
macro_rules! errln {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::cli::escape_for_terminal(&format!($($arg)*)))
    };
}

mod admin;

#[derive(Debug, Parser)]
#[command(
    name = "zoomgate",
    version,
    about = "gRPC gateway in front of several Zoom accounts"
)]
pub struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the gateway.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Runs a local Zoom emulator and a gateway wired to it, with demo accounts and callers.
    Demo(crate::demo::DemoArgs),
    /// Runs the Zoom emulator on its own.
    Emulator {
        #[arg(long, short)]
        config: PathBuf,
        /// Overrides the listen address of the config file.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validates a gateway config file and prints what it found.
    CheckConfig { config: PathBuf },
    /// Prints the SHA-256 of an API key, for a caller's `api_key_sha256`.
    HashKey {
        /// The API key; read from stdin when omitted.
        key: Option<String>,
    },
    /// Calls the gateway's Meetings API.
    Meetings(MeetingsArgs),
    /// Lists audit records from the gateway's store.
    Audit(AuditArgs),
    /// Calls the gateway's Admin API: accounts, routes, explain, audit.
    Admin(admin::AdminArgs),
    /// Explains a request from a candidate config file, with no server.
    Explain(admin::OfflineExplainArgs),
}

impl Cli {
    /// Runs the command and returns the process exit code.
    pub async fn run(self) -> ExitCode {
        let format = self.log_format;
        let telemetry = match &self.command {
            // The gateway's config may name a collector: its telemetry starts once it is read.
            Command::Serve { .. } => None,
            _ => Some(telemetry::init(format, None)),
        };
        let code = match self.command {
            Command::Serve { config } => serve(&config, format).await,
            Command::Demo(args) => crate::demo::run(args).await,
            Command::Emulator { config, listen } => emulator(&config, listen).await,
            Command::CheckConfig { config } => check_config(&config),
            Command::HashKey { key } => hash_key(key),
            Command::Meetings(args) => meetings(args).await,
            Command::Audit(args) => audit(args).await,
            Command::Admin(args) => admin::admin(args).await,
            Command::Explain(args) => admin::offline_explain(args),
        };
        if let Some(telemetry) = telemetry {
            telemetry.shutdown();
        }
        code
    }
}

fn process_env() -> HashMap<String, String> {
    std::env::vars().collect()
}

async fn serve(path: &Path, log_format: LogFormat) -> ExitCode {
    let config = match Config::load(path, &process_env()) {
        Ok(config) => config,
        Err(error) => {
            errln!("error: {}: {error}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let telemetry = telemetry::init(log_format, config.otlp_endpoint.as_deref());
    let code = serve_config(path, config).await;
    telemetry.shutdown();
    code
}

async fn serve_config(path: &Path, config: Config) -> ExitCode {
    let grace = config.shutdown_grace_period;
    let mut app = match crate::App::build(config).await {
        Ok(app) => app,
        Err(error) => {
            errln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = app.watch_config(path.to_path_buf(), process_env()) {
        errln!("error: {}: {error}", path.display());
        return ExitCode::from(EXIT_USAGE);
    }
    tracing::info!(addr = %app.local_addr(), ops_addr = %app.ops_addr(), "zoomgate listening");
    exit_code(app.run_until_signal(grace).await)
}

/// The exit code of a gateway that served until a signal.
fn exit_code(served: Result<(), crate::app::AppError>) -> ExitCode {
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            errln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn emulator(path: &Path, listen: Option<SocketAddr>) -> ExitCode {
    // Read like the gateway's config: a regular file, bounded in size.
    let text = match crate::config::read_config_text(path) {
        Ok(text) => text,
        Err(error) => {
            errln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let config = match crate::emulator::EmulatorConfig::from_toml(&text) {
        Ok(config) => config,
        Err(error) => {
            errln!("error: {}: {error}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let addr = listen.unwrap_or(config.listen_addr);
    let emulator = match crate::emulator::Emulator::start(config, addr).await {
        Ok(emulator) => emulator,
        Err(error) => {
            errln!("error: cannot listen on {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    outln!("Zoom emulator listening on {}", emulator.base_url());
    outln!("  API:   {}", emulator.api_url());
    outln!("  OAuth: {}", emulator.oauth_url());
    crate::shutdown::signal().await;
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

fn check_config(path: &Path) -> ExitCode {
    match Config::load(path, &process_env()) {
        Ok(config) => {
            outln!("{}: ok", path.display());
            outln!("  listen_addr: {}", config.listen_addr);
            outln!(
                "  zoom: {} (token: {})",
                config.zoom_api_url,
                config.zoom_oauth_url
            );
            outln!("  store: {}", config.store);
            outln!(
                "  tls: {}",
                match &config.tls {
                    None => "off",
                    Some(tls) if tls.client_ca_pem.is_some() => "on, client certificates accepted",
                    Some(_) => "on",
                }
            );
            for account in config.accounts.iter() {
                outln!(
                    "  account {}: zoom account {}, plan {:?}",
                    account.name,
                    account.zoom_account_id,
                    account.plan
                );
            }
            for caller in config.policy.callers() {
                outln!("  caller {}", caller.name);
            }
            for warning in config.warnings() {
                outln!("  warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            errln!("{}: {error}", path.display());
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn hash_key(key: Option<String>) -> ExitCode {
    let key = match key {
        Some(key) => key,
        None => {
            // Bounded: `hash-key < /dev/zero` must not fill memory looking for a newline.
            const MAX_KEY_LINE: u64 = 64 << 10;
            let mut line = String::new();
            let mut stdin = std::io::Read::take(std::io::stdin().lock(), MAX_KEY_LINE);
            if let Err(error) = std::io::BufRead::read_line(&mut stdin, &mut line) {
                errln!("error: cannot read stdin: {error}");
                return ExitCode::FAILURE;
            }
            if line.len() as u64 >= MAX_KEY_LINE && !line.ends_with('\n') {
                errln!("error: the key is longer than {MAX_KEY_LINE} bytes");
                return ExitCode::from(EXIT_USAGE);
            }
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if key.is_empty() {
        errln!("error: the key is empty");
        return ExitCode::from(EXIT_USAGE);
    }
    outln!("{}", crate::policy::hash_api_key(&key));
    ExitCode::SUCCESS
}

// === meetings client ===

/// Where the gateway is and who calls it, for every client command.
#[derive(Debug, Args)]
struct ServerArgs {
    /// Gateway address.
    #[arg(
        long,
        env = "ZOOMGATE_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    addr: String,
    /// The caller's API key.
    #[arg(long, env = "ZOOMGATE_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<ApiKey>,
    /// Prints responses as JSON.
    #[arg(long, global = true)]
    json: bool,
}

impl ServerArgs {
    async fn connect(&self) -> Result<AuthorizedChannel, ExitCode> {
        connect(&self.addr, self.api_key.as_ref()).await
    }
}

#[derive(Debug, Args)]
struct MeetingsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: MeetingsCommand,
}

/// An API key given to the client; `Debug` never shows it.
#[derive(Clone)]
struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl std::str::FromStr for ApiKey {
    type Err = std::convert::Infallible;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        Ok(Self(key.to_owned()))
    }
}

#[derive(Debug, Args)]
struct UserArg {
    /// Host's email address.
    #[arg(long, conflicts_with = "user_id", required_unless_present = "user_id")]
    user: Option<String>,
    /// Host's Zoom user id.
    #[arg(long)]
    user_id: Option<String>,
}

#[derive(Debug, Args)]
struct MeetingFields {
    #[arg(long)]
    topic: Option<String>,
    /// Meeting type: 1 instant, 2 scheduled, 3 recurring without fixed time, 8 recurring, 10 screen share.
    #[arg(long = "type")]
    kind: Option<i32>,
    /// Start time, RFC 3339 (e.g. 2030-01-02T15:00:00Z).
    #[arg(long)]
    start_time: Option<DateTime<Utc>>,
    /// Length in minutes.
    #[arg(long)]
    duration: Option<i32>,
    /// IANA time zone, e.g. Europe/Berlin.
    #[arg(long)]
    timezone: Option<String>,
    #[arg(long)]
    agenda: Option<String>,
    #[arg(long)]
    password: Option<String>,
}

#[derive(Debug, Subcommand)]
enum MeetingsCommand {
    /// Creates a meeting hosted by a user.
    Create {
        #[command(flatten)]
        user: UserArg,
        #[command(flatten)]
        fields: MeetingFields,
        /// A UUID that makes the create safe to repeat: the same id creates one meeting.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Shows a meeting.
    Get {
        id: i64,
        #[arg(long)]
        occurrence: Option<String>,
    },
    /// Changes the given fields of a meeting.
    Update {
        id: i64,
        #[arg(long)]
        occurrence: Option<String>,
        #[command(flatten)]
        fields: MeetingFields,
    },
    /// Lists a user's meetings.
    List {
        #[command(flatten)]
        user: UserArg,
        #[arg(long)]
        page_size: Option<i32>,
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Deletes a meeting or one occurrence.
    Delete {
        id: i64,
        #[arg(long)]
        occurrence: Option<String>,
    },
    /// Ends a meeting in progress.
    End { id: i64 },
}

impl MeetingFields {
    /// Returns the meeting and the mask of the fields given on the command line.
    fn into_meeting(self) -> (proto::Meeting, Vec<String>) {
        let mut mask = Vec::new();
        let mut meeting = proto::Meeting::default();
        if let Some(topic) = self.topic {
            meeting.topic = topic;
            mask.push("topic".to_owned());
        }
        if let Some(kind) = self.kind {
            meeting.r#type = kind;
            mask.push("type".to_owned());
        }
        if let Some(start) = self.start_time {
            meeting.start_time = Some(prost_types::Timestamp {
                seconds: start.timestamp(),
                nanos: 0,
            });
            mask.push("start_time".to_owned());
        }
        if let Some(duration) = self.duration {
            meeting.duration_minutes = duration;
            mask.push("duration_minutes".to_owned());
        }
        if let Some(timezone) = self.timezone {
            meeting.timezone = timezone;
            mask.push("timezone".to_owned());
        }
        if let Some(agenda) = self.agenda {
            meeting.agenda = agenda;
            mask.push("agenda".to_owned());
        }
        if let Some(password) = self.password {
            meeting.password = password;
            mask.push("password".to_owned());
        }
        (meeting, mask)
    }
}

/// A channel to the gateway at `addr` that presents `api_key` on every call.
type AuthorizedChannel = InterceptedService<Channel, BearerKey>;

/// Adds `authorization: Bearer <key>` to every call, when a key was given.
#[derive(Clone)]
struct BearerKey(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for BearerKey {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Connects to the gateway; on failure, says why and returns the exit code.
async fn connect(addr: &str, api_key: Option<&ApiKey>) -> Result<AuthorizedChannel, ExitCode> {
    let auth = match api_key.map(|key| format!("Bearer {}", key.0).parse()) {
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => {
            errln!("error: --api-key contains characters not allowed in a header");
            return Err(ExitCode::from(EXIT_USAGE));
        }
        None => None,
    };
    let channel = match Channel::from_shared(addr.to_owned()) {
        Ok(endpoint) => match endpoint.connect().await {
            Ok(channel) => channel,
            Err(error) => {
                errln!("error: cannot connect to {addr}: {error}");
                return Err(ExitCode::FAILURE);
            }
        },
        Err(error) => {
            errln!("error: --addr {addr}: {error}");
            return Err(ExitCode::from(EXIT_USAGE));
        }
    };
    Ok(InterceptedService::new(channel, BearerKey(auth)))
}

async fn meetings(args: MeetingsArgs) -> ExitCode {
    let mut client = match args.server.connect().await {
        Ok(channel) => MeetingsClient::new(channel),
        Err(code) => return code,
    };
    let json = args.server.json;
    let result = match args.command {
        MeetingsCommand::Create {
            user,
            fields,
            request_id,
        } => {
            let (meeting, _) = fields.into_meeting();
            let request = proto::CreateMeetingRequest {
                user: Some(match (user.user, user.user_id) {
                    (Some(email), _) => proto::create_meeting_request::User::UserEmail(email),
                    (None, id) => {
                        proto::create_meeting_request::User::UserId(id.unwrap_or_default())
                    }
                }),
                meeting: Some(meeting),
                request_id: request_id.unwrap_or_default(),
            };
            client
                .create_meeting(request)
                .await
                .map(|r| print_meeting(&r.into_inner(), json))
        }
        MeetingsCommand::Get { id, occurrence } => client
            .get_meeting(proto::GetMeetingRequest {
                meeting_id: id,
                occurrence_id: occurrence.unwrap_or_default(),
            })
            .await
            .map(|r| print_meeting(&r.into_inner(), json)),
        MeetingsCommand::Update {
            id,
            occurrence,
            fields,
        } => {
            let (meeting, paths) = fields.into_meeting();
            client
                .update_meeting(proto::UpdateMeetingRequest {
                    meeting_id: id,
                    occurrence_id: occurrence.unwrap_or_default(),
                    meeting: Some(meeting),
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await
                .map(|r| print_meeting(&r.into_inner(), json))
        }
        MeetingsCommand::List {
            user,
            page_size,
            page_token,
        } => client
            .list_meetings(proto::ListMeetingsRequest {
                user: Some(match (user.user, user.user_id) {
                    (Some(email), _) => proto::list_meetings_request::User::UserEmail(email),
                    (None, id) => {
                        proto::list_meetings_request::User::UserId(id.unwrap_or_default())
                    }
                }),
                r#type: 0,
                page_size: page_size.unwrap_or_default(),
                page_token: page_token.unwrap_or_default(),
            })
            .await
            .map(|r| print_list(&r.into_inner(), json)),
        MeetingsCommand::Delete { id, occurrence } => client
            .delete_meeting(proto::DeleteMeetingRequest {
                meeting_id: id,
                occurrence_id: occurrence.unwrap_or_default(),
            })
            .await
            .map(|_| print_done(&format!("deleted meeting {id}"), json)),
        MeetingsCommand::End { id } => client
            .end_meeting(proto::EndMeetingRequest { meeting_id: id })
            .await
            .map(|_| print_done(&format!("ended meeting {id}"), json)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(status) => {
            print_status(&status, json);
            ExitCode::FAILURE
        }
    }
}

fn time_text(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, 0))
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

fn meeting_json(m: &proto::Meeting) -> Value {
    let mut value = json!({
        "id": m.id,
        "uuid": m.uuid,
        "account": m.account,
        "host_id": m.host_id,
        "host_email": m.host_email,
        "topic": m.topic,
        "type": m.r#type,
        "start_time": time_text(m.start_time.as_ref()),
        "duration_minutes": m.duration_minutes,
        "timezone": m.timezone,
        "agenda": m.agenda,
        "join_url": m.join_url,
        "create_time": time_text(m.create_time.as_ref()),
        "status": m.status,
        "occurrences": m.occurrences.iter().map(|o| json!({
            "occurrence_id": o.occurrence_id,
            "start_time": time_text(o.start_time.as_ref()),
            "status": o.status,
        })).collect::<Vec<_>>(),
    });
    if !m.password.is_empty() {
        value["password"] = m.password.clone().into();
    }
    if !m.start_url.is_empty() {
        value["start_url"] = m.start_url.clone().into();
    }
    value
}

fn print_meeting(m: &proto::Meeting, json: bool) {
    if json {
        json_out(&meeting_json(m));
        return;
    }
    outln!("meeting {}  ({})", m.id, m.account);
    outln!("  topic:    {}", m.topic);
    outln!("  host:     {} ({})", m.host_email, m.host_id);
    if m.start_time.is_some() {
        outln!(
            "  starts:   {} for {} min",
            time_text(m.start_time.as_ref()),
            m.duration_minutes
        );
    }
    if !m.status.is_empty() {
        outln!("  status:   {}", m.status);
    }
    outln!("  join:     {}", m.join_url);
    if !m.start_url.is_empty() {
        outln!("  start:    {}", m.start_url);
    }
    if !m.password.is_empty() {
        outln!("  passcode: {}", m.password);
    }
    for o in &m.occurrences {
        outln!(
            "  occurrence {}: {} {}",
            o.occurrence_id,
            time_text(o.start_time.as_ref()),
            o.status
        );
    }
}

fn print_list(list: &proto::ListMeetingsResponse, json: bool) {
    if json {
        let value = json!({
            "meetings": list.meetings.iter().map(meeting_json).collect::<Vec<_>>(),
            "next_page_token": list.next_page_token,
            "total_size": list.total_size,
        });
        json_out(&value);
        return;
    }
    for m in &list.meetings {
        outln!(
            "{:>14}  {:<14} {:<26} {}",
            m.id,
            m.account,
            time_text(m.start_time.as_ref()),
            m.topic
        );
    }
    outln!("{} of {} meetings", list.meetings.len(), list.total_size);
    if !list.next_page_token.is_empty() {
        outln!("next page: --page-token {}", list.next_page_token);
    }
}

fn print_done(message: &str, json: bool) {
    if json {
        json_out(&json!({ "ok": true, "message": message }));
    } else {
        outln!("{message}");
    }
}

fn print_status(status: &tonic::Status, json: bool) {
    let details = status.get_error_details();
    let violations: Vec<(String, String)> = details
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default();
    let reason = details
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default();
    if json {
        let value = json!({
            "code": format!("{:?}", status.code()),
            "message": status.message(),
            "reason": reason,
            "field_violations": violations.iter().map(|(f, d)| json!({"field": f, "description": d})).collect::<Vec<_>>(),
        });
        json_err(&value);
        return;
    }
    errln!("error: {:?}: {}", status.code(), status.message());
    if !reason.is_empty() {
        errln!("  reason: {reason}");
    }
    for (field, description) in violations {
        errln!("  {field}: {description}");
    }
}

// === audit ===

#[derive(Debug, Args)]
struct AuditArgs {
    /// The gateway config whose store to read.
    #[arg(
        long,
        short,
        conflicts_with = "store",
        required_unless_present = "store"
    )]
    config: Option<PathBuf>,
    /// A store location, e.g. sqlite:zoomgate.db.
    #[arg(long)]
    store: Option<String>,
    #[command(flatten)]
    filter: AuditFilterArgs,
    /// Most records to print (newest first).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[arg(long)]
    json: bool,
}

/// What audit records to show, for `zoomgate audit` and `zoomgate admin audit` alike.
#[derive(Debug, Args)]
struct AuditFilterArgs {
    #[arg(long)]
    caller: Option<String>,
    /// e.g. meetings.create, admin.put_route, config.reload
    #[arg(long)]
    operation: Option<String>,
    #[arg(long)]
    account: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    meeting_id: Option<i64>,
    /// allowed, denied, failed or unknown (a change whose outcome the gateway never learned).
    #[arg(long)]
    outcome: Option<crate::store::Outcome>,
    /// Only records at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Only records before this time (RFC 3339).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
}

impl AuditFilterArgs {
    fn into_filter(self) -> AuditFilter {
        AuditFilter {
            caller: self.caller,
            operation: self.operation,
            account: self.account,
            user: self.user,
            meeting_id: self.meeting_id,
            outcome: self.outcome,
            since: self.since,
            until: self.until,
            ..AuditFilter::default()
        }
    }
}

async fn audit(args: AuditArgs) -> ExitCode {
    let location = match (&args.store, &args.config) {
        (Some(store), _) => store.clone(),
        (None, Some(path)) => match crate::config::store_location(path) {
            Ok(location) => location,
            Err(error) => {
                errln!("error: {}: {error}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
        },
        (None, None) => {
            errln!("error: give --config or --store");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // A PostgreSQL password comes from PGPASSWORD here, as for psql.
    let store = match crate::store::open(&location, None).await {
        Ok(store) => store,
        Err(error) => {
            errln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let filter = AuditFilter {
        limit: Some(args.limit),
        ..args.filter.into_filter()
    };
    match store.audit(&filter).await {
        Ok(records) => {
            for record in &records {
                print_audit(record, args.json);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            errln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_audit(r: &AuditRecord, json: bool) {
    if json {
        let value = json!({
            "id": r.id,
            "at": r.at.to_rfc3339(),
            "caller": r.caller,
            "operation": r.operation,
            "account": r.account,
            "user": r.user,
            "meeting_id": r.meeting_id,
            "outcome": r.outcome.to_string(),
            "detail": r.detail,
        });
        json_out(&value);
        return;
    }
    outln!(
        "{}  {:<8} {:<18} {:<16} {:<14} {:<28} {}{}",
        r.at.format("%Y-%m-%d %H:%M:%S%.3f"),
        r.outcome.to_string(),
        r.operation,
        r.caller,
        r.account.as_deref().unwrap_or("-"),
        r.user.as_deref().unwrap_or("-"),
        r.meeting_id
            .map(|id| id.to_string())
            .unwrap_or_else(|| "-".into()),
        r.detail
            .as_deref()
            .map(|d| format!("  ({d})"))
            .unwrap_or_default(),
    );
}

// === terminal output ===

/// Tells whether `c` must not reach a terminal raw: control characters (C0 including ESC, NUL,
/// CR and LF, DEL, C1), format characters (bidi overrides such as U+202E, zero-width spaces)
/// and the line and paragraph separators.
fn is_unsafe_for_terminal(c: char) -> bool {
    crate::routing::is_control_or_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Returns `text` with every character of [`is_unsafe_for_terminal`] written as a Rust-style
/// `\u{1b}` escape, so that nothing from a record, a server or a config file can move the
/// cursor, retitle the window, hide or reorder text. Used for every human-readable line.
fn escape_for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_for_terminal) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe_for_terminal(c) {
            escaped.extend(c.escape_unicode());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Serializes `value` as one line of JSON in which every character of
/// [`is_unsafe_for_terminal`] is a `\uXXXX` escape. serde_json escapes only U+0000 to U+001F;
/// the rest can only occur inside strings, where the escape means the same character.
fn json_line(value: &Value) -> String {
    let text = value.to_string();
    if !text.chars().any(is_unsafe_for_terminal) {
        return text;
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe_for_terminal(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                escaped.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            escaped.push(c);
        }
    }
    escaped
}

fn json_out(value: &Value) {
    println!("{}", json_line(value));
}

fn json_err(value: &Value) {
    eprintln!("{}", json_line(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_output_escapes_control_and_bidi_characters() {
        assert_eq!(escape_for_terminal("plain é ✓"), "plain é ✓");
        assert!(matches!(escape_for_terminal("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape_for_terminal("a\u{1b}[2Jb\u{1b}]0;x\u{7}c\0d\u{7f}e\u{9b}f"),
            "a\\u{1b}[2Jb\\u{1b}]0;x\\u{7}c\\u{0}d\\u{7f}e\\u{9b}f"
        );
        assert_eq!(
            escape_for_terminal("moc.\u{202e}evil\u{200b}\u{2066}\u{feff}\u{2028}\n\t\r"),
            "moc.\\u{202e}evil\\u{200b}\\u{2066}\\u{feff}\\u{2028}\\u{a}\\u{9}\\u{d}"
        );
        assert_eq!(escape_for_terminal("tag\u{e0041}"), "tag\\u{e0041}");
    }

    #[test]
    fn json_output_escapes_what_serde_json_leaves_raw() {
        let evil = "a\u{1b}]0;x\u{7}\0\u{7f}\u{85}\u{202e}\u{2029}\u{e0041}z";
        let value = json!({ "user": evil, "n": 1 });
        let line = json_line(&value);
        assert!(!line.chars().any(is_unsafe_for_terminal), "{line}");
        assert!(
            line.contains("\\u202e") && line.contains("\\udb40\\udc41"),
            "{line}"
        );
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, value);
        assert_eq!(json_line(&json!({"a": "b"})), r#"{"a":"b"}"#);
    }

    #[test]
    fn parsed_arguments_never_show_the_api_key() {
        let cli = Cli::try_parse_from([
            "zoomgate",
            "meetings",
            "--api-key",
            "sekrit-key",
            "get",
            "1",
        ])
        .expect("arguments parse");
        let shown = format!("{cli:?}");
        assert!(!shown.contains("sekrit-key"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}

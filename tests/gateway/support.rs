//! Starts an emulator and a gateway on port 0 and hands out authenticated clients.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use zoomgate::config::RawConfig;
use zoomgate::emulator::{Emulator, EmulatorConfig};
use zoomgate::proto;
use zoomgate::proto::admin_client::AdminClient;
use zoomgate::proto::meetings_client::MeetingsClient;
use zoomgate::store::Store;

pub const ADMIN_KEY: &str = "zk_admin_5f2b9c0e";
pub const SALES_KEY: &str = "zk_sales_81d3e0aa";
pub const SUPPORT_KEY: &str = "zk_support_c4a7f19b";
/// The platform team: Admin API with `admin = "write"`, no meeting grant.
pub const PLATFORM_KEY: &str = "zk_platform_9e41c2d7";
/// An auditor: Admin API with `admin = "read"`.
pub const AUDITOR_KEY: &str = "zk_auditor_3b8f0a65";

/// Zoom account ids in the emulator.
pub const SALES_ZOOM_ID: &str = "AcmeSales01";
pub const SUPPORT_ZOOM_ID: &str = "AcmeSupport01";
pub const LIMITED_ZOOM_ID: &str = "AcmeLimited01";

pub const SALES_SECRET: &str = "sales-client-secret-value";
pub const SUPPORT_SECRET: &str = "support-client-secret-value";
pub const LIMITED_SECRET: &str = "limited-client-secret-value";

const ALL_SCOPES: &str = r#"["meeting:write:meeting:admin", "meeting:read:meeting:admin",
  "meeting:update:meeting:admin", "meeting:delete:meeting:admin", "meeting:read:list_meetings:admin",
  "meeting:update:status:admin", "user:read:user:admin", "user:read:list_users:admin"]"#;

/// Three Zoom accounts: sales and support with every scope, "limited" that may only read.
pub fn emulator_config() -> EmulatorConfig {
    let text = format!(
        r#"
[[accounts]]
account_id = "{SALES_ZOOM_ID}"
client_id = "sales-client"
client_secret = "{SALES_SECRET}"
plan = "pro"
scopes = {ALL_SCOPES}
  [[accounts.users]]
  id = "u-alice"
  email = "alice@sales.acme.test"
  [[accounts.users]]
  id = "u-bob"
  email = "bob@sales.acme.test"
  [[accounts.users]]
  id = "u-erin"
  email = "erin@partner.test"

[[accounts]]
account_id = "{SUPPORT_ZOOM_ID}"
client_id = "support-client"
client_secret = "{SUPPORT_SECRET}"
plan = "business"
scopes = {ALL_SCOPES}
  [[accounts.users]]
  id = "u-carol"
  email = "carol@support.acme.test"
  [[accounts.users]]
  id = "u-dave"
  email = "dave@support.acme.test"
  [[accounts.users]]
  id = "u-frank"
  email = "frank@partner.test"

[[accounts]]
account_id = "{LIMITED_ZOOM_ID}"
client_id = "limited-client"
client_secret = "{LIMITED_SECRET}"
plan = "pro"
scopes = ["meeting:read:meeting:admin", "user:read:user:admin"]
  [[accounts.users]]
  id = "u-gina"
  email = "gina@limited.test"
"#
    );
    EmulatorConfig::from_toml(&text).expect("test emulator config is valid")
}

/// [`emulator_config`] without Zoom's rate limits, for tests about something else that send
/// many requests in a burst.
pub fn unthrottled_emulator_config() -> EmulatorConfig {
    let mut config = emulator_config();
    config.enforce_rate_limits = false;
    config
}

/// Every `meetings.create` audit record in `store`, newest first.
pub async fn create_records(store: &dyn Store) -> Vec<zoomgate::store::AuditRecord> {
    store
        .audit(&zoomgate::store::AuditFilter {
            operation: Some("meetings.create".into()),
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .expect("the audit log reads")
}

/// Asserts that every acknowledged create has its ledger entry and an allowed audit record in
/// `store`, whose `meetings.create` records are `audit`.
pub async fn assert_recorded(
    store: &dyn Store,
    audit: &[zoomgate::store::AuditRecord],
    acknowledged: impl IntoIterator<Item = i64>,
) {
    for id in acknowledged {
        assert!(
            store.meeting(id).await.unwrap().is_some(),
            "acknowledged {id} has no ledger entry"
        );
        assert!(
            audit.iter().any(|r| r.meeting_id == Some(id)
                && r.outcome == zoomgate::store::Outcome::Allowed),
            "acknowledged {id} has no audit record"
        );
    }
}

/// The gateway config: partner.test users have no rule, so they are found by probing.
pub fn gateway_toml(emulator: &Emulator, store: &str) -> String {
    let hash = zoomgate::policy::hash_api_key;
    format!(
        r#"
listen_addr = "127.0.0.1:0"
ops_listen_addr = "127.0.0.1:0"
zoom_api_url = "{api}"
zoom_oauth_url = "{oauth}"
store = "{store}"
zoom_timeout_secs = 5

[[accounts]]
name = "acme-sales"
zoom_account_id = "{SALES_ZOOM_ID}"
client_id = "sales-client"
client_secret_env = "SALES_SECRET"
domains = ["sales.acme.test"]

[[accounts]]
name = "acme-support"
zoom_account_id = "{SUPPORT_ZOOM_ID}"
client_id = "support-client"
client_secret_env = "SUPPORT_SECRET"
plan = "business"
domains = ["support.acme.test"]

[[accounts]]
name = "acme-limited"
zoom_account_id = "{LIMITED_ZOOM_ID}"
client_id = "limited-client"
client_secret_env = "LIMITED_SECRET"
plan = "pro"
users = ["gina@limited.test"]

[[user_groups]]
name = "support-leads"
members = ["carol@support.acme.test"]

[[callers]]
name = "admin"
api_key_sha256 = ["{admin}"]
mtls_sans = ["spiffe://acme.test/admin"]
  [[callers.grants]]
  accounts = ["*"]
  users = ["*"]
  operations = ["*"]
  fields = ["start_url", "password"]

[[callers]]
name = "sales-bot"
api_key_sha256 = ["{sales}"]
mtls_sans = ["sales-bot.acme.test"]
  [[callers.grants]]
  accounts = ["acme-sales"]
  users = ["@sales.acme.test"]
  operations = ["read", "list", "create", "update"]

[[callers]]
name = "support-reader"
api_key_sha256 = ["{support}"]
  [[callers.grants]]
  accounts = ["acme-support"]
  users = ["group:support-leads", "frank@partner.test"]
  operations = ["read", "list"]
  fields = ["password"]

[[callers]]
name = "platform"
api_key_sha256 = ["{platform}"]
admin = "write"

[[callers]]
name = "auditor"
api_key_sha256 = ["{auditor}"]
admin = "read"
"#,
        api = emulator.api_url(),
        oauth = emulator.oauth_url(),
        admin = hash(ADMIN_KEY),
        sales = hash(SALES_KEY),
        support = hash(SUPPORT_KEY),
        platform = hash(PLATFORM_KEY),
        auditor = hash(AUDITOR_KEY),
    )
}

/// A [`TestGateway::spawn_with`] customization that adds a `[limits]` table.
pub fn with_limits(limits: &str) -> impl FnOnce(&mut String) + '_ {
    move |toml| toml.push_str(&format!("\n[limits]\n{limits}\n"))
}

pub fn secrets_env() -> std::collections::HashMap<String, String> {
    [
        ("SALES_SECRET", SALES_SECRET),
        ("SUPPORT_SECRET", SUPPORT_SECRET),
        ("LIMITED_SECRET", LIMITED_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct ApiKey(Option<MetadataValue<Ascii>>);

impl ApiKey {
    pub fn new(value: Option<MetadataValue<Ascii>>) -> Self {
        ApiKey(value)
    }
}

impl tonic::service::Interceptor for ApiKey {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Client = MeetingsClient<InterceptedService<Channel, ApiKey>>;
pub type Admin = AdminClient<InterceptedService<Channel, ApiKey>>;

/// Whether the gateway watches its config file for reloads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Watched {
    Yes,
    No,
}

/// A running gateway and the emulator it talks to.
pub struct TestGateway {
    pub addr: SocketAddr,
    /// The ops HTTP listener (`/livez`, `/readyz`).
    pub ops_addr: SocketAddr,
    pub zoom: Emulator,
    pub store: Arc<dyn Store>,
    /// The SQLite location, for tools such as `zoomgate audit`.
    pub store_location: String,
    toml: String,
    /// When set, the gateway watches this file for reloads (see [`TestGateway::spawn_watching`]).
    config_file: Option<PathBuf>,
    /// Versions written by [`TestGateway::swap_config`].
    config_versions: u32,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestGateway {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts with the test config, after `customize` had its say on the raw gateway config text.
    pub async fn spawn_with(customize: impl FnOnce(&mut String)) -> Self {
        Self::spawn_on(None, customize).await
    }

    /// Starts against an emulator that does not enforce Zoom's rate limits, for tests about
    /// something else that send many requests in a burst.
    pub async fn spawn_unthrottled() -> Self {
        Self::spawn_full(unthrottled_emulator_config(), None, Watched::No, |_| {}).await
    }

    /// Starts with the test config on the SQLite file `store_path` (a temporary file if `None`).
    pub async fn spawn_on(
        store_path: Option<PathBuf>,
        customize: impl FnOnce(&mut String),
    ) -> Self {
        Self::spawn_full(emulator_config(), store_path, Watched::No, customize).await
    }

    async fn spawn_full(
        emulator: EmulatorConfig,
        store_path: Option<PathBuf>,
        watched: Watched,
        customize: impl FnOnce(&mut String),
    ) -> Self {
        let zoom = Emulator::start(emulator, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("emulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let store_path: PathBuf = store_path.unwrap_or_else(|| dir.path().join("zoomgate.db"));
        let store_location = format!("sqlite:{}", store_path.display());
        let mut toml = gateway_toml(&zoom, &store_location);
        customize(&mut toml);
        let mut gateway = TestGateway {
            addr: "127.0.0.1:0".parse().unwrap(),
            ops_addr: "127.0.0.1:0".parse().unwrap(),
            store: zoomgate::store::open("sqlite::memory:", None)
                .await
                .unwrap(),
            store_location,
            zoom,
            toml,
            config_file: None,
            config_versions: 0,
            stop: None,
            server: None,
            _dir: dir,
        };
        if watched == Watched::Yes {
            let file = gateway._dir.path().join("gateway.toml");
            std::os::unix::fs::symlink("..data/gateway.toml", &file).unwrap();
            gateway.config_file = Some(file);
            gateway.swap_config(&gateway.toml.clone());
        }
        gateway.start().await;
        gateway
    }

    /// Starts with the test config in a file laid out as Kubernetes mounts a ConfigMap
    /// (`gateway.toml -> ..data/gateway.toml`, `..data -> v1`), which the gateway watches.
    pub async fn spawn_watching() -> Self {
        Self::spawn_full(emulator_config(), None, Watched::Yes, |_| {}).await
    }

    /// Replaces the watched config file the way the kubelet updates a ConfigMap: the new
    /// version in a directory of its own, then one atomic rename of the `..data` symlink.
    pub fn swap_config(&mut self, text: &str) {
        let dir = self._dir.path();
        self.config_versions += 1;
        let version = format!("v{}", self.config_versions);
        std::fs::create_dir(dir.join(&version)).unwrap();
        std::fs::write(dir.join(&version).join("gateway.toml"), text).unwrap();
        let staged = dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &staged).unwrap();
        std::fs::rename(&staged, dir.join("..data")).unwrap();
    }

    async fn start(&mut self) {
        let mut app = self.build().await.expect("gateway builds");
        if let Some(file) = &self.config_file {
            app.watch_config(file.clone(), secrets_env())
                .expect("the config file is watched");
        }
        self.addr = app.local_addr();
        self.ops_addr = app.ops_addr();
        self.store = app.store();
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.server = Some(tokio::spawn(async move {
            app.run(async {
                let _ = stopped.await;
            })
            .await
            .expect("gateway runs");
        }));
    }

    /// Builds a gateway from the test config, without starting it.
    pub async fn build(&self) -> Result<zoomgate::App, zoomgate::app::AppError> {
        let raw: RawConfig = toml::from_str(&self.toml).expect("test config parses");
        let config = raw
            .validate(&secrets_env(), std::path::Path::new("."))
            .expect("test config is valid");
        zoomgate::App::build(config).await
    }

    /// The health status the gateway reports for the Meetings service.
    pub async fn health(&self) -> tonic_health::pb::health_check_response::ServingStatus {
        self.health_of("zoomgate.v1.Meetings").await
    }

    /// The health status the gateway reports for `service`.
    pub async fn health_of(
        &self,
        service: &str,
    ) -> tonic_health::pb::health_check_response::ServingStatus {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("gateway accepts connections");
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status()
    }

    /// The status code of `GET /readyz` on the ops listener.
    pub async fn readyz(&self) -> u16 {
        reqwest::get(format!("http://{}/readyz", self.ops_addr))
            .await
            .expect("the ops listener answers")
            .status()
            .as_u16()
    }

    /// Waits up to `within` for the health status to become `status`; returns whether it did.
    pub async fn health_becomes(
        &self,
        status: tonic_health::pb::health_check_response::ServingStatus,
        within: std::time::Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.health().await == status {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops the gateway and starts a new one on the same store and emulator.
    pub async fn restart(&mut self) {
        self.shutdown_server().await;
        self.start().await;
    }

    async fn shutdown_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("gateway task ends cleanly");
        }
        self.store.close().await;
    }

    pub async fn client(&self, key: &str) -> Client {
        let value = format!("Bearer {key}").parse().expect("ascii key");
        self.client_with(ApiKey(Some(value))).await
    }

    /// The gateway's config file text, as it was started with.
    pub fn config_text(&self) -> &str {
        &self.toml
    }

    /// A client of the Admin API presenting API key `key`.
    pub async fn admin(&self, key: &str) -> Admin {
        admin_at(self.addr, key).await
    }

    pub async fn anonymous_client(&self) -> Client {
        self.client_with(ApiKey(None)).await
    }

    async fn client_with(&self, auth: ApiKey) -> Client {
        client_with_auth(self.addr, auth).await
    }

    /// Creates a meeting straight in the sales account of the emulator, behind the gateway's
    /// back (as an admin in Zoom's web portal would); returns its id.
    pub async fn create_in_sales_zoom(&self, user: &str, topic: &str) -> i64 {
        let (http, token) = self.sales_zoom_session().await;
        let meeting: serde_json::Value = http
            .post(format!("{}/users/{user}/meetings", self.zoom.api_url()))
            .bearer_auth(token)
            .json(&serde_json::json!({ "topic": topic, "type": 2, "duration": 30 }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("the emulator creates the meeting")
            .json()
            .await
            .expect("meeting body");
        meeting["id"].as_i64().expect("meeting id")
    }

    /// Deletes a meeting straight in the sales account of the emulator.
    pub async fn delete_in_sales_zoom(&self, meeting_id: i64) {
        let (http, token) = self.sales_zoom_session().await;
        http.delete(format!("{}/meetings/{meeting_id}", self.zoom.api_url()))
            .bearer_auth(token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("the emulator deletes the meeting");
    }

    async fn sales_zoom_session(&self) -> (reqwest::Client, String) {
        let http = reqwest::Client::new();
        let token: serde_json::Value = http
            .post(self.zoom.oauth_url())
            .basic_auth("sales-client", Some(SALES_SECRET))
            .query(&[
                ("grant_type", "account_credentials"),
                ("account_id", SALES_ZOOM_ID),
            ])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("token from the emulator")
            .json()
            .await
            .expect("token body");
        let token = token["access_token"].as_str().expect("access_token");
        (http, token.to_owned())
    }

    pub async fn stop(mut self) {
        self.shutdown_server().await;
        self.zoom.clone().shutdown().await;
    }
}

/// An Admin API client of the gateway at `addr` that presents API key `key`.
pub async fn admin_at(addr: SocketAddr, key: &str) -> Admin {
    let value = format!("Bearer {key}").parse().expect("ascii key");
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("gateway accepts connections");
    AdminClient::with_interceptor(channel, ApiKey(Some(value)))
}

/// `message` as a request with the client deadline `timeout` (`grpc-timeout`).
pub fn within<T>(timeout: std::time::Duration, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// A client of the gateway at `addr` that presents API key `key`.
pub async fn client_at(addr: SocketAddr, key: &str) -> Client {
    let value = format!("Bearer {key}").parse().expect("ascii key");
    client_with_auth(addr, ApiKey(Some(value))).await
}

async fn client_with_auth(addr: SocketAddr, auth: ApiKey) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("gateway accepts connections");
    MeetingsClient::with_interceptor(channel, auth)
}

/// A scheduled meeting starting in the future.
pub fn scheduled(topic: &str) -> proto::Meeting {
    proto::Meeting {
        topic: topic.to_owned(),
        r#type: proto::MeetingType::Scheduled as i32,
        start_time: Some(prost_types::Timestamp {
            seconds: 1_900_000_000,
            nanos: 0,
        }),
        duration_minutes: 30,
        timezone: "UTC".to_owned(),
        password: "abc123".to_owned(),
        ..Default::default()
    }
}

pub fn create_for(email: &str, topic: &str) -> proto::CreateMeetingRequest {
    proto::CreateMeetingRequest {
        user: Some(proto::create_meeting_request::User::UserEmail(
            email.to_owned(),
        )),
        meeting: Some(scheduled(topic)),
        ..Default::default()
    }
}

pub fn get(id: i64) -> proto::GetMeetingRequest {
    proto::GetMeetingRequest {
        meeting_id: id,
        occurrence_id: String::new(),
    }
}

pub fn list_for(email: &str) -> proto::ListMeetingsRequest {
    proto::ListMeetingsRequest {
        user: Some(proto::list_meetings_request::User::UserEmail(
            email.to_owned(),
        )),
        ..Default::default()
    }
}

/// The field names of a status's BadRequest violations.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The ErrorInfo reason of a status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

pub fn delete(id: i64) -> proto::DeleteMeetingRequest {
    proto::DeleteMeetingRequest {
        meeting_id: id,
        occurrence_id: String::new(),
    }
}

/// Collects every log line of the test's thread (use a current-thread runtime, so that the
/// gateway's tasks log there too).
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Captures what `filter` lets through until the guard is dropped.
    pub fn start(filter: &str) -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Tests whose figures the load of other tests would skew (latency, goodput), or whose load
/// would skew the figures of others, take turns: one of them at a time.
pub async fn measuring() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Waits (bounded) until `done` holds.
pub async fn eventually<F, Fut>(what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..80 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 8 s");
}

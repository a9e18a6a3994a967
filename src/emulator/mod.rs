//! A faithful local Zoom for tests and the demo: S2S OAuth, users, meetings, scopes, rate
//! limits, fault injection and signed webhooks, all in memory.
//!
//! # Layout
//! - [`config`]: the TOML file (accounts, apps, users, webhook target).
//! - `oauth`: `POST /oauth/token`.
//! - `api`: the `/v2` users and meetings endpoints, behind one gate (token, faults, scopes,
//!   rate limits).
//! - `meeting`: the meeting model, body validation, recurrence occurrences, JSON shapes.
//! - [`ratelimit`]: per-account (plan x label) and per-user daily limits.
//! - [`faults`]: what can be injected per account.
//! - [`webhooks`]: Zoom-signed event delivery and URL validation.
//! - `control`: `/_emulator/...`, the HTTP face of the inspection methods below.
//! - `clock`, `conn`, `state`: settable clock, resettable connections, shared state.

mod api;
mod clock;
pub mod config;
mod conn;
mod control;
pub mod faults;
mod meeting;
mod oauth;
pub mod ratelimit;
mod state;
pub mod webhooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::Response;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{
    AccountConfig, EmulatorConfig, EmulatorConfigError, UserConfig, UserStatus, WebhookConfig,
};
pub use faults::Faults;
pub use ratelimit::RateLimitCounters;
pub use webhooks::WebhookError;

use conn::{ResetSwitch, ResettableListener};
use state::Shared;
use webhooks::WebhookSender;

/// How long `shutdown` waits for open connections before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running emulator. Dropping it does not stop it; call [`Emulator::shutdown`].
#[derive(Clone, Debug)]
pub struct Emulator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Emulator {
    /// Binds `addr` (port 0 picks a free port) and serves in a spawned task.
    pub async fn start(config: EmulatorConfig, addr: SocketAddr) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let mut webhook_task = None;
        let webhooks = config.webhook.as_ref().map(|w| {
            let (sender, task) = WebhookSender::spawn(w.url.clone(), w.secret_token.clone());
            webhook_task = Some(task);
            sender
        });
        let shared = Arc::new(Shared::new(&config, base_url, webhooks));
        let router = Router::new()
            .merge(oauth::routes())
            .merge(api::routes())
            .merge(control::routes())
            .fallback(not_found)
            .layer(axum::middleware::map_response_with_state(
                shared.clone(),
                tracking_id,
            ))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(
            ResettableListener(listener),
            router.into_make_service_with_connect_info::<ResetSwitch>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        let server_task = tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "emulator server failed");
            }
        });
        let tasks = std::iter::once(server_task).chain(webhook_task).collect();
        tracing::info!(%addr, "zoom emulator listening");
        Ok(Emulator {
            inner: Arc::new(Inner {
                shared,
                addr,
                stop: Mutex::new(Some(stop)),
                tasks: Mutex::new(tasks),
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.inner.shared.base_url.clone()
    }

    /// The REST base, `base_url() + "/v2"`.
    pub fn api_url(&self) -> String {
        format!("{}/v2", self.inner.shared.base_url)
    }

    /// The token endpoint, `base_url() + "/oauth/token"`.
    pub fn oauth_url(&self) -> String {
        format!("{}/oauth/token", self.inner.shared.base_url)
    }

    /// Stops accepting, lets open requests finish (up to 5 s), then cuts what is left.
    pub async fn shutdown(self) {
        let stop = self
            .inner
            .stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        // The server task comes first; once it is done no new event can be queued, so the
        // webhook task (which otherwise waits for events forever) is stopped.
        let mut tasks = tasks.into_iter();
        if let Some(mut server) = tasks.next()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
        for task in tasks {
            task.abort();
        }
    }

    fn account(&self, account_id: &str) -> Option<&Arc<state::AccountState>> {
        self.inner.shared.accounts.get(account_id)
    }

    /// Token requests (successful or not) attributed to the account.
    pub fn token_fetches(&self, account_id: &str) -> u64 {
        self.account(account_id)
            .map_or(0, |a| a.token_fetches.load(Ordering::Relaxed))
    }

    /// `/v2` requests per endpoint, e.g. `"GET /meetings/{meetingId}"`; endpoints never called
    /// are absent.
    pub fn requests(&self, account_id: &str) -> BTreeMap<String, u64> {
        self.account(account_id)
            .map(|a| a.requests())
            .unwrap_or_default()
    }

    /// All `/v2` requests attributed to the account by their token.
    pub fn total_requests(&self, account_id: &str) -> u64 {
        self.account(account_id).map_or(0, |a| a.total_requests())
    }

    /// Requests of an account its rate limiter let through, and those it answered 429, since
    /// start: what the account's budget served and what tripped it.
    pub fn rate_limit_totals(&self, account_id: &str) -> (u64, u64) {
        self.account(account_id)
            .map_or((0, 0), |account| account.limiter.totals())
    }

    /// The account's rate-limit counters for the current second and UTC day.
    pub fn rate_limit_counters(&self, account_id: &str) -> RateLimitCounters {
        self.account(account_id)
            .map(|a| a.limiter.counters(self.inner.shared.clock.now()))
            .unwrap_or_default()
    }

    /// The account's meetings (not deleted) as `GET /v2/meetings/{id}` returns them, oldest first.
    pub fn meetings(&self, account_id: &str) -> Vec<serde_json::Value> {
        control::meetings_json(&self.inner.shared, account_id)
    }

    /// Moves a user (by id or email) into another account, keeping its id and email, as a
    /// Zoom admin moving a user between accounts would. False if either is unknown.
    pub fn move_user(&self, user: &str, account_id: &str) -> bool {
        control::move_user_to(&self.inner.shared, user, account_id)
    }

    /// Replaces the account's faults (rates are clamped to 0.0..=1.0).
    pub fn set_faults(&self, account_id: &str, faults: Faults) {
        if let Some(account) = self.account(account_id) {
            account.set_faults(faults);
        }
    }

    /// Invalidates every token issued so far to the account: they now get 401 / 124.
    pub fn revoke_tokens(&self, account_id: &str) {
        if let Some(account) = self.account(account_id) {
            account.generation.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets the lifetime of tokens issued from now on (at least one second).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.inner
            .shared
            .token_ttl_secs
            .store(ttl.as_secs().max(1), Ordering::Relaxed);
    }

    /// Sets the emulator clock; it keeps ticking from `now`.
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.inner.shared.clock.set_now(now);
    }

    /// The emulator clock's current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.shared.clock.now()
    }

    /// Simulates the host starting the meeting: status `started` and a `meeting.started`
    /// webhook. False if no such meeting exists.
    pub fn start_meeting(&self, meeting_id: i64) -> bool {
        api::start_meeting(&self.inner.shared, meeting_id)
    }

    /// Runs Zoom's `endpoint.url_validation` challenge against the configured webhook URL.
    pub async fn validate_webhook_url(&self) -> Result<(), WebhookError> {
        match &self.inner.shared.webhooks {
            Some(webhooks) => webhooks.validate_url(self.inner.shared.clock.now()).await,
            None => Err(WebhookError::NotConfigured),
        }
    }
}

/// Adds `x-zm-trackingid`, as Zoom does on every answer.
/// Stamps every answer with a tracking id, as Zoom's carry `x-zm-trackingid`, and with the
/// emulator clock's `Date` (the server would otherwise put the real time there).
async fn tracking_id(State(shared): State<Arc<Shared>>, mut response: Response) -> Response {
    let n = shared.tracking_seq.fetch_add(1, Ordering::Relaxed);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("v=2.0;clid=us05;rid=EMU_{n:016}")) {
        headers.insert("x-zm-trackingid", value);
    }
    let date = shared
        .clock
        .now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(value) = HeaderValue::from_str(&date) {
        headers.insert(axum::http::header::DATE, value);
    }
    response
}

/// Unknown paths: Zoom answers 404 with its error shape.
async fn not_found() -> Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({ "code": 404, "message": "Not Found" })),
    )
        .into_response()
}

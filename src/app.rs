//! Wiring: builds every part from a [`Config`], binds the listener, serves until shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::accounts::{Accounts, LiveAccounts};
use crate::admin::Admin;
use crate::config::{Config, ConfigError, Limits, TlsConfig};
use crate::directory::Directory;
use crate::grpc::MeetingsService;
use crate::grpc::admin::AdminService;
use crate::grpc::decode_errors::DecodeErrorsLayer;
use crate::listener::{self, TrackStreamsLayer};
use crate::meetings::{Meetings, MeetingsSettings, RequestContext};
use crate::policy::LivePolicy;
use crate::policy::{Caller, Operation};
use crate::proto::admin_server::AdminServer;
use crate::proto::meetings_server::MeetingsServer;
use crate::reload::{Live, Reloader};
use crate::routing::{LiveRules, ProbeCache, RouteOverrides, UserRouting};
use crate::store::{self, Metered, Recorder, Store};
use crate::telemetry::metrics::Metrics;
use crate::token::TokenCache;
use crate::zoom::{ZoomClient, ZoomEndpoints};
use arc_swap::ArcSwap;
use tracing::Instrument;

/// How often a store that refused a write is checked again, and its backlog written.
pub const STORE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often the request ids of old creates are forgotten.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    #[error("the store does not take writes: {0}")]
    StoreReadOnly(store::StoreError),
    #[error("cannot build the Zoom client: {0}")]
    Zoom(#[from] crate::zoom::BuildError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot build gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A gateway with its listener bound, ready to [`run`](App::run).
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    ops_listener: TcpListener,
    ops_addr: SocketAddr,
    request_timeout: Duration,
    /// How long shutdown waits for requests in flight (`shutdown_grace_period_secs`).
    shutdown_grace: Duration,
    /// `request_id_retention_hours`.
    request_id_retention: Duration,
    limits: Limits,
    tls: Option<TlsConfig>,
    policy: LivePolicy,
    service: MeetingsService,
    admin: AdminService,
    /// What `/metrics` reads the accounts' state from.
    accounts_view: Admin,
    metrics: Arc<Metrics>,
    /// The request tasks of the meetings service, drained at shutdown.
    tasks: TaskTracker,
    tokens: TokenCache,
    recorder: Arc<Recorder>,
    meetings: Meetings,
    directory_sync_interval: Option<Duration>,
    accounts: LiveAccounts,
    rules: LiveRules,
    reloader: Option<Reloader>,
    /// What other gateways on the same store change, when it is shared.
    shared: Option<SharedState>,
}

impl App {
    /// Does every fallible step (store, migrations, clients, bind) before serving.
    pub async fn build(config: Config) -> Result<App, AppError> {
        for warning in config.warnings() {
            tracing::warn!("config: {warning}");
        }
        let metrics = Arc::new(Metrics::new());
        let store: Arc<dyn Store> = Arc::new(Metered::new(
            store::open(&config.store, config.store_password.as_ref()).await?,
            metrics.clone(),
        ));
        // Serving on a store that cannot write would refuse every change: refuse to start.
        store
            .check_writable()
            .await
            .map_err(AppError::StoreReadOnly)?;
        let recorder = Arc::new(Recorder::new(store));
        let zoom = ZoomClient::new(
            &ZoomEndpoints {
                api_url: config.zoom_api_url.clone(),
                oauth_url: config.zoom_oauth_url.clone(),
            },
            config.zoom_timeout,
        )?;
        let tokens = TokenCache::new(
            zoom.clone(),
            &config.accounts,
            config.token,
            metrics.clone(),
        );
        let probe_cache = ProbeCache::new(
            config.routing.user_cache_ttl,
            config.routing.negative_cache_ttl,
        );
        let overrides =
            Arc::new(load_overrides(recorder.store().as_ref(), &config.accounts).await?);
        let directory = Arc::new(Directory::from_entries(recorder.store().directory().await?));
        let shared = recorder.store().changes().map(|changes| SharedState {
            changes,
            store: recorder.store().clone(),
            overrides: overrides.clone(),
            directory: directory.clone(),
        });
        let rules: LiveRules = Arc::new(ArcSwap::from_pointee(config.routing.rules));
        let routing = UserRouting {
            overrides: overrides.clone(),
            rules: rules.clone(),
            directory,
            probe_cache,
        };
        let policy: LivePolicy = Arc::new(ArcSwap::from_pointee(config.policy));
        let accounts: LiveAccounts = Arc::new(ArcSwap::from_pointee(config.accounts));
        let meetings = Meetings::new(
            accounts.clone(),
            routing,
            zoom,
            tokens.clone(),
            recorder.clone(),
            MeetingsSettings {
                max_in_flight_per_caller: config.limits.max_requests_in_flight_per_caller,
                request_timeout: config.request_timeout,
                request_id_retention: config.request_id_retention,
            },
            metrics.clone(),
        );
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| AppError::Bind {
            addr: config.listen_addr,
            source,
        })?;
        let ops_listener = TcpListener::bind(config.ops_listen_addr)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.ops_listen_addr,
                source,
            })?;
        let ops_addr = ops_listener.local_addr().map_err(|source| AppError::Bind {
            addr: config.ops_listen_addr,
            source,
        })?;
        let admin = Admin::new(
            accounts.clone(),
            policy.clone(),
            meetings.clone(),
            tokens.clone(),
            recorder.store().clone(),
            overrides,
        );
        Ok(App {
            listener,
            local_addr,
            ops_listener,
            ops_addr,
            request_timeout: config.request_timeout,
            shutdown_grace: config.shutdown_grace_period,
            request_id_retention: config.request_id_retention,
            limits: config.limits,
            tls: config.tls,
            admin: AdminService::new(admin.clone(), config.request_timeout),
            accounts_view: admin,
            policy,
            tasks: meetings.tasks(),
            service: MeetingsService::new(
                meetings.clone(),
                config.request_timeout,
                metrics.clone(),
            ),
            metrics,
            meetings,
            directory_sync_interval: config.routing.directory_sync_interval,
            accounts,
            rules,
            reloader: None,
            shared,
            tokens,
            recorder,
        })
    }

    /// Reloads callers, grants and routing rules from `path` while serving (see [`crate::reload`]),
    /// with secrets from `env`. `path` is the file this gateway was built from.
    pub fn watch_config(
        &mut self,
        path: PathBuf,
        env: HashMap<String, String>,
    ) -> Result<(), ConfigError> {
        let live = Live {
            accounts: self.accounts.clone(),
            tokens: self.tokens.clone(),
            policy: self.policy.clone(),
            rules: self.rules.clone(),
        };
        self.reloader = Some(Reloader::new(
            path,
            env,
            live,
            self.recorder.clone(),
            self.metrics.clone(),
        )?);
        Ok(())
    }

    /// The address the gateway listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the ops HTTP listener (useful with port 0).
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// The token cache, for counters (benchmarks, metrics).
    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    /// The request path, for embedding and benchmarks.
    pub fn meetings(&self) -> &Meetings {
        &self.meetings
    }

    /// The durable store (meeting ledger, audit log).
    pub fn store(&self) -> Arc<dyn Store> {
        self.recorder.store().clone()
    }

    /// Serves until SIGTERM/SIGINT, then gives requests in flight `grace` to finish; past it,
    /// the process may exit with them still running.
    pub async fn run_until_signal(self, grace: Duration) -> Result<(), AppError> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(self.run(async {
            let _ = stop_rx.await;
        }));
        crate::shutdown::signal().await;
        let _ = stop_tx.send(());
        match tokio::time::timeout(grace, server).await {
            Ok(served) => served?,
            Err(_) => {
                tracing::warn!(?grace, "requests still in flight after the grace period");
                Ok(())
            }
        }
    }

    /// Serves until `shutdown` resolves, then reports NotServing and drains requests in flight.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let stopping = CancellationToken::new();
        let (ready_tx, ready) = watch::channel(false);
        let readiness = tokio::spawn(report_readiness(
            health,
            ready_tx,
            self.recorder.writable(),
            stopping.clone(),
        ));
        // The ops listener outlives the gRPC drain, so `/readyz` says 503 while it lasts.
        let ops_stop = CancellationToken::new();
        let ops = tokio::spawn(
            axum::serve(
                self.ops_listener,
                crate::ops::router(ready, self.metrics.clone(), self.accounts_view),
            )
            .with_graceful_shutdown(ops_stop.clone().cancelled_owned())
            .into_future(),
        );
        let sync = self.directory_sync_interval.map(|every| {
            let (meetings, stopping) = (self.meetings.clone(), stopping.clone());
            tokio::spawn(sync_directory_every(
                meetings,
                every,
                self.request_timeout,
                stopping,
            ))
        });
        let purge = tokio::spawn(purge_create_requests_every(
            self.recorder.store().clone(),
            self.request_id_retention,
            stopping.clone(),
        ));
        let reload = self
            .reloader
            .map(|reloader| tokio::spawn(reloader.run(stopping.clone())));
        let follow = self.shared.map(|shared| {
            tokio::spawn(shared.follow(
                self.meetings.clone(),
                self.accounts.clone(),
                stopping.clone(),
            ))
        });
        let checks = tokio::spawn({
            let (recorder, stopping) = (self.recorder.clone(), stopping.clone());
            async move {
                recorder
                    .run(STORE_CHECK_INTERVAL, stopping.cancelled_owned())
                    .await
            }
        });
        // Both versions: many clients (grpcio's Python reflection, older grpcurl) speak only
        // v1alpha.
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let limits = self.limits;
        let mut builder = Server::builder()
            .timeout(self.request_timeout)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .initial_connection_window_size(limits.connection_window_bytes)
            .initial_stream_window_size(limits.stream_window_bytes)
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout));
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(server_tls(tls))?;
        }
        let incoming = listener::incoming(self.listener, limits);
        let (meetings, grace) = (self.meetings.clone(), self.shutdown_grace);
        let shutdown = async move {
            shutdown.await;
            // What waits for Zoom's budget and could not go within the grace period is told
            // so now, not cut when the process exits.
            meetings.drain(tokio::time::Instant::now() + grace);
            stopping.cancel();
            // NOT_SERVING is reported before the listener stops accepting.
            let _ = readiness.await;
        };
        let tasks = self.tasks;
        builder
            .layer(TrackStreamsLayer)
            .layer(DecodeErrorsLayer {
                max_message_bytes: limits.max_message_bytes,
            })
            .trace_fn(crate::telemetry::server_span)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                self.service
                    .into_server(self.policy.clone(), limits.max_message_bytes),
            )
            .add_service(self.admin.into_server(
                self.policy,
                self.metrics,
                limits.max_message_bytes,
            ))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        // Requests whose callers left still finish their ledger and audit writes.
        tasks.close();
        tasks.wait().await;
        ops_stop.cancel();
        if let Ok(Err(error)) = ops.await {
            tracing::warn!(%error, "ops listener failed");
        }
        let _ = checks.await;
        let _ = purge.await;
        for task in [sync, reload, follow].into_iter().flatten() {
            let _ = task.await;
        }
        self.recorder.finish().await;
        Ok(())
    }
}

/// Syncs the directory every `every` until `stopping`; the first sync waits one interval, so a
/// restart loop does not spend the accounts' budget.
/// Forgets the `request_id`s of creates older than `retention`, once an hour, from the start.
async fn purge_create_requests_every(
    store: Arc<dyn Store>,
    retention: Duration,
    stopping: CancellationToken,
) {
    let mut ticks = tokio::time::interval(PURGE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stopping.cancelled() => return,
        }
        let before = chrono::Utc::now() - retention;
        match store.purge_creates(before).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "forgot the request ids of old creates"),
            Err(error) => tracing::warn!(%error, "could not forget old request ids"),
        }
    }
}

async fn sync_directory_every(
    meetings: Meetings,
    every: Duration,
    timeout: Duration,
    stopping: CancellationToken,
) {
    let gateway = Arc::new(Caller::internal("directory-sync"));
    let start = tokio::time::Instant::now() + every;
    let mut ticks = tokio::time::interval_at(start, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stopping.cancelled() => return,
        }
        // A sync reads page after page: it gets as long as ten requests.
        let cx = RequestContext::new(gateway.clone(), Operation::Read, None, timeout * 10);
        let report = tokio::select! {
            report = meetings.sync_directory(&cx).instrument(cx.span.clone()) => report,
            () = stopping.cancelled() => return,
        };
        let failed = report.accounts.iter().filter(|a| a.error.is_some()).count();
        tracing::info!(
            accounts = report.accounts.len(),
            failed,
            conflicts = report.conflicts.len(),
            "directory synced"
        );
    }
}

/// What this gateway caches of a store other gateways share, and the store's announcements of
/// their changes to it.
struct SharedState {
    changes: tokio::sync::broadcast::Receiver<store::Change>,
    store: Arc<dyn Store>,
    overrides: Arc<RouteOverrides>,
    directory: Arc<Directory>,
}

impl SharedState {
    /// Applies every change the store announces to what this gateway caches, until `stopping`:
    /// a route override is read again, a ledger entry forgotten, an account's directory read
    /// again; after missed announcements, all of it.
    async fn follow(
        mut self,
        meetings: Meetings,
        accounts: LiveAccounts,
        stopping: CancellationToken,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let change = tokio::select! {
                change = self.changes.recv() => match change {
                    Ok(change) => change,
                    Err(RecvError::Lagged(_)) => store::Change::Resync,
                    Err(RecvError::Closed) => return,
                },
                () = stopping.cancelled() => return,
            };
            if let Err(error) = self.apply(&change, &meetings, &accounts).await {
                // The store is down: what it missed is read again once it announces a resync.
                tracing::warn!(%error, ?change, "could not follow a change of the shared store");
            }
        }
    }

    async fn apply(
        &self,
        change: &store::Change,
        meetings: &Meetings,
        accounts: &LiveAccounts,
    ) -> Result<(), store::StoreError> {
        match change {
            store::Change::Route(email) => match self.store.route(email).await? {
                Some(route) => self.overrides.set(route.email, route.account),
                None => self.overrides.remove(email),
            },
            store::Change::Meeting(id) => meetings.forget_cached(Some(*id)),
            store::Change::Directory(account) => {
                let users: Vec<_> = self
                    .store
                    .directory()
                    .await?
                    .into_iter()
                    .filter(|entry| &entry.account == account)
                    .collect();
                self.directory.replace_account(account, &users);
            }
            store::Change::Resync => {
                meetings.forget_cached(None);
                let routes = load_overrides(self.store.as_ref(), &accounts.load()).await?;
                self.overrides.replace(routes.all());
                self.directory.replace_all(self.store.directory().await?);
            }
        }
        Ok(())
    }
}

/// Reads every route override of the store into memory. One to an account the config does
/// not have is kept, with a warning: routing skips it until a reload brings the account back.
async fn load_overrides(
    store: &dyn Store,
    accounts: &Accounts,
) -> Result<RouteOverrides, store::StoreError> {
    const PAGE: u32 = 1000;
    let overrides = RouteOverrides::default();
    let mut after: Option<String> = None;
    loop {
        let page = store.routes(after.as_deref(), PAGE).await?;
        let full = page.len() == PAGE as usize;
        after = page.last().map(|route| route.email.clone());
        for route in page {
            if accounts.get(&route.account).is_none() {
                tracing::warn!(account = %route.account, "a route override names an account the config does not have; not followed");
            }
            overrides.set(route.email, route.account);
        }
        if !full {
            return Ok(overrides);
        }
    }
}

/// gRPC reflection over the gateway's services and health.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// The gRPC health service a liveness probe asks: SERVING while the process serves, whatever
/// the store does, so that a database outage makes pods unready, not restarted.
pub const LIVENESS_SERVICE: &str = "liveness";

/// Reports SERVING while the store takes writes, NOT_SERVING while it refuses them and, for
/// good, once shutdown starts.
async fn report_readiness(
    health: HealthReporter,
    ready: watch::Sender<bool>,
    mut writable: watch::Receiver<bool>,
    stopping: CancellationToken,
) {
    health
        .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
        .await;
    loop {
        let serving = *writable.borrow_and_update();
        ready.send_replace(serving);
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        set_health(&health, status).await;
        tokio::select! {
            changed = writable.changed() => if changed.is_err() { break },
            () = stopping.cancelled() => break,
        }
    }
    ready.send_replace(false);
    set_health(&health, ServingStatus::NotServing).await;
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    let services = [
        "",
        <MeetingsServer<MeetingsService> as tonic::server::NamedService>::NAME,
        <AdminServer<AdminService> as tonic::server::NamedService>::NAME,
    ];
    for service in services {
        health.set_service_status(service, status).await;
    }
}

fn server_tls(tls: &TlsConfig) -> ServerTlsConfig {
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem.0));
    if let Some(ca) = &tls.client_ca_pem {
        // Optional: callers without a certificate may still use an API key.
        config = config
            .client_ca_root(Certificate::from_pem(ca))
            .client_auth_optional(true);
    }
    config
}

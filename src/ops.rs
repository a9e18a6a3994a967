//! The ops HTTP listener: liveness and readiness for Kubernetes and load balancers, and the
//! Prometheus scrape. Later it serves webhooks.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::admin::Admin;
use crate::telemetry::metrics::{self, Metrics};

#[derive(Clone)]
struct Ops {
    ready: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    /// Where the per-account gauges are read from at each scrape.
    accounts: Admin,
}

/// `/livez` answers while the process serves; `/readyz` follows `ready` (the same state as
/// gRPC health: the store takes writes and shutdown has not started); `/metrics` is the
/// Prometheus scrape.
pub fn router(ready: watch::Receiver<bool>, metrics: Arc<Metrics>, accounts: Admin) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(scrape))
        .with_state(Ops {
            ready,
            metrics,
            accounts,
        })
}

async fn readyz(State(ops): State<Ops>) -> (StatusCode, &'static str) {
    if *ops.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn scrape(State(ops): State<Ops>) -> impl IntoResponse {
    let text = ops.metrics.encode(&ops.accounts.account_states());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text)
}

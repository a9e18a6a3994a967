//! The ops HTTP listener: liveness and readiness for Kubernetes and load balancers, and the
//! Prometheus scrape. Later it serves webhooks.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
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

/// OpenMetrics to scrapers that ask for it (Prometheus does), the classic text format to the rest.
async fn scrape(State(ops): State<Ops>, headers: HeaderMap) -> impl IntoResponse {
    let text = ops.metrics.encode(&ops.accounts.account_states());
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, metrics::OPENMETRICS)], text)
    } else {
        (
            [(header::CONTENT_TYPE, metrics::CLASSIC)],
            metrics::classic_text(&text),
        )
    }
}

//! The ops HTTP listener: liveness and readiness for Kubernetes and load balancers. Later it
//! serves `/metrics` and webhooks.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::watch;

/// `/livez` answers while the process serves; `/readyz` follows `ready` (the same state as
/// gRPC health: the store takes writes and shutdown has not started).
pub fn router(ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(ready)
}

async fn readyz(State(ready): State<watch::Receiver<bool>>) -> (StatusCode, &'static str) {
    if *ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

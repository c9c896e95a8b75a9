//! `/metrics`, `/healthz` (the process runs) and `/readyz` (subscribed to
//! authorization requests and the issuer's discovery loaded).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::service::Callout;

pub fn router(callout: Arc<Callout>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(callout)
}

async fn metrics(State(callout): State<Arc<Callout>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        callout.metrics().encode(),
    )
}

async fn readyz(State(callout): State<Arc<Callout>>) -> impl IntoResponse {
    if callout.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

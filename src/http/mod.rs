//! The HTTP surface: routing, the per-request span, body limits.

mod health;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use tower_http::trace::TraceLayer;

use crate::startup::AppState;

/// Builds the router over the shared state.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.settings.http.body_limit_bytes;
    Router::new()
        .merge(health::routes())
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                tracing::info_span!(
                    "http",
                    method = %request.method(),
                    path = %request.uri().path(),
                )
            }),
        )
        .with_state(state)
}

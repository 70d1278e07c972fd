//! `/healthz` (the process is up), `/readyz` (the database is reachable and
//! migrated to this binary's schema version), `/metrics` (Prometheus).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::docs::Health;
use super::state::AppState;
use crate::db;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

fn health(status: &str, reason: Option<&str>) -> Json<Health> {
    Json(Health {
        status: status.to_string(),
        reason: reason.map(str::to_string),
    })
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
              (status = 401, description = "http.metrics_token is set and not given", body = String, content_type = "text/plain"),
              (status = 503, description = "Database unavailable", body = String, content_type = "text/plain")))]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(token) = &state.app.settings.http.metrics_token {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !super::admin::constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::CONTENT_TYPE, "text/plain")],
                "a metrics token is required\n",
            )
                .into_response();
        }
    }
    match crate::app::health::metrics_text(&state.app).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, "rendering metrics");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::CONTENT_TYPE, "text/plain")],
                "database unavailable for metrics\n",
            )
                .into_response()
        }
    }
}

/// `GET /healthz`.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    health("ok", None)
}

/// `GET /readyz`.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Health>) {
    match db::is_migrated(&state.app.pool).await {
        Ok(true) => (StatusCode::OK, health("ready", None)),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            health("not_ready", Some("database schema is not migrated")),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                health("not_ready", Some("database unreachable")),
            )
        }
    }
}

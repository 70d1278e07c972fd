//! The trader API's error: Alpaca's `{"code": <int>, "message": "..."}`
//! body with the matching HTTP status. Internals never reach the body; they
//! are logged with the request's span.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Alpaca's error codes by meaning.
pub mod codes {
    pub const BAD_REQUEST: u32 = 40010000;
    pub const VALIDATION: u32 = 40010001;
    pub const UNAUTHORIZED: u32 = 40110000;
    pub const FORBIDDEN: u32 = 40310000;
    pub const NOT_FOUND: u32 = 40410000;
    pub const CONFLICT: u32 = 40910000;
    pub const PAYLOAD_TOO_LARGE: u32 = 41310000;
    pub const TOO_MANY_REQUESTS: u32 = 42910000;
    pub const UNPROCESSABLE: u32 = 42210000;
    pub const INTERNAL: u32 = 50010000;
    pub const UNAVAILABLE: u32 = 50310000;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, at least one).
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Tells the client when to try again.
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, codes::VALIDATION, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::UNPROCESSABLE,
            message,
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHORIZED,
            "request is not authorized",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, codes::CONFLICT, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, message)
    }

    /// Logs `cause` and answers a body that says nothing about it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal server error",
        )
    }

    pub fn body(&self) -> serde_json::Value {
        json!({ "code": self.code, "message": self.message })
    }
}

/// How long a client is told to wait when the database is unreachable.
pub const DATABASE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl ApiError {
    /// The database cannot be reached now: 503 with `Retry-After`, which
    /// clients and SDK retry policies act on.
    pub fn database_unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "database unavailable");
        Self::unavailable("the database is unavailable; retry shortly")
            .retry_after(DATABASE_RETRY_AFTER)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&error) {
            Self::database_unavailable(error)
        } else {
            Self::internal(error)
        }
    }
}

impl From<crate::app::Internal> for ApiError {
    fn from(error: crate::app::Internal) -> Self {
        match error {
            crate::app::Internal::Database(error) => error.into(),
            crate::app::Internal::Engine(crate::engine::EngineError::Database(error)) => {
                error.into()
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(value) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Turns axum's own rejections (unknown route, oversized body, ...) into
/// Alpaca-style bodies.
pub async fn fallback_not_found() -> ApiError {
    ApiError::not_found("endpoint not found")
}

/// Gives every error response a `{code, message}` JSON body: axum's own
/// rejections (a malformed query string, a wrong method) answer in plain
/// text, which Alpaca clients cannot read.
pub async fn alpaca_error_bodies(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // Errors only, and never /metrics' plain-text 503.
    let plain_metrics = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"))
        && status == StatusCode::SERVICE_UNAVAILABLE;
    if !(status.is_client_error() || status.is_server_error()) || is_json || plain_metrics {
        return response;
    }
    let (_, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => codes::BAD_REQUEST,
        StatusCode::UNAUTHORIZED => codes::UNAUTHORIZED,
        StatusCode::NOT_FOUND => codes::NOT_FOUND,
        StatusCode::PAYLOAD_TOO_LARGE => codes::PAYLOAD_TOO_LARGE,
        StatusCode::UNPROCESSABLE_ENTITY => codes::UNPROCESSABLE,
        s if s.is_server_error() => codes::INTERNAL,
        _ => codes::BAD_REQUEST,
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    ApiError::new(status, code, message).into_response()
}

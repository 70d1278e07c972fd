//! The operator console at `/console`, served by `orderd serve` on the
//! trader API's port: server-rendered HTML (maud, checked at compile
//! time), one stylesheet and one small hand-written script, both compiled
//! into the binary. Nothing is fetched from elsewhere.
//!
//! - [`auth`]: login, sessions, CSRF, roles;
//! - [`blotter`]: orders, filtered and keyset-paged, with why each needs
//!   attention;
//! - [`order`]: one order's timeline, fills, the venue's and the ledger's
//!   view, resume and cancel;
//! - [`reconcile`]: runs, findings, run-now;
//! - [`health`]: the venue stream, instances, queues, live charts;
//! - [`live`]: Server-Sent Events (order changes from Postgres NOTIFY,
//!   the health numbers);
//! - [`layout`]: the page around every view, the assets.
//!
//! Handlers parse, call `app::console` or the reconciler, render; like
//! `http/`, they call no store or engine function.

pub mod auth;
pub mod blotter;
pub mod health;
pub mod layout;
pub mod live;
pub mod order;
pub mod reconcile;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;

use crate::http::AppState;

/// Bytes a console form may send (a login, a CSRF token, an id).
pub const FORM_LIMIT_BYTES: usize = 8 * 1024;

/// The console's routes, with their own layers: HTML errors (not the
/// trader API's JSON), the request deadline on everything but the live
/// streams.
pub fn router(state: Arc<AppState>) -> Router {
    let request_timeout = Duration::from_millis(state.app.settings.http.request_timeout_ms);
    let pages = Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/orders") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/orders") }),
        )
        .route("/console/login", get(auth::login_form).post(auth::login))
        .route("/console/logout", post(auth::logout))
        .route("/console/orders", get(blotter::blotter))
        .route("/console/orders/{order_id}", get(order::order))
        .route(
            "/console/orders/{order_id}/{action}",
            get(order::confirm).post(order::act),
        )
        .route("/console/reconciliation", get(reconcile::runs))
        .route("/console/reconciliation/runs/{run_id}", get(reconcile::run))
        .route(
            "/console/reconciliation/run/{job}",
            post(reconcile::run_now),
        )
        .route("/console/health", get(health::health))
        .route("/console/assets/{name}", get(layout::asset))
        .layer(axum::middleware::from_fn(move |request, next| {
            crate::http::listener::request_deadline(request_timeout, request, next)
        }));
    let live = Router::new()
        .route("/console/live/orders", get(live::orders))
        .route("/console/live/health", get(live::health));
    Router::new()
        .merge(pages)
        .merge(live)
        .layer(DefaultBodyLimit::max(FORM_LIMIT_BYTES))
        .layer(axum::middleware::from_fn(crate::http::request_id::layer))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |request: &axum::http::Request<_>| {
                    tracing::info_span!(
                        "console",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = tracing::field::Empty,
                    )
                },
            ),
        )
        .with_state(state)
}

/// Why a console request failed, shown as a page that says so.
#[derive(Debug)]
pub enum ConsoleError {
    NotFound(String),
    BadRequest(String),
    Forbidden(String),
    Conflict(String),
    Unavailable(String),
}

impl ConsoleError {
    fn parts(&self) -> (StatusCode, &'static str, &str) {
        match self {
            ConsoleError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m),
            ConsoleError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Not understood", m),
            ConsoleError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
            ConsoleError::Conflict(m) => (StatusCode::CONFLICT, "Not done", m),
            ConsoleError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", m),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, message) = self.parts();
        let body = layout::page(
            title,
            layout::Section::None,
            None,
            html! {
                h1 { (title) }
                (layout::notice("error", message))
                p { a href="/console/orders" { "Back to the blotter" } }
            },
        );
        (status, body).into_response()
    }
}

impl From<sqlx::Error> for ConsoleError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "console: database");
        ConsoleError::Unavailable("the database did not answer; try again shortly".into())
    }
}

impl From<crate::app::Internal> for ConsoleError {
    fn from(error: crate::app::Internal) -> Self {
        tracing::error!(%error, "console");
        ConsoleError::Unavailable(format!("that did not work: {error}"))
    }
}

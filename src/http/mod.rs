//! The HTTP surface: routing, the per-request span, body limits.

mod account;
mod activities;
pub mod admin;
pub mod alpaca;
pub mod auth;
pub mod contract;
pub mod docs;
pub mod error;
mod health;
pub mod listener;
pub mod market;
pub mod openapi;
pub mod orders;
pub mod request_id;
pub mod state;
pub mod stream;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::get;
use tower_http::trace::TraceLayer;

pub use self::state::AppState;

/// Builds the router over the shared state.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.app.settings.http.body_limit_bytes;
    let request_timeout =
        std::time::Duration::from_millis(state.app.settings.http.request_timeout_ms);
    Router::new()
        .merge(health::routes())
        .route(
            "/v2/orders",
            get(orders::list)
                .post(orders::submit)
                .delete(orders::cancel_all),
        )
        .route(
            "/v2/orders:by_client_order_id",
            get(orders::get_by_client_order_id),
        )
        .route(
            "/v2/orders/{order_id}",
            get(orders::get)
                .delete(orders::cancel)
                .patch(orders::replace),
        )
        .route("/v2/orders/{order_id}/events", get(orders::events))
        .route("/v2/orders/{order_id}/fills", get(orders::fills))
        .route("/stream", get(stream::upgrade))
        .route("/openapi.json", get(openapi::document))
        .route("/admin/reconciliations", get(admin::runs))
        .route("/admin/reconciliations/{run_id}", get(admin::run))
        .route(
            "/admin/reconciliations/run/{job}",
            axum::routing::post(admin::run_now),
        )
        .route("/v2/assets", get(market::assets))
        .route("/v2/assets/{symbol_or_asset_id}", get(market::asset))
        .route("/v2/clock", get(market::clock))
        .route("/v2/calendar", get(market::calendar))
        .route("/v2/account", get(account::account))
        .route("/v2/account/activities", get(activities::activities))
        .route(
            "/v2/account/activities/{activity_type}",
            get(activities::activities_of_type),
        )
        .route(
            "/v2/positions",
            get(account::positions).delete(account::close_all_positions),
        )
        .route(
            "/v2/positions/{symbol_or_asset_id}",
            get(account::position).delete(account::close_position),
        )
        .fallback(error::fallback_not_found)
        .layer(axum::middleware::from_fn(auth::rate_limit_headers))
        .layer(axum::middleware::from_fn(move |request, next| {
            listener::request_deadline(request_timeout, request, next)
        }))
        .layer(axum::middleware::map_response(error::alpaca_error_bodies))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(request_id::layer))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                tracing::info_span!(
                    "http",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = tracing::field::Empty,
                    account_id = tracing::field::Empty,
                )
            }),
        )
        .with_state(state)
}

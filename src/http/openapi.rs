//! `/openapi.json`: the OpenAPI document of the trader API and the
//! operator endpoints, generated from the handlers' annotations and the
//! response types themselves, so it cannot drift from what is served.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::account::{AlpacaAccount, AlpacaPosition, PositionClosedEntry};
use super::activities::TradeActivity;
use super::alpaca::AlpacaOrder;
use super::docs::{CancelAllEntry, ErrorBody, FillView, Health, OrderTimeline, RunDetail};
use super::market::{AlpacaAsset, AlpacaCalendarDay, AlpacaClock};
use crate::store::events::OrderEvent;
use crate::store::reconcile::{FindingRecord, RunRecord};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "key_id",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("APCA-API-KEY-ID"))),
        );
        components.add_security_scheme(
            "secret_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("APCA-API-SECRET-KEY"))),
        );
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orderd",
        description = "Equity order-lifecycle daemon: an Alpaca Trading API v2 compatible trader API, plus order timelines, fills and operator endpoints."
    ),
    paths(
        super::orders::submit,
        super::orders::list,
        super::orders::cancel_all,
        super::orders::get,
        super::orders::cancel,
        super::orders::replace,
        super::orders::get_by_client_order_id,
        super::orders::events,
        super::orders::fills,
        super::account::account,
        super::account::positions,
        super::account::position,
        super::account::close_position,
        super::account::close_all_positions,
        super::activities::activities,
        super::activities::activities_of_type,
        super::market::assets,
        super::market::asset,
        super::market::clock,
        super::market::calendar,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        super::admin::runs,
        super::admin::run,
        super::admin::run_now,
    ),
    components(schemas(
        AlpacaOrder, AlpacaAccount, AlpacaPosition, PositionClosedEntry, TradeActivity, AlpacaAsset, AlpacaClock, AlpacaCalendarDay, ErrorBody,
        OrderTimeline, OrderEvent, FillView, CancelAllEntry, Health, RunRecord, FindingRecord, RunDetail
    )),
    modifiers(&Security),
    tags(
        (name = "orders", description = "Alpaca Trading API v2: orders"),
        (name = "account", description = "Alpaca Trading API v2: account and positions"),
        (name = "assets", description = "Alpaca Trading API v2: assets, clock and calendar"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "admin", description = "Reconciliation runs (operator token)"),
    )
)]
pub struct ApiDoc;

/// The whole document: generated from the annotations, completed by
/// `contract` with what annotations cannot say.
pub fn document_value() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    super::contract::complete(&mut doc);
    doc
}

/// `GET /openapi.json`.
pub async fn document() -> Json<serde_json::Value> {
    Json(document_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_covers_every_route_and_secures_the_trader_api() {
        let doc = document_value();
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/v2/orders",
            "/v2/orders/{order_id}",
            "/v2/orders:by_client_order_id",
            "/v2/orders/{order_id}/events",
            "/v2/orders/{order_id}/fills",
            "/v2/account",
            "/v2/positions",
            "/v2/positions/{symbol_or_asset_id}",
            "/v2/account/activities",
            "/v2/account/activities/{activity_type}",
            "/v2/assets",
            "/v2/assets/{symbol_or_asset_id}",
            "/v2/clock",
            "/v2/calendar",
            "/healthz",
            "/readyz",
            "/metrics",
            "/admin/reconciliations",
            "/admin/reconciliations/{run_id}",
            "/admin/reconciliations/run/{job}",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        let post = &paths["/v2/orders"]["post"];
        assert!(post["responses"]["403"].is_object());
        assert_eq!(post["security"][0]["key_id"], serde_json::json!([]));
        let order = &doc["components"]["schemas"]["Order"];
        assert_eq!(
            order["properties"]["status"]["enum"]
                .as_array()
                .unwrap()
                .len(),
            crate::domain::lifecycle::Status::ALL.len(),
            "{order}"
        );
    }
}

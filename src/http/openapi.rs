//! `/openapi.json`: the OpenAPI document of the trader API and the
//! operator endpoints, generated from the handlers' annotations and the
//! response types themselves, so it cannot drift from what is served.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::account::{AlpacaAccount, AlpacaPosition};
use super::alpaca::{AlpacaOrder, text_enum_schema};
use crate::domain::order::{OrderType, Side, TimeInForce};
use crate::store::events::OrderEvent;
use crate::store::reconcile::{FindingRecord, RunRecord};

/// Alpaca's error body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Alpaca's numeric code, e.g. 40310000.
    pub code: u32,
    pub message: String,
}

/// Whole shares as a string ("10").
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(pattern = "^[1-9][0-9]{0,6}$")]
pub struct QtyText(pub String);

/// Whole shares as a JSON number (10).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(minimum = 1, maximum = 10000000, multiple_of = 1)]
pub struct QtyNumber(pub u64);

/// A whole number of shares: a string ("10") or a JSON number (10).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum QtyInput {
    Text(QtyText),
    Number(QtyNumber),
}

/// A price on the venue's tick as a string ("190.25").
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(pattern = "^[1-9][0-9]{0,5}(\\.[0-9]{1,2})?$")]
pub struct PriceText(pub String);

/// A price on the venue's tick as a JSON number.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(minimum = 1, maximum = 1000000, multiple_of = 0.01)]
pub struct PriceNumber(pub f64);

/// A price: a string or a JSON number.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PriceInput {
    Text(PriceText),
    Number(PriceNumber),
}

/// `POST /v2/orders` body (Alpaca's). Fields orderd does not support
/// (notional, stop_price, trail_*, take_profit, stop_loss, legs, bracket
/// classes, extended hours) are refused with 422.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderRequest {
    #[schema(pattern = "^[A-Za-z0-9./]{1,12}$")]
    pub symbol: String,
    pub qty: QtyInput,
    #[schema(schema_with = text_enum_schema::<Side>)]
    pub side: Side,
    #[serde(rename = "type")]
    #[schema(schema_with = text_enum_schema::<OrderType>)]
    pub type_: OrderType,
    #[schema(schema_with = text_enum_schema::<TimeInForce>)]
    pub time_in_force: TimeInForce,
    /// Required for limit orders, refused for market orders.
    pub limit_price: Option<PriceInput>,
    /// At most 48 characters, unique per account.
    #[schema(min_length = 1, max_length = 48, pattern = "^[\\x20-\\x7e]+$")]
    pub client_order_id: Option<String>,
    /// `simple` (or empty) only.
    #[schema(pattern = "^(simple)?$")]
    pub order_class: Option<String>,
    pub extended_hours: Option<bool>,
}

/// `GET /v2/orders/{id}/events`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderTimeline {
    pub order_id: uuid::Uuid,
    pub status: String,
    /// The recovery point: the step to run next.
    pub step: String,
    pub step_state: String,
    pub attempts: i32,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
    pub events: Vec<OrderEvent>,
}

/// One execution of an order and its settlement.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FillView {
    /// The venue's exec id.
    pub execution_id: String,
    pub order_id: uuid::Uuid,
    pub qty: String,
    pub price: String,
    pub transact_time: chrono::DateTime<chrono::Utc>,
    /// stream, rest or reconcile.
    pub source: String,
    /// pending, unknown, settled or failed.
    pub settlement_state: String,
    pub settled_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One entry of `DELETE /v2/orders`' 207 body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CancelAllEntry {
    pub id: uuid::Uuid,
    pub status: u16,
    /// The order (200) or an error body.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub reason: Option<String>,
}

/// A reconciliation run with its findings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunDetail {
    pub run: RunRecord,
    pub findings: Vec<FindingRecord>,
}

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
        super::orders::get_by_client_order_id,
        super::orders::events,
        super::orders::fills,
        super::account::account,
        super::account::positions,
        super::account::position,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        super::admin::runs,
        super::admin::run,
        super::admin::run_now,
    ),
    components(schemas(
        AlpacaOrder, AlpacaAccount, AlpacaPosition, ErrorBody, OrderRequest, QtyInput, QtyText, QtyNumber, PriceInput, PriceText, PriceNumber,
        OrderTimeline, OrderEvent, FillView, CancelAllEntry, Health, RunRecord, FindingRecord, RunDetail
    )),
    modifiers(&Security),
    tags(
        (name = "orders", description = "Alpaca Trading API v2: orders"),
        (name = "account", description = "Alpaca Trading API v2: account and positions"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "admin", description = "Reconciliation runs (operator token)"),
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_covers_every_route_and_secures_the_trader_api() {
        let doc: serde_json::Value = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/v2/orders",
            "/v2/orders/{id}",
            "/v2/orders:by_client_order_id",
            "/v2/orders/{id}/events",
            "/v2/orders/{id}/fills",
            "/v2/account",
            "/v2/positions",
            "/v2/positions/{symbol}",
            "/healthz",
            "/readyz",
            "/metrics",
            "/admin/reconciliations",
            "/admin/reconciliations/{id}",
            "/admin/reconciliations/run/{job}",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        let post = &paths["/v2/orders"]["post"];
        assert!(post["responses"]["403"].is_object());
        assert_eq!(post["security"][0]["key_id"], serde_json::json!([]));
        let order = &doc["components"]["schemas"]["AlpacaOrder"];
        assert!(
            order["properties"]["status"]["enum"]
                .as_array()
                .unwrap()
                .len()
                == 8,
            "{order}"
        );
    }
}

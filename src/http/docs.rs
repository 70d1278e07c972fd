//! The typed shapes of request and response bodies that exist for the
//! document and the wire only (the order and account objects are in
//! `alpaca.rs` and `account.rs`): what is serialized is what
//! `/openapi.json` describes.

use serde::Serialize;
use utoipa::ToSchema;

use super::alpaca::text_enum_schema;
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

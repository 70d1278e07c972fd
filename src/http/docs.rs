//! The typed shapes of response bodies that exist for the document and the
//! wire only (the order and account objects are in `alpaca.rs` and
//! `account.rs`; the order request's grammar is in `contract/`): what is
//! serialized is what `/openapi.json` describes.

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::events::OrderEvent;
use crate::store::reconcile::{FindingRecord, RunRecord};

/// Alpaca's error body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Alpaca's numeric code, e.g. 40310000.
    pub code: u32,
    pub message: String,
}

/// `GET /v2/orders/{order_id}/events`.
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

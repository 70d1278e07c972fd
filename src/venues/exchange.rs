//! The venue's REST API (exchange-sim's, modelled on Alpaca's): place,
//! look up by client_order_id, quotes. Wire types live here and nowhere
//! else; `simulators/exchange/fixtures/` is the contract.

use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{CallError, http_client, read_response, segment, timed, transport_error};
use crate::domain::fills::REPORT_PRICE_MAX;
use crate::domain::ids::{ExecId, VenueClientOrderId, VenueOrderId};
use crate::domain::order::PriceTerms;

const SERVICE: &str = "exchange";

/// A new order as the venue takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlaceOrderRequest {
    pub client_order_id: VenueClientOrderId,
    pub symbol: String,
    pub side: String,
    #[serde(rename = "type")]
    pub order_type: String,
    pub time_in_force: String,
    /// Absent for a notional order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qty: Option<Decimal>,
    /// A notional order's cash: the venue decides its qty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notional: Option<Decimal>,
    #[serde(flatten)]
    pub prices: VenuePrices,
    /// When the placement's intent was recorded (ms since the epoch), and
    /// how long after it the venue may still take it: past that it refuses
    /// it and creates nothing.
    pub timestamp: i64,
    pub recv_window_ms: u64,
}

/// An order's prices as the venue takes them (a placement's or a
/// replace's): each absent when the type does not take it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VenuePrices {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<Decimal>,
    /// stop and stop_limit: the price that triggers the order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<Decimal>,
    /// trailing_stop: the trail, as a price distance or a percentage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trail_price: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trail_percent: Option<Decimal>,
}

impl From<PriceTerms> for VenuePrices {
    fn from(terms: PriceTerms) -> Self {
        Self {
            limit_price: terms.limit,
            stop_price: terms.stop,
            trail_price: terms.trail_price,
            trail_percent: terms.trail_percent,
        }
    }
}

/// A cancel/replace request: the replacement's client_order_id and
/// terms. `qty` is the **total** wanted, what the original filled included
/// (FIX semantics): the venue carries the original's fills into the
/// replacement (`carried_qty`) and works the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplaceOrderRequest {
    pub client_order_id: VenueClientOrderId,
    pub qty: Decimal,
    pub time_in_force: String,
    #[serde(flatten)]
    pub prices: VenuePrices,
    /// As a placement's: a replace that reaches the venue past its window
    /// is refused and changes nothing.
    pub timestamp: i64,
    pub recv_window_ms: u64,
}

/// The venue's view of an order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VenueOrder {
    pub id: VenueOrderId,
    pub client_order_id: VenueClientOrderId,
    pub symbol: String,
    pub side: String,
    pub status: String,
    /// null while the venue has not decided a notional order's qty (it
    /// does at the first execution).
    #[serde(default)]
    pub qty: Option<Decimal>,
    /// A notional order's cash amount.
    #[serde(default)]
    pub notional: Option<Decimal>,
    pub filled_qty: Decimal,
    #[serde(default)]
    pub filled_avg_price: Option<Decimal>,
    #[serde(default)]
    pub reject_reason: Option<String>,
    /// A replacement: what the orders it replaced had filled, carried into
    /// it; its `qty` and `filled_qty` are its own.
    #[serde(default)]
    pub carried_qty: Decimal,
}

/// A quote.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Quote {
    pub symbol: String,
    pub bid: Decimal,
    pub ask: Decimal,
    pub last: Decimal,
}

impl Quote {
    /// Its prices as orderd computes with them (a market buy's hold, a
    /// position's value): like every number from the venue, checked before
    /// anything is computed from them; each at least 0 and at most
    /// [`REPORT_PRICE_MAX`]. `Err` names the first that is not.
    pub fn check(&self) -> Result<(), String> {
        for (name, price) in [("bid", self.bid), ("ask", self.ask), ("last", self.last)] {
            if price < Decimal::ZERO || price > REPORT_PRICE_MAX {
                return Err(format!("quote {name} {price} out of range"));
            }
        }
        Ok(())
    }
}

/// A quote whose prices are out of range is an answer orderd cannot use.
pub(crate) fn checked_quote(quote: Quote) -> Result<Quote, CallError> {
    match quote.check() {
        Ok(()) => Ok(quote),
        Err(detail) => Err(CallError::Unexpected {
            service: SERVICE,
            detail,
        }),
    }
}

/// What a placement's (or a replace's) answer proves.
fn placement_result(answer: Result<VenueOrder, CallError>) -> Result<PlaceResult, CallError> {
    match answer {
        Ok(order) if order.status == "rejected" => Ok(PlaceResult::Rejected {
            message: order
                .reject_reason
                .unwrap_or_else(|| "rejected".to_string()),
        }),
        Ok(order) => Ok(PlaceResult::Accepted(Box::new(order))),
        Err(CallError::Definitive {
            status, message, ..
        }) if status == 422 && is_duplicate_client_order_id(&message) => {
            Ok(PlaceResult::DuplicateClientOrderId)
        }
        Err(CallError::Definitive {
            status, message, ..
        }) if status == 422 && message.contains("recv_window") => {
            Ok(PlaceResult::Expired { message })
        }
        // A replace of an order the venue does not know created nothing.
        Err(CallError::Definitive {
            status: 422 | 400 | 403 | 404,
            message,
            ..
        }) => Ok(PlaceResult::Rejected { message }),
        Err(other) => Err(other),
    }
}

/// What a placement attempt proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceResult {
    Accepted(Box<VenueOrder>),
    /// The venue refused the order (validation or its own rejection).
    Rejected {
        message: String,
    },
    /// The venue already has an order with this client_order_id: ours, from
    /// an earlier attempt whose answer was lost.
    DuplicateClientOrderId,
    /// The request reached the venue after its receive window: nothing was
    /// created.
    Expired {
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct ExchangeClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
}

impl ExchangeClient {
    pub fn new(base_url: &str, api_key: &str, timeout: Duration) -> Self {
        Self {
            http: http_client(timeout),
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn place_order(&self, request: &PlaceOrderRequest) -> Result<PlaceResult, CallError> {
        timed(SERVICE, "place_order", async {
            let response = self
                .http
                .post(self.url("/v1/orders"))
                .bearer_auth(&self.api_key)
                .json(request)
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            placement_result(read_response::<VenueOrder>(SERVICE, response).await)
        })
        .await
    }

    /// Cancel/replace (FIX OrderCancelReplaceRequest): the venue replaces
    /// `venue_order_id` with the order `request` describes, atomically,
    /// keyed by the replacement's client_order_id (the same request again
    /// answers the same replacement). What it proves is what a placement's
    /// answer proves: a refusal (the original is done there, or the terms
    /// are) created nothing.
    pub async fn replace_order(
        &self,
        venue_order_id: &VenueOrderId,
        request: &ReplaceOrderRequest,
    ) -> Result<PlaceResult, CallError> {
        timed(SERVICE, "replace_order", async {
            let response = self
                .http
                .post(self.url(&format!(
                    "/v1/orders/{}/replace",
                    segment(venue_order_id.as_str())
                )))
                .bearer_auth(&self.api_key)
                .json(request)
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            placement_result(read_response::<VenueOrder>(SERVICE, response).await)
        })
        .await
    }

    /// `Ok(None)` when the venue does not know the id (or does not show it
    /// yet: venues have stale reads).
    pub async fn order_by_client_order_id(
        &self,
        client_order_id: &VenueClientOrderId,
    ) -> Result<Option<VenueOrder>, CallError> {
        timed(SERVICE, "order_by_client_order_id", async {
            let response = self
                .http
                .get(self.url("/v1/orders:by_client_order_id"))
                .query(&[("client_order_id", client_order_id.as_str())])
                .bearer_auth(&self.api_key)
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            match read_response::<VenueOrder>(SERVICE, response).await {
                Ok(order) => Ok(Some(order)),
                Err(CallError::Definitive { status: 404, .. }) => Ok(None),
                Err(other) => Err(other),
            }
        })
        .await
    }

    pub async fn quote(&self, symbol: &str) -> Result<Quote, CallError> {
        timed(SERVICE, "quote", async {
            let response = self
                .http
                .get(self.url(&format!("/v1/quotes/{}", segment(symbol))))
                .bearer_auth(&self.api_key)
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            read_response(SERVICE, response)
                .await
                .and_then(checked_quote)
        })
        .await
    }
}

/// The venue answers a reused client_order_id with 422 and a message that
/// names it (it does not return the existing order, as on Alpaca).
pub(crate) fn is_duplicate_client_order_id(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("client_order_id")
        && (m.contains("unique") || m.contains("duplicate") || m.contains("already"))
}

/// What a cancel request proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelResult {
    /// 204: requested; the outcome arrives on the stream.
    Requested,
    /// 422: the order is already terminal at the venue.
    AlreadyDone { message: String },
    /// 404: unknown (or not visible yet).
    NotFound,
}

/// One execution as the venue lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VenueFill {
    pub exec_id: ExecId,
    pub qty: Decimal,
    pub price: Decimal,
    pub transact_time: chrono::DateTime<chrono::Utc>,
}

impl ExchangeClient {
    pub async fn cancel_order(
        &self,
        venue_order_id: &VenueOrderId,
    ) -> Result<CancelResult, CallError> {
        timed(SERVICE, "cancel_order", async {
            let response = self
                .http
                .delete(self.url(&format!("/v1/orders/{}", segment(venue_order_id.as_str()))))
                .bearer_auth(&self.api_key)
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            if response.status() == reqwest::StatusCode::NO_CONTENT {
                return Ok(CancelResult::Requested);
            }
            match read_response::<serde_json::Value>(SERVICE, response).await {
                Ok(_) => Ok(CancelResult::Requested),
                Err(CallError::Definitive { status: 404, .. }) => Ok(CancelResult::NotFound),
                Err(CallError::Definitive {
                    status: 422,
                    message,
                    ..
                }) => Ok(CancelResult::AlreadyDone { message }),
                Err(other) => Err(other),
            }
        })
        .await
    }

    /// `Ok(None)` when the venue does not know (or does not show yet) the id.
    pub async fn order(
        &self,
        venue_order_id: &VenueOrderId,
    ) -> Result<Option<VenueOrder>, CallError> {
        timed(SERVICE, "order", async {
            let response = self
                .http
                .get(self.url(&format!("/v1/orders/{}", segment(venue_order_id.as_str()))))
                .bearer_auth(&self.api_key)
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            match read_response::<VenueOrder>(SERVICE, response).await {
                Ok(order) => Ok(Some(order)),
                Err(CallError::Definitive { status: 404, .. }) => Ok(None),
                Err(other) => Err(other),
            }
        })
        .await
    }

    pub async fn fills(&self, venue_order_id: &VenueOrderId) -> Result<Vec<VenueFill>, CallError> {
        timed(SERVICE, "fills", async {
            let response = self
                .http
                .get(self.url(&format!(
                    "/v1/orders/{}/fills",
                    segment(venue_order_id.as_str())
                )))
                .bearer_auth(&self.api_key)
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            read_response(SERVICE, response).await
        })
        .await
    }

    /// The websocket URL of the execution-report stream.
    pub fn stream_url(&self) -> String {
        let base = self
            .base_url
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        format!("{base}/v1/stream")
    }
}

/// A message on the venue's execution-report stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMessage {
    Auth {
        status: String,
    },
    ExecutionReport(ExecutionReport),
    /// Carries the last seq the venue assigned on this connection.
    Heartbeat {
        seq: u64,
    },
    Error {
        #[serde(default)]
        code: serde_json::Value,
        #[serde(default)]
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExecutionReport {
    pub seq: u64,
    pub exec_id: ExecId,
    pub exec_type: String,
    pub order_id: VenueOrderId,
    pub client_order_id: VenueClientOrderId,
    pub status: String,
    pub last_qty: Decimal,
    #[serde(default)]
    pub last_px: Option<Decimal>,
    pub cum_qty: Decimal,
    pub transact_time: chrono::DateTime<chrono::Utc>,
    /// The order's qty; null while a notional order's is undecided.
    #[serde(default)]
    pub qty: Option<Decimal>,
}

/// The first message a stream client sends.
pub fn stream_auth_message(api_key: &str) -> String {
    serde_json::json!({ "action": "auth", "key": api_key }).to_string()
}

impl ExchangeClient {
    /// One page of the venue's orders (`status` open, closed or all), after
    /// the order id `after`.
    pub async fn list_orders(
        &self,
        status: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VenueOrder>, CallError> {
        timed(SERVICE, "list_orders", async {
            let mut query = vec![("status", status.to_string()), ("limit", limit.to_string())];
            if let Some(after) = after {
                query.push(("after", after.to_string()));
            }
            let response = self
                .http
                .get(self.url("/v1/orders"))
                .query(&query)
                .bearer_auth(&self.api_key)
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            read_response(SERVICE, response).await
        })
        .await
    }
}

#[cfg(test)]
#[path = "exchange_fuzz.rs"]
mod fuzz;
#[cfg(test)]
#[path = "exchange_rest_fuzz.rs"]
mod rest_fuzz;

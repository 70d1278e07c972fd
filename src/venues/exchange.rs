//! The venue's REST API (exchange-sim's, modelled on Alpaca's): place,
//! look up by client_order_id, quotes. Wire types live here and nowhere
//! else; `simulators/exchange/fixtures/` is the contract.

use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{CallError, http_client, read_response, transport_error};

const SERVICE: &str = "exchange";

/// A new order as the venue takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlaceOrderRequest {
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    #[serde(rename = "type")]
    pub order_type: String,
    pub time_in_force: String,
    pub qty: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<Decimal>,
}

/// The venue's view of an order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VenueOrder {
    pub id: String,
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub status: String,
    pub qty: Decimal,
    pub filled_qty: Decimal,
    #[serde(default)]
    pub filled_avg_price: Option<Decimal>,
    #[serde(default)]
    pub reject_reason: Option<String>,
}

/// A quote.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Quote {
    pub symbol: String,
    pub bid: Decimal,
    pub ask: Decimal,
    pub last: Decimal,
}

/// What a placement attempt proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceResult {
    Accepted(VenueOrder),
    /// The venue refused the order (validation or its own rejection).
    Rejected {
        message: String,
    },
    /// The venue already has an order with this client_order_id: ours, from
    /// an earlier attempt whose answer was lost.
    DuplicateClientOrderId,
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

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn place_order(&self, request: &PlaceOrderRequest) -> Result<PlaceResult, CallError> {
        let response = self
            .http
            .post(self.url("/v1/orders"))
            .bearer_auth(&self.api_key)
            .json(request)
            .send()
            .await
            .map_err(|e| transport_error(SERVICE, e))?;
        match read_response::<VenueOrder>(SERVICE, response).await {
            Ok(order) if order.status == "rejected" => Ok(PlaceResult::Rejected {
                message: order
                    .reject_reason
                    .unwrap_or_else(|| "rejected".to_string()),
            }),
            Ok(order) => Ok(PlaceResult::Accepted(order)),
            Err(CallError::Definitive {
                status, message, ..
            }) if status == 422 && is_duplicate_client_order_id(&message) => {
                Ok(PlaceResult::DuplicateClientOrderId)
            }
            Err(CallError::Definitive {
                status, message, ..
            }) if status == 422 || status == 400 || status == 403 => {
                Ok(PlaceResult::Rejected { message })
            }
            Err(other) => Err(other),
        }
    }

    /// `Ok(None)` when the venue does not know the id (or does not show it
    /// yet: venues have stale reads).
    pub async fn order_by_client_order_id(
        &self,
        client_order_id: &str,
    ) -> Result<Option<VenueOrder>, CallError> {
        let response = self
            .http
            .get(self.url("/v1/orders:by_client_order_id"))
            .query(&[("client_order_id", client_order_id)])
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| transport_error(SERVICE, e))?;
        match read_response::<VenueOrder>(SERVICE, response).await {
            Ok(order) => Ok(Some(order)),
            Err(CallError::Definitive { status: 404, .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    pub async fn quote(&self, symbol: &str) -> Result<Quote, CallError> {
        let response = self
            .http
            .get(self.url(&format!("/v1/quotes/{symbol}")))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| transport_error(SERVICE, e))?;
        read_response(SERVICE, response).await
    }
}

/// The venue answers a reused client_order_id with 422 and a message that
/// names it (it does not return the existing order, as on Alpaca).
fn is_duplicate_client_order_id(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("client_order_id")
        && (m.contains("unique") || m.contains("duplicate") || m.contains("already"))
}

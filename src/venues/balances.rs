//! The balances service's REST API (balances-sim's): holds, releases,
//! balances. Every mutating call carries an idempotency key derived from
//! durable state. `simulators/balances/fixtures/` is the contract.

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{CallError, http_client, read_response, segment, timed, transport_error};
use crate::domain::ids::{ExecId, HoldId};
use crate::domain::order::Side;

const SERVICE: &str = "balances";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldReference {
    pub order_id: String,
    pub client_order_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateHoldRequest {
    pub idempotency_key: String,
    pub account_id: String,
    pub asset: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub reference: HoldReference,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Hold {
    pub id: HoldId,
    pub account_id: String,
    pub asset: String,
    pub amount: Decimal,
    pub remaining: Decimal,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseRequest {
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AssetBalance {
    pub total: Decimal,
    pub held: Decimal,
    pub available: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Balances {
    pub account_id: String,
    pub balances: BTreeMap<String, AssetBalance>,
}

/// What a hold request proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldResult {
    Created(Hold),
    InsufficientFunds { available: Option<String> },
    Refused { code: String, message: String },
}

#[derive(Debug, Clone)]
pub struct BalancesClient {
    http: reqwest::Client,
    base_url: String,
}

impl BalancesClient {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        Self {
            http: http_client(timeout),
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn create_hold(&self, request: &CreateHoldRequest) -> Result<HoldResult, CallError> {
        timed(SERVICE, "create_hold", async {
            let response = self
                .http
                .post(self.url("/v1/holds"))
                .json(request)
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            match read_response::<Hold>(SERVICE, response).await {
                Ok(hold) => Ok(HoldResult::Created(hold)),
                Err(CallError::Definitive { code, message, .. })
                    if code == "insufficient_funds" =>
                {
                    Ok(HoldResult::InsufficientFunds {
                        available: available_from(&message),
                    })
                }
                Err(CallError::Definitive { code, message, .. }) => {
                    Ok(HoldResult::Refused { code, message })
                }
                Err(other) => Err(other),
            }
        })
        .await
    }

    /// Releases all that remains of `hold_id`; releasing a closed hold
    /// answers its state, so this is idempotent twice over.
    pub async fn release_hold(
        &self,
        hold_id: &HoldId,
        idempotency_key: &str,
    ) -> Result<Hold, CallError> {
        timed(SERVICE, "release_hold", async {
            let response = self
                .http
                .post(self.url(&format!("/v1/holds/{}/release", segment(hold_id.as_str()))))
                .json(&ReleaseRequest {
                    idempotency_key: idempotency_key.to_string(),
                })
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            read_response(SERVICE, response).await
        })
        .await
    }

    pub async fn balances(&self, account_id: &str) -> Result<Balances, CallError> {
        timed(SERVICE, "balances", async {
            let response = self
                .http
                .get(self.url(&format!("/v1/accounts/{}/balances", segment(account_id))))
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            read_response(SERVICE, response).await
        })
        .await
    }
}

/// The message of an insufficient-funds answer may carry the available
/// amount; it is informational only.
fn available_from(message: &str) -> Option<String> {
    message
        .split("available")
        .nth(1)
        .map(|rest| {
            rest.trim_matches(|c: char| !c.is_ascii_digit() && c != '.')
                .to_string()
        })
        .filter(|s| !s.is_empty())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettlementReference {
    pub order_id: String,
    pub exec_id: ExecId,
}

/// One fill's settlement, keyed by the venue's exec_id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettlementRequest {
    /// The fill's exec id.
    pub idempotency_key: ExecId,
    pub account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<HoldId>,
    pub side: Side,
    pub symbol: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub fee: Decimal,
    /// The part of the hold this fill consumes (qty × the hold's rate);
    /// what it does not spend (price improvement) goes back to available.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub hold_amount: Option<Decimal>,
    pub reference: SettlementReference,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Settlement {
    pub id: String,
    /// The exec id it settled.
    pub idempotency_key: ExecId,
    pub flagged: bool,
    #[serde(default)]
    pub flag_reason: Option<String>,
}

impl BalancesClient {
    pub async fn settle(&self, request: &SettlementRequest) -> Result<Settlement, CallError> {
        timed(SERVICE, "settle", async {
            let response = self
                .http
                .post(self.url("/v1/settlements"))
                .json(request)
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            read_response(SERVICE, response).await
        })
        .await
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Settlements {
    pub settlements: Vec<Settlement>,
}

impl BalancesClient {
    /// `Ok(None)` when the service does not know the hold.
    pub async fn hold(&self, hold_id: &HoldId) -> Result<Option<Hold>, CallError> {
        timed(SERVICE, "hold", async {
            let response = self
                .http
                .get(self.url(&format!("/v1/holds/{}", segment(hold_id.as_str()))))
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            match read_response::<Hold>(SERVICE, response).await {
                Ok(hold) => Ok(Some(hold)),
                Err(CallError::Definitive { status: 404, .. }) => Ok(None),
                Err(other) => Err(other),
            }
        })
        .await
    }

    /// Every settlement the ledger recorded for `order_id`.
    pub async fn settlements_for_order(
        &self,
        order_id: &str,
    ) -> Result<Vec<Settlement>, CallError> {
        timed(SERVICE, "settlements_for_order", async {
            let response = self
                .http
                .get(self.url("/v1/settlements"))
                .query(&[("order_id", order_id)])
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            read_response::<Settlements>(SERVICE, response)
                .await
                .map(|s| s.settlements)
        })
        .await
    }
}

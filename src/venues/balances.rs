//! The balances service's REST API (balances-sim's): holds, releases,
//! balances. Every mutating call carries an idempotency key derived from
//! durable state. `simulators/balances/fixtures/` is the contract.

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{CallError, http_client, read_response, segment, timed, transport_error};
use crate::domain::fills::{REPORT_PRICE_DP, REPORT_QTY_DP};
use crate::domain::ids::{ExecId, HoldId};
use crate::domain::order::{Side, parse_plain_decimal};

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
    /// Release this much (at most what remains); absent: all of it.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub amount: Option<Decimal>,
}

/// Raises an open hold by `amount` (all or nothing), keyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncreaseHoldRequest {
    pub idempotency_key: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
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

/// Most decimal places of a ledger amount (the ledger's own limit): a
/// share quantity ([`REPORT_QTY_DP`], 9) times a price or hold rate on the
/// tick ([`REPORT_PRICE_DP`], 4), so that cash moves by exactly what
/// fractional shares cost and a fill consumes exactly its part of a hold.
pub const LEDGER_DP: u32 = REPORT_QTY_DP + REPORT_PRICE_DP;

/// Largest ledger amount orderd takes, in either sign: far above any
/// balance (the ledger takes no amount above 10^12 at once), far below
/// where what orderd computes from one (× a price of at most
/// `REPORT_PRICE_MAX`, summed over positions) could overflow.
pub const LEDGER_AMOUNT_MAX: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0);

/// A ledger answer's numbers, held to the ledger's contract before orderd
/// uses any of them.
pub trait Bounded {
    /// `Err` names the first number out of bounds.
    fn check(&self) -> Result<(), String>;
}

/// `name`'s `value` is an amount: at most [`LEDGER_DP`] places and
/// [`LEDGER_AMOUNT_MAX`] in size, and not negative unless `signed`.
fn amount(name: &str, value: Decimal, signed: bool) -> Result<(), String> {
    if value.abs() > LEDGER_AMOUNT_MAX || (!signed && value < Decimal::ZERO) {
        return Err(format!("{name} {value} out of range"));
    }
    if value.normalize().scale() > LEDGER_DP {
        return Err(format!(
            "{name} {value} has more than {LEDGER_DP} decimal places"
        ));
    }
    Ok(())
}

impl Bounded for Hold {
    /// More than 0; what remains of it between 0 and all of it; open or
    /// closed.
    fn check(&self) -> Result<(), String> {
        amount("hold amount", self.amount, false)?;
        amount("hold remaining", self.remaining, false)?;
        if self.amount.is_zero() || self.remaining > self.amount {
            return Err(format!(
                "hold {} remaining of {}",
                self.remaining, self.amount
            ));
        }
        if !matches!(self.status.as_str(), "open" | "closed") {
            return Err(format!("hold status {:?}", self.status));
        }
        Ok(())
    }
}

impl Bounded for AssetBalance {
    /// Nothing negative held; `available = total − held` (either may be
    /// negative after a flagged settlement).
    fn check(&self) -> Result<(), String> {
        amount("total", self.total, true)?;
        amount("held", self.held, false)?;
        amount("available", self.available, true)?;
        if self.total.checked_sub(self.held) != Some(self.available) {
            return Err(format!(
                "available {} is not total {} less held {}",
                self.available, self.total, self.held
            ));
        }
        Ok(())
    }
}

impl Bounded for Balances {
    fn check(&self) -> Result<(), String> {
        for (asset, balance) in &self.balances {
            balance
                .check()
                .map_err(|problem| format!("{asset}: {problem}"))?;
        }
        Ok(())
    }
}

/// `answer` with its numbers checked: one out of bounds is an answer
/// orderd cannot use, like a body that does not decode.
pub(crate) fn checked<T: Bounded>(answer: T) -> Result<T, CallError> {
    match answer.check() {
        Ok(()) => Ok(answer),
        Err(detail) => Err(CallError::Unexpected {
            service: SERVICE,
            detail,
        }),
    }
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
            hold_result(read_response::<Hold>(SERVICE, response).await)
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
        self.release(hold_id, idempotency_key, None).await
    }

    /// Releases `amount` of `hold_id` (at most what remains): a hold that
    /// must shrink while its order works on (the replaced part of a
    /// replace chain). A closed hold answers its state.
    pub async fn release_part(
        &self,
        hold_id: &HoldId,
        idempotency_key: &str,
        amount: Decimal,
    ) -> Result<Hold, CallError> {
        self.release(hold_id, idempotency_key, Some(amount)).await
    }

    /// Raises an open hold by `amount` when the account has it available
    /// (all or nothing). A closed hold is refused (`hold_closed`).
    pub async fn increase_hold(
        &self,
        hold_id: &HoldId,
        request: &IncreaseHoldRequest,
    ) -> Result<HoldResult, CallError> {
        timed(SERVICE, "increase_hold", async {
            let response = self
                .http
                .post(self.url(&format!("/v1/holds/{}/increase", segment(hold_id.as_str()))))
                .json(request)
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            hold_result(read_response::<Hold>(SERVICE, response).await)
        })
        .await
    }

    async fn release(
        &self,
        hold_id: &HoldId,
        idempotency_key: &str,
        amount: Option<Decimal>,
    ) -> Result<Hold, CallError> {
        timed(SERVICE, "release_hold", async {
            let response = self
                .http
                .post(self.url(&format!("/v1/holds/{}/release", segment(hold_id.as_str()))))
                .json(&ReleaseRequest {
                    idempotency_key: idempotency_key.to_string(),
                    amount,
                })
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            read_response(SERVICE, response).await.and_then(checked)
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
            read_response(SERVICE, response).await.and_then(checked)
        })
        .await
    }
}

/// What a hold request's answer proves. Pure (the fuzz target drives it).
pub(crate) fn hold_result(answer: Result<Hold, CallError>) -> Result<HoldResult, CallError> {
    match answer.and_then(checked) {
        Ok(hold) => Ok(HoldResult::Created(hold)),
        Err(CallError::Definitive { code, message, .. }) if code == "insufficient_funds" => {
            Ok(HoldResult::InsufficientFunds {
                available: available_from(&message),
            })
        }
        Err(CallError::Definitive { code, message, .. }) => {
            Ok(HoldResult::Refused { code, message })
        }
        Err(other) => Err(other),
    }
}

/// What a hold look-up's answer proves: `None` for a hold the service does
/// not know. Pure.
pub(crate) fn hold_lookup(answer: Result<Hold, CallError>) -> Result<Option<Hold>, CallError> {
    match answer.and_then(checked) {
        Ok(hold) => Ok(Some(hold)),
        Err(CallError::Definitive { status: 404, .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

/// The message of an insufficient-funds answer may carry the available
/// amount (`... USD available 98994.5, requested 1000000`); it is
/// informational only: the amount right after the word, if it is one.
fn available_from(message: &str) -> Option<String> {
    let rest = message.split("available").nth(1)?;
    let rest = rest.trim_start_matches([' ', ':']);
    let (sign, digits) = match rest.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", rest),
    };
    let end = digits
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(digits.len());
    let digits = digits[..end].trim_end_matches('.');
    let value = parse_plain_decimal(digits)?;
    amount("available", value, false).ok()?;
    Some(format!("{sign}{digits}"))
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
            hold_lookup(read_response::<Hold>(SERVICE, response).await)
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

#[cfg(test)]
#[path = "balances_fuzz.rs"]
mod fuzz;

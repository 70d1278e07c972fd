//! JSON wire types of the HTTP API: every request and response body.
//!
//! The golden fixtures under `fixtures/` are these types serialized; they, not this
//! crate, are the contract for clients (orderd does not depend on this crate).
//! Amounts are decimal strings on the wire (`"100.25"`), never JSON numbers.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::faults::FaultConfig;
use crate::ledger;

/// A decimal carried as a JSON string. Serialized normalized (`"100"`, not `"100.00"`);
/// deserializing refuses JSON numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub Decimal);

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0.normalize())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal string such as \"100.25\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
                parse_decimal(v)
                    .map(Amount)
                    .ok_or_else(|| E::custom(format!("invalid decimal string {v:?}")))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Parses a plain decimal string (optional leading '-', digits, optional '.' and digits).
/// Exponents, spaces, '+' and underscores are refused.
pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let well_formed = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && frac.is_empty());
    if !well_formed {
        return None;
    }
    s.parse().ok()
}

/// Every error body: `{"code", "message"}` plus fields that some codes add.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// snake_case, stable; clients branch on it.
    pub code: String,
    pub message: String,
    /// The offending request field, for `invalid_field` / `missing_field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `insufficient_funds`: what was available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<Amount>,
}

// ---- requests -------------------------------------------------------------------

/// `POST /admin/accounts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateAccountRequest {
    pub account_id: String,
    #[serde(default)]
    pub balances: BTreeMap<String, Amount>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HoldReference {
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub client_order_id: Option<String>,
}

/// `POST /v1/holds`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateHoldRequest {
    pub idempotency_key: String,
    pub account_id: String,
    pub asset: String,
    pub amount: Amount,
    #[serde(default)]
    pub reference: HoldReference,
}

/// `POST /v1/holds/{id}/release`. No `amount`: release everything remaining and close.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub idempotency_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
}

/// `POST /v1/holds/{id}/increase`: raise an open hold by `amount`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncreaseRequest {
    pub idempotency_key: String,
    pub amount: Amount,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SettlementReference {
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub exec_id: Option<String>,
}

/// `POST /v1/settlements`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettlementRequest {
    /// The venue's exec_id.
    pub idempotency_key: String,
    pub account_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
    pub side: Side,
    pub symbol: String,
    pub qty: Amount,
    pub price: Amount,
    pub fee: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<SettlementReference>,
}

// ---- responses ------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    pub total: Amount,
    pub held: Amount,
    pub available: Amount,
}

/// `GET /v1/accounts/{id}/balances`, and the body of `POST /admin/accounts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BalancesResponse {
    pub account_id: String,
    pub balances: BTreeMap<String, Balance>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Open,
    Closed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub id: String,
    pub account_id: String,
    pub asset: String,
    pub amount: Amount,
    pub consumed: Amount,
    pub released: Amount,
    /// amount − consumed − released.
    pub remaining: Amount,
    pub status: HoldStatus,
    pub reference: HoldReference,
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/holds?idempotency_key=|order_id=`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldsResponse {
    pub holds: Vec<Hold>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settlement {
    pub id: String,
    pub idempotency_key: String,
    pub account_id: String,
    pub hold_id: Option<String>,
    pub side: Side,
    pub symbol: String,
    pub qty: Amount,
    pub price: Amount,
    pub fee: Amount,
    pub hold_amount: Option<Amount>,
    /// What was actually taken from the hold.
    pub hold_consumed: Amount,
    pub flagged: bool,
    /// `hold_closed` | `hold_insufficient` | `negative_available`, null when not flagged.
    pub flag_reason: Option<String>,
    pub reference: SettlementReference,
    pub ledger_seqs: Vec<u64>,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/settlements?idempotency_key=|order_id=`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettlementsResponse {
    pub settlements: Vec<Settlement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    Hold,
    Release,
    TradeDebit,
    TradeCredit,
    Fee,
    Adjustment,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub seq: u64,
    pub account_id: String,
    #[serde(rename = "type")]
    pub entry_type: EntryType,
    pub asset: String,
    /// Signed: change of `total` for adjustment/trade_*/fee, change of `held` for hold/release.
    pub amount: Amount,
    pub total_after: Amount,
    pub held_after: Amount,
    pub hold_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub exec_id: Option<String>,
    pub order_id: Option<String>,
    pub time: DateTime<Utc>,
}

/// `GET /v1/ledger?account_id=&after_seq=&limit=`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerResponse {
    pub entries: Vec<LedgerEntry>,
    /// Pass as `after_seq` to get the next page (the last returned seq, or the
    /// request's `after_seq` when the page is empty).
    pub next_after_seq: u64,
    pub has_more: bool,
}

/// `GET /admin/ground-truth`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub accounts: Vec<BalancesResponse>,
    pub holds: Vec<Hold>,
    pub settlements: Vec<Settlement>,
    pub ledger: Vec<LedgerEntry>,
}

/// `GET /admin/stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests received, by endpoint name (e.g. `create_hold`).
    pub requests: BTreeMap<String, u64>,
    /// Faults injected, by kind (`http_429`, `error_5xx`, `latency`, `response_lost`,
    /// and `response_lost_<mode>`).
    pub faults: BTreeMap<String, u64>,
    /// Idempotency outcomes: `replayed`, `in_flight_conflict`, `key_reused`.
    pub idempotency: BTreeMap<String, u64>,
}

/// `GET`/`PUT /admin/faults` body.
pub type Faults = FaultConfig;

// ---- conversions from the core ----------------------------------------------------

impl From<&ledger::Account> for BalancesResponse {
    fn from(account: &ledger::Account) -> Self {
        BalancesResponse {
            account_id: account.account_id.clone(),
            balances: account
                .balances
                .iter()
                .map(|(asset, b)| {
                    let balance = Balance {
                        total: Amount(b.total),
                        held: Amount(b.held),
                        available: Amount(b.available()),
                    };
                    (asset.clone(), balance)
                })
                .collect(),
        }
    }
}

impl From<&ledger::Hold> for Hold {
    fn from(hold: &ledger::Hold) -> Self {
        Hold {
            id: hold.id.to_string(),
            account_id: hold.account_id.clone(),
            asset: hold.asset.clone(),
            amount: Amount(hold.amount),
            consumed: Amount(hold.consumed),
            released: Amount(hold.released),
            remaining: Amount(hold.remaining()),
            status: match hold.status {
                ledger::HoldStatus::Open => HoldStatus::Open,
                ledger::HoldStatus::Closed => HoldStatus::Closed,
            },
            reference: HoldReference {
                order_id: hold.reference.order_id.clone(),
                client_order_id: hold.reference.client_order_id.clone(),
            },
            idempotency_key: hold.idempotency_key.clone(),
            created_at: hold.created_at,
            updated_at: hold.updated_at,
        }
    }
}

impl From<ledger::Side> for Side {
    fn from(side: ledger::Side) -> Self {
        match side {
            ledger::Side::Buy => Side::Buy,
            ledger::Side::Sell => Side::Sell,
        }
    }
}

impl From<Side> for ledger::Side {
    fn from(side: Side) -> Self {
        match side {
            Side::Buy => ledger::Side::Buy,
            Side::Sell => ledger::Side::Sell,
        }
    }
}

impl From<&ledger::Settlement> for Settlement {
    fn from(s: &ledger::Settlement) -> Self {
        Settlement {
            id: s.id.to_string(),
            idempotency_key: s.idempotency_key.clone(),
            account_id: s.account_id.clone(),
            hold_id: s.hold_id.map(|id| id.to_string()),
            side: s.side.into(),
            symbol: s.symbol.clone(),
            qty: Amount(s.qty),
            price: Amount(s.price),
            fee: Amount(s.fee),
            hold_amount: s.hold_amount.map(Amount),
            hold_consumed: Amount(s.hold_consumed),
            flagged: s.flag_reason.is_some(),
            flag_reason: s.flag_reason.map(|r| r.as_str().to_owned()),
            reference: SettlementReference {
                order_id: s.reference.order_id.clone(),
                exec_id: s.reference.exec_id.clone(),
            },
            ledger_seqs: s.ledger_seqs.clone(),
            created_at: s.created_at,
        }
    }
}

impl From<&ledger::LedgerEntry> for LedgerEntry {
    fn from(e: &ledger::LedgerEntry) -> Self {
        LedgerEntry {
            seq: e.seq,
            account_id: e.account_id.clone(),
            entry_type: match e.entry_type {
                ledger::EntryType::Hold => EntryType::Hold,
                ledger::EntryType::Release => EntryType::Release,
                ledger::EntryType::TradeDebit => EntryType::TradeDebit,
                ledger::EntryType::TradeCredit => EntryType::TradeCredit,
                ledger::EntryType::Fee => EntryType::Fee,
                ledger::EntryType::Adjustment => EntryType::Adjustment,
            },
            asset: e.asset.clone(),
            amount: Amount(e.amount),
            total_after: Amount(e.total_after),
            held_after: Amount(e.held_after),
            hold_id: e.hold_id.map(|id| id.to_string()),
            idempotency_key: e.idempotency_key.clone(),
            exec_id: e.exec_id.clone(),
            order_id: e.order_id.clone(),
            time: e.time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_are_strict() {
        for ok in ["0", "1", "-1", "100.25", "0.00000001"] {
            assert!(parse_decimal(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "-", ".5", "5.", "1e5", "+1", " 1", "1_000", "abc", "1.2.3", "NaN",
        ] {
            assert!(parse_decimal(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn amounts_refuse_json_numbers_and_serialize_normalized() {
        assert!(serde_json::from_str::<Amount>("100").is_err());
        let a: Amount = serde_json::from_str("\"100.50\"").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"100.5\"");
    }
}

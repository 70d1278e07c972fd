//! Request bodies → core requests, once, at the edge. Every error names its field.
//!
//! Parsing goes through `serde_json::Value` by hand rather than `#[derive(Deserialize)]`
//! so that a wrong type (for example an amount sent as a JSON number) is a 422 that
//! says which field, and unknown fields are ignored.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::ledger::{
    HoldReference, IncreaseHold, NewHold, NewSettlement, ReleaseHold, SettlementReference, Side,
    USD, check_amount,
};
use crate::wire::parse_decimal;

/// Longest accepted idempotency key, account id, order id, exec id or client order id.
pub const MAX_ID_LEN: usize = 255;
/// Longest accepted asset symbol.
pub const MAX_ASSET_LEN: usize = 16;

/// Parses the body as a JSON object (400 `malformed_json` otherwise).
pub fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// A view on one JSON object; `prefix` makes nested field names like `reference.order_id`.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: &'static str,
}

impl<'a> Fields<'a> {
    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    /// The value, with JSON null treated as absent.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn opt_str(&self, field: &str, max_len: usize) -> Result<Option<String>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Err(ApiError::invalid_field(
                &self.name(field),
                "must not be empty",
            )),
            Some(Value::String(s)) if s.len() > max_len => Err(ApiError::invalid_field(
                &self.name(field),
                format!("must be at most {max_len} bytes"),
            )),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid_field(
                &self.name(field),
                "must be a string",
            )),
        }
    }

    fn str(&self, field: &str, max_len: usize) -> Result<String, ApiError> {
        self.opt_str(field, max_len)?
            .ok_or_else(|| ApiError::missing_field(&self.name(field)))
    }

    fn asset(&self, field: &str) -> Result<String, ApiError> {
        let asset = self.str(field, MAX_ASSET_LEN)?;
        check_asset(&self.name(field), &asset)?;
        Ok(asset)
    }

    fn opt_amount(&self, field: &str, allow_zero: bool) -> Result<Option<Decimal>, ApiError> {
        let name = self.name(field);
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let value = parse_decimal(s).ok_or_else(|| {
                    ApiError::invalid_field(&name, format!("{s:?} is not a decimal string"))
                })?;
                amount_in_range(&name, value, allow_zero)?;
                Ok(Some(value))
            }
            Some(Value::Number(_)) => Err(ApiError::invalid_field(
                &name,
                "must be a decimal string such as \"100.25\", not a JSON number",
            )),
            Some(_) => Err(ApiError::invalid_field(&name, "must be a decimal string")),
        }
    }

    fn amount(&self, field: &str, allow_zero: bool) -> Result<Decimal, ApiError> {
        self.opt_amount(field, allow_zero)?
            .ok_or_else(|| ApiError::missing_field(&self.name(field)))
    }

    fn opt_object(
        &self,
        field: &str,
        prefix: &'static str,
    ) -> Result<Option<Fields<'a>>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields { map, prefix })),
            Some(_) => Err(ApiError::invalid_field(
                &self.name(field),
                "must be an object",
            )),
        }
    }
}

fn amount_in_range(field: &str, value: Decimal, allow_zero: bool) -> Result<(), ApiError> {
    check_amount("amount", value, allow_zero).map_err(|e| match e {
        crate::ledger::LedgerError::InvalidAmount { reason, .. } => {
            ApiError::invalid_field(field, reason)
        }
        other => ApiError::from(other),
    })
}

fn check_asset(field: &str, asset: &str) -> Result<(), ApiError> {
    let ok = asset.bytes().all(|b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'/'
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            field,
            "must be USD or an upper-case symbol (A-Z, 0-9, '.', '-', '/')",
        ))
    }
}

/// A hold id from a path or a body; anything that is not a UUID cannot name a hold.
pub fn hold_id(field: &str, s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::invalid_field(field, "must be a hold id (UUID)"))
}

/// `POST /admin/accounts` → (account_id, initial balances).
pub fn create_account(body: &[u8]) -> Result<(String, BTreeMap<String, Decimal>), ApiError> {
    let map = object(body)?;
    let f = Fields {
        map: &map,
        prefix: "",
    };
    let account_id = f.str("account_id", MAX_ID_LEN)?;
    let mut balances = BTreeMap::new();
    if let Some(b) = f.opt_object("balances", "balances.")? {
        for asset in b.map.keys() {
            check_asset(&b.name(asset), asset)?;
            if asset.len() > MAX_ASSET_LEN {
                return Err(ApiError::invalid_field(&b.name(asset), "symbol too long"));
            }
            balances.insert(asset.clone(), b.amount(asset, true)?);
        }
    }
    Ok((account_id, balances))
}

/// `POST /v1/holds`.
pub fn create_hold(body: &[u8]) -> Result<NewHold, ApiError> {
    let map = object(body)?;
    let f = Fields {
        map: &map,
        prefix: "",
    };
    let idempotency_key = f.str("idempotency_key", MAX_ID_LEN)?;
    let account_id = f.str("account_id", MAX_ID_LEN)?;
    let asset = f.asset("asset")?;
    let amount = f.amount("amount", false)?;
    let reference = match f.opt_object("reference", "reference.")? {
        None => HoldReference::default(),
        Some(r) => HoldReference {
            order_id: r.opt_str("order_id", MAX_ID_LEN)?,
            client_order_id: r.opt_str("client_order_id", MAX_ID_LEN)?,
        },
    };
    Ok(NewHold {
        idempotency_key,
        account_id,
        asset,
        amount,
        reference,
    })
}

/// `POST /v1/holds/{id}/release`.
pub fn release(hold_id: Uuid, body: &[u8]) -> Result<ReleaseHold, ApiError> {
    let map = object(body)?;
    let f = Fields {
        map: &map,
        prefix: "",
    };
    Ok(ReleaseHold {
        hold_id,
        idempotency_key: f.str("idempotency_key", MAX_ID_LEN)?,
        amount: f.opt_amount("amount", false)?,
    })
}

/// `POST /v1/holds/{id}/increase`.
pub fn increase(hold_id: Uuid, body: &[u8]) -> Result<IncreaseHold, ApiError> {
    let map = object(body)?;
    let f = Fields {
        map: &map,
        prefix: "",
    };
    Ok(IncreaseHold {
        hold_id,
        idempotency_key: f.str("idempotency_key", MAX_ID_LEN)?,
        amount: f.amount("amount", false)?,
    })
}

/// `POST /v1/settlements`.
pub fn settlement(body: &[u8]) -> Result<NewSettlement, ApiError> {
    let map = object(body)?;
    let f = Fields {
        map: &map,
        prefix: "",
    };
    let idempotency_key = f.str("idempotency_key", MAX_ID_LEN)?;
    let account_id = f.str("account_id", MAX_ID_LEN)?;
    let hold_id = match f.opt_str("hold_id", MAX_ID_LEN)? {
        None => None,
        Some(s) => Some(hold_id("hold_id", &s)?),
    };
    let side = match f.str("side", 8)?.as_str() {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        _ => {
            return Err(ApiError::invalid_field(
                "side",
                "must be \"buy\" or \"sell\"",
            ));
        }
    };
    let symbol = f.asset("symbol")?;
    if symbol == USD {
        return Err(ApiError::invalid_field(
            "symbol",
            "must be a security, not USD",
        ));
    }
    let qty = f.amount("qty", false)?;
    let price = f.amount("price", false)?;
    let fee = f.amount("fee", true)?;
    let hold_amount = f.opt_amount("hold_amount", true)?;
    let reference = match f.opt_object("reference", "reference.")? {
        None => SettlementReference::default(),
        Some(r) => SettlementReference {
            order_id: r.opt_str("order_id", MAX_ID_LEN)?,
            exec_id: r.opt_str("exec_id", MAX_ID_LEN)?,
        },
    };
    Ok(NewSettlement {
        idempotency_key,
        account_id,
        hold_id,
        side,
        symbol,
        qty,
        price,
        fee,
        hold_amount,
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(result: Result<NewHold, ApiError>) -> (u16, String, Option<String>) {
        let e = result.unwrap_err();
        (e.status.as_u16(), e.body.code, e.body.field)
    }

    #[test]
    fn hold_errors_name_the_field() {
        let ok = br#"{"idempotency_key":"k","account_id":"a","asset":"USD","amount":"10","reference":{"order_id":"o"}}"#;
        assert_eq!(create_hold(ok).unwrap().amount, Decimal::TEN);
        let cases: &[(&[u8], u16, &str, Option<&str>)] = &[
            (b"nope", 400, "malformed_json", None),
            (b"[]", 400, "malformed_json", None),
            (br#"{"account_id":"a","asset":"USD","amount":"1"}"#, 422, "missing_field", Some("idempotency_key")),
            (br#"{"idempotency_key":"k","account_id":"a","asset":"USD","amount":10}"#, 422, "invalid_field", Some("amount")),
            (br#"{"idempotency_key":"k","account_id":"a","asset":"USD","amount":"-1"}"#, 422, "invalid_field", Some("amount")),
            (br#"{"idempotency_key":"k","account_id":"a","asset":"USD","amount":"0"}"#, 422, "invalid_field", Some("amount")),
            (br#"{"idempotency_key":"k","account_id":"a","asset":"USD","amount":"1e400"}"#, 422, "invalid_field", Some("amount")),
            (br#"{"idempotency_key":"k","account_id":"a","asset":"USD","amount":"99999999999999999999"}"#, 422, "invalid_field", Some("amount")),
            (br#"{"idempotency_key":"k","account_id":"a","asset":"usd","amount":"1"}"#, 422, "invalid_field", Some("asset")),
            (br#"{"idempotency_key":"","account_id":"a","asset":"USD","amount":"1"}"#, 422, "invalid_field", Some("idempotency_key")),
            (br#"{"idempotency_key":"k","account_id":7,"asset":"USD","amount":"1"}"#, 422, "invalid_field", Some("account_id")),
            (br#"{"idempotency_key":"k","account_id":"a","asset":"USD","amount":"1","reference":{"order_id":1}}"#, 422, "invalid_field", Some("reference.order_id")),
        ];
        for (body, status, code, field) in cases {
            assert_eq!(
                err(create_hold(body)),
                (*status, (*code).to_owned(), field.map(str::to_owned)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

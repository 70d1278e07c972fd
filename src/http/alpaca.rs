//! Alpaca Trading API v2 wire shapes: the order request as traders (and
//! alpaca-py) send it, and the order object as they expect it back.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use crate::domain::lifecycle::Status;
use crate::domain::order::{
    Amount, ClientOrderId, LimitPrice, NOTIONAL_DP, NewOrder, Notional, OrderType, Prices, QTY_DP,
    Qty, Side, Symbol, TRAIL_PERCENT_DP, TimeInForce, Trail, TrailPercent, is_plain_decimal,
    parse_field, parse_plain_decimal,
};
use crate::domain::{InvalidField, TextEnum};
use crate::store::orders::OrderRecord;

pub use crate::domain::asset::asset_id;

impl From<InvalidField> for ApiError {
    fn from(error: InvalidField) -> Self {
        ApiError::validation(error.to_string())
    }
}

fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn string_field(body: &Map<String, Value>, name: &'static str) -> Result<Option<String>, ApiError> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::validation(format!("{name} must be a string"))),
    }
}

fn required_string(body: &Map<String, Value>, name: &'static str) -> Result<String, ApiError> {
    string_field(body, name)?.ok_or_else(|| ApiError::validation(format!("{name} is required")))
}

/// How a decimal arrived: a JSON string is exact, a JSON number is a
/// binary float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Text,
    Number,
}

/// A decimal field: a string in plain decimal notation ("10", "190.25") or
/// a JSON number (10, 190.25, 1e2).
fn decimal_field(
    body: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<(Decimal, Wire)>, ApiError> {
    let must = || ApiError::validation(format!("{name} must be a decimal number"));
    match field(body, name) {
        None => Ok(None),
        Some(Value::String(text)) if is_plain_decimal(text) => parse_plain_decimal(text)
            .map(|d| Some((d, Wire::Text)))
            .ok_or_else(must),
        Some(Value::String(text)) => Err(ApiError::validation(format!(
            "{name} must be a decimal number in plain notation (digits, an optional point), got {text:?}"
        ))),
        Some(Value::Number(number)) => {
            let decimal = match (number.as_u64(), number.as_f64()) {
                (Some(whole), _) => Some(Decimal::from(whole)),
                // The shortest text that denotes this float.
                (None, Some(float)) if float.is_finite() => {
                    Decimal::from_str(&format!("{float}")).ok()
                }
                _ => None,
            };
            decimal.map(|d| Some((d, Wire::Number))).ok_or_else(must)
        }
        Some(_) => Err(must()),
    }
}

/// A JSON number denotes a binary float: 115 * 0.01 is 1.1500000000000001.
/// A price that far (float noise) from the tick is the tick's price.
fn snap_float_noise(price: Decimal, wire: Wire) -> Decimal {
    snap_to_places(price, wire, LimitPrice::tick_places(price))
}

/// A float within 1e-9 of a value of `places` decimal places is that value.
fn snap_to_places(value: Decimal, wire: Wire, places: u32) -> Decimal {
    const FLOAT_NOISE: Decimal = Decimal::from_parts(1, 0, 0, false, 9);
    if wire == Wire::Text {
        return value;
    }
    let snapped = value.round_dp(places);
    if (snapped - value).abs() <= FLOAT_NOISE {
        snapped
    } else {
        value
    }
}

/// A quantity as given: a string exactly (more than `QTY_DP` places is
/// refused); a JSON number, a binary float, read to `QTY_DP` places. A
/// float cannot be held to that grid (near the largest quantity its
/// spacing is 2e-9), so its nearest value on it is the quantity meant.
fn snap_qty(qty: Decimal, wire: Wire) -> Decimal {
    match wire {
        Wire::Text => qty,
        Wire::Number => qty.round_dp(QTY_DP),
    }
}

/// Fields orderd refuses unless absent or null (brackets, legs).
pub const UNSUPPORTED_FIELDS: [&str; 3] = ["take_profit", "stop_loss", "legs"];

/// Parses a `POST /v2/orders` body into a validated order. Malformed JSON
/// is a 400; a missing, mistyped or out-of-range field a 422 naming it.
pub fn parse_order_request(bytes: &[u8]) -> Result<NewOrder, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::bad_request(format!("request body is not valid JSON: {error}"))
    })?;
    let Value::Object(body) = value else {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    };

    for unsupported in UNSUPPORTED_FIELDS {
        if field(&body, unsupported).is_some() {
            return Err(ApiError::validation(format!(
                "{unsupported} is not supported by orderd"
            )));
        }
    }
    if let Some(class) = string_field(&body, "order_class")?
        && !(class.is_empty() || class == "simple")
    {
        return Err(ApiError::validation(format!(
            "order_class {class:?} is not supported; only simple orders are"
        )));
    }
    match field(&body, "extended_hours") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Err(ApiError::validation(
                "extended_hours orders are not supported",
            ));
        }
        Some(_) => return Err(ApiError::validation("extended_hours must be a boolean")),
    }

    let symbol = Symbol::parse(&required_string(&body, "symbol")?)?;
    // Exactly one of qty and notional (Alpaca's rule).
    let amount = match (
        decimal_field(&body, "qty")?,
        decimal_field(&body, "notional")?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "notional and qty cannot both be given; choose one",
            ));
        }
        (None, None) => return Err(ApiError::validation("qty (or notional) is required")),
        (Some((qty, wire)), None) => Amount::Qty(Qty::parse(snap_qty(qty, wire))?),
        (None, Some((notional, wire))) => Amount::Notional(Notional::parse(snap_to_places(
            notional,
            wire,
            NOTIONAL_DP,
        ))?),
    };
    let side = parse_field::<Side>(&required_string(&body, "side")?)?;
    let order_type = parse_field::<OrderType>(&required_string(&body, "type")?)?;
    let time_in_force = parse_field::<TimeInForce>(&required_string(&body, "time_in_force")?)?;
    let price = |name: &'static str| -> Result<Option<LimitPrice>, ApiError> {
        Ok(decimal_field(&body, name)?
            .map(|(price, wire)| LimitPrice::parse_as(name, snap_float_noise(price, wire)))
            .transpose()?)
    };
    let limit = price("limit_price")?;
    let stop = price("stop_price")?;
    let trail_price = price("trail_price")?;
    let trail_percent = decimal_field(&body, "trail_percent")?
        .map(|(percent, wire)| TrailPercent::parse(snap_to_places(percent, wire, TRAIL_PERCENT_DP)))
        .transpose()?;
    let trail = match (trail_price, trail_percent) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "trail_price and trail_percent cannot both be given; choose one",
            ));
        }
        (Some(price), None) => Some(Trail::Price(price)),
        (None, Some(percent)) => Some(Trail::Percent(percent)),
        (None, None) => None,
    };
    let client_order_id = string_field(&body, "client_order_id")?
        .map(|s| ClientOrderId::parse(&s))
        .transpose()?;
    Ok(NewOrder::of(
        symbol,
        side,
        order_type,
        time_in_force,
        amount,
        Prices { limit, stop, trail },
        client_order_id,
    )?)
}

fn decimal_string(value: Decimal) -> String {
    value.normalize().to_string()
}

/// Alpaca's order object, as orderd answers it. `order_json` serializes
/// exactly this type, and the OpenAPI document is generated from it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Order)]
pub struct AlpacaOrder {
    pub id: Uuid,
    pub client_order_id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Alpaca sets it on acceptance; alpaca-py requires it.
    pub submitted_at: chrono::DateTime<chrono::Utc>,
    pub filled_at: Option<chrono::DateTime<chrono::Utc>>,
    pub expired_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The session close for day orders, the close after the GTC horizon
    /// for GTC orders.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub canceled_at: Option<chrono::DateTime<chrono::Utc>>,
    pub failed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub replaced_at: Option<chrono::DateTime<chrono::Utc>>,
    pub replaced_by: Option<Uuid>,
    pub replaces: Option<Uuid>,
    /// Stable per symbol (UUID v5 of the symbol).
    pub asset_id: Uuid,
    pub symbol: String,
    /// Always `us_equity`.
    pub asset_class: String,
    /// A notional order's cash amount; null for the others.
    pub notional: Option<String>,
    /// Decimal as a string; null while a notional order's is not known
    /// (the venue decides it; orderd records it once the venue reports
    /// the order filled).
    pub qty: Option<String>,
    pub filled_qty: String,
    pub filled_avg_price: Option<String>,
    /// Always `simple`.
    pub order_class: String,
    #[schema(schema_with = text_enum_schema::<OrderType>)]
    pub order_type: OrderType,
    #[serde(rename = "type")]
    #[schema(schema_with = text_enum_schema::<OrderType>)]
    pub type_: OrderType,
    #[schema(schema_with = text_enum_schema::<Side>)]
    pub side: Side,
    pub position_intent: String,
    #[schema(schema_with = text_enum_schema::<TimeInForce>)]
    pub time_in_force: TimeInForce,
    pub limit_price: Option<String>,
    pub stop_price: Option<String>,
    #[schema(schema_with = text_enum_schema::<Status>)]
    pub status: Status,
    pub extended_hours: bool,
    pub legs: Option<Vec<String>>,
    pub trail_percent: Option<String>,
    pub trail_price: Option<String>,
    pub hwm: Option<String>,
}

/// The OpenAPI schema of a closed set of values: a string with exactly
/// the spellings the domain accepts (`schema_with` on a field).
pub fn text_enum_schema<T: TextEnum>() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(T::ALL.iter().map(|v| v.as_str())))
        .build()
}

impl From<&OrderRecord> for AlpacaOrder {
    fn from(order: &OrderRecord) -> Self {
        Self {
            id: order.order_id,
            client_order_id: order.client_order_id.to_string(),
            created_at: order.created_at,
            updated_at: order.updated_at,
            submitted_at: order.submitted_at.unwrap_or(order.created_at),
            filled_at: order.filled_at,
            expired_at: order.expired_at,
            expires_at: order.expires_at(),
            canceled_at: order.canceled_at,
            failed_at: order.failed_at,
            replaced_at: order.replaced_at,
            replaced_by: order
                .replaced_by
                .filter(|_| order.status == Status::Replaced),
            replaces: order.replaces,
            asset_id: asset_id(&order.symbol),
            symbol: order.symbol.clone(),
            asset_class: "us_equity".to_string(),
            notional: order.notional.map(decimal_string),
            qty: order.known_qty().map(decimal_string),
            filled_qty: decimal_string(order.filled_qty),
            filled_avg_price: order.filled_avg_price.map(decimal_string),
            order_class: "simple".to_string(),
            order_type: order.order_type,
            type_: order.order_type,
            side: order.side,
            position_intent: match order.side {
                Side::Buy => "buy_to_open",
                Side::Sell => "sell_to_close",
            }
            .to_string(),
            time_in_force: order.time_in_force,
            limit_price: order.limit_price.map(decimal_string),
            stop_price: order.stop_price.map(decimal_string),
            status: order.status,
            extended_hours: false,
            legs: None,
            trail_percent: order.trail_percent.map(decimal_string),
            trail_price: order.trail_price.map(decimal_string),
            hwm: None,
        }
    }
}

/// The Alpaca order object for `order`.
pub fn order_json(order: &OrderRecord) -> Value {
    serde_json::to_value(AlpacaOrder::from(order)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<NewOrder, ApiError> {
        parse_order_request(body.as_bytes())
    }

    #[test]
    fn alpaca_py_style_numbers_are_accepted() {
        let order = parse(
            r#"{"symbol":"AAPL","qty":10.0,"side":"buy","type":"limit","time_in_force":"gtc","limit_price":190.5,"order_class":"simple","extended_hours":false,"notional":null}"#,
        )
        .unwrap();
        assert_eq!(
            order.amount.qty().map(|q| q.value()),
            Some(Decimal::from(10))
        );
        assert_eq!(order.prices.limit.unwrap().value().to_string(), "190.5");
    }

    #[test]
    fn errors_name_the_field() {
        let error = parse(
            r#"{"symbol":"AAPL","qty":"0","side":"buy","type":"market","time_in_force":"day"}"#,
        )
        .unwrap_err();
        assert_eq!(error.status, 422);
        assert!(error.message.starts_with("qty"), "{}", error.message);
        let error =
            parse(r#"{"symbol":"AAPL","qty":"1","side":"buy","type":"market"}"#).unwrap_err();
        assert!(error.message.contains("time_in_force"), "{}", error.message);
        let error = parse(
            r#"{"symbol":"AAPL","qty":true,"side":"buy","type":"market","time_in_force":"day"}"#,
        )
        .unwrap_err();
        assert!(error.message.contains("qty"), "{}", error.message);
    }

    #[test]
    fn malformed_json_is_a_400() {
        assert_eq!(parse("{not json").unwrap_err().status, 400);
        assert_eq!(parse("[1,2]").unwrap_err().status, 400);
    }

    #[test]
    fn unsupported_features_are_refused_not_ignored() {
        let error = parse(
            r#"{"symbol":"AAPL","qty":"1","side":"buy","type":"market","time_in_force":"day","legs":[{}]}"#,
        )
        .unwrap_err();
        assert!(error.message.contains("legs"));
    }

    #[test]
    fn a_notional_is_cash_instead_of_qty_in_a_market_day_order() {
        let order = parse(
            r#"{"symbol":"AAPL","notional":"500.75","side":"buy","type":"market","time_in_force":"day"}"#,
        )
        .unwrap();
        assert_eq!(
            order.amount.notional().map(|n| n.value()),
            Some(Decimal::new(50075, 2))
        );
        assert_eq!(order.amount.qty(), None);
        // A float a hair off the cent is the cent.
        let float = parse(
            r#"{"symbol":"AAPL","notional":500.75,"side":"sell","type":"market","time_in_force":"day"}"#,
        )
        .unwrap();
        assert_eq!(float.amount, order.amount);
        for (body, field) in [
            (
                r#""qty":"1","notional":"10","type":"market","time_in_force":"day""#,
                "notional and qty",
            ),
            (
                r#""type":"market","time_in_force":"day""#,
                "qty (or notional)",
            ),
            (
                r#""notional":"10","type":"limit","limit_price":"10","time_in_force":"day""#,
                "notional",
            ),
            (
                r#""notional":"10","type":"market","time_in_force":"gtc""#,
                "time_in_force",
            ),
            (
                r#""notional":"10.001","type":"market","time_in_force":"day""#,
                "notional",
            ),
            (
                r#""notional":"0","type":"market","time_in_force":"day""#,
                "notional",
            ),
        ] {
            let body = format!(r#"{{"symbol":"AAPL","side":"buy",{body}}}"#);
            let error = parse(&body).unwrap_err();
            assert_eq!(error.status, 422, "{body}");
            assert!(
                error.message.starts_with(field),
                "{body}: {}",
                error.message
            );
        }
    }
}

//! The `POST /v2/orders` body as the document gives it: one variant per
//! order type (two for the trailing stop), each with exactly the prices
//! its type takes, written next to the parser's rules they describe.

use serde_json::{Map, Value, json};

use super::{
    CLIENT_ORDER_ID_PATTERN, enum_of, fractional_qty_text_pattern, notional_text_pattern,
    price_text_pattern, qty_text_pattern, symbol_pattern, trail_percent_text_pattern,
};
use crate::domain::order::{
    CLIENT_ORDER_ID_MAX_LEN, FRACTIONAL_ORDER, NOTIONAL_MAX, OrderType, PRICE_MAX, QTY_DP, QTY_MAX,
    STOP_TIMES_IN_FORCE, Side, TRAIL_PERCENT_MAX, TimeInForce,
};
use crate::http::alpaca::UNSUPPORTED_FIELDS;

/// Which prices a variant of the order request takes.
struct Variant {
    name: &'static str,
    order_type: OrderType,
    /// Required, each a price on the tick (or the trail percentage).
    prices: &'static [&'static str],
    /// A fractional qty (a market order for the day) instead of whole shares.
    fractional: bool,
    /// A notional (a market order for the day) instead of a qty.
    notional: bool,
    description: &'static str,
    example: fn() -> Value,
}

/// The least JSON number a fractional qty may be: one unit of its last
/// place (a float is read to `QTY_DP` places; anything less reads as 0).
const QTY_MIN_NUMBER: f64 = 1e-9;

/// The price fields of the order request.
const PRICE_FIELDS: [&str; 4] = ["limit_price", "stop_price", "trail_price", "trail_percent"];

const VARIANTS: [Variant; 8] = [
    Variant {
        name: "MarketOrderRequest",
        order_type: OrderType::Market,
        prices: &[],
        fractional: false,
        notional: false,
        description: "A market order: executes at the venue's prices; a buy holds qty x max(ask, last) x (1 + collar).",
        example: || {
            json!({"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market",
                "time_in_force": "day", "client_order_id": "desk-7-market-1"})
        },
    },
    Variant {
        name: "FractionalMarketOrderRequest",
        order_type: OrderType::Market,
        prices: &[],
        fractional: true,
        notional: false,
        description: "A fractional market order for the day: qty with a fraction of at most 9 decimal places, for a fractionable asset (the asset's `fractionable`); any other type or time in force takes whole shares. A buy holds qty x max(ask, last) x (1 + collar), rounded up to the cent; fills, settlements and positions carry the fraction exactly.",
        example: || {
            json!({"symbol": "AAPL", "qty": "0.5", "side": "buy", "type": "market",
                "time_in_force": "day"})
        },
    },
    Variant {
        name: "NotionalMarketOrderRequest",
        order_type: OrderType::Market,
        prices: &[],
        fractional: false,
        notional: true,
        description: "A notional market order for the day: notional (cash, to the cent) instead of qty, for a fractionable asset; the venue decides the quantity at execution (notional / price, rounded down to 9 places). A buy holds the notional; a sell holds notional / (bid x (1 - collar)) shares. The order shows qty null until the venue reports it filled. Taken only where lifecycle.notional_orders is on (422 naming notional otherwise).",
        example: || {
            json!({"symbol": "AAPL", "notional": "500.75", "side": "buy", "type": "market",
                "time_in_force": "day"})
        },
    },
    Variant {
        name: "LimitOrderRequest",
        order_type: OrderType::Limit,
        prices: &["limit_price"],
        fractional: false,
        notional: false,
        description: "A limit order: executes at limit_price or better.",
        example: || {
            json!({"symbol": "MSFT", "qty": 5, "side": "sell", "type": "limit",
                "time_in_force": "gtc", "limit_price": "415.25"})
        },
    },
    Variant {
        name: "StopOrderRequest",
        order_type: OrderType::Stop,
        prices: &["stop_price"],
        fractional: false,
        notional: false,
        description: "A stop order (day or gtc): the venue triggers it when its reference price (the quote's midpoint) reaches stop_price (at or above for a buy, at or below for a sell); it then executes at the market. A buy holds qty x max(stop_price, ask, last) x (1 + collar).",
        example: || {
            json!({"symbol": "AAPL", "qty": "10", "side": "sell", "type": "stop",
                "time_in_force": "gtc", "stop_price": "180.00"})
        },
    },
    Variant {
        name: "StopLimitOrderRequest",
        order_type: OrderType::StopLimit,
        prices: &["stop_price", "limit_price"],
        fractional: false,
        notional: false,
        description: "A stop-limit order (day or gtc): triggered like a stop order, then a limit order at limit_price.",
        example: || {
            json!({"symbol": "AAPL", "qty": "10", "side": "buy", "type": "stop_limit",
                "time_in_force": "day", "stop_price": "200.00", "limit_price": "201.00"})
        },
    },
    Variant {
        name: "TrailingStopByPriceRequest",
        order_type: OrderType::TrailingStop,
        prices: &["trail_price"],
        fractional: false,
        notional: false,
        description: "A trailing stop (day or gtc) trailing by a price: a sell triggers when the reference price falls trail_price below its high-water mark, a buy when it rises trail_price above its low-water mark; it then executes at the market.",
        example: || {
            json!({"symbol": "AAPL", "qty": "10", "side": "sell", "type": "trailing_stop",
                "time_in_force": "day", "trail_price": "2.50"})
        },
    },
    Variant {
        name: "TrailingStopByPercentRequest",
        order_type: OrderType::TrailingStop,
        prices: &["trail_percent"],
        fractional: false,
        notional: false,
        description: "A trailing stop (day or gtc) trailing by a percentage of its high-water (a buy: low-water) mark.",
        example: || {
            json!({"symbol": "AAPL", "qty": "10", "side": "sell", "type": "trailing_stop",
                "time_in_force": "gtc", "trail_percent": "1.5"})
        },
    },
];

/// The `POST /v2/orders` body: one variant per order type (two for the
/// trailing stop: by price, by percentage), told apart by `type` and by
/// which prices are given. Unknown fields are ignored; null is the same as
/// absent.
pub(super) fn order_request_schemas() -> Vec<(&'static str, Value)> {
    let qty = json!({
        "description": "Whole shares: a plain decimal string (\"10\") or a JSON number (10).",
        "oneOf": [
            {"type": "string", "pattern": qty_text_pattern()},
            {"type": "number", "minimum": 1, "maximum": QTY_MAX, "multipleOf": 1},
        ],
    });
    let fractional_qty = json!({
        "description": format!("Shares with a fraction of at most {QTY_DP} decimal places, less than {QTY_MAX}: a plain decimal string (\"0.5\"), or a JSON number (0.5), a binary float read to {QTY_DP} decimal places."),
        "oneOf": [
            {"type": "string", "pattern": fractional_qty_text_pattern()},
            {"type": "number", "minimum": QTY_MIN_NUMBER, "exclusiveMaximum": QTY_MAX, "not": {"multipleOf": 1}},
        ],
    });
    let notional = json!({
        "description": format!("Cash to trade, to the cent, at most {NOTIONAL_MAX}: a plain decimal string (\"500.75\") or a JSON number (a float within 1e-9 of a cent is that cent)."),
        "oneOf": [
            {"type": "string", "pattern": notional_text_pattern()},
            {"type": "number", "minimum": 0.01, "maximum": NOTIONAL_MAX, "multipleOf": 0.01},
        ],
    });
    let price = json!({
        "description": "On the tick: $0.01 at or above $1, $0.0001 below; a plain decimal string (\"190.25\") or a JSON number (a float within 1e-9 of a tick is that tick).",
        "oneOf": [
            {"type": "string", "pattern": price_text_pattern()},
            {"type": "number", "minimum": 1, "maximum": PRICE_MAX, "multipleOf": 0.01},
            {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "multipleOf": 0.0001},
        ],
    });
    let percent = json!({
        "description": "A percentage: more than 0, less than 100, at most 4 decimal places.",
        "oneOf": [
            {"type": "string", "pattern": trail_percent_text_pattern()},
            {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": TRAIL_PERCENT_MAX, "multipleOf": 0.0001},
        ],
    });
    let absent = json!({"description": "Not given for this type.", "type": "null"});
    let mut schemas: Vec<(&'static str, Value)> = VARIANTS
        .iter()
        .map(|variant| {
            let mut properties = Map::new();
            properties.insert(
                "symbol".into(),
                json!({"type": "string", "pattern": symbol_pattern()}),
            );
            let (qty, notional_schema) = match (variant.fractional, variant.notional) {
                (_, true) => (absent.clone(), notional.clone()),
                (true, false) => (fractional_qty.clone(), absent.clone()),
                (false, false) => (qty.clone(), absent.clone()),
            };
            properties.insert("qty".into(), qty);
            properties.insert("notional".into(), notional_schema);
            properties.insert("side".into(), enum_of::<Side>());
            properties.insert(
                "type".into(),
                json!({"type": "string", "enum": [variant.order_type.as_str()]}),
            );
            let times_in_force: Vec<&str> = if variant.fractional || variant.notional {
                vec![FRACTIONAL_ORDER.1.as_str()]
            } else if variant.order_type.is_stop() {
                STOP_TIMES_IN_FORCE.iter().map(|t| t.as_str()).collect()
            } else {
                TimeInForce::ALL.iter().map(|t| t.as_str()).collect()
            };
            properties.insert(
                "time_in_force".into(),
                json!({"type": "string", "enum": times_in_force}),
            );
            for field in PRICE_FIELDS {
                let schema = match (variant.prices.contains(&field), field) {
                    (true, "trail_percent") => percent.clone(),
                    (true, _) => price.clone(),
                    (false, _) => absent.clone(),
                };
                properties.insert(field.into(), schema);
            }
            properties.insert(
                "client_order_id".into(),
                json!({
                    "description": "Unique per account; generated when absent.",
                    "type": ["string", "null"],
                    "minLength": 1,
                    "maxLength": CLIENT_ORDER_ID_MAX_LEN,
                    "pattern": CLIENT_ORDER_ID_PATTERN,
                }),
            );
            properties.insert(
                "order_class".into(),
                json!({"type": ["string", "null"], "enum": ["simple", "", null]}),
            );
            properties.insert(
                "extended_hours".into(),
                json!({"description": "Extended-hours orders are not supported.", "type": ["boolean", "null"], "enum": [false, null]}),
            );
            for name in UNSUPPORTED_FIELDS {
                properties.insert(
                    name.into(),
                    json!({"description": "Not supported by orderd: absent or null.", "type": "null"}),
                );
            }
            let amount = if variant.notional { "notional" } else { "qty" };
            let mut required = vec!["symbol", amount, "side", "type", "time_in_force"];
            required.extend(variant.prices);
            (
                variant.name,
                json!({
                    "description": variant.description,
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    "examples": [(variant.example)()],
                }),
            )
        })
        .collect();
    let refs: Vec<Value> = VARIANTS
        .iter()
        .map(|v| json!({"$ref": format!("#/components/schemas/{}", v.name)}))
        .collect();
    schemas.push((
        "OrderRequest",
        json!({
            "description": "Alpaca's order request, as orderd accepts it: simple market, limit, stop, stop-limit and trailing-stop orders, fractional and notional market orders for the day (exactly one variant matches a valid request).",
            "oneOf": refs,
        }),
    ));
    let or_null = |schema: &Value| json!({"oneOf": [schema, {"type": "null"}]});
    schemas.push((
        REPLACE_REQUEST_SCHEMA,
        json!({
            "description": "What a replace changes (PATCH /v2/orders/{order_id}); the rest is the original's. null is the same as absent; any other field is refused (422).",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "qty": {
                    "description": "The total wanted, what the order filled included (whole shares, more than what was filled).",
                    "oneOf": [qty["oneOf"][0], qty["oneOf"][1], {"type": "null"}],
                },
                "time_in_force": {"type": ["string", "null"], "enum": ["day", "gtc", null]},
                "limit_price": or_null(&price),
                "stop_price": or_null(&price),
                "trail": {
                    "description": "A trailing stop's new trail, in its unit: a price (trail_price) or a percentage (trail_percent).",
                    "oneOf": [price["oneOf"][0], price["oneOf"][1], price["oneOf"][2], percent["oneOf"][0], {"type": "null"}],
                },
                "client_order_id": {
                    "description": "The replacement's; generated when absent.",
                    "type": ["string", "null"],
                    "minLength": 1,
                    "maxLength": CLIENT_ORDER_ID_MAX_LEN,
                    "pattern": CLIENT_ORDER_ID_PATTERN,
                },
            },
            "examples": [{"qty": "12", "limit_price": "190.25", "client_order_id": "desk-7-r1"}],
        }),
    ));
    schemas
}

/// The name of the replace request's schema.
pub(super) const REPLACE_REQUEST_SCHEMA: &str = "ReplaceOrderRequest";

#[cfg(test)]
#[path = "order_request_fuzz.rs"]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::alpaca::parse_order_request;

    /// Every variant's example is accepted, and each valid request matches
    /// exactly one variant of the document (what `oneOf` promises).
    #[test]
    fn each_variant_example_parses_as_its_type() {
        for variant in &VARIANTS {
            let example = (variant.example)();
            let order = parse_order_request(example.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{}: {e:?}", variant.name));
            assert_eq!(order.order_type, variant.order_type, "{}", variant.name);
            let mut given: Vec<&str> = PRICE_FIELDS
                .iter()
                .copied()
                .filter(|f| example.get(*f).is_some())
                .collect();
            let mut takes = variant.prices.to_vec();
            given.sort_unstable();
            takes.sort_unstable();
            assert_eq!(given, takes, "{}", variant.name);
        }
    }
}

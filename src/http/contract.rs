//! What `/openapi.json` says beyond the handlers' annotations: the order
//! request's grammar (written next to the rules of `parse_order_request`
//! it describes), the responses every operation can give whatever it does
//! (400 for a query, path or header that does not decode, 401 without
//! keys, 503 with `Retry-After` while the database is unavailable), and
//! the links from a created object to the operations that take it, so a
//! generated client (or schemathesis' stateful phase) can walk from
//! `POST /v2/orders` to everything that needs an existing order.
//!
//! The suite holds it to the server: schemathesis runs every phase with
//! every check against it, and Alpaca's own document runs against the
//! operations orderd shares with Alpaca.

use serde_json::{Map, Value, json};

use super::activities::{ACTIVITY_TYPES, CATEGORIES, PAGE_SIZE_MAX, page_token_pattern};
use super::alpaca::UNSUPPORTED_FIELDS;
use super::market::EXCHANGES;
use super::orders::{LIST_LIMIT_MAX, NESTED_VALUES};
use crate::app::idempotency::KEY_MAX_LEN;
use crate::domain::TextEnum;
use crate::domain::order::{
    CLIENT_ORDER_ID_MAX_LEN, OrderType, PRICE_MAX, QTY_MAX, STOP_TIMES_IN_FORCE, SYMBOL_MAX_LEN,
    Side, TRAIL_PERCENT_DP, TRAIL_PERCENT_MAX, TimeInForce,
};
use crate::reconcile::Job;

/// A symbol as `Symbol::parse` accepts it (either case).
pub fn symbol_pattern() -> String {
    format!("^[A-Za-z0-9./]{{1,{SYMBOL_MAX_LEN}}}$")
}

/// A comma-separated list of symbols (`GET /v2/orders?symbols=`).
pub fn symbols_pattern() -> String {
    format!("^[A-Za-z0-9./]{{1,{SYMBOL_MAX_LEN}}}(,[A-Za-z0-9./]{{1,{SYMBOL_MAX_LEN}}})*$")
}

/// A client_order_id: no control character (`ClientOrderId::parse`).
pub const CLIENT_ORDER_ID_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$";

/// An Idempotency-Key header value: visible ASCII and inner spaces
/// (`IdempotencyKey::parse`); a surrounding pair of quotes is dropped.
pub fn idempotency_key_pattern() -> String {
    format!(
        "^[\\x21-\\x7e](?:[\\x20-\\x7e]{{0,{}}}[\\x21-\\x7e])?$",
        KEY_MAX_LEN - 2
    )
}

/// A whole number of shares as a plain decimal string, 1 ..= QTY_MAX.
pub fn qty_text_pattern() -> String {
    let digits = QTY_MAX.to_string().len();
    format!("^(?:[1-9][0-9]{{0,{}}}|{QTY_MAX})(?:\\.0+)?$", digits - 2)
}

/// A limit price as a plain decimal string on the tick: cents at or above
/// $1 (up to PRICE_MAX), hundredths of a cent below; trailing zeros allowed.
pub fn price_text_pattern() -> String {
    let digits = PRICE_MAX.to_string().len();
    format!(
        "^(?:[1-9][0-9]{{0,{}}}(?:\\.[0-9]{{1,2}}0*)?|{PRICE_MAX}(?:\\.0+)?|0\\.(?:[1-9][0-9]{{0,3}}|0[1-9][0-9]{{0,2}}|00[1-9][0-9]?|000[1-9])0*)$",
        digits - 2
    )
}

fn enum_of<T: TextEnum>() -> Value {
    json!({"type": "string", "enum": T::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>()})
}

/// A trail percentage as a plain decimal string: more than 0, less than
/// TRAIL_PERCENT_MAX, at most TRAIL_PERCENT_DP places; trailing zeros allowed.
pub fn trail_percent_text_pattern() -> String {
    let places = TRAIL_PERCENT_DP;
    let digits = (TRAIL_PERCENT_MAX - 1).to_string().len();
    format!(
        "^(?:[1-9][0-9]{{0,{}}}(?:\\.[0-9]{{1,{places}}}0*)?|0\\.[0-9]{{0,{}}}[1-9]0*)$",
        digits - 1,
        places - 1
    )
}

/// Which prices a variant of the order request takes.
struct Variant {
    name: &'static str,
    order_type: OrderType,
    /// Required, each a price on the tick (or the trail percentage).
    prices: &'static [&'static str],
    description: &'static str,
    example: fn() -> Value,
}

/// The price fields of the order request.
const PRICE_FIELDS: [&str; 4] = ["limit_price", "stop_price", "trail_price", "trail_percent"];

const VARIANTS: [Variant; 6] = [
    Variant {
        name: "MarketOrderRequest",
        order_type: OrderType::Market,
        prices: &[],
        description: "A market order: executes at the venue's prices; a buy holds qty x max(ask, last) x (1 + collar).",
        example: || {
            json!({"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market",
                "time_in_force": "day", "client_order_id": "desk-7-market-1"})
        },
    },
    Variant {
        name: "LimitOrderRequest",
        order_type: OrderType::Limit,
        prices: &["limit_price"],
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
fn order_request_schemas() -> Vec<(&'static str, Value)> {
    let qty = json!({
        "description": "Whole shares: a plain decimal string (\"10\") or a JSON number (10).",
        "oneOf": [
            {"type": "string", "pattern": qty_text_pattern()},
            {"type": "number", "minimum": 1, "maximum": QTY_MAX, "multipleOf": 1},
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
            properties.insert("qty".into(), qty.clone());
            properties.insert("side".into(), enum_of::<Side>());
            properties.insert(
                "type".into(),
                json!({"type": "string", "enum": [variant.order_type.as_str()]}),
            );
            let times_in_force: Vec<&str> = if variant.order_type.is_stop() {
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
            let mut required = vec!["symbol", "qty", "side", "type", "time_in_force"];
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
            "description": "Alpaca's order request, as orderd accepts it: simple market, limit, stop, stop-limit and trailing-stop orders (exactly one variant matches a valid request).",
            "oneOf": refs,
        }),
    ));
    schemas
}

/// The schema of every parameter, by operation and name: what the
/// handler's parser accepts, exactly.
fn parameter_schema(operation: &str, name: &str) -> Option<Value> {
    let list = |values: &[&str]| json!({"type": "string", "enum": values});
    let date_or_time = || {
        json!({"anyOf": [
            {"type": "string", "format": "date"},
            {"type": "string", "format": "date-time"},
        ]})
    };
    Some(match (operation, name) {
        ("get-v2-assets", "status") => list(&["active", "inactive"]),
        ("get-v2-assets", "asset_class") => list(&["us_equity"]),
        ("get-v2-assets", "exchange") => list(&EXCHANGES),
        ("LegacyCalendar", "start" | "end") => date_or_time(),
        ("LegacyCalendar", "date_type") => list(&["TRADING", "SETTLEMENT"]),
        (_, name) => return parameter_schema_by_name(name),
    })
}

fn parameter_schema_by_name(name: &str) -> Option<Value> {
    let list = |values: &[&str]| json!({"type": "string", "enum": values});
    Some(match name {
        "order_id" => json!({"type": "string", "format": "uuid"}),
        "client_order_id" => json!({
            "type": "string",
            "minLength": 1,
            "maxLength": CLIENT_ORDER_ID_MAX_LEN,
            "pattern": CLIENT_ORDER_ID_PATTERN,
        }),
        "symbol_or_asset_id" => json!({"anyOf": [
            {"type": "string", "pattern": symbol_pattern()},
            {"type": "string", "format": "uuid"},
        ]}),
        "symbols" => json!({"type": "string", "pattern": symbols_pattern()}),
        "status" => list(&["open", "closed", "all"]),
        "direction" => list(&["asc", "desc"]),
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": LIST_LIMIT_MAX}),
        "after" | "until" => json!({"anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
        ]}),
        "nested" => list(&NESTED_VALUES),
        "cancel_orders" => list(&NESTED_VALUES),
        "qty" => json!({"type": "string", "pattern": qty_text_pattern()}),
        "percentage" => {
            json!({"type": "string", "pattern": "^(?:100(?:\\.0+)?|[1-9][0-9]?(?:\\.[0-9]+)?|0\\.[0-9]*[1-9][0-9]*)$"})
        }
        "activity_types" => {
            json!({"type": "string", "pattern": format!("^(?:{types})(?:,(?:{types}))*$", types = ACTIVITY_TYPES.join("|"))})
        }
        "activity_type" => list(&ACTIVITY_TYPES),
        "category" => list(&CATEGORIES),
        "date" => json!({"anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
        ]}),
        "page_size" => json!({"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX}),
        "page_token" => json!({"type": "string", "pattern": page_token_pattern()}),
        "job" => list(&Job::ALL.map(Job::as_str)),
        "run_id" => json!({"type": "integer", "format": "int64", "minimum": 1}),
        "Idempotency-Key" => json!({
            "type": "string",
            "maxLength": KEY_MAX_LEN,
            "pattern": idempotency_key_pattern(),
        }),
        _ => return None,
    })
}

/// An example of each parameter (the examples phase of a contract test
/// starts from these).
fn parameter_example(operation: &str, name: &str) -> Option<Value> {
    Some(match (operation, name) {
        ("get-v2-assets", "status") => json!("active"),
        ("get-v2-assets", "asset_class") => json!("us_equity"),
        ("get-v2-assets", "exchange") => json!("NASDAQ"),
        ("LegacyCalendar", "start") => json!("2026-12-01"),
        ("LegacyCalendar", "end") => json!("2026-12-31"),
        ("LegacyCalendar", "date_type") => json!("TRADING"),
        (_, name) => return parameter_example_by_name(name),
    })
}

fn parameter_example_by_name(name: &str) -> Option<Value> {
    Some(match name {
        "order_id" => json!("0195f3c2-8d3b-7a4e-9c1d-2b6f0e4a7c11"),
        "client_order_id" => json!("desk-7-order-1"),
        "symbol_or_asset_id" => json!("AAPL"),
        "symbols" => json!("AAPL,MSFT"),
        "status" => json!("all"),
        "direction" => json!("asc"),
        "limit" => json!(50),
        "after" => json!("2026-01-02T14:30:00Z"),
        "until" => json!("2026-12-31"),
        "nested" => json!("false"),
        "cancel_orders" => json!("false"),
        "qty" => json!("1"),
        "percentage" => json!("50"),
        "activity_types" => json!("FILL"),
        "activity_type" => json!("FILL"),
        "category" => json!("trade_activity"),
        "date" => json!("2026-11-30"),
        "page_size" => json!(100),
        "page_token" => json!("1796051045123456::E-1"),
        "job" => json!("open_orders"),
        "run_id" => json!(1),
        "Idempotency-Key" => json!("desk-7-submit-1"),
        _ => return None,
    })
}

/// A link of the document: a response of `from` with `status` gives
/// `to` its `parameters`.
struct Link {
    from: &'static str,
    status: &'static str,
    name: &'static str,
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
}

const fn link(
    from: &'static str,
    status: &'static str,
    name: &'static str,
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
) -> Link {
    Link {
        from,
        status,
        name,
        to,
        parameters,
    }
}

/// Each response that returns an object, and the operations that take it.
const LINKS: &[Link] = &[
    link(
        "postOrder",
        "200",
        "GetOrder",
        "getOrderByOrderID",
        &[("order_id", "$response.body#/id")],
    ),
    link(
        "postOrder",
        "200",
        "GetOrderByClientOrderId",
        "getOrderByClientOrderId",
        &[("client_order_id", "$response.body#/client_order_id")],
    ),
    link(
        "postOrder",
        "200",
        "GetOrderEvents",
        "getOrderEvents",
        &[("order_id", "$response.body#/id")],
    ),
    link(
        "postOrder",
        "200",
        "GetOrderFills",
        "getOrderFills",
        &[("order_id", "$response.body#/id")],
    ),
    link(
        "postOrder",
        "200",
        "CancelOrder",
        "deleteOrderByOrderID",
        &[("order_id", "$response.body#/id")],
    ),
    link(
        "postOrder",
        "200",
        "GetPosition",
        "getOpenPosition",
        &[("symbol_or_asset_id", "$response.body#/symbol")],
    ),
    link(
        "getOrderByOrderID",
        "200",
        "GetOrderEvents",
        "getOrderEvents",
        &[("order_id", "$response.body#/id")],
    ),
    link(
        "getOrderByOrderID",
        "200",
        "CancelOrder",
        "deleteOrderByOrderID",
        &[("order_id", "$response.body#/id")],
    ),
    link(
        "postOrder",
        "200",
        "GetAsset",
        "get-v2-assets-symbol_or_asset_id",
        &[("symbol_or_asset_id", "$response.body#/symbol")],
    ),
    link(
        "runReconciliationJob",
        "200",
        "GetRun",
        "getReconciliationRun",
        &[("run_id", "$response.body#/run/run_id")],
    ),
];

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })
}

fn retry_after() -> Value {
    json!({"Retry-After": {
        "description": "Whole seconds to wait before retrying",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }})
}

/// Completes the generated document (see the module's comment).
pub fn complete(doc: &mut Value) {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in order_request_schemas() {
            schemas.insert(name.to_string(), schema);
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            complete_operation(operation);
        }
    }
    for Link {
        from,
        status,
        name,
        to,
        parameters,
    } in LINKS
    {
        let parameters: Map<String, Value> = parameters
            .iter()
            .map(|(name, value)| (name.to_string(), json!(value)))
            .collect();
        if let Some(response) = operation_mut(paths, from)
            .and_then(|op| op.pointer_mut(&format!("/responses/{status}")))
            .and_then(Value::as_object_mut)
        {
            let links = response.entry("links").or_insert_with(|| json!({}));
            links[*name] = json!({"operationId": to, "parameters": parameters});
        }
    }
}

fn operation_mut<'a>(paths: &'a mut Map<String, Value>, id: &str) -> Option<&'a mut Value> {
    paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .find(|op| op["operationId"] == id)
}

fn complete_operation(operation: &mut Value) {
    let id = operation["operationId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if operation["operationId"] == "postOrder" {
        operation["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OrderRequest"}}},
        });
    }
    if let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        for parameter in parameters {
            let name = parameter["name"].as_str().unwrap_or_default().to_string();
            if let Some(schema) = parameter_schema(&id, &name) {
                parameter["schema"] = schema;
            }
            if let Some(example) = parameter_example(&id, &name) {
                parameter["example"] = example;
            }
        }
    }
    let takes_input = operation["parameters"]
        .as_array()
        .is_some_and(|p| !p.is_empty())
        || operation.get("requestBody").is_some();
    let secured = operation.get("security").is_some();
    let trader = operation["security"]
        .as_array()
        .is_some_and(|s| s.iter().any(|r| r.get("key_id").is_some()));
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if takes_input {
        responses.entry("400").or_insert_with(|| {
            error_response(
                "A parameter or the body does not decode (bad UTF-8, a malformed query or JSON)",
            )
        });
    }
    if secured {
        responses
            .entry("401")
            .or_insert_with(|| error_response("Missing or wrong credentials"));
        let unavailable = responses.entry("503").or_insert_with(|| {
            error_response(
                "The database (or the balances service) is unavailable; retry after Retry-After",
            )
        });
        if let Some(unavailable) = unavailable.as_object_mut() {
            unavailable.insert("headers".into(), retry_after());
        }
    }
    if trader {
        let limited = responses.entry("429").or_insert_with(|| {
            error_response(
                "The account is past http.rate_limit_per_minute on this instance; retry after Retry-After",
            )
        });
        if let Some(limited) = limited.as_object_mut() {
            let mut headers = retry_after();
            for (name, description) in [
                ("X-RateLimit-Limit", "Requests a minute allowed"),
                ("X-RateLimit-Remaining", "Requests left now"),
                (
                    "X-RateLimit-Reset",
                    "Epoch seconds when the allowance is whole again",
                ),
            ] {
                headers[name] = json!({"description": description,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"}});
            }
            limited.insert("headers".into(), headers);
        }
    }
    if let Some(conflict) = responses.get_mut("409").and_then(Value::as_object_mut) {
        conflict.insert("headers".into(), retry_after());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex_automata::meta::Regex;

    use super::*;
    use crate::app::idempotency::IdempotencyKey;
    use crate::domain::ids::ClientOrderId;
    use crate::domain::order::Symbol;
    use crate::http::alpaca::parse_order_request;

    fn matches(pattern: &str, text: &str) -> bool {
        Regex::new(pattern).unwrap().is_match(text)
    }

    fn limit_order(qty: &str, price: &str) -> String {
        serde_json::json!({"symbol": "AAPL", "qty": qty, "side": "buy", "type": "limit",
            "time_in_force": "day", "limit_price": price})
        .to_string()
    }

    fn qty_accepted(qty: &str) -> bool {
        parse_order_request(limit_order(qty, "1").as_bytes()).is_ok()
    }

    fn price_accepted(price: &str) -> bool {
        parse_order_request(limit_order("1", price).as_bytes()).is_ok()
    }

    fn trail_percent_accepted(percent: &str) -> bool {
        let body = serde_json::json!({"symbol": "AAPL", "qty": "1", "side": "sell",
            "type": "trailing_stop", "time_in_force": "day", "trail_percent": percent});
        parse_order_request(body.to_string().as_bytes()).is_ok()
    }

    #[test]
    fn the_patterns_hold_their_edges() {
        let qty = qty_text_pattern();
        for (text, ok) in [
            ("1", true),
            ("10000000", true),
            ("10000001", false),
            ("9999999.00", true),
            ("0", false),
            ("01", false),
            ("1.5", false),
            ("1e2", false),
            (" 1", false),
            ("1.", false),
        ] {
            assert_eq!(matches(&qty, text), ok, "qty {text:?}");
            assert_eq!(qty_accepted(text), ok, "qty {text:?}");
        }
        let price = price_text_pattern();
        for (text, ok) in [
            ("1", true),
            ("190.25", true),
            ("190.250", true),
            ("190.255", false),
            ("1000000", true),
            ("1000000.01", false),
            ("0.5", true),
            ("0.0001", true),
            ("0.00001", false),
            ("0.00010", true),
            ("0", false),
            ("0.0", false),
            ("-1", false),
            ("01.5", false),
            (".5", false),
        ] {
            assert_eq!(matches(&price, text), ok, "price {text:?}");
            assert_eq!(price_accepted(text), ok, "price {text:?}");
        }
    }

    #[test]
    fn the_trail_percent_pattern_holds_its_edges() {
        let pattern = trail_percent_text_pattern();
        for (text, ok) in [
            ("1", true),
            ("1.5", true),
            ("99.9999", true),
            ("99.99990", true),
            ("100", false),
            ("0", false),
            ("0.0001", true),
            ("0.00001", false),
            ("0.0000", false),
            ("01", false),
            ("1.23456", false),
            ("-1", false),
        ] {
            assert_eq!(matches(&pattern, text), ok, "trail_percent {text:?}");
            assert_eq!(trail_percent_accepted(text), ok, "trail_percent {text:?}");
        }
    }

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

    #[test]
    fn a_float_a_hair_off_the_tick_is_the_tick() {
        let body = |price: f64| {
            serde_json::json!({"symbol": "AAPL", "qty": 1, "side": "buy",
            "type": "limit", "time_in_force": "day", "limit_price": price})
            .to_string()
        };
        let order = parse_order_request(body(115.0 * 0.01).as_bytes()).unwrap();
        assert_eq!(order.prices.limit.unwrap().value().to_string(), "1.15");
        assert!(parse_order_request(body(1.155).as_bytes()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Decimal-looking text: the parser accepts exactly what the
        /// pattern describes.
        #[test]
        fn qty_and_price_text_is_accepted_exactly_when_the_pattern_matches(
            text in "[0-9]{0,9}(\\.[0-9]{0,6})?|[-+ e0-9.]{0,10}",
        ) {
            prop_assert_eq!(matches(&qty_text_pattern(), &text), qty_accepted(&text), "qty {:?}", text);
            prop_assert_eq!(matches(&price_text_pattern(), &text), price_accepted(&text), "price {:?}", text);
            prop_assert_eq!(matches(&trail_percent_text_pattern(), &text), trail_percent_accepted(&text), "trail_percent {:?}", text);
        }

        #[test]
        fn symbols_are_accepted_exactly_when_the_pattern_matches(text in "\\PC{0,14}|[A-Za-z0-9./ ]{0,14}") {
            prop_assert_eq!(matches(&symbol_pattern(), &text), Symbol::parse(&text).is_ok(), "{:?}", text);
        }

        #[test]
        fn client_order_ids_are_accepted_exactly_when_the_schema_allows(text in "\\PC{0,50}|.{0,50}|[\\x00-\\x1f\\x7f-\\x9f a]{0,4}") {
            let length = (1..=CLIENT_ORDER_ID_MAX_LEN).contains(&text.chars().count());
            prop_assert_eq!(matches(CLIENT_ORDER_ID_PATTERN, &text) && length, ClientOrderId::parse(&text).is_ok(), "{:?}", text);
        }

        #[test]
        fn idempotency_keys_are_accepted_exactly_when_the_pattern_matches(text in "[\\x20-\\x7e]{0,6}|\\PC{0,6}|\"[a-z]{0,3}\"") {
            prop_assert_eq!(matches(&idempotency_key_pattern(), &text), IdempotencyKey::parse(&text).is_ok(), "{:?}", text);
        }
    }

    #[test]
    fn every_link_joins_two_operations_and_every_trader_operation_says_503() {
        let doc = crate::http::openapi::document_value();
        let ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        for Link { from, to, .. } in LINKS {
            assert!(ids.contains(from), "{from}");
            assert!(ids.contains(to), "{to}");
        }
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                if op.get("security").is_some() {
                    assert!(
                        op["responses"]["503"]["headers"]["Retry-After"].is_object(),
                        "{op}"
                    );
                }
            }
        }
        assert_eq!(
            doc["paths"]["/v2/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
                ["$ref"],
            "#/components/schemas/OrderRequest"
        );
    }
}

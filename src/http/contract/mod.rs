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

mod order_request;
use order_request::order_request_schemas;

use super::activities::{ACTIVITY_TYPES, CATEGORIES, PAGE_SIZE_MAX, page_token_pattern};
use super::market::EXCHANGES;
use super::orders::{LIST_LIMIT_MAX, NESTED_VALUES};
use crate::app::idempotency::KEY_MAX_LEN;
use crate::domain::TextEnum;
use crate::domain::order::{
    CLIENT_ORDER_ID_MAX_LEN, NOTIONAL_MAX, PRICE_MAX, QTY_DP, QTY_MAX, SYMBOL_MAX_LEN,
    TRAIL_PERCENT_DP, TRAIL_PERCENT_MAX,
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

/// A fractional number of shares as a plain decimal string: less than
/// QTY_MAX, a fraction within QTY_DP places (trailing zeros allowed), not
/// a whole number (those are [`qty_text_pattern`]'s).
pub fn fractional_qty_text_pattern() -> String {
    let digits = QTY_MAX.to_string().len();
    format!(
        "^(?:0|[1-9][0-9]{{0,{}}})\\.[0-9]{{0,{}}}[1-9]0*$",
        digits - 2,
        QTY_DP - 1
    )
}

/// A notional as a plain decimal string: more than 0, at most
/// NOTIONAL_MAX, to the cent (trailing zeros allowed).
pub fn notional_text_pattern() -> String {
    let digits = NOTIONAL_MAX.to_string().len();
    format!(
        "^(?:[1-9][0-9]{{0,{}}}(?:\\.[0-9]{{1,2}}0*)?|{NOTIONAL_MAX}(?:\\.0+)?|0\\.(?:[1-9][0-9]?|0[1-9])0*)$",
        digits - 2
    )
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
        "after" | "until" | "date" => json!({"anyOf": [
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
    if let Some(body) = operation_mut(paths, "patchOrderByOrderId")
        .and_then(|op| op.pointer_mut("/requestBody/content/application~1json"))
    {
        body["schema"] = json!({"$ref": format!("#/components/schemas/{}", order_request::REPLACE_REQUEST_SCHEMA)});
    }
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
mod tests;

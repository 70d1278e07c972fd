//! Fuzz target: the order request parser (`parse_order_request`).
//!
//! `contract/tests.rs` holds each field's text to its pattern; this builds
//! whole bodies: the request's own keys with values of every kind (right
//! keys with wrong types, numbers as strings and as tokens past u64, f64
//! and `Decimal`, exponents, unicode, empty strings, nested objects,
//! repeated keys, missing keys, types, times in force and prices combined
//! wrongly), and valid requests of each document variant with one or two
//! things changed. Whatever arrives, the parser answers without a panic;
//! what it refuses is a 400 (not a JSON object) or a 422 naming a field;
//! what it accepts holds every rule its documentation states. See
//! `crate::fuzz_json` for why proptest and how to run it longer.

use std::str::FromStr;
use std::sync::LazyLock;

use axum::http::StatusCode;
use proptest::prelude::*;
use regex_automata::meta::Regex;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};

use super::super::{
    CLIENT_ORDER_ID_PATTERN, fractional_qty_text_pattern, notional_text_pattern,
    price_text_pattern, qty_text_pattern, symbol_pattern, trail_percent_text_pattern,
};
use super::{PRICE_FIELDS, VARIANTS};
use crate::domain::TextEnum;
use crate::domain::fills::REPORT_PRICE_MAX;
use crate::domain::hold::{QuotePrices, hold_for, notional_hold};
use crate::domain::order::{
    CLIENT_ORDER_ID_MAX_LEN, FRACTIONAL_ORDER, LimitPrice, NOTIONAL_DP, NOTIONAL_MAX, NewOrder,
    OrderType, PRICE_MAX, QTY_DP, QTY_MAX, STOP_TIMES_IN_FORCE, Side, TRAIL_PERCENT_DP,
    TRAIL_PERCENT_MAX, TimeInForce, Trail,
};
use crate::fuzz_json::{
    Json, any_json, any_text, bytes_of, config, decimal_text, field, near, number_token, object,
};
use crate::http::alpaca::{UNSUPPORTED_FIELDS, parse_order_request};
use crate::http::error::codes;

/// Every key of the request the parser reads.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "symbol", "qty", "side", "type", "time_in_force", "limit_price", "stop_price", "trail_price",
    "trail_percent", "client_order_id", "order_class", "extended_hours", "notional",
    "take_profit", "stop_loss", "legs",
];

fn pattern(text: &str) -> Regex {
    Regex::new(text).expect("the document's pattern compiles")
}

static SYMBOL: LazyLock<Regex> = LazyLock::new(|| pattern(&symbol_pattern()));
static QTY: LazyLock<Regex> = LazyLock::new(|| pattern(&qty_text_pattern()));
static NOTIONAL: LazyLock<Regex> = LazyLock::new(|| pattern(&notional_text_pattern()));
static FRACTIONAL_QTY: LazyLock<Regex> = LazyLock::new(|| pattern(&fractional_qty_text_pattern()));
static PRICE: LazyLock<Regex> = LazyLock::new(|| pattern(&price_text_pattern()));
static PERCENT: LazyLock<Regex> = LazyLock::new(|| pattern(&trail_percent_text_pattern()));
static CLIENT_ORDER_ID: LazyLock<Regex> = LazyLock::new(|| pattern(CLIENT_ORDER_ID_PATTERN));

/// Every spelling of every closed set the request has: a side where a
/// type belongs is a wrong combination worth sending.
fn every_spelling() -> Vec<&'static str> {
    let mut all: Vec<&str> = Side::ALL.iter().map(|v| v.as_str()).collect();
    all.extend(OrderType::ALL.iter().map(|v| v.as_str()));
    all.extend(TimeInForce::ALL.iter().map(|v| v.as_str()));
    all
}

/// One of `values` mostly, else another set's spelling, upper case, or any text.
fn spelling<T: TextEnum>() -> BoxedStrategy<Json> {
    let own: Vec<&'static str> = T::ALL.iter().map(|v| v.as_str()).collect();
    prop_oneof![
        6 => prop::sample::select(own.clone()).prop_map(Json::str),
        1 => prop::sample::select(own).prop_map(|s| Json::str(s.to_uppercase())),
        2 => prop::sample::select(every_spelling()).prop_map(Json::str),
        1 => any_text().prop_map(Json::Str),
    ]
    .boxed()
}

/// A decimal field's value: a string or a number token, in range or not.
fn decimal(plain: &'static str) -> BoxedStrategy<Json> {
    prop_oneof![
        3 => plain.prop_map(Json::Str),
        2 => plain.prop_map(Json::Raw),
        2 => decimal_text().prop_map(Json::Str),
        2 => number_token().prop_map(Json::Raw),
    ]
    .boxed()
}

const QTY_TEXT: &str = "[1-9][0-9]{0,7}(\\.0{1,2})?";
const PRICE_TEXT: &str = "[1-9][0-9]{0,6}(\\.[0-9]{1,3})?|0\\.[0-9]{1,5}";
const PERCENT_TEXT: &str = "[1-9][0-9]{0,2}(\\.[0-9]{1,5})?|0\\.[0-9]{1,5}";

fn symbol() -> BoxedStrategy<Json> {
    prop_oneof![
        3 => "[A-Z]{1,5}".prop_map(Json::str),
        2 => "[A-Za-z0-9./]{1,12}".prop_map(Json::str),
        1 => "[A-Za-z0-9./]{13,16}".prop_map(Json::str),
        1 => prop::sample::select(&["BRK.B", "aapl", "", " AAPL", "ÄAPL", "\u{ff21}APL"][..]).prop_map(Json::str),
        1 => any_text().prop_map(Json::Str),
    ]
    .boxed()
}

fn client_order_id() -> BoxedStrategy<Json> {
    prop_oneof![
        3 => "[a-z0-9-]{1,24}".prop_map(Json::str),
        2 => any_text().prop_map(Json::Str),
        1 => Just(Json::str("x".repeat(CLIENT_ORDER_ID_MAX_LEN))),
        1 => Just(Json::str("é".repeat(CLIENT_ORDER_ID_MAX_LEN + 1))),
    ]
    .boxed()
}

fn other_field(key: &'static str) -> BoxedStrategy<Json> {
    match key {
        "order_class" => prop::sample::select(&["simple", "", "bracket", "oco", "Simple"][..])
            .prop_map(Json::str)
            .boxed(),
        "extended_hours" => prop::sample::select(&["false", "true", "null", "0", "\"false\""][..])
            .prop_map(Json::raw)
            .boxed(),
        // Unsupported: null is what a client that means well sends.
        _ => prop_oneof![3 => Just(Json::raw("null")), 1 => any_json()].boxed(),
    }
}

/// The fields of the request, each present, mistyped or missing.
fn fields() -> Vec<BoxedStrategy<Option<(String, Json)>>> {
    let mut fields = vec![
        field("symbol", symbol(), 0.9),
        field("qty", decimal(QTY_TEXT), 0.9),
        field("notional", decimal(PRICE_TEXT), 0.15),
        field("side", spelling::<Side>(), 0.9),
        field("type", spelling::<OrderType>(), 0.9),
        field("time_in_force", spelling::<TimeInForce>(), 0.9),
        field("limit_price", decimal(PRICE_TEXT), 0.4),
        field("stop_price", decimal(PRICE_TEXT), 0.3),
        field("trail_price", decimal(PRICE_TEXT), 0.2),
        field("trail_percent", decimal(PERCENT_TEXT), 0.2),
        field("client_order_id", client_order_id(), 0.4),
    ];
    for key in ["order_class", "extended_hours"] {
        fields.push(field(key, other_field(key), 0.25));
    }
    for key in UNSUPPORTED_FIELDS {
        fields.push(field(key, other_field(key), 0.1));
    }
    fields
}

/// A valid request of one of the document's variants; now and then with
/// a price another variant takes, or another variant's type: the wrong
/// combinations nearest to right.
fn valid_request() -> BoxedStrategy<Vec<(String, Json)>> {
    // On the tick mostly; else a hair or more off it.
    let tick = prop_oneof![
        6 => "[1-9][0-9]{0,5}(\\.[0-9]{2})?|0\\.[0-9]{3}[1-9]",
        1 => PRICE_TEXT,
        1 => "[1-9][0-9]{0,3}\\.[0-9]{2}(0{6,9}|9{6,9})[1-9]",
    ]
    .boxed();
    let terms = (
        prop::sample::select((0..VARIANTS.len()).collect::<Vec<_>>()),
        prop::sample::select(Side::ALL),
        prop::sample::select(TimeInForce::ALL),
        prop::option::weighted(0.2, prop::sample::select(&PRICE_FIELDS[..])),
        prop::option::weighted(0.2, prop::sample::select(OrderType::ALL)),
    );
    let texts = (
        "[A-Z]{1,5}",
        "[1-9][0-9]{0,6}",
        [tick.clone(), tick.clone(), tick],
    );
    // A fraction within QTY_DP places mostly; now and then one place more.
    let fraction = prop_oneof![
        6 => "(0|[1-9][0-9]{0,3})\\.[0-9]{0,8}[1-9]",
        1 => "(0|[1-9][0-9]{0,3})\\.[0-9]{9}[1-9]",
    ];
    let percent = "[1-9][0-9]?(\\.[0-9]{1,4})?";
    let fractional_tif = prop::option::weighted(0.2, prop::sample::select(TimeInForce::ALL));
    (
        terms,
        texts,
        percent,
        any::<[bool; 4]>(),
        (fraction, fractional_tif),
    )
        .prop_map(
            |(
                (v, side, tif, extra, retyped),
                (symbol, qty, ticks),
                percent,
                numbers,
                (fraction, other_tif),
            )| {
                let variant = &VARIANTS[v];
                let kind = retyped.unwrap_or(variant.order_type);
                let tif = match kind.is_stop() && !STOP_TIMES_IN_FORCE.contains(&tif) {
                    true => TimeInForce::Gtc,
                    false => tif,
                };
                // A notional variant's cash: the whole qty's digits, now and
                // then with cents or a place more.
                let (amount, qty, tif) = match (variant.fractional, variant.notional) {
                    (_, true) => {
                        let cents = match fraction.len() % 3 {
                            0 => qty.clone(),
                            1 => format!("{qty}.5"),
                            _ => format!("{qty}.125"),
                        };
                        ("notional", cents, other_tif.unwrap_or(FRACTIONAL_ORDER.1))
                    }
                    (true, false) => ("qty", fraction, other_tif.unwrap_or(FRACTIONAL_ORDER.1)),
                    (false, false) => ("qty", qty, tif),
                };
                let mut entries = vec![
                    ("symbol".to_string(), Json::str(symbol)),
                    (amount.to_string(), Json::decimal(qty, numbers[0])),
                    ("side".to_string(), Json::str(side.as_str())),
                    ("type".to_string(), Json::str(kind.as_str())),
                    ("time_in_force".to_string(), Json::str(tif.as_str())),
                ];
                let prices = variant.prices.iter().copied().chain(extra);
                for (i, (name, tick)) in prices.zip(ticks).enumerate() {
                    let text = if name == "trail_percent" {
                        percent.clone()
                    } else {
                        tick
                    };
                    entries.push((name.to_string(), Json::decimal(text, numbers[i + 1])));
                }
                entries
            },
        )
        .boxed()
}

fn any_json_or_decimal() -> BoxedStrategy<Json> {
    prop_oneof![
        any_json(),
        decimal(PRICE_TEXT),
        spelling::<OrderType>(),
        spelling::<TimeInForce>(),
    ]
    .boxed()
}

/// Any body: an object of the request's fields, a near-valid request, or
/// something that is not an object at all; then perhaps corrupted.
fn body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        8 => object(fields(), KEYS),
        8 => near(valid_request(), KEYS, any_json_or_decimal()),
        1 => any_json(),
    ]
    .prop_flat_map(|json| bytes_of(json.render()))
    .boxed()
}

/// What the parser answered holds its contract (see the module's comment).
fn holds_the_contract(bytes: &[u8]) -> Result<(), TestCaseError> {
    let answer = parse_order_request(bytes);
    let body: Option<Map<String, Value>> = match serde_json::from_slice(bytes) {
        Ok(Value::Object(body)) => Some(body),
        _ => None,
    };
    match (answer, body) {
        (Err(error), None) => {
            prop_assert_eq!(error.status, StatusCode::BAD_REQUEST, "{}", error.message);
            prop_assert_eq!(error.code, codes::BAD_REQUEST);
        }
        (Err(error), Some(_)) => {
            prop_assert_eq!(
                error.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                error.message
            );
            prop_assert_eq!(error.code, codes::VALIDATION);
            prop_assert!(
                KEYS.iter().any(|k| error.message.starts_with(k)),
                "a refusal names the field: {}",
                error.message
            );
        }
        (Ok(order), None) => {
            prop_assert!(false, "accepted a body that is not an object: {order:?}")
        }
        (Ok(order), Some(body)) => accepted_is_valid(&order, &body)?,
    }
    Ok(())
}

fn given<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

/// The decimal `parsed` is what the field `value` says: text that matches
/// the document's pattern, exactly; a number, within float noise (1e-9).
fn is_the_given_number(
    value: Option<&Value>,
    parsed: Decimal,
    text_pattern: &Regex,
) -> Result<(), TestCaseError> {
    match value {
        Some(Value::String(text)) => {
            prop_assert!(
                text_pattern.is_match(text),
                "text {text:?} outside the document's pattern"
            );
            prop_assert_eq!(Decimal::from_str(text).ok(), Some(parsed), "{:?}", text);
        }
        Some(Value::Number(number)) => {
            let (given, parsed) = (
                number.as_f64().unwrap_or(f64::NAN),
                parsed.to_f64().unwrap_or(f64::NAN),
            );
            prop_assert!(
                (given - parsed).abs() <= 1e-9 + given.abs() * 1e-15,
                "{number} parsed as {parsed}"
            );
        }
        other => prop_assert!(false, "a decimal from {other:?}"),
    }
    Ok(())
}

/// Every rule of the parser's documentation, on a request it accepted.
fn accepted_is_valid(order: &NewOrder, body: &Map<String, Value>) -> Result<(), TestCaseError> {
    for name in UNSUPPORTED_FIELDS {
        prop_assert!(given(body, name).is_none(), "accepted with {name}");
    }
    match given(body, "order_class") {
        None => {}
        Some(Value::String(class)) => {
            prop_assert!(class.is_empty() || class == "simple", "{class:?}")
        }
        Some(other) => prop_assert!(false, "order_class {other}"),
    }
    prop_assert!(matches!(
        given(body, "extended_hours"),
        None | Some(Value::Bool(false))
    ));

    let symbol = given(body, "symbol").and_then(Value::as_str);
    prop_assert!(
        symbol.is_some_and(|s| SYMBOL.is_match(s)),
        "symbol {:?}",
        symbol
    );
    prop_assert_eq!(
        Some(order.symbol.as_str().to_string()),
        symbol.map(str::to_ascii_uppercase)
    );
    for (name, value) in [
        ("side", order.side.as_str()),
        ("type", order.order_type.as_str()),
        ("time_in_force", order.time_in_force.as_str()),
    ] {
        prop_assert_eq!(given(body, name).and_then(Value::as_str), Some(value));
    }

    let notional = order.amount.notional().map(|n| n.value());
    let qty = order.amount.qty().map_or(Decimal::ZERO, |q| q.value());
    let fractional = !qty.fract().is_zero();
    if let Some(notional) = notional {
        // Cash to the cent, instead of a qty, in a market order for the day.
        prop_assert!(
            notional.scale() <= NOTIONAL_DP
                && notional > Decimal::ZERO
                && notional <= Decimal::from(NOTIONAL_MAX),
            "notional {}",
            notional
        );
        prop_assert_eq!((order.order_type, order.time_in_force), FRACTIONAL_ORDER);
        prop_assert!(given(body, "qty").is_none(), "qty with a notional");
        is_the_given_number(given(body, "notional"), notional, &NOTIONAL)?;
    } else if fractional {
        // A fraction of at most QTY_DP places, in a market order for the day.
        prop_assert!(
            qty.scale() <= QTY_DP && qty > Decimal::ZERO && qty < Decimal::from(QTY_MAX),
            "qty {}",
            qty
        );
        prop_assert_eq!((order.order_type, order.time_in_force), FRACTIONAL_ORDER);
        is_the_given_number(given(body, "qty"), qty, &FRACTIONAL_QTY)?;
    } else {
        prop_assert!(
            qty.scale() == 0 && qty >= Decimal::ONE && qty <= Decimal::from(QTY_MAX),
            "qty {}",
            qty
        );
        is_the_given_number(given(body, "qty"), qty, &QTY)?;
    }

    // Each type takes exactly its prices.
    let kind = order.order_type;
    let prices = order.prices;
    prop_assert_eq!(prices.limit.is_some(), kind.has_limit());
    prop_assert_eq!(
        prices.stop.is_some(),
        matches!(kind, OrderType::Stop | OrderType::StopLimit)
    );
    prop_assert_eq!(prices.trail.is_some(), kind == OrderType::TrailingStop);
    let trail_price = match prices.trail {
        Some(Trail::Price(p)) => Some(p),
        _ => None,
    };
    for (name, price) in [
        ("limit_price", prices.limit),
        ("stop_price", prices.stop),
        ("trail_price", trail_price),
    ] {
        match price.map(LimitPrice::value) {
            Some(p) => {
                prop_assert!(
                    p > Decimal::ZERO && p <= Decimal::from(PRICE_MAX),
                    "{name} {p}"
                );
                let tick = LimitPrice::tick_places(p);
                prop_assert!(
                    p.round_dp(tick) == p && p.normalize().scale() <= tick,
                    "{name} {p} off the tick"
                );
                is_the_given_number(given(body, name), p, &PRICE)?;
            }
            None => prop_assert!(given(body, name).is_none(), "{name} given and dropped"),
        }
    }
    match prices.trail {
        Some(Trail::Percent(percent)) => {
            let p = percent.value();
            let places = p.normalize().scale() <= TRAIL_PERCENT_DP;
            let bounded = p > Decimal::ZERO && p < Decimal::from(TRAIL_PERCENT_MAX);
            prop_assert!(places && bounded, "trail_percent {p}");
            is_the_given_number(given(body, "trail_percent"), p, &PERCENT)?;
        }
        _ => prop_assert!(
            given(body, "trail_percent").is_none(),
            "trail_percent given and dropped"
        ),
    }
    if kind.is_stop() {
        prop_assert!(STOP_TIMES_IN_FORCE.contains(&order.time_in_force));
    }

    // Exactly one of the document's variants describes it (its `oneOf`).
    let mut priced: Vec<&str> = PRICE_FIELDS
        .iter()
        .copied()
        .filter(|f| given(body, f).is_some())
        .collect();
    priced.sort_unstable();
    let matching = VARIANTS
        .iter()
        .filter(|v| {
            let mut takes = v.prices.to_vec();
            takes.sort_unstable();
            v.order_type == kind
                && takes == priced
                && v.fractional == fractional
                && v.notional == notional.is_some()
        })
        .count();
    prop_assert_eq!(matching, 1, "{:?} with {:?}", kind, priced);

    match (given(body, "client_order_id"), &order.client_order_id) {
        (None, None) => {}
        (Some(Value::String(text)), Some(id)) => {
            prop_assert_eq!(id.as_str(), text.as_str());
            prop_assert!((1..=CLIENT_ORDER_ID_MAX_LEN).contains(&text.chars().count()));
            prop_assert!(CLIENT_ORDER_ID.is_match(text), "client_order_id {text:?}");
        }
        (given, parsed) => prop_assert!(false, "client_order_id {given:?} became {parsed:?}"),
    }

    // What is computed from it stays far from overflow: its hold at the
    // dearest quote a venue report may carry and the widest collar.
    let (ask, last) = (REPORT_PRICE_MAX, REPORT_PRICE_MAX);
    let dearest = Some(QuotePrices {
        bid: ask,
        ask,
        last,
    });
    let hold = match notional {
        // The cheapest bid a report may carry sizes a notional sell's hold.
        Some(notional) => notional_hold(
            order.side,
            "AAPL",
            notional,
            Some(QuotePrices {
                bid: Decimal::new(1, 4),
                ask,
                last,
            }),
            Decimal::new(99, 2),
        ),
        None => hold_for(
            order.side,
            "AAPL",
            qty,
            &prices.terms(),
            dearest,
            Decimal::ONE,
        ),
    };
    prop_assert!(hold.is_ok_and(|h| h.amount > Decimal::ZERO && h.rate > Decimal::ZERO));
    prop_assert_eq!(order.fingerprint().len(), 64);

    // Its canonical spelling parses to the same order.
    let mut canonical = json!({
        "symbol": order.symbol.as_str(), "side": order.side.as_str(),
        "type": kind.as_str(), "time_in_force": order.time_in_force.as_str(),
    });
    match notional {
        Some(notional) => canonical["notional"] = json!(notional.to_string()),
        None => canonical["qty"] = json!(qty.to_string()),
    }
    for (name, price) in [
        ("limit_price", prices.limit),
        ("stop_price", prices.stop),
        ("trail_price", trail_price),
    ] {
        if let Some(p) = price {
            canonical[name] = json!(p.value().to_string());
        }
    }
    if let Some(Trail::Percent(p)) = prices.trail {
        canonical["trail_percent"] = json!(p.value().to_string());
    }
    if let Some(id) = &order.client_order_id {
        canonical["client_order_id"] = json!(id.as_str());
    }
    let again = parse_order_request(canonical.to_string().as_bytes());
    prop_assert_eq!(
        again.as_ref().ok(),
        Some(order),
        "{} -> {:?}",
        canonical,
        again
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    /// Any body, near-valid or not: an answer, never a panic; a refusal
    /// that names its field; an accepted order that holds every rule.
    #[test]
    fn fuzz_order_request_parser(bytes in body()) {
        holds_the_contract(&bytes)?;
    }
}

/// Cases the fuzzer found, or that sit on its edges, kept as they are.
#[test]
fn fuzz_order_request_parser_regressions() {
    for body in [
        r#"{"symbol":"AAPL","qty":1e400,"side":"buy","type":"market","time_in_force":"day"}"#,
        r#"{"symbol":"AAPL","qty":"1e400","side":"buy","type":"market","time_in_force":"day"}"#,
        r#"{"symbol":"AAPL","qty":1000000000000000000000000000000,"side":"buy","type":"market","time_in_force":"day"}"#,
        r#"{"symbol":"AAPL","qty":5e-324,"side":"buy","type":"market","time_in_force":"day"}"#,
        r#"{"symbol":"AAPL","qty":1,"side":"buy","type":"limit","time_in_force":"day","limit_price":0.000000000000000000000000000001}"#,
        r#"{"symbol":"AAPL","qty":1,"side":"buy","type":"limit","time_in_force":"day","limit_price":"79228162514264337593543950335.5"}"#,
        r#"{"symbol":"AAPL","qty":1,"side":"buy","type":"limit","time_in_force":"day","limit_price":"0.000000000000000000000000000000001"}"#,
        r#"{"symbol":"AAPL","qty":1,"side":"sell","type":"trailing_stop","time_in_force":"day","trail_percent":99.99999999999}"#,
        r#"{"symbol":"AAPL","qty":"1","qty":"0","side":"buy","type":"market","time_in_force":"day"}"#,
        // Found by schemathesis: a float far below the last place reads as 0.
        r#"{"symbol":"AAPL","qty":2.5890419884777833e-42,"side":"buy","type":"market","time_in_force":"day"}"#,
        r#"{"symbol":"AAPL","qty":0.30000000000000004,"side":"buy","type":"market","time_in_force":"day"}"#,
        r#"{"symbol":"AAPL","qty":"0.1234567891","side":"buy","type":"market","time_in_force":"day"}"#,
        r#"{"symbol":"AAPL","qty":1,"side":"buy","type":"market","time_in_force":"day","limit_price":null,"stop_price":null,"legs":null}"#,
    ] {
        holds_the_contract(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
    }
}

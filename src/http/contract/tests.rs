//! Tests of `src/http/contract/mod.rs`.

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

fn fractional_accepted(qty: &str) -> bool {
    let body = serde_json::json!({"symbol": "AAPL", "qty": qty, "side": "buy",
        "type": "market", "time_in_force": "day"});
    parse_order_request(body.to_string().as_bytes())
        .is_ok_and(|o| o.amount.qty().is_some_and(|q| q.is_fractional()))
}

#[test]
fn the_fractional_qty_pattern_holds_its_edges() {
    let pattern = fractional_qty_text_pattern();
    for (text, ok) in [
        ("0.5", true),
        ("1.5", true),
        ("0.123456789", true),
        ("0.1234567890", true),
        ("0.1234567891", false),
        ("0.000000001", true),
        ("0.0000000001", false),
        ("9999999.999999999", true),
        ("10000000.5", false),
        ("1.0", false),
        ("1", false),
        ("0.0", false),
        ("01.5", false),
        (".5", false),
        ("1.", false),
    ] {
        assert_eq!(matches(&pattern, text), ok, "qty {text:?}");
        assert_eq!(fractional_accepted(text), ok, "qty {text:?}");
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

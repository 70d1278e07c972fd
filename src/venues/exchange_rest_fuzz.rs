//! Fuzz target, continued: the venue's REST answers news is read from
//! (beside `exchange_fuzz.rs`, the stream's). An order's view and its
//! fills go through `decode_answer`, then catch-up's `order_news` and
//! `fill_news`; a quote through `decode_answer`, then `checked_quote`.
//! Whatever the status and body: no panic; an error classified by the
//! status; or news within the bounds `domain::fills::check_report`
//! documents, a quote within `Quote::check`'s, so that nothing computed
//! from them (a fold, a market buy's hold) can overflow.

use proptest::prelude::*;
use proptest::sample::Index;
use reqwest::StatusCode;
use rust_decimal::Decimal;

use super::fuzz::{
    PRICE, TIME, VENUE_ORDER_ID, any_field_value, computes_safely, edge, status, texts,
    within_bounds,
};
use super::{Quote, VenueFill, VenueOrder, checked_quote};
use crate::domain::fills::{FillSource, REPORT_PRICE_MAX};
use crate::domain::hold::{QuotePrices, hold_for};
use crate::domain::ids::VenueClientOrderId;
use crate::domain::lifecycle::VenueStatus;
use crate::domain::order::{PriceTerms, QTY_MAX, Side};
use crate::engine::catchup::{CatchUpError, fill_news, order_news};
use crate::fuzz_json::{
    Json, any_json, any_text, bytes_of, classified_by_status, config, near, status_code,
};
use crate::venues::decode_answer;

const ORDER_KEYS: &[&str] = &[
    "id",
    "client_order_id",
    "symbol",
    "side",
    "status",
    "qty",
    "filled_qty",
    "filled_avg_price",
    "reject_reason",
];
const FILL_KEYS: &[&str] = &["exec_id", "qty", "price", "transact_time"];
const QUOTE_KEYS: &[&str] = &["symbol", "bid", "ask", "last", "time"];

fn valid_order() -> BoxedStrategy<Vec<(String, Json)>> {
    (
        status(),
        1u64..100_000,
        any::<Index>(),
        any::<bool>(),
        edge(),
    )
        .prop_map(|(status, qty, filled, number, edge)| {
            let filled = filled.index(qty as usize + 1);
            let mut order = texts(&[
                ("id", VENUE_ORDER_ID),
                ("client_order_id", "od-1"),
                ("symbol", "AAPL"),
                ("side", "buy"),
                ("status", &status),
                ("filled_avg_price", "189.98"),
            ]);
            order.extend([
                ("qty".into(), Json::decimal(qty.to_string(), number)),
                (
                    "filled_qty".into(),
                    Json::decimal(edge.map_or(filled.to_string(), str::to_string), number),
                ),
                ("reject_reason".into(), Json::raw("null")),
            ]);
            order
        })
        .boxed()
}

fn valid_fill() -> BoxedStrategy<Vec<(String, Json)>> {
    (
        "[0-9a-f]{8}-[0-9]{1,3}",
        1u64..10_000,
        PRICE,
        any::<bool>(),
        [edge(), edge()],
    )
        .prop_map(|(exec_id, qty, price, number, [qty_edge, price_edge])| {
            let mut fill = texts(&[("exec_id", &exec_id), ("transact_time", TIME)]);
            fill.extend([
                (
                    "qty".into(),
                    Json::decimal(qty_edge.map_or(qty.to_string(), str::to_string), number),
                ),
                (
                    "price".into(),
                    Json::decimal(price_edge.map_or(price, str::to_string), number),
                ),
            ]);
            fill
        })
        .boxed()
}

fn valid_quote() -> BoxedStrategy<Vec<(String, Json)>> {
    ([PRICE, PRICE, PRICE], [edge(), edge(), edge()])
        .prop_map(|(prices, edges)| {
            let mut quote = texts(&[("symbol", "AAPL"), ("time", TIME)]);
            for ((name, price), edge) in ["bid", "ask", "last"].into_iter().zip(prices).zip(edges) {
                quote.push((name.into(), Json::Str(edge.map_or(price, str::to_string))));
            }
            quote
        })
        .boxed()
}

/// A REST answer: a status and a body near what the venue sends.
fn answer(valid: BoxedStrategy<Json>) -> BoxedStrategy<(StatusCode, Vec<u8>)> {
    let error = (any_json(), any_text()).prop_map(|(code, message)| {
        Json::Obj(vec![
            ("code".into(), code),
            ("message".into(), Json::Str(message)),
        ])
    });
    (
        status_code(),
        prop_oneof![6 => valid, 1 => error, 1 => any_json()],
    )
        .prop_flat_map(|(status, json)| (Just(status), bytes_of(json.render())))
        .boxed()
}

fn fills_body() -> BoxedStrategy<Json> {
    prop::collection::vec(near(valid_fill(), FILL_KEYS, any_field_value()), 0..4)
        .prop_map(Json::Arr)
        .boxed()
}

/// An order's view and its fills, through what catch-up does with them.
fn rest_news_holds(
    (order_status, order_body): (StatusCode, Vec<u8>),
    (fills_status, fills_body): (StatusCode, Vec<u8>),
) -> Result<(), TestCaseError> {
    let ours = VenueClientOrderId::new("od-ours");
    let venue: VenueOrder = match decode_answer("exchange", order_status, None, &order_body) {
        Ok(venue) => venue,
        Err(error) => return classified_by_status(order_status, &error),
    };
    prop_assert!(order_status.is_success());
    let base = match order_news(&ours, &venue) {
        Ok(base) => base,
        Err(CatchUpError::UnknownStatus(status)) => {
            prop_assert!(VenueStatus::parse(&status).is_none());
            return Ok(());
        }
        Err(CatchUpError::Invalid(reason)) => {
            prop_assert!(
                !within_bounds(Decimal::ZERO, None, venue.filled_qty, &venue.status),
                "{}",
                reason
            );
            return Ok(());
        }
        Err(other) => {
            prop_assert!(false, "{other}");
            return Ok(());
        }
    };
    prop_assert!(
        base.fill.is_none() && base.source == FillSource::Rest && base.fencing_token.is_none()
    );
    prop_assert_eq!(
        (&base.venue_client_order_id, &base.venue_order_id),
        (&ours, &venue.id)
    );
    prop_assert_eq!(base.cum_qty, venue.filled_qty);
    computes_safely(&base)?;
    let fills: Vec<VenueFill> = match decode_answer("exchange", fills_status, None, &fills_body) {
        Ok(fills) => fills,
        Err(error) => return classified_by_status(fills_status, &error),
    };
    for fill in fills {
        let (qty, price) = (fill.qty, fill.price);
        let (execution, checked) = fill_news(&base, fill);
        prop_assert_eq!(execution.venue_status, base.venue_status);
        match checked {
            Ok(()) => {
                prop_assert!(within_bounds(
                    qty,
                    Some(price),
                    qty,
                    base.venue_status.as_str()
                ));
                computes_safely(&execution)?;
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }
    Ok(())
}

/// A quote, through what `ExchangeClient::quote` does with it; an
/// accepted one sizes the dearest hold without overflow.
fn quote_holds((status, body): (StatusCode, Vec<u8>)) -> Result<(), TestCaseError> {
    let quote =
        match decode_answer::<Quote>("exchange", status, None, &body).and_then(checked_quote) {
            Ok(quote) => quote,
            Err(error) => return classified_by_status(status, &error),
        };
    for price in [quote.bid, quote.ask, quote.last] {
        prop_assert!(
            price >= Decimal::ZERO && price <= REPORT_PRICE_MAX,
            "{:?}",
            quote
        );
    }
    let terms = PriceTerms {
        trail_percent: Some(Decimal::from(99)),
        ..PriceTerms::default()
    };
    let prices = QuotePrices {
        bid: quote.bid,
        ask: quote.ask,
        last: quote.last,
    };
    let hold = hold_for(
        Side::Buy,
        "AAPL",
        Decimal::from(QTY_MAX),
        &terms,
        Some(prices),
        Decimal::ONE,
    );
    prop_assert!(hold.is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn fuzz_venue_order_views_and_fills(
        order in answer(near(valid_order(), ORDER_KEYS, any_field_value())),
        fills in answer(fills_body()),
    ) {
        rest_news_holds(order, fills)?;
    }

    #[test]
    fn fuzz_venue_quotes(quote in answer(near(valid_quote(), QUOTE_KEYS, any_field_value()))) {
        quote_holds(quote)?;
    }
}

fn ok(body: &str) -> (StatusCode, Vec<u8>) {
    (StatusCode::OK, body.as_bytes().to_vec())
}

const ORDER: &str = r#"{"id":"v-1","client_order_id":"od-1","symbol":"AAPL","side":"buy","status":"filled","qty":"10","filled_qty":"10"}"#;

/// Cases the fuzzer found, or that sit on its edges, kept as they are.
#[test]
fn fuzz_venue_rest_regressions() {
    // A listed fill of no shares (at no price) is refused by the check,
    // not left for the fold to find after a database round trip.
    for fills in [
        r#"[{"exec_id":"e","qty":"0","price":"-5","transact_time":"2025-01-02T14:30:00Z"}]"#,
        r#"[{"exec_id":"e","qty":"0","price":"1","transact_time":"2025-01-02T14:30:00Z"}]"#,
        // Found: more places than the ledger takes; the fold rounded the
        // average away from the price (a debug-assertion panic).
        r#"[{"exec_id":"e","qty":"0.0000000000000000000000000001","price":"7456.02","transact_time":"2025-01-02T14:30:00Z"}]"#,
    ] {
        rest_news_holds(ok(ORDER), ok(fills)).unwrap_or_else(|e| panic!("{fills}: {e}"));
    }
    // A quote past every real price was used as is: a market buy's hold
    // overflowed (a panic) computing from it.
    for quote in [
        r#"{"symbol":"AAPL","bid":"1","ask":"79228162514264337593543950335","last":"1"}"#,
        r#"{"symbol":"AAPL","bid":"1","ask":"1","last":"-1"}"#,
    ] {
        quote_holds(ok(quote)).unwrap_or_else(|e| panic!("{quote}: {e}"));
        assert!(
            decode_answer::<Quote>("exchange", StatusCode::OK, None, quote.as_bytes())
                .and_then(checked_quote)
                .is_err()
        );
    }
}

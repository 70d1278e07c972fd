//! Notional market orders end to end: cash instead of a quantity, the
//! quantity decided by the venue at execution and recorded by orderd once
//! the venue reports the order filled; the hold, the settlements and the
//! position checked against figures worked out by hand; and the refusals.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::fractional::{dec, filled, frozen_stack, ledger};
use crate::support::TestStack;

#[tokio::test]
async fn a_notional_buy_and_sell_hold_settle_and_cost_exactly() {
    let stack = frozen_stack().await;
    let trader = stack.trader(&[("USD", "10000")]).await;

    // $1,000 of AAPL: the order shows the notional and no qty; it holds
    // the notional, and no rate (each fill consumes what it cost).
    let buy = trader
        .post_order(json!({"symbol": "AAPL", "notional": "1000", "side": "buy",
            "type": "market", "time_in_force": "day"}))
        .await;
    assert_eq!(buy.status, 200, "{}", buy.body);
    assert_eq!(buy.body["notional"], "1000");
    if buy.body["status"] != "filled" {
        assert_eq!(buy.body["qty"], Value::Null, "{}", buy.body);
    }
    let id = buy.body["id"].as_str().expect("id").to_string();
    let row = stack.order_row(&id).await;
    assert_eq!(
        (row.hold_amount, row.hold_rate, row.notional),
        (Some(dec("1000")), None, Some(dec("1000")))
    );
    // The venue buys 1000 / 100.01 = 9.999000099 shares (rounded down) at
    // 100.01: 999.99999990099; orderd records the qty once it is filled.
    let order = filled(&trader, &id).await;
    assert_eq!(order["qty"], "9.999000099", "{order}");
    assert_eq!(order["filled_qty"], "9.999000099", "{order}");
    assert_eq!(order["filled_avg_price"], "100.01", "{order}");
    stack.wait_quiet(Duration::from_secs(20)).await;
    // The hold's remaining 0.00000009901 is released: nothing held.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ledger(&stack, &trader).await[0].1 != Decimal::ZERO {
        assert!(tokio::time::Instant::now() < deadline, "the hold stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ledger(&stack, &trader).await,
        [
            (dec("9000.00000009901"), dec("0")),
            (dec("9.999000099"), dec("0"))
        ]
    );

    // $500 of it sold: it holds 500 / (99.99 × 0.95) = 5.263684264 shares
    // (up to 9 places); the venue sells 500 / 99.99 = 5.00050005 at 99.99.
    let sell = trader
        .post_order(json!({"symbol": "AAPL", "notional": 500, "side": "sell",
            "type": "market", "time_in_force": "day"}))
        .await;
    assert_eq!(sell.status, 200, "{}", sell.body);
    let sell_id = sell.body["id"].as_str().expect("id").to_string();
    let row = stack.order_row(&sell_id).await;
    assert_eq!(
        (row.hold_asset.as_deref(), row.hold_amount, row.hold_rate),
        (Some("AAPL"), Some(dec("5.263684264")), Some(Decimal::ONE))
    );
    let order = filled(&trader, &sell_id).await;
    assert_eq!(order["qty"], "5.00050005", "{order}");
    assert_eq!(order["filled_avg_price"], "99.99", "{order}");
    stack.wait_quiet(Duration::from_secs(20)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ledger(&stack, &trader).await[1].1 != Decimal::ZERO {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shares stay held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 9000.00000009901 + 499.9999999995 of proceeds; 4.998500049 left.
    assert_eq!(
        ledger(&stack, &trader).await,
        [
            (dec("9500.00000009851"), dec("0")),
            (dec("4.998500049"), dec("0"))
        ]
    );
    // The position: 4.998500049 at 100.01 (cost 499.89998990049), worth
    // 499.80001989951 at 99.99: unrealized -0.09997000098.
    let position = trader.get("/v2/positions/AAPL").await.body;
    assert_eq!(position["qty"], "4.998500049", "{position}");
    assert_eq!(position["avg_entry_price"], "100.01", "{position}");
    assert_eq!(position["cost_basis"], "499.9", "{position}");
    assert_eq!(position["market_value"], "499.8", "{position}");
    assert_eq!(position["unrealized_pl"], "-0.1", "{position}");
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_notional_is_refused_naming_the_field_unless_market_day_and_fractionable() {
    let stack = frozen_stack().await;
    let listed = reqwest::Client::new()
        .post(stack.exchange_url("/admin/assets"))
        .json(
            &json!({"symbol": "WHOLE", "name": "Whole Shares Inc.", "price": "50",
            "fractionable": false}),
        )
        .send()
        .await
        .expect("list an asset");
    assert_eq!(listed.status(), 201);
    stack.reconcile(orderd::reconcile::Job::Reference).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let order = |extra: Value| {
        let mut body = json!({"symbol": "AAPL", "notional": "100", "side": "buy",
            "type": "market", "time_in_force": "day"});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    for (body, starts) in [
        (order(json!({"qty": "1"})), "notional and qty"),
        (
            order(json!({"type": "limit", "limit_price": "100"})),
            "notional",
        ),
        (order(json!({"time_in_force": "gtc"})), "time_in_force"),
        (order(json!({"notional": "100.001"})), "notional"),
        (order(json!({"symbol": "WHOLE"})), "notional"),
    ] {
        let refused = trader.post_order(body.clone()).await;
        assert_eq!(refused.status, 422, "{body}: {}", refused.body);
        let message = refused.body["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(starts), "{body}: {message}");
    }
    let orders = trader.get("/v2/orders?status=all").await.body;
    assert_eq!(orders.as_array().map(Vec::len), Some(0), "{orders}");
}

/// Off (the default until every instance runs this release), a notional
/// is refused naming the setting, and nothing is recorded.
#[tokio::test]
async fn notional_orders_are_refused_until_turned_on() {
    let stack = TestStack::spawn_with(|s| s.lifecycle.notional_orders = false).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let refused = trader
        .post_order(json!({"symbol": "AAPL", "notional": "100", "side": "buy",
            "type": "market", "time_in_force": "day"}))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let message = refused.body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("notional") && message.contains("lifecycle.notional_orders"),
        "{message}"
    );
}

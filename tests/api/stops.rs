//! Stop, stop-limit and trailing-stop orders end to end: the venue holds
//! each until its market model triggers it (prices moved by hand, the
//! random walk frozen), the hold is sized from the stop, and the trigger
//! leads to fills through the usual lifecycle.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::{TestStack, Trader};

async fn frozen_stack() -> TestStack {
    TestStack::spawn_with_venue(
        |s| s.lifecycle.market_buy_collar = Decimal::new(5, 2),
        |venue| venue.walk_step_bps = Decimal::ZERO,
    )
    .await
}

impl TestStack {}

async fn place(trader: &Trader, body: Value) -> String {
    let reply = trader.post_order(body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["id"].as_str().expect("id").to_string()
}

async fn order(trader: &Trader, id: &str) -> Value {
    trader.get(&format!("/v2/orders/{id}")).await.body
}

async fn wait_status(trader: &Trader, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let order = order(trader, id).await;
        if order["status"] == status {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {status}: {order}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lets the venue see the price move and the orders stay as they are.
async fn untriggered(trader: &Trader, ids: &[&str]) {
    tokio::time::sleep(Duration::from_millis(400)).await;
    for id in ids {
        let order = order(trader, id).await;
        assert_eq!(order["status"], "new", "{order}");
        assert_eq!(order["filled_qty"], "0", "{order}");
    }
}

#[tokio::test]
async fn each_stop_type_waits_for_its_trigger_then_fills() {
    let stack = frozen_stack().await;
    stack.set_price("AAPL", "100").await;
    let trader = stack.trader(&[("USD", "100000"), ("AAPL", "50")]).await;

    let stop_buy = place(
        &trader,
        json!({"symbol": "AAPL", "qty": "10", "side": "buy", "type": "stop",
            "time_in_force": "day", "stop_price": "105"}),
    )
    .await;
    let stop_sell = place(
        &trader,
        json!({"symbol": "AAPL", "qty": "5", "side": "sell", "type": "stop",
            "time_in_force": "gtc", "stop_price": "95"}),
    )
    .await;
    let stop_limit = place(
        &trader,
        json!({"symbol": "AAPL", "qty": "3", "side": "buy", "type": "stop_limit",
            "time_in_force": "day", "stop_price": "110", "limit_price": "111"}),
    )
    .await;
    let trailing = place(
        &trader,
        json!({"symbol": "AAPL", "qty": "4", "side": "sell", "type": "trailing_stop",
            "time_in_force": "day", "trail_price": "2"}),
    )
    .await;

    // Alpaca's shape carries the terms.
    let shown = order(&trader, &stop_limit).await;
    assert_eq!(shown["type"], "stop_limit");
    assert_eq!(shown["stop_price"], "110");
    assert_eq!(shown["limit_price"], "111");
    assert_eq!(order(&trader, &trailing).await["trail_price"], "2");
    // The stop buy holds 10 × 105 × 1.05 at the ledger.
    let holds: Value = stack
        .get_json(stack.balances_url(&format!("/v1/holds?order_id={stop_buy}")))
        .await;
    assert_eq!(holds["holds"][0]["amount"], "1102.5", "{holds}");

    untriggered(&trader, &[&stop_buy, &stop_sell, &stop_limit, &trailing]).await;

    // 106: the buy stop triggers; the trailing sell's mark rises to 106
    // (its stop to 104).
    stack.set_price("AAPL", "106").await;
    wait_status(&trader, &stop_buy, "filled").await;
    untriggered(&trader, &[&stop_sell, &stop_limit, &trailing]).await;

    // 103.50: under the trailing stop's 104.
    stack.set_price("AAPL", "103.50").await;
    wait_status(&trader, &trailing, "filled").await;
    untriggered(&trader, &[&stop_sell, &stop_limit]).await;

    // 94: the sell stop.
    stack.set_price("AAPL", "94").await;
    wait_status(&trader, &stop_sell, "filled").await;

    // 112 triggers the stop-limit (stop 110), which then rests at its
    // limit 111 below the market; 110.50 fills it.
    stack.set_price("AAPL", "112").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let resting = order(&trader, &stop_limit).await;
    assert_eq!(resting["filled_qty"], "0", "{resting}");
    stack.set_price("AAPL", "110.50").await;
    let filled = wait_status(&trader, &stop_limit, "filled").await;
    let avg: Decimal = filled["filled_avg_price"]
        .as_str()
        .expect("avg")
        .parse()
        .unwrap();
    assert!(avg <= Decimal::from(111), "{filled}");

    stack.wait_all_terminal(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_trailing_buy_by_percent_holds_its_furthest_trigger_and_follows_the_low() {
    let stack = frozen_stack().await;
    stack.set_price("MSFT", "200").await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let id = place(
        &trader,
        json!({"symbol": "MSFT", "qty": "2", "side": "buy", "type": "trailing_stop",
            "time_in_force": "gtc", "trail_percent": "5"}),
    )
    .await;
    let shown = order(&trader, &id).await;
    assert_eq!(shown["trail_percent"], "5", "{shown}");
    // Held: max(ask, last) × 1.05 × 1.05 a share, up to the cent.
    let holds: Value = stack
        .get_json(stack.balances_url(&format!("/v1/holds?order_id={id}")))
        .await;
    let held: Decimal = holds["holds"][0]["amount"]
        .as_str()
        .expect("amount")
        .parse()
        .unwrap();
    // The walk is frozen: the quote the hold was sized from.
    let quote = stack.engine().exchange.quote("MSFT").await.expect("quote");
    let rate = (quote.ask.max(quote.last) * Decimal::new(105, 2) * Decimal::new(105, 2))
        .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::AwayFromZero);
    assert_eq!(held, rate * Decimal::from(2), "{holds}");

    // The low falls to 180; 5 % above it is 189: 188 does not trigger,
    // 189.50 does.
    stack.set_price("MSFT", "180").await;
    untriggered(&trader, &[&id]).await;
    stack.set_price("MSFT", "188").await;
    untriggered(&trader, &[&id]).await;
    stack.set_price("MSFT", "189.50").await;
    wait_status(&trader, &id, "filled").await;
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

#[tokio::test]
async fn stop_requests_are_refused_naming_the_field_and_nothing_is_recorded() {
    let stack = frozen_stack().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let base = json!({"symbol": "AAPL", "qty": "1", "side": "buy", "time_in_force": "day"});
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, field) in [
        (with(json!({"type": "stop"})), "stop_price"),
        (
            with(json!({"type": "stop", "stop_price": "1.001"})),
            "stop_price",
        ),
        (
            with(json!({"type": "stop", "stop_price": "-5"})),
            "stop_price",
        ),
        (
            with(json!({"type": "stop_limit", "stop_price": "10"})),
            "limit_price",
        ),
        (
            with(json!({"type": "limit", "limit_price": "10", "stop_price": "10"})),
            "stop_price",
        ),
        (with(json!({"type": "trailing_stop"})), "trail_price"),
        (
            with(json!({"type": "trailing_stop", "trail_price": "1", "trail_percent": "1"})),
            "trail_price",
        ),
        (
            with(json!({"type": "trailing_stop", "trail_percent": "100"})),
            "trail_percent",
        ),
        (
            with(json!({"type": "market", "trail_price": "1"})),
            "trail_price",
        ),
        (
            with(json!({"type": "stop", "stop_price": "10", "time_in_force": "ioc"})),
            "time_in_force",
        ),
    ] {
        let reply = trader.post_order(body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
        let message = reply.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{body}: {message}");
    }
    assert_eq!(
        trader.get("/v2/orders?status=all").await.body,
        json!([]),
        "nothing recorded"
    );
}

#[tokio::test]
async fn a_buy_stop_the_market_is_past_holds_the_market_not_the_stop() {
    let stack = frozen_stack().await;
    stack.set_price("AAPL", "100").await;
    // Cash for 10 shares at the market, far more than at the stop.
    let trader = stack.trader(&[("USD", "1060")]).await;
    let id = place(
        &trader,
        json!({"symbol": "AAPL", "qty": "10", "side": "buy", "type": "stop",
            "time_in_force": "day", "stop_price": "5"}),
    )
    .await;
    let holds: Value = stack
        .get_json(stack.balances_url(&format!("/v1/holds?order_id={id}")))
        .await;
    let held: Decimal = holds["holds"][0]["amount"]
        .as_str()
        .expect("amount")
        .parse()
        .unwrap();
    assert!(held > Decimal::from(1000), "held at the market: {holds}");
    wait_status(&trader, &id, "filled").await;
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
    // Far more than the cash: refused at once, nothing placed.
    let refused = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": "100", "side": "buy", "type": "stop",
            "time_in_force": "day", "stop_price": "5"}),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

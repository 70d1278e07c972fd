//! Fractional quantities end to end: a market order for the day of a
//! fractionable asset, held, placed, filled, settled and carried in the
//! position exactly, with every figure checked against one worked out by
//! hand; and the orders a fraction may not be, refused naming the field.
//! Its helpers serve `notional.rs` too.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::{TestStack, Trader};

pub(crate) fn dec(text: &str) -> Decimal {
    text.parse().expect("decimal literal")
}

pub(crate) fn dec_of(value: &Value) -> Decimal {
    dec(value
        .as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {value}")))
}

/// AAPL at 100 with the walk frozen: the quote is 99.99 / 100.01 and every
/// market buy fills at 100.01, every market sell at 99.99. A market buy
/// holds max(ask, last) × 1.05 = 105.0105, up to the cent 105.02 a share.
pub(crate) async fn frozen_stack() -> TestStack {
    let stack = TestStack::spawn_with_venue(
        |s| s.lifecycle.market_buy_collar = Decimal::new(5, 2),
        |venue| venue.walk_step_bps = Decimal::ZERO,
    )
    .await;
    let response = reqwest::Client::new()
        .post(stack.exchange_url("/admin/prices"))
        .json(&json!({"symbol": "AAPL", "price": "100"}))
        .send()
        .await
        .expect("set a price");
    assert!(response.status().is_success(), "{}", response.status());
    stack
}

pub(crate) async fn filled(trader: &Trader, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let order = trader.get(&format!("/v2/orders/{id}")).await.body;
        if order["status"] == "filled" {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never filled: {order}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The account's USD and AAPL at the ledger as (total, held).
pub(crate) async fn ledger(stack: &TestStack, trader: &Trader) -> [(Decimal, Decimal); 2] {
    let balances = stack.balances_of(trader).await;
    ["USD", "AAPL"].map(|asset| {
        let b = &balances["balances"][asset];
        (dec_of(&b["total"]), dec_of(&b["held"]))
    })
}

/// Every fill of the order settled at the ledger, each consuming exactly
/// qty × the hold's rate: the (qty, price) of each.
async fn settled_fills(stack: &TestStack, trader: &Trader, id: &str) -> Vec<(Decimal, Decimal)> {
    stack.wait_quiet(Duration::from_secs(20)).await;
    let fills = trader.get(&format!("/v2/orders/{id}/fills")).await.body;
    fills
        .as_array()
        .expect("fills")
        .iter()
        .map(|f| {
            assert_eq!(f["settlement_state"], "settled", "{f}");
            (dec_of(&f["qty"]), dec_of(&f["price"]))
        })
        .collect()
}

#[tokio::test]
async fn a_fractional_round_trip_holds_settles_and_costs_exactly() {
    let stack = frozen_stack().await;
    let trader = stack.trader(&[("USD", "1000")]).await;

    // Buy 2.5 shares: the hold is 2.5 × 105.02 = 262.55.
    let buy = trader
        .post_order(json!({"symbol": "AAPL", "qty": "2.5", "side": "buy",
            "type": "market", "time_in_force": "day"}))
        .await;
    assert_eq!(buy.status, 200, "{}", buy.body);
    assert_eq!(buy.body["qty"], "2.5");
    assert_eq!(buy.body["notional"], Value::Null);
    let id = buy.body["id"].as_str().expect("id").to_string();
    let row = stack.order_row(&id).await;
    assert_eq!(
        (row.hold_amount, row.hold_rate),
        (Some(dec("262.55")), Some(dec("105.02")))
    );
    let order = filled(&trader, &id).await;
    assert_eq!(order["filled_qty"], "2.5");
    assert_eq!(order["filled_avg_price"], "100.01");
    let fills = settled_fills(&stack, &trader, &id).await;
    assert_eq!(fills.iter().map(|f| f.0).sum::<Decimal>(), dec("2.5"));
    assert!(fills.iter().all(|f| f.1 == dec("100.01")), "{fills:?}");
    // 2.5 × 100.01 = 250.025 paid, to the tenth of a cent; the hold was
    // consumed at its rate (2.5 × 105.02 = all of it) and nothing is held.
    assert_eq!(
        ledger(&stack, &trader).await,
        [(dec("749.975"), dec("0")), (dec("2.5"), dec("0"))]
    );

    // Sell 1.25 of them: it holds the 1.25 shares, fills at 99.99.
    let sell = trader
        .post_order(json!({"symbol": "AAPL", "qty": 1.25, "side": "sell",
            "type": "market", "time_in_force": "day"}))
        .await;
    assert_eq!(sell.status, 200, "{}", sell.body);
    let sell_id = sell.body["id"].as_str().expect("id").to_string();
    let row = stack.order_row(&sell_id).await;
    assert_eq!(
        (row.hold_asset.as_deref(), row.hold_amount),
        (Some("AAPL"), Some(dec("1.25")))
    );
    let order = filled(&trader, &sell_id).await;
    assert_eq!(order["filled_qty"], "1.25");
    assert_eq!(order["filled_avg_price"], "99.99");
    settled_fills(&stack, &trader, &sell_id).await;
    // 749.975 + 1.25 × 99.99 (124.9875) = 874.9625.
    assert_eq!(
        ledger(&stack, &trader).await,
        [(dec("874.9625"), dec("0")), (dec("1.25"), dec("0"))]
    );

    // The position: 1.25 shares at the average cost of the buy, 100.01;
    // cost 125.0125; priced at the last trade, 99.99: worth 124.9875,
    // unrealized −0.025 (reported to the cent, half to even: −0.02).
    let position = trader.get("/v2/positions/AAPL").await.body;
    assert_eq!(position["qty"], "1.25", "{position}");
    assert_eq!(position["avg_entry_price"], "100.01", "{position}");
    assert_eq!(position["cost_basis"], "125.01", "{position}");
    assert_eq!(position["current_price"], "99.99", "{position}");
    assert_eq!(position["market_value"], "124.99", "{position}");
    assert_eq!(position["unrealized_pl"], "-0.02", "{position}");

    // The activities list each fill with its fractional quantity.
    let activities = trader.get("/v2/account/activities/FILL").await.body;
    let filled_qty: Decimal = activities
        .as_array()
        .expect("activities")
        .iter()
        .filter(|a| a["side"] == "sell")
        .map(|a| dec_of(&a["qty"]))
        .sum();
    assert_eq!(filled_qty, dec("1.25"), "{activities}");

    // Closing the position sells all of it, the fraction too.
    let close = trader.delete("/v2/positions/AAPL").await;
    assert_eq!(close.status, 200, "{}", close.body);
    assert_eq!(close.body["qty"], "1.25", "{}", close.body);
    let close_id = close.body["id"].as_str().expect("id").to_string();
    filled(&trader, &close_id).await;
    settled_fills(&stack, &trader, &close_id).await;
    // 874.9625 + 1.25 × 99.99 = 999.95.
    assert_eq!(
        ledger(&stack, &trader).await,
        [(dec("999.95"), dec("0")), (dec("0"), dec("0"))]
    );
    assert_eq!(trader.get("/v2/positions/AAPL").await.status, 404);
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_fraction_is_refused_naming_the_field_unless_market_day_and_fractionable() {
    let stack = frozen_stack().await;
    // A symbol the venue lists for whole shares only.
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
    let asset = trader.get("/v2/assets/WHOLE").await;
    assert_eq!(asset.body["fractionable"], false, "{}", asset.body);
    assert_eq!(
        trader.get("/v2/assets/AAPL").await.body["fractionable"],
        true
    );

    let market = |symbol: &str, qty: Value, extra: Value| {
        let mut body = json!({"symbol": symbol, "qty": qty, "side": "buy",
            "type": "market", "time_in_force": "day"});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    for (body, field, says) in [
        (
            market(
                "AAPL",
                json!("0.5"),
                json!({"type": "limit", "limit_price": "100"}),
            ),
            "qty",
            "market orders only",
        ),
        (
            market("AAPL", json!("0.5"), json!({"time_in_force": "gtc"})),
            "time_in_force",
            "fractional",
        ),
        (
            market("AAPL", json!("0.1234567891"), json!({})),
            "qty",
            "9 decimal places",
        ),
        (
            market("WHOLE", json!("0.5"), json!({})),
            "qty",
            "not fractionable",
        ),
    ] {
        let refused = trader.post_order(body.clone()).await;
        assert_eq!(refused.status, 422, "{body}: {}", refused.body);
        let message = refused.body["message"].as_str().unwrap_or_default();
        assert!(refused.body["code"].is_number(), "{}", refused.body);
        assert!(
            message.starts_with(field) && message.contains(says),
            "{body}: {message}"
        );
    }
    // Nothing was recorded, and whole shares of WHOLE are taken.
    let orders = trader.get("/v2/orders?status=all").await.body;
    assert_eq!(orders.as_array().map(Vec::len), Some(0), "{orders}");
    let whole = trader
        .post_order(market("WHOLE", json!("2"), json!({})))
        .await;
    assert_eq!(whole.status, 200, "{}", whole.body);
}

//! Positions at average cost, closing them (one, part of one, all; each
//! an ordinary sell through the lifecycle), and the account's FILL
//! activities, through the HTTP API against both simulators.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::{TestStack, Trader};

fn dec(value: &Value) -> Decimal {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {value}"))
        .parse()
        .expect("decimal")
}

/// Waits until the order is filled and the ledger's position in `symbol`
/// is `qty` (the fill settled); answers the order.
async fn settled(trader: &Trader, order: &Value, symbol: &str, qty: &str) -> Value {
    let id = order["id"].as_str().expect("order id");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let order = trader.get(&format!("/v2/orders/{id}")).await.body;
        let position = trader.get(&format!("/v2/positions/{symbol}")).await;
        let held = match position.status {
            200 => position.body["qty"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            _ => "0".to_string(),
        };
        if order["status"] == "filled" && held == qty {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {order} / position {held}, waiting for filled and {qty}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn market(symbol: &str, side: &str, qty: u32) -> Value {
    json!({"symbol": symbol, "qty": qty.to_string(), "side": side, "type": "market", "time_in_force": "day"})
}

/// The order's fills as (qty, price).
async fn fills(trader: &Trader, order: &Value) -> Vec<(Decimal, Decimal)> {
    let id = order["id"].as_str().expect("order id");
    let fills = trader.get(&format!("/v2/orders/{id}/fills")).await.body;
    fills
        .as_array()
        .expect("fills")
        .iter()
        .map(|f| (dec(&f["qty"]), dec(&f["price"])))
        .collect()
}

#[tokio::test]
async fn a_round_trip_at_average_cost_closing_part_and_all_of_it() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000000")]).await;

    // Two buys of 10: the position costs what they paid, whatever the
    // venue's prices were.
    let mut bought = Vec::new();
    for _ in 0..2 {
        let buy = trader.post_order(market("AAPL", "buy", 10)).await;
        assert_eq!(buy.status, 200, "{}", buy.body);
        let held = if bought.is_empty() { "10" } else { "20" };
        let buy = settled(&trader, &buy.body, "AAPL", held).await;
        bought.extend(fills(&trader, &buy).await);
    }
    let cost: Decimal = bought.iter().map(|(q, p)| q * p).sum();
    let avg = cost / Decimal::from(20);
    let position = trader.get("/v2/positions/AAPL").await.body;
    assert_eq!(
        dec(&position["avg_entry_price"]),
        avg.round_dp(4),
        "{position}"
    );
    assert_eq!(dec(&position["cost_basis"]), cost.round_dp(2), "{position}");
    let price = dec(&position["current_price"]);
    assert_eq!(
        dec(&position["unrealized_pl"]),
        (Decimal::from(20) * price - cost).round_dp(2),
        "{position}"
    );

    // Sell 5 by closing part of the position: the average is unchanged,
    // the cost is 15 shares at it.
    let close = trader.delete("/v2/positions/AAPL?qty=5").await;
    assert_eq!(close.status, 200, "{}", close.body);
    assert_eq!(close.body["side"], "sell");
    assert_eq!(close.body["type"], "market");
    assert_eq!(close.body["qty"], "5");
    let sell = settled(&trader, &close.body, "AAPL", "15").await;
    let position = trader.get("/v2/positions/AAPL").await.body;
    assert_eq!(
        dec(&position["avg_entry_price"]),
        avg.round_dp(4),
        "{position}"
    );
    assert_eq!(
        dec(&position["cost_basis"]),
        (avg * Decimal::from(15)).round_dp(2),
        "{position}"
    );

    // 50 % of 15 is 7.5 shares: AAPL is fractionable, and a position of
    // it closes to the fraction (of another asset, to whole shares:
    // `CloseAmount::shares_of`).
    let close = trader.delete("/v2/positions/AAPL?percentage=50").await;
    assert_eq!(close.status, 200, "{}", close.body);
    assert_eq!(close.body["qty"], "7.5");
    settled(&trader, &close.body, "AAPL", "7.5").await;

    // Bad amounts are refused before anything is recorded.
    for bad in [
        "qty=1&percentage=5",
        "percentage=101",
        "qty=-1",
        "qty=1.0000000001",
        "percentage=0",
    ] {
        let refused = trader.delete(&format!("/v2/positions/AAPL?{bad}")).await;
        assert_eq!(refused.status, 422, "{bad}: {}", refused.body);
        assert!(refused.body["message"].is_string(), "{}", refused.body);
    }
    // More than held: the ledger refuses to hold the shares.
    let over = trader.delete("/v2/positions/AAPL?qty=9").await;
    assert_eq!(over.status, 403, "{}", over.body);

    // Close what is left; then there is nothing to close.
    let all = trader.delete("/v2/positions").await;
    assert_eq!(all.status, 207, "{}", all.body);
    assert_eq!(
        all.body.as_array().expect("entries").len(),
        1,
        "{}",
        all.body
    );
    assert_eq!(all.body[0]["symbol"], "AAPL");
    assert_eq!(all.body[0]["status"], 200, "{}", all.body);
    assert_eq!(all.body[0]["body"]["qty"], "7.5");
    settled(&trader, &all.body[0]["body"], "AAPL", "0").await;
    assert_eq!(trader.get("/v2/positions/AAPL").await.status, 404);
    assert_eq!(trader.delete("/v2/positions/AAPL").await.status, 404);
    assert_eq!(trader.delete("/v2/positions").await.body, json!([]));

    // A fresh lot after a round trip is not blended with the old one.
    let again = trader.post_order(market("AAPL", "buy", 4)).await;
    let again = settled(&trader, &again.body, "AAPL", "4").await;
    let paid: Decimal = fills(&trader, &again)
        .await
        .iter()
        .map(|(q, p)| q * p)
        .sum();
    let position = trader.get("/v2/positions/AAPL").await.body;
    assert_eq!(
        dec(&position["avg_entry_price"]),
        (paid / Decimal::from(4)).round_dp(4),
        "{position}"
    );

    // Every fill is a FILL activity, newest first, and pages by its id.
    let activities = trader.get("/v2/account/activities").await;
    assert_eq!(activities.status, 200, "{}", activities.body);
    let activities = activities.body.as_array().expect("activities").clone();
    let recorded: usize = {
        let orders = trader.get("/v2/orders?status=all").await.body;
        let mut n = 0;
        for order in orders.as_array().expect("orders") {
            n += fills(&trader, order).await.len();
        }
        n
    };
    assert_eq!(activities.len(), recorded);
    assert!(activities.iter().all(|a| a["activity_type"] == "FILL"));
    let times: Vec<&str> = activities
        .iter()
        .map(|a| a["transaction_time"].as_str().expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let first_sell = activities
        .iter()
        .find(|a| a["order_id"] == sell["id"])
        .expect("the sell's fill");
    assert_eq!(first_sell["side"], "sell");
    assert_eq!(first_sell["symbol"], "AAPL");
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => {
                format!("/v2/account/activities/FILL?direction=asc&page_size=2&page_token={t}")
            }
            None => "/v2/account/activities/FILL?direction=asc&page_size=2".to_string(),
        };
        let page = trader.get(&path).await.body;
        let page = page.as_array().expect("page").clone();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        token = page
            .last()
            .and_then(|a| a["id"].as_str())
            .map(str::to_string);
        paged.extend(page);
    }
    let mut newest_first = paged.clone();
    newest_first.reverse();
    assert_eq!(newest_first, activities);
    assert_eq!(
        trader
            .get("/v2/account/activities?activity_types=DIV,CSD")
            .await
            .body,
        json!([])
    );
    assert_eq!(
        trader.get("/v2/account/activities/DIV").await.body,
        json!([])
    );
    for bad in [
        "/v2/account/activities?activity_types=BOGUS",
        "/v2/account/activities/fill",
        "/v2/account/activities?page_size=0",
        "/v2/account/activities?page_token=nope",
    ] {
        assert_eq!(trader.get(bad).await.status, 422, "{bad}");
    }
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

#[tokio::test]
async fn close_all_with_cancel_orders_frees_the_shares_resting_sells_held() {
    let stack = TestStack::spawn().await;
    let trader = stack
        .trader(&[("USD", "100000"), ("AAPL", "10"), ("MSFT", "3")])
        .await;
    // A far limit sell rests at the venue, holding 4 AAPL.
    let resting = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": "4", "side": "sell", "type": "limit",
            "time_in_force": "gtc", "limit_price": "99999"}),
        )
        .await;
    assert_eq!(resting.status, 200, "{}", resting.body);
    let position = trader.get("/v2/positions/AAPL").await.body;
    assert_eq!(position["qty_available"], "6", "{position}");

    let closed = trader.delete("/v2/positions?cancel_orders=true").await;
    assert_eq!(closed.status, 207, "{}", closed.body);
    let entries = closed.body.as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{}", closed.body);
    for entry in entries {
        assert_eq!(entry["status"], 200, "{entry}");
        let expected = if entry["symbol"] == "AAPL" { "10" } else { "3" };
        assert_eq!(entry["body"]["qty"], expected, "{entry}");
        settled(
            &trader,
            &entry["body"],
            entry["symbol"].as_str().expect("symbol"),
            "0",
        )
        .await;
    }
    let id = resting.body["id"].as_str().expect("id");
    assert_eq!(
        trader.get(&format!("/v2/orders/{id}")).await.body["status"],
        "canceled"
    );
    assert_eq!(trader.get("/v2/positions").await.body, json!([]));
    assert_eq!(
        trader
            .delete("/v2/positions?cancel_orders=maybe")
            .await
            .status,
        422
    );
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_close_retried_under_its_key_replays_the_first_close() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000"), ("AAPL", "10")]).await;
    let close = |path: &'static str| {
        let trader = &trader;
        async move {
            let reply = trader.delete_with_key(path, Some("close-aapl-1")).await;
            let replayed = reply.headers.get("idempotent-replayed").is_some();
            (reply.status, replayed, reply.body)
        }
    };
    let (status, replayed, first) = close("/v2/positions/AAPL?qty=4").await;
    assert_eq!((status, replayed), (200, false), "{first}");
    settled(&trader, &first, "AAPL", "6").await;
    // The same request again, after the sell settled: the first close.
    let (status, replayed, again) = close("/v2/positions/AAPL?qty=4").await;
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    // Another request under the same key: refused, nothing sold.
    let (status, _, refused) = close("/v2/positions/AAPL?percentage=50").await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(trader.get("/v2/positions/AAPL").await.body["qty"], "6");
    // Close-all refuses a key rather than ignore it.
    let (status, _, refused) = close("/v2/positions").await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(trader.get("/v2/positions/AAPL").await.body["qty"], "6");
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

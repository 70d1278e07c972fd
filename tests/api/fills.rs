//! Fills exactly once: the stream, settlement, cancels and closing, with
//! the venue and the ledger misbehaving. Each test ends with the invariant
//! checker comparing orderd with both services' ground truth.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestStack, Trader};

fn market(symbol: &str, side: &str, qty: u32) -> Value {
    json!({"symbol": symbol, "qty": qty.to_string(), "side": side, "type": "market", "time_in_force": "day"})
}

fn resting_buy(symbol: &str, qty: u32) -> Value {
    // Far below the market: it rests until canceled.
    json!({"symbol": symbol, "qty": qty.to_string(), "side": "buy", "type": "limit",
           "time_in_force": "gtc", "limit_price": "1.00"})
}

async fn order(trader: &Trader, id: &str) -> Value {
    trader.get(&format!("/v2/orders/{id}")).await.body
}

async fn wait_status(trader: &Trader, id: &str, statuses: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body = order(trader, id).await;
        if statuses.iter().any(|s| body["status"] == *s) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} never reached {statuses:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn dec(v: &Value) -> rust_decimal::Decimal {
    v.as_str().unwrap_or("0").parse().expect("decimal")
}

#[tokio::test]
async fn a_market_buy_fills_settles_and_closes_with_the_hold_released() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let reply = trader.post_order(market("AAPL", "buy", 10)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    let filled = wait_status(&trader, &id, &["filled"]).await;
    assert_eq!(filled["filled_qty"], "10");
    assert!(filled["filled_at"].is_string());
    stack.wait_all_terminal(Duration::from_secs(20)).await;

    let fills = trader.get(&format!("/v2/orders/{id}/fills")).await.body;
    let fills = fills.as_array().unwrap();
    assert!(!fills.is_empty());
    let qty: rust_decimal::Decimal = fills.iter().map(|f| dec(&f["qty"])).sum();
    assert_eq!(qty, 10.into());
    assert!(fills.iter().all(|f| f["settlement_state"] == "settled"));

    let balances = stack.balances_of(&trader).await;
    assert_eq!(
        dec(&balances["balances"]["USD"]["held"]),
        0.into(),
        "{balances}"
    );
    assert_eq!(dec(&balances["balances"]["AAPL"]["total"]), 10.into());
    let report = stack.assert_invariants().await;
    assert_eq!(report.orders, 1);
}

#[tokio::test]
async fn a_sell_delivers_shares_and_credits_cash() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "0"), ("MSFT", "20")]).await;
    let reply = trader.post_order(market("MSFT", "sell", 20)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_status(&trader, reply.body["id"].as_str().unwrap(), &["filled"]).await;
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    let balances = stack.balances_of(&trader).await;
    assert_eq!(dec(&balances["balances"]["MSFT"]["total"]), 0.into());
    assert!(
        dec(&balances["balances"]["USD"]["total"]) > 1000.into(),
        "{balances}"
    );
    stack.assert_invariants().await;
}

#[tokio::test]
async fn canceling_a_resting_order_releases_its_hold() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000")]).await;
    let reply = trader.post_order(resting_buy("AMZN", 100)).await;
    assert_eq!(reply.status, 200);
    let id = reply.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        dec(&stack.balances_of(&trader).await["balances"]["USD"]["held"]),
        100.into()
    );
    let canceled = trader.cancel(&id).await;
    assert_eq!(canceled, 204);
    let done = wait_status(&trader, &id, &["canceled"]).await;
    assert!(done["canceled_at"].is_string());
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    assert_eq!(
        dec(&stack.balances_of(&trader).await["balances"]["USD"]["held"]),
        0.into()
    );
    // A second cancel of a terminal order is Alpaca's 422.
    let again = trader.cancel(&id).await;
    assert_eq!(again, 422);
    stack.assert_invariants().await;
}

#[tokio::test]
async fn canceling_before_placement_never_reaches_the_venue() {
    // Holds answer slowly, so the order is still reserving when canceled.
    let stack = TestStack::spawn_with(|s| s.lifecycle.submit_deadline_ms = 100).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    stack
        .put_balances_faults(json!({"latency": 1.0, "latency_ms_min": 400, "latency_ms_max": 400}))
        .await;
    let reply = trader.post_order(resting_buy("AAPL", 5)).await;
    assert_eq!(reply.body["status"], "pending_new", "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    let canceled = trader.cancel(&id).await;
    assert_eq!(canceled, 204);
    stack.put_balances_faults(json!({})).await;
    wait_status(&trader, &id, &["canceled"]).await;
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    assert_eq!(
        stack.exchange_truth().await["orders"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "never placed"
    );
    assert_eq!(
        dec(&stack.balances_of(&trader).await["balances"]["USD"]["held"]),
        0.into()
    );
    stack.assert_invariants().await;
}

#[tokio::test]
async fn cancel_all_answers_207_per_order() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    for symbol in ["AAPL", "MSFT", "NVDA"] {
        assert_eq!(trader.post_order(resting_buy(symbol, 1)).await.status, 200);
    }
    let response = trader.cancel_all().await;
    assert_eq!(response.status, 207);
    let body = response.body;
    let entries = body.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(
        entries
            .iter()
            .all(|e| e["status"] == 200 && e["body"]["status"] == "pending_cancel")
    );
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    let closed = trader.get("/v2/orders?status=closed").await.body;
    assert!(
        closed
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "canceled")
    );
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_cancel_that_loses_the_race_to_the_fills_ends_filled() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000000")]).await;
    stack
        .put_exchange_faults(json!({"fill_races_cancel": 1.0}))
        .await;
    let reply = trader.post_order(market("NVDA", "buy", 50)).await;
    let id = reply.body["id"].as_str().unwrap().to_string();
    let canceled = trader.cancel(&id).await;
    assert!(canceled == 204 || canceled == 422);
    wait_status(&trader, &id, &["filled"]).await;
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_fill_after_the_cancel_is_still_applied_and_settled() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000000")]).await;
    stack
        .put_exchange_faults(json!({"fill_after_cancel": 1.0}))
        .await;
    // A resting order that the cancel makes fill once more afterwards.
    let reply = trader
        .post_order(
            json!({"symbol": "MSFT", "qty": "40", "side": "buy", "type": "limit",
                           "time_in_force": "gtc", "limit_price": "1.00"}),
        )
        .await;
    let id = reply.body["id"].as_str().unwrap().to_string();
    trader.cancel(&id).await;
    wait_status(&trader, &id, &["canceled"]).await;
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    // Give the late fill time to arrive, then it must be in and settled.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stack.wait_quiet(Duration::from_secs(20)).await;
    let final_order = order(&trader, &id).await;
    assert_eq!(
        final_order["status"], "canceled",
        "the outcome stays canceled"
    );
    stack.assert_invariants().await;
}

#[tokio::test]
async fn hundreds_of_orders_through_a_misbehaving_stream_and_ledger_keep_every_invariant() {
    let stack = TestStack::spawn().await;
    let traders = futures_util::future::join_all(
        (0..4).map(|_| stack.trader(&[("USD", "5000000"), ("AAPL", "10000"), ("MSFT", "10000")])),
    )
    .await;
    stack
        .put_exchange_faults(json!({
            "duplicate_report": 0.1, "out_of_order_report": 0.1, "drop_report": 0.1,
            "disconnect": 0.02, "fill_after_cancel": 0.2, "fill_races_cancel": 0.2,
            "stale_read": 0.2, "stale_read_window_ms": 200
        }))
        .await;
    stack
        .put_balances_faults(
            json!({"response_lost": 0.15, "response_lost_delay_ms": 10, "error_5xx": 0.05}),
        )
        .await;
    const ORDERS: usize = 200;
    let replies = futures_util::future::join_all((0..ORDERS).map(|i| {
        let trader = traders[i % traders.len()].clone();
        async move {
            let symbol = ["AAPL", "MSFT"][i % 2];
            let body = match i % 5 {
                0 => market(symbol, "sell", 3),
                1 => resting_buy(symbol, 2),
                _ => market(symbol, "buy", 1 + (i % 7) as u32),
            };
            (trader.clone(), trader.post_order(body).await)
        }
    }))
    .await;
    // Cancel the resting ones and some of the others.
    for (i, (trader, reply)) in replies.iter().enumerate() {
        assert_eq!(reply.status, 200, "{}", reply.body);
        if i % 5 == 1 || i % 11 == 0 {
            let id = reply.body["id"].as_str().unwrap();
            let _ = trader.cancel(id).await;
        }
    }
    // Let the faulty stream run a while, then heal both services.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.put_exchange_faults(json!({})).await;
    stack.put_balances_faults(json!({})).await;
    stack.wait_all_terminal(Duration::from_secs(60)).await;
    // A late fill after a cancel whose report was dropped shows as a gap
    // at the next heartbeat (1 s); give it two, then quiet again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stack.wait_quiet(Duration::from_secs(30)).await;
    let report = stack.assert_invariants().await;
    assert_eq!(report.orders, ORDERS);
    assert!(report.fills > ORDERS / 2, "fills: {}", report.fills);
}

#[tokio::test]
async fn trade_updates_reach_an_authenticated_stream_client() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let mut socket = stack.trade_updates(&trader).await;

    let reply = trader.post_order(market("AAPL", "buy", 5)).await;
    let id = reply.body["id"].as_str().unwrap().to_string();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !events.contains(&"fill".to_string()) {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("events in time");
        let text = next.unwrap().unwrap().into_text().unwrap();
        let message: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(message["stream"], "trade_updates");
        assert_eq!(message["data"]["order"]["id"], id.as_str());
        let event = message["data"]["event"].as_str().unwrap().to_string();
        if event == "fill" || event == "partial_fill" {
            assert!(
                uuid::Uuid::parse_str(message["data"]["execution_id"].as_str().unwrap()).is_ok()
            );
            assert!(message["data"]["price"].is_string());
        }
        events.push(event);
    }
    assert_eq!(
        events.get(..2),
        Some(&["pending_new".to_string(), "new".to_string()][..]),
        "Alpaca's order: pending_new once recorded, new once at the venue: {events:?}"
    );

    // Another account's client sees nothing of it.
    let other = stack.trader(&[("USD", "1")]).await;
    let (mut bad, _) = tokio_tungstenite::connect_async(format!("ws://{}/stream", stack.app.addr))
        .await
        .unwrap();
    bad.send(Message::text(
        json!({"action": "authenticate", "data": {"key_id": other.key_id, "secret_key": "wrong"}})
            .to_string(),
    ))
    .await
    .unwrap();
    let refused: Value =
        serde_json::from_str(&bad.next().await.unwrap().unwrap().into_text().unwrap()).unwrap();
    assert_eq!(refused["data"]["status"], "unauthorized");
}

#[tokio::test]
async fn a_batch_of_reports_applies_each_once_and_a_bad_one_costs_the_others_nothing() {
    use orderd::store::executions::{
        Applied, ApplyError, Execution, ExecutionFill, FillSource, apply_executions,
    };
    use rust_decimal::Decimal;

    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000")]).await;
    let pool = &stack.app.engine.pool;
    let mut orders = Vec::new();
    for symbol in ["AMZN", "MSFT"] {
        let reply = trader.post_order(resting_buy(symbol, 10)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let id = uuid::Uuid::parse_str(reply.body["id"].as_str().unwrap()).unwrap();
        let row = orderd::store::orders::load(pool, id)
            .await
            .unwrap()
            .unwrap();
        assert!(row.venue_order_id.is_some(), "placed: {row:?}");
        orders.push(row);
    }
    let (a, b) = (&orders[0], &orders[1]);
    let report = |order: &orderd::store::orders::OrderRecord, exec_id: &str, qty: u32| Execution {
        venue_client_order_id: order.venue_client_order_id.clone(),
        venue_order_id: order.venue_order_id.clone().unwrap(),
        fill: Some(ExecutionFill {
            exec_id: exec_id.into(),
            qty: qty.into(),
            price: Decimal::ONE,
            transact_time: chrono::Utc::now(),
        }),
        venue_status: orderd::domain::lifecycle::VenueStatus::PartiallyFilled,
        cum_qty: qty.into(),
        source: FillSource::Rest,
        fencing_token: None,
        done_for_day: false,
        order_qty: None,
    };
    let batch = [
        report(a, "batch-a-1", 4),
        // The same execution again, in the same batch: a no-op.
        report(a, "batch-a-1", 4),
        // More than the order's 10: refused, and must not cost the others.
        report(b, "batch-b-1", 11),
        report(a, "batch-a-2", 3),
    ];
    let instance = stack.app.engine.instance_id;
    let results = apply_executions(pool, &stack.app.engine.trade_updates, instance, &batch).await;
    assert_eq!(results.len(), 4);
    let new_fill = |r: &Result<Applied, ApplyError>| match r {
        Ok(Applied::Applied { new_fill, .. }) => *new_fill,
        other => panic!("not applied: {other:?}"),
    };
    assert!(new_fill(&results[0]));
    assert!(!new_fill(&results[1]));
    assert!(
        matches!(results[2], Err(ApplyError::Overfill { .. })),
        "{:?}",
        results[2]
    );
    assert!(new_fill(&results[3]));

    let filled = |id| async move {
        let row = orderd::store::orders::load(pool, id)
            .await
            .unwrap()
            .unwrap();
        let fills = orderd::store::executions::fills_of(pool, id).await.unwrap();
        (row.filled_qty, fills.len())
    };
    assert_eq!(filled(a.order_id).await, (Decimal::from(7), 2));
    assert_eq!(filled(b.order_id).await, (Decimal::ZERO, 0));

    // Replaying the good reports, batched again, changes nothing.
    let again = apply_executions(
        pool,
        &stack.app.engine.trade_updates,
        instance,
        &[batch[0].clone(), batch[3].clone()],
    )
    .await;
    assert!(again.iter().all(|r| !new_fill(r)));
    assert_eq!(filled(a.order_id).await, (Decimal::from(7), 2));
}

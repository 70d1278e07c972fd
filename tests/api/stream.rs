//! `/stream`'s fan-out: each trade update rendered once per instance, for
//! every session of its account, and not at all without one.
//!
//! The render count is read from `/metrics`, whose recorder is the
//! process's: exact counts rely on each test having its process (nextest).

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::{TestStack, TradeUpdateSocket, Trader};

const RENDERS: &str = "orderd_stream_renders_total";

async fn renders(stack: &TestStack) -> f64 {
    let text = stack
        .http
        .get(stack.app.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter_map(|line| line.strip_prefix(RENDERS)?.trim().parse::<f64>().ok())
        .sum()
}

fn market_buy(symbol: &str, qty: u32) -> Value {
    json!({"symbol": symbol, "qty": qty.to_string(), "side": "buy", "type": "market",
           "time_in_force": "day"})
}

/// The `trade_updates` frames of `order_id` on `socket`, as sent, until
/// its `fill`.
async fn frames_until_fill(socket: &mut TradeUpdateSocket, order_id: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut frames = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no fill of {order_id} in time; got {frames:?}"));
        let text = next.unwrap().unwrap().into_text().unwrap().to_string();
        let message: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(message["stream"], "trade_updates", "{message}");
        assert_eq!(message["data"]["order"]["id"], order_id, "{message}");
        let event = message["data"]["event"].as_str().unwrap().to_string();
        frames.push(text);
        if event == "fill" {
            return frames;
        }
    }
}

/// Nothing arrives on `socket` within `quiet`.
async fn silent(socket: &mut TradeUpdateSocket, quiet: Duration) {
    if let Ok(message) = tokio::time::timeout(quiet, socket.next()).await {
        panic!("expected nothing, got {message:?}");
    }
}

async fn filled(trader: &Trader, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let order = trader.get(&format!("/v2/orders/{id}")).await.body;
        if order["status"] == "filled" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not filled: {order}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_trade_update_is_rendered_once_for_every_session_of_its_account() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let other = stack.trader(&[("USD", "100000")]).await;
    let mut first = stack.trade_updates(&trader).await;
    let mut second = stack.trade_updates(&trader).await;
    let mut elsewhere = stack.trade_updates(&other).await;
    let before = renders(&stack).await;

    let reply = trader.post_order(market_buy("AAPL", 5)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    let seen_first = frames_until_fill(&mut first, &id).await;
    let seen_second = frames_until_fill(&mut second, &id).await;
    assert_eq!(
        seen_first, seen_second,
        "the same frames, in the same order"
    );
    let events: Vec<String> = seen_first
        .iter()
        .map(|text| {
            let message: Value = serde_json::from_str(text).unwrap();
            message["data"]["event"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        events.starts_with(&["pending_new".into(), "new".into()]),
        "{events:?}"
    );
    let fill: Value = serde_json::from_str(seen_first.last().unwrap()).unwrap();
    assert!(fill["data"]["execution_id"].is_string(), "{fill}");
    assert!(fill["data"]["venue_execution_id"].is_string(), "{fill}");
    // The position from the ledger, when it could be read.
    assert!(
        fill["data"]
            .get("position_qty")
            .is_none_or(Value::is_string),
        "{fill}"
    );

    // The other account's session hears nothing of it.
    silent(&mut elsewhere, Duration::from_millis(500)).await;
    assert_eq!(
        renders(&stack).await - before,
        events.len() as f64,
        "one render per update ({events:?}), not one per session"
    );
}

#[tokio::test]
async fn nothing_is_rendered_for_an_account_without_a_session() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let other = stack.trader(&[("USD", "100000")]).await;
    // Another account's session is here; none of the trader's.
    let mut elsewhere = stack.trade_updates(&other).await;
    let before = renders(&stack).await;

    let reply = trader.post_order(market_buy("AAPL", 3)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    filled(&trader, &id).await;
    silent(&mut elsewhere, Duration::from_millis(500)).await;
    assert_eq!(renders(&stack).await, before, "no session, no render");

    // Once a session of the account is here, its updates are rendered.
    let mut socket = stack.trade_updates(&trader).await;
    let reply = trader.post_order(market_buy("AAPL", 2)).await;
    let id = reply.body["id"].as_str().unwrap().to_string();
    let seen = frames_until_fill(&mut socket, &id).await;
    assert_eq!(renders(&stack).await - before, seen.len() as f64);
}

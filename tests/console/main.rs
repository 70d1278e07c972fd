//! The operator console, used as a person would: a real headless Chromium
//! (Debian's `chromium`, driven by `chromedriver`) against an orderd
//! spawned in-process with both simulators, each test over its own fresh
//! database. Each test saves screenshots under `target/console-screenshots/`.

#[path = "../support/mod.rs"]
mod support;

mod access;
mod accessibility;
mod blotter;
mod browser;
mod health;
mod live;
mod order;
mod reconcile;

use serde_json::{Value, json};

use crate::support::{TestStack, Trader};

/// The admin token the test settings keep (it logs in as an operator).
pub const ADMIN: &str = orderd::config::DEFAULT_ADMIN_TOKEN;

/// A limit buy far below the market: it rests.
pub fn resting_buy(symbol: &str, qty: u32) -> Value {
    json!({"symbol": symbol, "qty": qty.to_string(), "side": "buy", "type": "limit",
           "time_in_force": "gtc", "limit_price": "1.00"})
}

/// A market buy: it fills within a second or two.
pub fn market_buy(symbol: &str, qty: u32) -> Value {
    json!({"symbol": symbol, "qty": qty.to_string(), "side": "buy", "type": "market",
           "time_in_force": "day"})
}

/// Settings under which a hold that keeps failing parks fast.
pub fn parks_fast(settings: &mut orderd::config::Settings) {
    settings.lifecycle.max_attempts = 3;
    settings.lifecycle.submit_deadline_ms = 200;
    settings.reconcile.settle_time_ms = 100;
}

/// An order parked at its hold (the ledger answers 5xx to every hold
/// until the budget is spent); the ledger is healthy again afterwards.
pub async fn parked_order(stack: &TestStack, trader: &Trader) -> String {
    stack.put_balances_faults(json!({"error_5xx": 1.0})).await;
    let reply = trader.post_order(resting_buy("AAPL", 2)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    stack
        .wait_order_row(&id, "parked", |o| {
            o.step == orderd::domain::lifecycle::Step::Parked
        })
        .await;
    stack.put_balances_faults(json!({})).await;
    id
}

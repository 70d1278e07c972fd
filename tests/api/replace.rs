//! Replace (`PATCH /v2/orders/{id}`) end to end: the replacement is a new
//! order placed by the venue's cancel/replace; the hold follows the chain
//! (raised before a replace that needs more, lowered after one that needs
//! less); a replace the venue refuses (the original filled first) leaves
//! the original as it was; a replace whose answer is lost is found by its
//! client_order_id. Every test ends with the checker's invariants.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::{TestStack, Trader};

/// A venue whose price only moves by hand; resting orders fill in two
/// chunks `interval_ms` apart.
async fn stack(interval_ms: u64) -> TestStack {
    let stack = TestStack::spawn_with_venue(
        |_| {},
        |venue| {
            venue.walk_step_bps = Decimal::ZERO;
            venue.fill_chunks_min = 2;
            venue.fill_chunks_max = 2;
            venue.fill_interval_ms = interval_ms;
        },
    )
    .await;
    stack.set_price("AAPL", "110").await;
    stack
}

impl TestStack {
    /// The ledger's holds of `order_id` (a chain shares its first order's).
    async fn holds_of(&self, order_id: &str) -> Vec<Value> {
        let holds: Value = self
            .get_json(self.balances_url(&format!("/v1/holds?order_id={order_id}")))
            .await;
        holds["holds"].as_array().cloned().unwrap_or_default()
    }

    async fn hold(&self, hold_id: &str) -> Value {
        self.get_json(self.balances_url(&format!("/v1/holds/{hold_id}")))
            .await
    }
}

async fn order(trader: &Trader, id: &str) -> Value {
    trader.get(&format!("/v2/orders/{id}")).await.body
}

async fn wait_for(trader: &Trader, id: &str, what: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let order = order(trader, id).await;
        if what(&order) {
            return order;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {order}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn limit_buy(trader: &Trader, qty: &str, limit: &str) -> String {
    let reply = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": qty, "side": "buy", "type": "limit",
            "time_in_force": "gtc", "limit_price": limit}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.body["id"].as_str().expect("id").to_string();
    wait_for(trader, &id, |o| {
        o["status"] == "new" || o["filled_qty"] != "0"
    })
    .await;
    id
}

fn dec(value: &Value) -> Decimal {
    value
        .as_str()
        .expect("a decimal string")
        .parse()
        .expect("decimal")
}

#[tokio::test]
async fn the_hold_follows_the_chain_up_before_and_down_after() {
    let stack = stack(200).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    // 10 @ 100 under a market at 110: it rests. Its hold: 1,000.
    let first = limit_buy(&trader, "10", "100").await;
    let holds = stack.holds_of(&first).await;
    assert_eq!(holds.len(), 1, "{holds:?}");
    let hold_id = holds[0]["id"].as_str().expect("hold id").to_string();
    assert_eq!(dec(&holds[0]["amount"]), Decimal::from(1000));

    // Up: 15 @ 101 needs 1,515; the hold is raised before the replace.
    let reply = trader
        .replace(&first, json!({"qty": "15", "limit_price": "101"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let second = reply.body["id"].as_str().expect("id").to_string();
    assert_ne!(second, first);
    assert_eq!(reply.body["replaces"], first.as_str());
    assert_eq!(reply.body["qty"], "15");
    assert_eq!(reply.body["limit_price"], "101");
    // `new` (or `pending_new` on a slow machine, past the submit deadline).
    wait_for(&trader, &second, |o| o["status"] == "new").await;
    let replaced = wait_for(&trader, &first, |o| o["status"] == "replaced").await;
    assert_eq!(replaced["replaced_by"], second.as_str());
    assert!(replaced["replaced_at"].is_string(), "{replaced}");
    let hold = stack.hold(&hold_id).await;
    assert_eq!(dec(&hold["amount"]), Decimal::from(1515), "{hold}");
    assert_eq!(dec(&hold["remaining"]), Decimal::from(1515), "{hold}");

    // Down: 5 @ 101 needs 505; the hold is lowered once the replaced
    // order is done, not before.
    let reply = trader.replace(&second, json!({"qty": "5"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let third = reply.body["id"].as_str().expect("id").to_string();
    assert_eq!(reply.body["qty"], "5");
    wait_for(&trader, &second, |o| o["status"] == "replaced").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let hold = stack.hold(&hold_id).await;
        if dec(&hold["remaining"]) == Decimal::from(505) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never lowered: {hold}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The account's buying power is the rest.
    let account = trader.get("/v2/account").await.body;
    assert_eq!(
        dec(&account["buying_power"]),
        Decimal::from(100000 - 505),
        "{account}"
    );

    // The last one fills at the market, 100 ≤ 101: settled, released.
    stack.set_price("AAPL", "100").await;
    let filled = wait_for(&trader, &third, |o| o["status"] == "filled").await;
    assert_eq!(filled["filled_qty"], "5");
    stack.wait_quiet(Duration::from_secs(20)).await;
    let hold = stack.hold(&hold_id).await;
    assert_eq!(hold["status"], "closed", "{hold}");
    // Only the order that filled is in the orders list's fills, and each
    // order of the chain is one venue order.
    for id in [&first, &second] {
        assert_eq!(order(&trader, id).await["filled_qty"], "0");
    }
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_partly_filled_order_carries_its_fills_into_the_replacement() {
    // The first chunk fills at once, the second a minute later: the order
    // rests half filled.
    let stack = stack(60_000).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    stack.set_price("AAPL", "95").await;
    let first = limit_buy(&trader, "10", "100").await;
    wait_for(&trader, &first, |o| o["filled_qty"] == "5").await;

    // The same total, a price under the market: the replacement works the
    // 5 not filled.
    stack.set_price("AAPL", "110").await;
    let reply = trader
        .replace(
            &first,
            json!({"limit_price": "99", "client_order_id": "mine-r1"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let second = reply.body["id"].as_str().expect("id").to_string();
    assert_eq!(reply.body["client_order_id"], "mine-r1");
    assert_eq!(reply.body["qty"], "5", "{}", reply.body);
    let replaced = wait_for(&trader, &first, |o| o["status"] == "replaced").await;
    assert_eq!(replaced["filled_qty"], "5");
    // The same request again answers the same replacement.
    let again = trader
        .replace(
            &first,
            json!({"limit_price": "99", "client_order_id": "mine-r1"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["id"], second.as_str());
    // The hold: 1,000, 500 consumed by the first order's fills; the
    // replacement needs 5 @ 99 = 495: 5 released after.
    let hold_id = stack.holds_of(&first).await[0]["id"]
        .as_str()
        .expect("hold")
        .to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let hold = stack.hold(&hold_id).await;
        if dec(&hold["remaining"]) == Decimal::from(495) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never lowered: {hold}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A total not above what was filled is refused.
    let refused = trader.replace(&second, json!({"qty": "5"})).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already filled"),
        "{}",
        refused.body
    );
    stack.wait_quiet(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_fill_that_beats_the_replace_leaves_the_original_filled() {
    let stack = stack(60_000).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    stack.set_price("AAPL", "95").await;
    let first = limit_buy(&trader, "10", "100").await;
    wait_for(&trader, &first, |o| o["filled_qty"] == "5").await;
    // The venue fills the rest just before the replace reaches it.
    stack
        .put_exchange_faults(json!({"fill_races_replace": 1.0}))
        .await;
    let reply = trader.replace(&first, json!({"qty": "20"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let second = reply.body["id"].as_str().expect("id").to_string();
    let rejected = wait_for(&trader, &second, |o| o["status"] == "rejected").await;
    assert_eq!(rejected["replaces"], first.as_str());
    let original = wait_for(&trader, &first, |o| o["status"] == "filled").await;
    assert_eq!(original["filled_qty"], "10");
    assert!(original["replaced_by"].is_null(), "{original}");
    assert_eq!(order(&trader, &second).await["filled_qty"], "0");
    // The raise (20 − 5 = 15 more at 100, less the 5 left: 1,000) came
    // back with the replacement, the rest with the original.
    stack.wait_quiet(Duration::from_secs(20)).await;
    let holds = stack.holds_of(&first).await;
    assert_eq!(holds[0]["status"], "closed", "{holds:?}");
    let balances = stack.balances_of(&trader).await;
    assert_eq!(balances["balances"]["USD"]["held"], "0", "{balances}");
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_replace_whose_answer_is_lost_is_found_by_its_client_order_id() {
    let stack = stack(200).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let first = limit_buy(&trader, "10", "100").await;
    stack
        .put_exchange_faults(json!({"response_lost": 1.0}))
        .await;
    let reply = trader.replace(&first, json!({"limit_price": "102"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let second = reply.body["id"].as_str().expect("id").to_string();
    stack.put_exchange_faults(json!({})).await;
    wait_for(&trader, &second, |o| o["status"] == "new").await;
    wait_for(&trader, &first, |o| o["status"] == "replaced").await;
    // One venue order per order: the replace was not sent twice to effect.
    let truth = stack.exchange_truth().await;
    let replacements = truth["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|o| o["replaces"].is_string())
        .count();
    assert_eq!(replacements, 1, "{truth}");
    stack.assert_invariants().await;
}

#[tokio::test]
async fn what_cannot_be_replaced_is_refused_and_an_unaffordable_replace_changes_nothing() {
    let stack = stack(200).await;
    let trader = stack.trader(&[("USD", "2000")]).await;
    let first = limit_buy(&trader, "10", "100").await;
    // Needs 10 × 300 = 3,000: more than the account has beyond the 1,000.
    let reply = trader.replace(&first, json!({"limit_price": "300"})).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let original = wait_for(&trader, &first, |o| o["status"] == "new").await;
    assert!(original["replaced_by"].is_null(), "{original}");
    // Not a field a replace changes; unknown order; a market order.
    let side = trader.replace(&first, json!({"side": "sell"})).await;
    assert_eq!(side.status, 422, "{}", side.body);
    let unknown = trader
        .replace("0190a0a0-0000-7000-8000-000000000000", json!({"qty": "1"}))
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let bad = trader.replace(&first, json!({"limit_price": "-1"})).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    // Canceled: done, not replaceable.
    assert_eq!(trader.cancel(&first).await, 204);
    wait_for(&trader, &first, |o| o["status"] == "canceled").await;
    let done = trader.replace(&first, json!({"qty": "1"})).await;
    assert_eq!(done.status, 422, "{}", done.body);
    stack.wait_quiet(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

#[tokio::test]
async fn replaces_are_refused_until_turned_on() {
    let stack = TestStack::spawn_with(|s| s.lifecycle.replace_orders = false).await;
    stack.set_price("AAPL", "110").await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let first = limit_buy(&trader, "1", "100").await;
    let refused = trader.replace(&first, json!({"limit_price": "101"})).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let message = refused.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("lifecycle.replace_orders"), "{message}");
    assert_eq!(order(&trader, &first).await["status"], "new");
}

#[tokio::test]
async fn the_stream_tells_pending_replace_replaced_and_order_replace_rejected() {
    let stack = stack(200).await;
    let trader = stack.trader(&[("USD", "2000")]).await;
    let mut original_updates = stack.trade_updates(&trader).await;
    let mut replacement_updates = stack.trade_updates(&trader).await;
    let first = limit_buy(&trader, "10", "100").await;
    // Refused by the ledger (10 × 300 is more than the account has): the
    // original's replace is undone.
    let refused = trader.replace(&first, json!({"limit_price": "300"})).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let events = crate::support::trade_events_until(
        &mut original_updates,
        &first,
        "order_replace_rejected",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        events.contains(&"pending_replace".to_string()),
        "{events:?}"
    );
    // Then one the account can hold: replaced.
    let reply = trader.replace(&first, json!({"limit_price": "101"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let second = reply.body["id"].as_str().expect("id").to_string();
    let events = crate::support::trade_events_until(
        &mut original_updates,
        &first,
        "replaced",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        events.first().map(String::as_str),
        Some("pending_replace"),
        "{events:?}"
    );
    let events = crate::support::trade_events_until(
        &mut replacement_updates,
        &second,
        "new",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(events, ["pending_new", "new"], "{events:?}");
    stack.wait_quiet(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

#[tokio::test]
async fn canceling_an_order_being_replaced_cancels_its_replacement_too() {
    let stack = stack(200).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let first = limit_buy(&trader, "10", "100").await;
    // The ledger answers every call 5xx: the replacement's raise stays
    // unknown, and the original stays pending_replace.
    stack.put_balances_faults(json!({"error_5xx": 1.0})).await;
    let reply = trader.replace(&first, json!({"qty": "20"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "pending_new", "{}", reply.body);
    let second = reply.body["id"].as_str().expect("id").to_string();
    assert_eq!(order(&trader, &first).await["status"], "pending_replace");
    assert_eq!(trader.cancel(&first).await, 204);
    stack.put_balances_faults(json!({})).await;
    wait_for(&trader, &first, |o| o["status"] == "canceled").await;
    let replacement = wait_for(&trader, &second, |o| o["status"] == "canceled").await;
    assert_eq!(replacement["filled_qty"], "0");
    stack.wait_quiet(Duration::from_secs(30)).await;
    // Whatever the raise did came back: nothing is held.
    let balances = stack.balances_of(&trader).await;
    assert_eq!(balances["balances"]["USD"]["held"], "0", "{balances}");
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_sell_chain_holds_shares_raised_then_lowered_and_a_stop_is_replaced_too() {
    let stack = stack(200).await;
    let trader = stack.trader(&[("USD", "100000"), ("AAPL", "20")]).await;
    // A sell above the market rests; it holds its 5 shares.
    let reply = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": "5", "side": "sell", "type": "limit",
            "time_in_force": "gtc", "limit_price": "150"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let first = reply.body["id"].as_str().expect("id").to_string();
    wait_for(&trader, &first, |o| o["status"] == "new").await;
    let hold_id = stack.holds_of(&first).await[0]["id"]
        .as_str()
        .expect("hold")
        .to_string();
    let shares = |hold: &Value| dec(&hold["remaining"]);
    assert_eq!(shares(&stack.hold(&hold_id).await), Decimal::from(5));
    // 8 shares: 3 more held before; more than the account has: refused.
    let up = trader.replace(&first, json!({"qty": "8"})).await;
    assert_eq!(up.status, 200, "{}", up.body);
    let second = up.body["id"].as_str().expect("id").to_string();
    wait_for(&trader, &first, |o| o["status"] == "replaced").await;
    assert_eq!(shares(&stack.hold(&hold_id).await), Decimal::from(8));
    let too_many = trader.replace(&second, json!({"qty": "30"})).await;
    assert_eq!(too_many.status, 403, "{}", too_many.body);
    assert_eq!(
        too_many.body["message"], "insufficient qty available for order",
        "{}",
        too_many.body
    );
    wait_for(&trader, &second, |o| o["status"] == "new").await;
    // 2 shares: 6 given back once the replaced order is done.
    let down = trader
        .replace(&second, json!({"qty": "2", "limit_price": "140"}))
        .await;
    assert_eq!(down.status, 200, "{}", down.body);
    let third = down.body["id"].as_str().expect("id").to_string();
    wait_for(&trader, &second, |o| o["status"] == "replaced").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while shares(&stack.hold(&hold_id).await) != Decimal::from(2) {
        assert!(tokio::time::Instant::now() < deadline, "never lowered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A stop buy: its stop replaced; the hold is sized from the new stop.
    let stop = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": "2", "side": "buy", "type": "stop",
            "time_in_force": "day", "stop_price": "130"}),
        )
        .await;
    assert_eq!(stop.status, 200, "{}", stop.body);
    let stop_id = stop.body["id"].as_str().expect("id").to_string();
    wait_for(&trader, &stop_id, |o| o["status"] == "new").await;
    let replaced_stop = trader.replace(&stop_id, json!({"stop_price": "140"})).await;
    assert_eq!(replaced_stop.status, 200, "{}", replaced_stop.body);
    assert_eq!(replaced_stop.body["stop_price"], "140");
    assert_eq!(replaced_stop.body["type"], "stop");
    wait_for(&trader, &stop_id, |o| o["status"] == "replaced").await;

    // Cancel what is left: every hold comes back.
    assert_eq!(trader.cancel(&third).await, 204);
    let new_stop = replaced_stop.body["id"].as_str().expect("id").to_string();
    assert_eq!(trader.cancel(&new_stop).await, 204);
    wait_for(&trader, &third, |o| o["status"] == "canceled").await;
    wait_for(&trader, &new_stop, |o| o["status"] == "canceled").await;
    stack.wait_quiet(Duration::from_secs(30)).await;
    let balances = stack.balances_of(&trader).await;
    assert_eq!(balances["balances"]["AAPL"]["held"], "0", "{balances}");
    assert_eq!(balances["balances"]["USD"]["held"], "0", "{balances}");
    stack.assert_invariants().await;
}

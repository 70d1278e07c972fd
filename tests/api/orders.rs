//! The order lifecycle through the front door: orderd and both simulators
//! on port 0, a fresh database each.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Reply, TestStack, Trader};

fn limit_buy(symbol: &str, qty: &str, price: &str) -> Value {
    json!({"symbol": symbol, "qty": qty, "side": "buy", "type": "limit",
           "time_in_force": "gtc", "limit_price": price})
}

/// Polls the order until `done` says so (the completer works in the
/// background), or fails after `limit`.
async fn wait_for(
    trader: &Trader,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let reply = trader.get(&format!("/v2/orders/{id}")).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        if done(&reply.body) {
            return reply.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} did not get there in {limit:?}: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn venue_orders_for(truth: &Value, client_order_id: &str) -> usize {
    truth["orders"]
        .as_array()
        .map(|orders| {
            orders
                .iter()
                .filter(|o| o["client_order_id"] == client_order_id)
                .count()
        })
        .unwrap_or(0)
}

async fn venue_client_order_id(stack: &TestStack, order_id: &str) -> String {
    sqlx::query_scalar("SELECT venue_client_order_id FROM orders WHERE order_id = $1::uuid")
        .bind(order_id)
        .fetch_one(&stack.app.db.pool)
        .await
        .expect("order row")
}

async fn event_states(stack: &TestStack, order_id: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT step, state FROM order_events WHERE order_id = $1::uuid ORDER BY event_id",
    )
    .bind(order_id)
    .fetch_all(&stack.app.db.pool)
    .await
    .expect("events")
}

fn held(balances: &Value, asset: &str) -> rust_decimal::Decimal {
    balances["balances"][asset]["held"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .expect("decimal")
}

fn dec(text: &str) -> rust_decimal::Decimal {
    text.parse().expect("decimal")
}

#[tokio::test]
async fn a_limit_buy_is_reserved_placed_and_answered_new() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let reply = trader.post_order(limit_buy("AAPL", "10", "150.00")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "new");
    assert_eq!(reply.body["symbol"], "AAPL");
    assert_eq!(reply.body["qty"], "10");
    assert_eq!(reply.body["limit_price"], "150");
    let id = reply.body["id"].as_str().unwrap().to_string();

    // The hold is qty x limit at the balances service.
    let balances = stack.balances_of(&trader).await;
    assert_eq!(held(&balances, "USD"), dec("1500"), "{balances}");

    // Exactly one venue order under the derived client_order_id.
    let venue_id = venue_client_order_id(&stack, &id).await;
    assert_eq!(
        venue_orders_for(&stack.exchange_truth().await, &venue_id),
        1
    );

    // Every action state is on the timeline. The placement is proven by
    // the venue's answer or, when its `new` report overtakes the answer,
    // by that report: whichever comes first records it, once.
    let states = event_states(&stack, &id).await;
    assert_eq!(
        states[..3],
        [
            ("reserve".into(), "requested".into()),
            ("reserve".into(), "succeeded".into()),
            ("place".into(), "requested".into()),
        ]
    );
    assert!(
        states[3] == ("place".into(), "succeeded".into())
            || states[3] == ("working".into(), "succeeded".into()),
        "{states:?}"
    );
    let events = trader.get(&format!("/v2/orders/{id}/events")).await;
    assert_eq!(events.status, 200);
    assert_eq!(events.body["events"].as_array().unwrap().len(), 4);
    assert_eq!(events.body["step"], "working");
}

#[tokio::test]
async fn insufficient_buying_power_is_alpacas_403_and_nothing_reaches_the_venue() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100")]).await;
    let reply = trader.post_order(limit_buy("AAPL", "10", "150.00")).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.body["code"], 40310000);
    assert_eq!(reply.body["message"], "insufficient buying power");
    assert_eq!(
        stack.exchange_truth().await["orders"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    let orders = trader.get("/v2/orders?status=closed").await;
    assert_eq!(orders.body[0]["status"], "rejected");
}

#[tokio::test]
async fn a_sell_holds_shares_and_short_shares_are_refused() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000"), ("MSFT", "5")]).await;
    // A limit far above the market rests: a market sell would fill and
    // settle (releasing shares) before the ledger is read.
    let sell = json!({"symbol": "MSFT", "qty": 5, "side": "sell", "type": "limit",
                      "limit_price": "9999.00", "time_in_force": "day"});
    let reply = trader.post_order(sell).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(held(&stack.balances_of(&trader).await, "MSFT"), dec("5"));
    let again = json!({"symbol": "MSFT", "qty": 1, "side": "sell", "type": "market", "time_in_force": "day"});
    let reply = trader.post_order(again).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.body["message"],
        "insufficient qty available for order"
    );
}

#[tokio::test]
async fn a_market_buy_holds_the_collared_quote() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000000")]).await;
    let reply = trader
        .post_order(json!({"symbol": "NVDA", "qty": "3", "side": "buy", "type": "market", "time_in_force": "day"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (amount, rate): (rust_decimal::Decimal, rust_decimal::Decimal) =
        sqlx::query_as("SELECT hold_amount, hold_rate FROM orders WHERE order_id = $1::uuid")
            .bind(reply.body["id"].as_str().unwrap())
            .fetch_one(&stack.app.db.pool)
            .await
            .unwrap();
    assert_eq!(amount, rate * rust_decimal::Decimal::from(3));
    let quote: Value = stack
        .http
        .get(stack.exchange_url("/v1/quotes/NVDA"))
        .bearer_auth("sim-venue-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ask: rust_decimal::Decimal = quote["ask"].as_str().unwrap().parse().unwrap();
    // 5% over the ask at the time (prices move, so within a band).
    assert!(
        rate > ask * rust_decimal::Decimal::new(100, 2),
        "rate {rate} vs ask {ask}"
    );
    assert!(
        rate < ask * rust_decimal::Decimal::new(110, 2),
        "rate {rate} vs ask {ask}"
    );
}

#[tokio::test]
async fn bad_requests_get_alpaca_errors_naming_the_field() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000")]).await;
    let cases = [
        (
            json!({"symbol": "AAPL", "qty": "-1", "side": "buy", "type": "market", "time_in_force": "day"}),
            "qty",
        ),
        (
            json!({"symbol": "AAPL", "qty": "1", "side": "hold", "type": "market", "time_in_force": "day"}),
            "side",
        ),
        (
            json!({"symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit", "time_in_force": "day"}),
            "limit_price",
        ),
        (
            json!({"symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit", "time_in_force": "day", "limit_price": "1.001"}),
            "limit_price",
        ),
        (
            json!({"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "week"}),
            "time_in_force",
        ),
        (
            json!({"qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}),
            "symbol",
        ),
    ];
    for (body, field) in cases {
        let reply = trader.post_order(body.clone()).await;
        assert_eq!(reply.status, 422, "{body} -> {}", reply.body);
        assert_eq!(reply.body["code"], 40010001);
        assert!(
            reply.body["message"].as_str().unwrap().contains(field),
            "{}",
            reply.body
        );
    }
    // Not JSON at all.
    let raw = stack
        .http
        .post(format!("http://{}/v2/orders", stack.app.addr))
        .header("APCA-API-KEY-ID", &trader.key_id)
        .header("APCA-API-SECRET-KEY", &trader.secret_key)
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert!(body["code"].is_number() && body["message"].is_string());
    // Nothing was accepted by any of them.
    assert_eq!(trader.get("/v2/orders?status=all").await.body, json!([]));
}

#[tokio::test]
async fn authentication_is_required_and_accounts_are_isolated() {
    let stack = TestStack::spawn().await;
    let alice = stack.trader(&[("USD", "100000")]).await;
    let bob = stack.trader(&[("USD", "100000")]).await;
    let order = alice.post_order(limit_buy("AAPL", "1", "100")).await;
    let id = order.body["id"].as_str().unwrap();

    let anonymous = stack
        .http
        .get(format!("http://{}/v2/orders", stack.app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let mut wrong = alice.clone();
    wrong.secret_key = "not-the-secret".into();
    assert_eq!(wrong.get("/v2/orders").await.status, 401);

    assert_eq!(bob.get(&format!("/v2/orders/{id}")).await.status, 404);
    assert_eq!(
        bob.get(&format!("/v2/orders/{id}/events")).await.status,
        404
    );
    assert_eq!(alice.get(&format!("/v2/orders/{id}")).await.status, 200);
    assert_eq!(bob.get("/v2/orders?status=all").await.body, json!([]));
}

#[tokio::test]
async fn an_idempotency_key_replays_refuses_a_different_body_and_creates_one_order() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let body = limit_buy("MSFT", "2", "100.00");
    let first = trader
        .post_order_with_key(body.clone(), Some("key-1"))
        .await;
    assert_eq!(first.status, 200);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = trader
        .post_order_with_key(body.clone(), Some("key-1"))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.body, first.body, "the same outcome, byte for byte");

    let other = trader
        .post_order_with_key(limit_buy("MSFT", "3", "100.00"), Some("key-1"))
        .await;
    assert_eq!(other.status, 422, "{}", other.body);

    // A refused order replays its 403 too.
    let poor = stack.trader(&[("USD", "1")]).await;
    let refused = poor.post_order_with_key(body.clone(), Some("key-2")).await;
    assert_eq!(refused.status, 403);
    let replayed = poor.post_order_with_key(body.clone(), Some("key-2")).await;
    assert_eq!(replayed.status, 403);
    assert_eq!(replayed.body, refused.body);

    assert_eq!(
        trader
            .get("/v2/orders?status=all")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_key_make_one_order_with_one_outcome() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let body = limit_buy("AMZN", "1", "100.00");
    let replies: Vec<Reply> = futures_util::future::join_all(
        (0..8).map(|_| trader.post_order_with_key(body.clone(), Some("same-key"))),
    )
    .await;
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert!(!ok.is_empty());
    for reply in &replies {
        assert!(
            reply.status == 200 || reply.status == 409,
            "{} {}",
            reply.status,
            reply.body
        );
    }
    let ids: std::collections::HashSet<&str> =
        ok.iter().map(|r| r.body["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "one order");
    assert_eq!(
        trader
            .get("/v2/orders?status=all")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_repeated_client_order_id_replays_or_is_alpacas_422() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let mut body = limit_buy("AAPL", "1", "100.00");
    body["client_order_id"] = json!("my-order-1");
    let first = trader.post_order(body.clone()).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["client_order_id"], "my-order-1");
    let replay = trader.post_order(body.clone()).await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body["id"], first.body["id"]);
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
    body["qty"] = json!("2");
    let conflict = trader.post_order(body).await;
    assert_eq!(conflict.status, 422);
    assert_eq!(conflict.body["message"], "client_order_id must be unique");

    let by_client = trader
        .get("/v2/orders:by_client_order_id?client_order_id=my-order-1")
        .await;
    assert_eq!(by_client.status, 200);
    assert_eq!(by_client.body["id"], first.body["id"]);
    assert_eq!(
        trader
            .get("/v2/orders:by_client_order_id?client_order_id=nope")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn lost_placement_responses_are_resolved_by_evidence_with_one_venue_order() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    // Every placement is created at the venue and its answer lost; reads
    // of fresh orders are stale half the time.
    stack
        .put_exchange_faults(
            json!({"response_lost": 1.0, "response_lost_delay_ms": 20, "stale_read": 0.5}),
        )
        .await;
    let reply = trader.post_order(limit_buy("AAPL", "1", "100.00")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    let order = wait_for(&trader, &id, Duration::from_secs(20), |o| {
        o["status"] == "new"
    })
    .await;
    assert_eq!(order["status"], "new");
    let venue_id = venue_client_order_id(&stack, &id).await;
    let truth = stack.exchange_truth().await;
    assert_eq!(
        venue_orders_for(&truth, &venue_id),
        1,
        "I1: one venue order"
    );
    // Resolved by evidence: either the lookup after the unknown outcome, or
    // the venue's own report on the stream, which can arrive first.
    let states = event_states(&stack, &id).await;
    assert!(
        states.contains(&("place".into(), "unknown".into()))
            || states.contains(&("working".into(), "succeeded".into())),
        "{states:?}"
    );
}

#[tokio::test]
async fn lost_hold_responses_answer_pending_new_and_the_completer_finishes() {
    let stack = TestStack::spawn_with(|s| s.lifecycle.submit_deadline_ms = 300).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    stack
        .put_balances_faults(json!({"response_lost": 1.0, "response_lost_delay_ms": 10}))
        .await;
    let reply = trader.post_order(limit_buy("AAPL", "2", "100.00")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "pending_new");
    let id = reply.body["id"].as_str().unwrap().to_string();
    stack.put_balances_faults(json!({})).await;
    wait_for(&trader, &id, Duration::from_secs(20), |o| {
        o["status"] == "new"
    })
    .await;
    // One hold however many times it was asked for: the key replays it.
    let holds: Value = stack
        .get_json(stack.balances_url(&format!("/v1/holds?order_id={id}")))
        .await;
    assert_eq!(holds["holds"].as_array().unwrap().len(), 1, "{holds}");
    assert_eq!(held(&stack.balances_of(&trader).await, "USD"), dec("200"));
}

#[tokio::test]
async fn a_venue_rejection_releases_the_hold() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    stack.put_exchange_faults(json!({"reject": 1.0})).await;
    let reply = trader.post_order(limit_buy("AAPL", "1", "100.00")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    let order = wait_for(&trader, &id, Duration::from_secs(10), |o| {
        o["status"] == "rejected"
    })
    .await;
    assert!(order["failed_at"].is_string());
    // The answer does not wait for the release: the completer does it.
    wait_step(&stack, &id, "closed").await;
    assert_eq!(held(&stack.balances_of(&trader).await, "USD"), dec("0"));
}

#[tokio::test]
async fn listing_filters_by_status_symbol_and_direction() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    for symbol in ["AAPL", "MSFT", "AAPL"] {
        assert_eq!(
            trader
                .post_order(limit_buy(symbol, "1", "10.00"))
                .await
                .status,
            200
        );
    }
    let all = trader.get("/v2/orders?status=all&direction=asc").await.body;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["symbol"], "AAPL");
    assert_eq!(all[1]["symbol"], "MSFT");
    let aapl = trader.get("/v2/orders?symbols=AAPL").await.body;
    assert_eq!(aapl.as_array().unwrap().len(), 2);
    let limited = trader.get("/v2/orders?limit=1").await.body;
    assert_eq!(limited.as_array().unwrap().len(), 1);
    assert_eq!(trader.get("/v2/orders?status=closed").await.body, json!([]));
    assert_eq!(trader.get("/v2/orders?limit=0").await.status, 422);
    assert_eq!(trader.get("/v2/orders?status=bogus").await.status, 422);
}

#[tokio::test]
async fn account_and_positions_come_from_the_balances_service() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "5000"), ("AAPL", "7")]).await;
    let account = trader.get("/v2/account").await;
    assert_eq!(account.status, 200, "{}", account.body);
    assert_eq!(account.body["cash"], "5000");
    assert_eq!(account.body["buying_power"], "5000");
    assert_eq!(account.body["status"], "ACTIVE");
    let positions = trader.get("/v2/positions").await;
    assert_eq!(positions.body.as_array().unwrap().len(), 1);
    assert_eq!(positions.body[0]["symbol"], "AAPL");
    assert_eq!(positions.body[0]["qty"], "7");
    assert_eq!(trader.get("/v2/positions/aapl").await.body["qty"], "7");
    let missing = trader.get("/v2/positions/TSLA").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["code"], 40410000);
}

#[tokio::test]
async fn under_mixed_venue_and_ledger_faults_every_order_ends_once_placed_and_holds_add_up() {
    let stack = TestStack::spawn_with(|s| s.lifecycle.submit_deadline_ms = 500).await;
    let trader = stack.trader(&[("USD", "10000000")]).await;
    stack
        .put_exchange_faults(json!({
            "response_lost": 0.2, "response_lost_delay_ms": 20, "reject": 0.05,
            "reject_response_lost": 0.05, "rate_limited": 0.1, "retry_after_secs": 0,
            "unavailable": 0.1, "stale_read": 0.3, "stale_read_window_ms": 200
        }))
        .await;
    stack
        .put_balances_faults(json!({
            "response_lost": 0.2, "response_lost_delay_ms": 10, "error_5xx": 0.1, "http_429": 0.1
        }))
        .await;
    const ORDERS: usize = 40;
    let replies = futures_util::future::join_all((0..ORDERS).map(|i| {
        let trader = trader.clone();
        async move {
            let mut body = limit_buy(["AAPL", "MSFT", "AMZN"][i % 3], "1", "50.00");
            body["client_order_id"] = json!(format!("mixed-{i}"));
            trader.post_order(body).await
        }
    }))
    .await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // Faults stop; everything must settle into new or rejected.
    stack.put_exchange_faults(json!({})).await;
    stack.put_balances_faults(json!({})).await;
    let mut new_orders = 0;
    for reply in &replies {
        let id = reply.body["id"].as_str().unwrap();
        let order = wait_for(&trader, id, Duration::from_secs(30), |o| {
            o["status"] == "new" || o["status"] == "rejected"
        })
        .await;
        // ...and a rejected one must also have released its hold.
        if order["status"] == "rejected" {
            wait_step(&stack, id, "closed").await;
        } else {
            new_orders += 1;
        }
        let venue_id = venue_client_order_id(&stack, id).await;
        let truth = stack.exchange_truth().await;
        assert!(venue_orders_for(&truth, &venue_id) <= 1, "I1 for {id}");
        if order["status"] == "new" {
            assert_eq!(
                venue_orders_for(&truth, &venue_id),
                1,
                "a new order is at the venue"
            );
        }
    }
    assert!(
        new_orders > ORDERS / 2,
        "most orders got through: {new_orders}"
    );
    // Exactly the working orders' holds are held: 50 each.
    let held_usd = held(&stack.balances_of(&trader).await, "USD");
    assert_eq!(
        held_usd,
        dec("50") * rust_decimal::Decimal::from(new_orders)
    );
}

async fn wait_step(stack: &TestStack, id: &str, step: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let current: String =
            sqlx::query_scalar("SELECT step FROM orders WHERE order_id = $1::uuid")
                .bind(id)
                .fetch_one(&stack.app.db.pool)
                .await
                .unwrap();
        if current == step {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} stuck at step {current}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_market_buy_of_a_symbol_the_venue_does_not_quote_is_rejected_not_retried() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    // orderd's reference data lists a symbol the venue no longer knows (a
    // copy older than the venue's change): intake takes the order, the
    // venue cannot quote or place it.
    sqlx::query(
        "INSERT INTO assets SELECT 'NOPE', gen_random_uuid(), 'gone', 'Gone Inc.', exchange,
                asset_class, status, tradable, shortable, easy_to_borrow, fractionable,
                marginable, halted, tick_size, sub_dollar_tick_size, tick_threshold, lot_size,
                min_qty, max_qty, synced_at, changed_at
           FROM assets WHERE symbol = 'AAPL'",
    )
    .execute(&stack.app.db.pool)
    .await
    .unwrap();
    stack.app.reconciler.reference.reload().await.unwrap();
    let reply = trader
        .post_order(json!({"symbol": "NOPE", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "rejected");
    let step: String = sqlx::query_scalar("SELECT step FROM orders WHERE order_id = $1::uuid")
        .bind(reply.body["id"].as_str().unwrap())
        .fetch_one(&stack.app.db.pool)
        .await
        .unwrap();
    assert_eq!(step, "closed");
}

#[tokio::test]
async fn an_expired_idempotency_key_is_free_again() {
    let stack = TestStack::spawn_with(|s| s.lifecycle.idempotency_ttl_secs = 1).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let first = trader
        .post_order_with_key(limit_buy("AAPL", "1", "10.00"), Some("short-lived"))
        .await;
    assert_eq!(first.status, 200);
    // Within the window: a different body under the key is refused.
    let early = trader
        .post_order_with_key(limit_buy("AAPL", "2", "10.00"), Some("short-lived"))
        .await;
    assert_eq!(early.status, 422);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let later = trader
        .post_order_with_key(limit_buy("AAPL", "2", "10.00"), Some("short-lived"))
        .await;
    assert_eq!(later.status, 200, "{}", later.body);
    assert!(later.headers.get("idempotent-replayed").is_none());
    assert_ne!(later.body["id"], first.body["id"], "a new order");
    // The gc job removes what expired. (The scheduled gc may get there
    // first, at the top of a minute: check the table, not the run's count.)
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let run = stack.reconcile(orderd::reconcile::Job::Gc).await;
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_keys WHERE idempotency_key = 'short-lived'",
    )
    .fetch_one(&stack.app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        left, 0,
        "expired records collected (this run removed {})",
        run.examined
    );
}

#[tokio::test]
async fn a_client_order_id_of_128_characters_is_taken_and_found_by_it() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let long = format!("desk-7-{}", "x".repeat(121));
    assert_eq!(long.len(), 128);
    let order = json!({"symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit",
        "time_in_force": "day", "limit_price": "1.00", "client_order_id": long});
    let reply = trader.post_order(order.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["client_order_id"], long.as_str());
    let found = trader
        .get(&format!(
            "/v2/orders:by_client_order_id?client_order_id={long}"
        ))
        .await;
    assert_eq!(found.body["id"], reply.body["id"]);
    let mut too_long = order;
    too_long["client_order_id"] = json!(format!("{long}y"));
    let refused = trader.post_order(too_long).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("client_order_id")
    );
}

#[tokio::test]
async fn open_and_at_venue_orders_page_by_key_without_gaps_or_repeats() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let reply = trader
            .post_order(
                json!({"symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit",
                "time_in_force": "gtc", "limit_price": "1.00"}),
            )
            .await;
        assert_eq!(reply.body["status"], "new", "{}", reply.body);
        ids.push(
            reply.body["id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap(),
        );
    }
    let pool = &stack.app.db.pool;
    let account: uuid::Uuid = trader.account_id.parse().unwrap();
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let page = orderd::store::orders::open_orders(pool, account, after, 1)
            .await
            .unwrap();
        let Some(&last) = page.last() else { break };
        after = Some(last);
        seen.extend(page.iter().map(|(_, id)| *id));
    }
    assert_eq!(seen, ids, "oldest first, each once");
    let (mut at_venue, mut after) = (Vec::new(), uuid::Uuid::nil());
    loop {
        let page = orderd::store::orders::at_venue(pool, after, 1)
            .await
            .unwrap();
        let Some(next) = page.next else { break };
        after = next;
        at_venue.extend(page.rows.iter().map(|o| o.order_id));
    }
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(at_venue, expected, "each once, in id order");
    // A cancel-all still reaches every one of them.
    let canceled = trader.cancel_all().await;
    assert_eq!(
        canceled.body.as_array().unwrap().len(),
        3,
        "{}",
        canceled.body
    );
}

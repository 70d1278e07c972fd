//! A COMMIT whose answer is lost: the server committed, the connection
//! died before orderd heard so (a primary that dies mid-commit, a network
//! cut). orderd must treat it as an unknown outcome and resolve it by
//! evidence, never as a failure: the trader's retry finds the order that
//! was created, the engine's next pass finds the step that was recorded,
//! and nothing is placed, filled, held or settled twice.

use std::time::Duration;

use serde_json::json;

use crate::support::{TestStack, Trader};

/// Submits `order` under `key` until the answer is not a server error
/// (a lost commit may be answered 5xx; orderd mostly resolves it itself
/// and answers 200); the last reply and how many tries were answered 5xx.
async fn submit_until_answered(
    trader: &Trader,
    order: serde_json::Value,
    key: &str,
) -> (crate::support::Reply, u32) {
    for tries in 0..50 {
        let reply = trader.post_order_with_key(order.clone(), Some(key)).await;
        if reply.status < 500 {
            return (reply, tries);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} never answered below 500");
}

#[tokio::test(flavor = "multi_thread")]
async fn commits_whose_answer_is_lost_are_resolved_by_evidence_and_nothing_happens_twice() {
    let (stack, proxy) = TestStack::spawn_behind_proxy().await;
    let trader = stack
        .trader(&[("USD", "1000000"), ("AAPL", "1000"), ("MSFT", "1000")])
        .await;
    // One commit in three loses its answer: intakes, holds, placements,
    // fills, settlements, releases and cancels alike.
    proxy.lose_commit_replies(3, 150);
    let mut orders = Vec::new();
    let mut retried = 0;
    for i in 0..24 {
        let (symbol, side) = [("AAPL", "buy"), ("MSFT", "sell"), ("AAPL", "sell")][i % 3];
        let order = if i % 4 == 3 {
            json!({"symbol": symbol, "qty": "3", "side": "buy", "type": "limit",
                   "limit_price": "1.00", "time_in_force": "day",
                   "client_order_id": format!("lost-commit-{i}")})
        } else {
            json!({"symbol": symbol, "qty": "2", "side": side, "type": "market",
                   "time_in_force": "day", "client_order_id": format!("lost-commit-{i}")})
        };
        let (reply, failed_tries) =
            submit_until_answered(&trader, order.clone(), &format!("key-{i}")).await;
        retried += failed_tries;
        assert_eq!(reply.status, 200, "order {i}: {:?}", reply.body);
        orders.push((i, reply.body["id"].as_str().unwrap().to_string(), order));
    }
    // The resting orders are cancelled, with their commits lost too.
    for (i, id, _) in orders.iter().filter(|(i, _, _)| i % 4 == 3) {
        let mut status = 0;
        for _ in 0..50 {
            status = trader.cancel(id).await;
            if status < 500 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(matches!(status, 204 | 422), "cancel of order {i}: {status}");
    }
    // Let the engine's own commits meet the fault for a while.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while proxy.commit_replies_lost() < 150 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lost = proxy.commit_replies_lost();
    assert!(
        lost >= 10,
        "only {lost} commit replies were lost: the fault did not bite"
    );
    println!("{lost} commit replies lost; {retried} submissions answered 5xx and retried");
    proxy.lose_commit_replies(0, 0);
    stack.wait_all_terminal(Duration::from_secs(90)).await;

    // Each client order id is one order, under the id its first answer gave.
    for (i, id, order) in &orders {
        let rows: Vec<(uuid::Uuid,)> =
            sqlx::query_as("SELECT order_id FROM orders WHERE client_order_id = $1")
                .bind(format!("lost-commit-{i}"))
                .fetch_all(&stack.app.db.pool)
                .await
                .unwrap();
        assert_eq!(rows.len(), 1, "lost-commit-{i}: {rows:?}");
        assert_eq!(rows[0].0.to_string(), *id, "lost-commit-{i}");
        // A replay under its key answers the same order.
        let replay = trader
            .post_order_with_key(order.clone(), Some(&format!("key-{i}")))
            .await;
        assert_eq!(replay.status, 200, "{i}: {replay:?}");
        assert_eq!(replay.body["id"], id.as_str(), "{i}: {replay:?}");
    }
    // One venue order per order, fills applied and settled once, holds
    // released, the ledger conserved: the checker's invariants.
    let report = stack.assert_invariants().await;
    let filled = orders.iter().filter(|(i, _, _)| i % 4 != 3).count();
    assert!(
        report.fills >= filled,
        "{} fills for {filled} market orders",
        report.fills
    );
}

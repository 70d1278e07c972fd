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

/// A claim of an order's lease whose answer is lost: the claim committed,
/// under a token the claimer never heard of. A lease the instance holds is
/// never free to itself, so unless the claim is given back by evidence,
/// every retry of that order (the trader's under the same key included,
/// answered *in progress*) is shut out for the whole lease. Each claim
/// here goes through its own connection to the proxy, so the lost answer
/// is the claim's and no other task's.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_whose_answer_is_lost_is_given_back_and_the_next_claim_takes_the_order() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000")]).await;
    let reply = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit",
                           "limit_price": "1.00", "time_in_force": "day"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let order_id: uuid::Uuid = reply.body["id"].as_str().unwrap().parse().unwrap();
    let proxy = crate::support::DbProxy::start(&stack.app.db.options).await;
    let through = proxy.options(&stack.app.db.options);
    let claimer = uuid::Uuid::now_v7();
    let claim = || async {
        let conn = one_connection(&through).await;
        let claimed =
            orderd::store::recovery::claim(&conn, order_id, claimer, 60_000, 60_000).await;
        conn.close().await;
        claimed.map(|order| order.map(|o| o.lease_token))
    };

    proxy.lose_commit_replies(1, 1);
    let lost = claim().await;
    assert!(lost.is_err(), "the claim's answer was to be lost: {lost:?}");
    assert_eq!(proxy.commit_replies_lost(), 1);
    let (owner,): (Option<uuid::Uuid>,) =
        sqlx::query_as("SELECT lease_owner FROM orders WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&stack.app.db.pool)
            .await
            .unwrap();
    assert_eq!(owner, None, "the lost claim was not given back");

    let taken = claim().await.expect("a claim with its answer");
    assert!(
        matches!(taken, Some(Some(token)) if token < 0),
        "the same claimer takes the order at once, under a token of its own: {taken:?}"
    );
}

/// A pool of one connection to `options` (through a [`DbProxy`]: the
/// proxy's lost answer is then this connection's and no other task's).
async fn one_connection(options: &sqlx::postgres::PgConnectOptions) -> sqlx::PgPool {
    sqlx::pool::PoolOptions::<sqlx::Postgres>::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .expect("a connection through the proxy")
}

/// The settler's claim of due fills, with its answer lost: the fills it
/// took are given back by their claim token at once (nothing was sent
/// under it), not left to wait out the claim. The stack is stopped first
/// and its fills made due again, so that no settler but the test's claims
/// them.
#[tokio::test(flavor = "multi_thread")]
async fn a_settlement_claim_whose_answer_is_lost_is_given_back() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let reply = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": "2", "side": "buy", "type": "market",
                           "time_in_force": "day"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    stack.wait_all_terminal(Duration::from_secs(30)).await;
    let (pool, options) = (stack.app.db.pool.clone(), stack.app.db.options.clone());
    stack.app.stop().await.expect("orderd stops");
    let due = sqlx::query(
        "UPDATE fills SET settlement_state = 'pending', next_settle_at = now(),
                settle_lease_until = NULL",
    )
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert!(due > 0, "the market buy filled");

    let proxy = crate::support::DbProxy::start(&options).await;
    let through = proxy.options(&options);
    let claim = || async {
        let conn = one_connection(&through).await;
        let claimed = orderd::store::settlements::claim_settlements(&conn, 100, 60_000).await;
        conn.close().await;
        claimed.map(|work| work.len())
    };
    proxy.lose_commit_replies(1, 1);
    let lost = claim().await;
    assert!(lost.is_err(), "the claim's answer was to be lost: {lost:?}");
    assert_eq!(proxy.commit_replies_lost(), 1);
    let (leased,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM fills WHERE settle_lease_until IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(leased, 0, "the lost settlement claim was not given back");
    assert_eq!(
        claim().await.expect("a claim with its answer"),
        due as usize
    );
}

/// A reconciliation tick claimed with its answer lost: the claim's retry
/// by the same instance gets the tick (before, every error skipped the
/// tick, and nobody ran it); any other instance still does not.
#[tokio::test(flavor = "multi_thread")]
async fn a_tick_claim_whose_answer_is_lost_is_won_by_its_retry_and_by_nobody_else() {
    let stack = TestStack::spawn().await;
    let proxy = crate::support::DbProxy::start(&stack.app.db.options).await;
    let through = proxy.options(&stack.app.db.options);
    // A tick of today: `gc` deletes claims older than a day.
    let tick = chrono::Utc::now();
    let (us, peer) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let claim = |instance| {
        let through = through.clone();
        async move {
            let conn = one_connection(&through).await;
            let claimed =
                orderd::store::reconcile::claim_tick(&conn, "lost-answer-job", tick, instance)
                    .await;
            conn.close().await;
            claimed
        }
    };
    proxy.lose_commit_replies(1, 1);
    let lost = claim(us).await;
    assert!(lost.is_err(), "the claim's answer was to be lost: {lost:?}");
    assert_eq!(proxy.commit_replies_lost(), 1);
    let (holder,): (uuid::Uuid,) =
        sqlx::query_as("SELECT instance_id FROM reconcile_ticks WHERE job = 'lost-answer-job'")
            .fetch_one(&stack.app.db.pool)
            .await
            .expect("the lost claim committed");
    assert_eq!(holder, us);
    assert!(
        claim(us).await.unwrap(),
        "the retry learns the tick is ours"
    );
    assert!(!claim(peer).await.unwrap(), "the tick is ours alone");
    // Once its run has started, not even this instance wins it again (a
    // scheduler that restarts and offers it again does not run it twice).
    orderd::store::reconcile::start_run(
        &stack.app.db.pool,
        "lost-answer-job",
        Some(tick),
        "schedule",
        us,
    )
    .await
    .unwrap();
    assert!(
        !claim(us).await.unwrap(),
        "a tick whose run started is not won again"
    );
}

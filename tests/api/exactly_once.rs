//! Exactly once when retrying cannot help, when fills come late, and when
//! the venue says what it cannot mean: budgets that park, an operator's
//! resume, late fills settled once and reported, quarantined reports.

use std::time::Duration;

use orderd::reconcile::Job;
use serde_json::{Value, json};

use crate::support::{TestStack, Trader};

fn resting_buy(qty: u32) -> Value {
    json!({"symbol": "AAPL", "qty": qty.to_string(), "side": "buy", "type": "limit",
           "time_in_force": "gtc", "limit_price": "1.00"})
}

async fn events(trader: &Trader, id: &str) -> Vec<Value> {
    trader.get(&format!("/v2/orders/{id}/events")).await.body["events"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_step_that_keeps_failing_is_parked_with_its_last_error_and_resumes() {
    let stack = TestStack::spawn_with(|s| {
        s.lifecycle.max_attempts = 3;
        s.lifecycle.submit_deadline_ms = 200;
        s.reconcile.settle_time_ms = 100;
    })
    .await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    // Every hold answers 5xx: its outcome is unknown, again and again.
    stack.put_balances_faults(json!({"error_5xx": 1.0})).await;
    let reply = trader.post_order(resting_buy(2)).await;
    assert_eq!(reply.body["status"], "pending_new", "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    let parked = stack
        .wait_order_row(&id, "parked", |o| {
            o.step == orderd::domain::lifecycle::Step::Parked
        })
        .await;
    assert_eq!(
        parked.parked_step,
        Some(orderd::domain::lifecycle::Step::Reserve)
    );
    assert_eq!(
        parked.step_state,
        orderd::domain::lifecycle::StepState::Unknown,
        "parked, not guessed"
    );
    let last = events(&trader, &id).await.last().cloned().unwrap();
    assert_eq!(last["detail"]["parked_at_step"], "reserve", "{last}");
    assert!(
        last["detail"]["last_error"].as_str().unwrap().contains("5"),
        "{last}"
    );
    // Reconciliation lists it for an operator.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let run = stack.reconcile(Job::UnknownOutcomes).await;
    assert!(
        TestStack::finding_kinds(&run)
            .iter()
            .any(|(k, c)| k == "parked_order" && c == "unresolvable"),
        "{:?}",
        run.findings
    );

    // The ledger recovers; an operator resumes it; it goes on by evidence.
    stack.put_balances_faults(json!({})).await;
    let engine = stack.engine();
    let resumed = orderd::store::recovery::resume(
        &stack.app.db.pool,
        &engine.trade_updates,
        id.parse().unwrap(),
        "alice",
        uuid::Uuid::nil(),
        None,
    )
    .await
    .unwrap();
    assert!(matches!(
        resumed,
        orderd::store::recovery::OperatorAction::Done(_)
    ));
    stack
        .wait_order_row(&id, "working", |o| {
            o.step == orderd::domain::lifecycle::Step::Working
        })
        .await;
    assert!(
        events(&trader, &id)
            .await
            .iter()
            .any(|e| e["detail"]["resumed_by"] == "alice"),
        "the resume is audited"
    );
    // One hold, whatever was re-sent.
    let holds: Value = stack
        .get_json(stack.balances_url(&format!("/v1/holds?order_id={id}")))
        .await;
    assert_eq!(holds["holds"].as_array().unwrap().len(), 1, "{holds}");
    assert!(trader.cancel(&id).await == 204);
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_fill_after_the_release_is_settled_once_counted_and_reported() {
    // A late-fill window far shorter than the venue's fill after a
    // cancel (which comes one fill interval after the cancel's ack): the
    // release certainly happens first, however loaded the machine.
    let stack = TestStack::spawn_with_venue(
        |s| s.lifecycle.late_fill_window_ms = 1,
        |venue| venue.fill_interval_ms = 3_000,
    )
    .await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let reply = trader.post_order(resting_buy(10)).await;
    let id = reply.body["id"].as_str().unwrap().to_string();
    stack
        .put_exchange_faults(json!({"fill_after_cancel": 1.0}))
        .await;
    assert_eq!(trader.cancel(&id).await, 204);
    // Canceled, released, and then the venue's late fill arrives.
    let order = stack
        .wait_order_row(&id, "given a late fill", |o| {
            o.filled_qty > rust_decimal::Decimal::ZERO
        })
        .await;
    assert_eq!(order.status, orderd::domain::lifecycle::Status::Canceled);
    stack.wait_quiet(Duration::from_secs(20)).await;
    let late: bool = sqlx::query_scalar("SELECT bool_and(late) FROM fills WHERE order_id = $1")
        .bind(order.order_id)
        .fetch_one(&stack.app.db.pool)
        .await
        .unwrap();
    assert!(late, "flagged as a late fill");
    let run = stack.reconcile(Job::Balances).await;
    assert!(
        TestStack::finding_kinds(&run)
            .iter()
            .any(|(k, _)| k == "late_fill"),
        "{:?}",
        run.findings
    );
    // Settled exactly once, the books still add up.
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_canceled_orders_hold_waits_for_fills_that_raced_the_cancel() {
    let stack = TestStack::spawn_with(|s| s.lifecycle.late_fill_window_ms = 1500).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let reply = trader.post_order(resting_buy(10)).await;
    let id = reply.body["id"].as_str().unwrap().to_string();
    stack
        .put_exchange_faults(json!({"fill_after_cancel": 1.0}))
        .await;
    assert_eq!(trader.cancel(&id).await, 204);
    let order = stack
        .wait_order_row(&id, "closed", |o| {
            o.step == orderd::domain::lifecycle::Step::Closed
        })
        .await;
    assert!(
        order.filled_qty > rust_decimal::Decimal::ZERO,
        "the late fill came in the window"
    );
    let late: Option<bool> =
        sqlx::query_scalar("SELECT bool_or(late) FROM fills WHERE order_id = $1")
            .bind(order.order_id)
            .fetch_one(&stack.app.db.pool)
            .await
            .unwrap();
    assert_eq!(late, Some(false), "consumed from the hold, not late");
    let timeline = events(&trader, &id).await;
    assert!(
        timeline
            .iter()
            .any(|e| e["detail"]["deferred"] == "the late-fill window"),
        "the release waited for the window"
    );
    stack.assert_invariants().await;
}

#[tokio::test]
async fn a_report_that_cannot_be_the_orders_is_quarantined_not_applied() {
    use orderd::store::executions::{Execution, ExecutionFill, FillSource};
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let reply = trader.post_order(resting_buy(5)).await;
    let id = reply.body["id"].as_str().unwrap().to_string();
    let order = stack.order_row(&id).await;
    let engine = stack.engine();
    // Numbers no real report carries.
    assert!(
        orderd::domain::fills::check_report(rust_decimal::Decimal::MAX, None, 1.into()).is_err()
    );
    // More shares than ordered: refused by the apply function.
    let overfill = Execution {
        venue_client_order_id: order.venue_client_order_id.clone(),
        venue_order_id: order.venue_order_id.clone().unwrap(),
        fill: Some(ExecutionFill {
            exec_id: "bogus-1".into(),
            qty: 50.into(),
            price: 1.into(),
            transact_time: chrono::Utc::now(),
        }),
        venue_status: orderd::domain::lifecycle::VenueStatus::Filled,
        cum_qty: 50.into(),
        source: FillSource::Stream,
        fencing_token: None,
        done_for_day: false,
        order_qty: None,
    };
    let applied = orderd::store::executions::apply_execution(
        &stack.app.db.pool,
        &engine.trade_updates,
        engine.instance_id,
        &overfill,
    )
    .await;
    assert!(
        matches!(
            applied,
            Err(orderd::store::executions::ApplyError::Overfill { .. })
        ),
        "{applied:?}"
    );
    orderd::engine::venue_stream::quarantine_execution(&engine, &overfill, "more than ordered")
        .await;
    assert_eq!(
        stack.order_row(&id).await.filled_qty,
        0.into(),
        "nothing applied"
    );
    let shown = orderd::cli::orders_show(&stack.app.db.pool, &id, true)
        .await
        .unwrap();
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        shown["quarantined_reports"][0]["reason"], "more than ordered",
        "{shown}"
    );
}

//! Reconciliation: one scenario per kind of drift. In each, only the job
//! under test may repair (no venue stream, a completer that never polls);
//! one run finds the drift, repairs it, and its findings say so.

use std::time::Duration;

use orderd::reconcile::Job;
use serde_json::{Value, json};

use crate::support::{TestStack, Trader, reconciliation_only};

async fn order(trader: &Trader, id: &str) -> Value {
    trader.get(&format!("/v2/orders/{id}")).await.body
}

async fn step_of(stack: &TestStack, id: &str) -> String {
    sqlx::query_scalar("SELECT step FROM orders WHERE order_id = $1::uuid")
        .bind(id)
        .fetch_one(&stack.app.db.pool)
        .await
        .unwrap()
}

fn has(kinds: &[(String, String)], kind: &str, class: &str) -> bool {
    kinds.iter().any(|(k, c)| k == kind && c == class)
}

#[tokio::test]
async fn an_order_whose_reports_were_all_lost_is_found_and_filled() {
    let stack = TestStack::spawn_with(reconciliation_only).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let reply = trader
        .post_order(json!({"symbol": "AAPL", "qty": "5", "side": "buy", "type": "market", "time_in_force": "day"}))
        .await;
    assert_eq!(reply.body["status"], "new");
    let id = reply.body["id"].as_str().unwrap().to_string();
    // The venue fills it; orderd hears nothing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(order(&trader, &id).await["filled_qty"], "0");

    let run = stack.reconcile(Job::OpenOrders).await;
    let kinds = TestStack::finding_kinds(&run);
    assert!(has(&kinds, "missed_fills", "resolvable"), "{kinds:?}");
    assert!(
        run.findings.iter().all(|f| f.action_ok != Some(false)),
        "{:?}",
        run.findings
    );
    let now = order(&trader, &id).await;
    assert_eq!(now["status"], "filled");
    assert_eq!(now["filled_qty"], "5");

    // The run is on record for operators.
    let runs: Value = stack
        .http
        .get(format!(
            "http://{}/admin/reconciliations?job=open_orders",
            stack.app.addr
        ))
        .bearer_auth("orderd-admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = runs[0]["run_id"].as_i64().unwrap();
    assert_eq!(run_id, run.run_id);
    let detail: Value = stack
        .http
        .get(format!(
            "http://{}/admin/reconciliations/{run_id}",
            stack.app.addr
        ))
        .bearer_auth("orderd-admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["findings"][0]["kind"], "missed_fills");
    assert_eq!(detail["findings"][0]["order_id"], id.as_str());
    let anonymous = stack
        .http
        .get(format!("http://{}/admin/reconciliations", stack.app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_placement_whose_answer_was_lost_is_resolved_by_a_run() {
    let stack = TestStack::spawn_with(|s| {
        reconciliation_only(s);
        s.lifecycle.submit_deadline_ms = 200;
    })
    .await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    // Created at the venue, answer lost; lookups miss it (stale reads).
    stack
        .put_exchange_faults(json!({"response_lost": 1.0, "response_lost_delay_ms": 10,
                                    "stale_read": 1.0, "stale_read_window_ms": 60000}))
        .await;
    let reply = trader
        .post_order(
            json!({"symbol": "MSFT", "qty": "1", "side": "buy", "type": "limit",
                           "time_in_force": "gtc", "limit_price": "1.00"}),
        )
        .await;
    assert_eq!(reply.body["status"], "pending_new", "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    stack.put_exchange_faults(json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let run = stack.reconcile(Job::UnknownOutcomes).await;
    let kinds = TestStack::finding_kinds(&run);
    assert!(has(&kinds, "unknown_outcome", "resolvable"), "{kinds:?}");
    assert_eq!(order(&trader, &id).await["status"], "new");
    let truth = stack.exchange_truth().await;
    let venue_id: String =
        sqlx::query_scalar("SELECT venue_client_order_id FROM orders WHERE order_id = $1::uuid")
            .bind(&id)
            .fetch_one(&stack.app.db.pool)
            .await
            .unwrap();
    let placed = truth["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["client_order_id"] == venue_id.as_str())
        .count();
    assert_eq!(placed, 1, "one venue order");
}

#[tokio::test]
async fn a_placement_the_venue_never_received_is_closed_rejected_after_the_grace_window() {
    let stack = TestStack::spawn_with(|s| {
        reconciliation_only(s);
        s.lifecycle.submit_deadline_ms = 200;
        s.lifecycle.placement_grace_ms = 300;
        // No send can reach the venue once 600 ms have passed since it.
        s.exchange.request_timeout_ms = 500;
        s.exchange.placement_window_ms = 600;
        s.exchange.clock_skew_ms = 0;
        s.lifecycle.lease_ms = 2000;
    })
    .await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    // 503s: nothing is created, but to orderd the outcome is unknown.
    stack.put_exchange_faults(json!({"unavailable": 1.0})).await;
    let reply = trader
        .post_order(
            json!({"symbol": "MSFT", "qty": "2", "side": "buy", "type": "limit",
                           "time_in_force": "gtc", "limit_price": "10.00"}),
        )
        .await;
    let id = reply.body["id"].as_str().unwrap().to_string();
    assert_eq!(reply.body["status"], "pending_new");
    tokio::time::sleep(Duration::from_millis(400)).await;
    stack.put_exchange_faults(json!({})).await;
    // Past the grace window it is looked up, never sent again; once the
    // last send's receive window has passed, not finding it is proof.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let run = stack.reconcile(Job::UnknownOutcomes).await;
    assert!(
        has(
            &TestStack::finding_kinds(&run),
            "unknown_outcome",
            "resolvable"
        ),
        "{:?}",
        run.findings
    );
    let now = order(&trader, &id).await;
    assert_eq!(now["status"], "rejected", "{now}");
    assert_eq!(step_of(&stack, &id).await, "closed", "hold released");
    let balances = stack.balances_of(&trader).await;
    assert_eq!(balances["balances"]["USD"]["held"], "0", "{balances}");
    assert_eq!(
        stack.exchange_truth().await["orders"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn a_hold_created_but_not_recorded_is_picked_up_once() {
    let stack = TestStack::spawn_with(|s| {
        reconciliation_only(s);
        s.lifecycle.submit_deadline_ms = 100;
    })
    .await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    // The ledger commits each hold but its answer is lost.
    stack
        .put_balances_faults(json!({"response_lost": 1.0, "response_lost_delay_ms": 10}))
        .await;
    let reply = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": "3", "side": "buy", "type": "limit",
                           "time_in_force": "gtc", "limit_price": "2.00"}),
        )
        .await;
    let id = reply.body["id"].as_str().unwrap().to_string();
    assert_eq!(reply.body["status"], "pending_new");
    stack.put_balances_faults(json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let run = stack.reconcile(Job::UnknownOutcomes).await;
    assert!(
        has(
            &TestStack::finding_kinds(&run),
            "unknown_outcome",
            "resolvable"
        ),
        "{:?}",
        run.findings
    );
    assert_eq!(order(&trader, &id).await["status"], "new");
    let holds: Value = stack
        .get_json(stack.balances_url(&format!("/v1/holds?order_id={id}")))
        .await;
    assert_eq!(holds["holds"].as_array().unwrap().len(), 1, "{holds}");
}

#[tokio::test]
async fn a_release_whose_answer_was_lost_is_completed() {
    let stack = TestStack::spawn_with(|s| {
        reconciliation_only(s);
        s.exchange.stream_enabled = true;
        s.lifecycle.submit_deadline_ms = 300;
    })
    .await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let reply = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": "3", "side": "buy", "type": "limit",
                           "time_in_force": "gtc", "limit_price": "2.00"}),
        )
        .await;
    let id = reply.body["id"].as_str().unwrap().to_string();
    stack
        .put_balances_faults(json!({"response_lost": 1.0, "response_lost_delay_ms": 10}))
        .await;
    let deleted = trader.cancel(&id).await;
    assert_eq!(deleted, 204);
    // Canceled at the venue; the release is sent and its answer lost.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while step_of(&stack, &id).await != "release" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached release"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.put_balances_faults(json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let run = stack.reconcile(Job::UnknownOutcomes).await;
    assert!(
        run.findings
            .iter()
            .any(|f| f.order_id.map(|o| o.to_string()) == Some(id.clone())),
        "{:?}",
        run.findings
    );
    assert_eq!(step_of(&stack, &id).await, "closed");
    let balances = stack.balances_of(&trader).await;
    assert_eq!(balances["balances"]["USD"]["held"], "0", "{balances}");
    // The balances job then finds nothing left held.
    let run = stack.reconcile(Job::Balances).await;
    assert!(
        !TestStack::finding_kinds(&run)
            .iter()
            .any(|(k, _)| k == "hold_not_released"),
        "{:?}",
        run.findings
    );
}

#[tokio::test]
async fn an_orphan_venue_order_is_flagged_and_canceled() {
    let stack = TestStack::spawn_with(reconciliation_only).await;
    let orphan_id = format!("od-{}", uuid::Uuid::new_v4().simple());
    let placed: Value = stack
        .http
        .post(stack.exchange_url("/v1/orders"))
        .bearer_auth("sim-venue-key")
        .json(
            &json!({"client_order_id": orphan_id, "symbol": "AAPL", "side": "buy", "type": "limit",
                      "time_in_force": "gtc", "qty": "1", "limit_price": "1.00"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let venue_id = placed["id"].as_str().unwrap().to_string();

    let run = stack.reconcile(Job::Orphans).await;
    let kinds = TestStack::finding_kinds(&run);
    assert!(has(&kinds, "orphan_venue_order", "resolvable"), "{kinds:?}");
    assert_eq!(run.findings[0].action_ok, Some(true));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let venue: Value = stack
            .http
            .get(stack.exchange_url(&format!("/v1/orders/{venue_id}")))
            .bearer_auth("sim-venue-key")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if venue["status"] == "canceled" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "orphan not canceled: {venue}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Orders that are not ours are left alone.
    let run = stack.reconcile(Job::Orphans).await;
    assert!(run.findings.is_empty(), "{:?}", run.findings);
}

#[tokio::test]
async fn a_tick_runs_once_across_instances() {
    let db = crate::support::TestDatabase::fresh().await;
    let mut settings = crate::support::test_settings();
    for schedule in [
        &mut settings.reconcile.open_orders,
        &mut settings.reconcile.unknown_outcomes,
        &mut settings.reconcile.balances,
        &mut settings.reconcile.orphans,
        &mut settings.reconcile.gc,
    ] {
        *schedule = "* * * * * *".to_string();
    }
    // Venues are irrelevant here: no orders exist.
    settings.exchange.stream_enabled = false;
    let apps = futures_util::future::join_all(
        (0..3).map(|_| crate::support::TestApp::spawn_on(settings.clone(), &db)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let duplicated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT job, scheduled_for FROM reconciliation_runs
                                 WHERE scheduled_for IS NOT NULL
                                 GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(duplicated, 0, "a tick ran twice");
    let ticks: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT scheduled_for) FROM reconciliation_runs WHERE job = 'gc'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(ticks >= 2, "ticks ran: {ticks}");
    let instances: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT instance_id) FROM reconciliation_runs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(instances >= 1);
    for app in apps {
        app.stop().await.expect("stop");
    }
}

#[tokio::test]
async fn a_job_runs_once_at_a_time_a_run_by_hand_waits_for_the_one_going_on() {
    let stack = TestStack::spawn().await;
    let pool = &stack.app.db.pool;
    // Another instance (alive: it is not among the dead) is running gc.
    let other = uuid::Uuid::new_v4();
    let token = orderd::store::reconcile::acquire_lease(pool, "reconcile:gc", other, 30_000, 3_000)
        .await
        .unwrap()
        .expect("the lease was free");
    let before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reconciliation_runs WHERE job = 'gc'")
            .fetch_one(pool)
            .await
            .unwrap();
    let reconciler = stack.app.reconciler.clone();
    let waiting = tokio::spawn(async move { reconciler.run_job(Job::Gc).await });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !waiting.is_finished(),
        "ran beside the other instance's run"
    );
    let during: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reconciliation_runs WHERE job = 'gc'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        during, before,
        "nothing recorded while the other run goes on"
    );
    // The other run ends: ours goes ahead, holding the job meanwhile.
    orderd::store::reconcile::release_lease(pool, "reconcile:gc", other, token)
        .await
        .unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("ran once the job was free")
        .unwrap()
        .expect("a run");
    assert_eq!(summary.job, Job::Gc);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    // And gave the job back: the other instance can take it again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while orderd::store::reconcile::acquire_lease(pool, "reconcile:gc", other, 30_000, 3_000)
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

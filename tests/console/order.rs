//! The order page: the timeline of an order whose hold's outcome was
//! unknown (its answer lost, as a crash right after the call would leave
//! it) and resolved by re-sending under its key; the venue's and the
//! ledger's view on demand; resuming a parked order with a confirmation,
//! audited under the operator's name.

use serde_json::json;

use crate::browser::Browser;
use crate::support::TestStack;
use crate::{ADMIN, parked_order, parks_fast, resting_buy};

#[tokio::test]
async fn an_order_whose_outcome_was_unknown_shows_its_recovery_timeline() {
    let stack = TestStack::spawn_with(|s| s.lifecycle.submit_deadline_ms = 300).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    // The ledger makes the hold and its answer is lost.
    stack
        .put_balances_faults(json!({"response_lost": 1.0, "response_lost_delay_ms": 10}))
        .await;
    let reply = trader.post_order(resting_buy("AAPL", 2)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    let request_id = reply.headers["x-request-id"].to_str().unwrap().to_string();
    stack.put_balances_faults(json!({})).await;
    let order = stack
        .wait_order_row(&id, "working", |o| {
            o.step == orderd::domain::lifecycle::Step::Working
        })
        .await;

    let browser = Browser::start(stack.app.addr).await;
    browser.login(ADMIN, "alice").await;
    browser.goto(&format!("/console/orders/{id}")).await;
    let timeline = browser.wait_text("#timeline", "outcome unknown").await;
    // Each recorded step with its call, key and outcome.
    for wanted in [
        "reserve",
        "ledger POST /v1/holds",
        &format!("hold-{id}"),
        "intent recorded",
        "unknown",
        "succeeded",
        "venue POST /v1/orders",
        order.venue_client_order_id.as_str(),
        // The request that submitted it, on its accept.
        &request_id,
    ] {
        assert!(timeline.contains(wanted), "{wanted:?} not in {timeline}");
    }
    let requests = browser.text("#requests").await;
    assert!(
        requests.contains(&format!("request_id={request_id}")),
        "{requests}"
    );
    assert!(browser.text("#recovery").await.contains("working"));
    browser.screenshot("order-timeline").await;

    // The venue's and the ledger's view, asked for now.
    browser.click("a[href$='outside=1#outside']").await;
    let outside = browser.wait_text("#outside", "venue status").await;
    assert!(outside.contains("new"), "{outside}");
    assert!(outside.contains("hold"), "{outside}");
    browser.screenshot("order-outside-view").await;
    browser.close().await;
}

#[tokio::test]
async fn a_parked_order_is_resumed_from_its_page_with_a_confirmation_and_an_audit() {
    let stack = TestStack::spawn_with(parks_fast).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let parked = parked_order(&stack, &trader).await;

    let browser = Browser::start(stack.app.addr).await;
    browser.login(ADMIN, "alice").await;
    browser.goto(&format!("/console/orders/{parked}")).await;
    browser.wait_text("[role=alert]", "Parked at reserve").await;
    browser.click("a[href$='/resume']").await;
    browser.wait_text("h1", "Resume order").await;
    browser
        .wait_text("main", "recorded on the order's timeline as done by alice")
        .await;
    browser.screenshot("order-resume-confirm").await;
    browser.click("#confirm").await;
    browser.wait_text("[role=status]", "Resumed by alice").await;
    stack
        .wait_order_row(&parked, "working again", |o| {
            o.step == orderd::domain::lifecycle::Step::Working
        })
        .await;
    browser.goto(&format!("/console/orders/{parked}")).await;
    let timeline = browser.wait_text("#timeline", "resumed_by: alice").await;
    // The console request that resumed it, named on its audit event.
    let resumed_by: (String,) = sqlx::query_as(
        "SELECT detail->>'request_id' FROM order_events
          WHERE order_id = $1::uuid AND detail ? 'resumed_by'",
    )
    .bind(&parked)
    .fetch_one(&stack.app.db.pool)
    .await
    .unwrap();
    assert!(
        timeline.contains(&resumed_by.0),
        "{resumed_by:?} not in {timeline}"
    );
    assert!(browser.text("#requests").await.contains(&resumed_by.0));
    browser.screenshot("order-resumed").await;

    // And a cancel, confirmed the same way, by the operator's name.
    browser.click("a[href$='/cancel']").await;
    browser.wait_text("h1", "Cancel order").await;
    browser.click("#confirm").await;
    browser
        .wait_text("[role=status]", "Cancel requested by alice")
        .await;
    stack
        .wait_order_row(&parked, "canceled", |o| {
            o.status == orderd::domain::lifecycle::Status::Canceled
        })
        .await;
    browser.goto(&format!("/console/orders/{parked}")).await;
    browser.wait_text("#timeline", "by_operator: alice").await;
    browser.close().await;
}

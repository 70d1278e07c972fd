//! Live updates: an order submitted while the blotter is open appears,
//! and its status changes, without a reload.

use crate::browser::Browser;
use crate::support::TestStack;
use crate::{ADMIN, market_buy};

#[tokio::test]
async fn an_order_submitted_while_the_blotter_is_open_appears_and_changes_without_a_reload() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let browser = Browser::start(stack.app.addr).await;
    browser.login(ADMIN, "alice").await;
    browser.wait_text("#live-status", "Live updates: on").await;
    // A mark on this page: a reload would wipe it.
    browser
        .client
        .execute("window.consoleTestMark = 42; return true;", vec![])
        .await
        .unwrap();
    let reply = trader.post_order(market_buy("AAPL", 1)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap();
    browser.find(&format!("#order-{id}")).await;
    browser.wait_text(&format!("#order-{id}"), "filled").await;
    browser.wait_text("#live-status", "last change").await;
    let mark = browser
        .client
        .execute("return window.consoleTestMark;", vec![])
        .await
        .unwrap();
    assert_eq!(mark, serde_json::json!(42), "the page was not reloaded");
    browser.screenshot("live-update").await;
    browser.close().await;
}

#[tokio::test]
async fn an_open_live_stream_does_not_hold_up_a_shutdown() {
    let stack = TestStack::spawn().await;
    let browser = Browser::start(stack.app.addr).await;
    browser.login(ADMIN, "alice").await;
    browser.wait_text("#live-status", "Live updates: on").await;
    browser.goto("/console/health").await;
    browser.wait_text("#orders-per-s .value", ".").await;
    // Both live streams are open in this browser's connections now.
    browser.goto("/console/orders").await;
    browser.wait_text("#live-status", "Live updates: on").await;
    browser.screenshot("live-before-shutdown").await;
    let TestStack { app, .. } = stack;
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), app.stop()).await;
    assert!(
        stopped.is_ok(),
        "orderd waited for the console's live stream to end"
    );
    browser.close().await;
}

#[tokio::test]
async fn an_order_parking_shows_on_the_open_blotter_without_a_reload() {
    // Parking changes the step, not the status: no trade update announces
    // it; the hub's look at the orders needing attention does.
    let stack = TestStack::spawn_with(crate::parks_fast).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let browser = Browser::start(stack.app.addr).await;
    browser.login(ADMIN, "alice").await;
    browser.wait_text("#live-status", "Live updates: on").await;
    assert_eq!(browser.text("#count-parked").await, "0");
    browser
        .client
        .execute("window.consoleTestMark = 7; return true;", vec![])
        .await
        .unwrap();
    let parked = crate::parked_order(&stack, &trader).await;
    browser
        .wait_text(&format!("#order-{parked} td.why"), "Parked at reserve")
        .await;
    browser.wait_text("#count-parked", "1").await;
    let mark = browser
        .client
        .execute("return window.consoleTestMark;", vec![])
        .await
        .unwrap();
    assert_eq!(mark, serde_json::json!(7), "the page was not reloaded");
    browser.screenshot("live-parked").await;
    browser.close().await;
}

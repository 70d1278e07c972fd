//! Health: the venue stream's lease, this instance's heartbeat, the
//! queues, and the live charts moving.

use crate::browser::Browser;
use crate::support::TestStack;
use crate::{ADMIN, market_buy};

#[tokio::test]
async fn the_health_page_shows_the_stream_the_instances_and_live_numbers() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let browser = Browser::start(stack.app.addr).await;
    browser.login(ADMIN, "alice").await;
    browser.goto("/console/health").await;
    browser.wait_text("#instances", "(this one)").await;
    browser.wait_text("#instances", "alive").await;
    browser.wait_text("#queues", "settler: pending").await;
    for _ in 0..5 {
        let reply = trader.post_order(market_buy("AAPL", 1)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // The stream's lease is taken within a few seconds of the start.
    browser.goto("/console/health").await;
    browser.wait_text("#stream", "fencing token").await;
    // The charts get numbers pushed every second.
    browser.wait_text("#unknown .value", "0").await;
    let rate = browser.text("#orders-per-s .value").await;
    assert!(rate.parse::<f64>().is_ok(), "{rate:?}");
    browser.screenshot("health").await;
    browser.close().await;
}

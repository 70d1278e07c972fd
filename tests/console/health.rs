//! Health: the venue stream's lease, this instance's heartbeat, the
//! queues, and the live charts moving.

use std::time::Duration;

use crate::browser::Browser;
use crate::support::{TestApp, TestStack, test_settings};
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

/// The holder's `/metrics` (the test process's recorder).
async fn metrics(stack: &TestStack) -> String {
    let response = stack.http.get(stack.app.url("/metrics")).send().await;
    response.unwrap().text().await.unwrap()
}

/// The first number in `text` (`0.012 s ago` → 0.012).
fn number(text: &str) -> Option<f64> {
    text.split_whitespace().find_map(|word| word.parse().ok())
}

/// Reloads the health page until `selector` shows a number `done` accepts.
async fn reading(browser: &Browser, selector: &str, done: impl Fn(f64) -> bool) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        browser.goto("/console/health").await;
        let text = browser.text(selector).await;
        if let Some(value) = number(&text).filter(|v| done(*v)) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{selector}: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn any_instance_shows_the_stream_holders_lag_and_it_moves_with_the_reports() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    // A second instance that never reads the stream: its page shows the
    // holder's numbers, from the lease's row.
    let mut settings = test_settings();
    settings.exchange.url = stack.exchange_url("");
    settings.balances.url = stack.balances_url("");
    settings.exchange.stream_enabled = false;
    let other = TestApp::spawn_on(settings, &stack.app.db).await;
    let browser = Browser::start(other.addr).await;
    browser.login(ADMIN, "alice").await;

    // Reports sent before the holder listens are caught up over REST,
    // not applied from the stream: wait until it listens.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !metrics(&stack)
        .await
        .contains("orderd_venue_stream_connected 1")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = trader.post_order(market_buy("AAPL", 1)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Its reports (new, fill) applied: a lag, and a last report.
    let lag = reading(&browser, "#stream-lag", |lag| lag >= 0.0).await;
    assert!(lag.is_finite(), "{lag}");
    let quiet = reading(&browser, "#stream-last-report", |_| true).await;
    // Nothing more arrives: the last report only gets older...
    let older = reading(&browser, "#stream-last-report", |age| age > quiet + 1.0).await;
    // ...until the next one.
    let reply = trader.post_order(market_buy("MSFT", 1)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reading(&browser, "#stream-last-report", |age| age < older).await;
    assert!(browser.text("#stream").await.contains("lease holder"));
    browser.screenshot("health-stream-lag").await;
    browser.close().await;

    // The holder's own page shows its gauge too, as /metrics has it.
    let metrics = metrics(&stack).await;
    for name in [
        "orderd_venue_stream_lag_seconds",
        "orderd_venue_stream_last_report_age_seconds",
    ] {
        let value = metrics
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not in /metrics"));
        assert!(value.parse::<f64>().unwrap() >= 0.0, "{name} {value}");
    }
    let holder = Browser::start(stack.app.addr).await;
    holder.login(ADMIN, "alice").await;
    holder.goto("/console/health").await;
    holder.wait_text("#stream", "lag (here)").await;
    holder.close().await;
    other.stop().await.unwrap();
}

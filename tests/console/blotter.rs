//! The blotter: filters narrow it, and an order that needs an operator
//! says why in words.

use std::time::Duration;

use crate::browser::Browser;
use crate::support::TestStack;
use crate::{ADMIN, market_buy, parked_order, parks_fast, resting_buy};

#[tokio::test]
async fn the_blotter_filters_and_says_why_an_order_needs_attention() {
    let stack = TestStack::spawn_with(parks_fast).await;
    let trader = stack.trader(&[("USD", "1000000")]).await;
    let other = stack.trader(&[("USD", "1000000")]).await;
    let mut filled = Vec::new();
    for _ in 0..2 {
        let reply = trader.post_order(market_buy("AAPL", 1)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        filled.push(reply.body["id"].as_str().unwrap().to_string());
    }
    let resting = other.post_order(resting_buy("MSFT", 3)).await;
    assert_eq!(resting.status, 200, "{}", resting.body);
    let resting = resting.body["id"].as_str().unwrap().to_string();
    let parked = parked_order(&stack, &trader).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let browser = Browser::start(stack.app.addr).await;
    browser.login(ADMIN, "alice").await;
    browser.wait_text("h1", "Blotter").await;
    // Every order, newest first; the parked one says why.
    for id in filled.iter().chain([&resting, &parked]) {
        browser.find(&format!("#order-{id}")).await;
    }
    let why = browser.text(&format!("#order-{parked} td.why")).await;
    assert!(why.contains("Parked at reserve"), "{why}");
    assert!(why.contains("Last error"), "{why}");
    assert!(why.contains("Resume or cancel"), "{why}");
    browser.wait_text(".summary", "1\nparked").await;
    browser.screenshot("blotter").await;
    // Keyboard first: the first Tab reaches the skip link, which moves
    // the focus to the content.
    let body = browser.find("body").await;
    body.send_keys(&fantoccini::key::Key::Tab.to_string())
        .await
        .unwrap();
    let focused = browser.client.active_element().await.unwrap();
    assert_eq!(focused.text().await.unwrap(), "Skip to content");
    focused
        .send_keys(&fantoccini::key::Key::Enter.to_string())
        .await
        .unwrap();
    let focused = browser.client.active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("main"));

    // By symbol: only MSFT.
    browser.fill("#symbol", "msft").await;
    browser.click("form.filters button[type=submit]").await;
    browser.wait_text("#blotter caption", "1 orders").await;
    browser.find(&format!("#order-{resting}")).await;
    assert_eq!(browser.count("#orders tr").await, 1);

    // Needs attention: only the parked order.
    browser.goto("/console/orders").await;
    browser.select("#attention", "any").await;
    browser.click("form.filters button[type=submit]").await;
    browser.wait_text("#blotter caption", "1 orders").await;
    browser.find(&format!("#order-{parked}")).await;
    browser.screenshot("blotter-needs-attention").await;

    // By account and status: the other trader's resting order only.
    let account = orderd::store::accounts::find_account(&stack.app.db.pool, &other.account_id)
        .await
        .unwrap()
        .unwrap();
    browser
        .goto(&format!("/console/orders?account={account}&status=new"))
        .await;
    browser.wait_text("#blotter caption", "1 orders").await;
    browser.find(&format!("#order-{resting}")).await;
    // A filter it cannot read is said so, not a blank page.
    browser.goto("/console/orders?status=nonsense").await;
    browser
        .wait_text("[role=alert]", "no status \"nonsense\"")
        .await;
    browser.close().await;
}

#[tokio::test]
async fn the_blotter_pages_by_keyset() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000000")]).await;
    let mut ids = Vec::new();
    let total = orderd::console::blotter::PAGE_ROWS as usize + 3;
    for _ in 0..total {
        let reply = trader.post_order(resting_buy("AAPL", 1)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        ids.push(reply.body["id"].as_str().unwrap().to_string());
    }
    let browser = Browser::start(stack.app.addr).await;
    browser.login(ADMIN, "alice").await;
    browser.wait_text("#blotter caption", "50 orders").await;
    // Newest first: the last three are on the first page, the first three
    // on the second.
    browser.find(&format!("#order-{}", ids[total - 1])).await;
    browser.click("a[rel=next]").await;
    browser
        .wait_text("#blotter caption", "3 orders (a later page)")
        .await;
    for id in &ids[..3] {
        browser.find(&format!("#order-{id}")).await;
    }
    assert_eq!(browser.count("a[rel=next]").await, 0, "the last page");
    browser.close().await;
}

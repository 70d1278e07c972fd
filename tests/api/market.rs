//! Reference data and the trading day, end to end against the exchange
//! simulator on its accelerated clock (walked through a day with
//! `/admin/clock/advance`): assets, clock and calendar from synced data;
//! unknown, inactive and halted symbols; every time in force across the
//! open and the close.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestStack, Trader, trade_events_until};
use orderd::reconcile::Job;

fn order(symbol: &str, side: &str, qty: u32, tif: &str, limit: Option<&str>) -> Value {
    let mut body = json!({"symbol": symbol, "qty": qty.to_string(), "side": side,
        "type": if limit.is_some() { "limit" } else { "market" }, "time_in_force": tif});
    if let Some(price) = limit {
        body["limit_price"] = json!(price);
    }
    body
}

impl TestStack {
    async fn exchange_admin(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(self.exchange_url(path))
            .json(&body)
            .send()
            .await
            .expect("exchange admin call");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    /// Moves the venue's day to the start of `phase` and syncs orderd's
    /// calendar to it (an accelerated day's instants move with it).
    async fn advance_to(&self, phase: &str) {
        self.exchange_admin("/admin/clock/advance", json!({ "to": phase }))
            .await;
        let sync = self.reconcile(Job::Reference).await;
        assert!(sync.errors.is_empty(), "{:?}", sync.errors);
    }

    async fn sync_reference(&self) -> orderd::reconcile::RunSummary {
        let sync = self.reconcile(Job::Reference).await;
        assert!(sync.errors.is_empty(), "{:?}", sync.errors);
        sync
    }
}

async fn wait_status(trader: &Trader, id: &str, status: &str, limit: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let order = trader.get(&format!("/v2/orders/{id}")).await.body;
        if order["status"] == status {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} is {} not {status}: {order}",
            order["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn assets_clock_and_calendar_come_from_the_synced_reference_data() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let assets = trader.get("/v2/assets").await;
    assert_eq!(assets.status, 200);
    let aapl = assets
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["symbol"] == "AAPL")
        .cloned();
    let aapl = aapl.expect("AAPL is listed");
    assert_eq!(aapl["status"], "active");
    assert_eq!(aapl["tradable"], true);
    assert_eq!(aapl["class"], "us_equity");
    assert_eq!(aapl["min_order_size"], "1");
    // By symbol (any case) and by id; an order shows the same asset id.
    let by_symbol = trader.get("/v2/assets/aapl").await;
    assert_eq!(by_symbol.body["id"], aapl["id"]);
    let by_id = trader
        .get(&format!("/v2/assets/{}", aapl["id"].as_str().unwrap()))
        .await;
    assert_eq!(by_id.body["symbol"], "AAPL");
    assert_eq!(trader.get("/v2/assets/NOPE").await.status, 404);
    assert_eq!(
        trader.get("/v2/assets?status=inactive").await.body,
        json!([])
    );
    assert_eq!(trader.get("/v2/assets?status=paused").await.status, 422);

    // The simulator starts in an open session.
    let clock = trader.get("/v2/clock").await.body;
    assert_eq!(clock["is_open"], true, "{clock}");
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(at(&clock["next_close"]) > at(&clock["timestamp"]));
    assert!(at(&clock["next_open"]) > at(&clock["next_close"]));
    let calendar = trader.get("/v2/calendar").await.body;
    let days = calendar.as_array().unwrap();
    assert!(
        days.len() > 30,
        "the calendar reaches ahead: {}",
        days.len()
    );
    let today = &days[days.len().min(8) - 1];
    assert!(today["open"].as_str().unwrap().len() == 5, "{today}");
    assert!(
        today["session_open"].as_str().unwrap().len() == 4,
        "{today}"
    );
    // The next close on the clock is a close of the calendar.
    assert!(
        days.iter()
            .any(|d| at(&d["close_at"]) == at(&clock["next_close"])),
        "{clock} not in the calendar"
    );
    let one = trader
        .get(&format!(
            "/v2/calendar?start={0}&end={0}",
            today["date"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(trader.get("/v2/calendar?start=yesterday").await.status, 422);

    // A day order's expires_at is the session's close.
    let placed = trader
        .post_order(order("AAPL", "buy", 1, "day", Some("1.00")))
        .await;
    assert_eq!(placed.status, 200, "{:?}", placed.body);
    assert_eq!(at(&placed.body["expires_at"]), at(&clock["next_close"]));
    assert_eq!(placed.body["asset_id"], aapl["id"]);

    // The start-up sync is on record.
    let runs = stack
        .app
        .reconciler
        .runs(Some("reference"), 10)
        .await
        .unwrap();
    assert!(runs.iter().any(|r| r.trigger == "startup"), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_inactive_and_off_lot_orders_are_refused_before_anything_is_recorded() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000000"), ("MSFT", "100")]).await;
    let refused = trader
        .post_order(order("ZZZZ", "buy", 1, "day", None))
        .await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert_eq!(refused.body["message"], "asset \"ZZZZ\" not found");

    // Delisted at the venue: once synced, refused here too.
    stack
        .exchange_admin("/admin/assets/MSFT/delist", json!({}))
        .await;
    let sync = stack.sync_reference().await;
    let kinds = TestStack::finding_kinds(&sync);
    assert!(
        kinds.contains(&("asset_changed".to_string(), "resolvable".to_string())),
        "{kinds:?}"
    );
    let refused = trader
        .post_order(order("MSFT", "sell", 1, "day", None))
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.body["message"], "asset \"MSFT\" is not active");

    // A new listing with a minimum size.
    stack
        .exchange_admin(
            "/admin/assets",
            json!({"symbol": "NEWCO", "name": "New Co", "price": "12.50", "min_qty": "10"}),
        )
        .await;
    stack.sync_reference().await;
    let small = trader
        .post_order(order("NEWCO", "buy", 5, "day", None))
        .await;
    assert_eq!(small.status, 422);
    assert!(
        small.body["message"].as_str().unwrap().starts_with("qty"),
        "{:?}",
        small.body
    );
    let fine = trader
        .post_order(order("NEWCO", "buy", 10, "day", None))
        .await;
    assert_eq!(fine.status, 200, "{:?}", fine.body);

    // Nothing was recorded for any refusal.
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&stack.app.db.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 1);
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_halted_symbol_takes_orders_and_fills_them_once_it_resumes() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    stack
        .exchange_admin("/admin/assets/AAPL/halt", json!({}))
        .await;
    stack.sync_reference().await;
    assert_eq!(trader.get("/v2/assets/AAPL").await.body["halted"], true);
    let placed = trader
        .post_order(order("AAPL", "buy", 3, "day", None))
        .await;
    assert_eq!(placed.status, 200, "{:?}", placed.body);
    let id = placed.body["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let halted = trader.get(&format!("/v2/orders/{id}")).await.body;
    assert_eq!(
        halted["status"], "new",
        "nothing executes in a halt: {halted}"
    );
    stack
        .exchange_admin("/admin/assets/AAPL/resume", json!({}))
        .await;
    let filled = wait_status(&trader, &id, "filled", Duration::from_secs(10)).await;
    assert_eq!(filled["filled_qty"], "3");
    stack.wait_quiet(Duration::from_secs(10)).await;
    stack.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_close_expires_day_orders_and_gtc_orders_carry_on_done_for_day() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let mut updates = stack.trade_updates(&trader).await;
    let day = trader
        .post_order(order("AAPL", "buy", 1, "day", Some("1.00")))
        .await;
    let gtc = trader
        .post_order(order("AAPL", "buy", 1, "gtc", Some("1.00")))
        .await;
    let (day, gtc) = (
        day.body["id"].as_str().unwrap().to_string(),
        gtc.body["id"].as_str().unwrap().to_string(),
    );
    wait_status(&trader, &day, "new", Duration::from_secs(5)).await;
    wait_status(&trader, &gtc, "new", Duration::from_secs(5)).await;
    stack.advance_to("closed").await;
    let expired = wait_status(&trader, &day, "expired", Duration::from_secs(10)).await;
    assert!(expired["expired_at"].is_string());
    let events =
        trade_events_until(&mut updates, &gtc, "done_for_day", Duration::from_secs(10)).await;
    assert!(events.contains(&"done_for_day".to_string()), "{events:?}");
    assert_eq!(
        trader.get(&format!("/v2/orders/{gtc}")).await.body["status"],
        "new"
    );
    // The hold of the expired order is released; the GTC order's is kept.
    stack.wait_quiet(Duration::from_secs(10)).await;
    // The close is verified: nothing outlived its session.
    let check = stack.reconcile(Job::SessionClose).await;
    assert!(
        check.findings.is_empty(),
        "{:?}",
        TestStack::finding_kinds(&check)
    );
    let report = stack.assert_invariants().await;
    assert!(
        report
            .invariants
            .iter()
            .any(|i| i.name == "S1" && i.holds())
    );
    assert_eq!(trader.cancel(&gtc).await, 204);
    stack.wait_all_terminal(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_the_session_orders_wait_for_the_open_and_auction_orders_meet_their_auction() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000000")]).await;
    stack.advance_to("closed").await;
    assert_eq!(trader.get("/v2/clock").await.body["is_open"], false);
    // Closed: a market order is accepted and waits; IOC is refused by the
    // venue; OPG waits for the opening auction.
    let market = trader
        .post_order(order("AAPL", "buy", 2, "day", None))
        .await;
    assert_eq!(market.status, 200, "{:?}", market.body);
    let market = market.body["id"].as_str().unwrap().to_string();
    wait_status(&trader, &market, "accepted", Duration::from_secs(5)).await;
    let ioc = trader
        .post_order(order("AAPL", "buy", 1, "ioc", None))
        .await;
    let ioc = ioc.body["id"].as_str().unwrap().to_string();
    wait_status(&trader, &ioc, "rejected", Duration::from_secs(5)).await;
    let opg = trader
        .post_order(order("MSFT", "buy", 4, "opg", None))
        .await;
    let opg = opg.body["id"].as_str().unwrap().to_string();
    wait_status(&trader, &opg, "accepted", Duration::from_secs(5)).await;

    // The open: OPG executes at the opening auction's price; the market
    // order starts working and fills.
    stack.advance_to("open").await;
    let opg_filled = wait_status(&trader, &opg, "filled", Duration::from_secs(10)).await;
    wait_status(&trader, &market, "filled", Duration::from_secs(10)).await;
    let truth = stack.exchange_truth().await;
    let auction = truth["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find_map(|s| s["opening_auction"]["MSFT"].as_str())
        .expect("an opening auction price for MSFT");
    assert_eq!(
        opg_filled["filled_avg_price"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        auction.parse::<f64>().unwrap()
    );

    // Open: OPG is refused; CLS waits for the closing auction.
    let late_opg = trader
        .post_order(order("MSFT", "buy", 1, "opg", None))
        .await;
    let late_opg = late_opg.body["id"].as_str().unwrap().to_string();
    wait_status(&trader, &late_opg, "rejected", Duration::from_secs(5)).await;
    let cls = trader
        .post_order(order("AAPL", "buy", 3, "cls", None))
        .await;
    let cls = cls.body["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(
        trader.get(&format!("/v2/orders/{cls}")).await.body["status"],
        "filled"
    );
    stack.advance_to("closed").await;
    let cls_filled = wait_status(&trader, &cls, "filled", Duration::from_secs(10)).await;
    assert_eq!(cls_filled["filled_qty"], "3");
    stack.wait_quiet(Duration::from_secs(10)).await;
    stack.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_day_order_whose_expiry_report_was_lost_is_closed_by_the_session_close_job() {
    let stack = TestStack::spawn_with(|settings| {
        crate::support::reconciliation_only(settings);
        settings.reconcile.session_close_grace_ms = 100;
    })
    .await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let placed = trader
        .post_order(order("AAPL", "buy", 1, "day", Some("1.00")))
        .await;
    assert_eq!(placed.status, 200, "{:?}", placed.body);
    let id = placed.body["id"].as_str().unwrap().to_string();
    wait_status(&trader, &id, "new", Duration::from_secs(5)).await;
    // No stream: the expiry at the close never reaches orderd.
    stack.advance_to("closed").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        trader.get(&format!("/v2/orders/{id}")).await.body["status"],
        "new"
    );
    // Past the grace, the job finds it and applies what the venue says.
    let run = stack.reconcile(Job::SessionClose).await;
    let kinds = TestStack::finding_kinds(&run);
    assert_eq!(
        kinds,
        vec![(
            "session_ended_news_missed".to_string(),
            "resolvable".to_string()
        )]
    );
    let order = trader.get(&format!("/v2/orders/{id}")).await.body;
    assert_eq!(order["status"], "expired", "{order}");
    // And again: nothing left to find.
    let again = stack.reconcile(Job::SessionClose).await;
    assert!(
        again.findings.is_empty(),
        "{:?}",
        TestStack::finding_kinds(&again)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ioc_and_fok_execute_at_once_in_the_session_and_are_refused_outside_it() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "10000000")]).await;
    // Open: an IOC within the touch's liquidity fills; a FOK larger than it
    // expires with nothing filled; one within it fills whole.
    let ioc = trader
        .post_order(order("AAPL", "buy", 5, "ioc", None))
        .await;
    let ioc = ioc.body["id"].as_str().unwrap().to_string();
    let filled = wait_status(&trader, &ioc, "filled", Duration::from_secs(10)).await;
    assert_eq!(filled["filled_qty"], "5");
    let big_fok = trader
        .post_order(order("AAPL", "buy", 5000, "fok", None))
        .await;
    let big_fok = big_fok.body["id"].as_str().unwrap().to_string();
    let expired = wait_status(&trader, &big_fok, "expired", Duration::from_secs(10)).await;
    assert_eq!(expired["filled_qty"], "0");
    let fok = trader
        .post_order(order("MSFT", "buy", 7, "fok", None))
        .await;
    let fok = fok.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        wait_status(&trader, &fok, "filled", Duration::from_secs(10)).await["filled_qty"],
        "7"
    );
    // Closed: both need continuous trading; the venue refuses them.
    stack.advance_to("closed").await;
    for tif in ["ioc", "fok"] {
        let refused = trader.post_order(order("AAPL", "buy", 1, tif, None)).await;
        assert_eq!(refused.status, 200, "{:?}", refused.body);
        let id = refused.body["id"].as_str().unwrap().to_string();
        wait_status(&trader, &id, "rejected", Duration::from_secs(5)).await;
    }
    stack.wait_quiet(Duration::from_secs(10)).await;
    stack.assert_invariants().await;
}

#[tokio::test]
async fn last_equity_is_the_equity_at_the_latest_close() {
    let stack = TestStack::spawn_with(|s| s.reconcile.session_close_grace_ms = 0).await;
    let trader = stack.trader(&[("USD", "10000"), ("AAPL", "10")]).await;
    // Before any close it was valued at: the equity now.
    let account = trader.get("/v2/account").await.body;
    assert_eq!(account["last_equity"], account["equity"], "{account}");

    stack.advance_to("closed").await;
    let run = stack.reconcile(Job::SessionClose).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let account_id: uuid::Uuid = trader.account_id.parse().unwrap();
    let (snapshots, equity): (i64, rust_decimal::Decimal) = sqlx::query_as(
        "SELECT count(*) OVER (), equity FROM equity_snapshots WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_one(&stack.app.db.pool)
    .await
    .expect("a snapshot of the close");
    assert_eq!(snapshots, 1);
    let at_close = equity.round_dp(2).normalize().to_string();
    // A second run takes no second snapshot of the same close.
    stack.reconcile(Job::SessionClose).await;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM equity_snapshots WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(&stack.app.db.pool)
            .await
            .unwrap();
    assert_eq!(count, 1);

    // The next session: prices move, the equity with them; last_equity
    // stays the close's.
    stack.advance_to("open").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let account = trader.get("/v2/account").await.body;
        assert_eq!(account["last_equity"], at_close.as_str(), "{account}");
        if account["equity"] != account["last_equity"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the price never moved: {account}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

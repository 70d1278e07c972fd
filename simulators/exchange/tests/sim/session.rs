//! The trading day over HTTP and the stream, on the accelerated clock
//! walked with `/admin/clock/advance`: queued orders and the open, OPG and
//! CLS auctions, the close, IOC/FOK outside continuous trading, listings,
//! delistings and halts, the clock against the calendar.

use std::time::Duration;

use exchange_sim::{ClockConfig, ClockMode, Config, Phase};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::helpers::*;

fn starting_in(phase: Phase) -> Config {
    Config {
        clock: ClockConfig {
            start_phase: phase,
            ..ClockConfig::default()
        },
        ..test_config()
    }
}

/// Reports of `order_id` until one of `exec_type` (inclusive).
async fn reports_until(stream: &mut Stream, order_id: &str, exec_type: &str) -> Vec<Value> {
    of(&all_until(stream, order_id, exec_type).await, order_id)
}

/// Every report (of any order) until one of `order_id` of `exec_type`.
async fn all_until(stream: &mut Stream, order_id: &str, exec_type: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let r = stream.next_report().await;
        let done = r["order_id"] == order_id && r["exec_type"] == exec_type;
        out.push(r);
        if done {
            return out;
        }
    }
}

fn of(reports: &[Value], order_id: &str) -> Vec<Value> {
    reports
        .iter()
        .filter(|r| r["order_id"] == order_id)
        .cloned()
        .collect()
}

fn exec_types(reports: &[Value]) -> Vec<&str> {
    reports
        .iter()
        .map(|r| r["exec_type"].as_str().expect("exec_type"))
        .collect()
}

async fn truth_session(sim: &Sim, auction: &str, symbol: &str) -> Decimal {
    let truth = sim.admin_get("/admin/ground-truth").await.body;
    let session = truth["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .rev()
        .find(|s| s[auction][symbol].is_string())
        .unwrap_or_else(|| panic!("no {auction} for {symbol}: {truth}"))
        .clone();
    dec(&session[auction][symbol])
}

/// 422 with `message`, and nothing created under `coid`.
async fn refused(sim: &Sim, reply: Reply, coid: &str, message: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["code"], 42210000);
    assert_eq!(reply.body["message"], message);
    let lookup = sim
        .get(&format!(
            "/v1/orders:by_client_order_id?client_order_id={coid}"
        ))
        .await;
    assert_eq!(lookup.status, StatusCode::NOT_FOUND, "{coid} was created");
}

#[tokio::test]
async fn the_close_expires_day_orders_and_gtc_orders_are_done_for_the_day_then_fill_next_session() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let day = id_of(
        &sim.place("day-1", "AAPL", "buy", "day", "5", Some("100"))
            .await,
    );
    let gtc = id_of(
        &sim.place("gtc-1", "AAPL", "buy", "gtc", "5", Some("100"))
            .await,
    );
    sim.advance("closed").await;
    let reports = all_until(&mut stream, &gtc, "done_for_day").await;
    let day_reports = of(&reports, &day);
    assert_eq!(exec_types(&day_reports), ["new", "expired"]);
    assert_eq!(day_reports[1]["status"], "expired");
    let gtc_reports = of(&reports, &gtc);
    assert_eq!(exec_types(&gtc_reports), ["new", "done_for_day"]);
    let done = &gtc_reports[1];
    assert_eq!(done["status"], "new", "status unchanged: {done}");
    assert_eq!(
        (done["last_qty"].clone(), done["last_px"].clone()),
        (json!("0"), Value::Null)
    );
    assert_eq!(done["leaves_qty"], "5");
    let order = sim.order(&gtc).await.body;
    assert_eq!(
        (order["status"].clone(), order["version"].clone()),
        (json!("new"), json!(1))
    );

    // Closed: a price that crosses does not fill it.
    sim.handle.set_price("AAPL", 99.into()).expect("symbol");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.order(&gtc).await.body["filled_qty"], "0");
    sim.advance("pre_open").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sim.order(&gtc).await.body["filled_qty"], "0");

    // The next session's open: it fills (never above its limit).
    sim.advance("open").await;
    let reports = reports_until(&mut stream, &gtc, "fill").await;
    assert!(
        exec_types(&reports)
            .iter()
            .all(|t| matches!(*t, "partial_fill" | "fill"))
    );
    let order = sim.wait_order(&gtc, |o| o["status"] == "filled").await;
    assert!(dec(&order["filled_avg_price"]) <= 100.into());
    assert_eq!(sim.order(&day).await.body["status"], "expired");
}

#[tokio::test]
async fn a_market_order_entered_while_closed_is_accepted_then_new_at_the_open_and_fills() {
    let sim = start_with(starting_in(Phase::Closed)).await;
    let mut stream = sim.stream().await;
    let clock = sim.get("/v1/clock").await.body;
    assert_eq!(
        (clock["phase"].clone(), clock["is_open"].clone()),
        (json!("closed"), json!(false))
    );
    let reply = sim.place("mkt-c", "AAPL", "buy", "day", "10", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "accepted");
    assert_eq!(reply.body["leaves_qty"], "10");
    let id = id_of(&reply);
    let accepted = stream.next_report().await;
    assert_eq!(
        (accepted["exec_type"].clone(), accepted["status"].clone()),
        (json!("accepted"), json!("accepted"))
    );
    sim.advance("pre_open").await;
    sim.advance("opening_auction").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiting = sim.order(&id).await.body;
    assert_eq!(
        (waiting["status"].clone(), waiting["filled_qty"].clone()),
        (json!("accepted"), json!("0"))
    );
    // Cancelable while it waits.
    let other = id_of(&sim.place("mkt-c2", "AAPL", "buy", "gtc", "10", None).await);
    assert_eq!(
        sim.delete(&format!("/v1/orders/{other}")).await.status,
        StatusCode::NO_CONTENT
    );
    let canceled = sim.wait_order(&other, |o| o["status"] == "canceled").await;
    assert_eq!(canceled["filled_qty"], "0");

    sim.advance("open").await;
    let reports = reports_until(&mut stream, &id, "fill").await;
    let types = exec_types(&reports);
    assert_eq!(types[0], "new");
    assert_eq!(reports[0]["status"], "new");
    assert!(types.len() >= 3, "filled in chunks: {types:?}");
    let order = sim.order(&id).await.body;
    assert_eq!(order["status"], "filled");
    assert_eq!(
        order["version"].as_u64().expect("version") as usize,
        reports.len() + 1
    );
    assert_eq!(sim.order(&other).await.body["status"], "canceled");
}

#[tokio::test]
async fn opg_orders_execute_at_the_opening_auction_price_or_expire_and_are_refused_once_open() {
    let sim = start_with(starting_in(Phase::Closed)).await;
    let mut stream = sim.stream().await;
    let market = sim.place("opg-m", "AAPL", "buy", "opg", "10", None).await;
    assert_eq!(market.body["status"], "accepted", "{}", market.body);
    let market = id_of(&market);
    let low = id_of(
        &sim.place("opg-l", "AAPL", "buy", "opg", "10", Some("100"))
            .await,
    );
    let sell = id_of(
        &sim.place("opg-s", "AAPL", "sell", "opg", "7", Some("150"))
            .await,
    );
    sim.advance("pre_open").await;
    let halted_opg = id_of(&sim.place("opg-h", "MSFT", "buy", "opg", "3", None).await);
    sim.admin_post("/admin/assets/MSFT/halt", &json!({})).await;
    sim.advance("opening_auction").await;
    sim.place("opg-late", "AAPL", "buy", "opg", "1", None).await;
    sim.advance("open").await;

    let auction = truth_session(&sim, "opening_auction", "AAPL").await;
    let reports = reports_until(&mut stream, &market, "fill").await;
    assert_eq!(exec_types(&reports), ["accepted", "fill"]);
    assert_eq!(dec(&reports[1]["last_px"]), auction);
    assert_eq!(reports[1]["last_qty"], "10");
    let sold = sim.order(&sell).await.body;
    assert_eq!(
        (sold["status"].clone(), dec(&sold["filled_avg_price"])),
        (json!("filled"), auction)
    );
    let expired = sim.order(&low).await.body;
    assert_eq!(
        (expired["status"].clone(), expired["filled_qty"].clone()),
        (json!("expired"), json!("0"))
    );
    assert_eq!(
        sim.order(&halted_opg).await.body["status"],
        "expired",
        "a halted symbol has no auction"
    );
    let late = sim
        .get("/v1/orders:by_client_order_id?client_order_id=opg-late")
        .await
        .body;
    assert_eq!(late["status"], "filled", "opening_auction still takes OPG");
    // The auction price is the reference: last and the mid of the quote.
    let quote = sim.get("/v1/quotes/AAPL").await.body;
    assert_eq!(dec(&quote["last"]), auction);
    assert_eq!(
        (dec(&quote["bid"]) + dec(&quote["ask"])) / Decimal::TWO,
        auction
    );
    let step = (auction - Decimal::from(190)).abs();
    assert!(
        step <= Decimal::new(19, 2),
        "within auction_step_bps of 190: {auction}"
    );
    let truth = sim.admin_get("/admin/ground-truth").await.body;
    let session = truth["sessions"]
        .as_array()
        .expect("sessions")
        .last()
        .cloned()
        .expect("a session");
    assert!(
        session["opening_auction"]["MSFT"].is_null(),
        "halted: no auction"
    );
    assert!(
        session["open"].is_string() && session["close"].is_null(),
        "{session}"
    );

    let open = sim.place("opg-open", "AAPL", "buy", "opg", "1", None).await;
    refused(
        &sim,
        open,
        "opg-open",
        "opg orders are accepted only before the opening auction",
    )
    .await;
    sim.advance("closing_auction").await;
    let closing = sim.place("opg-ca", "AAPL", "buy", "opg", "1", None).await;
    refused(
        &sim,
        closing,
        "opg-ca",
        "opg orders are accepted only before the opening auction",
    )
    .await;
}

#[tokio::test]
async fn cls_orders_execute_at_the_closing_auction_price_and_are_refused_from_its_cut_off() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let sell = sim.place("cls-m", "AAPL", "sell", "cls", "5", None).await;
    assert_eq!(sell.body["status"], "new", "{}", sell.body);
    let sell = id_of(&sell);
    let low = id_of(
        &sim.place("cls-l", "AAPL", "buy", "cls", "5", Some("100"))
            .await,
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        sim.order(&sell).await.body["filled_qty"],
        "0",
        "no continuous matching"
    );
    sim.advance("closing_auction").await;
    let late = sim.place("cls-late", "AAPL", "buy", "cls", "1", None).await;
    refused(
        &sim,
        late,
        "cls-late",
        "cls orders are accepted only until the closing auction",
    )
    .await;
    sim.advance("closed").await;
    let auction = truth_session(&sim, "closing_auction", "AAPL").await;
    let reports = reports_until(&mut stream, &sell, "fill").await;
    assert_eq!(exec_types(&reports), ["new", "fill"]);
    assert_eq!(dec(&reports[1]["last_px"]), auction);
    assert_eq!(sim.order(&low).await.body["status"], "expired");
    let closed = sim
        .place("cls-closed", "AAPL", "buy", "cls", "1", None)
        .await;
    refused(
        &sim,
        closed,
        "cls-closed",
        "cls orders are accepted only until the closing auction",
    )
    .await;

    // Before the open a CLS waits as accepted, and is new from the open on.
    sim.advance("pre_open").await;
    let early = sim.place("cls-pre", "AAPL", "buy", "cls", "2", None).await;
    assert_eq!(early.body["status"], "accepted");
    let early = id_of(&early);
    sim.advance("open").await;
    assert_eq!(sim.order(&early).await.body["status"], "new");
    sim.advance("closed").await;
    let filled = sim.order(&early).await.body;
    assert_eq!(filled["status"], "filled");
    assert_eq!(
        dec(&filled["filled_avg_price"]),
        truth_session(&sim, "closing_auction", "AAPL").await
    );
}

#[tokio::test]
async fn ioc_and_fok_need_continuous_trading() {
    let sim = start_with(starting_in(Phase::Closed)).await;
    let message = "market is closed: ioc/fok orders need continuous trading";
    for (phase, allowed) in [
        ("closed", false),
        ("pre_open", false),
        ("opening_auction", false),
        ("open", true),
        ("closing_auction", true),
    ] {
        if phase != "closed" {
            sim.advance(phase).await;
        }
        for tif in ["ioc", "fok"] {
            let coid = format!("{tif}-{phase}");
            let reply = sim.place(&coid, "AAPL", "buy", tif, "5", None).await;
            if allowed {
                assert_eq!(reply.status, StatusCode::OK, "{phase}: {}", reply.body);
                assert_eq!(reply.body["status"], "filled", "{phase}");
            } else {
                refused(&sim, reply, &coid, message).await;
            }
        }
    }
    let stats = sim.admin_get("/admin/stats").await.body;
    assert_eq!(stats["orders"], 4);
}

#[tokio::test]
async fn delisted_symbols_are_refused_listings_are_reference_data() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let resting = id_of(
        &sim.place("dl-1", "AAPL", "buy", "gtc", "5", Some("100"))
            .await,
    );
    let delisted = sim
        .admin_post("/admin/assets/AAPL/delist", &json!({}))
        .await;
    assert_eq!(delisted.status, StatusCode::OK);
    assert_eq!(
        (
            delisted.body["status"].clone(),
            delisted.body["tradable"].clone()
        ),
        (json!("inactive"), json!(false))
    );
    let reports = reports_until(&mut stream, &resting, "canceled").await;
    assert_eq!(exec_types(&reports), ["new", "canceled"]);
    let refusal = sim.place("dl-2", "AAPL", "buy", "day", "1", None).await;
    refused(&sim, refusal, "dl-2", "asset AAPL is not tradable").await;

    let inactive = sim.get("/v1/assets?status=inactive").await.body;
    assert_eq!(inactive.as_array().map(Vec::len), Some(1));
    assert_eq!(inactive[0]["symbol"], "AAPL");
    assert_eq!(
        sim.get("/v1/assets?status=active")
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(7)
    );
    assert_eq!(
        sim.get("/v1/assets").await.body.as_array().map(Vec::len),
        Some(8)
    );
    assert_eq!(
        sim.get("/v1/assets?status=paused").await.status,
        StatusCode::BAD_REQUEST
    );
    let one = sim.get("/v1/assets/AAPL").await;
    assert_eq!(
        (one.status, one.body["status"].clone()),
        (StatusCode::OK, json!("inactive"))
    );
    assert_eq!(one.body["id"], "8d8bb26d-a16c-535e-bd3b-12e7271e4a03");
    assert_eq!(
        sim.get("/v1/assets/NOPE").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(sim.get("/v1/assets/SPY").await.body["exchange"], "ARCA");

    // Re-listing reactivates at the new price; an active symbol is a conflict.
    let relisted = sim
        .admin_post(
            "/admin/assets",
            &json!({"symbol": "AAPL", "name": "Apple Inc.", "price": "150"}),
        )
        .await;
    assert_eq!(relisted.status, StatusCode::CREATED, "{}", relisted.body);
    assert_eq!(
        (
            relisted.body["status"].clone(),
            relisted.body["tradable"].clone()
        ),
        (json!("active"), json!(true))
    );
    assert_eq!(
        relisted.body["id"], one.body["id"],
        "the id is the symbol's"
    );
    assert_eq!(sim.get("/v1/quotes/AAPL").await.body["last"], "150");
    let again = sim
        .admin_post(
            "/admin/assets",
            &json!({"symbol": "AAPL", "name": "Apple", "price": "1"}),
        )
        .await;
    assert_eq!(
        (again.status, again.body["code"].clone()),
        (StatusCode::CONFLICT, json!(40910000))
    );

    // A new listing with its own minimum.
    let listed = sim
        .admin_post(
            "/admin/assets",
            &json!({"symbol": "ACME", "name": "Acme", "price": 12.5, "exchange": "NYSE",
                    "shortable": false, "min_qty": "10"}),
        )
        .await;
    assert_eq!(listed.status, StatusCode::CREATED, "{}", listed.body);
    assert_eq!(
        (
            listed.body["exchange"].clone(),
            listed.body["shortable"].clone(),
            listed.body["easy_to_borrow"].clone(),
            listed.body["min_qty"].clone()
        ),
        (json!("NYSE"), json!(false), json!(false), json!("10"))
    );
    let small = sim.place("acme-1", "ACME", "buy", "day", "5", None).await;
    assert_eq!(small.status, StatusCode::BAD_REQUEST, "{}", small.body);
    let fine = sim.place("acme-2", "ACME", "buy", "day", "10", None).await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.body);
    for (body, status) in [
        (
            json!({"symbol": "bad symbol", "name": "x", "price": "1"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"symbol": "ZED", "name": "x", "price": "0"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"symbol": "ZED", "name": "x", "price": "1", "exchange": "LSE"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"symbol": "ZED", "name": "x", "price": "1", "min_qty": "1.5"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"symbol": "ZED", "price": "1"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let reply = sim.admin_post("/admin/assets", &body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
    }
    for action in ["delist", "halt", "resume"] {
        let reply = sim
            .admin_post(&format!("/admin/assets/NOPE/{action}"), &json!({}))
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{action}");
    }
}

#[tokio::test]
async fn a_halt_stops_execution_and_the_resume_prints_a_reopening_price() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let halted = sim.admin_post("/admin/assets/AAPL/halt", &json!({})).await;
    assert_eq!(
        (
            halted.status,
            halted.body["halted"].clone(),
            halted.body["tradable"].clone()
        ),
        (StatusCode::OK, json!(true), json!(true))
    );
    let market = sim.place("h-1", "AAPL", "buy", "day", "10", None).await;
    assert_eq!(market.body["status"], "new", "{}", market.body);
    let market = id_of(&market);
    let ioc = sim.place("h-2", "AAPL", "buy", "ioc", "10", None).await;
    assert_eq!(
        (ioc.body["status"].clone(), ioc.body["filled_qty"].clone()),
        (json!("expired"), json!("0"))
    );
    let cancelable = id_of(&sim.place("h-3", "AAPL", "sell", "gtc", "10", None).await);
    assert_eq!(
        sim.delete(&format!("/v1/orders/{cancelable}")).await.status,
        StatusCode::NO_CONTENT
    );
    sim.wait_order(&cancelable, |o| o["status"] == "canceled")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        sim.order(&market).await.body["filled_qty"],
        "0",
        "nothing executes"
    );

    let resumed = sim
        .admin_post("/admin/assets/AAPL/resume", &json!({}))
        .await;
    assert_eq!(resumed.body["halted"], false);
    let reports = reports_until(&mut stream, &market, "fill").await;
    assert_eq!(exec_types(&reports)[0], "new");
    let truth = sim.admin_get("/admin/ground-truth").await.body;
    let halt = &truth["halts"][0];
    assert_eq!(
        (halt["symbol"].clone(), halt["reason"].clone()),
        (json!("AAPL"), json!("admin"))
    );
    assert!(halt["from"].is_string() && halt["to"].is_string(), "{halt}");

    // The reopening print: last is the new reference, within halt_reopen_bps.
    let before = sim.get("/v1/quotes/MSFT").await.body;
    sim.admin_post("/admin/assets/MSFT/halt", &json!({})).await;
    sim.admin_post("/admin/assets/MSFT/resume", &json!({}))
        .await;
    let after = sim.get("/v1/quotes/MSFT").await.body;
    let mid = (dec(&after["bid"]) + dec(&after["ask"])) / Decimal::TWO;
    assert_eq!(dec(&after["last"]), mid);
    assert!(
        (mid - dec(&before["last"])).abs() <= Decimal::new(210, 2),
        "{before} -> {after}"
    );
}

#[tokio::test]
async fn the_halt_fault_halts_symbols_for_halt_ms_then_resumes_them() {
    let sim = start_with(Config {
        walk_interval_ms: 20,
        ..test_config()
    })
    .await;
    let reply = sim.put_faults(json!({"halt": 1.0, "halt_ms": 200})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut halted = false;
    for _ in 0..100 {
        if sim.get("/v1/assets/NVDA").await.body["halted"] == true {
            halted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(halted, "the fault halts");
    sim.put_faults(json!({})).await;
    let mut resumed = false;
    for _ in 0..100 {
        if sim.get("/v1/assets/NVDA").await.body["halted"] == false {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(resumed, "resumed after halt_ms");
    let stats = sim.admin_get("/admin/stats").await.body;
    assert!(
        stats["faults"]["halt"].as_u64().expect("count") >= 8,
        "{stats}"
    );
    let truth = sim.admin_get("/admin/ground-truth").await.body;
    let nvda: Vec<_> = truth["halts"]
        .as_array()
        .expect("halts")
        .iter()
        .filter(|h| h["symbol"] == "NVDA")
        .collect();
    assert_eq!(nvda[0]["reason"], "fault");
    let from =
        chrono::DateTime::parse_from_rfc3339(nvda[0]["from"].as_str().expect("from")).expect("t");
    let to = chrono::DateTime::parse_from_rfc3339(nvda[0]["to"].as_str().expect("to")).expect("t");
    // Timers have whole-ms due times: at least halt_ms, less the sub-ms part.
    assert!(
        (to - from).num_microseconds().expect("us") >= 199_000,
        "{from} {to}"
    );
}

fn at(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .expect("RFC 3339")
}

#[tokio::test]
async fn the_clock_agrees_with_the_calendar_through_a_day() {
    let sim = start().await;
    let clock = sim.get("/v1/clock").await.body;
    assert_eq!(
        (
            clock["mode"].clone(),
            clock["phase"].clone(),
            clock["is_open"].clone()
        ),
        (json!("accelerated"), json!("open"), json!(true))
    );
    let days = sim.get("/v1/calendar").await.body;
    let days = days.as_array().expect("array");
    assert!(days.len() >= 19, "30 days of trading days: {}", days.len());
    assert_eq!(
        days[0]["date"], clock["session_date"],
        "starts at today's session"
    );
    assert_eq!(at(&days[0]["close"]), at(&clock["next_close"]));
    assert_eq!(at(&days[1]["open"]), at(&clock["next_open"]));
    for pair in days.windows(2) {
        assert!(pair[0]["date"].as_str() < pair[1]["date"].as_str());
        assert!(at(&pair[0]["close"]) <= at(&pair[1]["pre_open"]));
    }
    for day in days {
        assert!(at(&day["pre_open"]) <= at(&day["open"]));
        assert!(at(&day["open"]) < at(&day["closing_auction"]));
        assert!(at(&day["closing_auction"]) <= at(&day["close"]));
        let date =
            chrono::NaiveDate::parse_from_str(day["date"].as_str().expect("date"), "%Y-%m-%d")
                .expect("date");
        assert!(!matches!(
            chrono::Datelike::weekday(&date),
            chrono::Weekday::Sat | chrono::Weekday::Sun
        ));
    }
    let first_date = days[0]["date"].clone();

    for phase in [
        "closing_auction",
        "closed",
        "pre_open",
        "opening_auction",
        "open",
    ] {
        let moved = sim.advance(phase).await;
        let clock = sim.get("/v1/clock").await.body;
        assert_eq!(clock["phase"], phase);
        assert_eq!(
            clock["is_open"],
            matches!(phase, "open" | "closing_auction")
        );
        assert!(at(&clock["next_open"]) > at(&clock["timestamp"]), "{clock}");
        assert!(
            at(&clock["next_close"]) > at(&clock["timestamp"]),
            "{clock}"
        );
        assert_eq!(moved["session_date"], clock["session_date"]);
        let today = sim
            .get(&format!(
                "/v1/calendar?start={0}&end={0}",
                clock["session_date"].as_str().expect("date")
            ))
            .await
            .body;
        assert_eq!(today.as_array().map(Vec::len), Some(1), "{today}");
        assert_eq!(at(&today[0]["close"]), at(&clock["next_close"]), "{phase}");
        if phase == "closed" {
            assert_ne!(
                clock["session_date"], first_date,
                "closed: the next session"
            );
        }
    }
    // The past day is still listed, with the instants it really had.
    let both = sim
        .get(&format!(
            "/v1/calendar?start={}",
            first_date.as_str().expect("date")
        ))
        .await
        .body;
    assert_eq!(both[0]["date"], first_date);
    assert!(at(&both[0]["close"]) <= at(&both[1]["open"]));
    let truth = sim.admin_get("/admin/ground-truth").await.body;
    assert_eq!(truth["sessions"].as_array().map(Vec::len), Some(2));
    assert_eq!(truth["sessions"][0]["date"], first_date);
    assert_eq!(at(&truth["sessions"][0]["close"]), at(&both[0]["close"]));

    for bad in [
        "/v1/calendar?start=yesterday",
        "/v1/calendar?start=2026-02-30",
        "/v1/calendar?start=2026-12-01&end=2026-11-01",
        "/v1/calendar?start=2026-01-01&end=2027-02-06",
    ] {
        assert_eq!(sim.get(bad).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        sim.get("/v1/calendar?start=2026-01-01&end=2027-02-05")
            .await
            .status,
        StatusCode::OK
    );
    let unknown = sim
        .admin_post("/admin/clock/advance", &json!({"to": "lunch"}))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    let unauthorized = sim
        .http
        .get(sim.url("/v1/clock"))
        .send()
        .await
        .expect("send");
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_wall_clock_follows_the_nyse_calendar_and_cannot_be_advanced() {
    let sim = start_with(Config {
        clock: ClockConfig {
            mode: ClockMode::Wall,
            ..ClockConfig::default()
        },
        ..test_config()
    })
    .await;
    let clock = sim.get("/v1/clock").await.body;
    assert_eq!(clock["mode"], "wall");
    assert!(at(&clock["next_open"]) > at(&clock["timestamp"]));
    let moved = sim
        .admin_post("/admin/clock/advance", &json!({"to": "open"}))
        .await;
    assert_eq!(
        (moved.status, moved.body["code"].clone()),
        (StatusCode::CONFLICT, json!(40910000))
    );

    let week = sim
        .get("/v1/calendar?start=2026-11-23&end=2026-11-30")
        .await
        .body;
    let dates: Vec<_> = week
        .as_array()
        .expect("array")
        .iter()
        .map(|d| {
            (
                d["date"].as_str().expect("date").to_owned(),
                d["early_close"].clone(),
            )
        })
        .collect();
    assert_eq!(
        dates,
        [
            ("2026-11-23".to_owned(), json!(false)),
            ("2026-11-24".to_owned(), json!(false)),
            ("2026-11-25".to_owned(), json!(false)),
            ("2026-11-27".to_owned(), json!(true)),
            ("2026-11-30".to_owned(), json!(false)),
        ]
    );
    assert_eq!(week[3]["open"], "2026-11-27T14:30:00Z");
    assert_eq!(week[3]["closing_auction"], "2026-11-27T17:50:00Z");
    assert_eq!(week[3]["close"], "2026-11-27T18:00:00Z");
    assert_eq!(week[3]["pre_open"], "2026-11-27T09:00:00Z");
    let summer = sim
        .get("/v1/calendar?start=2027-07-01&end=2027-07-06")
        .await
        .body;
    let dates: Vec<_> = summer
        .as_array()
        .expect("array")
        .iter()
        .map(|d| d["date"].clone())
        .collect();
    assert_eq!(
        dates,
        [
            json!("2027-07-01"),
            json!("2027-07-02"),
            json!("2027-07-06")
        ]
    );
    assert_eq!(summer[0]["open"], "2027-07-01T13:30:00Z", "EDT");
}

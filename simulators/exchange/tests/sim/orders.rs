//! Placement, validation, lookups, time in force, cancels.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn market_day_order_fills_in_chunks_and_reports_are_consistent() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let reply = sim.place("mkt-1", "AAPL", "buy", "day", "100", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "new");
    assert_eq!(reply.body["qty"], "100");
    assert_eq!(reply.body["leaves_qty"], "100");
    let id = id_of(&reply);
    let reports = stream.reports_until_terminal(&id).await;
    assert_eq!(reports[0]["exec_type"], "new");
    let fills: Vec<_> = reports
        .iter()
        .filter(|r| r["last_px"].is_string())
        .collect();
    assert!(fills.len() >= 2, "several chunks: {reports:?}");
    let last = reports.last().expect("last");
    assert_eq!(last["exec_type"], "fill");
    assert_eq!(last["status"], "filled");
    let sum: rust_decimal::Decimal = reports.iter().map(|r| dec(&r["last_qty"])).sum();
    assert_eq!(sum, 100.into());
    let order = sim.order(&id).await.body;
    assert_eq!(order["status"], "filled");
    assert_eq!(order["filled_qty"], "100");
    assert_eq!(order["leaves_qty"], "0");
    assert!(order["version"].as_u64().expect("version") >= 3);
    let fills = sim.get(&format!("/v1/orders/{id}/fills")).await.body;
    assert_eq!(fills.as_array().expect("array").len(), reports.len() - 1);
}

/// A notional market buy over HTTP and the stream: qty null until the
/// venue executes it, then the qty it decided on every report and on the
/// order; the fills cost at most the notional.
#[tokio::test]
async fn a_notional_order_shows_its_qty_once_the_venue_decides_it() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let reply = sim
        .post_json(
            "/v1/orders",
            &json!({"client_order_id": "ntl-1", "symbol": "AAPL", "side": "buy",
                "type": "market", "time_in_force": "day", "notional": "1000"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["notional"], "1000");
    let id = id_of(&reply);
    let reports = stream.reports_until_terminal(&id).await;
    assert_eq!(reports[0]["exec_type"], "new");
    assert_eq!(reports[0]["qty"], serde_json::Value::Null, "{}", reports[0]);
    let last = reports.last().expect("last");
    assert_eq!(last["status"], "filled");
    let qty = dec(&last["qty"]);
    let sum: rust_decimal::Decimal = reports.iter().map(|r| dec(&r["last_qty"])).sum();
    assert_eq!(sum, qty);
    let cost: rust_decimal::Decimal = reports
        .iter()
        .filter(|r| r["last_px"].is_string())
        .map(|r| dec(&r["last_qty"]) * dec(&r["last_px"]))
        .sum();
    assert!(cost <= 1000.into() && cost > 999.into(), "{cost}");
    let order = sim.order(&id).await.body;
    assert_eq!(
        (dec(&order["qty"]), order["notional"].clone()),
        (qty, json!("1000"))
    );
    // Exactly one of qty and notional; a notional order is market day.
    for (body, status) in [
        (
            json!({"qty": "1", "notional": "10", "type": "market", "time_in_force": "day"}),
            400,
        ),
        (
            json!({"notional": "10", "type": "market", "time_in_force": "gtc"}),
            422,
        ),
        (
            json!({"notional": "10", "type": "limit", "limit_price": "100", "time_in_force": "day"}),
            422,
        ),
        (
            json!({"notional": "0", "type": "market", "time_in_force": "day"}),
            400,
        ),
    ] {
        let mut request = json!({"client_order_id": "ntl-x", "symbol": "AAPL", "side": "buy"});
        for (k, v) in body.as_object().expect("object") {
            request[k] = v.clone();
        }
        let refused = sim.post_json("/v1/orders", &request).await;
        assert_eq!(
            refused.status.as_u16(),
            status,
            "{request}: {}",
            refused.body
        );
    }
}

#[tokio::test]
async fn resting_limit_order_fills_when_the_price_crosses_it() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let reply = sim
        .place("lmt-1", "MSFT", "buy", "gtc", "10", Some("400.00"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["limit_price"], "400");
    let id = id_of(&reply);
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    assert_eq!(
        sim.order(&id).await.body["status"],
        "new",
        "not marketable at 420"
    );
    let quote = sim
        .admin_post(
            "/admin/prices",
            &json!({"symbol": "MSFT", "price": "399.00"}),
        )
        .await;
    assert_eq!(quote.status, StatusCode::OK, "{}", quote.body);
    assert!(dec(&quote.body["ask"]) <= 400.into());
    let reports = stream.reports_until_terminal(&id).await;
    for r in reports.iter().filter(|r| r["last_px"].is_string()) {
        assert!(
            dec(&r["last_px"]) <= 400.into(),
            "never above the limit: {r}"
        );
    }
    assert_eq!(reports.last().expect("last")["status"], "filled");
}

#[tokio::test]
async fn sell_limit_rests_until_bid_reaches_it() {
    let sim = start().await;
    let id = id_of(
        &sim.place("sell-1", "NVDA", "sell", "day", "5", Some("125"))
            .await,
    );
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    assert_eq!(sim.order(&id).await.body["status"], "new");
    sim.handle.set_price("NVDA", 130.into()).expect("symbol");
    let order = sim.wait_order(&id, |o| o["status"] == "filled").await;
    assert!(dec(&order["filled_avg_price"]) >= 125.into());
}

#[tokio::test]
async fn ioc_fills_what_is_available_and_expires_the_rest() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let reply = sim.place("ioc-1", "AAPL", "buy", "ioc", "1500", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "expired");
    assert_eq!(reply.body["filled_qty"], "1000");
    assert_eq!(reply.body["leaves_qty"], "0");
    let id = id_of(&reply);
    let types: Vec<_> = stream
        .reports_until_terminal(&id)
        .await
        .iter()
        .map(|r| r["exec_type"].clone())
        .collect();
    assert_eq!(
        types,
        vec![json!("new"), json!("partial_fill"), json!("expired")]
    );

    let far = sim
        .place("ioc-2", "AAPL", "buy", "ioc", "10", Some("100"))
        .await;
    assert_eq!(far.body["status"], "expired");
    assert_eq!(far.body["filled_qty"], "0");

    let small = sim
        .place("ioc-3", "AAPL", "sell", "ioc", "10", Some("150"))
        .await;
    assert_eq!(small.body["status"], "filled");
}

#[tokio::test]
async fn fok_fills_fully_or_expires_with_nothing() {
    let sim = start().await;
    let big = sim.place("fok-1", "SPY", "buy", "fok", "1001", None).await;
    assert_eq!(big.body["status"], "expired");
    assert_eq!(big.body["filled_qty"], "0");
    let fills = sim.get(&format!("/v1/orders/{}/fills", id_of(&big))).await;
    assert_eq!(fills.body, json!([]));
    let ok = sim.place("fok-2", "SPY", "buy", "fok", "1000", None).await;
    assert_eq!(ok.body["status"], "filled");
    assert_eq!(ok.body["filled_qty"], "1000");
}

#[tokio::test]
async fn day_orders_expire_at_session_close_and_gtc_orders_do_not() {
    let sim = start_with(exchange_sim::Config {
        session_secs: 1,
        ..test_config()
    })
    .await;
    let mut stream = sim.stream().await;
    let day = id_of(
        &sim.place("day-1", "TSLA", "buy", "day", "3", Some("100"))
            .await,
    );
    let gtc = id_of(
        &sim.place("gtc-1", "TSLA", "buy", "gtc", "3", Some("100"))
            .await,
    );
    let reports = stream.reports_until_terminal(&day).await;
    assert_eq!(reports.last().expect("last")["exec_type"], "expired");
    assert_eq!(sim.order(&day).await.body["status"], "expired");
    assert_eq!(sim.order(&gtc).await.body["status"], "new");
}

#[tokio::test]
async fn cancel_of_a_resting_order_is_requested_then_confirmed_on_the_stream() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let id = id_of(
        &sim.place("cxl-1", "META", "buy", "gtc", "7", Some("450"))
            .await,
    );
    let reply = sim.delete(&format!("/v1/orders/{id}")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reports = stream.reports_until_terminal(&id).await;
    let last = reports.last().expect("last");
    assert_eq!(last["exec_type"], "canceled");
    assert_eq!(last["leaves_qty"], "0");
    assert_eq!(last["last_qty"], "0");
    assert!(last["last_px"].is_null());
    let order = sim.order(&id).await.body;
    assert_eq!(order["status"], "canceled");
    assert!(order["version"].as_u64().expect("v") >= 3);
    let again = sim.delete(&format!("/v1/orders/{id}")).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.body["code"], 42210000);
    let unknown = sim
        .delete("/v1/orders/6a1f0a4e-1111-4222-8333-444455556666")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["code"], 40410000);
    assert_eq!(
        sim.delete("/v1/orders/not-a-uuid").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn cancel_requested_while_filling_ends_canceled_with_consistent_quantities() {
    let sim = start_with(exchange_sim::Config {
        fill_interval_ms: 200,
        fill_chunks_min: 4,
        fill_chunks_max: 4,
        ..test_config()
    })
    .await;
    let mut stream = sim.stream().await;
    let id = id_of(&sim.place("cxl-2", "AAPL", "buy", "gtc", "100", None).await);
    sim.wait_order(&id, |o| o["status"] == "partially_filled")
        .await;
    assert_eq!(
        sim.delete(&format!("/v1/orders/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    // The cancel is a request: pending until the venue acts on it (on a
    // loaded machine it may already have).
    let status = sim.order(&id).await.body["status"].clone();
    assert!(
        status == "pending_cancel" || status == "canceled",
        "{status}"
    );
    let reports = stream.reports_until_terminal(&id).await;
    let last = reports.last().expect("last");
    assert_eq!(last["status"], "canceled");
    let filled: rust_decimal::Decimal = reports.iter().map(|r| dec(&r["last_qty"])).sum();
    assert_eq!(dec(&last["cum_qty"]), filled);
    assert!(filled > 0.into() && filled < 100.into());
}

#[tokio::test]
async fn duplicate_client_order_id_is_422_and_does_not_return_the_order() {
    let sim = start().await;
    let first = sim
        .place("dup-1", "AAPL", "buy", "gtc", "1", Some("150"))
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let second = sim.place("dup-1", "MSFT", "sell", "day", "2", None).await;
    assert_eq!(second.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        second.body,
        json!({"code": 42210000, "message": "client_order_id must be unique"})
    );
    let truth = sim.admin_get("/admin/ground-truth").await.body;
    assert_eq!(truth["orders"].as_array().expect("orders").len(), 1);
    assert_eq!(truth["placement_requests"]["dup-1"], 2);
    assert_eq!(truth["orders_created"]["dup-1"], 1);
    assert_eq!(truth["orders"][0]["placement_requests"], 2);
}

#[tokio::test]
async fn bad_input_is_a_4xx_json_error_and_creates_nothing() {
    let mut config = test_config();
    config.symbols.push(exchange_sim::SymbolConfig::new(
        "PENNY",
        "",
        "0.5".parse().expect("px"),
    ));
    let sim = start_with(config).await;
    let base = json!({"client_order_id": "v", "symbol": "AAPL", "side": "buy", "type": "limit", "time_in_force": "day", "qty": "1", "limit_price": "190.00"});
    let with = |field: &str, value: serde_json::Value| {
        let mut b = base.clone();
        if value.is_null() {
            b.as_object_mut().expect("obj").remove(field);
        } else {
            b[field] = value;
        }
        b
    };
    let cases = vec![
        (with("qty", json!("0")), 400),
        (with("qty", json!("-1")), 400),
        (with("qty", json!("1.0000000001")), 400),
        // A fraction is a market order for the day only.
        (with("qty", json!("1.5")), 422),
        (with("qty", json!("NaN")), 400),
        (with("qty", json!("1e3")), 400),
        (with("qty", json!("100000000000")), 400),
        (
            with("qty", json!("99999999999999999999999999999999999")),
            400,
        ),
        (with("qty", json!(true)), 400),
        (with("qty", serde_json::Value::Null), 400),
        (with("limit_price", json!("190.001")), 400),
        (with("limit_price", json!("0")), 400),
        (with("limit_price", json!(-5)), 400),
        (with("side", json!("short")), 400),
        (with("type", json!("stop_market")), 400),
        // A stop type without its stop_price: a rule of the stop types.
        (with("type", json!("stop")), 422),
        (with("time_in_force", json!("moc")), 400),
        // Known, but not during continuous trading.
        (with("time_in_force", json!("opg")), 422),
        (with("client_order_id", json!("x".repeat(49))), 400),
        (with("client_order_id", json!(12)), 400),
        (with("client_order_id", json!("")), 400),
        (with("symbol", json!("NOPE")), 422),
        (
            json!({"client_order_id": "m", "symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day", "qty": "1", "limit_price": "1"}),
            400,
        ),
        (
            json!({"client_order_id": "l", "symbol": "AAPL", "side": "buy", "type": "limit", "time_in_force": "day", "qty": "1"}),
            400,
        ),
        (
            json!({"client_order_id": "p", "symbol": "PENNY", "side": "buy", "type": "limit", "time_in_force": "day", "qty": "1", "limit_price": "0.50001"}),
            400,
        ),
        (json!([1, 2]), 400),
    ];
    for (body, status) in cases {
        let reply = sim.post_json("/v1/orders", &body).await;
        assert_eq!(reply.status.as_u16(), status, "{body} -> {}", reply.body);
        let code = reply.body["code"].as_u64().expect("code");
        assert_eq!(
            code,
            if status == 400 { 40010000 } else { 42210000 },
            "{body}"
        );
        assert!(
            reply.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    for raw in ["{not json", "", "{\"qty\": 1e400}"] {
        let reply = sim.post_raw("/v1/orders", raw.to_owned()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{raw}");
        assert_eq!(reply.body["code"], 40010000);
    }
    let huge = format!("{{\"client_order_id\": \"{}\"}}", "a".repeat(70 * 1024));
    let reply = sim.post_raw("/v1/orders", huge).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.body["code"], 41310000);
    assert_eq!(
        sim.admin_get("/admin/ground-truth").await.body["orders"],
        json!([])
    );

    // Numbers are accepted for amounts; sub-dollar prices have 4 decimals.
    let ok = sim.post_json("/v1/orders", &json!({"client_order_id": "n", "symbol": "PENNY", "side": "buy", "type": "limit", "time_in_force": "gtc", "qty": 3, "limit_price": 0.4999})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["qty"], "3");
    assert_eq!(ok.body["limit_price"], "0.4999");
    let ok48 = sim
        .place(&"y".repeat(48), "AAPL", "buy", "gtc", "1", Some("1.00"))
        .await;
    assert_eq!(ok48.status, StatusCode::OK);
}

#[tokio::test]
async fn api_key_is_required_on_v1() {
    let sim = start().await;
    for req in [
        sim.http.get(sim.url("/v1/assets")),
        sim.http.get(sim.url("/v1/assets")).bearer_auth("wrong"),
        sim.http.post(sim.url("/v1/orders")).json(&json!({})),
    ] {
        let resp = req.send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["code"], 40110000);
    }
}

#[tokio::test]
async fn lookups_by_id_and_client_order_id_and_listing_with_paging() {
    let sim = start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(id_of(
            &sim.place(
                &format!("list-{i}"),
                "GOOGL",
                "buy",
                "gtc",
                "1",
                Some("100"),
            )
            .await,
        ));
    }
    let filled = id_of(&sim.place("list-f", "GOOGL", "buy", "ioc", "1", None).await);
    let by_coid = sim
        .get("/v1/orders:by_client_order_id?client_order_id=list-3")
        .await;
    assert_eq!(by_coid.status, StatusCode::OK);
    assert_eq!(by_coid.body["id"], ids[3].as_str());
    assert_eq!(
        sim.get("/v1/orders:by_client_order_id?client_order_id=nope")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        sim.get("/v1/orders:by_client_order_id").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(sim.order(&ids[0]).await.body["client_order_id"], "list-0");

    let page1 = sim.get("/v1/orders?status=open&limit=2").await.body;
    let page1: Vec<_> = page1
        .as_array()
        .expect("array")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(page1, ids[0..2].to_vec());
    let page2 = sim
        .get(&format!(
            "/v1/orders?status=open&limit=2&after={}",
            page1[1]
        ))
        .await
        .body;
    assert_eq!(page2[0]["id"], ids[2].as_str());
    let page3 = sim
        .get(&format!("/v1/orders?status=open&limit=10&after={}", ids[3]))
        .await
        .body;
    assert_eq!(page3.as_array().expect("array").len(), 1);
    let closed = sim.get("/v1/orders?status=closed").await.body;
    assert_eq!(closed.as_array().expect("array").len(), 1);
    assert_eq!(closed[0]["id"], filled.as_str());
    assert_eq!(
        sim.get("/v1/orders?status=all")
            .await
            .body
            .as_array()
            .expect("array")
            .len(),
        6
    );
    assert_eq!(
        sim.get("/v1/orders")
            .await
            .body
            .as_array()
            .expect("array")
            .len(),
        5,
        "default is open"
    );
    assert_eq!(
        sim.get("/v1/orders?status=bogus").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.get("/v1/orders?limit=0").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.get("/v1/orders?after=zzz").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.get("/v1/orders/6a1f0a4e-1111-4222-8333-444455556666")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        sim.get("/v1/orders/6a1f0a4e-1111-4222-8333-444455556666/fills")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn quotes_and_assets() {
    let sim = start().await;
    let quote = sim.get("/v1/quotes/AAPL").await;
    assert_eq!(quote.status, StatusCode::OK);
    let (bid, ask) = (dec(&quote.body["bid"]), dec(&quote.body["ask"]));
    assert!(
        bid < ask && bid > 180.into() && ask < 200.into(),
        "{}",
        quote.body
    );
    assert!(quote.body["time"].is_string());
    let unknown = sim.get("/v1/quotes/NOPE").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["code"], 40410000);
    let assets = sim.get("/v1/assets").await.body;
    let symbols: Vec<_> = assets
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["symbol"].as_str().expect("s").to_owned())
        .collect();
    assert_eq!(
        symbols,
        [
            "AAPL", "MSFT", "AMZN", "NVDA", "GOOGL", "TSLA", "META", "SPY"
        ]
    );
    assert_eq!(assets[0]["lot_size"], "1");
    assert_eq!(assets[0]["tick_size"], "0.01");
    assert_eq!(assets[0]["sub_dollar_tick_size"], "0.0001");
    assert_eq!(sim.get("/v1/nothing").await.body["code"], 40410000);
}

#[tokio::test]
async fn prices_walk_when_enabled() {
    let sim = start_with(exchange_sim::Config {
        walk_step_bps: 50.into(),
        walk_interval_ms: 5,
        ..test_config()
    })
    .await;
    let first = sim.get("/v1/quotes/TSLA").await.body["bid"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let later = sim.get("/v1/quotes/TSLA").await.body["bid"].clone();
    assert_ne!(first, later);
}

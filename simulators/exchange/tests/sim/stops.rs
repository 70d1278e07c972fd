//! Stop-type orders over HTTP: placement, the fields of the answer, the
//! trigger by `POST /admin/prices`, the fills on the stream, and the 422s
//! of the stop types' rules.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn body(coid: &str, side: &str, order_type: &str, extra: Value) -> Value {
    let mut body = json!({
        "client_order_id": coid, "symbol": "AAPL", "side": side, "type": order_type,
        "time_in_force": "day", "qty": "10",
    });
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

async fn set_price(sim: &Sim, price: &str) {
    let reply = sim
        .admin_post("/admin/prices", &json!({"symbol": "AAPL", "price": price}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn a_stop_order_waits_then_fills_once_the_admin_price_reaches_its_stop() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let placed = sim
        .post_json(
            "/v1/orders",
            &body("stop-1", "buy", "stop", json!({"stop_price": "191.00"})),
        )
        .await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    let o = &placed.body;
    assert_eq!(o["type"], "stop");
    assert_eq!(o["status"], "new");
    assert_eq!(o["stop_price"], "191");
    assert_eq!(o["limit_price"], Value::Null);
    assert_eq!(o["trail_price"], Value::Null);
    assert_eq!(o["trail_percent"], Value::Null);
    assert_eq!(o["hwm"], Value::Null);
    assert_eq!(o["triggered_at"], Value::Null);
    let id = id_of(&placed);

    // One cent short: nothing happens.
    set_price(&sim, "190.99").await;
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let waiting = sim.order(&id).await.body;
    assert_eq!(waiting["status"], "new");
    assert_eq!(waiting["filled_qty"], "0");
    assert_eq!(waiting["triggered_at"], Value::Null);

    set_price(&sim, "191.00").await;
    let reports = stream.reports_until_terminal(&id).await;
    let types: Vec<_> = reports.iter().map(|r| r["exec_type"].clone()).collect();
    assert_eq!(types[0], "new");
    assert!(
        types[1..]
            .iter()
            .all(|t| t == "partial_fill" || t == "fill"),
        "no report for the trigger, then fills: {types:?}"
    );
    assert_eq!(reports.last().expect("last")["status"], "filled");
    let filled = sim.order(&id).await.body;
    assert_eq!(filled["status"], "filled");
    assert_eq!(filled["filled_qty"], "10");
    assert_eq!(filled["stop_price"], "191");
    assert!(filled["triggered_at"].is_string(), "{filled}");
    // A market order once triggered: at the ask of 191.
    assert_eq!(filled["filled_avg_price"], "191.02");
    let truth = sim.admin_get("/admin/ground-truth").await.body;
    let order = &truth["orders"][0];
    assert_eq!(order["type"], "stop");
    assert_eq!(order["triggered_at"], filled["triggered_at"]);
}

#[tokio::test]
async fn a_trailing_stop_shows_its_water_mark_and_stop_and_fills_on_the_fall() {
    let sim = start().await;
    let placed = sim
        .post_json(
            "/v1/orders",
            &body(
                "trail-1",
                "sell",
                "trailing_stop",
                json!({"trail_percent": "1.5", "time_in_force": "gtc"}),
            ),
        )
        .await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    assert_eq!(placed.body["trail_percent"], "1.5");
    assert_eq!(placed.body["trail_price"], Value::Null);
    assert_eq!(placed.body["hwm"], "190");
    assert_eq!(placed.body["stop_price"], "187.15");
    let id = id_of(&placed);
    set_price(&sim, "190.37").await;
    let moved = sim.order(&id).await.body;
    assert_eq!(moved["hwm"], "190.37");
    assert_eq!(moved["stop_price"], "187.51", "rounded down to the tick");
    set_price(&sim, "187.52").await;
    assert_eq!(sim.order(&id).await.body["triggered_at"], Value::Null);
    set_price(&sim, "187.51").await;
    let filled = sim.wait_order(&id, |o| o["status"] == "filled").await;
    assert_eq!(filled["hwm"], "190.37");
    assert!(filled["triggered_at"].is_string());
}

#[tokio::test]
async fn a_stop_limit_rests_at_its_limit_once_triggered() {
    let sim = start().await;
    let placed = sim
        .post_json(
            "/v1/orders",
            &body(
                "sl-1",
                "buy",
                "stop_limit",
                json!({"stop_price": "191", "limit_price": "191"}),
            ),
        )
        .await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    assert_eq!(placed.body["limit_price"], "191");
    let id = id_of(&placed);
    set_price(&sim, "191").await;
    let triggered = sim.order(&id).await.body;
    assert!(triggered["triggered_at"].is_string(), "{triggered}");
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    // The ask (191.02) is above the limit: it rests.
    assert_eq!(sim.order(&id).await.body["filled_qty"], "0");
    set_price(&sim, "190.90").await;
    let filled = sim.wait_order(&id, |o| o["status"] == "filled").await;
    assert!(dec(&filled["filled_avg_price"]) <= 191.into());
}

#[tokio::test]
async fn the_stop_types_rules_are_422_naming_the_field_and_create_nothing() {
    let sim = start().await;
    let cases = [
        (body("r", "buy", "stop", json!({})), "stop_price"),
        (
            body(
                "r",
                "buy",
                "stop",
                json!({"stop_price": "191", "limit_price": "191"}),
            ),
            "limit_price",
        ),
        (
            body("r", "buy", "stop_limit", json!({"stop_price": "191"})),
            "limit_price",
        ),
        (
            body(
                "r",
                "buy",
                "stop",
                json!({"stop_price": "191", "trail_price": "1"}),
            ),
            "trail_price",
        ),
        (body("r", "sell", "trailing_stop", json!({})), "trail_price"),
        (
            body(
                "r",
                "sell",
                "trailing_stop",
                json!({"trail_price": "1", "trail_percent": "1"}),
            ),
            "trail_percent",
        ),
        (
            body(
                "r",
                "sell",
                "trailing_stop",
                json!({"trail_price": "1", "stop_price": "189"}),
            ),
            "stop_price",
        ),
        (
            body(
                "r",
                "sell",
                "trailing_stop",
                json!({"trail_percent": "100"}),
            ),
            "trail_percent",
        ),
        (
            body(
                "r",
                "sell",
                "trailing_stop",
                json!({"trail_percent": "0.00001"}),
            ),
            "trail_percent",
        ),
        (
            body(
                "r",
                "sell",
                "trailing_stop",
                json!({"trail_price": "0.00005"}),
            ),
            "trail_price",
        ),
        (
            body("r", "buy", "stop", json!({"stop_price": "191.001"})),
            "stop_price",
        ),
        (
            body("r", "buy", "stop", json!({"stop_price": "0"})),
            "stop_price",
        ),
        (
            body("r", "buy", "market", json!({"stop_price": "191"})),
            "stop_price",
        ),
        (
            body(
                "r",
                "buy",
                "limit",
                json!({"limit_price": "190", "trail_percent": "1"}),
            ),
            "trail_percent",
        ),
        (
            body(
                "r",
                "buy",
                "stop",
                json!({"stop_price": "191", "time_in_force": "ioc"}),
            ),
            "time_in_force ioc is not supported for stop orders",
        ),
        (
            body(
                "r",
                "sell",
                "trailing_stop",
                json!({"trail_price": "1", "time_in_force": "opg"}),
            ),
            "time_in_force opg is not supported for stop orders",
        ),
    ];
    for (request, field) in cases {
        let reply = sim.post_json("/v1/orders", &request).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{request} -> {}",
            reply.body
        );
        assert_eq!(reply.body["code"], 42210000);
        let message = reply.body["message"].as_str().expect("message");
        assert!(message.contains(field), "{request} -> {message}");
    }
    // Malformed amounts are malformed (400), as for limit_price.
    for bad in [json!("1e2"), json!("abc"), json!(true)] {
        let request = body("r", "buy", "stop", json!({"stop_price": bad}));
        let reply = sim.post_json("/v1/orders", &request).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{request}");
    }
    assert_eq!(
        sim.admin_get("/admin/ground-truth").await.body["orders"],
        json!([])
    );
    // Numbers are accepted as for limit_price.
    let ok = sim
        .post_json(
            "/v1/orders",
            &body("n", "sell", "trailing_stop", json!({"trail_price": 0.5})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["trail_price"], "0.5");
    assert_eq!(ok.body["stop_price"], "189.5");
}

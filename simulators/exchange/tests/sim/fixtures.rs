//! Golden fixtures: every request, response and stream message of the venue,
//! captured from the running simulator and compared with `fixtures/*.json`
//! by shape (same keys, same JSON types) and by the value of enum-like keys.
//! Dynamic values (ids, timestamps) are normalized in the files.
//!
//! Regenerate with `UPDATE_FIXTURES=1 cargo test -p exchange-sim --test sim fixtures`.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::SinkExt;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// Keys whose values are part of the contract, not just their type.
const EXACT_KEYS: &[&str] = &[
    "type",
    "status",
    "exec_type",
    "side",
    "time_in_force",
    "action",
    "code",
    "symbol",
    "phase",
    "mode",
    "exchange",
];

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn updating() -> bool {
    std::env::var_os("UPDATE_FIXTURES").is_some()
}

fn normalize(value: &Value, key: Option<&str>) -> Value {
    match value {
        Value::Object(map) => {
            // An asset's id is stable (UUID v5 of the symbol): kept as is.
            let asset = map.contains_key("tick_size");
            Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let keep = asset && k == "id";
                        (
                            k.clone(),
                            if keep {
                                v.clone()
                            } else {
                                normalize(v, Some(k))
                            },
                        )
                    })
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| normalize(v, key)).collect()),
        Value::String(_) => match key {
            Some("id" | "order_id" | "replaces" | "replaced_by") => {
                json!("6a1f0a4e-5b2c-4d3e-8f40-1234567890ab")
            }
            Some("exec_id") => json!("3f2a9c1e-42"),
            Some(
                "created_at" | "updated_at" | "transact_time" | "time" | "timestamp" | "next_open"
                | "next_close" | "pre_open" | "open" | "closing_auction" | "close" | "from" | "to"
                | "triggered_at",
            ) => json!("2025-01-02T14:30:00.123456Z"),
            Some("date" | "session_date") => json!("2025-01-02"),
            _ => value.clone(),
        },
        _ => value.clone(),
    }
}

fn same_shape(expected: &Value, actual: &Value, at: &str, key: Option<&str>) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let ek: Vec<_> = e.keys().collect();
            let ak: Vec<_> = a.keys().collect();
            if ek != ak {
                return Err(format!(
                    "{at}: keys differ: fixture {ek:?} vs actual {ak:?}"
                ));
            }
            for (k, v) in e {
                same_shape(v, &a[k], &format!("{at}.{k}"), Some(k))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => match (e.first(), a.first()) {
            (Some(e0), Some(a0)) => same_shape(e0, a0, &format!("{at}[0]"), key),
            (None, None) => Ok(()),
            _ => Err(format!("{at}: one array is empty, the other not")),
        },
        (Value::String(e), Value::String(a)) => {
            if key.is_some_and(|k| EXACT_KEYS.contains(&k)) && e != a {
                return Err(format!("{at}: fixture {e:?} vs actual {a:?}"));
            }
            Ok(())
        }
        (Value::Number(e), Value::Number(a)) => {
            if key.is_some_and(|k| EXACT_KEYS.contains(&k)) && e != a {
                return Err(format!("{at}: fixture {e} vs actual {a}"));
            }
            Ok(())
        }
        (Value::Bool(_), Value::Bool(_)) | (Value::Null, Value::Null) => Ok(()),
        _ => Err(format!(
            "{at}: type differs: fixture {expected} vs actual {actual}"
        )),
    }
}

/// Asserts `actual` matches the fixture (or rewrites it when updating).
fn check(name: &str, actual: &Value) {
    let normalized = normalize(actual, None);
    if updating() {
        let text = serde_json::to_string_pretty(&normalized).expect("json") + "\n";
        std::fs::write(path(name), text).expect("write fixture");
        return;
    }
    let text =
        std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    let expected: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    if let Err(diff) = same_shape(&expected, actual, name, None) {
        panic!("{diff}");
    }
}

/// A request body from its fixture (written from `default` when updating).
/// A `timestamp` (a placement's) is the example's; it is sent as now, so
/// the request is inside its receive window.
fn request(name: &str, default: Value) -> Value {
    let mut body: Value = if updating() {
        let text = serde_json::to_string_pretty(&default).expect("json") + "\n";
        std::fs::write(path(name), text).expect("write fixture");
        default
    } else {
        let text =
            std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
        serde_json::from_str(&text).expect("fixture json")
    };
    if body.get("timestamp").is_some() {
        body["timestamp"] = json!(chrono::Utc::now().timestamp_millis());
    }
    body
}

fn with_coid(mut body: Value, coid: &str) -> Value {
    body["client_order_id"] = json!(coid);
    body
}

#[test]
fn shape_comparison_detects_differences() {
    let base = json!({"a": "1", "status": "new", "n": null, "list": [{"x": 1}]});
    assert!(
        same_shape(
            &base,
            &json!({"a": "2", "status": "new", "n": null, "list": [{"x": 5}]}),
            "",
            None
        )
        .is_ok()
    );
    assert!(
        same_shape(
            &base,
            &json!({"a": 2, "status": "new", "n": null, "list": []}),
            "",
            None
        )
        .is_err()
    );
    assert!(
        same_shape(
            &base,
            &json!({"a": "1", "status": "filled", "n": null, "list": [{"x": 1}]}),
            "",
            None
        )
        .is_err()
    );
    assert!(
        same_shape(
            &base,
            &json!({"a": "1", "status": "new", "n": "x", "list": [{"x": 1}]}),
            "",
            None
        )
        .is_err()
    );
    assert!(
        same_shape(
            &base,
            &json!({"a": "1", "status": "new", "list": [{"x": 1}]}),
            "",
            None
        )
        .is_err()
    );
}

#[tokio::test]
async fn rest_fixtures() {
    // The day starts at pre-open so the ground truth shows both auctions.
    let sim = start_with(exchange_sim::Config {
        fill_interval_ms: 20,
        fill_chunks_min: 3,
        fill_chunks_max: 3,
        clock: exchange_sim::ClockConfig {
            start_phase: exchange_sim::Phase::PreOpen,
            ..exchange_sim::ClockConfig::default()
        },
        ..test_config()
    })
    .await;
    let to_open = request("clock_advance.request.json", json!({"to": "open"}));
    let advanced = sim.admin_post("/admin/clock/advance", &to_open).await;
    assert_eq!(advanced.status, StatusCode::OK, "{}", advanced.body);
    check("clock.json", &advanced.body);
    let clock = sim.get("/v1/clock").await;
    assert_eq!(clock.body["phase"], "open");
    check("clock.json", &clock.body);
    let today = clock.body["session_date"].as_str().expect("date");
    let end =
        chrono::NaiveDate::parse_from_str(today, "%Y-%m-%d").expect("date") + chrono::Days::new(4);
    let days = sim
        .get(&format!("/v1/calendar?start={today}&end={end}"))
        .await;
    assert_eq!(days.status, StatusCode::OK, "{}", days.body);
    check("calendar.json", &days.body);
    check("asset.json", &sim.get("/v1/assets/AAPL").await.body);

    let limit = request(
        "place_order.request.json",
        json!({"client_order_id": "my-order-1", "symbol": "AAPL", "side": "buy", "type": "limit",
               "time_in_force": "day", "qty": "10", "limit_price": "185.50",
               "timestamp": 1764504000000_i64, "recv_window_ms": 5000}),
    );
    let placed = sim.post_json("/v1/orders", &limit).await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    check("order.response.json", &placed.body);
    let limit_id = id_of(&placed);

    let market = request(
        "place_order.market.request.json",
        json!({"client_order_id": "my-order-2", "symbol": "AAPL", "side": "sell", "type": "market",
               "time_in_force": "gtc", "qty": "30",
               "timestamp": 1764504000000_i64, "recv_window_ms": 5000}),
    );
    let market_id = id_of(&sim.post_json("/v1/orders", &market).await);
    let filled = sim
        .wait_order(&market_id, |o| o["status"] == "filled")
        .await;
    check("order.filled.response.json", &filled);
    check(
        "fills.response.json",
        &sim.get(&format!("/v1/orders/{market_id}/fills")).await.body,
    );
    check(
        "orders.list.response.json",
        &sim.get("/v1/orders?status=all&limit=50").await.body,
    );
    check("quote.json", &sim.get("/v1/quotes/AAPL").await.body);
    check("assets.json", &sim.get("/v1/assets").await.body);

    let validation = sim.post_json("/v1/orders", &json!({"client_order_id": "v", "symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day", "qty": "0"})).await;
    assert_eq!(validation.status, StatusCode::BAD_REQUEST);
    check("error.validation.json", &validation.body);
    let duplicate = sim.post_json("/v1/orders", &limit).await;
    assert_eq!(duplicate.status, StatusCode::UNPROCESSABLE_ENTITY);
    check("error.duplicate_client_order_id.json", &duplicate.body);
    let unknown = sim
        .get("/v1/orders/6a1f0a4e-1111-4222-8333-444455556666")
        .await;
    check("error.not_found.json", &unknown.body);
    let unauthorized = sim
        .http
        .get(sim.url("/v1/assets"))
        .send()
        .await
        .expect("send");
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    check(
        "error.unauthorized.json",
        &unauthorized.json().await.expect("json"),
    );
    let too_large = sim.post_raw("/v1/orders", "x".repeat(65 * 1024)).await;
    check("error.payload_too_large.json", &too_large.body);

    let replace = request(
        "replace_order.request.json",
        json!({"client_order_id": "my-order-1-r1", "qty": "12", "limit_price": "185.25",
               "time_in_force": "day",
               "timestamp": 1764504000000_i64, "recv_window_ms": 5000}),
    );
    let replaced = sim
        .post_json(&format!("/v1/orders/{limit_id}/replace"), &replace)
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    check("order.replace.response.json", &replaced.body);
    check(
        "order.replaced.response.json",
        &sim.order(&limit_id).await.body,
    );
    let limit_id = id_of(&replaced);
    assert_eq!(
        sim.delete(&format!("/v1/orders/{limit_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    sim.wait_order(&limit_id, |o| o["status"] == "canceled")
        .await;
    let terminal = sim.delete(&format!("/v1/orders/{limit_id}")).await;
    assert_eq!(terminal.status, StatusCode::UNPROCESSABLE_ENTITY);
    check("error.cancel_terminal.json", &terminal.body);

    let profile = request(
        "faults.json",
        serde_json::to_value(exchange_sim::FaultProfile {
            latency_min_ms: 5,
            latency_max_ms: 50,
            ..exchange_sim::FaultProfile::default()
        })
        .expect("json"),
    );
    assert_eq!(sim.put_faults(profile.clone()).await.status, StatusCode::OK);
    assert_eq!(sim.admin_get("/admin/faults").await.body, profile);

    sim.put_faults(json!({"rate_limited": 1.0})).await;
    let limited = sim.get("/v1/assets").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    check("error.rate_limited.json", &limited.body);
    sim.put_faults(json!({"unavailable": 1.0})).await;
    check("error.unavailable.json", &sim.get("/v1/assets").await.body);
    sim.put_faults(json!({"reject": 1.0})).await;
    let rejected = sim
        .post_json("/v1/orders", &with_coid(market.clone(), "rejected-1"))
        .await;
    assert_eq!(rejected.status, StatusCode::UNPROCESSABLE_ENTITY);
    check("error.venue_rejected.json", &rejected.body);
    sim.put_faults(json!({})).await;
    check(
        "order.rejected.response.json",
        &sim.get("/v1/orders:by_client_order_id?client_order_id=rejected-1")
            .await
            .body,
    );
    sim.put_faults(json!({"response_lost": 1.0, "response_lost_delay_ms": 1}))
        .await;
    let (mut internal, mut timeout) = (None, None);
    for i in 0..40 {
        let reply = sim
            .post_json(
                "/v1/orders",
                &with_coid(market.clone(), &format!("lost-{i}")),
            )
            .await;
        match reply.status.as_u16() {
            500 => internal = Some(reply.body),
            504 => timeout = Some(reply.body),
            other => panic!("unexpected {other}"),
        }
        if internal.is_some() && timeout.is_some() {
            break;
        }
    }
    check("error.internal.json", &internal.expect("a 500"));
    check("error.timeout.json", &timeout.expect("a 504"));
    sim.put_faults(json!({})).await;

    let set_price = request(
        "set_price.request.json",
        json!({"symbol": "AAPL", "price": "191.25"}),
    );
    let quote = sim.admin_post("/admin/prices", &set_price).await;
    assert_eq!(quote.status, StatusCode::OK);
    check("quote.json", &quote.body);

    // Let the orders above finish filling before the day ends.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let listing = request(
        "create_asset.request.json",
        json!({"symbol": "ACME", "name": "Acme Corporation", "price": "42.50",
               "exchange": "NYSE", "shortable": false, "min_qty": "1"}),
    );
    let listed = sim.admin_post("/admin/assets", &listing).await;
    assert_eq!(listed.status, StatusCode::CREATED, "{}", listed.body);
    check("asset.listed.json", &listed.body);
    let halted = sim.admin_post("/admin/assets/AAPL/halt", &json!({})).await;
    assert_eq!(halted.body["halted"], true);
    check("asset.json", &halted.body);
    check(
        "asset.json",
        &sim.admin_post("/admin/assets/AAPL/resume", &json!({}))
            .await
            .body,
    );
    let to_closed = sim
        .admin_post("/admin/clock/advance", &json!({"to": "closed"}))
        .await;
    assert_eq!(to_closed.body["phase"], "closed");
    check(
        "ground_truth.json",
        &sim.admin_get("/admin/ground-truth").await.body,
    );
    check("stats.json", &sim.admin_get("/admin/stats").await.body);
}

#[tokio::test]
async fn stream_fixtures() {
    let sim = start_with(exchange_sim::Config {
        fill_interval_ms: 20,
        fill_chunks_min: 2,
        fill_chunks_max: 2,
        ..test_config()
    })
    .await;
    let auth = request(
        "stream.auth.request.json",
        json!({"action": "auth", "key": "sim-venue-key"}),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(sim.handle.stream_url())
        .await
        .expect("connect");
    ws.send(Message::text(auth.to_string()))
        .await
        .expect("send");
    let mut stream = Stream { ws };
    check(
        "stream.auth.json",
        &stream.next_json().await.expect("auth answer"),
    );
    check(
        "stream.heartbeat.json",
        &stream.next_json().await.expect("heartbeat"),
    );

    let mut by_type = std::collections::BTreeMap::new();
    let mut record = |reports: Vec<Value>| {
        for r in reports {
            by_type
                .entry(r["exec_type"].as_str().expect("exec_type").to_owned())
                .or_insert(r);
        }
    };
    let id = id_of(&sim.place("s-1", "AAPL", "buy", "day", "10", None).await);
    record(stream.reports_until_terminal(&id).await);
    let id = id_of(
        &sim.place("s-2", "AAPL", "buy", "gtc", "10", Some("100"))
            .await,
    );
    sim.delete(&format!("/v1/orders/{id}")).await;
    record(stream.reports_until_terminal(&id).await);
    let id = id_of(
        &sim.place("s-3", "AAPL", "buy", "ioc", "10", Some("100"))
            .await,
    );
    record(stream.reports_until_terminal(&id).await);
    sim.put_faults(json!({"reject": 1.0})).await;
    let rejected = sim.place("s-4", "AAPL", "buy", "day", "10", None).await;
    assert_eq!(rejected.status, StatusCode::UNPROCESSABLE_ENTITY);
    record(vec![stream.next_report().await]);
    sim.put_faults(json!({"fill_races_cancel": 1.0})).await;
    let id = id_of(&sim.place("s-5", "AAPL", "buy", "gtc", "10", None).await);
    sim.delete(&format!("/v1/orders/{id}")).await;
    let mut reports = stream.reports_until_terminal(&id).await;
    reports.push(stream.next_report().await);
    record(reports);
    for kind in [
        "new",
        "partial_fill",
        "fill",
        "canceled",
        "expired",
        "rejected",
        "cancel_rejected",
    ] {
        let report = by_type
            .get(kind)
            .unwrap_or_else(|| panic!("no {kind} report seen"));
        check(&format!("stream.execution_report.{kind}.json"), report);
    }

    let (mut ws, _) = tokio_tungstenite::connect_async(sim.handle.stream_url())
        .await
        .expect("connect");
    ws.send(Message::text(
        json!({"action": "auth", "key": "wrong"}).to_string(),
    ))
    .await
    .expect("send");
    let mut bad = Stream { ws };
    check("stream.error.json", &bad.next_json().await.expect("error"));
}

/// The trading day's messages: `accepted` outside continuous trading,
/// OPG/CLS placements, `done_for_day` at the close.
#[tokio::test]
async fn session_fixtures() {
    let sim = start_with(exchange_sim::Config {
        clock: exchange_sim::ClockConfig {
            start_phase: exchange_sim::Phase::Closed,
            ..exchange_sim::ClockConfig::default()
        },
        ..test_config()
    })
    .await;
    let mut stream = sim.stream().await;
    let opg = request(
        "place_order.opg.request.json",
        json!({"client_order_id": "my-opg-1", "symbol": "AAPL", "side": "buy", "type": "market",
               "time_in_force": "opg", "qty": "10",
               "timestamp": 1764504000000_i64, "recv_window_ms": 5000}),
    );
    let placed = sim.post_json("/v1/orders", &opg).await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    assert_eq!(placed.body["status"], "accepted");
    check("order.accepted.response.json", &placed.body);
    check(
        "stream.execution_report.accepted.json",
        &stream.next_report().await,
    );
    let gtc = id_of(
        &sim.place("s-gtc", "AAPL", "buy", "gtc", "5", Some("100"))
            .await,
    );
    sim.admin_post("/admin/clock/advance", &json!({"to": "pre_open"}))
        .await;
    let cls = request(
        "place_order.cls.request.json",
        json!({"client_order_id": "my-cls-1", "symbol": "AAPL", "side": "sell", "type": "limit",
               "time_in_force": "cls", "qty": "10", "limit_price": "150.00",
               "timestamp": 1764504000000_i64, "recv_window_ms": 5000}),
    );
    let placed = sim.post_json("/v1/orders", &cls).await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    assert_eq!(placed.body["status"], "accepted");
    sim.admin_post("/admin/clock/advance", &json!({"to": "open"}))
        .await;
    sim.admin_post("/admin/clock/advance", &json!({"to": "closed"}))
        .await;
    loop {
        let report = stream.next_report().await;
        if report["order_id"] == gtc.as_str() && report["exec_type"] == "done_for_day" {
            check("stream.execution_report.done_for_day.json", &report);
            break;
        }
    }
}

/// The stop types: a placement of each, the answers (waiting for the
/// trigger), a triggered and filled stop, and a refusal by their rules.
#[tokio::test]
async fn stop_fixtures() {
    let sim = start().await;
    let stop = request(
        "place_order.stop.request.json",
        json!({"client_order_id": "my-stop-1", "symbol": "AAPL", "side": "sell", "type": "stop",
               "time_in_force": "gtc", "qty": "10", "stop_price": "185.00",
               "timestamp": 1764504000000_i64, "recv_window_ms": 5000}),
    );
    let placed = sim.post_json("/v1/orders", &stop).await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    assert_eq!(placed.body["triggered_at"], Value::Null);
    check("order.stop.response.json", &placed.body);
    let stop_id = id_of(&placed);

    let stop_limit = request(
        "place_order.stop_limit.request.json",
        json!({"client_order_id": "my-stop-limit-1", "symbol": "AAPL", "side": "buy",
               "type": "stop_limit", "time_in_force": "day", "qty": "10",
               "stop_price": "195.00", "limit_price": "195.50",
               "timestamp": 1764504000000_i64, "recv_window_ms": 5000}),
    );
    let placed = sim.post_json("/v1/orders", &stop_limit).await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    check("order.stop_limit.response.json", &placed.body);

    let trailing = request(
        "place_order.trailing_stop.request.json",
        json!({"client_order_id": "my-trailing-1", "symbol": "AAPL", "side": "sell",
               "type": "trailing_stop", "time_in_force": "gtc", "qty": "10",
               "trail_percent": "1.5",
               "timestamp": 1764504000000_i64, "recv_window_ms": 5000}),
    );
    let placed = sim.post_json("/v1/orders", &trailing).await;
    assert_eq!(placed.status, StatusCode::OK, "{}", placed.body);
    assert!(placed.body["hwm"].is_string() && placed.body["stop_price"].is_string());
    check("order.trailing_stop.response.json", &placed.body);

    let refused = sim
        .post_json(
            "/v1/orders",
            &with_coid(
                json!({"symbol": "AAPL", "side": "sell", "type": "stop", "time_in_force": "day",
                       "qty": "10"}),
                "my-stop-2",
            ),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    check("error.stop_rule.json", &refused.body);

    let quote = sim
        .admin_post(
            "/admin/prices",
            &json!({"symbol": "AAPL", "price": "185.00"}),
        )
        .await;
    assert_eq!(quote.status, StatusCode::OK);
    let filled = sim.wait_order(&stop_id, |o| o["status"] == "filled").await;
    assert!(filled["triggered_at"].is_string());
    check("order.stop.filled.response.json", &filled);
}

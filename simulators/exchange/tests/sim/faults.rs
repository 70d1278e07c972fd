//! Every fault mode at probability 1.0.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn stats(sim: &Sim) -> Value {
    sim.admin_get("/admin/stats").await.body
}

#[tokio::test]
async fn response_lost_creates_the_order_and_answers_504_or_500() {
    let sim = start().await;
    assert_eq!(
        sim.put_faults(json!({"response_lost": 1.0, "response_lost_delay_ms": 50}))
            .await
            .status,
        StatusCode::OK
    );
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..8 {
        let coid = format!("lost-{i}");
        let reply = sim
            .place(&coid, "AAPL", "buy", "gtc", "1", Some("150"))
            .await;
        assert!(
            matches!(reply.status.as_u16(), 500 | 504),
            "{:?}",
            reply.status
        );
        assert_eq!(
            reply.body["code"],
            if reply.status == 500 {
                50010000
            } else {
                50410000
            }
        );
        seen.insert(reply.status.as_u16());
        let found = sim
            .get(&format!(
                "/v1/orders:by_client_order_id?client_order_id={coid}"
            ))
            .await;
        assert_eq!(found.status, StatusCode::OK);
        assert_eq!(found.body["status"], "new");
    }
    assert_eq!(seen.len(), 2, "both symptoms occur");
    let s = stats(&sim).await;
    assert_eq!(
        s["faults"]["response_lost_timeout"].as_u64().expect("n")
            + s["faults"]["response_lost_500"].as_u64().expect("n"),
        8
    );
}

#[tokio::test]
async fn venue_reject_records_a_rejected_order_and_answers_422() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    sim.put_faults(json!({"reject": 1.0})).await;
    let reply = sim.place("rej-1", "AAPL", "buy", "day", "1", None).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["code"], 42210000);
    let found = sim
        .get("/v1/orders:by_client_order_id?client_order_id=rej-1")
        .await
        .body;
    assert_eq!(found["status"], "rejected");
    assert!(found["reject_reason"].is_string());
    assert_eq!(found["leaves_qty"], "0");
    let report = stream.next_report().await;
    assert_eq!(report["exec_type"], "rejected");
    assert_eq!(report["status"], "rejected");
    assert!(report["reason"].is_string());
    sim.put_faults(json!({})).await;
    let retry = sim.place("rej-1", "AAPL", "buy", "day", "1", None).await;
    assert_eq!(retry.body["message"], "client_order_id must be unique");
}

#[tokio::test]
async fn rejection_with_lost_response_looks_like_a_lost_response() {
    let sim = start().await;
    sim.put_faults(json!({"reject_response_lost": 1.0, "response_lost_delay_ms": 10}))
        .await;
    let reply = sim.place("rl-1", "AAPL", "buy", "day", "1", None).await;
    assert!(matches!(reply.status.as_u16(), 500 | 504));
    let found = sim
        .get("/v1/orders:by_client_order_id?client_order_id=rl-1")
        .await
        .body;
    assert_eq!(found["status"], "rejected");
    assert_eq!(stats(&sim).await["faults"]["reject_response_lost"], 1);
}

#[tokio::test]
async fn rate_limited_and_unavailable_create_nothing() {
    let sim = start().await;
    sim.put_faults(json!({"rate_limited": 1.0, "retry_after_secs": 3}))
        .await;
    let reply = sim.place("rl-2", "AAPL", "buy", "day", "1", None).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.body["code"], 42910000);
    assert_eq!(reply.headers["retry-after"], "3");
    assert_eq!(
        sim.get("/v1/assets").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // /admin is never faulted.
    assert_eq!(sim.admin_get("/admin/stats").await.status, StatusCode::OK);

    sim.put_faults(json!({"unavailable": 1.0})).await;
    let reply = sim.place("rl-2", "AAPL", "buy", "day", "1", None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body["code"], 50310000);

    let truth = sim.admin_get("/admin/ground-truth").await.body;
    assert_eq!(truth["orders"], json!([]));
    assert_eq!(
        truth["placement_requests"]["rl-2"], 2,
        "raw requests are counted"
    );
    sim.put_faults(json!({})).await;
    assert_eq!(
        sim.place("rl-2", "AAPL", "buy", "day", "1", None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn stale_read_hides_a_young_order() {
    let sim = start().await;
    sim.put_faults(json!({"stale_read": 1.0, "stale_read_window_ms": 300}))
        .await;
    let id = id_of(
        &sim.place("st-1", "AAPL", "buy", "gtc", "1", Some("150"))
            .await,
    );
    assert_eq!(sim.order(&id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        sim.get("/v1/orders:by_client_order_id?client_order_id=st-1")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(sim.order(&id).await.status, StatusCode::OK);
    assert!(
        stats(&sim).await["faults"]["stale_read"]
            .as_u64()
            .expect("n")
            >= 2
    );
}

#[tokio::test]
async fn latency_delays_v1_requests() {
    let sim = start().await;
    sim.put_faults(json!({"latency": 1.0, "latency_min_ms": 150, "latency_max_ms": 150}))
        .await;
    let started = Instant::now();
    assert_eq!(sim.get("/v1/assets").await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = Instant::now();
    sim.admin_get("/admin/faults").await;
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn duplicate_reports_repeat_the_exec_id_with_a_new_seq() {
    let sim = start().await;
    sim.put_faults(json!({"duplicate_report": 1.0})).await;
    let mut stream = sim.stream().await;
    sim.place("dr-1", "AAPL", "buy", "ioc", "1", None).await;
    let messages = stream.collect_for(Duration::from_millis(150)).await;
    let reports: Vec<_> = messages
        .iter()
        .filter(|m| m["type"] == "execution_report")
        .collect();
    assert_eq!(reports.len(), 4, "new + fill, each twice: {reports:?}");
    let seqs: Vec<_> = reports
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let mut exec_ids: Vec<_> = reports
        .iter()
        .map(|r| r["exec_id"].as_str().expect("id"))
        .collect();
    exec_ids.sort();
    exec_ids.dedup();
    assert_eq!(exec_ids.len(), 2);
}

#[tokio::test]
async fn out_of_order_reports_swap_delivery_but_keep_seqs_ascending() {
    let sim = start().await;
    sim.put_faults(json!({"out_of_order_report": 1.0})).await;
    let mut stream = sim.stream().await;
    sim.place("oo-1", "AAPL", "buy", "ioc", "1", None).await;
    let messages = stream.collect_for(Duration::from_millis(150)).await;
    let reports: Vec<_> = messages
        .iter()
        .filter(|m| m["type"] == "execution_report")
        .collect();
    let types: Vec<_> = reports
        .iter()
        .map(|r| r["exec_type"].as_str().expect("t"))
        .collect();
    assert_eq!(types, ["fill", "new"]);
    let seqs: Vec<_> = reports
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [1, 2]);
}

#[tokio::test]
async fn dropped_reports_leave_a_gap_visible_in_the_heartbeat() {
    let sim = start().await;
    sim.put_faults(json!({"drop_report": 1.0})).await;
    let mut stream = sim.stream().await;
    sim.place("drop-1", "AAPL", "buy", "ioc", "1", None).await;
    loop {
        let msg = stream.next_json().await.expect("open");
        assert_eq!(msg["type"], "heartbeat", "no report is delivered: {msg}");
        if msg["seq"] == 2 {
            break;
        }
    }
    assert_eq!(stats(&sim).await["faults"]["drop_report"], 2);
}

#[tokio::test]
async fn disconnect_closes_the_stream() {
    let sim = start().await;
    sim.put_faults(json!({"disconnect": 1.0})).await;
    let mut stream = sim.stream().await;
    sim.place("dc-1", "AAPL", "buy", "ioc", "1", None).await;
    assert!(
        stream.next_json().await.is_none(),
        "closed without a report"
    );
    assert_eq!(stats(&sim).await["faults"]["disconnect"], 1);
}

#[tokio::test]
async fn fill_after_cancel_arrives_after_canceled_and_the_order_stays_canceled() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    sim.put_faults(json!({"fill_after_cancel": 1.0})).await;
    let id = id_of(
        &sim.place("fac-1", "AAPL", "buy", "gtc", "10", Some("150"))
            .await,
    );
    assert_eq!(
        sim.delete(&format!("/v1/orders/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    let mut reports = stream.reports_until_terminal(&id).await;
    assert_eq!(reports.last().expect("r")["exec_type"], "canceled");
    let late = stream.next_report().await;
    assert_eq!(late["exec_type"], "partial_fill");
    assert_eq!(late["status"], "canceled");
    assert_eq!(late["last_qty"], "5");
    assert_eq!(late["cum_qty"], "5");
    assert_eq!(late["leaves_qty"], "0");
    reports.push(late);
    let order = sim.wait_order(&id, |o| o["filled_qty"] == "5").await;
    assert_eq!(order["status"], "canceled");
    assert_eq!(order["leaves_qty"], "0");
    assert_eq!(
        sim.get(&format!("/v1/orders/{id}/fills"))
            .await
            .body
            .as_array()
            .expect("a")
            .len(),
        1
    );
}

#[tokio::test]
async fn fill_races_cancel_ends_filled_with_cancel_rejected() {
    let sim = start_with(exchange_sim::Config {
        fill_interval_ms: 300,
        fill_chunks_min: 3,
        fill_chunks_max: 3,
        ..test_config()
    })
    .await;
    let mut stream = sim.stream().await;
    sim.put_faults(json!({"fill_races_cancel": 1.0})).await;
    let id = id_of(&sim.place("frc-1", "AAPL", "buy", "gtc", "30", None).await);
    assert_eq!(
        sim.delete(&format!("/v1/orders/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    let reports = stream.reports_until_terminal(&id).await;
    assert_eq!(reports.last().expect("r")["status"], "filled");
    let next = stream.next_report().await;
    assert_eq!(next["exec_type"], "cancel_rejected");
    assert_eq!(next["status"], "filled");
    assert_eq!(sim.order(&id).await.body["filled_qty"], "30");
}

#[tokio::test]
async fn fault_profile_is_validated_and_missing_fields_are_off() {
    let sim = start().await;
    assert_eq!(
        sim.put_faults(json!({"reject": 2.0})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.put_faults(json!({"rejekt": 1.0})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.put_faults(json!({"latency": 1.0, "latency_min_ms": 5, "latency_max_ms": 1}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let put = sim.put_faults(json!({"drop_report": 0.25})).await;
    assert_eq!(put.status, StatusCode::OK);
    let got = sim.admin_get("/admin/faults").await.body;
    assert_eq!(got["drop_report"], 0.25);
    assert_eq!(got["reject"], 0.0);
    assert_eq!(got["response_lost_delay_ms"], 200);
    assert_eq!(sim.handle.faults().drop_report, 0.25);
}

fn placement(coid: &str, timestamp: i64, window: i64) -> Value {
    json!({"client_order_id": coid, "symbol": "AAPL", "side": "buy", "type": "limit",
           "time_in_force": "gtc", "qty": "1", "limit_price": "150",
           "timestamp": timestamp, "recv_window_ms": window})
}

#[tokio::test]
async fn a_placement_past_its_receive_window_is_refused_and_creates_nothing() {
    let sim = start().await;
    let now = chrono::Utc::now().timestamp_millis();
    let fresh = sim
        .post_json("/v1/orders", &placement("rw-1", now, 5000))
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    let stale = sim
        .post_json("/v1/orders", &placement("rw-2", now - 10_000, 5000))
        .await;
    assert_eq!(stale.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        stale.body["message"]
            .as_str()
            .unwrap()
            .contains("recv_window"),
        "{}",
        stale.body
    );
    let found = sim
        .get("/v1/orders:by_client_order_id?client_order_id=rw-2")
        .await;
    assert_eq!(found.status, StatusCode::NOT_FOUND, "nothing was created");
    let alone = json!({"client_order_id": "rw-3", "symbol": "AAPL", "side": "buy",
                       "type": "market", "time_in_force": "day", "qty": "1", "timestamp": now});
    assert_eq!(
        sim.post_json("/v1/orders", &alone).await.status,
        StatusCode::BAD_REQUEST,
        "timestamp and recv_window_ms go together"
    );
}

#[tokio::test]
async fn a_late_arrival_reaches_the_venue_after_the_client_gave_up_unless_its_window_passed() {
    let sim = start().await;
    sim.put_faults(json!({"late_arrival": 1.0, "late_arrival_ms": 400,
                          "response_lost_delay_ms": 10}))
        .await;
    let now = chrono::Utc::now().timestamp_millis();
    let within = sim
        .post_json("/v1/orders", &placement("late-1", now, 5000))
        .await;
    assert_eq!(within.status, StatusCode::GATEWAY_TIMEOUT);
    let expires = sim
        .post_json("/v1/orders", &placement("late-2", now, 200))
        .await;
    assert_eq!(expires.status, StatusCode::GATEWAY_TIMEOUT);
    sim.put_faults(json!({})).await;
    let lookup = |coid: &'static str| {
        let sim = &sim;
        async move {
            sim.get(&format!(
                "/v1/orders:by_client_order_id?client_order_id={coid}"
            ))
            .await
            .status
        }
    };
    assert_eq!(
        lookup("late-1").await,
        StatusCode::NOT_FOUND,
        "not arrived yet"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(lookup("late-1").await, StatusCode::OK, "it arrived late");
    assert_eq!(
        lookup("late-2").await,
        StatusCode::NOT_FOUND,
        "it arrived after its window: refused"
    );
    assert_eq!(stats(&sim).await["faults"]["late_arrival"], 2);
}

#[tokio::test]
async fn a_late_cancel_acknowledgement_takes_effect_after_the_delay() {
    let sim = start().await;
    let id = id_of(
        &sim.place("cd-1", "AAPL", "buy", "gtc", "1", Some("1.00"))
            .await,
    );
    sim.put_faults(json!({"cancel_delay_ms": 400})).await;
    let started = Instant::now();
    assert_eq!(
        sim.delete(&format!("/v1/orders/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.order(&id).await.body["status"], "pending_cancel");
    sim.wait_order(&id, |o| o["status"] == "canceled").await;
    assert!(started.elapsed() >= Duration::from_millis(350));
}

#[tokio::test]
async fn admin_disconnect_closes_every_stream() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let reply = sim.admin_post("/admin/disconnect", &json!({})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["connections"], 1);
    // The connection ends (a close frame, then nothing).
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Ok(None) = tokio::time::timeout(Duration::from_millis(500), stream.next_json()).await
        {
            break;
        }
        assert!(Instant::now() < deadline, "the stream stayed open");
    }
}

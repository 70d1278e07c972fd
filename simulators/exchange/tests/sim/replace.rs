//! Cancel/replace: atomic at the venue, keyed by the replacement's
//! client_order_id, the replaced order's fills carried into its
//! replacement, refused as FIX refuses it, and the fill that races it.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

async fn replace(sim: &Sim, id: &str, body: serde_json::Value) -> Reply {
    sim.post_json(&format!("/v1/orders/{id}/replace"), &body)
        .await
}

#[tokio::test]
async fn a_resting_order_is_replaced_at_once_and_the_same_request_answers_the_same_order() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let original = sim
        .place("rest-1", "MSFT", "buy", "gtc", "10", Some("400.00"))
        .await;
    let id = id_of(&original);
    let body = json!({"client_order_id": "rest-1-r1", "qty": "12", "limit_price": "401"});
    let reply = replace(&sim, &id, body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let new_id = id_of(&reply);
    assert_ne!(new_id, id);
    assert_eq!(reply.body["client_order_id"], "rest-1-r1");
    assert_eq!(reply.body["replaces"], id.as_str());
    assert_eq!(
        (
            &reply.body["qty"],
            &reply.body["carried_qty"],
            &reply.body["limit_price"]
        ),
        (&json!("12"), &json!("0"), &json!("401"))
    );
    assert_eq!(reply.body["status"], "new");
    assert_eq!(reply.body["time_in_force"], "gtc", "kept from the original");

    let replaced = sim.order(&id).await.body;
    assert_eq!(replaced["status"], "replaced");
    assert_eq!(replaced["replaced_by"], new_id.as_str());
    assert_eq!(replaced["leaves_qty"], "0");
    let reports = stream.reports_until_terminal(&id).await;
    let last = reports.last().expect("a report");
    assert_eq!(
        (&last["exec_type"], &last["status"]),
        (&json!("replaced"), &json!("replaced"))
    );
    let first = stream.next_report().await;
    assert_eq!(
        (&first["order_id"], &first["exec_type"]),
        (&json!(new_id), &json!("new"))
    );

    // The same request again: the same replacement, nothing new.
    let again = replace(&sim, &id, body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(id_of(&again), new_id);
    let found = sim
        .get("/v1/orders:by_client_order_id?client_order_id=rest-1-r1")
        .await;
    assert_eq!(id_of(&found), new_id);
    let listed = sim.get("/v1/orders?status=all").await.body;
    assert_eq!(listed.as_array().expect("a list").len(), 2, "{listed}");

    // The key of this replacement for another order; the replaced order
    // again under a new key.
    let other = id_of(
        &sim.place("rest-2", "MSFT", "buy", "gtc", "1", Some("400.00"))
            .await,
    );
    let taken = replace(&sim, &other, json!({"client_order_id": "rest-1-r1"})).await;
    assert_eq!(
        taken.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        taken.body
    );
    let done = replace(&sim, &id, json!({"client_order_id": "rest-1-r2"})).await;
    assert_eq!(done.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        done.body["message"]
            .as_str()
            .expect("a message")
            .contains("already replaced"),
        "{}",
        done.body
    );
}

/// What the original filled stays its own and is carried into the
/// replacement, which works only the rest; the original executes no more.
#[tokio::test]
async fn a_partly_filled_order_carries_its_fills_into_its_replacement() {
    let sim = start_with(exchange_sim::Config {
        fill_interval_ms: 400,
        fill_chunks_min: 3,
        fill_chunks_max: 3,
        ..test_config()
    })
    .await;
    let id = id_of(
        &sim.place("part-1", "MSFT", "buy", "gtc", "30", Some("430.00"))
            .await,
    );
    let partial = sim.wait_order(&id, |o| o["filled_qty"] != "0").await;
    let filled = dec(&partial["filled_qty"]);
    assert!(filled < 30.into(), "{partial}");

    let too_few = replace(
        &sim,
        &id,
        json!({"client_order_id": "part-1-r0", "qty": filled.to_string()}),
    )
    .await;
    assert_eq!(too_few.status, StatusCode::BAD_REQUEST, "{}", too_few.body);

    let reply = replace(
        &sim,
        &id,
        json!({"client_order_id": "part-1-r1", "qty": "40", "limit_price": "300"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(dec(&reply.body["carried_qty"]), filled);
    assert_eq!(
        dec(&reply.body["qty"]),
        rust_decimal::Decimal::from(40) - filled
    );
    assert_eq!(reply.body["filled_qty"], "0");
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let original = sim.order(&id).await.body;
    assert_eq!(original["status"], "replaced");
    assert_eq!(
        dec(&original["filled_qty"]),
        filled,
        "no fill after the replace"
    );
    let fills = sim.get(&format!("/v1/orders/{id}/fills")).await.body;
    let fill_sum: rust_decimal::Decimal = fills
        .as_array()
        .expect("fills")
        .iter()
        .map(|f| dec(&f["qty"]))
        .sum();
    assert_eq!(fill_sum, filled);
    assert_eq!(
        sim.order(&id_of(&reply)).await.body["status"],
        "new",
        "rests at 300"
    );
}

#[tokio::test]
async fn a_fill_on_its_way_executes_first_and_the_replace_is_refused() {
    let sim = start_with(exchange_sim::Config {
        fill_interval_ms: 300,
        fill_chunks_min: 3,
        fill_chunks_max: 3,
        ..test_config()
    })
    .await;
    sim.put_faults(json!({"fill_races_replace": 1.0})).await;
    let id = id_of(
        &sim.place("race-1", "AAPL", "buy", "gtc", "30", Some("1000.00"))
            .await,
    );
    let refused = replace(
        &sim,
        &id,
        json!({"client_order_id": "race-1-r1", "qty": "40"}),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["message"], "order is already filled");
    let original = sim.order(&id).await.body;
    assert_eq!(
        (&original["status"], &original["filled_qty"]),
        (&json!("filled"), &json!("30"))
    );
    let missing = sim
        .get("/v1/orders:by_client_order_id?client_order_id=race-1-r1")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let stats = sim.admin_get("/admin/stats").await.body;
    assert_eq!(stats["faults"]["fill_races_replace"], 1, "{stats}");
}

/// A lost answer (the replace took effect): the replacement is found by
/// its client_order_id, and the request sent again answers it.
#[tokio::test]
async fn a_replace_whose_answer_is_lost_took_effect_and_is_answered_again() {
    let sim = start().await;
    let id = id_of(
        &sim.place("lost-1", "MSFT", "buy", "gtc", "5", Some("400.00"))
            .await,
    );
    sim.put_faults(json!({"response_lost": 1.0, "response_lost_delay_ms": 10}))
        .await;
    let body = json!({"client_order_id": "lost-1-r1", "qty": "6"});
    let lost = replace(&sim, &id, body.clone()).await;
    assert!(lost.status.is_server_error(), "{}", lost.body);
    sim.put_faults(json!({})).await;
    let found = sim
        .get("/v1/orders:by_client_order_id?client_order_id=lost-1-r1")
        .await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(sim.order(&id).await.body["status"], "replaced");
    let again = replace(&sim, &id, body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(id_of(&again), id_of(&found));
}

#[tokio::test]
async fn what_cannot_be_replaced_is_refused_and_changes_nothing() {
    let sim = start().await;
    let unknown = replace(
        &sim,
        "00000000-0000-0000-0000-000000000000",
        json!({"client_order_id": "x"}),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let id = id_of(
        &sim.place("no-1", "MSFT", "buy", "gtc", "5", Some("400.00"))
            .await,
    );
    for (body, status) in [
        (json!({"qty": "6"}), StatusCode::BAD_REQUEST),
        (
            json!({"client_order_id": "no-1-r", "time_in_force": "ioc"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"client_order_id": "no-1-r", "qty": "-1"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"client_order_id": "no-1-r", "limit_price": "400.001"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let reply = replace(&sim, &id, body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
    }
    // Past its receive window (a timestamp a minute old, a 5 s window):
    // refused as a late placement is, nothing replaced.
    let stale = chrono::Utc::now().timestamp_millis() - 60_000;
    let late = replace(
        &sim,
        &id,
        json!({"client_order_id": "no-1-late", "qty": "6",
               "timestamp": stale, "recv_window_ms": 5000}),
    )
    .await;
    assert_eq!(
        late.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        late.body
    );
    assert!(
        late.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("recv_window"),
        "{}",
        late.body
    );
    let malformed = sim.post_raw(&format!("/v1/orders/{id}/replace"), "{").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(sim.order(&id).await.body["status"], "new", "unchanged");

    // Pending a cancel; a notional order; an IOC order (done at once).
    let canceling = id_of(
        &sim.place("no-2", "MSFT", "buy", "gtc", "5", Some("400.00"))
            .await,
    );
    sim.delete(&format!("/v1/orders/{canceling}")).await;
    let notional = id_of(
        &sim.post_json(
            "/v1/orders",
            &json!({"client_order_id": "no-3", "symbol": "AAPL", "side": "buy",
                    "type": "market", "time_in_force": "day", "notional": "100"}),
        )
        .await,
    );
    let ioc = id_of(
        &sim.place("no-4", "MSFT", "buy", "ioc", "5", Some("400.00"))
            .await,
    );
    for order in [canceling, notional, ioc] {
        let reply = replace(
            &sim,
            &order,
            json!({"client_order_id": format!("{order}-r")}),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.body
        );
    }
}

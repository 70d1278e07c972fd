//! `X-Request-Id` end to end: the client's id (when usable) or a fresh
//! UUIDv7 comes back on the response, and the actions a request caused
//! record it: the accept of an order, a trader's cancel, a position's
//! close (an ordinary sell, accepted like any order).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestStack, Trader};

const HEADER: &str = "x-request-id";

fn resting_buy() -> Value {
    json!({"symbol": "AAPL", "qty": "2", "side": "buy", "type": "limit",
           "time_in_force": "gtc", "limit_price": "1.00"})
}

fn authed(trader: &Trader, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request
        .header("APCA-API-KEY-ID", &trader.key_id)
        .header("APCA-API-SECRET-KEY", &trader.secret_key)
}

/// The id the response carries.
fn answered_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(HEADER)
        .unwrap_or_else(|| panic!("no {HEADER} on {}", response.status()))
        .to_str()
        .unwrap()
        .to_string()
}

fn assert_generated(id: &str, sent: &str) {
    assert_ne!(id, sent, "an unusable id was echoed");
    let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("{id:?} is not a UUID"));
    assert_eq!(uuid.get_version_num(), 7, "{id}");
}

/// `(step, state, detail)` of each of the order's events, oldest first.
async fn events(stack: &TestStack, order_id: &str) -> Vec<(String, String, Value)> {
    sqlx::query_as(
        "SELECT step, state, detail FROM order_events WHERE order_id = $1::uuid ORDER BY event_id",
    )
    .bind(order_id)
    .fetch_all(&stack.app.db.pool)
    .await
    .expect("events")
}

/// Submits a resting buy, sending `request_id` if given; the order's id
/// and the request id answered.
async fn submit(stack: &TestStack, trader: &Trader, request_id: Option<&str>) -> (String, String) {
    let mut request =
        authed(trader, stack.http.post(stack.app.url("/v2/orders"))).json(&resting_buy());
    if let Some(id) = request_id {
        request = request.header(HEADER, id);
    }
    let response = request.send().await.expect("POST /v2/orders");
    assert_eq!(response.status(), 200);
    let answered = answered_id(&response);
    let body: Value = response.json().await.unwrap();
    (body["id"].as_str().unwrap().to_string(), answered)
}

/// The accept's event names the request.
async fn accepted_by(stack: &TestStack, order_id: &str) -> Value {
    let events = events(stack, order_id).await;
    let (step, state, detail) = &events[0];
    assert_eq!((step.as_str(), state.as_str()), ("reserve", "requested"));
    assert_eq!(detail["accepted"], true, "{detail}");
    detail["request_id"].clone()
}

#[tokio::test]
async fn a_clients_request_id_is_echoed_and_recorded_on_the_accept_and_the_cancel() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;

    let (order_id, answered) = submit(&stack, &trader, Some("client-req.0001_A")).await;
    assert_eq!(answered, "client-req.0001_A");
    assert_eq!(accepted_by(&stack, &order_id).await, "client-req.0001_A");

    let response = authed(
        &trader,
        stack
            .http
            .delete(stack.app.url(&format!("/v2/orders/{order_id}"))),
    )
    .header(HEADER, "cancel-req/42")
    .send()
    .await
    .expect("DELETE");
    assert_eq!(response.status(), 204);
    assert_eq!(answered_id(&response), "cancel-req/42");
    let events = events(&stack, &order_id).await;
    let cancel: Vec<_> = events
        .iter()
        .filter(|(_, _, d)| d["request_id"] == "cancel-req/42")
        .collect();
    assert_eq!(cancel.len(), 1, "{events:?}");
    assert_eq!(
        (cancel[0].0.as_str(), cancel[0].1.as_str()),
        ("cancel", "requested")
    );
    // Only the events the requests recorded name them: the driver's own
    // steps name none.
    let named = events
        .iter()
        .filter(|(_, _, d)| d.get("request_id").is_some())
        .count();
    assert_eq!(named, 2, "{events:?}");
}

#[tokio::test]
async fn a_request_without_an_id_gets_a_generated_one_on_every_answer() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;

    let (order_id, answered) = submit(&stack, &trader, None).await;
    assert_generated(&answered, "");
    assert_eq!(accepted_by(&stack, &order_id).await, answered.as_str());

    // Errors and the console carry one too, each request its own.
    let unauthorized = stack
        .http
        .get(stack.app.url("/v2/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let not_found = authed(&trader, stack.http.get(stack.app.url("/v2/nothing")))
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status(), 404);
    let console = stack
        .http
        .get(stack.app.url("/console/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), 200);
    let ids = [
        answered_id(&unauthorized),
        answered_id(&not_found),
        answered_id(&console),
    ];
    for id in &ids {
        assert_generated(id, "");
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != answered);
}

#[tokio::test]
async fn an_unusable_request_id_is_replaced_not_echoed() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;

    let too_long = "r".repeat(129);
    let (order_id, answered) = submit(&stack, &trader, Some(&too_long)).await;
    assert_generated(&answered, &too_long);
    assert_eq!(accepted_by(&stack, &order_id).await, answered.as_str());
    // The longest usable one is kept.
    let longest = "r".repeat(128);
    assert_eq!(submit(&stack, &trader, Some(&longest)).await.1, longest);

    for unusable in [
        b"tab\there".as_slice(),
        b"two words",
        "caf\u{e9}".as_bytes(),
        b"",
    ] {
        let response = authed(&trader, stack.http.get(stack.app.url("/v2/orders")))
            .header(
                HEADER,
                reqwest::header::HeaderValue::from_bytes(unusable).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_generated(&answered_id(&response), &String::from_utf8_lossy(unusable));
    }
}

#[tokio::test]
async fn a_positions_close_records_its_request_on_the_sells_accept() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let buy = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": "3", "side": "buy", "type": "market",
                           "time_in_force": "day"}),
        )
        .await;
    assert_eq!(buy.status, 200, "{}", buy.body);
    // The shares are closable once the buy's fill settled at the ledger.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while trader.get("/v2/positions/AAPL").await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "no position");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = authed(
        &trader,
        stack.http.delete(stack.app.url("/v2/positions/AAPL")),
    )
    .header(HEADER, "close-req-7")
    .send()
    .await
    .unwrap();
    assert_eq!(answered_id(&response), "close-req-7");
    let sell: Value = response.json().await.unwrap();
    let sell_id = sell["id"].as_str().unwrap_or_else(|| panic!("{sell}"));
    assert_eq!(accepted_by(&stack, sell_id).await, "close-req-7");
}

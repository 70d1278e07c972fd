//! Idempotency keys: replay (errors included), reuse with another body, in flight.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app, tha};

#[tokio::test]
async fn hold_replay_returns_the_same_response_with_the_replay_header() {
    let app = spawn_app().await;
    app.create_account("alice", json!({"USD": "100"})).await;
    let first = app.hold("k1", "alice", "USD", "10").await;
    assert!(!first.replayed());
    let first_body = first.expect(201);
    // Same amount written differently is the same request.
    let again = app.hold("k1", "alice", "USD", "10.00").await;
    assert!(again.replayed());
    assert_eq!(again.expect(201), first_body);
    assert_eq!(app.balance("alice", "USD").await, tha("100", "10", "90"));
    let reused = app.hold("k1", "alice", "USD", "11").await;
    assert!(!reused.replayed());
    assert_eq!(reused.expect(422)["code"], "idempotency_key_reused");
    assert_eq!(
        app.stats().await["idempotency"],
        json!({"replayed": 1, "in_flight_conflict": 0, "key_reused": 1})
    );
}

#[tokio::test]
async fn a_stored_insufficient_funds_is_replayed_even_after_funds_free_up() {
    let app = spawn_app().await;
    app.create_account("bob", json!({"USD": "100"})).await;
    let a = app.hold("a", "bob", "USD", "80").await.expect(201);
    let refused = app.hold("b", "bob", "USD", "50").await.expect(422);
    app.release(a["id"].as_str().unwrap(), "ra", None)
        .await
        .expect(200);
    let replay = app.hold("b", "bob", "USD", "50").await;
    assert!(replay.replayed());
    assert_eq!(replay.expect(422), refused);
    // A new key is a new request.
    app.hold("c", "bob", "USD", "50").await.expect(201);
}

#[tokio::test]
async fn release_is_idempotent_by_key() {
    let app = spawn_app().await;
    app.create_account("carol", json!({"USD": "100"})).await;
    let hold = app.hold("h", "carol", "USD", "100").await.expect(201);
    let id = hold["id"].as_str().unwrap();
    let first = app.release(id, "r1", Some("30")).await.expect(200);
    let again = app.release(id, "r1", Some("30")).await;
    assert!(again.replayed());
    assert_eq!(again.expect(200), first);
    assert_eq!(app.balance("carol", "USD").await, tha("100", "70", "30"));
    assert_eq!(
        app.release(id, "r1", Some("31")).await.expect(422)["code"],
        "idempotency_key_reused"
    );
    assert_eq!(
        app.release(id, "r1", None).await.expect(422)["code"],
        "idempotency_key_reused"
    );
}

#[tokio::test]
async fn same_key_while_in_flight_is_409() {
    let app = spawn_app().await;
    app.create_account("dave", json!({"USD": "100"})).await;
    app.put_faults(json!({"latency": 1.0, "latency_ms_min": 400, "latency_ms_max": 400}))
        .await;
    let client = app.client.clone();
    let url = app.url("/v1/holds");
    let body =
        json!({"idempotency_key": "slow", "account_id": "dave", "asset": "USD", "amount": "5"});
    let first = tokio::spawn({
        let body = body.clone();
        async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = app.post("/v1/holds", &body).await;
    assert_eq!(second.expect(409)["code"], "request_in_flight");
    // A different key is not blocked.
    assert_eq!(first.await.unwrap(), 201);
    app.put_faults(json!({})).await;
    let third = app.post("/v1/holds", &body).await;
    assert!(third.replayed());
    third.expect(201);
    assert_eq!(app.balance("dave", "USD").await, tha("100", "5", "95"));
    assert_eq!(app.stats().await["idempotency"]["in_flight_conflict"], 1);
}

#[tokio::test]
async fn a_client_that_goes_away_mid_flight_frees_the_key() {
    let app = spawn_app().await;
    app.create_account("erin", json!({"USD": "100"})).await;
    app.put_faults(json!({"latency": 1.0, "latency_ms_min": 500, "latency_ms_max": 500}))
        .await;
    let body =
        json!({"idempotency_key": "gone", "account_id": "erin", "asset": "USD", "amount": "5"});
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(
        impatient
            .post(app.url("/v1/holds"))
            .json(&body)
            .send()
            .await
            .is_err()
    );
    // The server notices the dropped connection and abandons the request: the key is
    // free again and nothing was committed.
    app.put_faults(json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let retry = app.post("/v1/holds", &body).await;
    assert!(!retry.replayed());
    retry.expect(201);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.balance("erin", "USD").await, tha("100", "5", "95"));
}

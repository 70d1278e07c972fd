//! Fault injection, each fault at probability 1.0.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{spawn_app, tha};

#[tokio::test]
async fn faults_profile_is_replaced_whole_and_validated() {
    let app = spawn_app().await;
    let defaults = app.get("/admin/faults").await.expect(200);
    assert_eq!(
        defaults,
        json!({"response_lost": 0.0, "response_lost_mode": "mixed", "response_lost_delay_ms": 200,
               "error_5xx": 0.0, "http_429": 0.0, "retry_after_s": 1,
               "latency": 0.0, "latency_ms_min": 0, "latency_ms_max": 0})
    );
    app.put_faults(json!({"error_5xx": 0.5, "latency": 0.1, "latency_ms_max": 5}))
        .await;
    let set = app.get("/admin/faults").await.expect(200);
    assert_eq!(
        (set["error_5xx"].as_f64(), set["http_429"].as_f64()),
        (Some(0.5), Some(0.0))
    );
    app.put_faults(json!({"http_429": 1.0})).await;
    let replaced = app.get("/admin/faults").await.expect(200);
    assert_eq!(
        (
            replaced["error_5xx"].as_f64(),
            replaced["http_429"].as_f64()
        ),
        (Some(0.0), Some(1.0))
    );
    let put =
        |body: serde_json::Value| app.send(app.client.put(app.url("/admin/faults")).json(&body));
    assert_eq!(
        put(json!({"latency": 1.5})).await.expect(422)["field"],
        "latency"
    );
    assert_eq!(
        put(json!({"latency_ms_min": 10, "latency_ms_max": 1}))
            .await
            .expect(422)["field"],
        "latency_ms_min"
    );
    assert_eq!(
        put(json!({"nonsense": 1})).await.expect(422)["code"],
        "invalid_field"
    );
    assert_eq!(
        put(json!({"error_5xx": "high"})).await.expect(422)["code"],
        "invalid_field"
    );
}

#[tokio::test]
async fn error_5xx_commits_nothing_and_admin_is_never_faulted() {
    let app = spawn_app().await;
    app.put_faults(json!({"error_5xx": 1.0})).await;
    // /admin is exempt.
    app.create_account("alice", json!({"USD": "100"})).await;
    for _ in 0..6 {
        let reply = app.hold("k", "alice", "USD", "10").await;
        assert!(
            [500, 503].contains(&reply.status.as_u16()),
            "{}",
            reply.status
        );
        assert!(["internal_error", "service_unavailable"].contains(&reply.code()));
    }
    let read = app.get("/v1/accounts/alice/balances").await;
    assert!(read.status.is_server_error());
    assert_eq!(app.ground_truth().await["holds"], json!([]));
    app.put_faults(json!({})).await;
    let after = app.hold("k", "alice", "USD", "10").await;
    assert!(
        !after.replayed(),
        "a 5xx before commit does not record the key"
    );
    after.expect(201);
    assert_eq!(app.stats().await["faults"]["error_5xx"], 7);
}

#[tokio::test]
async fn http_429_has_retry_after_and_commits_nothing() {
    let app = spawn_app().await;
    app.create_account("bob", json!({"USD": "100"})).await;
    app.put_faults(json!({"http_429": 1.0, "retry_after_s": 3}))
        .await;
    let reply = app.hold("k", "bob", "USD", "10").await;
    assert_eq!(reply.headers.get("retry-after").unwrap(), "3");
    assert_eq!(reply.expect(429)["code"], "rate_limited");
    assert_eq!(app.get("/v1/ledger").await.status.as_u16(), 429);
    app.put_faults(json!({})).await;
    assert_eq!(app.balance("bob", "USD").await, tha("100", "0", "100"));
    assert_eq!(app.stats().await["faults"]["http_429"], 2);
}

#[tokio::test]
async fn response_lost_500_commits_and_the_retry_replays() {
    let app = spawn_app().await;
    app.create_account("carol", json!({"USD": "100"})).await;
    app.put_faults(json!({"response_lost": 1.0, "response_lost_mode": "error_500"}))
        .await;
    assert_eq!(
        app.hold("k", "carol", "USD", "10").await.expect(500)["code"],
        "internal_error"
    );
    app.put_faults(json!({})).await;
    assert_eq!(
        app.balance("carol", "USD").await,
        tha("100", "10", "90"),
        "committed despite the 500"
    );
    let retry = app.hold("k", "carol", "USD", "10").await;
    assert!(retry.replayed());
    assert_eq!(retry.expect(201)["amount"], "10");
    assert_eq!(app.balance("carol", "USD").await, tha("100", "10", "90"));
}

#[tokio::test]
async fn response_lost_timeout_504_hangs_then_answers_after_committing() {
    let app = spawn_app().await;
    app.create_account("dave", json!({"USD": "100"})).await;
    app.put_faults(json!({"response_lost": 1.0, "response_lost_mode": "timeout_504", "response_lost_delay_ms": 150}))
        .await;
    let started = Instant::now();
    let reply = app.hold("k", "dave", "USD", "10").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(reply.expect(504)["code"], "gateway_timeout");
    app.put_faults(json!({})).await;
    assert_eq!(app.balance("dave", "USD").await, tha("100", "10", "90"));
}

#[tokio::test]
async fn response_lost_connection_drop_is_a_transport_error_after_committing() {
    let app = spawn_app().await;
    app.create_account("erin", json!({"USD": "100"})).await;
    app.put_faults(json!({"response_lost": 1.0, "response_lost_mode": "connection_drop", "response_lost_delay_ms": 50}))
        .await;
    let body =
        json!({"idempotency_key": "k", "account_id": "erin", "asset": "USD", "amount": "10"});
    let outcome = match app
        .client
        .post(app.url("/v1/holds"))
        .json(&body)
        .send()
        .await
    {
        Err(e) => Err(e),
        Ok(response) => response.bytes().await.map(|_| ()),
    };
    assert!(outcome.is_err(), "the connection must drop");
    app.put_faults(json!({})).await;
    assert_eq!(app.balance("erin", "USD").await, tha("100", "10", "90"));
    let stats = app.stats().await;
    assert_eq!(stats["faults"]["response_lost_connection_drop"], 1);
    assert_eq!(stats["requests"]["create_hold"], 1);
}

#[tokio::test]
async fn latency_delays_reads_and_writes() {
    let app = spawn_app().await;
    app.create_account("frank", json!({"USD": "100"})).await;
    app.put_faults(json!({"latency": 1.0, "latency_ms_min": 120, "latency_ms_max": 150}))
        .await;
    let started = Instant::now();
    app.hold("k", "frank", "USD", "10").await.expect(201);
    assert!(started.elapsed() >= Duration::from_millis(120));
    let started = Instant::now();
    app.get("/v1/accounts/frank/balances").await.expect(200);
    assert!(started.elapsed() >= Duration::from_millis(120));
    let started = Instant::now();
    app.get("/admin/ground-truth").await.expect(200);
    assert!(
        started.elapsed() < Duration::from_millis(120),
        "admin is not delayed"
    );
    assert_eq!(app.stats().await["faults"]["latency"], 2);
}

#[tokio::test]
async fn mixed_mode_and_seeded_dice_are_reproducible() {
    async fn run(seed: u64) -> Vec<u16> {
        let mut config = balances_sim::Config {
            seed,
            ..Default::default()
        };
        config.faults.error_5xx = 0.3;
        config.faults.http_429 = 0.2;
        let app = crate::helpers::spawn_app_with(config).await;
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(app.get("/v1/holds?order_id=x").await.status.as_u16());
        }
        statuses
    }
    let a = run(7).await;
    assert_eq!(a, run(7).await);
    assert!(a.contains(&429) && a.contains(&200) && a.iter().any(|s| *s >= 500));
}

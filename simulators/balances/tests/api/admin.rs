//! /admin: accounts, reset, ground truth, stats, configured accounts.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, tha};

#[tokio::test]
async fn creating_an_account_twice_is_409_and_bad_accounts_are_422() {
    let app = spawn_app().await;
    let created = app
        .create_account("alice", json!({"USD": "100000", "AAPL": "50"}))
        .await;
    assert_eq!(
        created,
        json!({"account_id": "alice", "balances": {
            "AAPL": {"total": "50", "held": "0", "available": "50"},
            "USD": {"total": "100000", "held": "0", "available": "100000"}}})
    );
    let again = app
        .post(
            "/admin/accounts",
            &json!({"account_id": "alice", "balances": {"USD": "1"}}),
        )
        .await;
    assert_eq!(again.expect(409)["code"], "account_exists");
    let number = app
        .post(
            "/admin/accounts",
            &json!({"account_id": "bob", "balances": {"USD": 100}}),
        )
        .await;
    assert_eq!(number.expect(422)["field"], "balances.USD");
    let negative = app
        .post(
            "/admin/accounts",
            &json!({"account_id": "bob", "balances": {"USD": "-1"}}),
        )
        .await;
    assert_eq!(negative.expect(422)["field"], "balances.USD");
    let missing = app.post("/admin/accounts", &json!({"balances": {}})).await;
    assert_eq!(missing.expect(422)["field"], "account_id");
    assert_eq!(
        app.get("/v1/accounts/bob/balances").await.expect(404)["code"],
        "account_not_found"
    );
    // An empty account is fine.
    app.create_account("carol", json!({})).await;
}

#[tokio::test]
async fn reset_clears_everything_and_restores_configured_accounts() {
    let config: balances_sim::Config = balances_sim::Config::from_toml_str(
        r#"
        [[accounts]]
        account_id = "seeded"
        balances = { USD = "500" }
        "#,
    )
    .unwrap();
    let app = spawn_app_with(config).await;
    assert_eq!(app.balance("seeded", "USD").await, tha("500", "0", "500"));
    app.create_account("temp", json!({"USD": "1"})).await;
    app.hold("k", "seeded", "USD", "100").await.expect(201);
    app.put_faults(json!({"latency": 0.5, "latency_ms_max": 1}))
        .await;
    app.post("/admin/reset", &json!({})).await.expect(200);
    assert_eq!(app.get("/admin/faults").await.expect(200)["latency"], 0.0);
    assert_eq!(
        app.get("/v1/accounts/temp/balances").await.expect(404)["code"],
        "account_not_found"
    );
    assert_eq!(app.balance("seeded", "USD").await, tha("500", "0", "500"));
    let truth = app.ground_truth().await;
    assert_eq!(truth["holds"], json!([]));
    assert_eq!(truth["ledger"].as_array().unwrap().len(), 1);
    // Keys are forgotten too.
    let reply = app.hold("k", "seeded", "USD", "100").await;
    assert!(!reply.replayed());
    reply.expect(201);
}

#[tokio::test]
async fn ground_truth_and_stats() {
    let app = spawn_app().await;
    app.create_account("alice", json!({"USD": "100"})).await;
    let hold = app.hold("k", "alice", "USD", "10").await.expect(201);
    app.get("/v1/accounts/alice/balances").await.expect(200);
    let truth = app.ground_truth().await;
    assert_eq!(truth["accounts"][0]["account_id"], "alice");
    assert_eq!(truth["holds"], json!([hold]));
    assert_eq!(truth["settlements"], json!([]));
    assert_eq!(truth["ledger"].as_array().unwrap().len(), 2);
    let stats = app.stats().await;
    assert_eq!(stats["requests"]["create_hold"], 1);
    assert_eq!(stats["requests"]["get_balances"], 1);
    assert_eq!(stats["requests"]["admin_create_account"], 1);
    assert_eq!(stats["faults"], json!({}));
}

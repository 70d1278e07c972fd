//! Holds, releases, look-ups, balances, ledger and bad input.

use serde_json::json;

use crate::helpers::{spawn_app, tha};

#[tokio::test]
async fn hold_reserves_funds_and_can_be_looked_up() {
    let app = spawn_app().await;
    app.create_account("alice", json!({"USD": "1000", "AAPL": "5"}))
        .await;
    let hold = app.hold("h1", "alice", "USD", "250.50").await.expect(201);
    assert_eq!(hold["status"], "open");
    assert_eq!(hold["amount"], "250.5");
    assert_eq!(hold["remaining"], "250.5");
    assert_eq!(hold["consumed"], "0");
    assert_eq!(
        hold["reference"],
        json!({"order_id": "order-h1", "client_order_id": "coid-h1"})
    );
    assert_eq!(
        app.balance("alice", "USD").await,
        tha("1000", "250.5", "749.5")
    );
    assert_eq!(app.balance("alice", "AAPL").await, tha("5", "0", "5"));

    let id = hold["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/holds/{id}")).await.expect(200), hold);
    let by_key = app.get("/v1/holds?idempotency_key=h1").await.expect(200);
    assert_eq!(by_key, json!({"holds": [hold.clone()]}));
    let by_order = app.get("/v1/holds?order_id=order-h1").await.expect(200);
    assert_eq!(by_order, json!({"holds": [hold]}));
    assert_eq!(
        app.get("/v1/holds?idempotency_key=nope").await.expect(200),
        json!({"holds": []})
    );
    assert_eq!(
        app.get("/v1/holds").await.expect(422)["code"],
        "missing_field"
    );
}

#[tokio::test]
async fn insufficient_funds_is_422_with_available() {
    let app = spawn_app().await;
    app.create_account("bob", json!({"USD": "100"})).await;
    let reply = app.hold("h1", "bob", "USD", "100.01").await;
    let body = reply.expect(422);
    assert_eq!(body["code"], "insufficient_funds");
    assert_eq!(body["available"], "100");
    assert!(body["message"].as_str().unwrap().contains("insufficient"));
    // An asset the account never had: available 0.
    assert_eq!(
        app.hold("h2", "bob", "TSLA", "1").await.expect(422)["available"],
        "0"
    );
    assert_eq!(app.balance("bob", "USD").await, tha("100", "0", "100"));
}

#[tokio::test]
async fn partial_then_full_release_and_closed_release_is_200() {
    let app = spawn_app().await;
    app.create_account("carol", json!({"USD": "1000"})).await;
    let hold = app.hold("h1", "carol", "USD", "600").await.expect(201);
    let id = hold["id"].as_str().unwrap();

    let partial = app.release(id, "r1", Some("100")).await.expect(200);
    assert_eq!(
        (partial["released"].as_str(), partial["remaining"].as_str()),
        (Some("100"), Some("500"))
    );
    assert_eq!(partial["status"], "open");
    assert_eq!(app.balance("carol", "USD").await, tha("1000", "500", "500"));

    // More than remains: releases what remains and closes.
    let over = app.release(id, "r2", Some("9999")).await.expect(200);
    assert_eq!(
        (over["released"].as_str(), over["remaining"].as_str()),
        (Some("600"), Some("0"))
    );
    assert_eq!(over["status"], "closed");

    // Releasing a closed hold (new key, full) returns its state, not an error.
    let again = app.release(id, "r3", None).await.expect(200);
    assert_eq!(again["status"], "closed");
    assert_eq!(again["released"], "600");
    assert_eq!(app.balance("carol", "USD").await, tha("1000", "0", "1000"));

    // Full release of a fresh hold.
    let hold2 = app.hold("h2", "carol", "USD", "10").await.expect(201);
    let full = app
        .release(hold2["id"].as_str().unwrap(), "r4", None)
        .await
        .expect(200);
    assert_eq!(
        (full["status"].as_str(), full["released"].as_str()),
        (Some("closed"), Some("10"))
    );

    // Ledger: adjustment, hold, release(−100), release(−500), hold, release(−10).
    let ledger = app.get("/v1/ledger?account_id=carol").await.expect(200);
    let summary: Vec<(String, String)> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("adjustment", "1000"),
        ("hold", "600"),
        ("release", "-100"),
        ("release", "-500"),
        ("hold", "10"),
        ("release", "-10"),
    ];
    assert_eq!(summary, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    let release_entry = &ledger["entries"][2];
    assert_eq!(release_entry["hold_id"], hold["id"]);
    assert_eq!(release_entry["idempotency_key"], "r1");
    assert_eq!(release_entry["order_id"], "order-h1");
    assert_eq!(
        (
            release_entry["total_after"].as_str(),
            release_entry["held_after"].as_str()
        ),
        (Some("1000"), Some("500"))
    );
}

#[tokio::test]
async fn ledger_pages_by_after_seq() {
    let app = spawn_app().await;
    app.create_account("a", json!({"USD": "100"})).await;
    app.create_account("b", json!({"USD": "100"})).await;
    for i in 0..5 {
        app.hold(&format!("a{i}"), "a", "USD", "1")
            .await
            .expect(201);
        app.hold(&format!("b{i}"), "b", "USD", "1")
            .await
            .expect(201);
    }
    let page1 = app.get("/v1/ledger?account_id=a&limit=4").await.expect(200);
    assert_eq!(page1["entries"].as_array().unwrap().len(), 4);
    assert_eq!(page1["has_more"], true);
    let after = page1["next_after_seq"].as_u64().unwrap();
    let page2 = app
        .get(&format!(
            "/v1/ledger?account_id=a&limit=4&after_seq={after}"
        ))
        .await
        .expect(200);
    assert_eq!(page2["entries"].as_array().unwrap().len(), 2);
    assert_eq!(page2["has_more"], false);
    assert!(
        page2["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["account_id"] == "a")
    );
    let all = app.get("/v1/ledger").await.expect(200);
    let seqs: Vec<u64> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    assert_eq!(
        app.get("/v1/ledger?limit=0").await.expect(422)["field"],
        "limit"
    );
    assert_eq!(
        app.get("/v1/ledger?after_seq=x").await.expect(422)["field"],
        "after_seq"
    );
    assert_eq!(
        app.get("/v1/ledger?account_id=zed").await.expect(404)["code"],
        "account_not_found"
    );
}

#[tokio::test]
async fn bad_input_is_a_json_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_account("dave", json!({"USD": "100"})).await;
    let hold = |amount: serde_json::Value| json!({"idempotency_key": "k", "account_id": "dave", "asset": "USD", "amount": amount});
    let cases = [
        (hold(json!(10)), 422, "invalid_field"),
        (hold(json!(10.5)), 422, "invalid_field"),
        (hold(json!("0")), 422, "invalid_field"),
        (hold(json!("-5")), 422, "invalid_field"),
        (hold(json!("1e3")), 422, "invalid_field"),
        (
            hold(json!("1000000000000000000000000")),
            422,
            "invalid_field",
        ),
        (hold(json!("0.0000000000000001")), 422, "invalid_field"),
        (hold(json!(null)), 422, "missing_field"),
        (
            json!({"idempotency_key": "k-ghost", "account_id": "ghost", "asset": "USD", "amount": "1"}),
            404,
            "account_not_found",
        ),
    ];
    for (body, status, code) in cases {
        let reply = app.post("/v1/holds", &body).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (status, code),
            "{body}"
        );
        assert!(reply.body["message"].is_string());
    }
    let number = app.post("/v1/holds", &hold(json!(10))).await.body;
    assert_eq!(number["field"], "amount");
    assert!(number["message"].as_str().unwrap().contains("amount"));

    assert_eq!(
        app.post_raw("/v1/holds", "{not json").await.expect(400)["code"],
        "malformed_json"
    );
    assert_eq!(
        app.post_raw("/v1/holds", "").await.expect(400)["code"],
        "malformed_json"
    );
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    assert_eq!(
        app.post_raw("/v1/holds", huge).await.expect(413)["code"],
        "payload_too_large"
    );
    let nil = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        app.get(&format!("/v1/holds/{nil}")).await.expect(404)["code"],
        "hold_not_found"
    );
    assert_eq!(
        app.get("/v1/holds/not-a-uuid").await.expect(404)["code"],
        "hold_not_found"
    );
    assert_eq!(
        app.release(nil, "r", None).await.expect(404)["code"],
        "hold_not_found"
    );
    assert_eq!(
        app.get("/v1/accounts/ghost/balances").await.expect(404)["code"],
        "account_not_found"
    );
    assert_eq!(app.get("/v1/nope").await.expect(404)["code"], "not_found");
    let put = app.send(app.client.put(app.url("/v1/holds"))).await;
    assert_eq!(
        (put.status.as_u16(), put.code()),
        (405, "method_not_allowed")
    );

    // Nothing above changed anything.
    assert_eq!(app.balance("dave", "USD").await, tha("100", "0", "100"));
    assert_eq!(
        app.ground_truth().await["ledger"].as_array().unwrap().len(),
        1
    );
    // The key is still free: validation failures are not recorded.
    app.hold("k", "dave", "USD", "1").await.expect(201);
}

#[tokio::test]
async fn authorization_header_is_accepted_and_ignored() {
    let app = spawn_app().await;
    app.create_account("erin", json!({"USD": "10"})).await;
    let reply = app
        .send(
            app.client
                .get(app.url("/v1/accounts/erin/balances"))
                .header("authorization", "Bearer whatever"),
        )
        .await;
    assert_eq!(reply.expect(200)["account_id"], "erin");
}

/// A hold raised before the order needs more (a replace to a larger
/// order), then consumed and released like any hold; what it is raised by
/// must be available, a closed hold cannot be raised, and the raise is
/// keyed like every mutation.
#[tokio::test]
async fn an_open_hold_is_raised_by_what_is_available_once_per_key() {
    let app = spawn_app().await;
    app.create_account("erin", json!({"USD": "1000"})).await;
    let hold = app.hold("h1", "erin", "USD", "600").await.expect(201);
    let id = hold["id"].as_str().unwrap();

    let raised = app.increase(id, "up-1", "300").await.expect(200);
    assert_eq!(
        (raised["amount"].as_str(), raised["remaining"].as_str()),
        (Some("900"), Some("900"))
    );
    assert_eq!(app.balance("erin", "USD").await, tha("1000", "900", "100"));

    // The same key again replays the answer and holds nothing more; the
    // same key with another amount is refused.
    let replay = app.increase(id, "up-1", "300").await;
    assert!(replay.replayed());
    assert_eq!(replay.expect(200)["amount"], "900");
    assert_eq!(
        app.increase(id, "up-1", "1").await.code(),
        "idempotency_key_reused"
    );
    assert_eq!(app.balance("erin", "USD").await, tha("1000", "900", "100"));

    // More than is available: refused whole, naming what is.
    let short = app.increase(id, "up-2", "100.01").await;
    assert_eq!(short.status.as_u16(), 422);
    assert_eq!(short.code(), "insufficient_funds");
    assert_eq!(short.body["available"], "100");
    assert_eq!(app.balance("erin", "USD").await, tha("1000", "900", "100"));

    // Lowered by a partial release, then closed; a closed hold is not raised.
    app.release(id, "down-1", Some("400")).await.expect(200);
    assert_eq!(app.balance("erin", "USD").await, tha("1000", "500", "500"));
    app.release(id, "close", None).await.expect(200);
    let closed = app.increase(id, "up-3", "1").await;
    assert_eq!(closed.status.as_u16(), 409, "{}", closed.body);
    assert_eq!(closed.code(), "hold_closed");
    let unknown = app
        .increase("00000000-0000-0000-0000-000000000000", "up-4", "1")
        .await;
    assert_eq!(unknown.code(), "hold_not_found");
    assert_eq!(app.increase(id, "up-5", "0").await.status.as_u16(), 422);
    assert_eq!(app.balance("erin", "USD").await, tha("1000", "0", "1000"));

    // The ledger has the raise as a hold entry of the same hold.
    let ledger = app.get("/v1/ledger?account_id=erin").await.expect(200);
    let raise = &ledger["entries"][2];
    assert_eq!(
        (raise["type"].as_str(), raise["amount"].as_str()),
        (Some("hold"), Some("300"))
    );
    assert_eq!(raise["hold_id"], hold["id"]);
    assert_eq!(raise["idempotency_key"], "up-1");
    assert_eq!(raise["order_id"], "order-h1");
    assert_eq!(raise["held_after"], "900");
}

/// A raised hold is consumed by settlements like the hold it was: a buy
/// settled against it consumes its hold amount and the rest is released.
#[tokio::test]
async fn a_raised_hold_is_consumed_by_settlements_and_released() {
    let app = spawn_app().await;
    app.create_account("finn", json!({"USD": "1000"})).await;
    let hold = app.hold("h1", "finn", "USD", "200").await.expect(201);
    let id = hold["id"].as_str().unwrap();
    app.increase(id, "up", "300").await.expect(200);
    let settled = app
        .post(
            "/v1/settlements",
            &json!({"idempotency_key": "x1", "account_id": "finn", "hold_id": id,
                    "side": "buy", "symbol": "AAPL", "qty": "4", "price": "100",
                    "fee": "0", "hold_amount": "480"}),
        )
        .await
        .expect(201);
    assert_eq!(settled["flagged"], false, "{settled}");
    assert_eq!(settled["hold_consumed"], "480");
    assert_eq!(app.balance("finn", "USD").await, tha("600", "20", "580"));
    app.release(id, "close", None).await.expect(200);
    assert_eq!(app.balance("finn", "USD").await, tha("600", "0", "600"));
    assert_eq!(app.balance("finn", "AAPL").await, tha("4", "0", "4"));
}

//! Settlements: buys, sells, price improvement, flags, replays.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, tha};

fn settlement(
    key: &str,
    account: &str,
    hold_id: Option<&Value>,
    side: &str,
    qty: &str,
    price: &str,
    fee: &str,
) -> Value {
    json!({
        "idempotency_key": key,
        "account_id": account,
        "hold_id": hold_id,
        "side": side,
        "symbol": "AAPL",
        "qty": qty,
        "price": price,
        "fee": fee,
        "reference": {"order_id": "o1", "exec_id": key},
    })
}

async fn ledger_types(app: &TestApp, seqs: &Value) -> Vec<(String, String, String)> {
    let truth = app.ground_truth().await;
    let ledger = truth["ledger"].as_array().unwrap();
    seqs.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let e = &ledger[s.as_u64().unwrap() as usize - 1];
            assert_eq!(e["seq"], *s);
            let f = |k: &str| e[k].as_str().unwrap().to_owned();
            (f("type"), f("asset"), f("amount"))
        })
        .collect()
}

fn t(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.to_owned(), b.to_owned(), c.to_owned())
}

#[tokio::test]
async fn buy_with_price_improvement_frees_the_difference() {
    let app = spawn_app().await;
    app.create_account("alice", json!({"USD": "10000"})).await;
    // Limit buy 10 @ 100, plus a fee budget of 5.
    let hold = app.hold("h1", "alice", "USD", "1005").await.expect(201);
    let mut first = settlement("e1", "alice", Some(&hold["id"]), "buy", "4", "95", "1");
    first["hold_amount"] = json!("400");
    let s1 = app.post("/v1/settlements", &first).await.expect(201);
    assert_eq!(
        (s1["flagged"].as_bool(), s1["flag_reason"].is_null()),
        (Some(false), true)
    );
    assert_eq!(s1["hold_consumed"], "400");
    // 10000 − 4×95 − 1 = 9619; held 1005 − 400 = 605; 400 − 381 = 19 freed.
    assert_eq!(
        app.balance("alice", "USD").await,
        tha("9619", "605", "9014")
    );
    assert_eq!(app.balance("alice", "AAPL").await, tha("4", "0", "4"));
    assert_eq!(
        ledger_types(&app, &s1["ledger_seqs"]).await,
        vec![
            t("release", "USD", "-400"),
            t("trade_debit", "USD", "-380"),
            t("fee", "USD", "-1"),
            t("trade_credit", "AAPL", "4")
        ]
    );

    // Second fill without hold_amount: consumes min(remaining, debit) = 6×99.5+1.
    let s2 = app
        .post(
            "/v1/settlements",
            &settlement("e2", "alice", Some(&hold["id"]), "buy", "6", "99.5", "1"),
        )
        .await
        .expect(201);
    assert_eq!(s2["hold_consumed"], "598");
    assert_eq!(s2["flagged"], false);
    assert_eq!(app.balance("alice", "USD").await, tha("9021", "7", "9014"));

    // Order closes: release the rest.
    let closed = app
        .release(hold["id"].as_str().unwrap(), "close", None)
        .await
        .expect(200);
    assert_eq!(
        (closed["consumed"].as_str(), closed["released"].as_str()),
        (Some("998"), Some("7"))
    );
    assert_eq!(closed["status"], "closed");
    assert_eq!(app.balance("alice", "USD").await, tha("9021", "0", "9021"));
    assert_eq!(app.balance("alice", "AAPL").await, tha("10", "0", "10"));

    let found = app
        .get("/v1/settlements?idempotency_key=e1")
        .await
        .expect(200);
    assert_eq!(found["settlements"][0], s1);
    let by_order = app.get("/v1/settlements?order_id=o1").await.expect(200);
    assert_eq!(by_order["settlements"].as_array().unwrap().len(), 2);
    let by_id = app
        .get(&format!("/v1/settlements/{}", s2["id"].as_str().unwrap()))
        .await
        .expect(200);
    assert_eq!(by_id, s2);
}

#[tokio::test]
async fn sell_consumes_a_share_hold_and_credits_cash_net_of_fee() {
    let app = spawn_app().await;
    app.create_account("bob", json!({"USD": "0", "AAPL": "50"}))
        .await;
    let hold = app.hold("h1", "bob", "AAPL", "20").await.expect(201);
    let s = app
        .post(
            "/v1/settlements",
            &settlement(
                "e1",
                "bob",
                Some(&hold["id"]),
                "sell",
                "20",
                "101.25",
                "0.5",
            ),
        )
        .await
        .expect(201);
    assert_eq!(s["flagged"], false);
    assert_eq!(app.balance("bob", "AAPL").await, tha("30", "0", "30"));
    assert_eq!(
        app.balance("bob", "USD").await,
        tha("2024.5", "0", "2024.5")
    );
    assert_eq!(
        ledger_types(&app, &s["ledger_seqs"]).await,
        vec![
            t("release", "AAPL", "-20"),
            t("trade_debit", "AAPL", "-20"),
            t("trade_credit", "USD", "2025"),
            t("fee", "USD", "-0.5")
        ]
    );
}

#[tokio::test]
async fn fill_after_release_is_settled_and_flagged() {
    let app = spawn_app().await;
    app.create_account("carol", json!({"USD": "100"})).await;
    let hold = app.hold("h1", "carol", "USD", "100").await.expect(201);
    app.release(hold["id"].as_str().unwrap(), "close", None)
        .await
        .expect(200);
    let s = app
        .post(
            "/v1/settlements",
            &settlement("late", "carol", Some(&hold["id"]), "buy", "2", "60", "0"),
        )
        .await
        .expect(201);
    assert_eq!(
        (s["flagged"].as_bool(), s["flag_reason"].as_str()),
        (Some(true), Some("hold_closed"))
    );
    assert_eq!(s["hold_consumed"], "0");
    // Settled anyway: available goes negative.
    assert_eq!(app.balance("carol", "USD").await, tha("-20", "0", "-20"));
    assert_eq!(app.balance("carol", "AAPL").await, tha("2", "0", "2"));
    // And a later hold sees the negative available.
    assert_eq!(
        app.hold("h2", "carol", "USD", "1").await.expect(422)["available"],
        "-20"
    );
}

#[tokio::test]
async fn hold_too_small_takes_the_rest_from_available_and_flags() {
    let app = spawn_app().await;
    app.create_account("dave", json!({"USD": "1000"})).await;
    let hold = app.hold("h1", "dave", "USD", "100").await.expect(201);
    let s = app
        .post(
            "/v1/settlements",
            &settlement("e1", "dave", Some(&hold["id"]), "buy", "1", "150", "0"),
        )
        .await
        .expect(201);
    assert_eq!(
        (s["flagged"].as_bool(), s["flag_reason"].as_str()),
        (Some(true), Some("hold_insufficient"))
    );
    assert_eq!(s["hold_consumed"], "100");
    assert_eq!(app.balance("dave", "USD").await, tha("850", "0", "850"));

    // Without a hold and without the funds: still settled, flagged negative_available.
    let s2 = app
        .post(
            "/v1/settlements",
            &settlement("e2", "dave", None, "buy", "10", "100", "0"),
        )
        .await
        .expect(201);
    assert_eq!(s2["flag_reason"], "negative_available");
    assert_eq!(app.balance("dave", "USD").await, tha("-150", "0", "-150"));
    // Without a hold but with the funds: not flagged.
    app.create_account("erin", json!({"USD": "1000"})).await;
    let s3 = app
        .post(
            "/v1/settlements",
            &settlement("e3", "erin", None, "buy", "1", "100", "1"),
        )
        .await
        .expect(201);
    assert_eq!(
        (s3["flagged"].as_bool(), s3["hold_id"].is_null()),
        (Some(false), true)
    );
}

#[tokio::test]
async fn settlement_replays_and_refuses_a_reused_key() {
    let app = spawn_app().await;
    app.create_account("frank", json!({"USD": "1000"})).await;
    let body = settlement("exec-1", "frank", None, "buy", "1", "100", "1");
    let first = app.post("/v1/settlements", &body).await;
    assert!(!first.replayed());
    let first = first.expect(201);
    let again = app.post("/v1/settlements", &body).await;
    assert!(again.replayed());
    assert_eq!(again.expect(201), first);
    assert_eq!(app.balance("frank", "USD").await, tha("899", "0", "899"));
    let different = settlement("exec-1", "frank", None, "buy", "2", "100", "1");
    assert_eq!(
        app.post("/v1/settlements", &different).await.expect(422)["code"],
        "idempotency_key_reused"
    );
    assert_eq!(
        app.ground_truth().await["settlements"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn settlement_input_errors() {
    let app = spawn_app().await;
    app.create_account("gina", json!({"USD": "1000", "AAPL": "5"}))
        .await;
    app.create_account("hank", json!({"USD": "1000"})).await;
    let cash_hold = app.hold("h1", "gina", "USD", "10").await.expect(201);
    let nil = json!("00000000-0000-0000-0000-000000000000");
    let mut bad_side = settlement("x1", "gina", None, "hold", "1", "1", "0");
    bad_side["side"] = json!("short");
    let mut number_qty = settlement("x2", "gina", None, "buy", "1", "1", "0");
    number_qty["qty"] = json!(1);
    let mut usd_symbol = settlement("x3", "gina", None, "buy", "1", "1", "0");
    usd_symbol["symbol"] = json!("USD");
    let cases = [
        (bad_side, 422, "invalid_field"),
        (number_qty, 422, "invalid_field"),
        (usd_symbol, 422, "invalid_field"),
        (
            settlement("x4", "gina", None, "buy", "0", "1", "0"),
            422,
            "invalid_field",
        ),
        (
            settlement("x5", "gina", None, "buy", "1", "1", "-1"),
            422,
            "invalid_field",
        ),
        (
            settlement("x6", "gina", None, "buy", "1000000000", "1000000", "0"),
            422,
            "invalid_field",
        ),
        (
            settlement("x7", "gina", Some(&nil), "buy", "1", "1", "0"),
            404,
            "hold_not_found",
        ),
        (
            settlement("x8", "ghost", None, "buy", "1", "1", "0"),
            404,
            "account_not_found",
        ),
        (
            settlement("x9", "gina", Some(&cash_hold["id"]), "sell", "1", "1", "0"),
            422,
            "hold_asset_mismatch",
        ),
        (
            settlement("x10", "hank", Some(&cash_hold["id"]), "buy", "1", "1", "0"),
            422,
            "hold_account_mismatch",
        ),
    ];
    for (body, status, code) in cases {
        let reply = app.post("/v1/settlements", &body).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (status, code),
            "{body}"
        );
    }
    assert_eq!(app.balance("gina", "USD").await, tha("1000", "10", "990"));
    assert_eq!(app.ground_truth().await["settlements"], json!([]));
}

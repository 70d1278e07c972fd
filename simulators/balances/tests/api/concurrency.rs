//! Many tasks on one account: no lost update, conservation holds.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

const TASKS: usize = 50;
const ROUNDS_PER_TASK: usize = 10; // × 4 requests = 40 ops per task

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("not a decimal string: {v}")),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hammering_one_account_conserves_cash_and_shares() {
    let app = spawn_app().await;
    app.create_account("whale", json!({"USD": "100000", "AAPL": "1000"}))
        .await;
    let base = app.handle.url();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let client = app.client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let post = |path: String, body: Value| {
                let client = client.clone();
                let url = format!("{base}{path}");
                async move {
                    let r = client.post(url).json(&body).send().await.unwrap();
                    (r.status().as_u16(), r.json::<Value>().await.unwrap())
                }
            };
            let mut settled = 0;
            for i in 0..ROUNDS_PER_TASK {
                let sell = (t + i) % 3 == 0;
                let (asset, amount) = if sell { ("AAPL", "3") } else { ("USD", "1000") };
                let key = format!("t{t}-r{i}");
                let (status, hold) = post(
                    "/v1/holds".into(),
                    json!({"idempotency_key": key, "account_id": "whale", "asset": asset, "amount": amount,
                           "reference": {"order_id": key}}),
                )
                .await;
                if status == 422 {
                    assert_eq!(hold["code"], "insufficient_funds");
                    continue;
                }
                assert_eq!(status, 201, "{hold}");
                let hold_id = hold["id"].as_str().unwrap().to_owned();
                // Two fills (the second sent twice: a replay), then close.
                for fill in 0..2 {
                    let price = format!("{}.{}", 95 + (t % 5), i);
                    let body = json!({"idempotency_key": format!("{key}-e{fill}"), "account_id": "whale",
                        "hold_id": hold_id, "side": if sell { "sell" } else { "buy" }, "symbol": "AAPL",
                        "qty": "1", "price": price, "fee": "0.25", "hold_amount": if sell { "1" } else { "100" }});
                    let (status, s) = post("/v1/settlements".into(), body.clone()).await;
                    assert_eq!(status, 201, "{s}");
                    assert_eq!(s["flagged"], false, "{s}");
                    settled += 1;
                    if fill == 1 {
                        let (status, replay) = post("/v1/settlements".into(), body).await;
                        assert_eq!((status, &replay), (201, &s));
                    }
                }
                let (status, closed) =
                    post(format!("/v1/holds/{hold_id}/release"), json!({"idempotency_key": format!("{key}-close")})).await;
                assert_eq!((status, closed["status"].as_str()), (200, Some("closed")), "{closed}");
            }
            settled
        }));
    }
    let mut settled = 0;
    for task in tasks {
        settled += task.await.unwrap();
    }

    let truth = app.ground_truth().await;
    let settlements = truth["settlements"].as_array().unwrap();
    assert_eq!(settlements.len(), settled, "each settlement exactly once");
    let (mut usd, mut aapl) = (Decimal::from(100_000), Decimal::from(1_000));
    for s in settlements {
        let (qty, price, fee) = (dec(&s["qty"]), dec(&s["price"]), dec(&s["fee"]));
        match s["side"].as_str().unwrap() {
            "buy" => {
                usd -= qty * price + fee;
                aapl += qty;
            }
            _ => {
                usd += qty * price - fee;
                aapl -= qty;
            }
        }
    }
    let balances = &truth["accounts"][0]["balances"];
    assert_eq!(dec(&balances["USD"]["total"]), usd);
    assert_eq!(dec(&balances["AAPL"]["total"]), aapl);
    assert_eq!(dec(&balances["USD"]["held"]), Decimal::ZERO);
    assert_eq!(dec(&balances["AAPL"]["held"]), Decimal::ZERO);
    assert!(
        truth["holds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["status"] == "closed")
    );

    // The ledger replays to the same balances, entry by entry, with no gap in seq.
    let (mut total, mut held) = (Decimal::ZERO, Decimal::ZERO);
    for (i, e) in truth["ledger"].as_array().unwrap().iter().enumerate() {
        assert_eq!(e["seq"].as_u64().unwrap(), i as u64 + 1);
        if e["asset"] != "USD" {
            continue;
        }
        match e["type"].as_str().unwrap() {
            "hold" | "release" => held += dec(&e["amount"]),
            _ => total += dec(&e["amount"]),
        }
        assert_eq!(
            (dec(&e["total_after"]), dec(&e["held_after"])),
            (total, held),
            "{e}"
        );
        assert!(
            total - held >= Decimal::ZERO,
            "available went negative at {e}"
        );
    }
    assert_eq!(total, usd);
}

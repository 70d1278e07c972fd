//! A rough throughput probe, not a timed test (ignored by default):
//! `cargo test --release -p balances-sim --test throughput -- --ignored --nocapture`
//! Drives the orderd pattern (hold, 2 settlements, release) from concurrent clients.

use std::time::Instant;

use serde_json::{Value, json};

const CLIENTS: usize = 32;
const ORDERS_PER_CLIENT: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark probe; run explicitly"]
async fn orders_per_second() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = balances_sim::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let handle = balances_sim::spawn(config).await.unwrap();
    let base = handle.url();
    let client = reqwest::Client::new();
    let funding = json!({"account_id": "bench", "balances": {"USD": "1000000000"}});
    client
        .post(format!("{base}/admin/accounts"))
        .json(&funding)
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            for o in 0..ORDERS_PER_CLIENT {
                let key = format!("c{c}o{o}");
                let hold: Value = client
                    .post(format!("{base}/v1/holds"))
                    .json(&json!({"idempotency_key": key, "account_id": "bench", "asset": "USD", "amount": "1000",
                                  "reference": {"order_id": key}}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                for e in 0..2 {
                    let status = client
                        .post(format!("{base}/v1/settlements"))
                        .json(&json!({"idempotency_key": format!("{key}e{e}"), "account_id": "bench",
                                      "hold_id": hold["id"], "side": "buy", "symbol": "AAPL", "qty": "5",
                                      "price": "99.5", "fee": "0", "hold_amount": "500"}))
                        .send()
                        .await
                        .unwrap()
                        .status();
                    assert_eq!(status, 201);
                }
                let id = hold["id"].as_str().unwrap();
                client
                    .post(format!("{base}/v1/holds/{id}/release"))
                    .json(&json!({"idempotency_key": format!("{key}r")}))
                    .send()
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let orders = (CLIENTS * ORDERS_PER_CLIENT) as f64;
    println!(
        "{orders} orders in {elapsed:.2}s: {:.0} orders/s, {:.0} requests/s (client and server share the cores)",
        orders / elapsed,
        orders * 4.0 / elapsed
    );
    handle.shutdown().await.unwrap();
}

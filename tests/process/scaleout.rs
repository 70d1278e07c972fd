//! Scale-out: three orderd processes on one database. The one holding the
//! venue stream is killed with SIGKILL mid-session; another takes the
//! stream over within seconds and catches up, and every invariant still
//! holds at the end.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use super::{Orderd, start_command};
use crate::support::{TestDatabase, balances_config, exchange_config};

async fn start(db: &TestDatabase, exchange: &str, balances: &str) -> Orderd {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderd"));
    command
        .env("ORDERD__HTTP__LISTEN", "127.0.0.1:0")
        .env("ORDERD__DATABASE__URL", db.url())
        .env("ORDERD__EXCHANGE__URL", exchange)
        .env("ORDERD__BALANCES__URL", balances)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null());
    tokio::task::spawn_blocking(move || start_command(command))
        .await
        .expect("start orderd")
}

async fn stream_holder(db: &TestDatabase) -> Option<(uuid::Uuid, i64, i32)> {
    sqlx::query_as(
        "SELECT l.owner, l.fencing_token, i.pid FROM leases l JOIN instances i ON i.instance_id = l.owner
          WHERE l.name = 'venue_stream' AND l.expires_at > now()",
    )
    .fetch_optional(&db.pool)
    .await
    .expect("lease query")
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_stream_holder_loses_nothing() {
    orderd::install_crypto_provider();
    let exchange = exchange_sim::spawn(exchange_config())
        .await
        .expect("exchange-sim");
    let balances = balances_sim::spawn(balances_config())
        .await
        .expect("balances-sim");
    let (exchange_url, balances_url) = (
        format!("http://{}", exchange.addr()),
        format!("http://{}", balances.addr()),
    );
    let db = TestDatabase::fresh().await;
    let http = reqwest::Client::new();
    http.post(format!("{balances_url}/admin/accounts"))
        .json(&json!({"account_id": "desk", "balances": {"USD": "10000000", "AAPL": "100000"}}))
        .send()
        .await
        .unwrap();
    let credentials = orderd::store::accounts::create_account(&db.pool, "desk", "desk")
        .await
        .unwrap();

    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(start(&db, &exchange_url, &balances_url).await);
    }
    // Someone takes the stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (holder, token, pid) = loop {
        if let Some(found) = stream_holder(&db).await {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody took the venue stream"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let submit = |addr: String, i: usize| {
        let http = http.clone();
        let (key, secret) = (credentials.key_id.clone(), credentials.secret_key.clone());
        async move {
            let body = match i % 4 {
                0 => {
                    json!({"symbol": "AAPL", "qty": "2", "side": "sell", "type": "market", "time_in_force": "day"})
                }
                _ => {
                    json!({"symbol": "AAPL", "qty": (1 + i % 5).to_string(), "side": "buy", "type": "market", "time_in_force": "day"})
                }
            };
            let response = http
                .post(format!("http://{addr}/v2/orders"))
                .header("APCA-API-KEY-ID", key)
                .header("APCA-API-SECRET-KEY", secret)
                .json(&body)
                .send()
                .await;
            response.map(|r| r.status().as_u16()).unwrap_or(0)
        }
    };
    let addrs: Vec<String> = instances.iter().map(|o| o.addr.clone()).collect();
    let survivors: Vec<String> = instances
        .iter()
        .filter(|o| o.child.id() as i32 != pid)
        .map(|o| o.addr.clone())
        .collect();
    assert_eq!(survivors.len(), 2, "the holder is one of ours");

    // A first wave across all three, then kill the stream holder while the
    // venue is still filling, then a second wave on the survivors.
    let first: Vec<u16> =
        futures_util::future::join_all((0..60).map(|i| submit(addrs[i % 3].clone(), i))).await;
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill the stream holder");
    let second: Vec<u16> =
        futures_util::future::join_all((60..120).map(|i| submit(survivors[i % 2].clone(), i)))
            .await;
    // Orders sent to the dying instance may have failed in transit; every
    // answered one must have been accepted.
    for status in first.iter().chain(&second) {
        assert!(*status == 200 || *status == 0, "status {status}");
    }
    assert!(
        second.iter().all(|s| *s == 200),
        "survivors answer: {second:?}"
    );

    // Another instance holds the stream within seconds, with a new token.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((owner, new_token, _)) = stream_holder(&db).await
            && owner != holder
        {
            assert!(new_token > token, "fencing token grows on takeover");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no takeover of the venue stream"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Quiet: every order closed, every fill settled.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM orders WHERE step <> 'closed')
                  + (SELECT count(*) FROM fills WHERE settlement_state <> 'settled')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if busy == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{busy} items still busy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let snapshot = orderd::check::collect(&db.pool, &exchange_url, &balances_url)
        .await
        .expect("ground truth");
    let report = orderd::check::check(&snapshot);
    let broken: Vec<String> = report
        .invariants
        .iter()
        .filter(|i| !i.holds())
        .map(|i| format!("{}: {:?}", i.name, i.violations))
        .collect();
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    assert!(report.orders >= 100, "orders: {}", report.orders);
    drop(instances);
}

//! The operator CLI against a running stack: `orderd serve` as a child
//! process, both venues in-process, the CLI on the same settings.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Orderd, start_command};
use crate::support::{TestDatabase, balances_config, exchange_config};

struct Stack {
    db: TestDatabase,
    exchange: exchange_sim::Handle,
    balances: balances_sim::Handle,
}

impl Stack {
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orderd"));
        command
            .env("ORDERD__DATABASE__URL", self.db.url())
            .env(
                "ORDERD__EXCHANGE__URL",
                format!("http://{}", self.exchange.addr()),
            )
            .env(
                "ORDERD__BALANCES__URL",
                format!("http://{}", self.balances.addr()),
            )
            .env("ORDERD__HTTP__LISTEN", "127.0.0.1:0")
            .env("ORDERD__LIFECYCLE__SUBMIT_DEADLINE_MS", "200")
            .env("ORDERD__RECONCILE__SETTLE_TIME_MS", "200")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null());
        command
    }

    async fn cli(&self, args: &[&str]) -> Output {
        let mut command = self.command();
        command.args(args);
        tokio::task::spawn_blocking(move || command.output().expect("run orderd"))
            .await
            .unwrap()
    }

    async fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args).await;
        assert!(
            output.status.success(),
            "orderd {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_commands_show_orders_accounts_and_reconciliation() {
    orderd::install_crypto_provider();
    let stack = Stack {
        db: TestDatabase::fresh().await,
        exchange: exchange_sim::spawn(exchange_config()).await.unwrap(),
        balances: balances_sim::spawn(balances_config()).await.unwrap(),
    };
    let http = reqwest::Client::new();
    let balances_url = format!("http://{}", stack.balances.addr());
    http.post(format!("{balances_url}/admin/accounts"))
        .json(&json!({"account_id": "ops-desk", "balances": {"USD": "100000"}}))
        .send()
        .await
        .unwrap();
    let created: Value = serde_json::from_str(
        &stack
            .cli_ok(&[
                "account",
                "create",
                "--name",
                "ops-desk",
                "--balances-account",
                "ops-desk",
            ])
            .await,
    )
    .unwrap();
    let (key, secret) = (
        created["key_id"].as_str().unwrap(),
        created["secret_key"].as_str().unwrap(),
    );

    let serve: Orderd = {
        let command = stack.command();
        tokio::task::spawn_blocking(move || start_command(command))
            .await
            .unwrap()
    };
    let submit = |body: Value| {
        let http = http.clone();
        let url = format!("http://{}/v2/orders", serve.addr);
        let (key, secret) = (key.to_string(), secret.to_string());
        async move {
            let reply: Value = http
                .post(url)
                .header("APCA-API-KEY-ID", key)
                .header("APCA-API-SECRET-KEY", secret)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            reply["id"].as_str().unwrap().to_string()
        }
    };
    let filled = submit(json!({"symbol": "AAPL", "qty": "2", "side": "buy", "type": "market", "time_in_force": "day"})).await;
    // Let it fill, settle and close before the ledger starts misbehaving.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let shown: Value =
            serde_json::from_str(&stack.cli_ok(&["orders", "show", &filled, "--json"]).await)
                .unwrap();
        if shown["step"] == "closed" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never closed: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A hold whose answer is lost every time: the order sticks at reserve.
    http.put(format!("{balances_url}/admin/faults"))
        .json(&json!({"response_lost": 1.0, "response_lost_delay_ms": 10}))
        .send()
        .await
        .unwrap();
    let stuck = submit(
        json!({"symbol": "MSFT", "qty": "1", "side": "buy", "type": "limit",
                              "time_in_force": "gtc", "limit_price": "5.00"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let all: Value =
        serde_json::from_str(&stack.cli_ok(&["orders", "list", "--json"]).await).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let table = stack.cli_ok(&["orders", "list", "--stuck"]).await;
    assert!(table.contains(&stuck), "{table}");
    assert!(!table.contains(&filled), "{table}");
    assert!(table.contains("reserve (unknown)"), "{table}");
    assert!(table.starts_with("ORDER"), "{table}");

    let shown = stack.cli_ok(&["orders", "show", &filled]).await;
    assert!(shown.contains("status         filled"), "{shown}");
    assert!(shown.contains("timeline"), "{shown}");
    assert!(
        shown.contains("reserve") && shown.contains("succeeded"),
        "{shown}"
    );
    assert!(
        shown.contains("settled"),
        "fills and their settlement: {shown}"
    );
    let shown: Value =
        serde_json::from_str(&stack.cli_ok(&["orders", "show", &stuck, "--json"]).await).unwrap();
    assert_eq!(shown["step"], "reserve");
    assert_eq!(shown["step_state"], "unknown");
    assert!(shown["events"].as_array().unwrap().len() >= 2);

    let accounts = stack.cli_ok(&["accounts", "list"]).await;
    assert!(accounts.contains("ops-desk"), "{accounts}");

    let runs: Value = serde_json::from_str(
        &stack
            .cli_ok(&["reconcile", "run", "unknown_outcomes", "--json"])
            .await,
    )
    .unwrap();
    assert_eq!(runs[0]["job"], "unknown_outcomes");
    let kinds: Vec<&str> = runs[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"unknown_outcome"), "{runs}");
    let wrong = stack.cli(&["reconcile", "run", "no_such_job"]).await;
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("no job"));
    drop(serve);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_without_downtime_and_a_revoked_key_is_refused_within_a_second() {
    orderd::install_crypto_provider();
    let stack = Stack {
        db: TestDatabase::fresh().await,
        exchange: exchange_sim::spawn(exchange_config()).await.unwrap(),
        balances: balances_sim::spawn(balances_config()).await.unwrap(),
    };
    let created: Value = serde_json::from_str(
        &stack
            .cli_ok(&[
                "account",
                "create",
                "--name",
                "rotating-desk",
                "--balances-account",
                "rotating-desk",
            ])
            .await,
    )
    .unwrap();
    let old = (
        created["key_id"].as_str().unwrap().to_string(),
        created["secret_key"].as_str().unwrap().to_string(),
    );
    let serve: Orderd = {
        let command = stack.command();
        tokio::task::spawn_blocking(move || start_command(command))
            .await
            .unwrap()
    };
    let http = reqwest::Client::new();
    let status = |key: &(String, String)| {
        let request = http
            .get(format!("http://{}/v2/orders", serve.addr))
            .header("APCA-API-KEY-ID", &key.0)
            .header("APCA-API-SECRET-KEY", &key.1);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(&old).await, 200);

    // A second key: both work (clients move over at their pace).
    let added: Value = serde_json::from_str(
        &stack
            .cli_ok(&["account", "keys", "create", "--account", "rotating-desk"])
            .await,
    )
    .unwrap();
    assert_eq!(added["account_id"], created["account_id"]);
    let new = (
        added["key_id"].as_str().unwrap().to_string(),
        added["secret_key"].as_str().unwrap().to_string(),
    );
    assert_eq!(status(&new).await, 200);
    assert_eq!(status(&old).await, 200);
    let listed: Value = serde_json::from_str(
        &stack
            .cli_ok(&[
                "account",
                "keys",
                "list",
                "--account",
                "rotating-desk",
                "--json",
            ])
            .await,
    )
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["revoked_at"].is_null())
    );

    // Revoke the old one: refused within a second (http.auth_cache_ms),
    // the new one unaffected.
    let revoked = stack.cli_ok(&["account", "keys", "revoke", &old.0]).await;
    assert!(revoked.contains(&old.0), "{revoked}");
    let revoked_at = tokio::time::Instant::now();
    while status(&old).await != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_millis(1000),
            "a revoked key still works after a second"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status(&new).await, 200);
    let table = stack
        .cli_ok(&["account", "keys", "list", "--account", "rotating-desk"])
        .await;
    assert!(table.contains("live") && table.contains(&new.0), "{table}");
    let unknown = stack
        .cli(&["account", "keys", "revoke", "ODNOSUCHKEY"])
        .await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no API key"));
    drop(serve);
}

//! `/openapi.json` is served, and schemathesis (pinned in
//! scripts/python-venv) fuzzes every documented operation of a live stack
//! against it: no 5xx, every status code documented, every body matching
//! its schema.

use std::time::Duration;

use serde_json::Value;

use crate::support::TestStack;

const FUZZ_LIMIT: Duration = Duration::from_secs(600);
/// Examples per operation; enough to hit every documented error path.
const EXAMPLES_PER_OPERATION: &str = "40";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000000"), ("AAPL", "100")]).await;
    // Something to find: an order the fuzzer's GETs may land on.
    trader
        .post_order(serde_json::json!({"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}))
        .await;
    let doc: Value = stack
        .http
        .get(format!("http://{}/openapi.json", stack.app.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));

    let run = async {
        let python = crate::support::compat_python().await;
        let st = std::path::Path::new(&python).with_file_name("st");
        tokio::process::Command::new(st)
            .args([
                "run",
                &format!("http://{}/openapi.json", stack.app.addr),
                "--checks",
                "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance",
                "--generation-with-security-parameters",
                "false",
                "--max-examples",
                EXAMPLES_PER_OPERATION,
                "--generation-deterministic",
                "--no-color",
                "--header",
                &format!("APCA-API-KEY-ID: {}", trader.key_id),
                "--header",
                &format!("APCA-API-SECRET-KEY: {}", trader.secret_key),
                "--header",
                "Authorization: Bearer orderd-admin",
            ])
            .env("SCHEMATHESIS_HOOKS", "")
            .kill_on_drop(true)
            .output()
            .await
            .expect("run schemathesis")
    };
    let output = tokio::time::timeout(FUZZ_LIMIT, run)
        .await
        .expect("schemathesis finished in time");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

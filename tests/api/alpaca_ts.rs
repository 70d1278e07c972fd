//! The official Alpaca TypeScript SDK (@alpacahq/alpaca-trade-api, pinned
//! in scripts/node-sdk) runs against orderd unmodified but for its base
//! path: clock, calendar, assets (by symbol and by id), an order, a
//! replace, closing part of a position and all of them, the account's fill
//! activities.

use std::time::Duration;

use serde_json::Value;

use crate::support::TestStack;

/// Installing the SDK the first time downloads it.
const SDK_RUN_LIMIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread")]
async fn the_official_typescript_sdk_works_unmodified() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000"), ("AAPL", "2")]).await;
    let root = env!("CARGO_MANIFEST_DIR");
    let run = async {
        let sdk = crate::support::compat_node().await;
        tokio::process::Command::new("node")
            .arg(format!("{root}/tests/compat/alpaca_ts_check.js"))
            .env("NODE_PATH", format!("{sdk}/node_modules"))
            .env("ORDERD_URL", format!("http://{}", stack.app.addr))
            .env("APCA_API_KEY_ID", &trader.key_id)
            .env("APCA_API_SECRET_KEY", &trader.secret_key)
            .kill_on_drop(true)
            .output()
            .await
            .expect("run the TypeScript SDK check")
    };
    let output = tokio::time::timeout(SDK_RUN_LIMIT, run)
        .await
        .expect("the SDK check finished in time");
    assert!(
        output.status.success(),
        "TypeScript SDK check failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("summary JSON");
    assert_eq!(summary["clock_is_open"], true, "{summary}");
    assert!(summary["calendar_days"].as_u64().unwrap() > 10, "{summary}");
    assert!(summary["assets"].as_u64().unwrap() >= 8, "{summary}");
    // A resting 1 @ 1.00 replaced through patchOrderByOrderId by 3 @ 2.00:
    // the SDK's Order model holds the replacement, resting (the script
    // checks its id, `replaces` and the original's `replaced_by`); a
    // replace of the replaced original is the SDK's ValidationError, 422.
    assert_eq!(
        summary["replacement"],
        serde_json::json!(["3", "2", "new", "limit", "gtc"]),
        "{summary}"
    );
    assert_eq!(
        summary["replaced"],
        serde_json::json!(["replaced", "1", "1"]),
        "{summary}"
    );
    assert_eq!(summary["replace_replaced"][0], true, "{summary}");
    assert_eq!(summary["replace_replaced"][1], 422, "{summary}");
    assert!(
        summary["replace_replaced"][2]
            .as_str()
            .is_some_and(|m| m.starts_with("order is already")),
        "{summary}"
    );
    assert_eq!(summary["replacement_canceled"], "canceled", "{summary}");
    assert!(
        ["new", "partially_filled", "filled"].contains(&summary["order_status"].as_str().unwrap()),
        "{summary}"
    );
    // The close of one share was accepted; close-all closed what was left
    // of AAPL after canceling the resting buy.
    assert!(
        [
            "new",
            "accepted",
            "pending_new",
            "partially_filled",
            "filled"
        ]
        .contains(&summary["close_one_status"].as_str().unwrap_or_default()),
        "{summary}"
    );
    assert_eq!(
        summary["close_all"],
        serde_json::json!([["AAPL", 200]]),
        "{summary}"
    );
    assert!(
        summary["fill_activities"].as_u64().unwrap() >= 2,
        "{summary}"
    );
    assert_eq!(summary["first_activity"], "FILL", "{summary}");
    // $100 of NVDA bought by notional, its qty the venue's, sold back.
    assert_eq!(
        summary["notional"],
        serde_json::json!(["100", "filled", true, "0"]),
        "{summary}"
    );
    // Half an NVDA share bought, filled and held; sold, and none held.
    assert_eq!(
        summary["fractional"],
        serde_json::json!([
            ["buy", "filled", "0.5", "0.5"],
            ["sell", "filled", "0.5", "0"]
        ]),
        "{summary}"
    );
    assert_eq!(
        summary["stop_orders"],
        serde_json::json!([
            ["stop", "new"],
            ["stop_limit", "new"],
            ["trailing_stop", "new"]
        ]),
        "{summary}"
    );
    stack.wait_all_terminal(Duration::from_secs(20)).await;
    stack.assert_invariants().await;
}

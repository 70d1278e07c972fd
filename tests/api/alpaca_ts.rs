//! The official Alpaca TypeScript SDK (@alpacahq/alpaca-trade-api, pinned
//! in scripts/node-sdk) runs against orderd unmodified but for its base
//! path: clock, calendar, assets (by symbol and by id), an order.

use std::time::Duration;

use serde_json::Value;

use crate::support::TestStack;

/// Installing the SDK the first time downloads it.
const SDK_RUN_LIMIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread")]
async fn the_official_typescript_sdk_works_unmodified() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
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
    assert!(
        ["new", "partially_filled", "filled"].contains(&summary["order_status"].as_str().unwrap()),
        "{summary}"
    );
}

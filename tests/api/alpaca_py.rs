//! The official Alpaca SDK (alpaca-py, pinned in scripts/python-venv) runs
//! against orderd with only a base-URL override: TradingClient for orders,
//! cancels, replaces, account and positions; TradingStream for trade
//! updates.

use std::time::Duration;

use serde_json::Value;

use crate::support::TestStack;

/// Creating the virtualenv the first time downloads alpaca-py.
const SDK_RUN_LIMIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread")]
async fn the_official_alpaca_sdk_works_unmodified() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000"), ("AAPL", "10")]).await;
    let root = env!("CARGO_MANIFEST_DIR");
    let run = async {
        let python = crate::support::compat_python().await;
        tokio::process::Command::new(python)
            .arg(format!("{root}/tests/compat/alpaca_py_check.py"))
            .env("ORDERD_BASE_URL", format!("http://{}", stack.app.addr))
            .env("APCA_KEY_ID", &trader.key_id)
            .env("APCA_SECRET", &trader.secret_key)
            .env("VENUE_ADMIN_URL", stack.exchange_url(""))
            .kill_on_drop(true)
            .output()
            .await
            .expect("run the SDK check")
    };
    let output = tokio::time::timeout(SDK_RUN_LIMIT, run)
        .await
        .expect("the SDK check finished in time");
    assert!(
        output.status.success(),
        "alpaca-py check failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("summary JSON");
    assert_eq!(summary["limit_status"], "new", "{summary}");
    assert_eq!(summary["limit_client_order_id"], "compat-limit-1");
    // A marketable order's answer may already show the venue's first
    // fills (its report can overtake the answer).
    for key in ["market_status", "sell_status"] {
        assert!(
            ["new", "partially_filled", "filled"].contains(&summary[key].as_str().unwrap_or("")),
            "{key}: {summary}"
        );
    }
    assert_eq!(summary["orders_all"], 3);
    assert_eq!(summary["clock_is_open"], true, "{summary}");
    assert!(summary["calendar_days"].as_u64().unwrap() > 10, "{summary}");
    assert_eq!(summary["opg_status"], "filled", "{summary}");
    assert_eq!(summary["cls_status"], "filled", "{summary}");
    assert_eq!(summary["refused_status"], 403);
    assert_eq!(summary["refused_message"], "insufficient buying power");
    assert_eq!(summary["canceled_status"], "canceled");
    // A resting 1 @ 1.00 replaced through ReplaceOrderRequest by 3 @ 2.00:
    // alpaca-py's Order model holds the replacement, resting; the original
    // ended replaced with its own terms (the script checks the ids); a
    // replace of the replaced original is refused as Alpaca refuses it.
    assert_eq!(
        summary["replacement"],
        serde_json::json!(["3", "2", "new", "limit"]),
        "{summary}"
    );
    assert_eq!(
        summary["replaced"],
        serde_json::json!(["replaced", "1", "1"]),
        "{summary}"
    );
    assert_eq!(summary["replace_replaced_status"], 422, "{summary}");
    assert!(
        summary["replace_replaced_message"]
            .as_str()
            .is_some_and(|m| m.starts_with("order is already")),
        "{summary}"
    );
    assert_eq!(summary["replacement_canceled"], "canceled", "{summary}");
    // Every order still open was canceled (the resting one at least; the
    // script checks it is among them).
    let cancel_all = summary["cancel_all"].as_array().unwrap();
    assert!(
        !cancel_all.is_empty() && cancel_all.iter().all(|s| s == 200),
        "{summary}"
    );
    // Half an NVDA share bought and sold through alpaca-py's models; a
    // fractional GTC order refused naming time_in_force.
    assert_eq!(
        summary["fractional_buy"],
        serde_json::json!(["0.5", "0.5"]),
        "{summary}"
    );
    assert_eq!(
        summary["fractional_sell"],
        serde_json::json!(["0.5", "0.5"]),
        "{summary}"
    );
    assert_eq!(summary["fractional_gtc_status"], 422, "{summary}");
    // $100 of NVDA bought by notional, its qty the venue's, sold back.
    assert_eq!(
        summary["notional_buy"],
        serde_json::json!(["100", "filled"]),
        "{summary}"
    );
    assert_eq!(summary["notional_qty_sold_back"], true, "{summary}");
    assert!(
        summary["fractional_gtc_message"]
            .as_str()
            .is_some_and(|m| m.starts_with("time_in_force")),
        "{summary}"
    );
    assert_eq!(summary["account_status"], "ACTIVE");
    // 3 bought at market, 2 in the opening auction, 1 in the closing one.
    assert_eq!(summary["positions"]["MSFT"], "6");
    // One MSFT closed, then every position, each with a filled sell.
    assert_eq!(summary["close_one_qty"], "1", "{summary}");
    let closed: Vec<String> = summary["close_all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert!(
        closed.contains(&"[\"MSFT\",200]".to_string())
            && closed.contains(&"[\"AAPL\",200]".to_string()),
        "{summary}"
    );
    assert_eq!(summary["positions_after_close_all"], 0, "{summary}");
    // Each stop type went in through alpaca-py's own request models and
    // came back in its Order model, untriggered, its terms shown.
    let stops: Vec<String> = summary["stop_orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        stops,
        [
            r#"["stop","new",true]"#,
            r#"["stop_limit","new",true]"#,
            r#"["trailing_stop","new",true]"#,
            r#"["trailing_stop","new",true]"#,
        ],
        "{summary}"
    );
    assert!(
        summary["fill_activities"].as_u64().unwrap() >= 6,
        "{summary}"
    );
    assert_eq!(
        summary["fill_sides"],
        serde_json::json!(["buy", "sell"]),
        "{summary}"
    );
    let events: Vec<&str> = summary["stream_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(events.iter().any(|e| e.ends_with("fill")), "{events:?}");
    assert!(events.iter().any(|e| e.ends_with("new")), "{events:?}");
}

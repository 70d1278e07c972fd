//! The operator surface: `/metrics` moves when orders flow.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::support::TestStack;

/// The value of the sample `name` whose labels include all of `labels`
/// (0 when absent).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let found: BTreeMap<&str, &str> = label_text
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            labels
                .iter()
                .all(|(k, v)| found.get(k) == Some(v))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

async fn scrape(stack: &TestStack) -> String {
    let response = stack
        .http
        .get(format!("http://{}/metrics", stack.app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_appear_and_move_when_orders_flow() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000000")]).await;
    let before = scrape(&stack).await;
    let placed_before = sample(
        &before,
        "orderd_external_call_duration_seconds_count",
        &[
            ("service", "exchange"),
            ("endpoint", "place_order"),
            ("outcome", "ok"),
        ],
    );
    for _ in 0..3 {
        let reply = trader
            .post_order(json!({"symbol": "AAPL", "qty": "2", "side": "buy", "type": "market", "time_in_force": "day"}))
            .await;
        assert_eq!(reply.status, 200);
    }
    let resting = trader
        .post_order(
            json!({"symbol": "MSFT", "qty": "1", "side": "buy", "type": "limit",
                           "time_in_force": "gtc", "limit_price": "1.00"}),
        )
        .await;
    assert_eq!(resting.status, 200);
    let poor = stack.trader(&[("USD", "1")]).await;
    assert_eq!(
        poor.post_order(json!({"symbol": "AAPL", "qty": "2", "side": "buy", "type": "market", "time_in_force": "day"}))
            .await
            .status,
        403
    );
    // Let the market orders fill and settle.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let after = scrape(&stack).await;
    // Answered placed: `new`, or already (partially) filled when the
    // venue's report overtook the answer.
    let placed: f64 = ["new", "partially_filled", "filled"]
        .iter()
        .map(|outcome| {
            sample(
                &after,
                "orderd_orders_submitted_total",
                &[("outcome", outcome)],
            )
        })
        .sum();
    assert_eq!(placed, 4.0, "{after}");
    assert_eq!(
        sample(
            &after,
            "orderd_orders_submitted_total",
            &[("outcome", "insufficient_funds")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "orderd_external_call_duration_seconds_count",
            &[
                ("service", "exchange"),
                ("endpoint", "place_order"),
                ("outcome", "ok")
            ],
        ) - placed_before,
        4.0
    );
    assert!(
        sample(&after, "orderd_trade_events_total", &[("event", "fill")]) >= 3.0,
        "{after}"
    );
    assert!(
        sample(
            &after,
            "orderd_settlements_total",
            &[("outcome", "settled")]
        ) >= 3.0
    );
    assert_eq!(
        sample(&after, "orderd_orders_open", &[("status", "new")]),
        1.0,
        "the resting order"
    );
    assert!(sample(&after, "orderd_oldest_open_order_age_seconds", &[]) > 0.0);
    assert!(sample(&after, "orderd_venue_stream_reports_total", &[]) > 0.0);
    assert_eq!(sample(&after, "orderd_venue_stream_connected", &[]), 1.0);
    // Label values are bounded: no order ids in any series.
    let id = resting.body["id"].as_str().unwrap();
    assert!(!after.contains(id));
    assert!(after.contains("# HELP orderd_orders_submitted_total"));
}

//! What a schedule sends: the order a venue behaviour needs, its faults,
//! the trader's requests, the lane's provisioning.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::super::session::Trader;
use super::super::stack::Stack;
use super::*;

/// The venue's fault profile for a behaviour.
pub(super) fn venue_faults(venue: Venue) -> Value {
    match venue {
        Venue::Rejects => json!({"reject": 1.0}),
        Venue::CancelLate => json!({"cancel_delay_ms": 1500}),
        _ => json!({}),
    }
}

/// The order a behaviour needs: a marketable IOC fills at once; a
/// marketable limit DAY fills in the venue's chunks, as does a fractional
/// market DAY (the fraction last); a far limit rests.
pub(super) fn order_body(venue: Venue, coid: &str) -> Value {
    match venue {
        Venue::FillsAtOnce => json!({"symbol": SYMBOL, "qty": "5", "side": "buy",
            "type": "market", "time_in_force": "ioc", "client_order_id": coid}),
        Venue::FillsInParts => json!({"symbol": SYMBOL, "qty": "12", "side": "buy",
            "type": "limit", "limit_price": "300.00", "time_in_force": "day",
            "client_order_id": coid}),
        Venue::FillsFractional => json!({"symbol": SYMBOL, "qty": "7.654321987", "side": "buy",
            "type": "market", "time_in_force": "day", "client_order_id": coid}),
        Venue::FillsNotional => json!({"symbol": SYMBOL, "notional": "1234.56", "side": "buy",
            "type": "market", "time_in_force": "day", "client_order_id": coid}),
        Venue::Rests
        | Venue::CancelLate
        | Venue::Rejects
        | Venue::ReplaceUp
        | Venue::ReplaceDown
        | Venue::ReplaceFills
        | Venue::ReplaceFillsCarried => json!({"symbol": SYMBOL, "qty": "3",
            "side": "buy", "type": "limit", "limit_price": "1.00", "time_in_force": "gtc",
            "client_order_id": coid}),
    }
}

/// The trader's `PATCH` of a replace chain's resting order (3 at 1.00):
/// 5 at 1.00 needs 2.00 more hold; 2 at 0.90 needs 1.20 less; 12 at 300.00
/// (the market is near 190) is marketable and needs thousands more — a
/// total, what the original filled included. `None` for a behaviour that
/// replaces nothing.
pub(super) fn replace_patch(venue: Venue, coid: &str) -> Option<Value> {
    match venue {
        Venue::ReplaceUp => Some(json!({"qty": "5", "client_order_id": coid})),
        Venue::ReplaceDown => Some(json!({"qty": "2", "limit_price": "0.90",
            "client_order_id": coid})),
        Venue::ReplaceFills | Venue::ReplaceFillsCarried => Some(json!({"qty": "12",
            "limit_price": "300.00", "client_order_id": coid})),
        _ => None,
    }
}

/// Sets the venue's reference price of [`SYMBOL`] (its admin API).
pub(super) async fn set_price(
    http: &reqwest::Client,
    exchange: &str,
    price: &str,
) -> anyhow::Result<()> {
    let response = http
        .post(format!("{exchange}/admin/prices"))
        .json(&json!({"symbol": SYMBOL, "price": price}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "setting {SYMBOL}'s price to {price}: {}",
        response.status()
    );
    Ok(())
}

/// Every fill of an order (empty when it has none or cannot be read).
pub(super) async fn fills_of(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
    id: &str,
) -> Vec<Value> {
    match trader_request(
        http,
        reqwest::Method::GET,
        &format!("{url}/v2/orders/{id}/fills"),
        trader,
        None,
    )
    .await
    {
        Some((200, Value::Array(fills))) => fills,
        _ => Vec::new(),
    }
}

pub(super) async fn replace(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
    original_id: &str,
    patch: &Value,
) -> Option<(u16, Value)> {
    trader_request(
        http,
        reqwest::Method::PATCH,
        &format!("{url}/v2/orders/{original_id}"),
        trader,
        Some((patch, None)),
    )
    .await
}

pub(super) async fn trader_request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    trader: &Trader,
    body: Option<(&Value, Option<&str>)>,
) -> Option<(u16, Value)> {
    let mut request = http
        .request(method, url)
        .header("APCA-API-KEY-ID", &trader.key_id)
        .header("APCA-API-SECRET-KEY", &trader.secret_key);
    if let Some((body, key)) = body {
        request = request.json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let value = response.json().await.unwrap_or(Value::Null);
    Some((status, value))
}

pub(super) async fn submit(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
    body: &Value,
    key: Option<&str>,
) -> Option<(u16, Value)> {
    trader_request(
        http,
        reqwest::Method::POST,
        &format!("{url}/v2/orders"),
        trader,
        Some((body, key)),
    )
    .await
}

/// The order's id, found by its client_order_id (as a trader who got no
/// answer would).
pub(super) async fn find_order(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
    coid: &str,
) -> Option<String> {
    let (status, order) = trader_request(
        http,
        reqwest::Method::GET,
        &format!("{url}/v2/orders:by_client_order_id?client_order_id={coid}"),
        trader,
        None,
    )
    .await?;
    (status == 200)
        .then(|| order["id"].as_str().map(str::to_string))
        .flatten()
}

/// [`find_order`], asking again for up to `limit` while it finds nothing
/// (orderd answers 503 for a while after its database restarted).
pub(super) async fn find_order_within(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
    coid: &str,
    limit: Duration,
) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        let found = find_order(http, url, trader, coid).await;
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The order's lifecycle step (`closed` once nothing is left to do).
pub(super) async fn step_of(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
    id: &str,
) -> Option<String> {
    match trader_request(
        http,
        reqwest::Method::GET,
        &format!("{url}/v2/orders/{id}/events"),
        trader,
        None,
    )
    .await
    {
        Some((200, timeline)) => timeline["step"].as_str().map(str::to_string),
        _ => None,
    }
}

pub(super) async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some((200, order)) = trader_request(
            http,
            reqwest::Method::GET,
            &format!("{url}/v2/orders/{id}"),
            trader,
            None,
        )
        .await
            && done(&order)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Funds `count` traders at the ledger and creates their orderd accounts
/// in one CLI run.
pub(super) async fn provision(
    stack: &Stack,
    http: &reqwest::Client,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<Trader>> {
    for i in 1..=count {
        let response = http
            .post(format!("{}/admin/accounts", stack.balances.url()))
            .json(&json!({"account_id": format!("{prefix}-{i}"),
                          "balances": {"USD": TRADER_CASH, SYMBOL: TRADER_SHARES}}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "funding {prefix}-{i}: {}",
            response.status()
        );
    }
    let count_text = count.to_string();
    let printed = tokio::task::block_in_place(|| {
        stack.cli(&[
            "account",
            "create",
            "--name",
            prefix,
            "--balances-account",
            prefix,
            "--count",
            &count_text,
        ])
    })?;
    printed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let created: Value = serde_json::from_str(line).context("account create output")?;
            Ok(Trader {
                name: format!("{prefix}-{}", i + 1),
                key_id: created["key_id"].as_str().unwrap_or_default().to_string(),
                secret_key: created["secret_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                account_id: created["account_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect()
}

//! Proving it: a local stack of real processes, a trading session with
//! faults on, orderd killed with SIGKILL and restarted, then quiescence and
//! every invariant checked. `orderd demo` runs one scenario with live
//! progress; `orderd chaos` runs seeded scenarios and tabulates them.

pub mod bench;
pub mod explore;
pub mod failover;
pub mod report;
mod run;
pub mod scenario;
pub mod session;
pub mod soak;
pub mod stack;
pub mod upgrade;

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::time::Instant;

pub use self::report::RunReport;
pub use self::run::{chaos, run, soak};
pub use self::scenario::{Kill, Scenario};
use self::session::{STARTING_SHARES, SYMBOLS, Shared, Trader};
use self::stack::Stack;

/// How long the stack may take to become quiet once faults stop.
pub const QUIESCENCE_LIMIT: Duration = Duration::from_secs(120);
/// Replays of acknowledged requests checked for I7.
pub const I7_SAMPLE: usize = 50;
/// The operator token the harness's orderd uses.
pub(crate) const ADMIN_TOKEN: &str = "orderd-admin";

pub(crate) async fn put_faults(
    http: &reqwest::Client,
    base: &str,
    faults: &Value,
) -> anyhow::Result<()> {
    let response = http
        .put(format!("{base}/admin/faults"))
        .json(faults)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "PUT {base}/admin/faults: {}",
        response.status()
    );
    Ok(())
}

/// A failpoint may have killed orderd: bring it back, unarmed, and count
/// the kill.
pub(crate) fn revive_if_killed(
    stack: &mut Stack,
    shared: &Shared,
    report: &mut RunReport,
) -> anyhow::Result<()> {
    if !tokio::task::block_in_place(|| stack.orderd_alive()) {
        shared.set_url(None);
        report.kills += 1;
        tokio::task::block_in_place(|| stack.start_orderd(None))?;
        shared.set_url(stack.orderd_url());
    }
    Ok(())
}

/// Funds `count` traders named `{prefix}-{i}` at the ledger with `cash`
/// USD and [`STARTING_SHARES`] of every symbol, and creates their orderd
/// accounts.
pub(crate) async fn provision(
    stack: &Stack,
    http: &reqwest::Client,
    prefix: &str,
    count: usize,
    cash: &str,
) -> anyhow::Result<Vec<Trader>> {
    let mut traders = Vec::new();
    for i in 0..count {
        let name = format!("{prefix}-{i}");
        let mut balances = serde_json::Map::new();
        balances.insert("USD".into(), json!(cash));
        for symbol in SYMBOLS {
            balances.insert(symbol.into(), json!(STARTING_SHARES));
        }
        let response = http
            .post(format!("{}/admin/accounts", stack.balances.url()))
            .json(&json!({"account_id": name, "balances": balances}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "funding {name}: {}",
            response.status()
        );
        let printed = tokio::task::block_in_place(|| {
            stack.cli(&[
                "account",
                "create",
                "--name",
                &name,
                "--balances-account",
                &name,
            ])
        })?;
        let created: Value =
            serde_json::from_str(printed.trim()).context("account create output")?;
        traders.push(Trader {
            name,
            key_id: created["key_id"].as_str().unwrap_or_default().to_string(),
            secret_key: created["secret_key"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            account_id: created["account_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        });
    }
    Ok(traders)
}

/// The samples of Prometheus text: `(name, labels without braces, value)`.
pub(crate) fn metric_samples(text: &str) -> impl Iterator<Item = (&str, &str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse::<f64>().ok()?;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            Some((name, labels.trim_end_matches('}'), value))
        })
}

/// Sums the samples of one metric in Prometheus text.
pub(crate) fn metric_sum(text: &str, name: &str) -> f64 {
    metric_samples(text)
        .filter(|(n, ..)| *n == name)
        .map(|(.., value)| value)
        .sum()
}

/// Cancels what is still open and waits until no order is mid-step or
/// working and every fill is settled.
pub(crate) async fn quiesce(
    http: &reqwest::Client,
    url: &str,
    traders: &[Trader],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + QUIESCENCE_LIMIT;
    let mut quiet_since: Option<Instant> = None;
    loop {
        for t in traders {
            let _ = http
                .delete(format!("{url}/v2/orders"))
                .header("APCA-API-KEY-ID", &t.key_id)
                .header("APCA-API-SECRET-KEY", &t.secret_key)
                .send()
                .await;
        }
        let text = http
            .get(format!("{url}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let busy = metric_sum(&text, "orderd_orders_by_step")
            + metric_sum(&text, "orderd_fills_unsettled");
        if busy == 0.0 {
            // Quiet for two seconds: late fills after cancels have landed.
            match quiet_since {
                Some(since) if since.elapsed() > Duration::from_secs(2) => return Ok(()),
                Some(_) => {}
                None => quiet_since = Some(Instant::now()),
            }
        } else {
            quiet_since = None;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not quiet after {QUIESCENCE_LIMIT:?}: {busy} items busy"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every order of `trader`, oldest first (paged).
pub(crate) async fn all_orders(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
) -> anyhow::Result<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let mut request = http
            .get(format!("{url}/v2/orders"))
            .query(&[("status", "all"), ("direction", "asc"), ("limit", "500")])
            .header("APCA-API-KEY-ID", &trader.key_id)
            .header("APCA-API-SECRET-KEY", &trader.secret_key);
        if let Some(last) = out.last() {
            request = request.query(&[("after", last["created_at"].as_str().unwrap_or_default())]);
        }
        let page: Vec<Value> = request.send().await?.json().await?;
        let full = page.len() == 500;
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

//! Proving it: a local stack of real processes, a trading session with
//! faults on, orderd killed with SIGKILL and restarted, then quiescence and
//! every invariant checked. `orderd demo` runs one scenario with live
//! progress; `orderd chaos` runs seeded scenarios and tabulates them.

pub mod bench;
pub mod session;
pub mod stack;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::time::Instant;

use self::session::{STARTING_CASH, STARTING_SHARES, SYMBOLS, Shared, Trader};
use self::stack::{Stack, StackConfig};

/// How long the stack may take to become quiet once faults stop.
pub const QUIESCENCE_LIMIT: Duration = Duration::from_secs(120);
/// Replays of acknowledged requests checked for I7.
pub const I7_SAMPLE: usize = 50;
/// The operator token the harness's orderd uses.
const ADMIN_TOKEN: &str = "orderd-admin";

/// One kill of orderd.
#[derive(Debug, Clone)]
pub struct Kill {
    /// When, from the session's start.
    pub at: Duration,
    /// How long orderd stays down.
    pub down_for: Duration,
    /// A failpoint armed on the restart (the process dies again at it and
    /// is restarted once more without it).
    pub failpoint_on_restart: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub traders: usize,
    pub duration: Duration,
    pub rate_per_sec: u32,
    pub exchange_faults: Value,
    pub balances_faults: Value,
    pub kills: Vec<Kill>,
    /// Print a progress line every second.
    pub progress: bool,
}

impl Scenario {
    /// The demo's scenario: every fault a little, one SIGKILL mid-session.
    pub fn demo(seed: u64, duration: Duration) -> Self {
        Self {
            seed,
            traders: 4,
            duration,
            rate_per_sec: 40,
            exchange_faults: json!({
                "response_lost": 0.03, "response_lost_delay_ms": 100, "reject": 0.02,
                "reject_response_lost": 0.01, "rate_limited": 0.02, "retry_after_secs": 0,
                "unavailable": 0.02, "stale_read": 0.1, "stale_read_window_ms": 300,
                "duplicate_report": 0.05, "out_of_order_report": 0.05, "drop_report": 0.03,
                "disconnect": 0.003, "fill_after_cancel": 0.2, "fill_races_cancel": 0.2,
                "latency": 0.1, "latency_min_ms": 5, "latency_max_ms": 50
            }),
            balances_faults: json!({
                "response_lost": 0.03, "response_lost_delay_ms": 100, "error_5xx": 0.02,
                "http_429": 0.02, "retry_after_s": 0, "latency": 0.1, "latency_ms_min": 1, "latency_ms_max": 20
            }),
            kills: vec![Kill {
                at: duration.mul_f64(0.4),
                down_for: Duration::from_secs(1),
                failpoint_on_restart: None,
            }],
            progress: true,
        }
    }

    /// A chaos scenario drawn from `seed`: random fault probabilities, one
    /// to three kills at random moments, a random failpoint on a restart.
    pub fn chaos(seed: u64, duration: Duration) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = |max: f64| (rng.random_range(0.0..max) * 1000.0).round() / 1000.0;
        let exchange_faults = json!({
            "response_lost": p(0.1), "response_lost_delay_ms": 100, "reject": p(0.05),
            "reject_response_lost": p(0.05), "rate_limited": p(0.05), "retry_after_secs": 0,
            "unavailable": p(0.05), "stale_read": p(0.3), "stale_read_window_ms": 300,
            "duplicate_report": p(0.1), "out_of_order_report": p(0.1), "drop_report": p(0.1),
            "disconnect": p(0.01), "fill_after_cancel": p(0.3), "fill_races_cancel": p(0.3),
            "latency": p(0.2), "latency_min_ms": 1, "latency_max_ms": 50
        });
        let balances_faults = json!({
            "response_lost": p(0.1), "response_lost_delay_ms": 100, "error_5xx": p(0.05),
            "http_429": p(0.05), "retry_after_s": 0, "latency": p(0.2), "latency_ms_min": 1, "latency_ms_max": 20
        });
        let failpoints = [
            crate::failpoints::AFTER_ACCEPT_COMMIT,
            crate::failpoints::AFTER_HOLD_CREATED,
            crate::failpoints::AFTER_PLACE_SENT,
            crate::failpoints::AFTER_RELEASE_SENT,
        ];
        let kills = (0..rng.random_range(1..=3))
            .map(|_| Kill {
                at: duration.mul_f64(rng.random_range(0.1..0.9)),
                down_for: Duration::from_millis(rng.random_range(0..1500)),
                failpoint_on_restart: rng
                    .random_bool(0.5)
                    .then(|| failpoints[rng.random_range(0..failpoints.len())]),
            })
            .collect::<Vec<_>>();
        let mut kills = kills;
        kills.sort_by_key(|k| k.at);
        Self {
            seed,
            traders: 3,
            duration,
            rate_per_sec: 30,
            exchange_faults,
            balances_faults,
            kills,
            progress: false,
        }
    }
}

/// What one scenario showed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub submitted: u64,
    pub acknowledged: u64,
    pub refused_insufficient: u64,
    pub retries: u64,
    pub unanswered_attempts: u64,
    pub cancels: u64,
    pub kills: u64,
    pub orders_by_status: BTreeMap<String, u64>,
    pub fills: usize,
    pub exchange_faults: BTreeMap<String, u64>,
    pub balances_faults: BTreeMap<String, u64>,
    pub findings_by_kind: BTreeMap<String, u64>,
    pub repairs: u64,
    /// name → violations (empty = holds); `None` for not checked.
    pub invariants: BTreeMap<String, Option<Vec<String>>>,
}

impl RunReport {
    pub fn all_hold(&self) -> bool {
        self.invariants
            .values()
            .all(|v| v.as_ref().is_none_or(|v| v.is_empty()))
    }

    pub fn violations(&self) -> usize {
        self.invariants.values().flatten().map(Vec::len).sum()
    }

    pub fn print(&self) {
        println!();
        println!("== orders");
        println!(
            "submitted {}  acknowledged {}  refused (insufficient funds) {}  unanswered attempts {} (retried with the same key)  cancels {}  orderd kills {}",
            self.submitted,
            self.acknowledged,
            self.refused_insufficient,
            self.unanswered_attempts,
            self.cancels,
            self.kills
        );
        println!(
            "final status: {}",
            self.orders_by_status
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("fills: {}", self.fills);
        println!("== faults injected");
        let show = |m: &BTreeMap<String, u64>| {
            m.iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("exchange: {}", show(&self.exchange_faults));
        println!("balances: {}", show(&self.balances_faults));
        println!("== reconciliation");
        println!(
            "findings: {} ; repairs made: {}",
            if self.findings_by_kind.is_empty() {
                "none".to_string()
            } else {
                show(&self.findings_by_kind)
            },
            self.repairs
        );
        println!("== invariants");
        for (name, result) in &self.invariants {
            match result {
                None => println!("n/a  {name}"),
                Some(v) if v.is_empty() => println!("ok   {name}"),
                Some(v) => {
                    println!("FAIL {name}");
                    for line in v.iter().take(10) {
                        println!("       {line}");
                    }
                }
            }
        }
    }
}

fn counters(value: &Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

async fn put_faults(http: &reqwest::Client, base: &str, faults: &Value) -> anyhow::Result<()> {
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
fn revive_if_killed(
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
fn metric_sum(text: &str, name: &str) -> f64 {
    metric_samples(text)
        .filter(|(n, ..)| *n == name)
        .map(|(.., value)| value)
        .sum()
}

/// Cancels what is still open and waits until no order is mid-step or
/// working and every fill is settled.
async fn quiesce(http: &reqwest::Client, url: &str, traders: &[Trader]) -> anyhow::Result<()> {
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
async fn all_orders(
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

/// Runs `scenario` on a fresh stack in `config.work_dir`. With `keep`, the
/// stack is left running (its addresses are printed).
pub async fn run(
    scenario: &Scenario,
    config: StackConfig,
    keep: bool,
) -> anyhow::Result<RunReport> {
    if config.database_url.is_none() {
        // A fresh cluster per run: the report compares it with fresh venues.
        let pg = config.work_dir.join("postgres");
        if pg.exists() {
            let _ = crate::embedded_postgres::EmbeddedPostgres::stop_unowned(&pg);
            std::fs::remove_dir_all(&pg).with_context(|| format!("removing {}", pg.display()))?;
        }
    }
    let mut stack = tokio::task::block_in_place(|| Stack::start(config))?;
    let result = drive(scenario, &mut stack).await;
    if keep {
        println!();
        println!("the stack stays up (Ctrl-C to stop):");
        println!("  orderd       {}", stack.orderd_url().unwrap_or_default());
        println!("  exchange-sim {}", stack.exchange.url());
        println!("  balances-sim {}", stack.balances.url());
        crate::startup::shutdown_signal().await;
    }
    let data_dir =
        (stack.config.database_url.is_none()).then(|| stack.config.work_dir.join("postgres"));
    tokio::task::block_in_place(|| stack.stop());
    if let Some(dir) = data_dir {
        // A failpoint death leaves the cluster without an owner.
        let _ = crate::embedded_postgres::EmbeddedPostgres::stop_unowned(&dir);
    }
    result
}

async fn drive(scenario: &Scenario, stack: &mut Stack) -> anyhow::Result<RunReport> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let traders = Arc::new(
        provision(
            stack,
            &http,
            &format!("trader-{}", scenario.seed),
            scenario.traders,
            STARTING_CASH,
        )
        .await?,
    );
    put_faults(&http, &stack.exchange.url(), &scenario.exchange_faults).await?;
    put_faults(&http, &stack.balances.url(), &scenario.balances_faults).await?;

    let shared = Shared::new(stack.orderd_url());
    let drain = Duration::from_secs(60);
    let session = tokio::spawn(session::run(
        shared.clone(),
        traders.clone(),
        scenario.seed,
        scenario.duration,
        scenario.rate_per_sec,
        drain,
    ));
    let started = Instant::now();
    let mut kills = scenario.kills.iter().peekable();
    let mut report = RunReport {
        seed: scenario.seed,
        ..RunReport::default()
    };
    while started.elapsed() < scenario.duration {
        tokio::time::sleep(Duration::from_millis(100)).await;
        revive_if_killed(stack, &shared, &mut report)?;
        if let Some(kill) = kills.next_if(|k| started.elapsed() >= k.at) {
            shared.set_url(None);
            tokio::task::block_in_place(|| stack.kill_orderd());
            report.kills += 1;
            if scenario.progress {
                println!(
                    "[{:>5.1}s] orderd killed with SIGKILL",
                    started.elapsed().as_secs_f64()
                );
            }
            tokio::time::sleep(kill.down_for).await;
            tokio::task::block_in_place(|| stack.start_orderd(kill.failpoint_on_restart))?;
            shared.set_url(stack.orderd_url());
            if scenario.progress {
                println!(
                    "[{:>5.1}s] orderd restarted{}",
                    started.elapsed().as_secs_f64(),
                    kill.failpoint_on_restart
                        .map(|f| format!(" with failpoint {f}"))
                        .unwrap_or_default()
                );
            }
        }
        if scenario.progress
            && started.elapsed().as_millis() % 1000 < 100
            && let Ok(t) = shared.tally.lock()
        {
            println!(
                "[{:>5.1}s] submitted {:>5}  acknowledged {:>5}  refused {:>4}  awaiting answer {:>3}  retries {:>4}",
                started.elapsed().as_secs_f64(),
                t.submitted,
                t.acknowledged,
                t.refused_insufficient,
                t.pending.len(),
                t.retries
            );
        }
    }
    // Faults stop; the session drains its unanswered requests.
    put_faults(&http, &stack.exchange.url(), &json!({})).await?;
    put_faults(&http, &stack.balances.url(), &json!({})).await?;
    while !session.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        revive_if_killed(stack, &shared, &mut report)?;
    }
    let _ = session.await;
    let url = stack.orderd_url().context("orderd is not running")?;
    if scenario.progress {
        println!(
            "[{:>5.1}s] faults off; waiting for quiescence",
            started.elapsed().as_secs_f64()
        );
    }
    quiesce(&http, &url, &traders).await?;

    let acks = {
        let tally = shared
            .tally
            .lock()
            .map_err(|_| anyhow::anyhow!("tally poisoned"))?;
        report.submitted = tally.submitted;
        report.acknowledged = tally.acknowledged;
        report.refused_insufficient = tally.refused_insufficient;
        report.retries = tally.retries;
        report.unanswered_attempts = tally.no_answer;
        report.cancels = tally.cancels;
        tally.acks.clone()
    };

    // Orders by final status.
    let mut known = std::collections::HashSet::new();
    for trader in traders.iter() {
        for order in all_orders(&http, &url, trader).await? {
            *report
                .orders_by_status
                .entry(order["status"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
            known.insert(order["id"].as_str().unwrap_or_default().to_string());
        }
    }
    // I5: every order the API acknowledged is there.
    let lost: Vec<String> = acks
        .values()
        .filter(|a| a.status == 200)
        .filter_map(|a| a.order_id.clone())
        .filter(|id| !known.contains(id))
        .collect();
    // I7: replaying acknowledged requests gives the same outcome.
    let mut mismatches = Vec::new();
    for (key, ack) in acks.iter().filter(|(_, a)| a.status != 422).take(I7_SAMPLE) {
        let t = &traders[ack.trader];
        let response = http
            .post(format!("{url}/v2/orders"))
            .header("APCA-API-KEY-ID", &t.key_id)
            .header("APCA-API-SECRET-KEY", &t.secret_key)
            .header("Idempotency-Key", key)
            .json(&ack.body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let id = body["id"].as_str().map(str::to_string);
        if status != ack.status || id != ack.order_id {
            mismatches.push(format!(
                "key {key}: first {} {:?}, replay {status} {id:?}",
                ack.status, ack.order_id
            ));
        }
    }

    // Faults injected.
    let exchange_stats: Value = http
        .get(format!("{}/admin/stats", stack.exchange.url()))
        .send()
        .await?
        .json()
        .await?;
    let balances_stats: Value = http
        .get(format!("{}/admin/stats", stack.balances.url()))
        .send()
        .await?
        .json()
        .await?;
    report.exchange_faults = counters(&exchange_stats["faults"]);
    report.balances_faults = counters(&balances_stats["faults"]);

    // Reconciliation: every run's findings.
    let runs: Vec<Value> = http
        .get(format!("{url}/admin/reconciliations?limit=500"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    for run in runs
        .iter()
        .filter(|r| r["findings"].as_i64().unwrap_or(0) > 0)
    {
        let detail: Value = http
            .get(format!("{url}/admin/reconciliations/{}", run["run_id"]))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?
            .json()
            .await?;
        for finding in detail["findings"].as_array().into_iter().flatten() {
            let kind = format!(
                "{} ({})",
                finding["kind"].as_str().unwrap_or("?"),
                finding["classification"].as_str().unwrap_or("?")
            );
            *report.findings_by_kind.entry(kind).or_default() += 1;
            if finding["action_ok"] == true {
                report.repairs += 1;
            }
        }
    }

    // I1–I4, I6 from orderd check.
    let check = tokio::task::block_in_place(|| stack.cli(&["check", "--json"]))?;
    let check: Value = serde_json::from_str(check.trim()).context("orderd check --json output")?;
    report.fills = check["fills"].as_u64().unwrap_or(0) as usize;
    for invariant in check["invariants"].as_array().into_iter().flatten() {
        let name = format!(
            "{} {}",
            invariant["name"].as_str().unwrap_or("?"),
            invariant["description"].as_str().unwrap_or("")
        );
        let name_only = invariant["name"].as_str().unwrap_or("?");
        let result = match name_only {
            "I5" => Some(
                lost.iter()
                    .map(|id| format!("acknowledged order {id} is missing"))
                    .collect(),
            ),
            "I7" => Some(mismatches.clone()),
            _ if invariant["checked"] == false => None,
            _ => Some(
                invariant["violations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| {
                        format!(
                            "{} {}",
                            v["id"].as_str().unwrap_or(""),
                            v["detail"].as_str().unwrap_or("")
                        )
                    })
                    .collect(),
            ),
        };
        let name = match name_only {
            "I5" => "I5 every acknowledged order survived kill -9".to_string(),
            "I7" => format!(
                "I7 {} replayed requests got their first outcome",
                I7_SAMPLE.min(report.acknowledged as usize)
            ),
            _ => name,
        };
        report.invariants.insert(name, result);
    }
    Ok(report)
}

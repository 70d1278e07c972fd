//! One demo or chaos run: start the stack, provision, trade with faults on
//! and kills, drain, quiesce, and check every invariant.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::failover::{self, FailoverReport, Replicated};
use super::report::{RunReport, counters};
use super::session::{self, STARTING_CASH, Shared};
use super::stack::{Stack, StackConfig};
use super::{
    ADMIN_TOKEN, I7_SAMPLE, Scenario, all_orders, provision, put_faults, quiesce, revive_if_killed,
};

/// Runs `scenario` on a fresh stack in `config.work_dir`. With `keep`, the
/// stack is left running (its addresses are printed).
pub async fn run(
    scenario: &Scenario,
    mut config: StackConfig,
    keep: bool,
) -> anyhow::Result<RunReport> {
    if config.exchange_config.is_none() {
        config.exchange_config = scenario.exchange_config.clone();
    }
    if config.database_url.is_none() {
        // A fresh cluster per run: the report compares it with fresh venues.
        let pg = config.work_dir.join("postgres");
        if pg.exists() {
            let _ = crate::embedded_postgres::EmbeddedPostgres::stop_unowned(&pg);
            std::fs::remove_dir_all(&pg).with_context(|| format!("removing {}", pg.display()))?;
        }
    }
    let mut replicated = match scenario.failover_at {
        Some(_) => {
            let pair = tokio::task::block_in_place(|| Replicated::start(&config.work_dir))?;
            config.database_url = Some(pair.url());
            Some(pair)
        }
        None => None,
    };
    let mut stack = tokio::task::block_in_place(|| Stack::start(config))?;
    let result = drive(scenario, &mut stack, replicated.as_mut()).await;
    if keep {
        println!();
        println!("the stack stays up (Ctrl-C to stop):");
        println!("  orderd       {}", stack.orderd_url().unwrap_or_default());
        println!(
            "  console      {}/console (log in with the admin token)",
            stack.orderd_url().unwrap_or_default()
        );
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
    if let Some(pair) = replicated {
        tokio::task::block_in_place(|| pair.stop());
    }
    result
}

async fn drive(
    scenario: &Scenario,
    stack: &mut Stack,
    mut replicated: Option<&mut Replicated>,
) -> anyhow::Result<RunReport> {
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
    // A soak reads table sizes from the database orderd uses.
    let soak_pool = match scenario.sample_every {
        Some(_) => {
            let options = crate::db::connect_options_from_url(&stack.database_url())?;
            let settings = crate::config::Settings::load_without_env(None)?;
            Some(crate::db::build_pool(options, &settings.database))
        }
        None => None,
    };
    let mut next_sample = Duration::ZERO;
    while started.elapsed() < scenario.duration {
        tokio::time::sleep(Duration::from_millis(100)).await;
        revive_if_killed(stack, &shared, &mut report)?;
        if let (Some(every), Some(pool)) = (scenario.sample_every, &soak_pool)
            && started.elapsed() >= next_sample
        {
            next_sample += every;
            match super::soak::sample(stack, pool, &http, started.elapsed()).await {
                Ok(sample) => {
                    println!(
                        "[{:>6.0}s] rss {} KiB, {} descriptors, {:.0} orders in flight",
                        sample.at.as_secs_f64(),
                        sample.rss_kib.unwrap_or(0),
                        sample.open_fds.unwrap_or(0),
                        sample.orders_in_flight
                    );
                    report.samples.push(sample);
                }
                Err(error) => println!("a soak sample failed: {error:#}"),
            }
        }
        if let Some(at) = scenario.failover_at
            && started.elapsed() >= at
            && let Some(pair) = replicated.take()
        {
            report.failover =
                Some(fail_over(pair, &http, stack, &traders, started, scenario).await?);
        }
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
    if let Some(failover) = report.failover.as_mut() {
        failover.orderd_restarts = report.kills;
    }
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
        report.replaces = tally.replaces;
        report.replaced = tally.replaced;
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
    let truth: Value = http
        .get(format!("{}/admin/ground-truth", stack.exchange.url()))
        .send()
        .await?
        .json()
        .await?;
    let now = chrono::Utc::now();
    report.sessions_closed = truth["sessions"]
        .as_array()
        .map(|sessions| {
            sessions
                .iter()
                .filter_map(|s| s["close"].as_str())
                .filter_map(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .filter(|close| *close < now)
                .count() as u64
        })
        .unwrap_or(0);
    report.halts = truth["halts"].as_array().map_or(0, |h| h.len() as u64);

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

/// Kills the primary and, after [`failover::DETECTION_DELAY`], promotes the
/// standby while the traders keep going; measures the gap a trader saw.
async fn fail_over(
    pair: &mut Replicated,
    http: &reqwest::Client,
    stack: &Stack,
    traders: &[super::session::Trader],
    started: Instant,
    scenario: &Scenario,
) -> anyhow::Result<FailoverReport> {
    let url = stack.orderd_url().context("orderd is not running")?;
    let killed_at = started.elapsed();
    let killed = Instant::now();
    let processes_killed = tokio::task::block_in_place(|| pair.kill_primary())?;
    let gap = tokio::spawn({
        let (http, trader) = (http.clone(), traders[0].clone());
        async move {
            failover::measure_write_gap(&http, &url, &trader, killed, Duration::from_secs(60)).await
        }
    });
    // The HA manager notices, then promotes.
    tokio::time::sleep(failover::DETECTION_DELAY).await;
    tokio::task::block_in_place(|| pair.promote_standby())?;
    let promoted_after = killed.elapsed();
    if scenario.progress {
        println!(
            "[{:>5.1}s] database primary killed; standby promoted after {:.1}s",
            killed_at.as_secs_f64(),
            promoted_after.as_secs_f64()
        );
    }
    Ok(FailoverReport {
        killed_at,
        processes_killed,
        promoted_after,
        write_gap: gap.await.ok().flatten(),
        orderd_restarts: 0,
    })
}

/// `orderd chaos --soak DURATION`: one long run at moderate load with
/// faults on, sampled (see `harness::soak`); fails if an invariant broke.
pub async fn soak(duration: Duration, work_dir: &std::path::Path, seed: u64) -> anyhow::Result<()> {
    let scenario = Scenario::soak(seed, duration);
    println!(
        "soak: {} traders at {} orders/s for {:?}, faults on, sampled every {:?}",
        scenario.traders,
        scenario.rate_per_sec,
        duration,
        scenario.sample_every.unwrap_or_default()
    );
    let config = StackConfig::beside_current_exe(&work_dir.join("soak"), seed)?;
    let report = run(&scenario, config, false).await?;
    report.print();
    super::soak::print(&report.samples);
    anyhow::ensure!(
        report.all_hold(),
        "the soak broke {} invariant(s)",
        report.violations()
    );
    Ok(())
}

/// `orderd chaos`: runs each seed's scenario on a fresh stack under
/// `work_dir`, prints a row per run and a summary; fails naming the seeds
/// that broke an invariant (each replays with `--seeds N`).
pub async fn chaos(
    seeds: &[u64],
    duration: Duration,
    work_dir: &std::path::Path,
    failover: bool,
) -> anyhow::Result<()> {
    println!(
        "{:>6}  {:>6}  {:>6}  {:>6}  {:>8}  {:>6}  {:>5}  {:>10}  result",
        "seed", "orders", "acked", "fills", "replaced", "faults", "kills", "violations"
    );
    let mut failed = Vec::new();
    for &seed in seeds {
        let scenario = if failover {
            Scenario::failover(seed, duration)
        } else {
            Scenario::chaos(seed, duration)
        };
        let config = StackConfig::beside_current_exe(&work_dir.join(format!("seed-{seed}")), seed)?;
        match run(&scenario, config, false).await {
            Ok(report) => {
                let orders: u64 = report.orders_by_status.values().sum();
                let faults: u64 = report
                    .exchange_faults
                    .values()
                    .chain(report.balances_faults.values())
                    .sum();
                let ok = report.all_hold();
                println!(
                    "{:>6}  {:>6}  {:>6}  {:>6}  {:>8}  {:>6}  {:>5}  {:>10}  {}",
                    seed,
                    orders,
                    report.acknowledged,
                    report.fills,
                    format!("{}/{}", report.replaced, report.replaces),
                    faults,
                    report.kills,
                    report.violations(),
                    if ok { "ok" } else { "FAIL" }
                );
                if let Some(f) = &report.failover {
                    println!(
                        "        database failover: standby taking writes {:.1}s after the kill, first order acknowledged at +{}, orderd restarts {}",
                        f.promoted_after.as_secs_f64(),
                        f.write_gap
                            .map(|g| format!("{:.1}s", g.as_secs_f64()))
                            .unwrap_or_else(|| "never".into()),
                        f.orderd_restarts
                    );
                }
                let ok = ok
                    && report
                        .failover
                        .as_ref()
                        .is_none_or(|f| f.write_gap.is_some() && f.orderd_restarts == 0);
                if !ok {
                    report.print();
                    failed.push(seed);
                }
            }
            Err(error) => {
                println!("{seed:>6}  run failed: {error:#}");
                failed.push(seed);
            }
        }
    }
    if failed.is_empty() {
        println!("all runs kept every invariant");
        Ok(())
    } else {
        anyhow::bail!(
            "failing seeds (replay with --seeds {}): {failed:?}",
            failed
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    }
}

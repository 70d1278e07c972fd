//! `orderd bench`: the local stack with faults off, measured.
//! - throughput of fully settled orders (accepted → reserved → placed →
//!   filled → settled → closed) under a closed loop of concurrent clients;
//! - POST /v2/orders latency at a fixed offered load of half that peak,
//!   and submit-to-settled latency;
//! - recovery: 1,000 orders in flight, SIGKILL, restart, time until all
//!   are terminal and settled;
//! - Postgres commits per order, and the single-row-insert commit ceiling
//!   of the same cluster measured with pgbench in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;
use tokio::time::Instant;

use super::session::{SYMBOLS, Trader};
use super::stack::{Stack, StackConfig};

/// Cash each bench trader starts with (enough for every phase).
const BENCH_CASH: &str = "5000000000";

/// Concurrent clients of the throughput phase.
pub const CLIENTS: usize = 64;
/// Orders in flight when orderd is killed in the recovery phase.
pub const RECOVERY_ORDERS: usize = 1000;
/// pgbench's run length and clients.
pub const PGBENCH_SECS: u64 = 10;
pub const PGBENCH_CLIENTS: u32 = 16;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BenchReport {
    pub throughput_orders: u64,
    pub throughput_secs: f64,
    pub settled_orders_per_sec: f64,
    pub accepted_orders_per_sec: f64,
    pub offered_rate_per_sec: f64,
    pub post_p50_ms: f64,
    pub post_p95_ms: f64,
    pub post_p99_ms: f64,
    pub settled_p50_ms: f64,
    pub settled_p99_ms: f64,
    pub recovery_secs: f64,
    pub commits_per_order: f64,
    pub pgbench_tps: f64,
    /// Mean time of each external call (and of the whole submit) during the
    /// latency phase, from orderd's own `/metrics`: where a POST's time goes.
    pub latency_breakdown_ms: Vec<(String, f64)>,
    /// With `--profile`: the throughput phase's statements, costliest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<StatementProfile>,
}

/// One statement's share of the throughput phase (pg_stat_statements).
#[derive(Debug, Clone, Default, serde::Serialize, sqlx::FromRow)]
pub struct StatementProfile {
    pub calls_per_order: f64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub rows_per_call: f64,
    pub query: String,
}

/// `(sum, count)` of every `*_seconds` histogram series in orderd's
/// `/metrics` text, by series (name and labels, without `_sum`/`_count`).
async fn histogram_totals(
    http: &reqwest::Client,
    url: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, (f64, f64)>> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut totals = std::collections::BTreeMap::new();
    for (name, labels, value) in super::metric_samples(&text) {
        let key = |base: &str| {
            if labels.is_empty() {
                base.to_string()
            } else {
                format!("{base}{{{labels}}}")
            }
        };
        if let Some(base) = name.strip_suffix("_seconds_sum") {
            totals.entry(key(base)).or_insert((0.0, 0.0)).0 = value;
        } else if let Some(base) = name.strip_suffix("_seconds_count") {
            totals.entry(key(base)).or_insert((0.0, 0.0)).1 = value;
        }
    }
    Ok(totals)
}

/// Mean ms per series between two [`histogram_totals`], for the series
/// that saw calls; the submit and external calls only.
fn breakdown(
    before: &std::collections::BTreeMap<String, (f64, f64)>,
    after: &std::collections::BTreeMap<String, (f64, f64)>,
) -> Vec<(String, f64)> {
    after
        .iter()
        .filter(|(series, _)| {
            series.starts_with("orderd_submit_duration")
                || series.starts_with("orderd_external_call_duration")
        })
        .filter_map(|(series, (sum, count))| {
            let (sum0, count0) = before.get(series).copied().unwrap_or_default();
            let calls = count - count0;
            (calls > 0.0).then(|| {
                let name = series
                    .trim_start_matches("orderd_")
                    .replace("external_call_duration", "call")
                    .replace("submit_duration", "submit");
                (name, 1000.0 * (sum - sum0) / calls)
            })
        })
        .collect()
}

/// Statements shown by `--profile`.
const PROFILE_TOP: i64 = 25;

async fn reset_profile(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(pool)
        .await?;
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(pool)
        .await?;
    Ok(())
}

async fn read_profile(pool: &PgPool, orders: u64) -> anyhow::Result<Vec<StatementProfile>> {
    Ok(sqlx::query_as(
        "SELECT calls::float8 / $1 AS calls_per_order, total_exec_time AS total_ms,
                mean_exec_time AS mean_ms, rows::float8 / greatest(calls, 1) AS rows_per_call,
                left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
           FROM pg_stat_statements
          ORDER BY total_exec_time DESC LIMIT $2",
    )
    .bind(orders.max(1) as f64)
    .bind(PROFILE_TOP)
    .fetch_all(pool)
    .await?)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// One market buy; its POST latency in ms, or `None` if not accepted.
async fn one_order(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
    symbol: &str,
) -> Option<f64> {
    let started = Instant::now();
    let response = http
        .post(format!("{url}/v2/orders"))
        .header("APCA-API-KEY-ID", &trader.key_id)
        .header("APCA-API-SECRET-KEY", &trader.secret_key)
        .json(&json!({"symbol": symbol, "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}))
        .send()
        .await
        .ok()?;
    let ok = response.status().is_success();
    let _ = response.bytes().await;
    ok.then(|| started.elapsed().as_secs_f64() * 1000.0)
}

/// Waits until every order is closed and every fill settled.
async fn wait_settled(pool: &PgPool, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        // Both answered from partial indexes: polling this costs the
        // measured system next to nothing.
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM orders WHERE step <> 'closed')
                 OR EXISTS (SELECT 1 FROM fills WHERE settlement_state IN ('pending', 'unknown'))",
        )
        .fetch_one(pool)
        .await?;
        if !busy {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "orders or fills still not settled after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn commits(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

/// Runs the benchmark on a fresh stack in `work_dir`.
/// What to run and how.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Length of the throughput and latency phases.
    pub duration: Duration,
    /// Load pg_stat_statements and report the throughput phase's statements.
    pub profile: bool,
    /// Offered load of the latency phase; `None`: half the measured peak.
    pub latency_rate: Option<f64>,
}

pub async fn run(
    work_dir: &std::path::Path,
    options: &BenchOptions,
) -> anyhow::Result<BenchReport> {
    let profile = options.profile;
    let pg_dir = work_dir.join("postgres");
    if pg_dir.exists() {
        let _ = crate::embedded_postgres::EmbeddedPostgres::stop_unowned(&pg_dir);
        std::fs::remove_dir_all(&pg_dir)?;
    }
    let mut config = StackConfig::beside_current_exe(work_dir, 1)?;
    config.orderd_env = vec![
        ("ORDERD__DATABASE__MAX_CONNECTIONS".into(), "48".into()),
        ("ORDERD__LOG__FILTER".into(), "warn".into()),
        // A stable identity, as in production: the restart of the recovery
        // phase fences its predecessor at once.
        ("ORDERD__INSTANCE__NAME".into(), "bench".into()),
    ];
    if profile {
        config.orderd_env.push((
            "ORDERD__DATABASE__EMBEDDED_SETTINGS".into(),
            r#"["shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all"]"#
                .into(),
        ));
    }
    let mut stack = tokio::task::block_in_place(|| Stack::start(config))?;
    let result = measure(&mut stack, options).await;
    tokio::task::block_in_place(|| stack.stop());
    let _ = crate::embedded_postgres::EmbeddedPostgres::stop_unowned(&pg_dir);
    result
}

async fn measure(stack: &mut Stack, options: &BenchOptions) -> anyhow::Result<BenchReport> {
    let (duration, profile) = (options.duration, options.profile);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let traders = Arc::new(super::provision(stack, &http, "bench", 8, BENCH_CASH).await?);
    // The bench reads orderd's database beside it (attached, not owned).
    let database = crate::startup::Database::open(
        &crate::config::DatabaseSettings {
            url: None,
            data_dir: stack.config.work_dir.join("postgres"),
            max_connections: 2,
            acquire_timeout_ms: 5000,
            statement_timeout_ms: 5000,
            lock_timeout_ms: 2000,
            idle_in_transaction_session_timeout_ms: 15000,
            rollback_guard: true,
            embedded_settings: Vec::new(),
            primary_check_ms: 500,
        },
        crate::startup::EmbeddedAccess::AttachOrStart,
    )
    .await
    .context("attaching to orderd's database")?;
    let pool = database.pool.clone();
    let mut report = BenchReport::default();
    let url = stack.orderd_url().context("orderd down")?;

    // Warm up: connections, caches.
    for t in traders.iter() {
        one_order(&http, &url, t, "AAPL").await;
    }
    wait_settled(&pool, Duration::from_secs(60)).await?;

    // 1. Throughput: a closed loop of CLIENTS clients for `duration`.
    println!("throughput: {CLIENTS} clients for {duration:?}...");
    if profile {
        reset_profile(&pool).await?;
    }
    let commits_before = commits(&pool).await?;
    let accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (http, url, traders, accepted) =
            (http.clone(), url.clone(), traders.clone(), accepted.clone());
        clients.push(tokio::spawn(async move {
            let trader = &traders[c % traders.len()];
            let mut i = c;
            while started.elapsed() < duration {
                if one_order(&http, &url, trader, SYMBOLS[i % SYMBOLS.len()])
                    .await
                    .is_some()
                {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    for client in clients {
        let _ = client.await;
    }
    let submit_secs = started.elapsed().as_secs_f64();
    wait_settled(&pool, Duration::from_secs(300)).await?;
    let total_secs = started.elapsed().as_secs_f64();
    let orders = accepted.load(Ordering::Relaxed);
    report.throughput_orders = orders;
    report.throughput_secs = total_secs;
    report.settled_orders_per_sec = orders as f64 / total_secs;
    report.accepted_orders_per_sec = orders as f64 / submit_secs;
    report.commits_per_order =
        (commits(&pool).await? - commits_before) as f64 / orders.max(1) as f64;
    if profile {
        report.profile = read_profile(&pool, orders).await?;
    }
    println!(
        "  {orders} orders settled in {total_secs:.1}s: {:.0} settled orders/s ({:.0} accepted/s)",
        report.settled_orders_per_sec, report.accepted_orders_per_sec
    );

    // 2. Latency at half the peak, open loop.
    let rate = options
        .latency_rate
        .unwrap_or(report.settled_orders_per_sec / 2.0)
        .max(1.0);
    report.offered_rate_per_sec = rate;
    println!("latency: {rate:.0} orders/s offered for {duration:?}...");
    let phase_start = chrono::Utc::now();
    let metrics_before = histogram_totals(&http, &url).await?;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut tasks = Vec::new();
    while started.elapsed() < duration {
        let due = started + interval.mul_f64(sent as f64);
        tokio::time::sleep_until(due).await;
        let (http, url, traders, latencies) = (
            http.clone(),
            url.clone(),
            traders.clone(),
            latencies.clone(),
        );
        let n = sent as usize;
        tasks.push(tokio::spawn(async move {
            if let Some(ms) = one_order(
                &http,
                &url,
                &traders[n % traders.len()],
                SYMBOLS[n % SYMBOLS.len()],
            )
            .await
                && let Ok(mut l) = latencies.lock()
            {
                l.push(ms);
            }
        }));
        sent += 1;
    }
    for task in tasks {
        let _ = task.await;
    }
    let metrics_after = histogram_totals(&http, &url).await?;
    report.latency_breakdown_ms = breakdown(&metrics_before, &metrics_after);
    wait_settled(&pool, Duration::from_secs(300)).await?;
    let mut post: Vec<f64> = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    post.sort_by(f64::total_cmp);
    report.post_p50_ms = percentile(&post, 50.0);
    report.post_p95_ms = percentile(&post, 95.0);
    report.post_p99_ms = percentile(&post, 99.0);
    let mut settled: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(f.settled_at) - o.created_at)::float8 * 1000
           FROM orders o JOIN fills f USING (order_id)
          WHERE o.created_at >= $1 GROUP BY o.order_id, o.created_at",
    )
    .bind(phase_start)
    .fetch_all(&pool)
    .await?;
    settled.sort_by(f64::total_cmp);
    report.settled_p50_ms = percentile(&settled, 50.0);
    report.settled_p99_ms = percentile(&settled, 99.0);
    println!(
        "  POST p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms; submit-to-settled p50 {:.0} ms, p99 {:.0} ms",
        report.post_p50_ms,
        report.post_p95_ms,
        report.post_p99_ms,
        report.settled_p50_ms,
        report.settled_p99_ms
    );

    // 3. Recovery: 1,000 orders in flight, SIGKILL, restart.
    println!("recovery: {RECOVERY_ORDERS} orders in flight, then SIGKILL...");
    let mut submits = Vec::new();
    for n in 0..RECOVERY_ORDERS {
        let (http, url, traders) = (http.clone(), url.clone(), traders.clone());
        submits.push(tokio::spawn(async move {
            one_order(
                &http,
                &url,
                &traders[n % traders.len()],
                SYMBOLS[n % SYMBOLS.len()],
            )
            .await
        }));
    }
    let mut answered = 0;
    for submit in submits {
        if let Ok(Some(_)) = submit.await {
            answered += 1;
        }
    }
    // Everything is accepted and placed; fills and settlements are in
    // flight at the venue and the ledger. Kill now.
    tokio::task::block_in_place(|| stack.kill_orderd());
    let restarted = Instant::now();
    tokio::task::block_in_place(|| stack.start_orderd(None))?;
    wait_settled(&pool, Duration::from_secs(300)).await?;
    report.recovery_secs = restarted.elapsed().as_secs_f64();
    println!(
        "  {answered} acknowledged; all terminal and settled {:.1}s after the restart began",
        report.recovery_secs
    );

    // 4. The Postgres commit ceiling: pgbench, single-row inserts.
    println!("pgbench: single-row inserts, {PGBENCH_CLIENTS} clients, {PGBENCH_SECS}s...");
    report.pgbench_tps = pgbench(&stack.config.work_dir.join("postgres"), &pool).await?;
    println!("  {:.0} commits/s", report.pgbench_tps);
    database.close().await;
    Ok(report)
}

async fn pgbench(data_dir: &std::path::Path, pool: &PgPool) -> anyhow::Result<f64> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS pgbench_ceiling (id bigserial PRIMARY KEY, v int NOT NULL)",
    )
    .execute(pool)
    .await?;
    let binaries = crate::embedded_postgres::PgBinaries::locate()?;
    // pg_ctl on PATH is often a symlink into the versioned directory that
    // holds pgbench.
    let pg_ctl = std::fs::canonicalize(&binaries.pg_ctl).unwrap_or(binaries.pg_ctl);
    let pgbench = pg_ctl.with_file_name("pgbench");
    let script = std::env::temp_dir().join(format!("orderd-pgbench-{}.sql", std::process::id()));
    std::fs::write(&script, "INSERT INTO pgbench_ceiling (v) VALUES (1);\n")?;
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await?;
    let output = tokio::process::Command::new(pgbench)
        .args(["-n", "-f"])
        .arg(&script)
        .args([
            "-c",
            &PGBENCH_CLIENTS.to_string(),
            "-j",
            "2",
            "-T",
            &PGBENCH_SECS.to_string(),
        ])
        .args(["-h"])
        // Absolute: pgbench takes a host starting with '/' as a socket dir.
        .arg(std::fs::canonicalize(data_dir.join("socket")).context("socket directory")?)
        .args([
            "-p",
            &crate::embedded_postgres::SOCKET_PORT.to_string(),
            "-U",
            "postgres",
            &database,
        ])
        .output()
        .await
        .context("running pgbench")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .with_context(|| {
            format!(
                "pgbench output: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

//! `orderd db upgrade-drill`: a rolling upgrade, measured. A fresh
//! database at the previous release's schema (a59b06a, migrations up to
//! 0014) is loaded with `--orders` orders; writers keep making the
//! previous version's writes while this version's migrations run, as they
//! run at start-up (a connection of their own, no timeouts, sqlx's
//! advisory lock); every write is timed. The report gives each
//! migration's duration, the writes it overlapped, their longest stall,
//! the tables they waited on, and every error a writer saw: an error means
//! the migration is not safe beside the previous version.

mod load;
mod report;
mod writer;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

pub use self::load::PREVIOUS_VERSION;
pub use self::report::{DrillReport, ErrorCount, MigrationRun, WriteStats};
use self::writer::Write;
use crate::config::Settings;
use crate::db;
use crate::embedded_postgres::{self, ClusterOptions, EmbeddedPostgres};

/// How long the writers run before the first migration (the baseline)
/// and after the last.
const WARM_UP: Duration = Duration::from_secs(2);
const COOL_DOWN: Duration = Duration::from_secs(1);
/// How often the tables the writers wait on are sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// What `orderd db upgrade-drill` was asked.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// A server to create the drill's database in (a URL allowed to
    /// create databases). `None`: `database.url`, else an embedded cluster
    /// in `work_dir`.
    pub server: Option<String>,
    pub orders: u64,
    pub writers: usize,
    pub work_dir: PathBuf,
    /// Keep the drill's database afterwards.
    pub keep: bool,
}

/// Runs the drill in a database of its own, dropped afterwards unless
/// `keep`.
pub async fn drill(options: &DrillOptions, settings: &Settings) -> anyhow::Result<DrillReport> {
    anyhow::ensure!(options.writers > 0, "--writers must be at least 1");
    let mut embedded = None;
    let admin = match options.server.clone().or(settings.database.url.clone()) {
        Some(url) => PgConnectOptions::from_str(&url).context("the server's URL")?,
        None => {
            let dir = options.work_dir.join("postgres");
            let pg = tokio::task::spawn_blocking(move || {
                EmbeddedPostgres::start(&dir, &ClusterOptions::default())
            })
            .await
            .context("embedded PostgreSQL start-up task")??;
            let admin = pg.connect_options("postgres");
            embedded = Some(pg);
            anyhow::ensure!(
                embedded_postgres::wait_until_accepting(&admin, Duration::from_secs(60)).await,
                "the embedded cluster did not accept connections"
            );
            admin
        }
    };
    let name = format!("orderd_upgrade_drill_{}", uuid::Uuid::new_v4().simple());
    db::create_database_if_missing(&admin, &name).await?;
    let result = run(options, settings, admin.clone().database(&name), &name).await;
    if !options.keep {
        let dropped = async {
            let mut conn = admin.connect().await?;
            let sql = format!("DROP DATABASE \"{name}\" WITH (FORCE)");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        if let Err(error) = dropped.await {
            eprintln!("upgrade drill: could not drop {name}: {error}");
        }
    }
    if let Some(pg) = embedded {
        tokio::task::spawn_blocking(move || pg.stop())
            .await
            .context("embedded PostgreSQL stop task")??;
    }
    let mut report = result?;
    report.kept = options.keep;
    Ok(report)
}

/// Connection options as `db::migrate` uses them: none of the
/// application's timeouts.
fn without_timeouts(options: &PgConnectOptions, application: &str) -> PgConnectOptions {
    options
        .clone()
        .options([
            ("statement_timeout", "0"),
            ("lock_timeout", "0"),
            ("idle_in_transaction_session_timeout", "0"),
        ])
        .application_name(application)
}

async fn run(
    options: &DrillOptions,
    settings: &Settings,
    database: PgConnectOptions,
    name: &str,
) -> anyhow::Result<DrillReport> {
    let mut migrating = PgConnection::connect_with(&without_timeouts(&database, "orderd-migrate"))
        .await
        .context("the migration's connection")?;
    db::MIGRATOR
        .run_to(PREVIOUS_VERSION, &mut migrating)
        .await
        .context("migrating to the previous release's schema")?;
    eprintln!(
        "upgrade drill: loading {} orders at schema {PREVIOUS_VERSION:04} into {name}",
        options.orders
    );
    let loaded = load::load(&mut migrating, options.orders).await?;
    eprintln!(
        "upgrade drill: {} orders and {} fills in {:.1} s; starting {} writers",
        loaded.orders, loaded.fills, loaded.secs, options.writers
    );

    // The previous version's pool: the application's timeouts.
    let mut pool_settings = settings.database.clone();
    pool_settings.max_connections = u32::try_from(options.writers + 2)?;
    let pool = db::build_pool(database.clone(), &pool_settings);
    let (instance, accounts) = writer::register(&pool).await?;
    let accounts = Arc::new(accounts);
    let clock = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![tokio::spawn(writer::heartbeat(
        pool.clone(),
        instance,
        clock,
        stop.clone(),
    ))];
    for n in 0..options.writers {
        tasks.push(tokio::spawn(writer::writer(
            pool.clone(),
            instance,
            accounts.clone(),
            n,
            clock,
            stop.clone(),
        )));
    }
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_waits(
        without_timeouts(&database, "orderd-drill"),
        clock,
        sampling.clone(),
    ));
    tokio::time::sleep(WARM_UP).await;

    let mut migrations = Vec::new();
    let mut migration_error = None;
    let pending: Vec<(i64, String)> = db::MIGRATOR
        .iter()
        .filter(|m| m.version > PREVIOUS_VERSION && !m.migration_type.is_down_migration())
        .map(|m| (m.version, m.description.to_string()))
        .collect();
    for (version, description) in pending {
        eprintln!("upgrade drill: applying {version:04} {description}");
        let start = clock.elapsed();
        let applied = db::MIGRATOR.run_to(version, &mut migrating).await;
        let end = clock.elapsed();
        migrations.push((version, description, start, end));
        if let Err(error) = applied {
            migration_error = Some(format!("{version:04}: {error}"));
            break;
        }
    }
    tokio::time::sleep(COOL_DOWN).await;
    stop.store(true, Ordering::Relaxed);
    sampling.store(true, Ordering::Relaxed);
    let mut writes: Vec<Write> = Vec::new();
    for task in tasks {
        writes.extend(task.await.context("a writer task")?);
    }
    let waits = sampler.await.context("the sampler task")?;
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut migrating)
            .await?;
    pool.close().await;
    let _ = migrating.close().await;
    Ok(report::build(
        name,
        loaded,
        options.writers,
        &writes,
        &migrations,
        &waits,
        migration_error,
        applied.unwrap_or(0),
    ))
}

/// Until `done`: which tables connections of the previous version's pool
/// (application name `orderd`) wait for a lock on (none: an empty
/// sample), every [`SAMPLE_EVERY`]. An error ends the sampling (the drill
/// goes on).
async fn sample_waits(
    options: PgConnectOptions,
    clock: Instant,
    done: Arc<AtomicBool>,
) -> Vec<(Duration, Vec<String>)> {
    const WAITING_ON: &str = "SELECT DISTINCT l.relation::regclass::text
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE NOT l.granted AND l.relation IS NOT NULL
            AND a.datname = current_database() AND a.application_name = 'orderd'";
    let mut samples = Vec::new();
    let Ok(mut conn) = PgConnection::connect_with(&options).await else {
        return samples;
    };
    while !done.load(Ordering::Relaxed) {
        let at = clock.elapsed();
        match sqlx::query_scalar::<_, String>(WAITING_ON)
            .fetch_all(&mut conn)
            .await
        {
            Ok(tables) => samples.push((at, tables)),
            Err(_) => break,
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    let _ = conn.close().await;
    samples
}

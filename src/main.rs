//! The `orderd` binary: the daemon (`serve`) and its operator commands.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use orderd::config::Settings;
use orderd::embedded_postgres::{ClusterOptions, EmbeddedPostgres};
use orderd::startup::{self, Application, Database, EmbeddedAccess};

#[derive(Debug, Parser)]
#[command(
    name = "orderd",
    version,
    about = "Equity-trading order-lifecycle daemon"
)]
struct Cli {
    /// Configuration file merged over the built-in defaults
    /// (environment variables ORDERD__SECTION__KEY override both).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: trader API, order lifecycle, background work.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Check invariants I1–I7 against both services' ground truth; exits 1
    /// when any is violated. Run it when the system is quiet.
    Check {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Trader accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// List trader accounts (`orderd accounts list`).
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Look at orders: what is stuck, what an order is waiting for.
    Orders {
        #[command(subcommand)]
        command: OrdersCommand,
    },
    /// Reconciliation jobs.
    Reconcile {
        #[command(subcommand)]
        command: ReconcileCommand,
    },
    /// The demo: starts embedded Postgres, both simulators and orderd,
    /// trades with faults on, kills orderd with SIGKILL and restarts it,
    /// waits for quiescence and reports every invariant. Exit 0 only if
    /// all hold.
    Demo {
        /// Trading session length in seconds.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Leave the stack running afterwards (Ctrl-C stops it).
        #[arg(long)]
        keep: bool,
        /// Where the demo keeps its cluster and logs.
        #[arg(long, default_value = ".orderd/demo")]
        work_dir: PathBuf,
    },
    /// The chaos harness: seeded runs combining every simulator fault with
    /// SIGKILL of orderd at random moments and at failpoints. Prints a row
    /// per run and a summary; a failing seed replays with `--seeds N`.
    Chaos {
        /// Seeds to run: a count (`5` runs seeds 1..=5) or a list (`3,7`).
        #[arg(long, default_value = "3")]
        seeds: String,
        /// Trading session length per run, in seconds.
        #[arg(long, default_value_t = 15)]
        duration: u64,
        #[arg(long, default_value = ".orderd/chaos")]
        work_dir: PathBuf,
        /// Run the schedule explorer instead: every crash point x racing
        /// actor x venue behaviour (see --list), a row per schedule and a
        /// matrix; a failing schedule replays with --filter NAME.
        #[arg(long)]
        explore: bool,
        /// A soak instead: one run this long (30m, 90s, 2h) at moderate load
        /// with faults on, sampling orderd's memory, descriptors, tables and
        /// queues; fails if an invariant broke.
        #[arg(long, value_name = "DURATION")]
        soak: Option<String>,
        /// With --explore: only schedules whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// With --explore: the CI subset (a fixed core, plus --sample more
        /// drawn with --sample-seed).
        #[arg(long)]
        ci: bool,
        /// With --explore: draw this many schedules.
        #[arg(long)]
        sample: Option<usize>,
        /// With --explore: the seed of --sample (default: today's date, so
        /// CI rotates through the matrix day by day).
        #[arg(long)]
        sample_seed: Option<u64>,
        /// With --explore: stacks run side by side.
        #[arg(long, default_value_t = 2)]
        lanes: usize,
        /// With --explore: print the crash points and schedules, run none.
        #[arg(long)]
        list: bool,
    },
    /// The benchmark, against a local stack with faults off: settled
    /// orders/s, POST latency at half of peak, submit-to-settled latency,
    /// recovery after SIGKILL with 1,000 orders in flight, commits per
    /// order, and the pgbench single-row-insert ceiling beside them.
    Bench {
        /// Length of the throughput and latency phases, in seconds.
        #[arg(long, default_value_t = 15)]
        duration: u64,
        #[arg(long, default_value = ".orderd/bench")]
        work_dir: PathBuf,
        /// Also print the results as JSON.
        #[arg(long)]
        json: bool,
        /// Load pg_stat_statements into the cluster and print the
        /// statements of the throughput phase by total server time.
        #[arg(long)]
        profile: bool,
        /// Offered load of the latency phase, orders/s (default: half the
        /// throughput just measured).
        #[arg(long)]
        latency_rate: Option<f64>,
    },
    /// Database utilities.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Create a trader account with one API key; prints
    /// {"account_id", "key_id", "secret_key"} (the secret is shown only
    /// here).
    Create {
        /// A unique name for the account.
        #[arg(long)]
        name: String,
        /// The account at the balances service that holds its money.
        #[arg(long, value_name = "ID")]
        balances_account: String,
        /// Create this many accounts at once, named NAME-1..NAME-N over
        /// balances accounts ID-1..ID-N; one JSON object per line.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// An account's API keys. Rotate without downtime: create a key, move
    /// clients to it, revoke the old one.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a key (the account's other keys stay live); prints
    /// {"account_id", "key_id", "secret_key"} (the secret only here).
    Create {
        /// The account's name or id.
        #[arg(long)]
        account: String,
    },
    /// The account's keys: id, created, revoked.
    List {
        /// The account's name or id.
        #[arg(long)]
        account: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: every instance refuses it within http.auth_cache_ms.
    Revoke { key_id: String },
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Every account with its key and order counts.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum OrdersCommand {
    /// Orders, newest first.
    List {
        /// Only orders with this status (e.g. pending_new, new, filled).
        #[arg(long)]
        status: Option<String>,
        /// Only orders mid-step, parked, or working with no news for
        /// reconcile.stale_after_ms.
        #[arg(long)]
        stuck: bool,
        #[arg(long)]
        json: bool,
    },
    /// One order with its full action timeline, fills and quarantined
    /// venue reports.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Resume a parked order at the step it was parked at, with a fresh
    /// attempt budget (a running `serve` drives it). Audited on its
    /// timeline with the operator's name.
    Resume {
        id: String,
        /// Who resumes it (default: $USER).
        #[arg(long)]
        operator: Option<String>,
    },
    /// Cancel an order as its trader would (resuming it if parked, so the
    /// cancel is carried out). Audited on its timeline.
    Cancel {
        id: String,
        /// Who cancels it (default: $USER).
        #[arg(long)]
        operator: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ReconcileCommand {
    /// Run a job now (all jobs if none is named) and print its findings.
    Run {
        /// open_orders, unknown_outcomes, balances, orphans or gc.
        job: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Run an embedded PostgreSQL cluster in the foreground until SIGINT or
    /// SIGTERM, printing its URL. The test harness uses it for a throwaway
    /// cluster; operators can use it to inspect the embedded data with psql.
    Run {
        /// Cluster directory (default: database.data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Turn fsync off (throwaway test clusters only: a crash of the
        /// machine can lose committed data).
        #[arg(long)]
        no_fsync: bool,
    },
    /// Stop an embedded cluster that no running orderd owns (one left
    /// behind when its owner was killed with SIGKILL).
    Stop {
        /// Cluster directory (default: database.data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("orderd: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    orderd::telemetry::init(&settings.log);
    orderd::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("orderd: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("orderd: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            println!("listening on {}", app.local_addr());
            app.run_until(startup::shutdown_signal()).await
        }
        Command::Migrate => {
            let database =
                Database::open(&settings.database, EmbeddedAccess::AttachOrStart).await?;
            database.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Demo {
            duration,
            seed,
            keep,
            work_dir,
        } => {
            let scenario =
                orderd::harness::Scenario::demo(seed, std::time::Duration::from_secs(duration));
            let mut config =
                orderd::harness::stack::StackConfig::beside_current_exe(&work_dir, seed)?;
            config.exchange_listen = "127.0.0.1:9100".into();
            config.balances_listen = "127.0.0.1:9200".into();
            config.orderd_listen = settings.http.listen.to_string();
            println!(
                "orderd demo: {} traders, {} s of trading at ~{} orders/s with venue and ledger faults on (halts among them), one SIGKILL of orderd, on an accelerated venue day of 11 s (the market closes and reopens)",
                scenario.traders, duration, scenario.rate_per_sec
            );
            let report = orderd::harness::run(&scenario, config, keep).await?;
            report.print();
            if !report.all_hold() {
                anyhow::bail!("invariants violated");
            }
            println!("\nevery invariant holds");
            Ok(())
        }
        Command::Chaos {
            soak: Some(duration),
            work_dir,
            ..
        } => {
            let duration = orderd::harness::soak::parse_duration(&duration)?;
            orderd::harness::soak(duration, &work_dir, 1).await
        }
        Command::Chaos {
            explore: true,
            work_dir,
            filter,
            ci,
            sample,
            sample_seed,
            lanes,
            list,
            ..
        } => {
            let options = orderd::harness::explore::ExploreOptions {
                work_dir: work_dir.join("explore"),
                filter,
                ci,
                sample,
                sample_seed: sample_seed.unwrap_or_else(|| {
                    u64::try_from(chrono::Utc::now().timestamp() / 86_400).unwrap_or(0)
                }),
                lanes,
                list,
            };
            orderd::harness::explore::explore(&options).await
        }
        Command::Chaos {
            seeds,
            duration,
            work_dir,
            ..
        } => {
            let seeds: Vec<u64> = if seeds.contains(',') {
                seeds
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            } else {
                (1..=seeds.trim().parse::<u64>()?).collect()
            };
            orderd::harness::chaos(&seeds, std::time::Duration::from_secs(duration), &work_dir)
                .await
        }
        Command::Bench {
            duration,
            work_dir,
            json,
            profile,
            latency_rate,
        } => {
            let options = orderd::harness::bench::BenchOptions {
                duration: std::time::Duration::from_secs(duration),
                profile,
                latency_rate,
            };
            let report = orderd::harness::bench::run(&work_dir, &options).await?;
            report.print();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
        Command::Check { json } => {
            let database =
                Database::open(&settings.database, EmbeddedAccess::AttachOrStart).await?;
            let snapshot = orderd::check::collect(
                &database.pool,
                &settings.exchange.url,
                &settings.balances.url,
            )
            .await;
            database.close().await;
            let report = orderd::check::check(&snapshot?);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                report.print();
            }
            if !report.all_hold() {
                anyhow::bail!("invariants violated");
            }
            Ok(())
        }
        Command::Account {
            command: AccountCommand::Keys { command },
        } => {
            with_database(&settings, |pool| async move {
                match command {
                    KeysCommand::Create { account } => {
                        orderd::cli::keys_create(&pool, &account).await
                    }
                    KeysCommand::List { account, json } => {
                        orderd::cli::keys_list(&pool, &account, json).await
                    }
                    KeysCommand::Revoke { key_id } => {
                        orderd::cli::keys_revoke(&pool, &key_id).await
                    }
                }
            })
            .await
        }
        Command::Accounts {
            command: AccountsCommand::List { json },
        } => {
            with_database(&settings, |pool| async move {
                orderd::cli::accounts_list(&pool, json).await
            })
            .await
        }
        Command::Orders {
            command:
                OrdersCommand::List {
                    status,
                    stuck,
                    json,
                },
        } => {
            let cli_settings = settings.clone();
            with_database(&settings, |pool| async move {
                orderd::cli::orders_list(&pool, &cli_settings, status.as_deref(), stuck, json).await
            })
            .await
        }
        Command::Orders {
            command: OrdersCommand::Show { id, json },
        } => {
            with_database(&settings, |pool| async move {
                orderd::cli::orders_show(&pool, &id, json).await
            })
            .await
        }
        Command::Orders {
            command: OrdersCommand::Resume { id, operator },
        } => {
            with_database(&settings, |pool| async move {
                orderd::cli::orders_act(&pool, &id, &operator_name(operator), false).await
            })
            .await
        }
        Command::Orders {
            command: OrdersCommand::Cancel { id, operator },
        } => {
            with_database(&settings, |pool| async move {
                orderd::cli::orders_act(&pool, &id, &operator_name(operator), true).await
            })
            .await
        }
        Command::Reconcile {
            command: ReconcileCommand::Run { job, json },
        } => {
            let cli_settings = settings.clone();
            with_database(&settings, |pool| async move {
                orderd::cli::reconcile_run(&pool, &cli_settings, job.as_deref(), json).await
            })
            .await
        }
        Command::Account {
            command:
                AccountCommand::Create {
                    name,
                    balances_account,
                    count,
                },
        } => {
            let name = name.trim().to_string();
            let balances_account = balances_account.trim().to_string();
            if name.is_empty() || balances_account.is_empty() {
                anyhow::bail!("--name and --balances-account must not be empty");
            }
            if count == 0 || count > 100_000 {
                anyhow::bail!("--count must be 1 to 100000");
            }
            let database =
                Database::open(&settings.database, EmbeddedAccess::AttachOrStart).await?;
            let mut printed = Vec::new();
            let mut failed = None;
            for i in 1..=count {
                let (name, balances) = if count == 1 {
                    (name.clone(), balances_account.clone())
                } else {
                    (format!("{name}-{i}"), format!("{balances_account}-{i}"))
                };
                match orderd::store::accounts::create_account(&database.pool, &name, &balances)
                    .await
                {
                    Ok(credentials) => printed.push(serde_json::to_string(&credentials)?),
                    Err(error) => {
                        failed = Some(error);
                        break;
                    }
                }
            }
            database.close().await;
            for line in printed {
                println!("{line}");
            }
            match failed {
                Some(error) => Err(error.into()),
                None => Ok(()),
            }
        }
        Command::Db {
            command: DbCommand::Run { data_dir, no_fsync },
        } => {
            let dir = data_dir.unwrap_or_else(|| settings.database.data_dir.clone());
            let options = ClusterOptions {
                fsync: !no_fsync,
                settings: settings
                    .database
                    .server_settings()
                    .map_err(|problem| anyhow::anyhow!("database.embedded_settings: {problem}"))?,
                ..ClusterOptions::default()
            };
            let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&dir, &options))
                .await
                .context("embedded PostgreSQL start-up task")??;
            println!("database url: {}", pg.url("postgres"));
            startup::shutdown_signal().await;
            tokio::task::spawn_blocking(move || pg.stop())
                .await
                .context("embedded PostgreSQL stop task")??;
            Ok(())
        }
        Command::Db {
            command: DbCommand::Stop { data_dir },
        } => {
            let dir = data_dir.unwrap_or(settings.database.data_dir);
            let stopped = tokio::task::spawn_blocking(move || EmbeddedPostgres::stop_unowned(&dir))
                .await
                .context("embedded PostgreSQL stop task")??;
            println!("{}", if stopped { "stopped" } else { "not running" });
            Ok(())
        }
    }
}

/// The operator an action is audited under: `--operator`, else `$USER`.
fn operator_name(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "operator".to_string())
}

/// Opens the database as a short command does (attaching to a running
/// `serve`'s embedded cluster), runs `command`, prints what it returns and
/// closes the database whatever happened.
async fn with_database<F, Fut>(settings: &Settings, command: F) -> anyhow::Result<()>
where
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let database = Database::open(&settings.database, EmbeddedAccess::AttachOrStart).await?;
    let result = command(database.pool.clone()).await;
    database.close().await;
    println!("{}", result?);
    Ok(())
}

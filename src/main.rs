//! The `orderd` binary: the daemon (`serve`) and its operator commands.

use anyhow::Context;
use clap::Parser;

use orderd::config::Settings;
use orderd::embedded_postgres::{ClusterOptions, EmbeddedPostgres};
use orderd::startup::{self, Application, Database, EmbeddedAccess};

mod args;

use args::{
    AccountCommand, AccountsCommand, Cli, Command, DbCommand, KeysCommand, OrdersCommand,
    ReconcileCommand,
};

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
            failover,
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
            orderd::harness::chaos(
                &seeds,
                std::time::Duration::from_secs(duration),
                &work_dir,
                failover,
            )
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
            command:
                DbCommand::UpgradeDrill {
                    database_url,
                    orders,
                    writers,
                    work_dir,
                    keep,
                    json,
                },
        } => {
            let options = orderd::harness::upgrade::DrillOptions {
                server: database_url,
                orders,
                writers,
                work_dir,
                keep,
            };
            let report = orderd::harness::upgrade::drill(&options, &settings).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                report.print();
            }
            if !report.safe() {
                anyhow::bail!(
                    "the upgrade is not safe beside the previous version (see the writer errors)"
                );
            }
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

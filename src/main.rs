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
                println!("{} orders, {} fills", report.orders, report.fills);
                for invariant in &report.invariants {
                    let verdict = match (invariant.checked, invariant.holds()) {
                        (false, _) => "n/a ",
                        (true, true) => "ok  ",
                        (true, false) => "FAIL",
                    };
                    println!("{verdict} {} {}", invariant.name, invariant.description);
                    for violation in invariant.violations.iter().take(20) {
                        println!("       {} {}", violation.id, violation.detail);
                    }
                    if invariant.violations.len() > 20 {
                        println!("       ... and {} more", invariant.violations.len() - 20);
                    }
                }
            }
            if !report.all_hold() {
                anyhow::bail!("invariants violated");
            }
            Ok(())
        }
        Command::Account {
            command:
                AccountCommand::Create {
                    name,
                    balances_account,
                },
        } => {
            let name = name.trim().to_string();
            let balances_account = balances_account.trim().to_string();
            if name.is_empty() || balances_account.is_empty() {
                anyhow::bail!("--name and --balances-account must not be empty");
            }
            let database =
                Database::open(&settings.database, EmbeddedAccess::AttachOrStart).await?;
            let created =
                orderd::store::accounts::create_account(&database.pool, &name, &balances_account)
                    .await;
            database.close().await;
            let credentials = created?;
            println!("{}", serde_json::to_string(&credentials)?);
            Ok(())
        }
        Command::Db {
            command: DbCommand::Run { data_dir, no_fsync },
        } => {
            let dir = data_dir.unwrap_or(settings.database.data_dir);
            let options = ClusterOptions {
                fsync: !no_fsync,
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

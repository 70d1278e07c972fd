//! `balances-sim` binary: parse flags, start the simulator, print `listening on ADDR`,
//! stop cleanly on SIGTERM/SIGINT.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

/// Balances-service simulator for orderd (holds, settlements, ledger, faults).
#[derive(Parser, Debug)]
#[command(name = "balances-sim", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:9200]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Seed for fault injection
    #[arg(long)]
    seed: Option<u64>,
    /// TOML configuration file (flags override it)
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => balances_sim::Config::from_file(path)?,
        None => balances_sim::Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let handle = balances_sim::spawn(config).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", handle.addr()).context("writing to stdout")?;
        stdout.flush().context("flushing stdout")?;
    }
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
    }
    handle.shutdown().await
}

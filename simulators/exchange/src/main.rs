//! `exchange-sim` binary: runs the venue until SIGTERM/SIGINT.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use exchange_sim::Config;

/// Simulated equity venue for orderd (REST + websocket execution reports).
#[derive(Debug, Parser)]
#[command(name = "exchange-sim", version)]
struct Args {
    /// Address to listen on (overrides the config file). Default 127.0.0.1:9100.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Seed of the market model and fault rolls (overrides the config file).
    #[arg(long)]
    seed: Option<u64>,
    /// TOML file with any of the `Config` fields.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_toml(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    // Handlers first: a SIGTERM right after the `listening` line must still
    // mean a clean exit.
    let signals = Signals::install()?;
    let handle = exchange_sim::spawn(config).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", handle.addr())?;
        stdout.flush()?;
    }
    tracing::info!(addr = %handle.addr(), "exchange-sim ready");
    signals.wait().await;
    tracing::info!("shutting down");
    handle.shutdown().await
}

/// SIGTERM and SIGINT, installed once.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

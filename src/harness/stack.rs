//! The three processes of a local stack (exchange-sim, balances-sim,
//! orderd serve) as children: start, read their `listening on ADDR`, kill
//! orderd with SIGKILL, restart it, stop everything with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a process may take to print `listening on ADDR` (the first
/// orderd start includes initdb).
pub const START_LIMIT: Duration = Duration::from_secs(120);
/// How long a process may take to exit after SIGTERM.
pub const STOP_LIMIT: Duration = Duration::from_secs(60);

/// Where the stack keeps its files and how orderd reaches Postgres.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Directory of the binaries (orderd's own, by default).
    pub bin_dir: PathBuf,
    /// Logs and, with no `database_url`, the embedded cluster.
    pub work_dir: PathBuf,
    pub database_url: Option<String>,
    /// Fixed addresses (the demo), or port 0 (chaos, bench).
    pub exchange_listen: String,
    pub balances_listen: String,
    pub orderd_listen: String,
    pub seed: u64,
    /// Extra `ORDERD__...` settings for orderd and its CLI.
    pub orderd_env: Vec<(String, String)>,
    /// exchange-sim's configuration file (TOML), if not its defaults.
    pub exchange_config: Option<String>,
}

impl StackConfig {
    /// Binaries beside the running one, everything on port 0.
    pub fn beside_current_exe(work_dir: &Path, seed: u64) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the orderd binary")?;
        let bin_dir = exe
            .parent()
            .context("the binary has no directory")?
            .to_path_buf();
        Ok(Self {
            bin_dir,
            work_dir: work_dir.to_path_buf(),
            database_url: None,
            exchange_listen: "127.0.0.1:0".into(),
            balances_listen: "127.0.0.1:0".into(),
            orderd_listen: "127.0.0.1:0".into(),
            seed,
            orderd_env: Vec::new(),
            exchange_config: None,
        })
    }
}

/// A child and the address it listens on.
#[derive(Debug)]
pub struct Running {
    pub child: Child,
    pub addr: String,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), signal);
    }
}

#[derive(Debug)]
pub struct Stack {
    pub config: StackConfig,
    pub exchange: Running,
    pub balances: Running,
    pub orderd: Option<Running>,
}

fn binary(config: &StackConfig, name: &str) -> anyhow::Result<PathBuf> {
    let path = config.bin_dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found; build the workspace's binaries first (cargo build --release --workspace --bins)",
            path.display()
        );
    }
    Ok(path)
}

/// Spawns `command` with its stderr in `log`, and waits for its
/// `listening on ADDR` line.
fn start(mut command: Command, log: &Path, what: &str) -> anyhow::Result<Running> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    match rx.recv_timeout(START_LIMIT) {
        Ok(line) => match line.strip_prefix("listening on ") {
            Some(addr) => Ok(Running {
                child,
                addr: addr.trim().to_string(),
            }),
            None => bail!("{what} printed {line:?} instead of `listening on ADDR`"),
        },
        Err(_) => {
            let _ = child.kill();
            bail!(
                "{what} did not start within {START_LIMIT:?}; see {}",
                log.display()
            )
        }
    }
}

impl Stack {
    /// Starts both venues, then orderd.
    pub fn start(config: StackConfig) -> anyhow::Result<Self> {
        let logs = config.work_dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let mut exchange = Command::new(binary(&config, "exchange-sim")?);
        exchange.args([
            "--listen",
            &config.exchange_listen,
            "--seed",
            &config.seed.to_string(),
        ]);
        if let Some(toml) = &config.exchange_config {
            let file = config.work_dir.join("exchange-sim.toml");
            std::fs::write(&file, toml).with_context(|| format!("writing {}", file.display()))?;
            exchange.arg("--config").arg(file);
        }
        let exchange = start(exchange, &logs.join("exchange-sim.log"), "exchange-sim")?;
        let mut balances = Command::new(binary(&config, "balances-sim")?);
        balances.args([
            "--listen",
            &config.balances_listen,
            "--seed",
            &config.seed.to_string(),
        ]);
        let balances = start(balances, &logs.join("balances-sim.log"), "balances-sim")?;
        let mut stack = Self {
            config,
            exchange,
            balances,
            orderd: None,
        };
        stack.start_orderd(None)?;
        Ok(stack)
    }

    /// An `orderd` command with the stack's settings (for `serve` and for
    /// CLI commands alike).
    pub fn orderd_command(&self) -> anyhow::Result<Command> {
        let mut command = Command::new(binary(&self.config, "orderd")?);
        command
            .env("ORDERD__EXCHANGE__URL", self.exchange.url())
            .env("ORDERD__BALANCES__URL", self.balances.url())
            .env("ORDERD__HTTP__LISTEN", &self.config.orderd_listen)
            // The harness's traders are load generators, far past a
            // trader's 200 requests a minute.
            .env("ORDERD__HTTP__RATE_LIMIT_PER_MINUTE", "0")
            // Quiescence is judged from /metrics' gauges: read them fresh.
            .env("ORDERD__HTTP__METRICS_GAUGES_MS", "0")
            // Every instance runs this release: replaces are taken (the
            // traders replace resting orders).
            .env("ORDERD__LIFECYCLE__REPLACE_ORDERS", "true")
            .env_remove("ORDERD_FAILPOINTS");
        match &self.config.database_url {
            Some(url) => command.env("ORDERD__DATABASE__URL", url),
            None => command.env_remove("ORDERD__DATABASE__URL").env(
                "ORDERD__DATABASE__DATA_DIR",
                self.config.work_dir.join("postgres"),
            ),
        };
        for (key, value) in &self.config.orderd_env {
            command.env(key, value);
        }
        Ok(command)
    }

    /// Starts `orderd serve`, with a failpoint armed if given.
    pub fn start_orderd(&mut self, failpoint: Option<&str>) -> anyhow::Result<()> {
        self.start_orderd_as(failpoint, None)
    }

    /// [`Stack::start_orderd`] under instance name `name` (default: the
    /// stack's settings').
    pub fn start_orderd_as(
        &mut self,
        failpoint: Option<&str>,
        name: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut command = self.orderd_command()?;
        command.arg("serve");
        if let Some(name) = name {
            command.env("ORDERD__INSTANCE__NAME", name);
        }
        if let Some(failpoint) = failpoint {
            command.env("ORDERD_FAILPOINTS", failpoint);
        }
        let logs = self.config.work_dir.join("logs");
        self.orderd = Some(start(command, &logs.join("orderd.log"), "orderd")?);
        Ok(())
    }

    pub fn orderd_url(&self) -> Option<String> {
        self.orderd.as_ref().map(Running::url)
    }

    /// The database's URL (the embedded cluster's socket when orderd owns
    /// one).
    pub fn database_url(&self) -> String {
        match &self.config.database_url {
            Some(url) => url.clone(),
            None => format!(
                "postgres://{user}@localhost:{port}/{db}?host={socket}",
                user = crate::embedded_postgres::SUPERUSER,
                port = crate::embedded_postgres::SOCKET_PORT,
                db = crate::startup::EMBEDDED_DATABASE,
                socket = self
                    .config
                    .work_dir
                    .join("postgres")
                    .join("socket")
                    .display(),
            ),
        }
    }

    /// Starts another `orderd serve` on the same database and venues under
    /// instance name `name` (a second instance racing the first).
    pub fn start_extra_orderd(&self, name: &str) -> anyhow::Result<Running> {
        let mut command = self.orderd_command()?;
        // The first orderd owns the embedded cluster: this one connects to
        // it through its socket.
        let url = self.database_url();
        command
            .arg("serve")
            .env("ORDERD__DATABASE__URL", url)
            .env("ORDERD__INSTANCE__NAME", name)
            .env("ORDERD__HTTP__LISTEN", "127.0.0.1:0");
        let logs = self.config.work_dir.join("logs");
        start(
            command,
            &logs.join(format!("{name}.log")),
            "a second orderd",
        )
    }

    /// Whether orderd is still running (a failpoint may have killed it).
    pub fn orderd_alive(&mut self) -> bool {
        match self.orderd.as_mut() {
            Some(running) => matches!(running.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL: no shutdown, no flushing; what was committed is all there is.
    pub fn kill_orderd(&mut self) {
        if let Some(mut running) = self.orderd.take() {
            running.signal(Signal::SIGKILL);
            let _ = running.child.wait();
        }
    }

    /// Runs an orderd CLI command against the stack; its stdout.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self
            .orderd_command()?
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running orderd {args:?}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        if !output.status.success() && stdout.trim().is_empty() {
            bail!(
                "orderd {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// SIGTERM to all three, orderd first; waits for each.
    pub fn stop(mut self) {
        if let Some(running) = self.orderd.take() {
            stop_child(running);
        }
        stop_child(self.exchange);
        stop_child(self.balances);
    }
}

/// Stops a child started beside the stack (SIGTERM, then SIGKILL past
/// [`STOP_LIMIT`]).
pub fn stop_running(running: Running) {
    stop_child(running);
}

fn stop_child(mut running: Running) {
    running.signal(Signal::SIGTERM);
    let deadline = std::time::Instant::now() + STOP_LIMIT;
    loop {
        match running.child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if std::time::Instant::now() > deadline => {
                let _ = running.child.kill();
                let _ = running.child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

//! Tests of the `orderd` binary as a separate process: embedded Postgres by
//! default, `listening on ADDR`, signals, restarts, a second instance on the
//! same data directory, bad configuration.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[path = "../support/mod.rs"]
mod support;

mod chaos;
mod cli;
mod crash;
mod explore;
mod scaleout;
mod upgrade;

/// Start-up includes initdb on first use; allow for a slow machine.
const START_LIMIT: Duration = Duration::from_secs(90);

struct Orderd {
    child: Child,
    addr: String,
}

impl Drop for Orderd {
    /// A failing test must not leave a daemon behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A data directory under /tmp (reachable by the `postgres` user when the
/// tests run as root), whose cluster is stopped and files removed on drop.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("orderd-proc-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl std::ops::Deref for DataDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = orderd::embedded_postgres::EmbeddedPostgres::stop_unowned(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn orderd_command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderd"));
    command
        .env_remove("ORDERD__DATABASE__URL")
        .env("ORDERD__HTTP__LISTEN", "127.0.0.1:0")
        .env("ORDERD__DATABASE__DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// Spawns `orderd serve` and waits for its `listening on ADDR` line.
fn start_serve(data_dir: &Path) -> Orderd {
    start_command(orderd_command(data_dir))
}

/// Spawns `command serve` and waits for its `listening on ADDR` line.
fn start_command(mut command: Command) -> Orderd {
    let mut child = command
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn orderd");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(START_LIMIT)
        .expect("orderd prints `listening on ADDR`");
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Orderd { child, addr }
}

fn signal(orderd: &Orderd, signal: Signal) {
    kill(Pid::from_raw(orderd.child.id() as i32), signal).expect("signal orderd");
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orderd did not exit in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(addr: &str, path: &str) -> (u16, String) {
    orderd::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::get(format!("http://{addr}{path}"))
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    })
}

fn cluster_running(data_dir: &Path) -> bool {
    data_dir.join("pgdata/postmaster.pid").exists()
}

#[test]
fn serve_runs_on_embedded_postgres_stops_on_sigterm_and_reuses_its_data() {
    let data_dir = DataDir::new();
    let mut first = start_serve(&data_dir);
    assert_eq!(get(&first.addr, "/readyz").0, 200);
    assert!(cluster_running(&data_dir));

    // A second instance on the same data directory refuses, clearly.
    let second = orderd_command(&data_dir)
        .arg("serve")
        .output()
        .expect("run second");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("already owned by another orderd process"),
        "{stderr}"
    );
    // ...and did no harm.
    assert_eq!(get(&first.addr, "/readyz").0, 200);

    signal(&first, Signal::SIGTERM);
    let status = wait_exit(&mut first.child, Duration::from_secs(60));
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(!cluster_running(&data_dir), "SIGTERM stops Postgres too");

    // Starting again reuses the data: the first run's instance row is there.
    let mut again = start_serve(&data_dir);
    assert_eq!(get(&again.addr, "/readyz").0, 200);
    signal(&again, Signal::SIGINT);
    assert!(wait_exit(&mut again.child, Duration::from_secs(60)).success());
    let log = std::fs::read_to_string(data_dir.join("postgres.log")).unwrap();
    assert_eq!(
        log.matches("database system is ready to accept connections")
            .count(),
        2,
        "one initdb, two starts of the same cluster"
    );
}

#[test]
fn after_sigkill_the_next_serve_adopts_the_running_cluster() {
    let data_dir = DataDir::new();
    let mut first = start_serve(&data_dir);
    signal(&first, Signal::SIGKILL);
    wait_exit(&mut first.child, Duration::from_secs(10));
    assert!(
        cluster_running(&data_dir),
        "Postgres outlives a SIGKILLed owner"
    );

    let mut second = start_serve(&data_dir);
    assert_eq!(get(&second.addr, "/readyz").0, 200);
    signal(&second, Signal::SIGTERM);
    assert!(wait_exit(&mut second.child, Duration::from_secs(60)).success());
    assert!(!cluster_running(&data_dir));
}

#[test]
fn a_cli_command_uses_the_cluster_a_running_serve_owns() {
    let data_dir = DataDir::new();
    let mut serve = start_serve(&data_dir);
    let migrate = orderd_command(&data_dir)
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    // It attached rather than owning: the cluster is still serving.
    assert_eq!(get(&serve.addr, "/readyz").0, 200);
    signal(&serve, Signal::SIGTERM);
    assert!(wait_exit(&mut serve.child, Duration::from_secs(60)).success());

    // With no serve running, the command starts the cluster and stops it.
    let migrate = orderd_command(&data_dir)
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(migrate.status.success());
    assert!(
        !cluster_running(&data_dir),
        "stopped at the end of the command"
    );
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_key() {
    let data_dir = DataDir::new();
    let output = orderd_command(&data_dir)
        .env("ORDERD__HTTP__LISTEN", "nonsense")
        .arg("serve")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`http.listen`"), "{stderr}");
    assert!(!cluster_running(&data_dir), "nothing was started");
}

//! The database fault of `orderd chaos --failover`: orderd runs against a
//! primary with a synchronous standby (`embedded_postgres::replica`) through
//! a two-host URL; mid-run the primary's machine dies (SIGKILL to every
//! Postgres process), and after a detection delay the standby is promoted,
//! as an HA manager would. orderd is not restarted: it must follow the
//! primary by itself, lose no acknowledged order or fill, and resolve what
//! was in flight (commits whose answer died with the connection) by
//! evidence. The run's usual checks (I1–I7) then judge it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::time::Instant;

use crate::embedded_postgres::replica::{primary_options, standby_options};
use crate::embedded_postgres::{self, EmbeddedPostgres, SOCKET_PORT, SUPERUSER};

/// How long the "HA manager" takes to notice the primary is gone before
/// it promotes the standby.
pub const DETECTION_DELAY: Duration = Duration::from_secs(1);

/// A primary and its synchronous standby, owned by the harness.
pub struct Replicated {
    primary: Option<EmbeddedPostgres>,
    standby: Option<EmbeddedPostgres>,
    dirs: [PathBuf; 2],
}

/// What a failover took.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FailoverReport {
    /// From the run's start to the kill.
    pub killed_at: Duration,
    /// Postgres processes killed.
    pub processes_killed: usize,
    /// From the kill until the standby took writes.
    pub promoted_after: Duration,
    /// From the kill until an order submitted after it was acknowledged:
    /// the gap traders saw.
    pub write_gap: Option<Duration>,
    /// Times orderd had to be restarted during the run (should be 0).
    pub orderd_restarts: u64,
}

impl Replicated {
    /// Starts both clusters under `work_dir` (fresh) and creates orderd's
    /// database on the primary. Blocking.
    pub fn start(work_dir: &Path) -> anyhow::Result<Self> {
        let dirs = [work_dir.join("postgres-a"), work_dir.join("postgres-b")];
        for dir in &dirs {
            if dir.exists() {
                let _ = EmbeddedPostgres::stop_unowned(dir);
                std::fs::remove_dir_all(dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
        }
        let primary = EmbeddedPostgres::start(&dirs[0], &primary_options(false))
            .context("starting the primary")?;
        // The standby's base backup runs while nothing writes; commits wait
        // for it once it streams (synchronous_standby_names).
        let standby = EmbeddedPostgres::start_standby(&dirs[1], &primary, &standby_options(false))
            .context("starting the standby")?;
        let admin = primary.connect_options("postgres");
        tokio::runtime::Handle::current().block_on(async {
            anyhow::ensure!(
                embedded_postgres::wait_until_accepting(&admin, Duration::from_secs(30)).await,
                "the primary did not accept connections"
            );
            crate::db::create_database_if_missing(&admin, crate::startup::EMBEDDED_DATABASE)
                .await
                .context("creating orderd's database on the primary")?;
            wait_until_synchronous(&admin).await
        })?;
        Ok(Self {
            primary: Some(primary),
            standby: Some(standby),
            dirs,
        })
    }

    /// orderd's `database.url`: both hosts, primary first.
    pub fn url(&self) -> String {
        let sockets: Vec<String> = self
            .dirs
            .iter()
            .map(|d| d.join("socket").display().to_string())
            .collect();
        format!(
            "postgres://{SUPERUSER}@localhost/{db}?host={hosts}&port={SOCKET_PORT}&target_session_attrs=read-write",
            db = crate::startup::EMBEDDED_DATABASE,
            hosts = sockets.join(","),
        )
    }

    /// Kills the primary's machine. Returns the processes killed.
    pub fn kill_primary(&mut self) -> anyhow::Result<usize> {
        let primary = self.primary.take().context("already failed over")?;
        let processes = primary.kill_machine();
        // Its owner lock goes with it; nothing will restart it.
        drop(primary);
        Ok(processes)
    }

    /// Promotes the standby and waits until it takes writes. Blocking.
    pub fn promote_standby(&self) -> anyhow::Result<()> {
        self.standby
            .as_ref()
            .context("no standby")?
            .promote()
            .context("promoting the standby")
    }

    /// Stops what still runs.
    pub fn stop(mut self) {
        for pg in [self.primary.take(), self.standby.take()]
            .into_iter()
            .flatten()
        {
            if let Err(error) = pg.stop() {
                tracing::warn!(%error, "stopping a cluster of the failover pair");
            }
        }
    }
}

/// Waits until the primary reports the standby as its synchronous one:
/// from then on a commit is acknowledged only once the standby has it.
async fn wait_until_synchronous(admin: &sqlx::postgres::PgConnectOptions) -> anyhow::Result<()> {
    use sqlx::ConnectOptions;
    let mut conn = admin.connect().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state: Option<String> = sqlx::query_scalar(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1",
        )
        .bind(crate::embedded_postgres::replica::STANDBY_NAME)
        .fetch_optional(&mut conn)
        .await?;
        if state.as_deref() == Some("sync") {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the standby did not become synchronous within 30 s (state {state:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits a small order as `trader` every 200 ms until one is
/// acknowledged; the time from `killed` to that answer.
pub async fn measure_write_gap(
    http: &reqwest::Client,
    url: &str,
    trader: &super::session::Trader,
    killed: Instant,
    limit: Duration,
) -> Option<Duration> {
    let mut n = 0u32;
    while killed.elapsed() < limit {
        n += 1;
        let answered = http
            .post(format!("{url}/v2/orders"))
            .header("APCA-API-KEY-ID", &trader.key_id)
            .header("APCA-API-SECRET-KEY", &trader.secret_key)
            .timeout(Duration::from_secs(5))
            .json(&json!({
                "symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit",
                "limit_price": "1.00", "time_in_force": "day",
                "client_order_id": format!("failover-probe-{}-{n}", killed.elapsed().as_millis()),
            }))
            .send()
            .await;
        if let Ok(response) = answered
            && response.status().is_success()
        {
            return Some(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

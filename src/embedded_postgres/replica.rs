//! A primary with a synchronous streaming standby, both private clusters
//! run from the machine's binaries: what `orderd chaos --failover` and the
//! failover test run orderd against. The HA manager's part (notice the
//! primary is dead, promote the standby) is done by the caller, as
//! Patroni or pg_auto_failover would do it in production.

use std::path::Path;
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{
    ClusterOptions, EmbeddedError, EmbeddedPostgres, SOCKET_PORT, SUPERUSER, ServerSetting,
};

/// The standby's `application_name`, which the primary waits for.
pub const STANDBY_NAME: &str = "orderd_standby";

fn setting(text: &str) -> ServerSetting {
    // Only called with the literals below, which parse.
    ServerSetting::parse(text).unwrap_or_else(|problem| unreachable!("{text}: {problem}"))
}

/// What the primary runs with: WAL for a streaming standby, and every
/// commit waits until the standby has it (`synchronous_commit = on` is the
/// embedded default), so an acknowledged commit survives the primary.
pub fn primary_options(fsync: bool) -> ClusterOptions {
    ClusterOptions {
        fsync,
        settings: vec![
            setting("wal_level=replica"),
            setting("max_wal_senders=5"),
            setting(&format!("synchronous_standby_names={STANDBY_NAME}")),
        ],
        ..ClusterOptions::default()
    }
}

/// What the standby runs with: no synchronous standby of its own, so that
/// once promoted it commits alone (degraded, as after any failover) instead
/// of waiting for a standby that does not exist.
pub fn standby_options(fsync: bool) -> ClusterOptions {
    ClusterOptions {
        fsync,
        settings: vec![setting("wal_level=replica"), setting("max_wal_senders=5")],
        ..ClusterOptions::default()
    }
}

impl EmbeddedPostgres {
    /// Starts (and owns) a standby of `primary` in `dir`: a base backup of
    /// the primary, then recovery streaming from it as [`STANDBY_NAME`].
    pub fn start_standby(
        dir: &Path,
        primary: &EmbeddedPostgres,
        options: &ClusterOptions,
    ) -> Result<Self, EmbeddedError> {
        let pg = match Self::take_ownership(dir)? {
            super::Started::Owned(pg) => pg,
            super::Started::OwnedElsewhere { pid } => {
                return Err(EmbeddedError::AlreadyOwned {
                    dir: dir.to_path_buf(),
                    pid,
                });
            }
        };
        pg.prepare_directories()?;
        if !pg.pgdata().join("PG_VERSION").is_file() {
            let owner = pg.owner()?;
            // Beside the real pg_ctl (PATH may hold a symlink to it), so
            // the backup tool is the server's own version.
            let basebackup = std::fs::canonicalize(&owner.binaries.pg_ctl)
                .unwrap_or_else(|_| owner.binaries.pg_ctl.clone())
                .with_file_name("pg_basebackup");
            let mut command = Command::new(basebackup);
            command
                .arg("-D")
                .arg(pg.pgdata())
                .arg("-h")
                .arg(primary.socket_dir())
                .args(["-p", &SOCKET_PORT.to_string(), "-U", SUPERUSER])
                .args(["-X", "stream", "-c", "fast"]);
            pg.run("pg_basebackup", command)?;
            let conninfo = format!(
                "host={} port={SOCKET_PORT} user={SUPERUSER} application_name={STANDBY_NAME}",
                primary.socket_dir().display()
            );
            let auto_conf = pg.pgdata().join("postgresql.auto.conf");
            let mut text = std::fs::read_to_string(&auto_conf).unwrap_or_default();
            text.push_str(&format!("primary_conninfo = '{conninfo}'\n"));
            std::fs::write(&auto_conf, text).map_err(super::io_error(&auto_conf))?;
            let signal = pg.pgdata().join("standby.signal");
            std::fs::write(&signal, "").map_err(super::io_error(&signal))?;
            // The files above were written by this process: hand them over.
            pg.prepare_directories()?;
        }
        pg.start_server(options)?;
        Ok(pg)
    }

    /// Promotes this standby to a primary and waits until it takes writes.
    pub fn promote(&self) -> Result<(), EmbeddedError> {
        let owner = self.owner()?;
        let mut command = Command::new(&owner.binaries.pg_ctl);
        command.arg("promote").arg("-D").arg(self.pgdata()).args([
            "-w",
            "-t",
            &super::PG_CTL_TIMEOUT_SECS.to_string(),
        ]);
        self.run("pg_ctl promote", command)?;
        Ok(())
    }

    /// The machine dies: SIGKILL to the postmaster and every process it
    /// started, so no backend finishes what it was doing and every client
    /// connection drops. The postmaster is stopped first so it forks no
    /// process that would escape. Returns how many processes were killed.
    pub fn kill_machine(&self) -> usize {
        let Some(postmaster) = Self::postmaster_pid(&self.dir) else {
            return 0;
        };
        let postmaster = Pid::from_raw(postmaster);
        let _ = kill(postmaster, Signal::SIGSTOP);
        let children = children_of(postmaster.as_raw());
        for child in &children {
            let _ = kill(Pid::from_raw(*child), Signal::SIGKILL);
        }
        let _ = kill(postmaster, Signal::SIGKILL);
        children.len() + 1
    }
}

/// The pids whose parent is `parent` (from `/proc`).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                // The command is in parentheses and may hold spaces: the
                // fields after its closing parenthesis are state, ppid, ...
                .and_then(|stat| {
                    let after = &stat[stat.rfind(')')? + 1..];
                    after.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

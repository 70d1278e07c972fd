//! A private PostgreSQL cluster run from the machine's own binaries, so a new
//! user needs nothing but Rust and the `postgresql` package.
//!
//! Layout of `database.data_dir`:
//! - `pgdata/`     the cluster (initdb'd on first start, kept across restarts)
//! - `socket/`     the unix socket directory; the cluster listens nowhere else
//! - `owner.lock`  an advisory lock held by the process that owns the cluster
//! - `postgres.log`
//!
//! Ownership: the process holding `owner.lock` owns the cluster and stops it
//! when it exits. A second `orderd serve` on the same directory is refused
//! with a clear message; CLI commands ([`EmbeddedPostgres::attach_or_start`])
//! connect to the running owner's cluster instead. A cluster left running by
//! an owner that was killed with SIGKILL is adopted by the next owner (the
//! lock died with the process; Postgres' own `postmaster.pid` still protects
//! the data).
//!
//! When orderd runs as root, the cluster runs as the `postgres` user
//! (PostgreSQL refuses to run as root), and the directory is handed to it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid, User};
use sqlx::postgres::PgConnectOptions;

mod binaries;
pub mod replica;

pub use binaries::{ClusterOptions, INSTALL_HINT, PgBinaries, ServerSetting};

/// The cluster's socket port number. It only names the socket file
/// (`.s.PGSQL.5432`) inside our private socket directory; no TCP port is
/// opened, so it cannot clash with another server.
pub const SOCKET_PORT: u16 = 5432;

/// The superuser created by initdb; it is also the role orderd connects as.
pub const SUPERUSER: &str = "postgres";

/// How long `pg_ctl` may take to start or stop the cluster.
pub const PG_CTL_TIMEOUT_SECS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("{INSTALL_HINT}")]
    BinariesNotFound,
    #[error(
        "the embedded database in {dir} is already owned by another orderd process (pid {pid}); \
         stop that process, or give this one its own database.data_dir"
    )]
    AlreadyOwned { dir: PathBuf, pid: String },
    #[error(
        "running as root, but the `postgres` user cannot reach {dir}: PostgreSQL refuses to run \
         as root and runs as `postgres`, which needs execute permission on every parent \
         directory; choose a database.data_dir outside private directories such as /root"
    )]
    NotReachableByPostgresUser { dir: PathBuf },
    #[error(
        "running as root, but there is no `postgres` user to run PostgreSQL as; install the \
         postgresql package, which creates it"
    )]
    NoPostgresUser,
    #[error(
        "{dir} is not empty and holds no PostgreSQL cluster; move it away or choose another database.data_dir"
    )]
    NotACluster { dir: PathBuf },
    #[error("{what} failed ({status}): {output}; see {log}")]
    Command {
        what: &'static str,
        status: String,
        output: String,
        log: PathBuf,
    },
    #[error("embedded database directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    System(#[from] nix::Error),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EmbeddedError + '_ {
    move |source| EmbeddedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A running embedded cluster. Dropping it does not stop the cluster; call
/// [`EmbeddedPostgres::stop`] (an owner left running by a crash is adopted by
/// the next owner).
#[derive(Debug)]
pub struct EmbeddedPostgres {
    dir: PathBuf,
    /// `Some` when this process owns the cluster and must stop it.
    owner: Option<Owner>,
}

#[derive(Debug)]
struct Owner {
    binaries: PgBinaries,
    run_as: Option<User>,
    /// Held for the life of the process; released by the kernel on exit.
    _lock: Flock<File>,
}

impl EmbeddedPostgres {
    /// Starts (or adopts) the cluster in `dir` and owns it. Fails with
    /// [`EmbeddedError::AlreadyOwned`] when another live process owns it.
    pub fn start(dir: &Path, options: &ClusterOptions) -> Result<Self, EmbeddedError> {
        match Self::try_start(dir, options)? {
            Started::Owned(pg) => Ok(pg),
            Started::OwnedElsewhere { pid } => Err(EmbeddedError::AlreadyOwned {
                dir: dir.to_path_buf(),
                pid,
            }),
        }
    }

    /// For commands that only need the database for a moment: connects to
    /// the cluster a running owner serves, or starts (and owns) it when
    /// nobody does.
    pub fn attach_or_start(dir: &Path, options: &ClusterOptions) -> Result<Self, EmbeddedError> {
        match Self::try_start(dir, options)? {
            Started::Owned(pg) => Ok(pg),
            Started::OwnedElsewhere { .. } => Ok(Self {
                dir: absolute(dir)?,
                owner: None,
            }),
        }
    }

    fn try_start(dir: &Path, options: &ClusterOptions) -> Result<Started, EmbeddedError> {
        let pg = match Self::take_ownership(dir)? {
            Started::Owned(pg) => pg,
            elsewhere @ Started::OwnedElsewhere { .. } => return Ok(elsewhere),
        };
        pg.prepare_directories()?;
        pg.init_if_needed()?;
        pg.start_server(options)?;
        Ok(Started::Owned(pg))
    }

    /// Takes the owner lock of `dir` (creating the directory), or reports
    /// the pid of the live process that holds it.
    fn take_ownership(dir: &Path) -> Result<Started, EmbeddedError> {
        let binaries = PgBinaries::locate()?;
        let run_as = if Uid::effective().is_root() {
            Some(User::from_name(SUPERUSER)?.ok_or(EmbeddedError::NoPostgresUser)?)
        } else {
            None
        };
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let dir = absolute(dir)?;
        let lock_path = dir.join("owner.lock");
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        let mut lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Ok(Started::OwnedElsewhere {
                    pid: pid.trim().to_string(),
                });
            }
            Err((_, errno)) => return Err(errno.into()),
        };
        lock.set_len(0).map_err(io_error(&lock_path))?;
        lock.rewind().map_err(io_error(&lock_path))?;
        writeln!(lock, "{}", std::process::id()).map_err(io_error(&lock_path))?;
        Ok(Started::Owned(Self {
            dir,
            owner: Some(Owner {
                binaries,
                run_as,
                _lock: lock,
            }),
        }))
    }

    /// Stops the cluster in `dir` if one runs there and no live process owns
    /// it (the cluster a SIGKILLed owner left behind). Returns whether it
    /// stopped one. A cluster a live owner serves is left alone
    /// ([`EmbeddedError::AlreadyOwned`]).
    pub fn stop_unowned(dir: &Path) -> Result<bool, EmbeddedError> {
        if !dir.join("pgdata").join("PG_VERSION").is_file() {
            return Ok(false);
        }
        let pg = match Self::take_ownership(dir)? {
            Started::Owned(pg) => pg,
            Started::OwnedElsewhere { pid } => {
                return Err(EmbeddedError::AlreadyOwned {
                    dir: dir.to_path_buf(),
                    pid,
                });
            }
        };
        if !pg.server_running()? {
            return Ok(false);
        }
        pg.stop()?;
        Ok(true)
    }

    /// Connection options for `database` on this cluster.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(self.socket_dir())
            .port(SOCKET_PORT)
            .username(SUPERUSER)
            .database(database)
    }

    /// The same as a URL, for tools such as psql (`psql "URL"`).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost:{SOCKET_PORT}/{database}?host={}",
            self.socket_dir().display()
        )
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_owner(&self) -> bool {
        self.owner.is_some()
    }

    fn pgdata(&self) -> PathBuf {
        self.dir.join("pgdata")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.join("socket")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn prepare_directories(&self) -> Result<(), EmbeddedError> {
        let socket_dir = self.socket_dir();
        std::fs::create_dir_all(&socket_dir).map_err(io_error(&socket_dir))?;
        let log = self.log_path();
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_error(&log))?;
        if let Some(user) = self.owner.as_ref().and_then(|o| o.run_as.as_ref()) {
            if !reachable_by(&self.dir, user) {
                return Err(EmbeddedError::NotReachableByPostgresUser {
                    dir: self.dir.clone(),
                });
            }
            for path in [self.dir.clone(), self.socket_dir(), log] {
                chown(&path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                    .map_err(io_error(&path))?;
            }
            let pgdata = self.pgdata();
            if pgdata.exists() {
                chown_recursive(&pgdata, user.uid, user.gid)?;
            }
        }
        // The socket directory is the cluster's only door: keep it private.
        std::fs::set_permissions(self.socket_dir(), std::fs::Permissions::from_mode(0o700))
            .map_err(io_error(&self.socket_dir()))?;
        Ok(())
    }

    fn init_if_needed(&self) -> Result<(), EmbeddedError> {
        let pgdata = self.pgdata();
        if pgdata.join("PG_VERSION").is_file() {
            return Ok(());
        }
        if pgdata.exists()
            && std::fs::read_dir(&pgdata)
                .map_err(io_error(&pgdata))?
                .next()
                .is_some()
        {
            return Err(EmbeddedError::NotACluster { dir: pgdata });
        }
        let owner = self.owner()?;
        // Trust is safe here: the cluster listens only on a socket inside a
        // 0700 directory owned by the user it runs as.
        let mut command = Command::new(&owner.binaries.initdb);
        command
            .arg("-D")
            .arg(&pgdata)
            .args(["--username", SUPERUSER, "--auth=trust", "--encoding=UTF8"])
            .arg("--locale=C")
            .arg("--no-instructions");
        self.run("initdb", command)?;
        Ok(())
    }

    fn start_server(&self, options: &ClusterOptions) -> Result<(), EmbeddedError> {
        let owner = self.owner()?;
        if self.server_running()? {
            tracing::info!(dir = %self.dir.display(), "adopting the embedded PostgreSQL left running by a previous owner");
            return Ok(());
        }
        // postmaster.pid from a crashed server is removed by postgres itself
        // when no process with that pid owns the shared memory.
        let mut server_options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{socket}' -c port={SOCKET_PORT} \
             -c fsync={fsync} -c max_connections={max_connections} -c shared_buffers=128MB \
             -c synchronous_commit=on",
            socket = self.socket_dir().display(),
            fsync = if options.fsync { "on" } else { "off" },
            max_connections = options.max_connections,
        );
        for setting in &options.settings {
            server_options.push_str(&setting.as_option());
        }
        let mut command = Command::new(&owner.binaries.pg_ctl);
        command
            .arg("start")
            .arg("-D")
            .arg(self.pgdata())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", &PG_CTL_TIMEOUT_SECS.to_string(), "-o"])
            .arg(server_options);
        self.run("pg_ctl start", command)?;
        Ok(())
    }

    /// Starts the owned cluster again if it is not running (its postmaster
    /// died); `true` when it did.
    pub fn ensure_running(&self, options: &ClusterOptions) -> Result<bool, EmbeddedError> {
        if self.server_running()? {
            return Ok(false);
        }
        self.start_server(options)?;
        Ok(true)
    }

    /// The postmaster's pid, from `postmaster.pid` (for tests that kill it).
    pub fn postmaster_pid(dir: &Path) -> Option<i32> {
        let text = std::fs::read_to_string(dir.join("pgdata").join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn server_running(&self) -> Result<bool, EmbeddedError> {
        let owner = self.owner()?;
        let mut command = Command::new(&owner.binaries.pg_ctl);
        command.arg("status").arg("-D").arg(self.pgdata());
        // Exit 0: running; 3: not running; 4: no accessible data directory.
        let output = self.output(command)?;
        Ok(output.status.success())
    }

    /// Stops the cluster if this process owns it (fast shutdown: open
    /// transactions are rolled back, committed data is already durable).
    pub fn stop(self) -> Result<(), EmbeddedError> {
        let Some(owner) = self.owner.as_ref() else {
            return Ok(());
        };
        let mut command = Command::new(&owner.binaries.pg_ctl);
        command.arg("stop").arg("-D").arg(self.pgdata()).args([
            "-m",
            "fast",
            "-w",
            "-t",
            &PG_CTL_TIMEOUT_SECS.to_string(),
        ]);
        self.run("pg_ctl stop", command)?;
        Ok(())
    }

    fn owner(&self) -> Result<&Owner, EmbeddedError> {
        self.owner.as_ref().ok_or_else(|| EmbeddedError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other("this process does not own the embedded cluster"),
        })
    }

    fn output(&self, mut command: Command) -> Result<Output, EmbeddedError> {
        if let Some(user) = self.owner.as_ref().and_then(|o| o.run_as.as_ref()) {
            command
                .uid(user.uid.as_raw())
                .gid(user.gid.as_raw())
                .env("HOME", &user.dir)
                .env("USER", &user.name);
        }
        // The server's own output goes to postgres.log; keep ours quiet.
        command.current_dir(&self.dir);
        command.output().map_err(io_error(&self.dir))
    }

    fn run(&self, what: &'static str, command: Command) -> Result<Output, EmbeddedError> {
        let output = self.output(command)?;
        if output.status.success() {
            return Ok(output);
        }
        let mut text = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if text.is_empty() {
            text = String::from_utf8_lossy(&output.stdout).trim().to_string();
        }
        Err(EmbeddedError::Command {
            what,
            status: output.status.to_string(),
            output: text,
            log: self.log_path(),
        })
    }
}

enum Started {
    Owned(EmbeddedPostgres),
    OwnedElsewhere { pid: String },
}

fn absolute(dir: &Path) -> Result<PathBuf, EmbeddedError> {
    std::fs::canonicalize(dir).map_err(io_error(dir))
}

/// Whether `user` can traverse every ancestor of `dir` (the check the
/// kernel would make when the server opens its files).
fn reachable_by(dir: &Path, user: &User) -> bool {
    dir.ancestors().skip(1).all(|ancestor| {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            return false;
        };
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode();
        if meta.uid() == user.uid.as_raw() {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid.as_raw() {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    })
}

fn chown_recursive(path: &Path, uid: Uid, gid: Gid) -> Result<(), EmbeddedError> {
    chown(path, Some(uid.as_raw()), Some(gid.as_raw())).map_err(io_error(path))?;
    let meta = std::fs::symlink_metadata(path).map_err(io_error(path))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io_error(path))? {
            let entry = entry.map_err(io_error(path))?;
            chown_recursive(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Waits until the cluster accepts connections for `database` (pg_ctl -w
/// already waited for the server; this covers an adopted cluster that is
/// still recovering).
pub async fn wait_until_accepting(options: &PgConnectOptions, limit: Duration) -> bool {
    use sqlx::ConnectOptions;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if options.connect().await.is_ok() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! The command line: every subcommand and its arguments (clap), read by
//! `main`, which dispatches them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "orderd",
    version,
    about = "Equity-trading order-lifecycle daemon"
)]
pub(crate) struct Cli {
    /// Configuration file merged over the built-in defaults
    /// (environment variables ORDERD__SECTION__KEY override both).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
        /// Each run on a primary with a synchronous standby: the primary's
        /// machine dies at 40% of the run (SIGKILL to every Postgres
        /// process) and the standby is promoted a second later; orderd is
        /// not restarted and must follow the primary by itself.
        #[arg(long)]
        failover: bool,
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
pub(crate) enum AccountCommand {
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
pub(crate) enum KeysCommand {
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
pub(crate) enum AccountsCommand {
    /// Every account with its key and order counts.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OrdersCommand {
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
pub(crate) enum ReconcileCommand {
    /// Run a job now (all jobs if none is named) and print its findings.
    Run {
        /// open_orders, unknown_outcomes, balances, orphans or gc.
        job: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
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
    /// The rolling-upgrade drill: a fresh database at the previous
    /// release's schema (0014) holding --orders orders; writers keep making
    /// the previous version's writes while this version's migrations run.
    /// Prints each migration's time, the writes' longest stall and every
    /// writer error; exits 1 if a writer saw one (the migration is not
    /// safe beside the previous version).
    UpgradeDrill {
        /// A server to create the drill's database in (a URL that may
        /// create databases); default: database.url, else an embedded
        /// cluster in --work-dir.
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
        /// Orders loaded before the upgrade.
        #[arg(long, default_value_t = 1_000_000)]
        orders: u64,
        /// Concurrent previous-version writers.
        #[arg(long, default_value_t = 4)]
        writers: usize,
        #[arg(long, default_value = ".orderd/upgrade-drill")]
        work_dir: PathBuf,
        /// Keep the drill's database (its name is printed).
        #[arg(long)]
        keep: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

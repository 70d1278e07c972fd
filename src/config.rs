//! Typed settings: `config/default.toml` (compiled in), then `--config FILE`,
//! then `ORDERD__SECTION__KEY` environment variables, validated once at
//! start-up so a bad value stops orderd with a message naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The defaults, compiled in so the binary needs no file to start.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../config/default.toml");

/// Prefix of environment overrides; `__` separates section and key.
pub const ENV_PREFIX: &str = "ORDERD__";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub log: LogSettings,
    pub database: DatabaseSettings,
    pub exchange: ExchangeSettings,
    pub balances: BalancesSettings,
    pub lifecycle: LifecycleSettings,
    pub reconcile: ReconcileSettings,
    pub admin: AdminSettings,
    pub console: ConsoleSettings,
    pub instance: InstanceSettings,
    pub market: MarketSettings,
    pub reference: ReferenceSettings,
}

/// Reference data: the venue's instruments and calendar.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSettings {
    /// Days of the venue's calendar synced ahead (and a week back).
    pub calendar_days: u32,
    /// How often each instance reloads its in-memory copy from the
    /// database (the `reference` job syncs it from the venue on one).
    pub refresh_ms: u64,
}

/// The trading day where the venue's calendar has no word (before the
/// first sync of reference data, or past the calendar's end): where the
/// exchange is and when its regular session opens and closes on weekdays.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketSettings {
    /// An IANA timezone name (America/New_York).
    #[serde(deserialize_with = "timezone")]
    pub timezone: chrono_tz::Tz,
    /// The regular session's open, local time (`HH:MM`).
    #[serde(deserialize_with = "local_time")]
    pub session_open: chrono::NaiveTime,
    /// The regular session's close, local time (`HH:MM`).
    #[serde(deserialize_with = "local_time")]
    pub session_close: chrono::NaiveTime,
    /// Days a GTC order lives before it expires at that day's close.
    pub gtc_horizon_days: u32,
}

impl MarketSettings {
    pub fn session_rules(&self) -> crate::domain::session::SessionRules {
        crate::domain::session::SessionRules {
            timezone: self.timezone,
            open: self.session_open,
            close: self.session_close,
            gtc_horizon_days: self.gtc_horizon_days,
        }
    }
}

fn timezone<'de, D: serde::Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let name = String::deserialize(d)?;
    name.parse()
        .map_err(|_| serde::de::Error::custom(format!("{name:?} is not an IANA timezone name")))
}

fn local_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<chrono::NaiveTime, D::Error> {
    let text = String::deserialize(d)?;
    chrono::NaiveTime::parse_from_str(&text, "%H:%M")
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a local time HH:MM")))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSettings {
    /// This process's stable identity; a restart under the same name fences
    /// its predecessor at once. Unset: `{hostname}:{http.listen}`, or with
    /// port 0 a name unique to the process.
    #[serde(default)]
    pub name: Option<String>,
    pub heartbeat_ms: u64,
    /// A peer whose heartbeat is older than this is checked for life
    /// (its advisory lock): one whose lock is free is dead at once.
    pub reap_after_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSettings {
    pub open_orders: String,
    pub unknown_outcomes: String,
    pub balances: String,
    pub orphans: String,
    pub gc: String,
    pub reference: String,
    pub session_close: String,
    /// How long after a session's close (or open, for OPG orders) an order
    /// that should have ended with it is looked into: the venue's expiry
    /// reports have had this long to arrive.
    pub session_close_grace_ms: u64,
    pub settle_time_ms: u64,
    pub stale_after_ms: u64,
    pub batch: u32,
    pub balances_lookback_secs: u64,
    pub catchup_lookback_secs: u64,
}

impl ReconcileSettings {
    /// The cron expression of each job, keyed by the job's config key.
    pub fn schedules(&self) -> [(&'static str, &str); 7] {
        [
            ("open_orders", &self.open_orders),
            ("unknown_outcomes", &self.unknown_outcomes),
            ("balances", &self.balances),
            ("orphans", &self.orphans),
            ("gc", &self.gc),
            ("reference", &self.reference),
            ("session_close", &self.session_close),
        ]
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub token: String,
}

/// The token is never printed, whoever formats the settings.
impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("token", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub body_limit_bytes: usize,
    /// Requests a minute per account on each instance (Alpaca's 200); 0
    /// turns limiting off.
    pub rate_limit_per_minute: u32,
    /// How long a verified API key is trusted without asking the database
    /// again: a revoked key stops working within this time (at most 1 s).
    pub auth_cache_ms: u64,
    /// Connections held open at most; past it the listener waits.
    pub max_connections: usize,
    /// A request unanswered after this is answered 503 with Retry-After.
    pub request_timeout_ms: u64,
    /// A connection that sends nothing within this is closed.
    pub first_byte_timeout_ms: u64,
    /// `/metrics` reads its database gauges at most this often.
    pub metrics_gauges_ms: u64,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// Largest `/stream` message (and frame) a client may send.
    pub stream_message_max_bytes: usize,
    /// `/stream` sessions on this instance, in all and per account.
    pub stream_sessions_max: usize,
    pub stream_sessions_per_account: usize,
    /// Trade updates rendered for `/stream` at once on this instance (each
    /// an order read, and for a fill a ledger call), in order.
    pub stream_render_concurrency: usize,
}

/// The operator console at `/console` (`crate::console`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// A token that logs in as a read-only `viewer` (the admin token logs
    /// in as `operator`); unset, nobody can log in as a viewer.
    pub viewer_token: Option<String>,
    /// How long a console session lasts after its login.
    pub session_ttl_ms: u64,
    /// Login attempts a minute on each instance, in all; past it the login
    /// page answers 429 (0 turns the limit off).
    pub login_attempts_per_minute: u32,
    /// An order that is not terminal and has had no change for this long
    /// is "stuck" on the blotter.
    pub stuck_after_ms: u64,
}

/// The viewer token is never printed.
impl std::fmt::Debug for ConsoleSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSettings")
            .field(
                "viewer_token",
                &self.viewer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("session_ttl_ms", &self.session_ttl_ms)
            .field("login_attempts_per_minute", &self.login_attempts_per_minute)
            .field("stuck_after_ms", &self.stuck_after_ms)
            .finish()
    }
}

/// The admin token the defaults ship with: accepted on a loopback address
/// only.
pub const DEFAULT_ADMIN_TOKEN: &str = "orderd-admin";

/// Longest `http.auth_cache_ms`: a revoked key stops working on every
/// instance within this.
pub const AUTH_CACHE_MAX_MS: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `None` means: run the embedded cluster in `data_dir`.
    pub url: Option<String>,
    pub data_dir: PathBuf,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    pub lock_timeout_ms: u64,
    pub idle_in_transaction_session_timeout_ms: u64,
    pub rollback_guard: bool,
    /// Extra `name=value` server settings of the embedded cluster (each
    /// passed as `-c name='value'`). Ignored when `url` is set.
    #[serde(default)]
    pub embedded_settings: Vec<String>,
    /// With several hosts in `url`: how often the current one is asked
    /// whether it is still the writable primary (`db::hosts`).
    pub primary_check_ms: u64,
}

impl DatabaseSettings {
    /// `embedded_settings`, checked (the first bad one is the error).
    pub fn server_settings(&self) -> Result<Vec<crate::embedded_postgres::ServerSetting>, String> {
        self.embedded_settings
            .iter()
            .map(|s| crate::embedded_postgres::ServerSetting::parse(s))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSettings {
    pub url: String,
    pub api_key: String,
    pub request_timeout_ms: u64,
    pub placement_window_ms: u64,
    pub clock_skew_ms: u64,
    pub stream_stall_ms: u64,
    pub stream_enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancesSettings {
    pub url: String,
    pub request_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSettings {
    pub submit_deadline_ms: u64,
    pub lease_ms: u64,
    pub instance_dead_after_ms: u64,
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
    pub max_attempts: u32,
    pub max_unexpected_attempts: u32,
    pub late_fill_window_ms: u64,
    pub placement_grace_ms: u64,
    pub market_buy_collar: rust_decimal::Decimal,
    /// Notional orders are taken (`POST /v2/orders` with `notional`). Off
    /// until every instance runs a release that reads them (ARCHITECTURE.md,
    /// rules for migrations, 1): an older one cannot drive their rows.
    pub notional_orders: bool,
    /// Replaces are taken (`PATCH /v2/orders/{id}`). Off until every
    /// instance runs a release that reads their statuses (`pending_replace`,
    /// `replaced`; ARCHITECTURE.md, rules for migrations, 1).
    pub replace_orders: bool,
    pub completer_interval_ms: u64,
    pub completer_batch: u32,
    pub completer_concurrency: usize,
    pub idempotency_ttl_secs: u64,
    pub idempotency_wait_ms: u64,
}

impl LifecycleSettings {
    pub fn submit_deadline(&self) -> Duration {
        Duration::from_millis(self.submit_deadline_ms)
    }
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
    pub fn retry_base(&self) -> Duration {
        Duration::from_millis(self.retry_base_ms)
    }
    pub fn retry_cap(&self) -> Duration {
        Duration::from_millis(self.retry_cap_ms)
    }
    pub fn completer_interval(&self) -> Duration {
        Duration::from_millis(self.completer_interval_ms)
    }
    pub fn idempotency_wait(&self) -> Duration {
        Duration::from_millis(self.idempotency_wait_ms)
    }
    pub fn late_fill_window(&self) -> Duration {
        Duration::from_millis(self.late_fill_window_ms)
    }
}

/// A setting that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration: `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
}

impl Settings {
    /// Loads defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, Env::prefixed(ENV_PREFIX).split("__"))
    }

    /// Loads defaults and `file` only; tests use it to stay independent of
    /// the environment they run in.
    pub fn load_without_env(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::base_figment(file)?)
    }

    fn load_with_env(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        Self::from_figment(Self::base_figment(file)?.merge(env))
    }

    fn base_figment(file: Option<&Path>) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG_TOML));
        if let Some(path) = file {
            // Read it ourselves: figment treats a missing file as empty.
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
                path: path.to_path_buf(),
                source,
            })?;
            figment = figment.merge(Toml::string(&text));
        }
        Ok(figment)
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = figment
            .extract()
            .map_err(|error| ConfigError::Parse(describe_figment_error(error)))?;
        settings.validate()?;
        Ok(settings)
    }
}

impl DatabaseSettings {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

/// figment's own message names the key as a path (`http.listen`); make the
/// first line say so plainly.
fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let kind = e.kind.to_string();
            if key.is_empty() {
                kind
            } else {
                format!("`{key}`: {kind}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[path = "config_validate.rs"]
mod validate;

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

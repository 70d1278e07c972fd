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

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                problem: problem.into(),
            }
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(invalid("http.body_limit_bytes", "must be at least 1024"));
        }
        if self.log.filter.trim().is_empty() {
            return Err(invalid("log.filter", "must not be empty"));
        }
        if let Some(url) = &self.database.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "must start with postgres:// or postgresql://",
            ));
        }
        if self.database.url.is_none() && self.database.data_dir.as_os_str().is_empty() {
            return Err(invalid(
                "database.data_dir",
                "must be set when database.url is not",
            ));
        }
        self.database
            .server_settings()
            .map_err(|problem| invalid("database.embedded_settings", problem))?;
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        for (key, value) in [
            (
                "database.acquire_timeout_ms",
                self.database.acquire_timeout_ms,
            ),
            (
                "database.statement_timeout_ms",
                self.database.statement_timeout_ms,
            ),
            ("database.lock_timeout_ms", self.database.lock_timeout_ms),
            (
                "database.idle_in_transaction_session_timeout_ms",
                self.database.idle_in_transaction_session_timeout_ms,
            ),
            (
                "exchange.request_timeout_ms",
                self.exchange.request_timeout_ms,
            ),
            ("exchange.stream_stall_ms", self.exchange.stream_stall_ms),
            (
                "balances.request_timeout_ms",
                self.balances.request_timeout_ms,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        let l = &self.lifecycle;
        for (key, value) in [
            ("lifecycle.submit_deadline_ms", l.submit_deadline_ms),
            ("lifecycle.lease_ms", l.lease_ms),
            ("lifecycle.instance_dead_after_ms", l.instance_dead_after_ms),
            ("lifecycle.retry_base_ms", l.retry_base_ms),
            ("lifecycle.retry_cap_ms", l.retry_cap_ms),
            ("lifecycle.completer_interval_ms", l.completer_interval_ms),
            ("lifecycle.idempotency_ttl_secs", l.idempotency_ttl_secs),
            ("lifecycle.completer_batch", u64::from(l.completer_batch)),
            (
                "lifecycle.completer_concurrency",
                l.completer_concurrency as u64,
            ),
            (
                "lifecycle.max_unexpected_attempts",
                u64::from(l.max_unexpected_attempts),
            ),
            ("lifecycle.max_attempts", u64::from(l.max_attempts)),
            (
                "market.gtc_horizon_days",
                u64::from(self.market.gtc_horizon_days),
            ),
            (
                "reference.calendar_days",
                u64::from(self.reference.calendar_days),
            ),
            ("reference.refresh_ms", self.reference.refresh_ms),
            ("instance.heartbeat_ms", self.instance.heartbeat_ms),
            ("instance.reap_after_ms", self.instance.reap_after_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        let longest_call = self
            .exchange
            .request_timeout_ms
            .max(self.balances.request_timeout_ms);
        if l.lease_ms <= longest_call {
            return Err(invalid(
                "lifecycle.lease_ms",
                format!(
                    "must exceed the longest request timeout ({longest_call} ms), or a live driver loses its lease mid-call"
                ),
            ));
        }
        if self.exchange.placement_window_ms <= self.exchange.request_timeout_ms
            || self.exchange.placement_window_ms > 60_000
        {
            return Err(invalid(
                "exchange.placement_window_ms",
                "must exceed exchange.request_timeout_ms and be at most 60000 (the venue's limit)",
            ));
        }
        if l.instance_dead_after_ms < 2 * self.database.acquire_timeout_ms {
            return Err(invalid(
                "lifecycle.instance_dead_after_ms",
                format!(
                    "must be at least twice database.acquire_timeout_ms ({} ms): a live instance waiting for a pooled connection must not look dead",
                    self.database.acquire_timeout_ms
                ),
            ));
        }
        if self.instance.reap_after_ms < 2 * self.instance.heartbeat_ms {
            return Err(invalid(
                "instance.reap_after_ms",
                "must be at least twice instance.heartbeat_ms",
            ));
        }
        if let Some(name) = &self.instance.name
            && (name.trim().is_empty() || name.len() > 200)
        {
            return Err(invalid("instance.name", "must be 1 to 200 characters"));
        }
        if l.retry_cap_ms < l.retry_base_ms {
            return Err(invalid(
                "lifecycle.retry_cap_ms",
                "must be at least lifecycle.retry_base_ms",
            ));
        }
        if l.market_buy_collar < rust_decimal::Decimal::ZERO
            || l.market_buy_collar > rust_decimal::Decimal::ONE
        {
            return Err(invalid(
                "lifecycle.market_buy_collar",
                "must be between 0 and 1",
            ));
        }
        for (job, expression) in self.reconcile.schedules() {
            if let Err(error) = <cron::Schedule as std::str::FromStr>::from_str(expression) {
                return Err(ConfigError::Invalid {
                    key: match job {
                        "open_orders" => "reconcile.open_orders",
                        "unknown_outcomes" => "reconcile.unknown_outcomes",
                        "balances" => "reconcile.balances",
                        "orphans" => "reconcile.orphans",
                        _ => "reconcile.gc",
                    },
                    problem: format!(
                        "is not a cron expression with seconds ({expression:?}): {error}"
                    ),
                });
            }
        }
        if self.reconcile.batch == 0 {
            return Err(invalid("reconcile.batch", "must be at least 1"));
        }
        if self.admin.token.len() < 8 {
            return Err(invalid("admin.token", "must be at least 8 characters"));
        }
        if self.admin.token == DEFAULT_ADMIN_TOKEN && !self.http.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "admin.token",
                problem: format!(
                    "is the default ({DEFAULT_ADMIN_TOKEN:?}) while http.listen ({}) is not a loopback address: set a secret token of your own (ORDERD__ADMIN__TOKEN)",
                    self.http.listen
                ),
            });
        }
        if self.http.max_connections == 0 {
            return Err(invalid("http.max_connections", "must be at least 1"));
        }
        if self.http.request_timeout_ms < 2 * self.lifecycle.submit_deadline_ms {
            return Err(invalid(
                "http.request_timeout_ms",
                "must be at least twice lifecycle.submit_deadline_ms (a submit answers by its deadline)",
            ));
        }
        if self.http.stream_message_max_bytes < 1024 {
            return Err(invalid(
                "http.stream_message_max_bytes",
                "must be at least 1024 (an authentication message must fit)",
            ));
        }
        if self.http.stream_sessions_per_account == 0
            || self.http.stream_sessions_per_account > self.http.stream_sessions_max
        {
            return Err(invalid(
                "http.stream_sessions_per_account",
                "must be 1 to http.stream_sessions_max",
            ));
        }
        if self.http.auth_cache_ms > AUTH_CACHE_MAX_MS {
            return Err(invalid(
                "http.auth_cache_ms",
                "must be at most 1000: a revoked key must stop working within a second",
            ));
        }
        validate_http_url("exchange.url", &self.exchange.url)?;
        validate_http_url("balances.url", &self.balances.url)?;
        if self.exchange.api_key.trim().is_empty() {
            return Err(invalid("exchange.api_key", "must not be empty"));
        }
        Ok(())
    }
}

impl DatabaseSettings {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

fn validate_http_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(ConfigError::Invalid {
            key,
            problem: format!("must be an http:// or https:// URL with a host, got {url:?}"),
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load_from(toml: &str) -> Result<Settings, ConfigError> {
        let dir = std::env::temp_dir().join(format!("orderd-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("c.toml");
        std::fs::write(&path, toml).expect("write config");
        let result = Settings::load_without_env(Some(&path));
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    #[test]
    fn defaults_load_and_agree_with_the_simulators() {
        let settings = Settings::load_without_env(None).expect("defaults are valid");
        assert_eq!(settings.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.exchange.url, "http://127.0.0.1:9100");
        assert_eq!(settings.balances.url, "http://127.0.0.1:9200");
        assert!(settings.database.url.is_none(), "embedded by default");
    }

    #[test]
    fn the_default_admin_token_is_refused_off_loopback() {
        let public = load_from("[http]\nlisten = \"0.0.0.0:8080\"\n");
        match public {
            Err(ConfigError::Invalid { key, problem }) => {
                assert_eq!(key, "admin.token");
                assert!(problem.contains("0.0.0.0:8080"), "{problem}");
            }
            other => panic!("accepted the default token on 0.0.0.0: {other:?}"),
        }
        assert!(load_from("[http]\nlisten = \"[::1]:8080\"\n").is_ok());
        assert!(
            load_from(
                "[http]\nlisten = \"0.0.0.0:8080\"\n[admin]\ntoken = \"a-secret-of-our-own\"\n"
            )
            .is_ok()
        );
        assert!(load_from("[http]\nauth_cache_ms = 1001\n").is_err());
        let settings = load_from("[admin]\ntoken = \"a-secret-of-our-own\"\n").unwrap();
        assert!(!format!("{settings:?}").contains("a-secret-of-our-own"));
    }

    #[test]
    fn a_file_overrides_defaults() {
        let settings = load_from("[http]\nlisten = \"127.0.0.1:0\"\n").expect("valid");
        assert_eq!(settings.http.listen.port(), 0);
        assert_eq!(settings.http.body_limit_bytes, 65536, "untouched default");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn environment_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDERD__HTTP__LISTEN", "127.0.0.1:9999");
            jail.set_env("ORDERD__DATABASE__URL", "postgres://u@h/db");
            let settings =
                Settings::load_with_env(None, Env::prefixed(ENV_PREFIX).split("__")).unwrap();
            assert_eq!(settings.http.listen.port(), 9999);
            assert_eq!(settings.database.url.as_deref(), Some("postgres://u@h/db"));
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let error = load_from("[http]\nlisten = \"not an address\"\n").unwrap_err();
        assert!(error.to_string().contains("`http.listen`"), "{error}");

        let error = load_from("[database]\nmax_connections = 0\n").unwrap_err();
        assert!(
            error.to_string().contains("`database.max_connections`"),
            "{error}"
        );

        let error = load_from("[reconcile]\ngc = \"every minute\"\n").unwrap_err();
        assert!(error.to_string().contains("`reconcile.gc`"), "{error}");

        let error = load_from("[exchange]\nurl = \"ftp://x\"\n").unwrap_err();
        assert!(error.to_string().contains("`exchange.url`"), "{error}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let error = load_from("[http]\nlisten_port = 1\n").unwrap_err();
        assert!(error.to_string().contains("listen_port"), "{error}");
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let error =
            Settings::load_without_env(Some(Path::new("/nonexistent/orderd.toml"))).unwrap_err();
        assert!(matches!(error, ConfigError::File { .. }), "{error}");
    }
}

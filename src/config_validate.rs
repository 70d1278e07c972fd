//! What the settings' types alone cannot say: the rules between keys,
//! checked once at load (a bad value stops start-up naming its key).

use super::{AUTH_CACHE_MAX_MS, ConfigError, DEFAULT_ADMIN_TOKEN, Settings};

impl Settings {
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
        if let Some(url) = &self.database.url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid(
                    "database.url",
                    "must start with postgres:// or postgresql://",
                ));
            }
            crate::db::hosts::candidates(url)
                .map_err(|problem| invalid("database.url", problem))?;
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
            ("database.primary_check_ms", self.database.primary_check_ms),
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
        if self.http.stream_render_concurrency == 0 {
            return Err(invalid(
                "http.stream_render_concurrency",
                "must be at least 1",
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

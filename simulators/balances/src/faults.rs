//! Fault injection: the profile (`/admin/faults`), the seeded dice, and the counters
//! behind `/admin/stats`. Faults apply to `/v1` routes only, never to `/admin`.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Upper bound for every configurable delay, so a typo cannot hang a client for hours.
pub const MAX_DELAY_MS: u64 = 60_000;
/// Upper bound for `retry_after_s`.
pub const MAX_RETRY_AFTER_S: u64 = 3_600;

/// What a lost response looks like to the client. The change has committed in all cases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostMode {
    /// Pick one of the three below at random for each lost response.
    #[default]
    Mixed,
    /// An immediate 500 `internal_error`.
    #[serde(rename = "error_500")]
    Error500,
    /// A hang of `response_lost_delay_ms`, then 504 `gateway_timeout`.
    #[serde(rename = "timeout_504")]
    Timeout504,
    /// A hang of `response_lost_delay_ms`, then the connection is dropped mid-response.
    ConnectionDrop,
}

/// The fault profile. `PUT /admin/faults` replaces it whole; missing fields take the
/// defaults below (probabilities 0, i.e. off).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Probability that a request is processed (and committed) but its response is lost.
    pub response_lost: f64,
    /// How a lost response shows; default `mixed`.
    pub response_lost_mode: LostMode,
    /// Hang before the 504 / dropped connection; default 200 ms.
    pub response_lost_delay_ms: u64,
    /// Probability of a 503 or 500 (half each) before anything is committed.
    pub error_5xx: f64,
    /// Probability of a 429 with `Retry-After` before anything is committed.
    pub http_429: f64,
    /// Value of the `Retry-After` header, in seconds; default 1.
    pub retry_after_s: u64,
    /// Probability that a request is delayed by a uniform draw in
    /// [`latency_ms_min`, `latency_ms_max`]. For mutations the delay sits between
    /// reserving the idempotency key and committing, so a concurrent retry sees 409.
    pub latency: f64,
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            response_lost: 0.0,
            response_lost_mode: LostMode::Mixed,
            response_lost_delay_ms: 200,
            error_5xx: 0.0,
            http_429: 0.0,
            retry_after_s: 1,
            latency: 0.0,
            latency_ms_min: 0,
            latency_ms_max: 0,
        }
    }
}

impl FaultConfig {
    /// Returns the first problem found, as (field, reason).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (field, p) in [
            ("response_lost", self.response_lost),
            ("error_5xx", self.error_5xx),
            ("http_429", self.http_429),
            ("latency", self.latency),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err((field, "must be a probability between 0 and 1".to_owned()));
            }
        }
        for (field, ms) in [
            ("response_lost_delay_ms", self.response_lost_delay_ms),
            ("latency_ms_min", self.latency_ms_min),
            ("latency_ms_max", self.latency_ms_max),
        ] {
            if ms > MAX_DELAY_MS {
                return Err((field, format!("must be at most {MAX_DELAY_MS}")));
            }
        }
        if self.latency_ms_min > self.latency_ms_max {
            return Err((
                "latency_ms_min",
                "must not exceed latency_ms_max".to_owned(),
            ));
        }
        if self.retry_after_s > MAX_RETRY_AFTER_S {
            return Err((
                "retry_after_s",
                format!("must be at most {MAX_RETRY_AFTER_S}"),
            ));
        }
        Ok(())
    }
}

/// A fault that answers before anything is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarlyFault {
    TooManyRequests { retry_after_s: u64 },
    ServiceUnavailable,
    InternalError,
}

/// A lost response, decided up front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostResponse {
    Error500,
    Timeout504 { delay: Duration },
    ConnectionDrop { delay: Duration },
}

/// What the dice decided for one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    pub early: Option<EarlyFault>,
    pub latency: Option<Duration>,
    pub lost: Option<LostResponse>,
}

/// Profile, dice and counters; behind its own mutex, never held with the ledger's.
pub struct FaultState {
    pub config: FaultConfig,
    rng: ChaCha8Rng,
    requests: BTreeMap<&'static str, u64>,
    injected: BTreeMap<&'static str, u64>,
}

impl FaultState {
    pub fn new(config: FaultConfig, seed: u64) -> Self {
        FaultState {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            requests: BTreeMap::new(),
            injected: BTreeMap::new(),
        }
    }

    /// Counts a request to an endpoint that faults do not apply to.
    pub fn count(&mut self, endpoint: &'static str) {
        *self.requests.entry(endpoint).or_default() += 1;
    }

    /// Counts a `/v1` request and rolls its faults.
    pub fn plan(&mut self, endpoint: &'static str) -> FaultPlan {
        self.count(endpoint);
        let c = &self.config;
        let mut plan = FaultPlan::default();
        if c.http_429 > 0.0 && self.rng.random_bool(c.http_429) {
            plan.early = Some(EarlyFault::TooManyRequests {
                retry_after_s: c.retry_after_s,
            });
            *self.injected.entry("http_429").or_default() += 1;
        } else if c.error_5xx > 0.0 && self.rng.random_bool(c.error_5xx) {
            plan.early = Some(if self.rng.random_bool(0.5) {
                EarlyFault::ServiceUnavailable
            } else {
                EarlyFault::InternalError
            });
            *self.injected.entry("error_5xx").or_default() += 1;
        }
        if c.latency > 0.0 && self.rng.random_bool(c.latency) {
            let ms = self.rng.random_range(c.latency_ms_min..=c.latency_ms_max);
            plan.latency = Some(Duration::from_millis(ms));
            *self.injected.entry("latency").or_default() += 1;
        }
        if plan.early.is_none() && c.response_lost > 0.0 && self.rng.random_bool(c.response_lost) {
            let delay = Duration::from_millis(c.response_lost_delay_ms);
            let mode = match c.response_lost_mode {
                LostMode::Mixed => match self.rng.random_range(0..3u8) {
                    0 => LostMode::Error500,
                    1 => LostMode::Timeout504,
                    _ => LostMode::ConnectionDrop,
                },
                mode => mode,
            };
            let (lost, name) = match mode {
                LostMode::Timeout504 => (
                    LostResponse::Timeout504 { delay },
                    "response_lost_timeout_504",
                ),
                LostMode::ConnectionDrop => (
                    LostResponse::ConnectionDrop { delay },
                    "response_lost_connection_drop",
                ),
                LostMode::Error500 | LostMode::Mixed => {
                    (LostResponse::Error500, "response_lost_error_500")
                }
            };
            plan.lost = Some(lost);
            *self.injected.entry("response_lost").or_default() += 1;
            *self.injected.entry(name).or_default() += 1;
        }
        plan
    }

    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.requests
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect()
    }

    pub fn injected(&self) -> BTreeMap<String, u64> {
        self.injected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_deterministic_by_seed() {
        let mut state = FaultState::new(FaultConfig::default(), 1);
        assert_eq!(state.plan("x"), FaultPlan::default());
        let config = FaultConfig {
            error_5xx: 0.3,
            latency: 0.5,
            latency_ms_max: 10,
            response_lost: 0.2,
            ..FaultConfig::default()
        };
        let mut a = FaultState::new(config.clone(), 42);
        let mut b = FaultState::new(config, 42);
        for _ in 0..100 {
            assert_eq!(a.plan("x"), b.plan("x"));
        }
    }

    #[test]
    fn validation_names_the_field() {
        let bad = FaultConfig {
            latency: 1.5,
            ..FaultConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "latency");
        let bad = FaultConfig {
            latency_ms_min: 5,
            latency_ms_max: 1,
            ..FaultConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "latency_ms_min");
    }
}

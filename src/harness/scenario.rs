//! What a demo or chaos run does: traders, load, fault profiles and the
//! moments orderd is killed, drawn from a seed.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// One kill of orderd.
#[derive(Debug, Clone)]
pub struct Kill {
    /// When, from the session's start.
    pub at: Duration,
    /// How long orderd stays down.
    pub down_for: Duration,
    /// A failpoint armed on the restart (the process dies again at it and
    /// is restarted once more without it).
    pub failpoint_on_restart: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub traders: usize,
    pub duration: Duration,
    pub rate_per_sec: u32,
    pub exchange_faults: Value,
    pub balances_faults: Value,
    pub kills: Vec<Kill>,
    /// Print a progress line every second.
    pub progress: bool,
    /// exchange-sim's configuration (its defaults: one long open session).
    pub exchange_config: Option<String>,
    /// A soak: sample orderd's memory, descriptors, tables and queues this
    /// often.
    pub sample_every: Option<Duration>,
    /// Run on a primary with a synchronous standby and fail over this long
    /// after the start (`harness::failover`).
    pub failover_at: Option<Duration>,
}

/// The demo's venue: an accelerated day of 11 s (pre-open 1 s, opening
/// auction 1 s, 6 s of trading, closing auction 1 s, closed 2 s), so a
/// run of a few seconds sees the market close (day orders expire, GTC
/// orders carry on), orders wait for the open, and a halt or two.
pub const DEMO_EXCHANGE_CONFIG: &str = r#"session_secs = 6

[clock]
mode = "accelerated"
pre_open_secs = 1
opening_auction_secs = 1
closing_auction_secs = 1
closed_secs = 2
start_phase = "open"
"#;

impl Scenario {
    /// The demo's scenario: every fault a little, one SIGKILL mid-session.
    pub fn demo(seed: u64, duration: Duration) -> Self {
        Self {
            seed,
            traders: 4,
            duration,
            rate_per_sec: 40,
            exchange_faults: json!({
                "response_lost": 0.03, "response_lost_delay_ms": 100, "reject": 0.02,
                "reject_response_lost": 0.01, "rate_limited": 0.02, "retry_after_secs": 0,
                "unavailable": 0.02, "stale_read": 0.1, "stale_read_window_ms": 300,
                "duplicate_report": 0.05, "out_of_order_report": 0.05, "drop_report": 0.03,
                "disconnect": 0.003, "fill_after_cancel": 0.2, "fill_races_cancel": 0.2,
                "latency": 0.1, "latency_min_ms": 5, "latency_max_ms": 50,
                "halt": 0.004, "halt_ms": 1500
            }),
            balances_faults: json!({
                "response_lost": 0.03, "response_lost_delay_ms": 100, "error_5xx": 0.02,
                "http_429": 0.02, "retry_after_s": 0, "latency": 0.1, "latency_ms_min": 1, "latency_ms_max": 20
            }),
            kills: vec![Kill {
                at: duration.mul_f64(0.4),
                down_for: Duration::from_secs(1),
                failpoint_on_restart: None,
            }],
            progress: true,
            exchange_config: Some(DEMO_EXCHANGE_CONFIG.to_string()),
            sample_every: None,
            failover_at: None,
        }
    }

    /// A soak: the demo's light faults, moderate load, no kills (a restart
    /// would reset what is measured), the accelerated day so sessions keep
    /// opening and closing; samples at [`super::soak::interval_for`].
    pub fn soak(seed: u64, duration: Duration) -> Self {
        let demo = Self::demo(seed, duration);
        Self {
            traders: 3,
            rate_per_sec: 20,
            kills: Vec::new(),
            progress: false,
            sample_every: Some(super::soak::interval_for(duration)),
            ..demo
        }
    }

    /// `orderd chaos --failover`: [`Scenario::chaos`]'s faults, but instead
    /// of killing orderd, the database primary dies at 40% of the run and
    /// the standby is promoted; orderd is never restarted.
    pub fn failover(seed: u64, duration: Duration) -> Self {
        Self {
            kills: Vec::new(),
            failover_at: Some(duration.mul_f64(0.4)),
            ..Self::chaos(seed, duration)
        }
    }

    /// A chaos scenario drawn from `seed`: random fault probabilities, one
    /// to three kills at random moments, a random failpoint on a restart.
    pub fn chaos(seed: u64, duration: Duration) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = |max: f64| (rng.random_range(0.0..max) * 1000.0).round() / 1000.0;
        let exchange_faults = json!({
            "response_lost": p(0.1), "response_lost_delay_ms": 100, "reject": p(0.05),
            "reject_response_lost": p(0.05), "rate_limited": p(0.05), "retry_after_secs": 0,
            "unavailable": p(0.05), "stale_read": p(0.3), "stale_read_window_ms": 300,
            "duplicate_report": p(0.1), "out_of_order_report": p(0.1), "drop_report": p(0.1),
            "disconnect": p(0.01), "fill_after_cancel": p(0.3), "fill_races_cancel": p(0.3),
            "latency": p(0.2), "latency_min_ms": 1, "latency_max_ms": 50
        });
        let balances_faults = json!({
            "response_lost": p(0.1), "response_lost_delay_ms": 100, "error_5xx": p(0.05),
            "http_429": p(0.05), "retry_after_s": 0, "latency": p(0.2), "latency_ms_min": 1, "latency_ms_max": 20
        });
        let failpoints = [
            crate::failpoints::AFTER_ACCEPT_COMMIT,
            crate::failpoints::AFTER_HOLD_CREATED,
            crate::failpoints::AFTER_PLACE_SENT,
            crate::failpoints::AFTER_RELEASE_SENT,
        ];
        let kills = (0..rng.random_range(1..=3))
            .map(|_| Kill {
                at: duration.mul_f64(rng.random_range(0.1..0.9)),
                down_for: Duration::from_millis(rng.random_range(0..1500)),
                failpoint_on_restart: rng
                    .random_bool(0.5)
                    .then(|| failpoints[rng.random_range(0..failpoints.len())]),
            })
            .collect::<Vec<_>>();
        let mut kills = kills;
        kills.sort_by_key(|k| k.at);
        Self {
            seed,
            traders: 3,
            duration,
            rate_per_sec: 30,
            exchange_faults,
            balances_faults,
            kills,
            progress: false,
            exchange_config: None,
            sample_every: None,
            failover_at: None,
        }
    }
}

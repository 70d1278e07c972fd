//! Per-account request rate limiting, as Alpaca does it (200 requests a
//! minute by default): a token bucket per account, refilled continuously,
//! in this instance's memory. Each instance limits on its own, so N
//! instances behind a balancer let an account through at up to N times
//! the rate; the figure is per instance by design (no shared state, no
//! query on the hot path).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Most accounts tracked; past it, the buckets are forgotten (every
/// account starts full again), so memory stays bounded.
pub const RATE_BUCKETS_MAX: usize = 100_000;

/// What the limiter said of one request: sent as `X-RateLimit-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// Requests a minute.
    pub limit: u32,
    /// Whole requests left now.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset_in: Duration,
    /// `Some(wait)`: refused; a request is allowed again after `wait`.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of one instance.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

impl RateLimiter {
    /// `per_minute` 0 turns limiting off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.per_minute > 0
    }

    /// Takes one request of `account` at `now` (`None` when limiting is
    /// off).
    pub fn take(&self, account: Uuid, now: Instant) -> Option<RateState> {
        if !self.enabled() {
            return None;
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = match self.buckets.lock() {
            Ok(buckets) => buckets,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= RATE_BUCKETS_MAX && !buckets.contains_key(&account) {
            buckets.clear();
        }
        let bucket = buckets.entry(account).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.at = now;
        let retry_after = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        };
        Some(RateState {
            limit: self.per_minute,
            remaining: bucket.tokens.floor() as u32,
            reset_in: Duration::from_secs_f64((capacity - bucket.tokens) / per_second),
            retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_limit_passes_then_one_a_refill() {
        let limiter = RateLimiter::new(60);
        let account = Uuid::nil();
        let t0 = Instant::now();
        for i in 0..60 {
            let state = limiter.take(account, t0).unwrap();
            assert_eq!(state.retry_after, None, "request {i}");
            assert_eq!(state.remaining, 59 - i);
        }
        let refused = limiter.take(account, t0).unwrap();
        let wait = refused.retry_after.expect("refused");
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        assert_eq!(refused.remaining, 0);
        // One second later, one request's worth is back; not two.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limiter.take(account, t1).unwrap().retry_after, None);
        assert!(limiter.take(account, t1).unwrap().retry_after.is_some());
        // Other accounts have their own bucket.
        assert_eq!(limiter.take(Uuid::max(), t1).unwrap().retry_after, None);
        // A minute of quiet fills it again.
        let full = limiter.take(account, t1 + Duration::from_secs(60)).unwrap();
        assert_eq!(full.remaining, 59);
    }

    #[test]
    fn zero_turns_it_off() {
        assert_eq!(RateLimiter::new(0).take(Uuid::nil(), Instant::now()), None);
    }
}

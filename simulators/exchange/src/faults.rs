//! Fault profile (one probability per fault, replaceable at runtime) and the
//! counters of injected faults. Faults apply to `/v1` routes and the
//! stream only — and `halt` to the market itself — never to `/admin`.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Probabilities are in `[0, 1]`; a missing field is 0 (off). The three
/// non-probability fields have short non-zero defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultProfile {
    /// POST /v1/orders: the order is created, the response is lost (half the
    /// time a hang of `response_lost_delay_ms` then 504, half the time 500).
    pub response_lost: f64,
    /// POST /v1/orders: the venue rejects; the order is recorded as rejected
    /// (consuming the client_order_id) and the answer is 422.
    pub reject: f64,
    /// POST /v1/orders: the venue rejects and the response is lost (same
    /// symptom as `response_lost`).
    pub reject_response_lost: f64,
    /// Any /v1 REST request: 429 with `Retry-After`; nothing happens.
    pub rate_limited: f64,
    /// Any /v1 REST request: 503; nothing happens.
    pub unavailable: f64,
    /// GET by id / by client_order_id: 404 for an order created within the
    /// last `stale_read_window_ms`.
    pub stale_read: f64,
    /// Stream: a report is sent again later with a new seq and the same exec_id.
    pub duplicate_report: f64,
    /// Stream: a report is held back and delivered after the next one (seqs
    /// stay ascending in delivery order).
    pub out_of_order_report: f64,
    /// Stream: a report's seq is consumed but the message is not sent.
    pub drop_report: f64,
    /// Stream: the server closes the connection instead of sending a report.
    pub disconnect: f64,
    /// Cancel: `canceled` is reported, then one more fill for part of the
    /// remaining qty arrives (the order stays canceled, fill included).
    pub fill_after_cancel: f64,
    /// Cancel of an order with fills pending: the remaining qty fills first,
    /// the order ends filled and the cancel is answered `cancel_rejected`.
    pub fill_races_cancel: f64,
    /// Replace of an order with fills pending: the remaining qty fills
    /// first, the order ends filled and the replace is refused (422).
    pub fill_races_replace: f64,
    /// POST /v1/orders: the request is held in the network for
    /// `late_arrival_ms` and only then reaches the venue, which processes
    /// it then (creating the order, unless it carries a `recv_window_ms`
    /// that has passed); the client gets a 504 after
    /// `response_lost_delay_ms`, as with a lost response.
    pub late_arrival: f64,
    pub late_arrival_ms: u64,
    /// Cancel: it takes effect (and is reported) this much later than
    /// usual — a venue that acknowledges cancels late. Default 0.
    pub cancel_delay_ms: u64,
    /// Market: rolled per active symbol at each price-walk step during
    /// continuous trading; the symbol halts for `halt_ms`, then reopens
    /// with a jump (see `halt_reopen_bps`).
    pub halt: f64,
    /// How long a `halt` fault lasts. Default 2000.
    pub halt_ms: u64,
    /// Any /v1 REST request: extra latency, uniform in
    /// `[latency_min_ms, latency_max_ms]`.
    pub latency: f64,
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    /// Hang before the 504 of a lost response. Default 200.
    pub response_lost_delay_ms: u64,
    /// How long after creation a stale read may still miss the order. Default 500.
    pub stale_read_window_ms: u64,
    /// `Retry-After` header value of a 429, in seconds. Default 1.
    pub retry_after_secs: u64,
}

impl Default for FaultProfile {
    fn default() -> Self {
        FaultProfile {
            response_lost: 0.0,
            reject: 0.0,
            reject_response_lost: 0.0,
            rate_limited: 0.0,
            unavailable: 0.0,
            stale_read: 0.0,
            duplicate_report: 0.0,
            out_of_order_report: 0.0,
            drop_report: 0.0,
            disconnect: 0.0,
            fill_after_cancel: 0.0,
            fill_races_cancel: 0.0,
            fill_races_replace: 0.0,
            late_arrival: 0.0,
            late_arrival_ms: 3000,
            cancel_delay_ms: 0,
            halt: 0.0,
            halt_ms: 2000,
            latency: 0.0,
            latency_min_ms: 0,
            latency_max_ms: 0,
            response_lost_delay_ms: 200,
            stale_read_window_ms: 500,
            retry_after_secs: 1,
        }
    }
}

impl FaultProfile {
    /// Every probability in `[0, 1]` and the latency range ordered.
    pub fn validate(&self) -> Result<(), String> {
        let probabilities = [
            ("response_lost", self.response_lost),
            ("reject", self.reject),
            ("reject_response_lost", self.reject_response_lost),
            ("rate_limited", self.rate_limited),
            ("unavailable", self.unavailable),
            ("stale_read", self.stale_read),
            ("duplicate_report", self.duplicate_report),
            ("out_of_order_report", self.out_of_order_report),
            ("drop_report", self.drop_report),
            ("disconnect", self.disconnect),
            ("fill_after_cancel", self.fill_after_cancel),
            ("fill_races_cancel", self.fill_races_cancel),
            ("fill_races_replace", self.fill_races_replace),
            ("late_arrival", self.late_arrival),
            ("halt", self.halt),
            ("latency", self.latency),
        ];
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be a probability in [0, 1]"));
            }
        }
        if self.latency_min_ms > self.latency_max_ms {
            return Err("latency_min_ms must be <= latency_max_ms".to_owned());
        }
        Ok(())
    }
}

/// True with probability `p` (never draws for p == 0, so switching a fault
/// off does not shift the random stream of the others... much).
pub fn roll(rng: &mut impl Rng, p: f64) -> bool {
    p > 0.0 && (p >= 1.0 || rng.random::<f64>() < p)
}

/// Fault kinds, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    ResponseLostTimeout,
    ResponseLost500,
    Reject,
    RejectResponseLost,
    RateLimited,
    Unavailable,
    StaleRead,
    DuplicateReport,
    OutOfOrderReport,
    DropReport,
    Disconnect,
    FillAfterCancel,
    FillRacesCancel,
    Latency,
    LateArrival,
    FillRacesReplace,
}

const FAULT_KINDS: usize = 16;

/// How many times each fault was injected since start (not cleared by reset).
/// `halt` is rolled inside the market, which counts it itself.
#[derive(Debug, Default)]
pub struct FaultCounters {
    counts: [AtomicU64; FAULT_KINDS],
}

impl FaultCounters {
    pub fn record(&self, fault: Fault) {
        self.counts[fault as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> crate::wire::FaultStats {
        let get = |fault: Fault| self.counts[fault as usize].load(Ordering::Relaxed);
        crate::wire::FaultStats {
            response_lost_timeout: get(Fault::ResponseLostTimeout),
            response_lost_500: get(Fault::ResponseLost500),
            reject: get(Fault::Reject),
            reject_response_lost: get(Fault::RejectResponseLost),
            rate_limited: get(Fault::RateLimited),
            unavailable: get(Fault::Unavailable),
            stale_read: get(Fault::StaleRead),
            duplicate_report: get(Fault::DuplicateReport),
            out_of_order_report: get(Fault::OutOfOrderReport),
            drop_report: get(Fault::DropReport),
            disconnect: get(Fault::Disconnect),
            fill_after_cancel: get(Fault::FillAfterCancel),
            fill_races_cancel: get(Fault::FillRacesCancel),
            latency: get(Fault::Latency),
            late_arrival: get(Fault::LateArrival),
            fill_races_replace: get(Fault::FillRacesReplace),
            halt: 0,
        }
    }
}

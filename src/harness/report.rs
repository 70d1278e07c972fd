//! What a run showed, and how the harness's commands print it: the demo's
//! and chaos' report, the chaos table, the benchmark's figures and the
//! invariant check.

use std::collections::BTreeMap;

use serde_json::Value;

/// What one scenario showed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub submitted: u64,
    pub acknowledged: u64,
    pub refused_insufficient: u64,
    pub retries: u64,
    pub unanswered_attempts: u64,
    pub cancels: u64,
    /// Replaces sent, and those answered with a replacement.
    pub replaces: u64,
    pub replaced: u64,
    pub kills: u64,
    pub orders_by_status: BTreeMap<String, u64>,
    pub fills: usize,
    pub exchange_faults: BTreeMap<String, u64>,
    pub balances_faults: BTreeMap<String, u64>,
    pub findings_by_kind: BTreeMap<String, u64>,
    pub repairs: u64,
    /// The venue's sessions that closed during the run, and its halts.
    pub sessions_closed: u64,
    pub halts: u64,
    /// name → violations (empty = holds); `None` for not checked.
    pub invariants: BTreeMap<String, Option<Vec<String>>>,
    /// A soak's samples, in order.
    pub samples: Vec<super::soak::Sample>,
    /// A failover run's figures.
    pub failover: Option<super::failover::FailoverReport>,
}

impl RunReport {
    pub fn all_hold(&self) -> bool {
        self.invariants
            .values()
            .all(|v| v.as_ref().is_none_or(|v| v.is_empty()))
    }

    pub fn violations(&self) -> usize {
        self.invariants.values().flatten().map(Vec::len).sum()
    }

    pub fn print(&self) {
        println!();
        println!("== orders");
        println!(
            "submitted {}  acknowledged {}  refused (insufficient funds) {}  unanswered attempts {} (retried with the same key)  cancels {}  replaces {} ({} replaced)  orderd kills {}",
            self.submitted,
            self.acknowledged,
            self.refused_insufficient,
            self.unanswered_attempts,
            self.cancels,
            self.replaces,
            self.replaced,
            self.kills
        );
        println!(
            "final status: {}",
            self.orders_by_status
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("fills: {}", self.fills);
        if let Some(f) = &self.failover {
            println!("== database failover");
            println!(
                "primary killed at {:.1}s ({} processes), standby taking writes {:.1}s later, first order acknowledged after the kill at +{}, orderd restarts {}",
                f.killed_at.as_secs_f64(),
                f.processes_killed,
                f.promoted_after.as_secs_f64(),
                f.write_gap
                    .map(|g| format!("{:.1}s", g.as_secs_f64()))
                    .unwrap_or_else(|| "never".into()),
                f.orderd_restarts
            );
        }
        if self.sessions_closed > 0 || self.halts > 0 {
            println!("== the trading day");
            println!(
                "sessions closed {}  (day orders expired at the close: {})  trading halts {}",
                self.sessions_closed,
                self.orders_by_status.get("expired").copied().unwrap_or(0),
                self.halts
            );
        }
        println!("== faults injected");
        let show = |m: &BTreeMap<String, u64>| {
            m.iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("exchange: {}", show(&self.exchange_faults));
        println!("balances: {}", show(&self.balances_faults));
        println!("== reconciliation");
        println!(
            "findings: {} ; repairs made: {}",
            if self.findings_by_kind.is_empty() {
                "none".to_string()
            } else {
                show(&self.findings_by_kind)
            },
            self.repairs
        );
        println!("== invariants");
        for (name, result) in &self.invariants {
            match result {
                None => println!("n/a  {name}"),
                Some(v) if v.is_empty() => println!("ok   {name}"),
                Some(v) => {
                    println!("FAIL {name}");
                    for line in v.iter().take(10) {
                        println!("       {line}");
                    }
                }
            }
        }
    }
}

pub(crate) fn counters(value: &Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

impl super::bench::BenchReport {
    /// The figures, one per line, then where the time goes.
    pub fn print(&self) {
        use super::bench::CLIENTS;
        println!();
        println!(
            "settled orders/s        {:.0}  ({} orders in {:.1} s, {} clients)",
            self.settled_orders_per_sec, self.throughput_orders, self.throughput_secs, CLIENTS
        );
        println!(
            "POST latency @ {:.0}/s    p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms",
            self.offered_rate_per_sec, self.post_p50_ms, self.post_p95_ms, self.post_p99_ms
        );
        println!(
            "submit-to-settled       p50 {:.0} ms  p99 {:.0} ms",
            self.settled_p50_ms, self.settled_p99_ms
        );
        println!(
            "recovery (1,000 in flight, SIGKILL)  {:.1} s",
            self.recovery_secs
        );
        println!("Postgres commits/order  {:.1}", self.commits_per_order);
        println!(
            "pgbench ceiling         {:.0} commits/s  (orderd settles {:.1}% of it in orders/s; {:.1}% in commits/s)",
            self.pgbench_tps,
            100.0 * self.settled_orders_per_sec / self.pgbench_tps.max(1.0),
            100.0 * self.settled_orders_per_sec * self.commits_per_order
                / self.pgbench_tps.max(1.0)
        );
        println!("mean time at the latency phase's load (orderd's /metrics):");
        for (series, ms) in &self.latency_breakdown_ms {
            println!("  {ms:>7.2} ms  {series}");
        }
        if !self.profile.is_empty() {
            println!();
            println!("statements of the throughput phase, by total server time:");
            println!("calls/order   total ms   mean ms  rows/call  query");
            for s in &self.profile {
                println!(
                    "{:>11.2} {:>10.0} {:>9.3} {:>10.1}  {}",
                    s.calls_per_order, s.total_ms, s.mean_ms, s.rows_per_call, s.query
                );
            }
        }
    }
}

impl crate::check::Report {
    /// One line per invariant, with up to 20 violations each.
    pub fn print(&self) {
        println!("{} orders, {} fills", self.orders, self.fills);
        for invariant in &self.invariants {
            let verdict = match (invariant.checked, invariant.holds()) {
                (false, _) => "n/a ",
                (true, true) => "ok  ",
                (true, false) => "FAIL",
            };
            println!("{verdict} {} {}", invariant.name, invariant.description);
            for violation in invariant.violations.iter().take(20) {
                println!("       {} {}", violation.id, violation.detail);
            }
            if invariant.violations.len() > 20 {
                println!("       ... and {} more", invariant.violations.len() - 20);
            }
        }
    }
}

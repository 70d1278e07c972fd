//! Prometheus metrics. Names follow Prometheus conventions (`_total` for
//! counters, `_seconds` in base units) and labels take a bounded set of
//! values (never an order id). Counters and histograms are recorded where
//! things happen; gauges about the database (orders by status, the oldest
//! open order, unknown outcomes) are computed when `/metrics` is scraped.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Every metric name, in one place.
pub mod names {
    pub const ORDERS_OPEN: &str = "orderd_orders_open";
    pub const ORDERS_BY_STEP: &str = "orderd_orders_by_step";
    pub const OLDEST_OPEN_ORDER_AGE: &str = "orderd_oldest_open_order_age_seconds";
    pub const UNKNOWN_OUTCOMES_OPEN: &str = "orderd_unknown_outcomes_open";
    pub const FILLS_UNSETTLED: &str = "orderd_fills_unsettled";
    pub const ORDERS_SUBMITTED: &str = "orderd_orders_submitted_total";
    pub const SUBMIT_DURATION: &str = "orderd_submit_duration_seconds";
    pub const TRADE_EVENTS: &str = "orderd_trade_events_total";
    pub const TRADE_UPDATES_DROPPED: &str = "orderd_trade_updates_dropped_total";
    pub const EXTERNAL_CALL_DURATION: &str = "orderd_external_call_duration_seconds";
    pub const EXTERNAL_CALL_ERRORS: &str = "orderd_external_call_errors_total";
    pub const STREAM_CONNECTED: &str = "orderd_venue_stream_connected";
    pub const STREAM_RECONNECTS: &str = "orderd_venue_stream_reconnects_total";
    pub const STREAM_GAPS: &str = "orderd_venue_stream_gaps_total";
    pub const STREAM_STALLS: &str = "orderd_venue_stream_stalls_total";
    pub const STREAM_REPORTS: &str = "orderd_venue_stream_reports_total";
    pub const STREAM_LAG: &str = "orderd_venue_stream_lag_seconds";
    pub const STREAM_LAST_REPORT_AGE: &str = "orderd_venue_stream_last_report_age_seconds";
    pub const RECONCILE_RUNS: &str = "orderd_reconciliation_runs_total";
    pub const RECONCILE_FINDINGS: &str = "orderd_reconciliation_findings_total";
    pub const RECONCILE_REPAIRS: &str = "orderd_reconciliation_repairs_total";
    pub const COMPLETER_CLAIMS: &str = "orderd_completer_claims_total";
    pub const COMPLETER_TAKEOVERS: &str = "orderd_completer_lease_takeovers_total";
    pub const ROWS_UNREADABLE: &str = "orderd_rows_unreadable_total";
    pub const IDEMPOTENCY_REPLAYS: &str = "orderd_idempotency_replays_total";
    pub const IDEMPOTENCY_CONFLICTS: &str = "orderd_idempotency_conflicts_total";
    pub const SETTLEMENTS: &str = "orderd_settlements_total";
    pub const TASK_PANICS: &str = "orderd_task_panics_total";
    pub const REPORTS_QUARANTINED: &str = "orderd_reports_quarantined_total";
    pub const LATE_FILLS: &str = "orderd_late_fills_total";
    pub const ORDERS_PARKED: &str = "orderd_orders_parked_total";
    pub const RATE_LIMITED: &str = "orderd_rate_limited_total";
    pub const CONNECTIONS_WAITED: &str = "orderd_http_connections_waited_total";
    pub const CONNECTIONS_SILENT: &str = "orderd_http_connections_silent_total";
    pub const REQUESTS_TIMED_OUT: &str = "orderd_http_requests_timed_out_total";
    pub const RESPONSES_TOO_LARGE: &str = "orderd_external_responses_too_large_total";
    pub const RECONCILE_SKIPPED: &str = "orderd_reconciliation_ticks_skipped_total";
    pub const UNKNOWN_OUTCOMES_RESOLVED: &str = "orderd_unknown_outcomes_resolved_total";
    pub const DB_PRIMARY_HOST: &str = "orderd_database_primary_host";
    pub const DB_PRIMARY_SWITCHES: &str = "orderd_database_primary_switches_total";
    pub const STREAM_SESSIONS_REFUSED: &str = "orderd_stream_sessions_refused_total";
    pub const STREAM_RENDERS: &str = "orderd_stream_renders_total";
}

/// Histogram buckets for durations, in seconds: 0.5 ms to 10 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's recorder, installed on first use (once per process: tests
/// start several apps in one process and share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), DURATION_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder already installed (only possible if a library
        // user installed one): ours still renders what it records.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    use names::*;
    describe_gauge!(ORDERS_OPEN, "Orders not yet terminal, by status.");
    describe_gauge!(
        ORDERS_BY_STEP,
        "Orders not closed, by recovery step and step state."
    );
    describe_gauge!(
        OLDEST_OPEN_ORDER_AGE,
        Unit::Seconds,
        "Age of the oldest order that is not terminal."
    );
    describe_gauge!(
        UNKNOWN_OUTCOMES_OPEN,
        "Orders whose current step's outcome is unknown, by step."
    );
    describe_gauge!(FILLS_UNSETTLED, "Fills not settled, by settlement state.");
    describe_counter!(
        UNKNOWN_OUTCOMES_RESOLVED,
        "Database writes whose answer was lost, resolved by reading back what they wrote, by step."
    );
    describe_gauge!(
        DB_PRIMARY_HOST,
        "Which of database.url's hosts the pool writes to (0-based)."
    );
    describe_counter!(
        DB_PRIMARY_SWITCHES,
        "Times the pool followed the primary to another host (a failover)."
    );
    describe_counter!(ORDERS_SUBMITTED, "POST /v2/orders answers, by outcome.");
    describe_histogram!(
        SUBMIT_DURATION,
        Unit::Seconds,
        "POST /v2/orders latency, by outcome."
    );
    describe_counter!(TRADE_EVENTS, "Trade updates emitted, by event.");
    describe_counter!(
        TRADE_UPDATES_DROPPED,
        "Trade updates lost before reaching /stream (queue full, or the send failed)."
    );
    describe_histogram!(
        EXTERNAL_CALL_DURATION,
        Unit::Seconds,
        "Calls to the venue and the ledger, by service, endpoint and outcome."
    );
    describe_counter!(
        EXTERNAL_CALL_ERRORS,
        "Failed external calls, by service, endpoint and kind."
    );
    describe_gauge!(
        STREAM_CONNECTED,
        "1 while this instance holds and reads the venue stream."
    );
    describe_counter!(
        STREAM_RECONNECTS,
        "Venue stream sessions that ended and were reconnected."
    );
    describe_counter!(
        STREAM_GAPS,
        "Sequence gaps seen on the venue stream (each triggers a catch-up)."
    );
    describe_counter!(STREAM_STALLS, "Venue stream sessions ended by silence.");
    describe_counter!(
        STREAM_REPORTS,
        "Execution reports received from the venue stream."
    );
    describe_gauge!(
        STREAM_LAG,
        "While this instance holds the venue stream: of the last report it applied, the venue's timestamp to the commit of its apply (seconds; a clock difference with the venue shows here too)."
    );
    describe_gauge!(
        STREAM_LAST_REPORT_AGE,
        "While this instance holds the venue stream: seconds since it last received a report (set at each lease renewal, every second; grows in a quiet market)."
    );
    describe_counter!(RECONCILE_RUNS, "Reconciliation runs, by job.");
    describe_counter!(
        RECONCILE_FINDINGS,
        "Reconciliation findings, by job, kind and classification."
    );
    describe_counter!(
        RECONCILE_REPAIRS,
        "Repairs reconciliation performed, by job, kind and result."
    );
    describe_counter!(COMPLETER_CLAIMS, "Orders the completer took to drive.");
    describe_counter!(
        COMPLETER_TAKEOVERS,
        "Orders the completer took over from an expired or dead lease."
    );
    describe_counter!(
        ROWS_UNREADABLE,
        "Rows skipped because this version cannot decode them (written by a newer version during a rolling upgrade), by query."
    );
    describe_counter!(
        IDEMPOTENCY_REPLAYS,
        "Requests answered by replaying an earlier outcome, by key kind."
    );
    describe_counter!(IDEMPOTENCY_CONFLICTS, "Idempotency refusals, by reason.");
    describe_counter!(SETTLEMENTS, "Settlement attempts, by outcome.");
    describe_counter!(
        TASK_PANICS,
        "Panics caught in background work, by task (the task was restarted)."
    );
    describe_counter!(
        REPORTS_QUARANTINED,
        "Venue reports refused and kept for operators, by reason."
    );
    describe_counter!(
        LATE_FILLS,
        "Fills that arrived after their order's hold was released (settled from free balance)."
    );
    describe_counter!(
        ORDERS_PARKED,
        "Orders parked for an operator, by the step they were parked at."
    );
    describe_counter!(
        STREAM_SESSIONS_REFUSED,
        "/stream sessions refused: past http.stream_sessions_max (reason instance) or http.stream_sessions_per_account (reason account)."
    );
    describe_counter!(
        STREAM_RENDERS,
        "Trade updates rendered for /stream (an order read, and for a fill a ledger call): once per instance for all sessions of the account, none without one."
    );
    describe_counter!(
        RECONCILE_SKIPPED,
        "Cron ticks of a reconciliation job skipped because its last run (on any instance) was still going."
    );
    describe_counter!(
        RESPONSES_TOO_LARGE,
        "Responses of the venue or the ledger past venues::RESPONSE_MAX_BYTES: not read, an unknown outcome."
    );
    describe_counter!(
        CONNECTIONS_WAITED,
        "Times the listener stopped accepting at http.max_connections until a connection closed."
    );
    describe_counter!(
        CONNECTIONS_SILENT,
        "Connections closed for sending nothing within http.first_byte_timeout_ms."
    );
    describe_counter!(
        REQUESTS_TIMED_OUT,
        "Requests answered 503 after http.request_timeout_ms (their work, if any, carries on)."
    );
    describe_counter!(
        RATE_LIMITED,
        "Trader requests refused with 429: an account past http.rate_limit_per_minute."
    );
}

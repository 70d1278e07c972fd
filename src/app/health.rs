//! What `/metrics` reports: the process's counters and histograms, and
//! gauges read from the database (at most once per `http.metrics_gauges_ms`).

use super::App;

/// When the database gauges were last read (one read at a time).
#[derive(Debug, Default)]
pub struct GaugeCache {
    read_at: tokio::sync::Mutex<Option<std::time::Instant>>,
}

/// Sets the database gauges (read at most once per
/// `http.metrics_gauges_ms`, however often `/metrics` is scraped), then
/// renders everything in the Prometheus text format.
pub async fn metrics_text(app: &App) -> Result<String, sqlx::Error> {
    let fresh_for = std::time::Duration::from_millis(app.settings.http.metrics_gauges_ms);
    let mut read_at = app.gauge_cache.read_at.lock().await;
    if read_at.is_none_or(|at| at.elapsed() >= fresh_for) {
        set_database_gauges(app).await?;
        *read_at = Some(std::time::Instant::now());
    }
    drop(read_at);
    Ok(crate::metrics::handle().render())
}

async fn set_database_gauges(app: &App) -> Result<(), sqlx::Error> {
    use crate::domain::fills::SettlementState;
    use crate::domain::lifecycle::{Status, Step, StepState};
    let gauges = crate::store::operator::gauges(&app.pool).await?;
    for status in Status::ALL.iter().filter(|s| !s.is_terminal()) {
        let n = gauges
            .open_by_status
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!(crate::metrics::names::ORDERS_OPEN, "status" => status.as_str())
            .set(n as f64);
    }
    for step in Step::ALL.iter().filter(|s| **s != Step::Closed) {
        for state in StepState::ALL {
            let n = gauges
                .by_step
                .iter()
                .find(|(s, st, _)| s == step && st == state)
                .map_or(0, |(_, _, n)| *n);
            metrics::gauge!(crate::metrics::names::ORDERS_BY_STEP, "step" => step.as_str(), "state" => state.as_str())
                .set(n as f64);
            if *state == StepState::Unknown && step.is_driven() {
                metrics::gauge!(crate::metrics::names::UNKNOWN_OUTCOMES_OPEN, "step" => step.as_str())
                    .set(n as f64);
            }
        }
    }
    metrics::gauge!(crate::metrics::names::OLDEST_OPEN_ORDER_AGE)
        .set(gauges.oldest_open_secs.unwrap_or(0.0));
    for state in SettlementState::ALL
        .iter()
        .filter(|s| **s != SettlementState::Settled)
    {
        let n = gauges
            .unsettled_fills
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!(crate::metrics::names::FILLS_UNSETTLED, "state" => state.as_str())
            .set(n as f64);
    }
    Ok(())
}

//! Health: the venue stream (lease holder, fencing token, lag — the
//! holder's, from the lease's row, so any instance shows it — and the
//! stream's counters), each instance's heartbeat, the completer's and the
//! settler's queues, and small live charts (orders/s, POST latency
//! percentiles, unknown outcomes) fed from the numbers `/metrics` renders.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use chrono::Utc;
use maud::{Markup, html};

use super::ConsoleError;
use super::auth::Console;
use super::layout::{self, Section};
use crate::http::AppState;
use crate::metrics::names;

/// The samples of metric `name` in a Prometheus text rendering: each
/// sample's labels (`k="v"` pairs) and value.
pub fn samples<'a>(text: &'a str, name: &str) -> Vec<(BTreeMap<&'a str, &'a str>, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let labels = labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of `name` whose labels include `label`.
pub fn sum(text: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    samples(text, name)
        .into_iter()
        .filter(|(labels, _)| label.is_none_or(|(k, v)| labels.get(k) == Some(&v)))
        // From +0.0: an empty f64 `sum()` is -0.0, shown as "-0".
        .fold(0.0, |total, (_, v)| total + v)
}

/// A gauge of this instance's, if it was ever set.
fn gauge(text: &str, name: &str) -> Option<f64> {
    // NaN is a gauge's "no value" (e.g. the lag once the stream is no
    // longer read here).
    samples(text, name)
        .first()
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
}

/// Seconds, to the millisecond.
fn seconds(value: f64) -> String {
    format!("{value:.3} s")
}

/// The holder's lag and last report, as it last wrote them.
fn stream_progress(lease: &crate::store::console::LeaseRow) -> Markup {
    html! {
        @match lease.progress() {
            Some((age, lag)) => {
                dt { "lag" } dd id="stream-lag" {
                    @match lag { Some(lag) => { (seconds(lag)) }, None => { "no report applied since it took the lease" } }
                    br; span.muted { "the venue's timestamp of the last report applied to its commit here" }
                }
                dt { "last report" } dd id="stream-last-report" {
                    @match age { Some(age) => { (seconds(age)) " ago" }, None => { "none since it took the lease" } }
                    br; span.muted { "received by the holder (grows while the market is quiet)" }
                }
            },
            None => {
                dt { "lag" } dd id="stream-lag" { "not reported yet by the holder" }
            },
        }
    }
}

/// One point of the live charts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Point {
    pub orders_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub unknown: f64,
}

/// Turns successive renderings into rates and percentiles over the last
/// interval (a histogram's quantile from the change of its buckets, as
/// Prometheus' `histogram_quantile` over a rate).
#[derive(Debug, Default)]
pub struct Sampler {
    last: Option<Reading>,
}

/// When, orders submitted so far, the latency buckets so far.
type Reading = (Instant, f64, Vec<(f64, f64)>);

/// `(le, cumulative count)` of the submit latency, summed over outcomes.
fn submit_buckets(text: &str) -> Vec<(f64, f64)> {
    let mut by_le: BTreeMap<String, f64> = BTreeMap::new();
    for (labels, value) in samples(text, &format!("{}_bucket", names::SUBMIT_DURATION)) {
        if let Some(le) = labels.get("le") {
            *by_le.entry(le.to_string()).or_default() += value;
        }
    }
    let mut buckets: Vec<(f64, f64)> = by_le
        .into_iter()
        .filter_map(|(le, n)| {
            Some((
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                },
                n,
            ))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The `q` quantile of cumulative `buckets`, linear within a bucket.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let within = if count > lower.1 {
                (rank - lower.1) / (count - lower.1)
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * within);
        }
        lower = (le, count);
    }
    None
}

impl Sampler {
    /// The point since the previous call (none on the first).
    pub fn sample(&mut self, text: &str) -> Option<Point> {
        let now = Instant::now();
        let submitted = sum(text, names::ORDERS_SUBMITTED, None);
        let buckets = submit_buckets(text);
        let unknown = sum(text, names::UNKNOWN_OUTCOMES_OPEN, None);
        let previous = self.last.replace((now, submitted, buckets.clone()));
        let (at, before, old) = previous?;
        let secs = now.duration_since(at).as_secs_f64().max(0.001);
        let delta: Vec<(f64, f64)> = buckets
            .iter()
            .map(|(le, n)| {
                (
                    *le,
                    n - old.iter().find(|(l, _)| l == le).map_or(0.0, |(_, o)| *o),
                )
            })
            .collect();
        Some(Point {
            orders_per_s: ((submitted - before) / secs).max(0.0),
            p50_ms: quantile(0.5, &delta).map(|s| s * 1000.0),
            p99_ms: quantile(0.99, &delta).map(|s| s * 1000.0),
            unknown,
        })
    }
}

fn chart(id: &str, title: &str, unit: &str) -> Markup {
    html! {
        figure.chart id=(id) data-unit=(unit) {
            figcaption { (title) ": " span.value aria-live="off" { "…" } " " (unit) }
            svg viewBox="0 0 300 90" preserveAspectRatio="none" role="img" aria-label={ (title) " over the last minute" } {
                polyline points="" {}
            }
        }
    }
}

/// `GET /console/health`.
pub async fn health(
    State(state): State<Arc<AppState>>,
    console: Console,
) -> Result<Markup, ConsoleError> {
    let app = &state.app;
    let text = crate::app::health::metrics_text(app).await?;
    let instances = crate::app::console::instances(app).await?;
    let lease = crate::app::console::venue_stream_lease(app).await?;
    let now = Utc::now();
    let name_of = |id: uuid::Uuid| {
        instances.iter().find(|i| i.instance_id == id).map_or_else(
            || id.to_string(),
            |i| format!("{} (generation {})", i.name, i.generation),
        )
    };
    let count = |name: &str| sum(&text, name, None);
    let by = |name: &str, k: &str, v: &str| sum(&text, name, Some((k, v)));
    let body = html! {
        h1 { "Health" }
        section aria-labelledby="charts-h" {
            h2 id="charts-h" { "Live (this instance's counters; the database's gauges)" }
            div.charts id="charts" data-live="/console/live/health" {
                (chart("orders-per-s", "Orders submitted", "/s"))
                (chart("latency", "POST /v2/orders p50 / p99", "ms"))
                (chart("unknown", "Unknown outcomes open", "orders"))
            }
        }
        div.grid2 {
            section.panel aria-labelledby="stream-h" {
                h2 id="stream-h" { "Venue stream" }
                dl.kv id="stream" {
                    @match &lease {
                        Some(l) => {
                            dt { "lease holder" } dd { (name_of(l.owner)) }
                            dt { "fencing token" } dd { (l.fencing_token) }
                            dt { "lease expires" } dd { (layout::time(l.expires_at)) @if l.expires_at < now { " " span.badge.bad { "expired" } } }
                            (stream_progress(l))
                        },
                        None => { dt { "lease" } dd { "never taken" } },
                    }
                    dt { "connected here" } dd { (count(names::STREAM_CONNECTED)) }
                    dt { "reports (here)" } dd { (count(names::STREAM_REPORTS)) }
                    dt { "gaps (here)" } dd { (count(names::STREAM_GAPS)) }
                    @if let (Some(lag), true) = (gauge(&text, names::STREAM_LAG), lease.as_ref().is_some_and(|l| l.owner == app.instance_id)) {
                        dt { "lag (here)" } dd { (seconds(lag)) }
                    }
                    dt { "stalls (here)" } dd { (count(names::STREAM_STALLS)) }
                    dt { "reconnects (here)" } dd { (count(names::STREAM_RECONNECTS)) }
                    dt { "oldest open order" } dd { (format!("{:.1}", count(names::OLDEST_OPEN_ORDER_AGE))) " s" }
                }
            }
            section.panel aria-labelledby="queues-h" {
                h2 id="queues-h" { "Queues" }
                dl.kv id="queues" {
                    @for step in ["reserve", "place", "cancel", "release"] {
                        dt { "completer: " (step) } dd { (by(names::ORDERS_BY_STEP, "step", step)) " orders (" (sum(&text, names::UNKNOWN_OUTCOMES_OPEN, Some(("step", step)))) " unknown)" }
                    }
                    dt { "parked" } dd { (by(names::ORDERS_BY_STEP, "step", "parked")) }
                    @for state in ["pending", "unknown", "failed"] {
                        dt { "settler: " (state) } dd { (by(names::FILLS_UNSETTLED, "state", state)) " fills" }
                    }
                }
            }
        }
        section aria-labelledby="instances-h" {
            h2 id="instances-h" { "Instances" }
            table id="instances" {
                thead { tr { th scope="col" { "Name" } th scope="col" class="num" { "Generation" } th scope="col" { "Started" } th scope="col" class="num" { "Heartbeat age" } th scope="col" { "State" } } }
                tbody { @for i in &instances { tr {
                    th scope="row" { (i.name) @if i.instance_id == app.instance_id { " (this one)" } }
                    td.num { (i.generation) }
                    td { (layout::time(i.started_at)) }
                    td.num { (format!("{:.0}", i.heartbeat_age_ms)) " ms" }
                    td {
                        @if i.fenced_at.is_some() { span.badge.bad { "fenced" } }
                        @else if i.stopped_at.is_some() { span.badge { "stopped" } }
                        @else if i.heartbeat_age_ms > app.settings.instance.reap_after_ms as f64 { span.badge.warn { "silent" } }
                        @else { span.badge.ok { "alive" } }
                    }
                } } }
            }
        }
    };
    Ok(layout::page(
        "Health",
        Section::Health,
        Some(&console),
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quantile_interpolates_within_its_bucket() {
        let buckets = [
            (0.001, 0.0),
            (0.005, 50.0),
            (0.01, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile(0.5, &buckets), Some(0.005));
        let p75 = quantile(0.75, &buckets).unwrap();
        assert!((p75 - 0.0075).abs() < 1e-9, "{p75}");
        assert_eq!(quantile(0.5, &[(f64::INFINITY, 0.0)]), None);
    }

    #[test]
    fn samples_are_read_by_name_and_label() {
        let text = "# HELP x\nx_total{outcome=\"new\"} 3\nx_total{outcome=\"filled\"} 4\ny 1\n";
        assert_eq!(sum(text, "x_total", None), 7.0);
        assert_eq!(sum(text, "x_total", Some(("outcome", "new"))), 3.0);
        assert_eq!(sum(text, "y", None), 1.0);
    }
}

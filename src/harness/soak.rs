//! `orderd chaos --soak DURATION`: moderate load with faults on for a long
//! time, and what a leak would show sampled at intervals — orderd's
//! resident memory and open descriptors, the growing tables, the queue
//! depths — then the run's invariants checked as in any run.

use std::time::Duration;

use anyhow::Context;

use super::stack::Stack;
use crate::store::operator::{self, TableSize};

/// One sample of a soak.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Sample {
    /// Since the session started.
    pub at: Duration,
    pub rss_kib: Option<u64>,
    pub open_fds: Option<usize>,
    pub tables: Vec<TableSize>,
    /// Orders mid-step and fills not yet settled (from `/metrics`).
    pub orders_in_flight: f64,
    pub fills_unsettled: f64,
}

/// How often a soak of `duration` samples: ten samples at least, one a
/// minute at most, never more often than every five seconds.
pub fn interval_for(duration: Duration) -> Duration {
    (duration / 10).clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// Parses `30m`, `90s`, `2h` or a number of seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .with_context(|| format!("a soak duration like 30m, 90s or 2h, got {text:?}"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        other => anyhow::bail!("unknown unit {other:?} in {text:?}: s, m or h"),
    };
    anyhow::ensure!(secs >= 10, "a soak runs 10 s at least");
    Ok(Duration::from_secs(secs))
}

/// Resident memory of `pid`, from `/proc`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// Takes one sample of the stack's orderd.
pub async fn sample(
    stack: &Stack,
    pool: &sqlx::PgPool,
    http: &reqwest::Client,
    at: Duration,
) -> anyhow::Result<Sample> {
    let pid = stack.orderd.as_ref().map(|o| o.child.id());
    let tables = operator::table_sizes(pool).await?;
    let (orders_in_flight, fills_unsettled) = match stack.orderd_url() {
        Some(url) => {
            let text = http
                .get(format!("{url}/metrics"))
                .send()
                .await?
                .text()
                .await?;
            (
                super::metric_sum(&text, "orderd_orders_by_step"),
                super::metric_sum(&text, "orderd_fills_unsettled"),
            )
        }
        None => (0.0, 0.0),
    };
    Ok(Sample {
        at,
        rss_kib: pid.and_then(rss_kib),
        open_fds: pid.and_then(open_fds),
        tables,
        orders_in_flight,
        fills_unsettled,
    })
}

/// The least-squares slope of `points` (x in hours), per hour.
fn slope_per_hour(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    (variance > 0.0).then(|| covariance / variance)
}

/// Resident memory's slope over the samples after the first (warm-up), in
/// MiB per hour.
pub fn rss_slope_mib_per_hour(samples: &[Sample]) -> Option<f64> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .skip(1)
        .filter_map(|s| {
            s.rss_kib
                .map(|kib| (s.at.as_secs_f64() / 3600.0, kib as f64 / 1024.0))
        })
        .collect();
    slope_per_hour(&points)
}

/// Prints the samples and what they say.
pub fn print(samples: &[Sample]) {
    if samples.is_empty() {
        return;
    }
    println!();
    println!("== soak samples");
    let tables: Vec<String> = samples[0].tables.iter().map(|t| t.table.clone()).collect();
    print!(
        "{:>7}  {:>8}  {:>5}  {:>9}  {:>10}",
        "at", "rss MiB", "fds", "in flight", "unsettled"
    );
    for table in &tables {
        print!("  {:>14}", abbreviate(table));
    }
    println!();
    for s in samples {
        print!(
            "{:>6.0}s  {:>8}  {:>5}  {:>9.0}  {:>10.0}",
            s.at.as_secs_f64(),
            s.rss_kib
                .map(|k| format!("{:.1}", k as f64 / 1024.0))
                .unwrap_or_else(|| "-".into()),
            s.open_fds
                .map(|f| f.to_string())
                .unwrap_or_else(|| "-".into()),
            s.orders_in_flight,
            s.fills_unsettled
        );
        for table in &tables {
            let size = s.tables.iter().find(|t| &t.table == table);
            print!(
                "  {:>14}",
                size.map(|t| format!("{}r/{}k", t.rows, t.bytes / 1024))
                    .unwrap_or_else(|| "-".into())
            );
        }
        println!();
    }
    match rss_slope_mib_per_hour(samples) {
        Some(slope) => println!("resident memory slope after warm-up: {slope:+.1} MiB/hour"),
        None => println!("resident memory slope: too few samples"),
    }
    if let (Some(first), Some(last)) = (samples.first(), samples.last())
        && let (Some(a), Some(b)) = (first.open_fds, last.open_fds)
    {
        println!("open descriptors: {a} at the first sample, {b} at the last");
    }
}

fn abbreviate(table: &str) -> String {
    table.chars().take(14).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_slopes() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("5s").is_err());
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(
            interval_for(Duration::from_secs(1800)),
            Duration::from_secs(60)
        );
        assert_eq!(
            interval_for(Duration::from_secs(30)),
            Duration::from_secs(5)
        );
        // 2 MiB more every hour, sampled each half hour.
        let samples: Vec<Sample> = (0..5)
            .map(|i| Sample {
                at: Duration::from_secs(1800 * i),
                rss_kib: Some(100 * 1024 + 1024 * i),
                ..Sample::default()
            })
            .collect();
        let slope = rss_slope_mib_per_hour(&samples).unwrap();
        assert!((slope - 2.0).abs() < 1e-9, "{slope}");
    }
}

//! What the upgrade drill measured, and its table.

use std::collections::BTreeMap;
use std::time::Duration;

use super::load::Loaded;
use super::writer::Write;

/// The writes of a window: how many overlapped it (started before it
/// ended and ended after it began, so a write blocked throughout counts),
/// how many of those completed inside it, and how long they took.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WriteStats {
    pub writes: usize,
    pub completed: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The longest single write: the stall.
    pub max_ms: f64,
    pub errors: usize,
}

/// One migration as the drill applied it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationRun {
    pub version: i64,
    pub description: String,
    pub duration_ms: f64,
    pub writes: WriteStats,
    /// Tables the writers were seen waiting for a lock on meanwhile.
    pub waited_on: Vec<String>,
    /// The longest time writers were seen waiting for a lock without a
    /// break (sampled): the stall, however often the previous version's
    /// `lock_timeout` cut a single write short.
    pub blocked_ms: f64,
}

/// Writer errors of one kind (one statement, one message).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ErrorCount {
    /// The previous version's function and the statement it runs.
    pub op: String,
    pub message: String,
    pub count: usize,
    /// The migration the first of them overlapped (`None`: none; a
    /// migration can break a statement for good, so later ones repeat).
    pub first_during: Option<i64>,
    /// How many overlapped no migration (after the last, the writers go
    /// on for a second).
    pub outside: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DrillReport {
    /// The drill's database (dropped unless `kept`).
    pub database: String,
    pub kept: bool,
    pub orders: i64,
    pub fills: i64,
    pub load_secs: f64,
    pub writers: usize,
    /// Writes completed before the first migration began.
    pub baseline: WriteStats,
    pub migrations: Vec<MigrationRun>,
    /// Writes overlapping the whole run of the migrations.
    pub during: WriteStats,
    /// The longest time writers waited for a lock without a break.
    pub blocked_ms: f64,
    pub errors: Vec<ErrorCount>,
    /// A migration that failed (the drill stopped there).
    pub migration_error: Option<String>,
    /// The schema's version at the end, and this binary's latest.
    pub schema_version: i64,
    pub latest_version: i64,
}

impl DrillReport {
    /// Every migration applied, and no writer of the previous version saw
    /// an error.
    pub fn safe(&self) -> bool {
        self.errors.is_empty()
            && self.migration_error.is_none()
            && self.schema_version == self.latest_version
    }

    pub fn print(&self) {
        println!(
            "upgrade drill: {} orders, {} fills at schema {:04} (loaded in {:.1} s); {} previous-version writers",
            self.orders,
            self.fills,
            super::PREVIOUS_VERSION,
            self.load_secs,
            self.writers
        );
        let b = &self.baseline;
        println!(
            "before the migrations: {} writes, p50 {:.1} ms, p99 {:.1} ms, longest {:.1} ms\n",
            b.writes, b.p50_ms, b.p99_ms, b.max_ms
        );
        println!(
            "{:<24} {:>9} {:>9} {:>7} {:>9} {:>10} {:>10} {:>7}  waited on",
            "migration", "took", "blocked", "writes", "finished", "longest", "p99", "errors"
        );
        let row = |name: String, took: f64, blocked: f64, w: &WriteStats, waited: String| {
            println!(
                "{:<24} {:>9} {:>9} {:>7} {:>9} {:>10} {:>10} {:>7}  {}",
                name,
                ms(took),
                ms(blocked),
                w.writes,
                w.completed,
                ms(w.max_ms),
                ms(w.p99_ms),
                w.errors,
                waited
            );
        };
        for m in &self.migrations {
            row(
                format!("{:04} {}", m.version, m.description),
                m.duration_ms,
                m.blocked_ms,
                &m.writes,
                m.waited_on.join(", "),
            );
        }
        let total: f64 = self.migrations.iter().map(|m| m.duration_ms).sum();
        row(
            "all".to_string(),
            total,
            self.blocked_ms,
            &self.during,
            String::new(),
        );
        println!(
            "(blocked: writers seen waiting for a lock without a break, sampled every {} ms; \
             longest: one write, which the previous version's lock_timeout cuts short)",
            super::SAMPLE_EVERY.as_millis()
        );
        if !self.errors.is_empty() {
            println!("\nwriter errors (the migration is not safe beside the previous version):");
            for e in &self.errors {
                let first = e
                    .first_during
                    .map(|v| format!("first during {v:04}"))
                    .unwrap_or_else(|| "outside the migrations".to_string());
                println!(
                    "  {} x{} ({first}; {} outside any migration): {}",
                    e.op, e.count, e.outside, e.message
                );
            }
        }
        if let Some(error) = &self.migration_error {
            println!("\nmigration failed: {error}");
        }
        println!(
            "\nschema at {:04} (this binary's latest: {:04}){}",
            self.schema_version,
            self.latest_version,
            if self.kept {
                format!("; database kept: {}", self.database)
            } else {
                String::new()
            }
        );
    }
}

fn ms(value: f64) -> String {
    if value >= 1000.0 {
        format!("{:.2} s", value / 1000.0)
    } else {
        format!("{value:.1} ms")
    }
}

/// Stats of the writes overlapping `[from, to]`.
fn stats(writes: &[&Write], from: Duration, to: Duration) -> WriteStats {
    let mut took: Vec<f64> = writes
        .iter()
        .map(|w| w.took.as_secs_f64() * 1000.0)
        .collect();
    took.sort_by(f64::total_cmp);
    let at = |q: f64| -> f64 {
        if took.is_empty() {
            return 0.0;
        }
        let rank = ((q * took.len() as f64).ceil() as usize).clamp(1, took.len());
        took[rank - 1]
    };
    WriteStats {
        writes: writes.len(),
        completed: writes
            .iter()
            .filter(|w| w.end() >= from && w.end() <= to)
            .count(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: took.last().copied().unwrap_or(0.0),
        errors: writes.iter().filter(|w| w.error.is_some()).count(),
    }
}

/// The longest run of consecutive samples within `[from, to]` that saw a
/// writer waiting for a lock, in ms.
fn blocked(waits: &[(Duration, Vec<String>)], from: Duration, to: Duration) -> f64 {
    let mut longest = Duration::ZERO;
    let mut run_start: Option<Duration> = None;
    for (at, tables) in waits.iter().filter(|(at, _)| *at >= from && *at <= to) {
        match (tables.is_empty(), run_start) {
            (false, None) => run_start = Some(*at),
            (false, Some(start)) => longest = longest.max(*at - start),
            (true, _) => run_start = None,
        }
    }
    longest.as_secs_f64() * 1000.0
}

fn overlapping(writes: &[Write], from: Duration, to: Duration) -> Vec<&Write> {
    writes
        .iter()
        .filter(|w| w.start < to && w.end() > from)
        .collect()
}

/// The report of a drill: `migrations` as `(version, description, start,
/// end)` on the drill's clock, `waits` the sampler's `(at, tables)`.
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
    database: &str,
    loaded: Loaded,
    writers: usize,
    writes: &[Write],
    migrations: &[(i64, String, Duration, Duration)],
    waits: &[(Duration, Vec<String>)],
    migration_error: Option<String>,
    schema_version: i64,
) -> DrillReport {
    let first = migrations.first().map(|m| m.2).unwrap_or_default();
    let last = migrations.last().map(|m| m.3).unwrap_or_default();
    let before: Vec<&Write> = writes.iter().filter(|w| w.end() <= first).collect();
    let runs: Vec<MigrationRun> = migrations
        .iter()
        .map(|(version, description, start, end)| {
            let mut waited_on: Vec<String> = waits
                .iter()
                .filter(|(at, _)| at >= start && at <= end)
                .flat_map(|(_, tables)| tables.iter().cloned())
                .collect();
            waited_on.sort();
            waited_on.dedup();
            MigrationRun {
                version: *version,
                description: description.clone(),
                duration_ms: (*end - *start).as_secs_f64() * 1000.0,
                writes: stats(&overlapping(writes, *start, *end), *start, *end),
                waited_on,
                blocked_ms: blocked(waits, *start, *end),
            }
        })
        .collect();
    let during = |write: &Write| {
        migrations
            .iter()
            .find(|(_, _, start, end)| write.start < *end && write.end() > *start)
            .map(|m| m.0)
    };
    let mut errors: BTreeMap<(&str, &str), ErrorCount> = BTreeMap::new();
    let mut by_start: Vec<&Write> = writes.iter().collect();
    by_start.sort_by_key(|w| w.start);
    for write in by_start {
        if let Some(message) = &write.error {
            let migration = during(write);
            let entry = errors
                .entry((write.op, message))
                .or_insert_with(|| ErrorCount {
                    op: write.op.to_string(),
                    message: message.clone(),
                    count: 0,
                    first_during: migration,
                    outside: 0,
                });
            entry.count += 1;
            if migration.is_none() {
                entry.outside += 1;
            }
        }
    }
    DrillReport {
        database: database.to_string(),
        kept: false,
        orders: loaded.orders,
        fills: loaded.fills,
        load_secs: loaded.secs,
        writers,
        baseline: stats(&before, Duration::ZERO, first),
        migrations: runs,
        during: stats(&overlapping(writes, first, last), first, last),
        blocked_ms: blocked(waits, first, last),
        errors: errors.into_values().collect(),
        migration_error,
        schema_version,
        latest_version: crate::db::MIGRATOR
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0),
    }
}

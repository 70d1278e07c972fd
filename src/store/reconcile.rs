//! Reconciliation's records: tick claims, runs, findings, and named
//! leases with fencing tokens.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::reconcile::Finding;

const CLAIM_TICK: &str =
    "INSERT INTO reconcile_ticks (job, scheduled_for, instance_id) VALUES ($1, $2, $3)
         ON CONFLICT (job, scheduled_for) DO UPDATE SET claimed_at = reconcile_ticks.claimed_at
          WHERE reconcile_ticks.instance_id = EXCLUDED.instance_id
            AND NOT EXISTS (SELECT 1 FROM reconciliation_runs r
                             WHERE r.job = EXCLUDED.job AND r.scheduled_for = EXCLUDED.scheduled_for)";

/// Claims the tick `(job, scheduled_for)`; `true` for exactly one instance
/// across all instances, and for one run of the job. Claiming again a tick
/// this instance already holds answers `true` again only while no run of
/// it has started: that is how a claim whose answer was lost (it
/// committed, the caller saw an error) is resolved by its retry instead of
/// the tick being lost, and a scheduler that restarts and offers a tick it
/// already ran (its `last` fell back to the lookback) does not run it twice.
pub async fn claim_tick(
    pool: &PgPool,
    job: &str,
    scheduled_for: DateTime<Utc>,
    instance_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(CLAIM_TICK)
        .bind(job)
        .bind(scheduled_for)
        .bind(instance_id)
        .execute(pool)
        .await?;
    Ok(inserted.rows_affected() == 1)
}

const LAST_TICK: &str = "SELECT max(scheduled_for) FROM reconcile_ticks WHERE job = $1";

/// The latest tick of `job` any instance claimed.
pub async fn last_tick(pool: &PgPool, job: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(LAST_TICK)
        .bind(job)
        .fetch_one(pool)
        .await
}

const START_RUN: &str = "INSERT INTO reconciliation_runs (job, scheduled_for, trigger, instance_id)
         VALUES ($1, $2, $3, $4) RETURNING run_id";

/// Records the start of a run; `trigger` is schedule (for the tick
/// `scheduled_for`), manual or startup.
pub async fn start_run(
    pool: &PgPool,
    job: &str,
    scheduled_for: Option<DateTime<Utc>>,
    trigger: &str,
    instance_id: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(START_RUN)
        .bind(job)
        .bind(scheduled_for)
        .bind(trigger)
        .bind(instance_id)
        .fetch_one(pool)
        .await
}

const LAST_RUN_START: &str =
    "SELECT max(started_at) FROM reconciliation_runs WHERE job = $1 AND finished_at IS NOT NULL";

/// When the last finished run of `job` started: the watermark of jobs that
/// look only at what changed since.
pub async fn last_run_start(
    pool: &PgPool,
    job: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(LAST_RUN_START)
        .bind(job)
        .fetch_one(pool)
        .await
}

/// A finding with what was done about it.
#[derive(Debug, Clone)]
pub struct RecordedFinding {
    pub finding: Finding,
    pub order_id: Option<Uuid>,
    pub subject: Option<String>,
    pub action: String,
    pub action_ok: Option<bool>,
    /// Set when the finding was written before its repair was made (a
    /// repair that changes something outside: its intent is on record).
    pub finding_id: Option<i64>,
}

const INSERT_FINDING: &str = "INSERT INTO reconciliation_findings
                 (run_id, kind, classification, order_id, subject, detail, action, action_ok)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
          RETURNING finding_id";

/// Writes a finding before its repair is made: `action` says what is
/// about to be done, its result unknown until [`finding_done`].
pub async fn finding_intent(
    pool: &PgPool,
    run_id: i64,
    finding: &Finding,
    order_id: Option<Uuid>,
    subject: Option<&str>,
    action: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(INSERT_FINDING)
        .bind(run_id)
        .bind(finding.kind)
        .bind(finding.classification.as_str())
        .bind(order_id)
        .bind(subject)
        .bind(&finding.detail)
        .bind(action)
        .bind(None::<bool>)
        .fetch_one(pool)
        .await
}

const FINDING_DONE: &str =
    "UPDATE reconciliation_findings SET action = $2, action_ok = $3 WHERE finding_id = $1";

/// Records what a repair written with [`finding_intent`] did.
pub async fn finding_done(
    pool: &PgPool,
    finding_id: i64,
    action: &str,
    ok: Option<bool>,
) -> Result<(), sqlx::Error> {
    sqlx::query(FINDING_DONE)
        .bind(finding_id)
        .bind(action)
        .bind(ok)
        .execute(pool)
        .await?;
    Ok(())
}

const FINISH_RUN: &str =
    "UPDATE reconciliation_runs SET finished_at = clock_timestamp(), examined = $2, findings = $3,
                repaired = $4, errors = $5 WHERE run_id = $1";

pub async fn finish_run(
    pool: &PgPool,
    run_id: i64,
    examined: u64,
    findings: &[RecordedFinding],
    errors: &[String],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for f in findings.iter().filter(|f| f.finding_id.is_none()) {
        sqlx::query(INSERT_FINDING)
            .bind(run_id)
            .bind(f.finding.kind)
            .bind(f.finding.classification.as_str())
            .bind(f.order_id)
            .bind(&f.subject)
            .bind(&f.finding.detail)
            .bind(&f.action)
            .bind(f.action_ok)
            .fetch_one(&mut *tx)
            .await?;
    }
    let repaired = findings
        .iter()
        .filter(|f| f.action_ok == Some(true))
        .count();
    sqlx::query(FINISH_RUN)
        .bind(run_id)
        .bind(i32::try_from(examined).unwrap_or(i32::MAX))
        .bind(i32::try_from(findings.len()).unwrap_or(i32::MAX))
        .bind(i32::try_from(repaired).unwrap_or(i32::MAX))
        .bind(serde_json::json!(errors))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub run_id: i64,
    pub job: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub trigger: String,
    pub instance_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub examined: i32,
    pub findings: i32,
    pub repaired: i32,
    #[schema(value_type = Vec<String>)]
    pub errors: serde_json::Value,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct FindingRecord {
    pub finding_id: i64,
    pub kind: String,
    pub classification: String,
    pub order_id: Option<Uuid>,
    pub subject: Option<String>,
    pub detail: String,
    pub action: String,
    pub action_ok: Option<bool>,
    pub created_at: DateTime<Utc>,
}

const LIST_RUNS: &str = "SELECT run_id, job, scheduled_for, trigger, instance_id, started_at,
            finished_at, examined, findings, repaired, errors
       FROM reconciliation_runs WHERE ($1::text IS NULL OR job = $1)
      ORDER BY run_id DESC LIMIT $2";

pub async fn list_runs(
    pool: &PgPool,
    job: Option<&str>,
    limit: i64,
) -> Result<Vec<RunRecord>, sqlx::Error> {
    sqlx::query_as(LIST_RUNS)
        .bind(job)
        .bind(limit)
        .fetch_all(pool)
        .await
}

const LOAD_RUN: &str = "SELECT run_id, job, scheduled_for, trigger, instance_id, started_at,
            finished_at, examined, findings, repaired, errors
       FROM reconciliation_runs WHERE run_id = $1";

const FINDINGS_OF_RUN: &str = "SELECT finding_id, kind, classification, order_id, subject, detail, action, action_ok, created_at
           FROM reconciliation_findings WHERE run_id = $1 ORDER BY finding_id";

pub async fn run_with_findings(
    pool: &PgPool,
    run_id: i64,
) -> Result<Option<(RunRecord, Vec<FindingRecord>)>, sqlx::Error> {
    let run: Option<RunRecord> = sqlx::query_as(LOAD_RUN)
        .bind(run_id)
        .fetch_optional(pool)
        .await?;
    let Some(run) = run else { return Ok(None) };
    let findings = sqlx::query_as(FINDINGS_OF_RUN)
        .bind(run_id)
        .fetch_all(pool)
        .await?;
    Ok(Some((run, findings)))
}

const ACQUIRE_LEASE: &str = "INSERT INTO leases (name, owner, fencing_token, expires_at)
         VALUES ($1, $2, 1, now() + make_interval(secs => $3::float8 / 1000))
         ON CONFLICT (name) DO UPDATE
            SET fencing_token = CASE WHEN leases.owner = $2 THEN leases.fencing_token
                                     ELSE leases.fencing_token + 1 END,
                owner = $2,
                expires_at = now() + make_interval(secs => $3::float8 / 1000)
          WHERE leases.owner = $2 OR leases.expires_at < now()
             OR leases.owner IN (SELECT instance_id FROM instances
                                  WHERE stopped_at IS NOT NULL OR fenced_at IS NOT NULL
                                     OR last_seen_at < now() - make_interval(secs => $4::float8 / 1000))
         RETURNING fencing_token";

/// Takes (or keeps) the lease `name` for `ttl_ms`: free when unheld,
/// expired, held by us, or held by a dead instance. Returns our fencing
/// token, which grows at every change of owner.
pub async fn acquire_lease(
    pool: &PgPool,
    name: &str,
    instance_id: Uuid,
    ttl_ms: u64,
    dead_after_ms: u64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(ACQUIRE_LEASE)
        .bind(name)
        .bind(instance_id)
        .bind(ttl_ms as f64)
        .bind(dead_after_ms as f64)
        .fetch_optional(pool)
        .await
}

const RENEW_LEASE: &str =
    "UPDATE leases SET expires_at = now() + make_interval(secs => $4::float8 / 1000)
          WHERE name = $1 AND owner = $2 AND fencing_token = $3";

/// Extends our lease if we still hold it with `token`; `false` when it was
/// taken over.
pub async fn renew_lease<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    name: &str,
    instance_id: Uuid,
    token: i64,
    ttl_ms: u64,
) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query(RENEW_LEASE)
        .bind(name)
        .bind(instance_id)
        .bind(token)
        .bind(ttl_ms as f64)
        .execute(executor)
        .await?;
    Ok(renewed.rows_affected() == 1)
}

const RENEW_LEASE_WITH_PROGRESS: &str = "UPDATE leases
        SET expires_at = now() + make_interval(secs => $4::float8 / 1000),
            progress_token = $3, progress_at = now(), last_report_age_ms = $5, report_lag_ms = $6
      WHERE name = $1 AND owner = $2 AND fencing_token = $3";

/// [`renew_lease`], writing in the same statement the holder's progress
/// (the venue stream's: `last_report_age_ms` since it last received a
/// report, `report_lag_ms` of the last one it applied, `None` when none
/// yet under this token; migration 0012). Once `token` is no longer
/// current, neither is written.
pub async fn renew_lease_with_progress<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    name: &str,
    instance_id: Uuid,
    token: i64,
    ttl_ms: u64,
    last_report_age_ms: Option<f64>,
    report_lag_ms: Option<f64>,
) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query(RENEW_LEASE_WITH_PROGRESS)
        .bind(name)
        .bind(instance_id)
        .bind(token)
        .bind(ttl_ms as f64)
        .bind(last_report_age_ms)
        .bind(report_lag_ms)
        .execute(executor)
        .await?;
    Ok(renewed.rows_affected() == 1)
}

const RELEASE_LEASE: &str =
    "UPDATE leases SET expires_at = now() WHERE name = $1 AND owner = $2 AND fencing_token = $3";

/// Gives the lease up (clean shutdown), so a peer takes over at once.
pub async fn release_lease(
    pool: &PgPool,
    name: &str,
    instance_id: Uuid,
    token: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(RELEASE_LEASE)
        .bind(name)
        .bind(instance_id)
        .bind(token)
        .execute(pool)
        .await?;
    Ok(())
}

const LEASE_HOLDER: &str =
    "SELECT owner, fencing_token FROM leases WHERE name = $1 AND expires_at > now()";

/// The current holder of `name` and its token, if any.
pub async fn lease_holder(pool: &PgPool, name: &str) -> Result<Option<(Uuid, i64)>, sqlx::Error> {
    sqlx::query_as(LEASE_HOLDER)
        .bind(name)
        .fetch_optional(pool)
        .await
}

const DELETE_OLD_TICKS: &str =
    "DELETE FROM reconcile_ticks WHERE scheduled_for < now() - interval '1 day'";

/// Tick claims older than a day (the guard only matters around now).
pub async fn delete_old_ticks(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(DELETE_OLD_TICKS)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CLAIM_TICK", CLAIM_TICK),
        ("LAST_TICK", LAST_TICK),
        ("START_RUN", START_RUN),
        ("LAST_RUN_START", LAST_RUN_START),
        ("INSERT_FINDING", INSERT_FINDING),
        ("FINDING_DONE", FINDING_DONE),
        ("FINISH_RUN", FINISH_RUN),
        ("LIST_RUNS", LIST_RUNS),
        ("LOAD_RUN", LOAD_RUN),
        ("FINDINGS_OF_RUN", FINDINGS_OF_RUN),
        ("ACQUIRE_LEASE", ACQUIRE_LEASE),
        ("RENEW_LEASE", RENEW_LEASE),
        ("RENEW_LEASE_WITH_PROGRESS", RENEW_LEASE_WITH_PROGRESS),
        ("RELEASE_LEASE", RELEASE_LEASE),
        ("LEASE_HOLDER", LEASE_HOLDER),
        ("DELETE_OLD_TICKS", DELETE_OLD_TICKS),
    ]
}

//! Operator endpoints under `/admin`, behind `Authorization: Bearer
//! <admin.token>`: reconciliation runs and their findings, and running a
//! job now.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use serde::Deserialize;

use super::docs::{ErrorBody, RunDetail};
use super::error::ApiError;
use super::state::AppState;
use crate::reconcile::{Job, RunError};
use crate::store::reconcile::RunRecord;

/// Runs listed at most per request: one page size for every list, so
/// `limit` means one thing in the document.
pub const RUNS_LIMIT_MAX: i64 = super::orders::LIST_LIMIT_MAX;

/// Whether two tokens are equal, in time that does not depend on where
/// they differ.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// An operator, authenticated by the admin token.
pub struct Operator;

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let given = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if constant_time_eq(given.as_bytes(), state.app.settings.admin.token.as_bytes()) {
            Ok(Operator)
        } else {
            Err(ApiError::unauthorized())
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// open_orders, unknown_outcomes, balances, orphans or gc.
    job: Option<String>,
    /// 1 to 500 (default 50).
    limit: Option<i64>,
}

/// `GET /admin/reconciliations?job=&limit=`.
#[utoipa::path(get, path = "/admin/reconciliations", tag = "admin", operation_id = "listReconciliationRuns", params(RunsQuery),
    responses((status = 200, body = Vec<RunRecord>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("operator" = [])))]
pub async fn runs(
    State(state): State<Arc<AppState>>,
    _: Operator,
    Query(query): Query<RunsQuery>,
) -> Result<Json<Vec<RunRecord>>, ApiError> {
    if let Some(job) = &query.job
        && Job::parse(job).is_none()
    {
        return Err(ApiError::validation(format!(
            "job {job:?} is not a reconciliation job"
        )));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=RUNS_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::validation(format!(
            "limit must be 1 to {RUNS_LIMIT_MAX}"
        )));
    }
    Ok(Json(
        state
            .app
            .reconciler
            .runs(query.job.as_deref(), limit)
            .await?,
    ))
}

/// `GET /admin/reconciliations/{id}`: a run with its findings.
#[utoipa::path(get, path = "/admin/reconciliations/{run_id}", tag = "admin", operation_id = "getReconciliationRun",
    params(("run_id" = i64, Path, description = "Run id")),
    responses((status = 200, body = RunDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("operator" = [])))]
pub async fn run(
    State(state): State<Arc<AppState>>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let run_id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found("reconciliation run not found"))?;
    let (run, findings) = state
        .app
        .reconciler
        .run_detail(run_id)
        .await?
        .ok_or_else(|| ApiError::not_found("reconciliation run not found"))?;
    Ok(Json(RunDetail { run, findings }))
}

/// `POST /admin/reconciliations/run/{job}`: runs a job now and answers
/// with the run and its findings.
#[utoipa::path(post, path = "/admin/reconciliations/run/{job}", tag = "admin", operation_id = "runReconciliationJob",
    params(("job" = String, Path, description = "open_orders, unknown_outcomes, balances, orphans or gc")),
    responses((status = 200, body = RunDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("operator" = [])))]
pub async fn run_now(
    State(state): State<Arc<AppState>>,
    _: Operator,
    Path(job): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let job = Job::parse(&job)
        .ok_or_else(|| ApiError::not_found(format!("no reconciliation job {job:?}")))?;
    // In its own task: a client hanging up must not cut a run short.
    let reconciler = state.app.reconciler.clone();
    let summary = tokio::spawn(async move { reconciler.run_job(job).await })
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| match error {
            RunError::Busy(_) => {
                ApiError::conflict(error.to_string()).retry_after(std::time::Duration::from_secs(5))
            }
            RunError::Database(error) => error.into(),
        })?;
    let (run, findings) = state
        .app
        .reconciler
        .run_detail(summary.run_id)
        .await?
        .ok_or_else(|| ApiError::internal("run vanished"))?;
    Ok(Json(RunDetail { run, findings }))
}

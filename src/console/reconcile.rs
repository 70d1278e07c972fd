//! Reconciliation: each job with its schedule, what its latest run left
//! pending or could not resolve, recent runs (per job or all) with their
//! findings and repairs, and a run-now button per job (the reconciler's
//! own `run_job`, as `POST /admin/reconciliations/run/{job}` does).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleError;
use super::auth::{Console, CsrfForm, check_post};
use super::layout::{self, Section};
use crate::http::AppState;
use crate::reconcile::{Job, RunError};
use crate::store::reconcile::{FindingRecord, RunRecord};

/// Runs listed on the page.
pub const RUNS_SHOWN: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct RunsQuery {
    job: Option<String>,
}

fn job(text: &str) -> Result<Job, ConsoleError> {
    Job::parse(text)
        .ok_or_else(|| ConsoleError::NotFound(format!("no reconciliation job {text:?}")))
}

fn classification_badge(classification: &str) -> Markup {
    let class = match classification {
        "unresolvable" => "badge bad",
        "pending" => "badge warn",
        _ => "badge ok",
    };
    html! { span class=(class) { (classification) } }
}

fn findings_table(findings: &[&FindingRecord]) -> Markup {
    html! {
        table.findings {
            thead { tr {
                th scope="col" { "Kind" } th scope="col" { "Class" } th scope="col" { "Order / subject" }
                th scope="col" { "Detail" } th scope="col" { "Repair" } th scope="col" { "Worked" }
            } }
            tbody { @for f in findings { tr {
                td { (f.kind) }
                td { (classification_badge(&f.classification)) }
                td.mono {
                    @if let Some(id) = f.order_id { a href={ "/console/orders/" (id) } { (super::blotter::short(id)) } " " }
                    (f.subject.as_deref().unwrap_or(""))
                }
                td { (f.detail) }
                td { (f.action) }
                td { @match f.action_ok { Some(true) => "yes", Some(false) => "no", None => "—" } }
            } } }
        }
    }
}

fn runs_table(runs: &[RunRecord]) -> Markup {
    html! {
        table id="runs" {
            thead { tr {
                th scope="col" { "Run" } th scope="col" { "Job" } th scope="col" { "Trigger" }
                th scope="col" { "Started (UTC)" } th scope="col" class="num" { "Took" }
                th scope="col" class="num" { "Examined" } th scope="col" class="num" { "Findings" }
                th scope="col" class="num" { "Repaired" } th scope="col" { "Errors" }
            } }
            tbody { @for r in runs { tr {
                td { a href={ "/console/reconciliation/runs/" (r.run_id) } { "#" (r.run_id) } }
                td { (r.job) }
                td { (r.trigger) }
                td { (layout::time(r.started_at)) }
                td.num { @match r.finished_at { Some(end) => { ((end - r.started_at).num_milliseconds()) " ms" }, None => "running" } }
                td.num { (r.examined) }
                td.num { (r.findings) }
                td.num { (r.repaired) }
                td { @if let Some(errors) = r.errors.as_array().filter(|e| !e.is_empty()) { span.badge.bad { (errors.len()) } } }
            } } }
        }
    }
}

/// `GET /console/reconciliation[?job=]`.
pub async fn runs(
    State(state): State<Arc<AppState>>,
    console: Console,
    Query(query): Query<RunsQuery>,
) -> Result<Markup, ConsoleError> {
    let reconciler = &state.app.reconciler;
    let chosen = query
        .job
        .as_deref()
        .filter(|j| !j.is_empty())
        .map(job)
        .transpose()?;
    let runs = reconciler.runs(chosen.map(Job::as_str), RUNS_SHOWN).await?;
    // What each job's latest run left: pending, or for an operator.
    let mut open = Vec::new();
    for j in Job::ALL {
        if let Some(latest) = reconciler
            .runs(Some(j.as_str()), 1)
            .await?
            .into_iter()
            .next()
            && let Some((_, findings)) = reconciler.run_detail(latest.run_id).await?
        {
            open.extend(
                findings
                    .into_iter()
                    .filter(|f| f.classification != "resolvable"),
            );
        }
    }
    let schedules = state.app.settings.reconcile.schedules();
    let body = html! {
        h1 { "Reconciliation" }
        section id="jobs" aria-labelledby="jobs-h" {
            h2 id="jobs-h" { "Jobs" }
            table id="jobs-table" {
                thead { tr { th scope="col" { "Job" } th scope="col" { "Schedule (cron, with seconds)" } th scope="col" { "Runs" } @if layout::may_act(&console) { th scope="col" { "Run now" } } } }
                tbody { @for j in Job::ALL { tr {
                    th scope="row" { (j.as_str()) }
                    td.mono { (schedules.iter().find(|(k, _)| *k == j.as_str()).map_or("", |(_, s)| *s)) }
                    td { a href={ "/console/reconciliation?job=" (j.as_str()) } { "recent runs" } }
                    @if layout::may_act(&console) { td {
                        form method="post" action={ "/console/reconciliation/run/" (j.as_str()) } {
                            (layout::csrf_field(&console))
                            button type="submit" id={ "run-" (j.as_str()) } aria-label={ "Run " (j.as_str()) " now" } { "Run now" }
                        }
                    } }
                } } }
            }
        }
        section id="pending" aria-labelledby="pending-h" {
            h2 id="pending-h" { "Pending and unresolved (latest run of each job)" }
            @if open.is_empty() { p.muted { "Nothing: every difference the latest runs found was repaired." } }
            @else { (findings_table(&open.iter().collect::<Vec<_>>())) }
        }
        section id="recent" aria-labelledby="recent-h" {
            h2 id="recent-h" { "Recent runs" @if let Some(j) = chosen { " of " (j.as_str()) } }
            (runs_table(&runs))
        }
    };
    Ok(layout::page(
        "Reconciliation",
        Section::Reconciliation,
        Some(&console),
        body,
    ))
}

/// `GET /console/reconciliation/runs/{id}`.
pub async fn run(
    State(state): State<Arc<AppState>>,
    console: Console,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let not_found = || ConsoleError::NotFound(format!("no reconciliation run {id:?}"));
    let run_id: i64 = id.parse().map_err(|_| not_found())?;
    let (run, findings) = state
        .app
        .reconciler
        .run_detail(run_id)
        .await?
        .ok_or_else(not_found)?;
    let errors: Vec<String> = run
        .errors
        .as_array()
        .map(|e| {
            e.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let body = html! {
        h1 { "Run #" (run.run_id) " of " (run.job) }
        (runs_table(std::slice::from_ref(&run)))
        @for e in &errors { (layout::notice("error", e)) }
        h2 { "Findings" }
        @if findings.is_empty() { p.muted { "No differences found." } }
        @else { (findings_table(&findings.iter().collect::<Vec<_>>())) }
        p { a href="/console/reconciliation" { "All runs" } }
    };
    Ok(layout::page(
        "Run",
        Section::Reconciliation,
        Some(&console),
        body,
    ))
}

/// `POST /console/reconciliation/run/{job}`: runs it now (in its own
/// task, so closing the tab does not cut it short), then shows the run.
pub async fn run_now(
    State(state): State<Arc<AppState>>,
    console: Console,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let job = job(&name)?;
    check_post(&headers, &console, &form.csrf, true)?;
    tracing::info!(operator = %console.operator, job = job.as_str(), "console: run now");
    let reconciler = state.app.reconciler.clone();
    let summary = tokio::spawn(async move { reconciler.run_job(job).await })
        .await
        .map_err(|e| ConsoleError::Unavailable(format!("the run failed: {e}")))?
        .map_err(|error| match error {
            RunError::Busy(_) => ConsoleError::Conflict(error.to_string()),
            RunError::Database(error) => error.into(),
        })?;
    Ok(Redirect::to(&format!("/console/reconciliation/runs/{}", summary.run_id)).into_response())
}

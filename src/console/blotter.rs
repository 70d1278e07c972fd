//! The blotter: orders newest (or oldest) first, filtered by account,
//! symbol, status, step and "needs attention", keyset-paged (the cursor
//! is the last row's creation time and id; never OFFSET), each row saying
//! in words why it needs an operator, if it does. The script updates rows
//! in place from `/console/live/orders` with the same filters.

use std::sync::Arc;

use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::ConsoleError;
use super::auth::Console;
use super::layout::{self, Section};
use crate::app::console as app_console;
use crate::domain::TextEnum;
use crate::domain::lifecycle::{Status, Step, StepState};
use crate::http::AppState;
use crate::store::console::{BlotterQuery, BlotterRow};

/// Rows on one page.
pub const PAGE_ROWS: i64 = 50;

/// The "needs attention" choices: what each means, in the filter's words.
pub const ATTENTION: [(&str, &str); 4] = [
    ("any", "needs attention (any of these)"),
    ("parked", "parked: an operator must act"),
    ("unknown", "unknown outcome: resolving by evidence"),
    ("stuck", "stuck: no progress mid-step"),
];

/// The blotter's query string, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Params {
    pub account: Option<String>,
    pub symbol: Option<String>,
    pub status: Option<String>,
    pub step: Option<String>,
    pub attention: Option<String>,
    pub sort: Option<String>,
    pub after: Option<String>,
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The filters, checked.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub account: Option<String>,
    pub account_id: Option<Uuid>,
    pub symbol: Option<String>,
    pub status: Option<Status>,
    pub step: Option<Step>,
    pub attention: Option<&'static str>,
    pub oldest_first: bool,
    pub after: Option<(DateTime<Utc>, Uuid)>,
}

impl Filters {
    /// Checks the query string (the account is resolved by the caller).
    pub fn parse(params: &Params) -> Result<Self, ConsoleError> {
        let bad = |what: &str, text: &str, known: String| {
            ConsoleError::BadRequest(format!("no {what} {text:?}; {what}s: {known}"))
        };
        let status = given(&params.status)
            .map(|t| Status::parse(t).ok_or_else(|| bad("status", t, Status::spellings())))
            .transpose()?;
        let step = given(&params.step)
            .map(|t| Step::parse(t).ok_or_else(|| bad("step", t, Step::spellings())))
            .transpose()?;
        let attention = given(&params.attention)
            .map(|t| {
                ATTENTION
                    .iter()
                    .map(|(k, _)| *k)
                    .find(|k| *k == t)
                    .ok_or_else(|| ConsoleError::BadRequest(format!("no attention filter {t:?}")))
            })
            .transpose()?;
        let oldest_first = match given(&params.sort) {
            None | Some("newest") => false,
            Some("oldest") => true,
            Some(other) => {
                return Err(ConsoleError::BadRequest(format!(
                    "sort {other:?}: newest or oldest"
                )));
            }
        };
        let after = given(&params.after)
            .map(|t| {
                let parsed = t.split_once('~').and_then(|(at, id)| {
                    Some((
                        DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
                        Uuid::parse_str(id).ok()?,
                    ))
                });
                parsed.ok_or_else(|| ConsoleError::BadRequest("that page cursor is not one".into()))
            })
            .transpose()?;
        let symbol = given(&params.symbol).map(|s| s.to_ascii_uppercase());
        if symbol.as_ref().is_some_and(|s| s.len() > 32) {
            return Err(ConsoleError::BadRequest(
                "a symbol has at most 32 characters".into(),
            ));
        }
        Ok(Filters {
            account: given(&params.account).map(str::to_string),
            account_id: None,
            symbol,
            status,
            step,
            attention,
            oldest_first,
            after,
        })
    }

    /// The query string of these filters (without the cursor), for links.
    pub fn query_string(&self) -> String {
        let mut pairs = Vec::new();
        let mut push = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                pairs.push(format!("{k}={}", layout::encode(v)));
            }
        };
        push("account", self.account.as_deref());
        push("symbol", self.symbol.as_deref());
        push("status", self.status.map(|s| s.as_str()));
        push("step", self.step.map(|s| s.as_str()));
        push("attention", self.attention);
        push("sort", self.oldest_first.then_some("oldest"));
        pairs.join("&")
    }

    /// Whether a row (from a live update) belongs on this view.
    pub fn matches(&self, row: &BlotterRow, now: DateTime<Utc>, stuck_after_ms: u64) -> bool {
        let account = match (&self.account, self.account_id) {
            (None, _) => true,
            (Some(_), Some(id)) => id == row.account_id,
            (Some(_), None) => false,
        };
        account
            && self.symbol.as_ref().is_none_or(|s| *s == row.symbol)
            && self.status.is_none_or(|s| s == row.status)
            && self.step.is_none_or(|s| s == row.step)
            && self.attention.is_none_or(|a| {
                let why = attention(row, now, stuck_after_ms);
                why.is_some_and(|(kind, _)| a == "any" || a == kind)
            })
    }
}

/// Whether `row` needs an operator's eyes, and why, in words: its kind
/// (`parked`, `unknown`, `stuck`) and the sentence.
pub fn attention(
    row: &BlotterRow,
    now: DateTime<Utc>,
    stuck_after_ms: u64,
) -> Option<(&'static str, String)> {
    let problem = row
        .problem
        .as_deref()
        .map(|p| format!(" Last error: {p}."))
        .unwrap_or_default();
    let quiet = layout::ago(row.updated_at, now);
    if row.step == Step::Parked {
        let at = row.parked_step.map_or("?", |s| s.as_str());
        let unknown = if row.step_state == StepState::Unknown {
            " (its outcome is still unknown)"
        } else {
            ""
        };
        return Some((
            "parked",
            format!(
                "Parked at {at}{unknown} after {} attempts, {quiet} ago.{problem} Resume or cancel it.",
                row.attempts
            ),
        ));
    }
    if row.step_state == StepState::Unknown {
        return Some((
            "unknown",
            format!(
                "The {} call's outcome is unknown ({} attempts so far); orderd looks it up and resolves it by evidence.{problem}",
                row.step, row.attempts
            ),
        ));
    }
    let mid_step = Step::DRIVEN.contains(&row.step)
        || matches!(
            row.status,
            Status::PendingNew | Status::PendingCancel | Status::PendingReplace
        );
    let quiet_ms = (now - row.updated_at).num_milliseconds().max(0) as u64;
    if mid_step && quiet_ms >= stuck_after_ms {
        let next = if row.next_attempt_at > now {
            format!("next try in {}", layout::ago(now, row.next_attempt_at))
        } else {
            "next try overdue".to_string()
        };
        return Some((
            "stuck",
            format!(
                "No progress at {} ({}) for {quiet}; {} attempts, {next}.{problem}",
                row.step, row.step_state, row.attempts
            ),
        ));
    }
    None
}

/// The table's header row.
pub fn header() -> Markup {
    html! {
        tr {
            th scope="col" { "Order" }
            th scope="col" { "Account" }
            th scope="col" { "Symbol" }
            th scope="col" { "Side" }
            th scope="col" class="num" { "Filled / qty" }
            th scope="col" { "Status" }
            th scope="col" { "Step" }
            th scope="col" { "Needs attention" }
            th scope="col" { "Created" }
        }
    }
}

/// One order's row (also what a live update replaces it with).
pub fn row(r: &BlotterRow, now: DateTime<Utc>, stuck_after_ms: u64) -> Markup {
    let why = attention(r, now, stuck_after_ms);
    let class = why.as_ref().map_or("", |(kind, _)| kind);
    html! {
        tr id={ "order-" (r.order_id) } class=(class) data-status=(r.status.as_str()) data-step=(r.step.as_str()) {
            td {
                a href={ "/console/orders/" (r.order_id) } class="mono" { (short(r.order_id)) }
                br;
                span.muted.mono { (r.client_order_id.as_str()) }
            }
            td { (r.account) }
            td { (r.symbol) }
            td { (r.side.as_str()) " " (r.order_type.as_str()) @if let Some(p) = r.limit_price { " @ " (p.normalize()) } }
            td.num { (r.filled_qty.normalize()) " / " (r.qty.normalize()) }
            td { (layout::status_badge(r.status)) }
            td { (layout::step_badge(r.step, r.step_state)) }
            td.why {
                @match &why {
                    Some((_, text)) => { (text) },
                    None => { span.muted { "—" } },
                }
            }
            td { span title=(r.created_at.to_rfc3339()) { (layout::ago(r.created_at, now)) " ago" } }
        }
    }
}

/// The first 8 hex digits of an id after its time prefix would say
/// little; the last 12 tell orders apart.
pub fn short(id: Uuid) -> String {
    let text = id.simple().to_string();
    format!("…{}", &text[20..])
}

fn select(id: &str, label: &str, options: &[(&str, &str)], chosen: Option<&str>) -> Markup {
    html! {
        div {
            label for=(id) { (label) }
            select id=(id) name=(id) {
                option value="" selected[chosen.is_none()] { "any" }
                @for (value, text) in options {
                    option value=(value) selected[chosen == Some(*value)] { (text) }
                }
            }
        }
    }
}

fn filter_form(f: &Filters) -> Markup {
    let statuses: Vec<(&str, &str)> = Status::ALL
        .iter()
        .map(|s| (s.as_str(), s.as_str()))
        .collect();
    let steps: Vec<(&str, &str)> = Step::ALL.iter().map(|s| (s.as_str(), s.as_str())).collect();
    html! {
        form.filters method="get" action="/console/orders" aria-label="Filter orders" {
            div {
                label for="account" { "Account" }
                input type="text" id="account" name="account" value=[f.account.as_deref()] placeholder="name or id";
            }
            div {
                label for="symbol" { "Symbol" }
                input type="text" id="symbol" name="symbol" value=[f.symbol.as_deref()] placeholder="AAPL";
            }
            (select("status", "Status", &statuses, f.status.map(|s| s.as_str())))
            (select("step", "Step", &steps, f.step.map(|s| s.as_str())))
            (select("attention", "Needs attention", &ATTENTION, f.attention))
            div {
                label for="sort" { "Order" }
                select id="sort" name="sort" {
                    option value="newest" selected[!f.oldest_first] { "newest first" }
                    option value="oldest" selected[f.oldest_first] { "oldest first" }
                }
            }
            button type="submit" { "Filter" }
            a.button.secondary href="/console/orders" { "Clear" }
        }
    }
}

/// `GET /console/orders`.
pub async fn blotter(
    State(state): State<Arc<AppState>>,
    console: Console,
    Query(params): Query<Params>,
) -> Result<Markup, ConsoleError> {
    let app = &state.app;
    let stuck_after_ms = app.settings.console.stuck_after_ms;
    let mut filters = Filters::parse(&params)?;
    let mut note = None;
    if let Some(account) = &filters.account {
        filters.account_id = app_console::account_named(app, account).await?;
        if filters.account_id.is_none() {
            note = Some(format!("No account is named {account:?}."));
        }
    }
    let rows = if note.is_some() {
        Vec::new()
    } else {
        app_console::blotter(
            app,
            &BlotterQuery {
                account_id: filters.account_id,
                symbol: filters.symbol.clone(),
                status: filters.status,
                step: filters.step,
                attention: filters.attention,
                stuck_after_ms,
                oldest_first: filters.oldest_first,
                after: filters.after,
                limit: PAGE_ROWS,
            },
        )
        .await?
    };
    let counts = app_console::attention_counts(app).await?;
    let now = Utc::now();
    let query = filters.query_string();
    let next = (rows.len() as i64 == PAGE_ROWS)
        .then(|| rows.last())
        .flatten()
        .map(|last| {
            let cursor = format!("{}~{}", last.created_at.to_rfc3339(), last.order_id);
            format!("/console/orders?{query}&after={}", layout::encode(&cursor))
        });
    let live = format!("/console/live/orders?{query}");
    let card = |kind: &str, class: &str, count: i64, label: &str| {
        html! {
            a href={ "/console/orders?attention=" (kind) } {
                div id={ "card-" (kind) } class={ "card " @if count > 0 { (class) } } data-alert=(class) {
                    strong id={ "count-" (kind) } { (count) } (label)
                }
            }
        }
    };
    let body = html! {
        h1 { "Blotter" }
        div.summary aria-label="Orders that need attention" {
            (card("parked", "bad", counts.parked, "parked"))
            (card("unknown", "warn", counts.unknown, "unknown outcome"))
            (card("stuck", "warn", counts.stuck, "stuck"))
        }
        (filter_form(&filters))
        @if let Some(note) = &note { (layout::notice("error", note)) }
        p.live-status.muted id="live-status" role="status" { "Live updates: connecting…" }
        table id="blotter" data-live=(live) data-page-rows=(PAGE_ROWS)
            data-insert=(if filters.after.is_none() && !filters.oldest_first { "true" } else { "false" }) {
            caption.muted style="text-align:left" {
                (rows.len()) " orders"
                @if filters.after.is_some() { " (a later page)" }
                ", " @if filters.oldest_first { "oldest" } @else { "newest" } " first"
            }
            thead { (header()) }
            tbody id="orders" {
                @for r in &rows { (row(r, now, stuck_after_ms)) }
            }
        }
        @if rows.is_empty() && note.is_none() { p.muted { "No orders match." } }
        nav.pager aria-label="Pages" {
            @if filters.after.is_some() { a href={ "/console/orders?" (query) } { "First page" } }
            @if let Some(next) = &next { a href=(next) rel="next" { "Next page" } }
        }
    };
    Ok(layout::page(
        "Blotter",
        Section::Orders,
        Some(&console),
        body,
    ))
}

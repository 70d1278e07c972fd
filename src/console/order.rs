//! One order: its recovery-point timeline (every recorded step with its
//! intent, external call, key, outcome and timing), its fills with their
//! settlement, the trade updates its changes announced, quarantined venue
//! reports, the venue's and the ledger's view side by side (asked on
//! demand), what to grep the logs for, and — for an operator — resume and
//! cancel behind a confirmation, audited under the operator's name.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::ConsoleError;
use super::auth::{Console, CsrfForm, check_post};
use super::layout::{self, Section};
use crate::app::console::{self as app_console, Action, OrderDetail, OutsideView};
use crate::domain::lifecycle::{ActionState, Status, Step};
use crate::http::AppState;
use crate::http::request_id::RequestId;
use crate::store::events::{self, OrderEvent};
use crate::store::orders::OrderRecord;
use crate::store::recovery::OperatorAction;

#[derive(Debug, Default, Deserialize)]
pub struct OrderQuery {
    /// `1`: ask the venue and the ledger now.
    outside: Option<String>,
    /// What was just done (after an action's redirect).
    done: Option<String>,
}

fn order_id(text: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(text)
        .map_err(|_| ConsoleError::NotFound(format!("{text:?} is not an order id")))
}

fn action(text: &str) -> Result<Action, ConsoleError> {
    match text {
        "resume" => Ok(Action::Resume),
        "cancel" => Ok(Action::Cancel),
        _ => Err(ConsoleError::NotFound(format!("no action {text:?}"))),
    }
}

/// The external call behind a step, and the key it is made under.
fn call_of(step: Step, order: &OrderRecord) -> (&'static str, String) {
    let id = order.order_id;
    match step {
        Step::Reserve => ("ledger POST /v1/holds", crate::engine::keys::hold(id)),
        Step::Place => (
            "venue POST /v1/orders",
            format!("client_order_id {}", order.venue_client_order_id.as_str()),
        ),
        Step::Cancel => (
            "venue DELETE /v1/orders/{id}",
            order
                .venue_order_id
                .as_ref()
                .map_or("(no venue order id)".to_string(), |v| {
                    v.as_str().to_string()
                }),
        ),
        Step::Release => (
            "ledger release of the hold",
            crate::engine::keys::release(id),
        ),
        Step::Working => ("venue news (stream, catch-up)", "exec ids".to_string()),
        Step::Closed | Step::Parked => ("—", String::new()),
    }
}

/// What an action state means on the timeline.
fn meaning(state: ActionState) -> &'static str {
    match state {
        ActionState::Requested => "intent recorded (before the call)",
        ActionState::Succeeded => "succeeded",
        ActionState::Failed => "failed",
        ActionState::Unknown => "outcome unknown (resolved by evidence)",
    }
}

/// An event's detail as `key: value` pairs (but the request id, which
/// has its own column).
fn detail(value: &serde_json::Value) -> Markup {
    match value.as_object() {
        Some(map) if map.keys().any(|k| k != events::REQUEST_ID) => html! {
            @for (k, v) in map.iter().filter(|(k, _)| *k != events::REQUEST_ID) {
                span.mono { (k) ": " (v.as_str().map_or_else(|| v.to_string(), str::to_string)) } br;
            }
        },
        _ => html! { span.muted { "—" } },
    }
}

fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let ms = (to - from).num_milliseconds();
    if ms.abs() < 10_000 {
        format!("+{ms} ms")
    } else {
        format!("+{:.1} s", ms as f64 / 1000.0)
    }
}

fn timeline(order: &OrderRecord, events: &[OrderEvent]) -> Markup {
    html! {
        table id="timeline" {
            caption.muted style="text-align:left" { "Every recorded step, oldest first." }
            thead { tr {
                th scope="col" { "Time (UTC)" } th scope="col" class="num" { "After previous" }
                th scope="col" { "Step" } th scope="col" { "State" } th scope="col" { "External call" }
                th scope="col" { "Key" } th scope="col" { "Detail" } th scope="col" { "Request" } th scope="col" { "Instance" }
            } }
            tbody {
                @for (i, e) in events.iter().enumerate() {
                    @let (call, key) = call_of(e.step, order);
                    @let class = match e.state { ActionState::Failed => "parked", ActionState::Unknown => "unknown", _ => "" };
                    tr class=(class) {
                        td { (layout::time(e.created_at)) }
                        td.num { @if i > 0 { (millis_between(events[i - 1].created_at, e.created_at)) } }
                        td { (e.step.as_str()) }
                        td { span class={ "badge " (match e.state { ActionState::Succeeded => "ok", ActionState::Failed => "bad", ActionState::Unknown => "warn", ActionState::Requested => "" }) } { (e.state.as_str()) } br; span.muted { (meaning(e.state)) } }
                        td { (call) }
                        td.mono { (key) }
                        td { (detail(&e.detail)) }
                        td.mono.request { (events::request_of(&e.detail).unwrap_or_default()) }
                        td.mono { (e.instance_id.map(short_id).unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

/// The distinct request ids on the timeline, oldest first.
fn requests_of(events: &[OrderEvent]) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::new();
    for id in events.iter().filter_map(|e| events::request_of(&e.detail)) {
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    seen
}

fn short_id(id: Uuid) -> String {
    id.simple().to_string()[20..].to_string()
}

/// The trade updates the order's changes announced (`store::trade_updates`
/// sends one per status change traders see, and one per fill).
fn trade_updates(d: &OrderDetail) -> Vec<(DateTime<Utc>, String)> {
    let mut updates = Vec::new();
    for e in &d.events {
        if let Some(status) = e
            .detail
            .get("status")
            .and_then(|s| s.as_str())
            .and_then(Status::parse)
        {
            let event = match status {
                Status::Filled | Status::PartiallyFilled | Status::PendingNew => continue,
                other => other.as_str().to_string(),
            };
            updates.push((e.created_at, event));
        }
    }
    let mut cumulative = rust_decimal::Decimal::ZERO;
    for f in &d.fills {
        cumulative += f.qty;
        let event = if cumulative >= d.order.qty {
            "fill"
        } else {
            "partial_fill"
        };
        updates.push((
            f.transact_time,
            format!("{event} {} @ {}", f.qty.normalize(), f.price.normalize()),
        ));
    }
    updates.sort_by_key(|(at, _)| *at);
    updates
}

fn outside(order: &OrderRecord, view: &OutsideView) -> Markup {
    html! {
        div.grid2 id="outside" {
            section.panel aria-labelledby="ours" {
                h3 id="ours" { "orderd" }
                dl.kv {
                    dt { "status" } dd { (order.status.as_str()) }
                    dt { "filled" } dd { (order.filled_qty.normalize()) " @ " (order.filled_avg_price.map(|p| p.normalize().to_string()).unwrap_or("—".into())) }
                    dt { "venue order" } dd.mono { (order.venue_order_id.as_ref().map_or("—", |v| v.as_str())) }
                    dt { "hold" } dd.mono { (order.hold_id.as_ref().map_or("—", |h| h.as_str())) " " (order.hold_amount.map(|a| a.normalize().to_string()).unwrap_or_default()) }
                    @if let Some(original) = order.replaces {
                        dt { "replaces" } dd.mono { a href=(format!("/console/orders/{original}")) { (original) } }
                        dt { "carried in" } dd { (order.carried_qty.normalize()) @if !order.qty_confirmed { " (estimated; the venue has not confirmed it)" } }
                    }
                    @if let Some(replacement) = order.replaced_by {
                        dt { "replaced by" } dd.mono { a href=(format!("/console/orders/{replacement}")) { (replacement) } }
                    }
                }
            }
            section.panel aria-labelledby="theirs" {
                h3 id="theirs" { "The venue and the ledger, now" }
                dl.kv {
                    @match &view.venue {
                        Ok(Some(v)) => {
                            dt { "venue status" } dd { (v.status) }
                            dt { "venue filled" } dd { (v.filled_qty.normalize()) " @ " (v.filled_avg_price.map(|p| p.normalize().to_string()).unwrap_or("—".into())) }
                            dt { "venue order" } dd.mono { (v.id.as_str()) }
                        },
                        Ok(None) => { dt { "venue" } dd { "does not know this order" } },
                        Err(e) => { dt { "venue" } dd { "did not answer: " (e) } },
                    }
                    @match &view.hold {
                        Ok(Some(h)) => { dt { "hold" } dd { (h.status) ", " (h.remaining.normalize()) " of " (h.amount.normalize()) " " (h.asset) " left" } },
                        Ok(None) => { dt { "hold" } dd { "none at the ledger" } },
                        Err(e) => { dt { "hold" } dd { "the ledger did not answer: " (e) } },
                    }
                    @match &view.settlements {
                        Ok(s) => { dt { "settlements" } dd { (s.len()) @for x in s { br; span.mono { (x.idempotency_key.as_str()) } @if x.flagged { " (flagged: " (x.flag_reason.as_deref().unwrap_or("")) ")" } } } },
                        Err(e) => { dt { "settlements" } dd { "the ledger did not answer: " (e) } },
                    }
                }
            }
        }
    }
}

/// `GET /console/orders/{id}`.
pub async fn order(
    State(state): State<Arc<AppState>>,
    console: Console,
    Path(id): Path<String>,
    Query(query): Query<OrderQuery>,
) -> Result<Markup, ConsoleError> {
    let order_id = order_id(&id)?;
    let d = app_console::order_detail(&state.app, order_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no order {order_id}")))?;
    let view = if query.outside.is_some() {
        Some(app_console::outside_view(&state.app, &d.order).await)
    } else {
        None
    };
    let o = &d.order;
    let may_resume = o.step == Step::Parked;
    let may_cancel = !o.status.is_terminal() && o.cancel_requested_at.is_none();
    let body = html! {
        h1 { "Order " span.mono { (o.order_id) } }
        @if let Some(done) = &query.done { (layout::notice("ok", done)) }
        @if o.step == Step::Parked {
            (layout::notice("error", &format!("Parked at {}: an operator must resume or cancel it.", o.parked_step.map_or("?", |s| s.as_str()))))
        }
        div.grid2 {
            section.panel id="order" aria-labelledby="what-h" {
                h2 id="what-h" { "The order" }
                dl.kv {
                    dt { "client order id" } dd.mono { (o.client_order_id.as_str()) }
                    dt { "venue client id" } dd.mono { (o.venue_client_order_id.as_str()) }
                    dt { "order" } dd { (o.side.as_str()) " " (o.qty.normalize()) " " (o.symbol) " " (o.order_type.as_str()) @if let Some(p) = o.limit_price { " @ " (p.normalize()) } " " (o.time_in_force.as_str()) }
                    dt { "status" } dd { (layout::status_badge(o.status)) }
                    dt { "filled" } dd { (o.filled_qty.normalize()) " @ " (o.filled_avg_price.map(|p| p.normalize().to_string()).unwrap_or("—".into())) }
                    dt { "created" } dd { (layout::time(o.created_at)) }
                }
            }
            section.panel id="recovery" aria-labelledby="recovery-h" {
                h2 id="recovery-h" { "Recovery point" }
                dl.kv {
                    dt { "step" } dd { (layout::step_badge(o.step, o.step_state)) @if let Some(p) = o.parked_step { " (parked at " (p.as_str()) ")" } }
                    dt { "attempts" } dd { (o.attempts) }
                    dt { "next attempt" } dd { (layout::time(o.next_attempt_at)) }
                    dt { "driven by" } dd.mono { (o.lease_owner.map(short_id).unwrap_or("nobody".into())) @if let Some(t) = o.lease_token { " (claim " (claim_tag(t)) ")" } }
                    dt { "hold" } dd.mono { (o.hold_id.as_ref().map_or("—", |h| h.as_str())) }
                    dt { "venue order" } dd.mono { (o.venue_order_id.as_ref().map_or("—", |v| v.as_str())) }
                    dt { "cancel requested" } dd { (o.cancel_requested_at.map(|t| t.to_rfc3339()).unwrap_or("no".into())) }
                }
                @if layout::may_act(&console) && (may_resume || may_cancel) {
                    p {
                        @if may_resume { a.button href={ "/console/orders/" (o.order_id) "/resume" } { "Resume…" } " " }
                        @if may_cancel { a.button.secondary href={ "/console/orders/" (o.order_id) "/cancel" } { "Cancel order…" } }
                    }
                }
            }
        }
        h2 { "Timeline" }
        (timeline(o, &d.events))
        h2 { "Fills and their settlement" }
        @if d.fills.is_empty() { p.muted { "No fills." } } @else {
            table id="fills" {
                thead { tr { th scope="col" { "Exec id" } th scope="col" class="num" { "Qty" } th scope="col" class="num" { "Price" } th scope="col" { "Time (UTC)" } th scope="col" { "Source" } th scope="col" { "Settlement" } } }
                tbody { @for f in &d.fills { tr {
                    td.mono { (f.exec_id.as_str()) } td.num { (f.qty.normalize()) } td.num { (f.price.normalize()) }
                    td { (layout::time(f.transact_time)) } td { (f.source.to_string()) }
                    td { (f.settlement_state.to_string()) @if let Some(at) = f.settled_at { " at " (layout::time(at)) } }
                } } }
            }
        }
        h2 { "Trade updates announced" }
        @let updates = trade_updates(&d);
        @if updates.is_empty() { p.muted { "None yet." } } @else {
            ul { @for (at, event) in &updates { li { (layout::time(*at)) " " strong { (event) } } } }
        }
        @if !d.quarantined.is_empty() {
            h2 { "Quarantined venue reports (refused, kept for you)" }
            ul { @for q in &d.quarantined { li { (layout::time(q.received_at)) " " (q.source) ": " (q.reason) } } }
        }
        h2 { "The venue's and the ledger's view" }
        @match &view {
            Some(view) => { (outside(o, view)) },
            None => { p { a.button.secondary href={ "/console/orders/" (o.order_id) "?outside=1#outside" } { "Ask the venue and the ledger now" } } },
        }
        h2 { "Logs" }
        p {
            "Every log line about this order carries " code { "order_id=" (o.order_id) } " and "
            code { "client_order_id=" (o.client_order_id.as_str()) } " in its span (order, submit, execution, settlement). "
            "Its events were recorded by the instances listed on the timeline."
        }
        @let requests = requests_of(&d.events);
        @if !requests.is_empty() {
            p { "The requests that acted on it (each log line of a request carries its " code { "request_id" } "; the client sent or was answered it as " code { "X-Request-Id" } "):" }
            ul id="requests" { @for r in &requests { li { code { "request_id=" (r) } } } }
        }
    };
    Ok(layout::page("Order", Section::Orders, Some(&console), body))
}

/// `GET /console/orders/{id}/{resume|cancel}`: the confirmation.
pub async fn confirm(
    State(state): State<Arc<AppState>>,
    console: Console,
    Path((id, what)): Path<(String, String)>,
) -> Result<Markup, ConsoleError> {
    let order_id = order_id(&id)?;
    let action = action(&what)?;
    if !layout::may_act(&console) {
        return Err(ConsoleError::Forbidden(
            "your session is read-only (viewer)".into(),
        ));
    }
    let d = app_console::order_detail(&state.app, order_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no order {order_id}")))?;
    let o = &d.order;
    let (verb, consequence) = match action {
        Action::Resume => ("Resume", format!("orderd goes on at step {} with a fresh budget of attempts; an unknown outcome is still resolved by evidence.", o.parked_step.map_or("?", |s| s.as_str()))),
        Action::Cancel => ("Cancel", "orderd cancels it as its trader would (at the venue if it is there), resuming it first if it is parked.".to_string()),
    };
    let body = html! {
        h1 { (verb) " order " span.mono { (o.order_id) } "?" }
        p { (o.side.as_str()) " " (o.qty.normalize()) " " (o.symbol) ", " (o.status.as_str()) ", at step " (o.step.as_str()) " (" (o.step_state.as_str()) ")." }
        p { (consequence) }
        p { "It is recorded on the order's timeline as done by " strong { (console.operator) } "." }
        form method="post" action={ "/console/orders/" (o.order_id) "/" (what) } {
            (layout::csrf_field(&console))
            button type="submit" id="confirm" class=(if action == Action::Cancel { "danger" } else { "" }) { "Yes, " (verb.to_lowercase()) " it" }
            " "
            a.button.secondary href={ "/console/orders/" (o.order_id) } { "No, go back" }
        }
    };
    Ok(layout::page(
        "Confirm",
        Section::Orders,
        Some(&console),
        body,
    ))
}

/// `POST /console/orders/{id}/{resume|cancel}`.
pub async fn act(
    State(state): State<Arc<AppState>>,
    console: Console,
    request_id: RequestId,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let order_id = order_id(&id)?;
    let action = action(&what)?;
    check_post(&headers, &console, &form.csrf, true)?;
    let request = request_id.as_str();
    match app_console::act(&state.app, order_id, &console.operator, action, request).await? {
        OperatorAction::NotFound => Err(ConsoleError::NotFound(format!("no order {order_id}"))),
        OperatorAction::Refused(why) => Err(ConsoleError::Conflict(format!("refused: {why}"))),
        OperatorAction::Done(order) => {
            let done = format!(
                "{} by {}: now {} at step {} ({}).",
                if action == Action::Resume {
                    "Resumed"
                } else {
                    "Cancel requested"
                },
                console.operator,
                order.status,
                order.step,
                order.step_state
            );
            let to = format!("/console/orders/{order_id}?done={}", layout::encode(&done));
            Ok(Redirect::to(&to).into_response())
        }
    }
}

/// A claim token as an operator can read and compare it: its low 32 bits
/// in hex (tokens drawn by a claimer are 63 random bits, negative; the
/// sequence's are small positive numbers, shown the same way).
fn claim_tag(token: i64) -> String {
    format!("{:08x}", token as u64 & 0xffff_ffff)
}

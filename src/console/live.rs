//! Live updates over Server-Sent Events.
//!
//! Orders: the trade-update relay (`http::stream`) hands every note it
//! hears on Postgres NOTIFY to [`run_hub`] while a console is watching;
//! the hub gathers what arrived within [`HUB_BATCH`], reads those orders'
//! blotter rows once (one statement, whatever the number of consoles)
//! and broadcasts them; each `/console/live/orders` stream keeps the rows
//! its filters match and sends each rendered as the blotter renders it.
//! The script replaces the row in place, or inserts it on a first page.
//! A change of step alone announces nothing, so while a console watches
//! the hub also looks every [`ATTENTION_POLL`] at the orders needing
//! attention, pushes the rows that changed (or left) and the counts.
//!
//! Health: `/console/live/health` sends the chart numbers every second,
//! read from the same recorder `/metrics` renders.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::Utc;
use futures_util::Stream;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::ConsoleError;
use super::auth::Console;
use super::blotter::{self, Filters, Params};
use crate::http::AppState;

/// How long the hub gathers notes before reading their rows: at a
/// thousand orders a second that is one read of a few hundred rows.
pub const HUB_BATCH: Duration = Duration::from_millis(200);

/// Orders read at most per batch (more are left to the next).
pub const HUB_BATCH_ORDERS: usize = 500;

/// How often the hub looks again at the orders that need attention while
/// a console watches: a change of step alone (an order parked, resumed,
/// stuck as time passes) announces no trade update.
pub const ATTENTION_POLL: Duration = Duration::from_secs(2);

/// Orders needing attention the hub looks at, at most.
pub const ATTENTION_ROWS: i64 = 200;

/// Broadcasts the rows of changed orders to the console streams until
/// `shutdown`: those the relay announced, and those needing attention.
pub async fn run_hub(state: Arc<AppState>, shutdown: tokio::sync::watch::Receiver<bool>) {
    tokio::join!(
        announced(state.clone(), shutdown.clone()),
        needing_attention(state, shutdown)
    );
}

/// What the console shows of an order that needs attention: a change of
/// any of it is pushed.
type Seen = (
    chrono::DateTime<Utc>,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// Every [`ATTENTION_POLL`] while a console watches: the orders needing
/// attention whose row changed, those that no longer need it, and the
/// counts.
async fn needing_attention(state: Arc<AppState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut seen: std::collections::HashMap<Uuid, Seen> = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(ATTENTION_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // The next look, or the stop.
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if state.console_rows.receiver_count() == 0 {
            seen.clear();
            continue;
        }
        let app = &state.app;
        let stuck_after_ms = app.settings.console.stuck_after_ms;
        let query = crate::store::console::BlotterQuery {
            attention: Some("any"),
            stuck_after_ms,
            limit: ATTENTION_ROWS,
            ..Default::default()
        };
        let rows = match crate::app::console::blotter(app, &query).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "console: orders needing attention");
                continue;
            }
        };
        let now = Utc::now();
        let mut now_seen = std::collections::HashMap::with_capacity(rows.len());
        let mut changed = Vec::new();
        for row in rows {
            let kind = blotter::attention(&row, now, stuck_after_ms).map(|(kind, _)| kind);
            let key = (
                row.updated_at,
                row.status.as_str(),
                row.step.as_str(),
                row.step_state.as_str(),
                kind,
            );
            if seen.get(&row.order_id) != Some(&key) {
                changed.push(row.order_id);
            }
            now_seen.insert(row.order_id, key);
        }
        // Those that left: resumed, canceled, done.
        changed.extend(seen.keys().filter(|id| !now_seen.contains_key(id)));
        seen = now_seen;
        if !changed.is_empty() {
            match crate::app::console::blotter_rows(app, &changed).await {
                Ok(rows) if !rows.is_empty() => {
                    let _ = state.console_rows.send(Arc::new(rows));
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "console live rows"),
            }
        }
        match crate::app::console::attention_counts(app).await {
            Ok(counts) => {
                state.console_counts.send_if_modified(|old| {
                    let modified = *old != counts;
                    *old = counts;
                    modified
                });
            }
            Err(error) => tracing::warn!(%error, "console: attention counts"),
        }
    }
}

/// Reads the rows of the orders the relay announced, gathered for
/// [`HUB_BATCH`], and broadcasts them.
async fn announced(state: Arc<AppState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut notes = state.console_notes.subscribe();
    loop {
        let first = tokio::select! {
            // The next note, or the stop.
            note = notes.recv() => note,
            _ = shutdown.changed() => return,
        };
        let mut ids = BTreeSet::new();
        match first {
            Ok(note) => {
                ids.insert(note.order_id);
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "console live updates fell behind; some rows not pushed"
                );
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
        let gather = tokio::time::sleep(HUB_BATCH);
        tokio::pin!(gather);
        while ids.len() < HUB_BATCH_ORDERS {
            tokio::select! {
                // More notes until the batch's time is up.
                note = notes.recv() => match note {
                    Ok(note) => { ids.insert(note.order_id); }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = &mut gather => break,
            }
        }
        let ids: Vec<Uuid> = ids.into_iter().collect();
        match crate::app::console::blotter_rows(&state.app, &ids).await {
            Ok(rows) if !rows.is_empty() => {
                let _ = state.console_rows.send(Arc::new(rows));
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "console live rows"),
        }
    }
}

/// `GET /console/live/orders?<the blotter's filters>`.
pub async fn orders(
    State(state): State<Arc<AppState>>,
    _console: Console,
    Query(params): Query<Params>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ConsoleError> {
    let mut filters = Filters::parse(&params)?;
    if let Some(account) = &filters.account {
        filters.account_id = crate::app::console::account_named(&state.app, account).await?;
    }
    let stuck_after_ms = state.app.settings.console.stuck_after_ms;
    let rows = state.console_rows.subscribe();
    let hello =
        futures_util::stream::once(async { Ok(Event::default().event("hello").data("live")) });
    let updates = futures_util::stream::unfold(rows, move |mut rows| {
        let filters = filters.clone();
        async move {
            loop {
                match rows.recv().await {
                    Ok(batch) => {
                        let now = Utc::now();
                        let events: Vec<Result<Event, Infallible>> = batch
                            .iter()
                            .filter(|row| filters.matches(row, now, stuck_after_ms))
                            .map(|row| {
                                let html = blotter::row(row, now, stuck_after_ms).into_string();
                                Ok(Event::default().event("order").data(html))
                            })
                            .collect();
                        if !events.is_empty() {
                            return Some((futures_util::stream::iter(events), rows));
                        }
                    }
                    // A slow console misses rows; it says so.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let missed = vec![Ok(Event::default().event("lagged").data("reload"))];
                        return Some((futures_util::stream::iter(missed), rows));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    // The counts of orders needing attention, whenever they change.
    let counts =
        futures_util::stream::unfold(state.console_counts.subscribe(), |mut counts| async move {
            counts.changed().await.ok()?;
            let now = *counts.borrow_and_update();
            let event = Event::default()
                .event("attention")
                .data(serde_json::to_string(&now).unwrap_or_default());
            Some((Ok(event), counts))
        });
    use futures_util::StreamExt;
    let stream = futures_util::stream::select(hello.chain(updates.flatten()), counts)
        .take_until(stopping(&state));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `GET /console/live/health`: the chart numbers, every second.
pub async fn health(
    State(state): State<Arc<AppState>>,
    _console: Console,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = super::health::Sampler::default();
    let ticks =
        futures_util::stream::unfold((state.clone(), start), |(state, mut sampler)| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let point = match crate::app::health::metrics_text(&state.app).await {
                Ok(text) => sampler.sample(&text),
                Err(error) => {
                    tracing::warn!(%error, "console health numbers");
                    None
                }
            };
            let event = match point {
                Some(point) => Event::default()
                    .event("numbers")
                    .data(serde_json::to_string(&point).unwrap_or_default()),
                None => Event::default().comment("no numbers"),
            };
            Some((Ok(event), (state, sampler)))
        });
    use futures_util::StreamExt;
    Sse::new(ticks.take_until(stopping(&state))).keep_alive(KeepAlive::default())
}

/// Completes when the server starts to stop: a live stream never ends by
/// itself, and the drain would wait for it.
fn stopping(state: &AppState) -> impl std::future::Future<Output = ()> + use<> {
    let mut stopping = state.stopping.subscribe();
    async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }
}

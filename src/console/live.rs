//! Live updates over Server-Sent Events.
//!
//! Orders: the trade-update relay (`http::stream`) hands every note it
//! hears on Postgres NOTIFY to [`run_hub`] while a console is watching;
//! the hub gathers what arrived within [`HUB_BATCH`], reads those orders'
//! blotter rows once (one statement, whatever the number of consoles)
//! and broadcasts them; each `/console/live/orders` stream keeps the rows
//! its filters match and sends each rendered as the blotter renders it.
//! The script replaces the row in place, or inserts it on a first page.
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

/// Reads the rows of the orders the relay announced and broadcasts them
/// to the console streams, until `shutdown`.
pub async fn run_hub(state: Arc<AppState>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
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
    use futures_util::StreamExt;
    let stream = hello.chain(updates.flatten()).take_until(stopping(&state));
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

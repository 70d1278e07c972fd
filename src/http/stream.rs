//! `/stream`: Alpaca's `trade_updates` websocket. A client authenticates
//! (`{"action":"authenticate","data":{"key_id","secret_key"}}`), listens
//! (`{"action":"listen","data":{"streams":["trade_updates"]}}`), and gets
//! its account's order events. Events come from Postgres NOTIFY, sent after
//! the change they announce has committed (`store::trade_updates`), so a
//! client connected to any instance sees its account's events and never one
//! that was rolled back; delivery is best effort, as Alpaca's is.
//!
//! Each instance renders an event once (the order read, and for a fill the
//! position from the ledger), and only if a session of its account is
//! authenticated here; the rendered frame goes to every listening session
//! of that account as is.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::alpaca::order_json;
use super::error::ApiError;
use super::state::{AppState, RenderedUpdate, SessionSlot, TRADE_UPDATE_BUFFER};
use crate::app::{account, queries};
use crate::metrics::names;
use crate::store::accounts::Account;
use crate::store::trade_updates::{self, TradeUpdateNote};
/// A client must authenticate within this time.
pub const AUTH_LIMIT: Duration = Duration::from_secs(10);

/// The namespace of the UUIDs shown as `execution_id` (alpaca-py parses it
/// as a UUID; venue exec ids are not).
const EXECUTION_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7264_4000_8000_6578_6563_7321);

/// Forwards Postgres notifications to this instance's stream clients until
/// `shutdown`: a notification of an account with a session here is queued
/// (the listener is drained at once, whatever the renders' pace), rendered
/// once, and broadcast to the sessions.
pub async fn relay_notifications(
    state: Arc<AppState>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let (queue, queued) = mpsc::channel(TRADE_UPDATE_BUFFER);
    tokio::select! {
        // The relay ends at the stop (renders in flight are reads: dropped).
        () = relay(state.clone(), queue, shutdown) => {}
        () = render_queued(state, queued) => {}
    }
}

/// Queues the notes of accounts connected here, until `shutdown`. sqlx's
/// listener reconnects by itself.
async fn relay(
    state: Arc<AppState>,
    queue: mpsc::Sender<(TradeUpdateNote, Arc<Account>)>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut listener = loop {
        match trade_updates::subscribe(&state.app.pool).await {
            Ok(listener) => break listener,
            Err(error) => tracing::error!(%error, "listening for trade updates"),
        }
        tokio::select! {
            // Retry, or stop.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    };
    loop {
        let notification = tokio::select! {
            // The next notification, or the stop.
            n = listener.recv() => n,
            _ = shutdown.changed() => return,
        };
        match notification {
            Ok(notification) => {
                match serde_json::from_str::<TradeUpdateNote>(notification.payload()) {
                    Ok(note) => {
                        // A console watching here gets every note.
                        if state.console_rows.receiver_count() > 0 {
                            let _ = state.console_notes.send(note.clone());
                        }
                        // Nobody's here: nothing to render.
                        let Some(account) = state.stream_sessions.connected(note.account_id) else {
                            continue;
                        };
                        if queue.try_send((note, account)).is_err() {
                            metrics::counter!(names::TRADE_UPDATES_DROPPED).increment(1);
                            tracing::warn!("trade updates rendering too slowly; one dropped");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "unreadable trade update"),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "trade-update listener; reconnecting");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Renders the queued notes, up to `http.stream_render_concurrency` at
/// once, and broadcasts them in the order they were announced (so each
/// account's events keep theirs).
async fn render_queued(
    state: Arc<AppState>,
    queued: mpsc::Receiver<(TradeUpdateNote, Arc<Account>)>,
) {
    let concurrency = state.app.settings.http.stream_render_concurrency.max(1);
    let notes = futures_util::stream::unfold(queued, |mut queued| async move {
        queued.recv().await.map(|item| (item, queued))
    });
    let mut rendered = std::pin::pin!(
        notes
            .map(|(note, account)| {
                let state = state.clone();
                async move {
                    let frame = trade_update(&state, &account, &note).await?;
                    Some(RenderedUpdate {
                        account_id: note.account_id,
                        frame: Utf8Bytes::from(frame.to_string()),
                    })
                }
            })
            .buffered(concurrency)
    );
    while let Some(update) = rendered.next().await {
        // No receivers is fine: the sessions have gone since.
        if let Some(update) = update {
            let _ = state.trade_updates.send(update);
        }
    }
}

/// `GET /stream` (websocket upgrade).
pub async fn upgrade(State(state): State<Arc<AppState>>, ws: WebSocketUpgrade) -> Response {
    let Some(slot) = state.stream_sessions.connect() else {
        metrics::counter!(names::STREAM_SESSIONS_REFUSED, "reason" => "instance").increment(1);
        return ApiError::unavailable("too many stream sessions on this instance; retry shortly")
            .retry_after(Duration::from_secs(1))
            .into_response();
    };
    let limit = state.app.settings.http.stream_message_max_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| session(state, socket, slot))
}

#[derive(Debug, Deserialize)]
struct ClientMessage {
    action: String,
    #[serde(default)]
    data: Value,
    // The older form: {"action":"auth","key":..,"secret":..}.
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

fn frame(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

fn unauthorized() -> Value {
    json!({"stream": "authorization",
        "data": {"status": "unauthorized", "action": "authenticate"}})
}

/// Says `last` and closes the session.
async fn end(socket: &mut WebSocket, last: Value) {
    let _ = socket.send(frame(last)).await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn session(state: Arc<AppState>, mut socket: WebSocket, mut slot: SessionSlot) {
    // Subscribe first: nothing between authentication and listening is lost.
    let mut updates = state.trade_updates.subscribe();
    let (account, credentials) = match authenticate(&state, &mut socket).await {
        Some(authenticated) => authenticated,
        None => {
            return end(&mut socket, unauthorized()).await;
        }
    };
    if !state.stream_sessions.authenticate(&mut slot, &account) {
        metrics::counter!(names::STREAM_SESSIONS_REFUSED, "reason" => "account").increment(1);
        return end(
            &mut socket,
            json!({"stream": "error",
                "data": {"code": 406, "message": "connection limit exceeded"}}),
        )
        .await;
    }
    let _ = socket
        .send(frame(json!({"stream": "authorization",
            "data": {"status": "authorized", "action": "authenticate"}})))
        .await;
    let mut listening = false;
    // The key is checked again as often as the REST API would: a revoked
    // key's session ends within http.auth_cache_ms.
    let mut recheck = tokio::time::interval(
        Duration::from_millis(state.app.settings.http.auth_cache_ms)
            .max(Duration::from_millis(100)),
    );
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.tick().await;
    loop {
        tokio::select! {
            // The key's recheck ...
            _ = recheck.tick() => {
                if let Ok(None) = account::authenticate(&state.app, &credentials.0, &credentials.1).await {
                    return end(&mut socket, unauthorized()).await;
                }
            }
            // ... a client message (listen, or goodbye) ...
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(message) = serde_json::from_str::<ClientMessage>(&text)
                        && message.action == "listen"
                    {
                        let streams: Vec<String> = message.data["streams"]
                            .as_array()
                            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                            .unwrap_or_default();
                        listening = streams.iter().any(|s| s == "trade_updates");
                        let shown: Vec<&str> = if listening { vec!["trade_updates"] } else { vec![] };
                        if socket.send(frame(json!({"stream": "listening", "data": {"streams": shown}}))).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            // ... or an update for some account.
            update = updates.recv() => match update {
                Ok(update) if listening && update.account_id == account.account_id => {
                    if socket.send(Message::Text(update.frame)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "trade-update client too slow; disconnecting");
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// The account a session's first message authenticates, with the key id
/// and secret it did so with.
async fn authenticate(
    state: &AppState,
    socket: &mut WebSocket,
) -> Option<(Account, (String, String))> {
    let first = tokio::time::timeout(AUTH_LIMIT, socket.recv())
        .await
        .ok()??
        .ok()?;
    let Message::Text(text) = first else {
        return None;
    };
    let message: ClientMessage = serde_json::from_str(&text).ok()?;
    let (key_id, secret) = match message.action.as_str() {
        "authenticate" => (
            message.data["key_id"].as_str()?.to_string(),
            message.data["secret_key"].as_str()?.to_string(),
        ),
        "auth" => (message.key?, message.secret?),
        _ => return None,
    };
    let account = account::authenticate(&state.app, &key_id, &secret)
        .await
        .ok()??;
    Some((account, (key_id, secret)))
}

/// The `trade_updates` message of `note`, rendered once per instance for
/// every session of the account (counted: `orderd_stream_renders_total`).
async fn trade_update(
    state: &AppState,
    account: &Account,
    note: &TradeUpdateNote,
) -> Option<Value> {
    metrics::counter!(names::STREAM_RENDERS).increment(1);
    let order = queries::order(&state.app, account.account_id, note.order_id)
        .await
        .ok()??;
    let mut data = json!({
        "event": note.event,
        "order": order_json(&order),
        "timestamp": note.timestamp,
    });
    if let Some(exec_id) = &note.execution_id {
        data["execution_id"] = json!(Uuid::new_v5(
            &EXECUTION_ID_NAMESPACE,
            exec_id.as_str().as_bytes()
        ));
        data["venue_execution_id"] = json!(exec_id);
        data["price"] = json!(note.price.map(|p| p.normalize().to_string()));
        data["qty"] = json!(note.qty.map(|q| q.normalize().to_string()));
        // The position after this fill, from the ledger of record.
        if let Some(qty) = account::position_qty(&state.app, account, &order.symbol).await {
            data["position_qty"] = json!(qty.normalize().to_string());
        }
    }
    Some(json!({ "stream": "trade_updates", "data": data }))
}

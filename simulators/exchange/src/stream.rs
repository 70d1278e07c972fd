//! The `/v1/stream` websocket: auth, then every execution report with a
//! per-connection gap-free `seq`, heartbeats, and the stream faults
//! (drop, duplicate, out-of-order, disconnect).
//!
//! Each connection reads the shared broadcast ring; a connection that falls
//! `stream_queue_len` reports behind is closed as a slow consumer, so a slow
//! client never stalls the venue.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::api::ApiError;
use crate::app::Shared;
use crate::faults::{Fault, FaultProfile, roll};
use crate::market::ExecReport;
use crate::wire::{
    StreamAuthRequest, StreamAuthResponse, StreamError, StreamExecutionReport, StreamHeartbeat,
    codes,
};

/// Time a client has to send its `auth` message.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Time one send may take before the client is considered stuck.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a held-back (out-of-order) or duplicated report waits at most
/// before it is delivered.
const HOLD_FLUSH: Duration = Duration::from_millis(20);
/// Largest message accepted from a client.
const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => ws
            .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
            .on_upgrade(move |socket| run_connection(shared, socket)),
        Err(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::VALIDATION,
            "websocket upgrade required",
        )
        .into_response(),
    }
}

/// Why a connection ended (for the debug log).
#[derive(Debug)]
enum End {
    ClientClosed,
    SendFailed,
    FaultDisconnect,
    SlowConsumer,
    Shutdown,
}

struct Connection {
    socket: WebSocket,
    /// Last seq assigned on this connection.
    seq: u64,
    rng: ChaCha8Rng,
    faults: FaultProfile,
    faults_version: u64,
    /// Report held back by the out-of-order fault.
    held: Option<Arc<ExecReport>>,
    /// Reports to send again (duplicate fault).
    duplicates: Vec<Arc<ExecReport>>,
    /// When `held`/`duplicates` must be flushed at the latest.
    flush_at: Option<Instant>,
}

async fn run_connection(shared: Arc<Shared>, mut socket: WebSocket) {
    let authorized = match tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => {
            serde_json::from_str::<StreamAuthRequest>(text.as_str())
                .map(|a| a.action == "auth" && a.key == shared.config.api_key)
                .unwrap_or(false)
        }
        _ => false,
    };
    if !authorized {
        let error = StreamError {
            kind: "error".into(),
            code: codes::UNAUTHORIZED,
            message: "not authorized: send {\"action\":\"auth\",\"key\":\"<api key>\"} first"
                .into(),
        };
        if let Ok(text) = serde_json::to_string(&error) {
            let _ =
                tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await;
        }
        let _ = close(&mut socket, close_code::POLICY, "not authorized").await;
        return;
    }
    // Subscribe before confirming, so every report after the confirmation is delivered.
    let mut reports = shared.reports.subscribe();
    let ack = StreamAuthResponse {
        kind: "auth".into(),
        status: "authorized".into(),
    };
    let Ok(text) = serde_json::to_string(&ack) else {
        return;
    };
    if !matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    ) {
        return;
    }

    let connection_no = shared
        .counters
        .connections_opened
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    shared
        .counters
        .connections_open
        .fetch_add(1, Ordering::Relaxed);
    let mut conn = Connection {
        socket,
        seq: 0,
        rng: ChaCha8Rng::seed_from_u64(shared.config.seed ^ connection_no.rotate_left(32)),
        faults: shared.faults(),
        faults_version: shared.faults_version.load(Ordering::Acquire),
        held: None,
        duplicates: Vec::new(),
        flush_at: None,
    };
    let heartbeat_period = Duration::from_millis(shared.config.heartbeat_ms);
    let mut heartbeat =
        tokio::time::interval_at(Instant::now() + heartbeat_period, heartbeat_period);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = shared.shutdown.clone();
    let mut kick = shared.kick.subscribe();

    let end = loop {
        let flush_at = conn.flush_at;
        tokio::select! {
            received = reports.recv() => match received {
                Ok(report) => {
                    conn.refresh_faults(&shared);
                    if let Err(end) = conn.deliver(&shared, report).await {
                        break end;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    shared.counters.slow_consumer_disconnects.fetch_add(1, Ordering::Relaxed);
                    let error = StreamError {
                        kind: "error".into(),
                        code: codes::RATE_LIMIT,
                        message: "slow consumer: too many undelivered reports".into(),
                    };
                    let _ = conn.send_json(&error).await;
                    break End::SlowConsumer;
                }
                Err(RecvError::Closed) => break End::Shutdown,
            },
            _ = heartbeat.tick() => {
                if let Err(end) = conn.flush(&shared).await {
                    break end;
                }
                let beat = StreamHeartbeat { kind: "heartbeat".into(), seq: conn.seq, time: Utc::now() };
                if let Err(end) = conn.send_json(&beat).await {
                    break end;
                }
            }
            _ = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                if let Err(end) = conn.flush(&shared).await {
                    break end;
                }
            }
            incoming = conn.socket.recv() => match incoming {
                // Pings are answered by the websocket layer; other client
                // messages after auth are ignored.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break End::ClientClosed,
                Some(Ok(_)) => {}
            },
            _ = crate::app::stopped(&mut shutdown) => break End::Shutdown,
            // An operator's `POST /admin/disconnect`.
            _ = kick.changed() => break End::FaultDisconnect,
        }
    };
    match end {
        End::FaultDisconnect => {
            let _ = close(
                &mut conn.socket,
                close_code::AGAIN,
                "disconnect (simulated)",
            )
            .await;
        }
        End::SlowConsumer => {
            let _ = close(&mut conn.socket, close_code::POLICY, "slow consumer").await;
        }
        End::Shutdown => {
            let _ = close(&mut conn.socket, close_code::AWAY, "shutting down").await;
        }
        End::ClientClosed | End::SendFailed => {}
    }
    shared
        .counters
        .connections_open
        .fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(
        ?end,
        connection_no,
        last_seq = conn.seq,
        "stream connection ended"
    );
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) -> Result<(), ()> {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

impl Connection {
    fn refresh_faults(&mut self, shared: &Shared) {
        let version = shared.faults_version.load(Ordering::Acquire);
        if version != self.faults_version {
            self.faults = shared.faults();
            self.faults_version = version;
        }
    }

    /// Applies the stream faults to one report and sends what is to be sent.
    async fn deliver(&mut self, shared: &Shared, report: Arc<ExecReport>) -> Result<(), End> {
        if roll(&mut self.rng, self.faults.disconnect) {
            shared.fault_counters.record(Fault::Disconnect);
            return Err(End::FaultDisconnect);
        }
        if roll(&mut self.rng, self.faults.drop_report) {
            // The seq is consumed: the client sees the gap.
            shared.fault_counters.record(Fault::DropReport);
            self.seq += 1;
            return Ok(());
        }
        if self.held.is_none() && roll(&mut self.rng, self.faults.out_of_order_report) {
            shared.fault_counters.record(Fault::OutOfOrderReport);
            self.held = Some(report);
            self.flush_at
                .get_or_insert_with(|| Instant::now() + HOLD_FLUSH);
            return Ok(());
        }
        self.send_report(shared, &report).await?;
        if let Some(held) = self.held.take() {
            self.send_report(shared, &held).await?;
        }
        if roll(&mut self.rng, self.faults.duplicate_report) {
            shared.fault_counters.record(Fault::DuplicateReport);
            self.duplicates.push(report);
            self.flush_at
                .get_or_insert_with(|| Instant::now() + HOLD_FLUSH);
        }
        if self.held.is_none() && self.duplicates.is_empty() {
            self.flush_at = None;
        }
        Ok(())
    }

    /// Sends whatever was held back or is due for duplication.
    async fn flush(&mut self, shared: &Shared) -> Result<(), End> {
        self.flush_at = None;
        if let Some(held) = self.held.take() {
            self.send_report(shared, &held).await?;
        }
        for report in std::mem::take(&mut self.duplicates) {
            self.send_report(shared, &report).await?;
        }
        Ok(())
    }

    async fn send_report(&mut self, shared: &Shared, report: &ExecReport) -> Result<(), End> {
        self.seq += 1;
        let message = StreamExecutionReport::new(self.seq, report);
        self.send_json(&message).await?;
        shared.counters.reports_sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn send_json(&mut self, message: &impl serde::Serialize) -> Result<(), End> {
        let text = serde_json::to_string(message).map_err(|_| End::SendFailed)?;
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Text(text.into()))).await
        {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::SendFailed),
        }
    }
}

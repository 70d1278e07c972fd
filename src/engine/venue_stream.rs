//! The venue's execution-report stream: connect, authenticate, read
//! reports, and hand them to the appliers through bounded channels. Gaps in
//! the per-connection `seq` (a dropped report, shown by a later report or a
//! heartbeat), silent stalls and reconnects all trigger a REST catch-up, so
//! nothing the stream loses is lost. Reconnects back off with jitter.
//!
//! Its lag, two numbers kept in memory ([`Progress`]) and set as gauges:
//! of the last report applied, the venue's timestamp (`transact_time`) to
//! the commit of its apply (`orderd_venue_stream_lag_seconds`); and the
//! time since the holder last received a report
//! (`orderd_venue_stream_last_report_age_seconds`, which grows in a quiet
//! market). The lease keeper writes both to the lease's row in its
//! renewal (once a second, never per report), so every instance's
//! console shows the holder's.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::Engine;
use crate::domain::lifecycle::VenueStatus;
use crate::domain::lifecycle::backoff;
use crate::metrics::names;
use crate::store::executions::{
    self as fill_store, Applied, Execution, ExecutionFill, FillSource, VENUE_STREAM_LEASE,
};
use crate::store::reconcile as lease;
use crate::venues::exchange::{ExecutionReport, StreamMessage, stream_auth_message};

/// Appliers working in parallel; reports of one order always go to the same
/// one, so they are applied in arrival order.
pub const APPLIER_SHARDS: usize = 8;
/// Most reports an applier writes in one transaction.
pub const APPLIER_BATCH: usize = 16;
/// Reports buffered per applier before the reader waits (backpressure
/// instead of unbounded memory).
pub const APPLIER_QUEUE_LEN: usize = 1024;
/// How long the venue may take to answer the auth message.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff bounds.
pub const RECONNECT_BASE: Duration = Duration::from_millis(100);
pub const RECONNECT_CAP: Duration = Duration::from_secs(5);
/// A session that lasted this long resets the reconnect backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("websocket: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("not authorized: {0}")]
    Auth(String),
    #[error("no message for {0:?}: stalled")]
    Stall(Duration),
    #[error("closed by the venue")]
    Closed,
    #[error("the venue reported an error: {0}")]
    Venue(String),
    #[error("appliers stopped")]
    AppliersGone,
    #[error("the venue stream lease was taken over")]
    LeaseLost,
}

/// What the holder knows of its stream's progress, shared by the reader,
/// the appliers and the lease keeper.
#[derive(Debug, Default)]
struct Progress {
    state: Mutex<ProgressState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ProgressState {
    /// When the last report was received.
    received: Option<Instant>,
    /// The venue's timestamp to the apply's commit, of the last report
    /// applied, in milliseconds.
    lag_ms: Option<f64>,
}

impl Progress {
    fn with<T>(&self, f: impl FnOnce(&mut ProgressState) -> T) -> T {
        // A panic elsewhere while holding it leaves plain numbers behind.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// A new holding starts with nothing known, and a holding that ended
    /// leaves nothing behind: the gauges say "no value" (NaN) rather than
    /// the last lag of a stream this instance no longer reads.
    fn reset(&self) {
        self.with(|s| *s = ProgressState::default());
        metrics::gauge!(names::STREAM_LAG).set(f64::NAN);
        metrics::gauge!(names::STREAM_LAST_REPORT_AGE).set(f64::NAN);
    }

    fn received(&self) {
        self.with(|s| s.received = Some(Instant::now()));
    }

    /// A report the venue stamped `venue_time` was just applied.
    fn applied(&self, venue_time: DateTime<Utc>) {
        let lag_ms = ((Utc::now() - venue_time)
            .num_microseconds()
            .unwrap_or(i64::MAX) as f64
            / 1000.0)
            .max(0.0);
        self.with(|s| s.lag_ms = Some(lag_ms));
        metrics::gauge!(names::STREAM_LAG).set(lag_ms / 1000.0);
    }

    /// (milliseconds since the last report was received, the last lag),
    /// with the age's gauge set.
    fn read(&self) -> (Option<f64>, Option<f64>) {
        let state = self.with(|s| *s);
        let age_ms = state.received.map(|at| at.elapsed().as_secs_f64() * 1000.0);
        if let Some(age) = age_ms {
            metrics::gauge!(names::STREAM_LAST_REPORT_AGE).set(age / 1000.0);
        }
        (age_ms, state.lag_ms)
    }
}

/// Renews the lease until it is taken over, or cannot be renewed for a
/// whole TTL; then returns. Renewals go over a connection of their own
/// (never the pool: a saturated pool must not cost a live holder its
/// lease), reconnected when it drops. Each renewal writes the stream's
/// [`Progress`] to the lease's row in the same statement.
async fn keep_lease(engine: &Engine, token: i64, progress: &Progress) {
    use sqlx::ConnectOptions;
    let mut conn: Option<sqlx::PgConnection> = None;
    let mut last_renewed = tokio::time::Instant::now();
    let ttl = Duration::from_millis(STREAM_LEASE_TTL_MS);
    loop {
        tokio::time::sleep(STREAM_LEASE_RENEW).await;
        if conn.is_none() {
            // The pool's options as they are now (a failover moves them).
            conn = engine
                .pool
                .connect_options()
                .as_ref()
                .clone()
                .application_name("orderd-stream-lease")
                .connect()
                .await
                .ok();
        }
        let (age_ms, lag_ms) = progress.read();
        let renewed = match conn.as_mut() {
            Some(c) => {
                lease::renew_lease_with_progress(
                    &mut *c,
                    VENUE_STREAM_LEASE,
                    engine.instance_id,
                    token,
                    STREAM_LEASE_TTL_MS,
                    age_ms,
                    lag_ms,
                )
                .await
            }
            None => Err(sqlx::Error::PoolTimedOut),
        };
        match renewed {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::warn!(
                    fencing_token = token,
                    "venue stream lease taken over; stopping"
                );
                return;
            }
            Err(error) => {
                conn = None;
                if last_renewed.elapsed() >= ttl {
                    tracing::warn!(%error, "the venue stream lease could not be renewed for its TTL; stopping");
                    return;
                }
                tracing::warn!(%error, "renewing the venue stream lease; retrying");
            }
        }
    }
}

/// How long the stream lease lasts without renewal, and how often the
/// holder renews it. A dead holder is replaced within about the TTL (or
/// sooner, once its instance heartbeat is stale).
pub const STREAM_LEASE_TTL_MS: u64 = 3000;
pub const STREAM_LEASE_RENEW: Duration = Duration::from_millis(1000);
/// How often a standby instance tries to take the lease.
pub const STREAM_LEASE_POLL: Duration = Duration::from_millis(500);

/// Converts a report to the apply function's input, checking it first:
/// `Err` says why it cannot be applied (it is quarantined).
pub fn execution_of(
    report: &ExecutionReport,
    source: FillSource,
    fencing_token: Option<i64>,
) -> Result<Execution, String> {
    let Some(venue_status) = VenueStatus::parse(&report.status) else {
        return Err(format!(
            "an order status orderd does not know: {:?}",
            report.status
        ));
    };
    crate::domain::fills::check_report(report.last_qty, report.last_px, report.cum_qty)?;
    let fill = (report.last_qty > rust_decimal::Decimal::ZERO)
        .then_some(())
        .and(report.last_px)
        .map(|price| ExecutionFill {
            exec_id: report.exec_id.clone(),
            qty: report.last_qty,
            price,
            transact_time: report.transact_time,
        });
    Ok(Execution {
        venue_client_order_id: report.client_order_id.clone(),
        venue_order_id: report.order_id.clone(),
        fill,
        venue_status,
        cum_qty: report.cum_qty,
        source,
        fencing_token,
        done_for_day: report.exec_type == "done_for_day",
        order_qty: report.qty,
    })
}

/// Runs the stream until `shutdown`.
pub async fn run(
    engine: Arc<Engine>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    enabled: bool,
) {
    if !enabled {
        tracing::info!("venue stream disabled (exchange.stream_enabled = false)");
        return;
    }
    let progress = Arc::new(Progress::default());
    let mut shards = Vec::with_capacity(APPLIER_SHARDS);
    let mut appliers = Vec::with_capacity(APPLIER_SHARDS);
    for _ in 0..APPLIER_SHARDS {
        let (tx, rx) = mpsc::channel(APPLIER_QUEUE_LEN);
        shards.push(tx);
        appliers.push(tokio::spawn(apply_loop(
            engine.clone(),
            rx,
            progress.clone(),
        )));
    }
    let mut failures: u32 = 0;
    loop {
        // One instance listens at a time; the others wait for the lease.
        let token = match lease::acquire_lease(
            &engine.pool,
            VENUE_STREAM_LEASE,
            engine.instance_id,
            STREAM_LEASE_TTL_MS,
            engine.settings.instance_dead_after_ms,
        )
        .await
        {
            Ok(Some(token)) => token,
            Ok(None) => {
                tokio::select! {
                    // Try again, or stop.
                    _ = tokio::time::sleep(STREAM_LEASE_POLL) => continue,
                    _ = shutdown.changed() => break,
                }
            }
            Err(error) => {
                tracing::warn!(%error, "taking the venue stream lease");
                tokio::select! {
                    // Try again, or stop.
                    _ = tokio::time::sleep(STREAM_LEASE_POLL) => continue,
                    _ = shutdown.changed() => break,
                }
            }
        };
        tracing::info!(fencing_token = token, "holding the venue stream lease");
        progress.reset();
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            // Listening ends (error, stop), or the lease is lost: either
            // way this instance stops reading the stream.
            result = listen(&engine, &shards, &mut shutdown, token, &progress) => result,
            () = keep_lease(&engine, token, &progress) => Err(StreamError::LeaseLost),
        };
        if *shutdown.borrow() {
            // Hand over at once instead of after the TTL.
            let _ =
                lease::release_lease(&engine.pool, VENUE_STREAM_LEASE, engine.instance_id, token)
                    .await;
            break;
        }
        metrics::gauge!(names::STREAM_CONNECTED).set(0.0);
        progress.reset();
        if let Err(error) = result {
            tracing::warn!(%error, "venue stream lost; reconnecting");
            metrics::counter!(names::STREAM_RECONNECTS).increment(1);
        }
        // Whatever happened while we were not listening is caught up.
        engine.catch_up.all();
        failures = if started.elapsed() > HEALTHY_SESSION {
            1
        } else {
            failures + 1
        };
        let wait = backoff(
            failures,
            RECONNECT_BASE,
            RECONNECT_CAP,
            rand::random::<f64>(),
        );
        tokio::select! {
            // The reconnect delay, or the stop.
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(shards);
    for applier in appliers {
        let _ = applier.await;
    }
}

/// A report on its way to an applier, with the venue's timestamp.
struct Queued {
    execution: Execution,
    venue_time: DateTime<Utc>,
}

async fn listen(
    engine: &Engine,
    shards: &[mpsc::Sender<Queued>],
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    fencing_token: i64,
    progress: &Progress,
) -> Result<(), StreamError> {
    let (mut socket, _) = tokio_tungstenite::connect_async(engine.exchange.stream_url()).await?;
    socket
        .send(Message::text(stream_auth_message(
            engine.exchange.api_key(),
        )))
        .await?;
    match tokio::time::timeout(AUTH_TIMEOUT, socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<StreamMessage>(&text) {
            Ok(StreamMessage::Auth { status }) if status == "authorized" => {}
            _ => return Err(StreamError::Auth(text.to_string())),
        },
        Ok(Some(Ok(other))) => return Err(StreamError::Auth(format!("{other:?}"))),
        Ok(Some(Err(error))) => return Err(error.into()),
        Ok(None) => return Err(StreamError::Closed),
        Err(_) => return Err(StreamError::Auth("no answer".to_string())),
    }
    tracing::info!("venue stream connected");
    metrics::gauge!(names::STREAM_CONNECTED).set(1.0);
    // Reports sent before we (re)connected are not replayed by the venue.
    engine.catch_up.all();

    let stall = Duration::from_millis(engine.settings_stream_stall_ms());
    let mut expected_seq: u64 = 1;
    loop {
        let next = tokio::select! {
            // The next message (or a stall), or the stop.
            next = tokio::time::timeout(stall, socket.next()) => next,
            _ = shutdown.changed() => {
                let _ = socket.close(None).await;
                return Ok(());
            }
        };
        let message = match next {
            Err(_) => {
                metrics::counter!(names::STREAM_STALLS).increment(1);
                return Err(StreamError::Stall(stall));
            }
            Ok(None) => return Err(StreamError::Closed),
            Ok(Some(Err(error))) => return Err(error.into()),
            Ok(Some(Ok(message))) => message,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return Err(StreamError::Closed),
            // Pings are answered by the library; nothing else is expected.
            _ => continue,
        };
        match serde_json::from_str::<StreamMessage>(&text) {
            Ok(StreamMessage::ExecutionReport(report)) => {
                metrics::counter!(names::STREAM_REPORTS).increment(1);
                progress.received();
                if report.seq > expected_seq {
                    metrics::counter!(names::STREAM_GAPS).increment(1);
                    tracing::warn!(
                        expected = expected_seq,
                        got = report.seq,
                        "venue stream gap; catching up"
                    );
                    engine.catch_up.all();
                }
                expected_seq = expected_seq.max(report.seq.saturating_add(1));
                let execution = match execution_of(&report, FillSource::Stream, Some(fencing_token))
                {
                    Ok(execution) => execution,
                    Err(reason) => {
                        let raw = serde_json::from_str(&text).unwrap_or_default();
                        quarantine_report(engine, &report, &reason, &raw).await;
                        continue;
                    }
                };
                let shard = shard_of(report.client_order_id.as_str());
                let queued = Queued {
                    execution,
                    venue_time: report.transact_time,
                };
                shards[shard]
                    .send(queued)
                    .await
                    .map_err(|_| StreamError::AppliersGone)?;
            }
            Ok(StreamMessage::Heartbeat { seq }) => {
                if seq >= expected_seq {
                    metrics::counter!(names::STREAM_GAPS).increment(1);
                    tracing::warn!(
                        expected = expected_seq,
                        last = seq,
                        "heartbeat shows lost reports; catching up"
                    );
                    engine.catch_up.all();
                    expected_seq = seq.saturating_add(1);
                }
            }
            Ok(StreamMessage::Error { code, message }) => {
                return Err(StreamError::Venue(format!("{code} {message}")));
            }
            Ok(StreamMessage::Auth { .. }) => {}
            Err(error) => tracing::warn!(%error, "unreadable venue stream message"),
        }
    }
}

fn shard_of(key: &str) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() as usize) % APPLIER_SHARDS
}

/// Takes what has queued up on its shard, up to [`APPLIER_BATCH`] reports
/// at a time, and applies them in one transaction (one commit for the
/// lot when the venue is busy; a batch of one when it is not). The lag of
/// the batch's newest report applied is the stream's lag.
async fn apply_loop(
    engine: Arc<Engine>,
    mut reports: mpsc::Receiver<Queued>,
    progress: Arc<Progress>,
) {
    let mut queued = Vec::with_capacity(APPLIER_BATCH);
    while reports.recv_many(&mut queued, APPLIER_BATCH).await > 0 {
        let (batch, venue_times): (Vec<Execution>, Vec<DateTime<Utc>>) = queued
            .drain(..)
            .map(|q| (q.execution, q.venue_time))
            .unzip();
        // A panic in one batch loses that batch to us (the venue still has
        // it: catch-up fetches it), never the applier.
        let applied = crate::supervise::catch_panic("applier", async {
            let results = fill_store::apply_executions(
                &engine.pool,
                &engine.trade_updates,
                engine.instance_id,
                &batch,
            )
            .await;
            // Committed: the lag ends here.
            let newest_applied = results
                .iter()
                .zip(&venue_times)
                .filter(|(result, _)| matches!(result, Ok(Applied::Applied { .. })))
                .map(|(_, venue_time)| *venue_time)
                .max();
            if let Some(venue_time) = newest_applied {
                progress.applied(venue_time);
            }
            for (execution, result) in batch.iter().zip(results) {
                after_apply(&engine, execution, result).await;
            }
        })
        .await;
        if applied.is_none() {
            engine.catch_up.all();
        }
    }
}

/// Keeps a report orderd cannot apply, and says so.
async fn quarantine_report(
    engine: &Engine,
    report: &ExecutionReport,
    reason: &str,
    raw: &serde_json::Value,
) {
    tracing::error!(exec_id = %report.exec_id, client_order_id = %report.client_order_id,
        reason, "venue report quarantined");
    metrics::counter!(names::REPORTS_QUARANTINED, "reason" => "invalid_report").increment(1);
    if let Err(error) = crate::store::quarantine::quarantine(
        &engine.pool,
        FillSource::Stream.as_str(),
        Some(&report.client_order_id),
        None,
        Some(&report.exec_id),
        reason,
        raw,
    )
    .await
    {
        tracing::error!(%error, "recording a quarantined report");
    }
}

async fn after_apply(
    engine: &Engine,
    execution: &Execution,
    result: Result<Applied, fill_store::ApplyError>,
) {
    match result {
        Ok(Applied::Applied {
            order_id,
            new_fill,
            missing_fills,
            ..
        }) => {
            if new_fill {
                crate::failpoints::hit(crate::failpoints::AFTER_FILL_APPLIED);
                engine.settler_wake.notify_one();
            }
            if missing_fills {
                engine.catch_up.order(order_id);
            }
        }
        Ok(Applied::Fenced) => {
            tracing::debug!("report refused: this instance no longer holds the stream");
        }
        Ok(Applied::UnknownOrder) => {
            tracing::debug!(client_order_id = %execution.venue_client_order_id, "report for an order orderd does not know");
        }
        Err(error @ fill_store::ApplyError::Overfill { .. }) => {
            // Applying it again cannot help: keep it for an operator.
            quarantine_execution(engine, execution, &error.to_string()).await;
        }
        Err(error) => {
            // This report is lost to us; the venue still has it.
            tracing::error!(%error, "applying a venue report; catching up");
            engine.catch_up.all();
        }
    }
}

/// Keeps an execution the apply function refused, and says so.
pub async fn quarantine_execution(engine: &Engine, execution: &Execution, reason: &str) {
    tracing::error!(client_order_id = %execution.venue_client_order_id, reason,
        "venue news quarantined");
    metrics::counter!(names::REPORTS_QUARANTINED, "reason" => "refused_by_apply").increment(1);
    let raw = serde_json::to_value(execution).unwrap_or_default();
    if let Err(error) = crate::store::quarantine::quarantine(
        &engine.pool,
        execution.source.as_str(),
        Some(&execution.venue_client_order_id),
        None,
        execution.fill.as_ref().map(|f| &f.exec_id),
        reason,
        &raw,
    )
    .await
    {
        tracing::error!(%error, "recording a quarantined report");
    }
}

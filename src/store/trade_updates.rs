//! Trade updates for every instance's `/stream` clients: which Alpaca
//! `trade_updates` event a change is, the note that carries it, and its
//! delivery with `pg_notify` **after** the change has committed.
//!
//! Not inside the writing transaction: a transaction that has called
//! `pg_notify` takes a cluster-wide lock at commit and holds it through
//! its WAL flush, so notifying transactions commit one at a time, each
//! waiting for its own fsync. `orderd bench` showed that as `Lock:object`
//! waits on every hot write and a ceiling of a few hundred orders per
//! second. Here writers hand the note over once their commit returns,
//! and one task per process sends whatever has queued in one small
//! statement that writes nothing (no WAL, no fsync).
//!
//! Delivery is best-effort, as it always was for LISTEN/NOTIFY (a listener
//! that reconnects misses what was sent meanwhile) and as it is for
//! Alpaca's own stream: a crash between a commit and the send, or a queue
//! full past [`TRADE_UPDATE_QUEUE_LEN`], loses that update (counted); the
//! order's state and events are in the database regardless.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::ids::ExecId;
use crate::domain::lifecycle::Status;
use crate::metrics::names;

/// Postgres channel carrying trade updates to every instance's `/stream`.
pub const TRADE_UPDATES_CHANNEL: &str = "trade_updates";

/// Most updates sent in one statement.
const SEND_BATCH: usize = 256;

/// Updates queued for sending at most; past it an update is dropped and
/// counted (`orderd_trade_updates_dropped_total`) rather than growing the
/// process without bound when Postgres is slow.
pub const TRADE_UPDATE_QUEUE_LEN: usize = 65_536;

/// The Alpaca `trade_updates` event for a change, if it is one traders see.
pub fn trade_event(before: Status, after: Status, new_fill: bool) -> Option<&'static str> {
    if new_fill {
        return Some(if after == Status::Filled {
            "fill"
        } else {
            "partial_fill"
        });
    }
    if before == after {
        return None;
    }
    match after {
        Status::Accepted => Some("accepted"),
        Status::New => Some("new"),
        Status::Canceled => Some("canceled"),
        Status::Expired => Some("expired"),
        Status::Rejected => Some("rejected"),
        Status::PendingCancel => Some("pending_cancel"),
        Status::PendingReplace => Some("pending_replace"),
        Status::Replaced => Some("replaced"),
        Status::Filled => Some("fill"),
        Status::PartiallyFilled | Status::PendingNew => None,
    }
}

/// The fill a trade update announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillNote {
    pub exec_id: ExecId,
    pub qty: Decimal,
    pub price: Decimal,
    pub transact_time: DateTime<Utc>,
}

/// What one notification carries: which order of which account, which
/// event, and the fill if it is one. `/stream` reads the order itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TradeUpdateNote {
    pub account_id: Uuid,
    pub order_id: Uuid,
    pub event: String,
    pub execution_id: Option<ExecId>,
    pub price: Option<Decimal>,
    pub qty: Option<Decimal>,
    pub timestamp: DateTime<Utc>,
}

/// The payload of a trade update on [`TRADE_UPDATES_CHANNEL`] (counted as
/// sent: it is built only to be sent).
pub fn trade_update_payload(
    account_id: Uuid,
    order_id: Uuid,
    event: &'static str,
    fill: Option<&FillNote>,
) -> String {
    let note = TradeUpdateNote {
        account_id,
        order_id,
        event: event.to_string(),
        execution_id: fill.map(|f| f.exec_id.clone()),
        price: fill.map(|f| f.price),
        qty: fill.map(|f| f.qty),
        timestamp: fill.map(|f| f.transact_time).unwrap_or_else(Utc::now),
    };
    metrics::counter!(names::TRADE_EVENTS, "event" => event).increment(1);
    serde_json::to_string(&note).unwrap_or_default()
}

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct TradeUpdates {
    queue: mpsc::Sender<String>,
}

impl TradeUpdates {
    /// Starts the sender task on `pool`. It ends when every handle is gone.
    pub fn start(pool: PgPool) -> Self {
        let (queue, pending) = mpsc::channel(TRADE_UPDATE_QUEUE_LEN);
        tokio::spawn(send_loop(pool, pending));
        Self { queue }
    }

    /// Queues `payload` (call only after the change it announces has
    /// committed). Never waits: a full queue drops the update.
    pub fn publish(&self, payload: String) {
        if self.queue.try_send(payload).is_err() {
            metrics::counter!(names::TRADE_UPDATES_DROPPED).increment(1);
        }
    }
}

const SEND: &str =
    "SELECT pg_notify($1, payload) FROM unnest($2::text[]) WITH ORDINALITY AS u(payload, n)
      ORDER BY n";

async fn send_loop(pool: PgPool, mut pending: mpsc::Receiver<String>) {
    let mut batch = Vec::with_capacity(SEND_BATCH);
    while pending.recv_many(&mut batch, SEND_BATCH).await > 0 {
        // In array order, so one instance's updates keep their order.
        let sent = sqlx::query(SEND)
            .bind(TRADE_UPDATES_CHANNEL)
            .bind(&batch)
            .execute(&pool)
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, count = batch.len(), "sending trade updates; they are lost to /stream clients");
            metrics::counter!(names::TRADE_UPDATES_DROPPED).increment(batch.len() as u64);
        }
        batch.clear();
    }
}

/// A connection LISTENing on [`TRADE_UPDATES_CHANNEL`] (sqlx's listener
/// reconnects by itself).
pub async fn subscribe(pool: &PgPool) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(TRADE_UPDATES_CHANNEL).await?;
    Ok(listener)
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![("SEND", SEND)]
}

//! Trade updates for every instance's `/stream` clients, sent with
//! `pg_notify` **after** the change they announce has committed.
//!
//! Not inside the writing transaction: a transaction that has called
//! `pg_notify` takes a cluster-wide lock at commit and holds it through
//! its WAL flush, so notifying transactions commit one at a time, each
//! waiting for its own fsync. `orderd bench` showed that as `Lock:object`
//! waits on every hot write and a ceiling of a few hundred orders per
//! second. Here writers hand the payload over once their commit returns,
//! and one task per process sends whatever has queued in one small
//! statement that writes nothing (no WAL, no fsync).
//!
//! Delivery is best-effort, as it always was for LISTEN/NOTIFY (a listener
//! that reconnects misses what was sent meanwhile) and as it is for
//! Alpaca's own stream: a crash between a commit and the send loses that
//! update; the order's state and events are in the database regardless.

use sqlx::PgPool;
use tokio::sync::mpsc;

/// Postgres channel carrying trade updates to every instance's `/stream`.
pub const TRADE_UPDATES_CHANNEL: &str = "trade_updates";

/// Most updates sent in one statement.
const SEND_BATCH: usize = 256;

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct TradeUpdates {
    queue: mpsc::UnboundedSender<String>,
}

impl TradeUpdates {
    /// Starts the sender task on `pool`. It ends when every handle is gone.
    pub fn start(pool: PgPool) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(send_loop(pool, pending));
        Self { queue }
    }

    /// Queues `payload` (call only after the change it announces has
    /// committed).
    pub fn publish(&self, payload: String) {
        // The sender task only stops when every handle is dropped.
        let _ = self.queue.send(payload);
    }
}

async fn send_loop(pool: PgPool, mut pending: mpsc::UnboundedReceiver<String>) {
    let mut batch = Vec::with_capacity(SEND_BATCH);
    while pending.recv_many(&mut batch, SEND_BATCH).await > 0 {
        // In array order, so one instance's updates keep their order.
        let sent = sqlx::query(
            "SELECT pg_notify($1, payload) FROM unnest($2::text[]) WITH ORDINALITY AS u(payload, n)
              ORDER BY n",
        )
        .bind(TRADE_UPDATES_CHANNEL)
        .bind(&batch)
        .execute(&pool)
        .await;
        if let Err(error) = sent {
            tracing::warn!(%error, count = batch.len(), "sending trade updates; they are lost to /stream clients");
        }
        batch.clear();
    }
}

//! Executions: the one function that applies one, whatever path it came by
//! (stream, REST catch-up, reconciliation), and the settlement queue.
//!
//! `apply_execution` runs in one transaction: lock the order, insert the
//! fill (the primary key on exec_id makes a repeat a no-op), re-fold all of
//! the order's fills into its projection, apply the venue's status through
//! the domain's `on_venue_news`, append events, and notify trader streams.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::orders::{EventColumns, OrderRecord, insert_events};
use crate::domain::fills::{self, Fill, Overfill};
use crate::domain::lifecycle::{
    ActionState, EventRecord, Status, Step, VenueNews, VenueStatus, on_venue_news,
};

/// The lease one instance holds to listen to the venue stream.
pub const VENUE_STREAM_LEASE: &str = "venue_stream";

pub use super::trade_updates::TRADE_UPDATES_CHANNEL;
use super::trade_updates::TradeUpdates;

/// How orderd learned of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillSource {
    Stream,
    Rest,
    Reconcile,
}

impl FillSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FillSource::Stream => "stream",
            FillSource::Rest => "rest",
            FillSource::Reconcile => "reconcile",
        }
    }
}

/// One piece of venue news about an order: an execution (a fill when
/// `fill` is set) or a status observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub venue_client_order_id: String,
    pub venue_order_id: String,
    pub fill: Option<ExecutionFill>,
    /// The order's status at the venue after this execution.
    pub venue_status: String,
    pub cum_qty: Decimal,
    pub source: FillSource,
    /// Set by the venue-stream holder: applied only while its lease token
    /// is still the current one (a replaced holder's reports are refused).
    pub fencing_token: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionFill {
    pub exec_id: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub transact_time: DateTime<Utc>,
}

/// What applying did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// No order of ours has this client_order_id (an orphan, or another
    /// system's): reconciliation's business.
    UnknownOrder,
    /// Refused: the stream lease moved to another instance.
    Fenced,
    Applied {
        order_id: Uuid,
        /// A fill was recorded now (not a repeat).
        new_fill: bool,
        /// The venue counts fills orderd does not have: catch up.
        missing_fills: bool,
        /// The order became terminal; its hold is due for release.
        release_now: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// More shares filled than ordered: a bug somewhere, never absorbed.
    #[error("order {order_id}: {source}")]
    Overfill { order_id: Uuid, source: Overfill },
    #[error("order {0}: unreadable row: {1}")]
    Corrupt(Uuid, String),
}

/// Applies one execution. See the module docs.
pub async fn apply_execution(
    pool: &PgPool,
    updates: &TradeUpdates,
    instance_id: Uuid,
    execution: &Execution,
) -> Result<Applied, ApplyError> {
    let mut tx = pool.begin().await?;
    match apply_in(&mut tx, instance_id, execution).await {
        Ok((applied, update)) => {
            tx.commit().await?;
            if let Some(update) = update {
                updates.publish(update);
            }
            Ok(applied)
        }
        Err(error) => {
            tx.rollback().await?;
            Err(error)
        }
    }
}

/// Applies `executions` (reports of different orders, or several of one
/// order in arrival order) in one transaction: one commit for the lot. If
/// any fails, the transaction is rolled back and each is applied on its
/// own, so one bad report costs the others nothing. One result per
/// execution, in order.
pub async fn apply_executions(
    pool: &PgPool,
    updates: &TradeUpdates,
    instance_id: Uuid,
    executions: &[Execution],
) -> Vec<Result<Applied, ApplyError>> {
    if executions.len() > 1 {
        match apply_batch(pool, updates, instance_id, executions).await {
            Ok(applied) => return applied.into_iter().map(Ok).collect(),
            Err(error) => {
                tracing::warn!(%error, count = executions.len(),
                    "applying a batch of reports failed; applying them one by one");
            }
        }
    }
    let mut results = Vec::with_capacity(executions.len());
    for execution in executions {
        results.push(apply_execution(pool, updates, instance_id, execution).await);
    }
    results
}

async fn apply_batch(
    pool: &PgPool,
    updates: &TradeUpdates,
    instance_id: Uuid,
    executions: &[Execution],
) -> Result<Vec<Applied>, ApplyError> {
    // Orders are locked in order_id order (venue_client_order_id is
    // `od-` and the order id's hex, so it sorts the same), like every
    // other statement that locks several orders: no deadlocks. The sort is
    // stable, so one order's reports keep their arrival order.
    let mut sequence: Vec<usize> = (0..executions.len()).collect();
    sequence.sort_by(|&a, &b| {
        executions[a]
            .venue_client_order_id
            .cmp(&executions[b].venue_client_order_id)
    });
    let mut tx = pool.begin().await?;
    let mut applied = vec![Applied::UnknownOrder; executions.len()];
    let mut announced = Vec::new();
    for i in sequence {
        match apply_in(&mut tx, instance_id, &executions[i]).await {
            Ok((one, update)) => {
                applied[i] = one;
                announced.extend(update);
            }
            Err(error) => {
                tx.rollback().await?;
                return Err(error);
            }
        }
    }
    tx.commit().await?;
    for update in announced {
        updates.publish(update);
    }
    Ok(applied)
}

/// The body of [`apply_execution`], in the caller's transaction; writes
/// nothing unless it returns `Applied::Applied`. Also returns the trade
/// update to publish once the transaction commits.
#[tracing::instrument(name = "execution", skip_all, fields(
    venue_client_order_id = %execution.venue_client_order_id,
    exec_id = execution.fill.as_ref().map(|f| f.exec_id.as_str()),
    source = execution.source.as_str(),
    order_id = tracing::field::Empty,
))]
async fn apply_in(
    tx: &mut Transaction<'_, Postgres>,
    instance_id: Uuid,
    execution: &Execution,
) -> Result<(Applied, Option<String>), ApplyError> {
    // Three round trips: lock the order (and read the fencing token); read
    // its fills; write everything in one statement. The fills are read in
    // a statement of their own, after the lock: a statement that waited for
    // the lock still sees its old snapshot, which could miss a fill the
    // lock holder just committed.
    let locked: Option<LockedOrder> = sqlx::query_as(
        "SELECT o.*, (SELECT fencing_token FROM leases WHERE name = $2) AS current_fence
           FROM orders o WHERE venue_client_order_id = $1 FOR UPDATE OF o",
    )
    .bind(&execution.venue_client_order_id)
    .bind(VENUE_STREAM_LEASE)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(LockedOrder {
        order,
        current_fence,
    }) = locked
    else {
        return Ok((Applied::UnknownOrder, None));
    };
    if let Some(token) = execution.fencing_token
        && current_fence != Some(token)
    {
        return Ok((Applied::Fenced, None));
    }
    let order_id = order.order_id;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));

    let fill = execution.fill.as_ref().filter(|f| f.qty > Decimal::ZERO);
    let mut events = Vec::new();
    // The projection is always the fold of every recorded fill. Only a
    // fill changes the fold, and every fill is written here together with
    // the fold, so a report without one keeps the stored projection.
    let (fill, filled_qty, avg_price) = match fill {
        None => (None, order.filled_qty, order.filled_avg_price),
        Some(fill) => {
            // This order's fills, and any row with the report's exec_id
            // (the primary key: a repeat, of this order or, by a venue
            // bug, another).
            let rows: Vec<(String, Decimal, Decimal, bool)> = sqlx::query_as(
                "SELECT exec_id, qty, price, order_id = $1 FROM fills
                  WHERE order_id = $1 OR exec_id = $2",
            )
            .bind(order_id)
            .bind(&fill.exec_id)
            .fetch_all(&mut **tx)
            .await?;
            let repeat = rows.iter().any(|(exec_id, ..)| *exec_id == fill.exec_id);
            let mut all: Vec<Fill> = rows
                .into_iter()
                .filter(|(.., mine)| *mine)
                .map(|(exec_id, qty, price, _)| Fill {
                    exec_id,
                    qty,
                    price,
                })
                .collect();
            if !repeat {
                all.push(Fill {
                    exec_id: fill.exec_id.clone(),
                    qty: fill.qty,
                    price: fill.price,
                });
                events.push(EventRecord {
                    step: Step::Working,
                    state: ActionState::Succeeded,
                    detail: serde_json::json!({
                        "fill": {"exec_id": fill.exec_id, "qty": fill.qty, "price": fill.price},
                        "source": execution.source.as_str(),
                    }),
                });
            }
            let summary = fills::fold(order.qty, &all).map_err(|source| {
                tracing::error!(%order_id, %source, "BUG: fills exceed the order quantity");
                ApplyError::Overfill { order_id, source }
            })?;
            (
                (!repeat).then_some(fill),
                summary.filled_qty,
                summary.avg_price,
            )
        }
    };
    let new_fill = fill.is_some();

    let current = order
        .lifecycle()
        .map_err(|e| ApplyError::Corrupt(order_id, e.to_string()))?;
    let cum_qty = execution.cum_qty.max(order.venue_cum_qty);
    let status = VenueStatus::parse(&execution.venue_status).unwrap_or_else(|| {
        tracing::warn!(%order_id, status = %execution.venue_status, "unknown venue status");
        VenueStatus::New
    });
    let projection = on_venue_news(
        &current,
        order.qty,
        filled_qty,
        VenueNews { status, cum_qty },
    );
    // News that changes nothing orderd acts on (the venue acknowledging an
    // order orderd already knows is placed) is not written: one write per
    // order fewer. The row keeps the last venue status that mattered.
    if !new_fill
        && projection.events.is_empty()
        && projection.next == current
        && !projection.release_now
        && !projection.missing_fills
        && cum_qty == order.venue_cum_qty
        && order.venue_order_id.is_some()
        && !status.is_terminal()
    {
        return Ok((
            Applied::Applied {
                order_id,
                new_fill: false,
                missing_fills: false,
                release_now: false,
            },
            None,
        ));
    }
    events.extend(projection.events.iter().cloned());
    let next = &projection.next;
    let reject_reason = next
        .reject_reason
        .as_ref()
        .map(|r| serde_json::to_value(r).unwrap_or(serde_json::Value::Null));
    let trade_update = trade_event(current.status, next.status, new_fill)
        .map(|event| trade_update_payload(order.account_id, order_id, event, fill));
    let events = EventColumns::of(&events);

    let inserted: i64 = sqlx::query_scalar(
        "WITH fill AS (
         INSERT INTO fills (exec_id, order_id, qty, price, transact_time, source)
         SELECT $13, $1, $14, $15, $16, $17 WHERE $13::text IS NOT NULL
         ON CONFLICT (exec_id) DO NOTHING
         RETURNING exec_id),
         updated AS (
         UPDATE orders
            SET status = $2, step = $3, step_state = $4, attempts = $5,
                filled_qty = $6, filled_avg_price = $7,
                venue_status = $8, venue_cum_qty = $9,
                venue_order_id = COALESCE(venue_order_id, $10),
                reject_reason = COALESCE(reject_reason, $11),
                submitted_at = COALESCE(submitted_at, now()),
                filled_at = CASE WHEN $2 = 'filled' THEN COALESCE(filled_at, now()) ELSE filled_at END,
                canceled_at = CASE WHEN $2 = 'canceled' THEN COALESCE(canceled_at, now()) ELSE canceled_at END,
                expired_at = CASE WHEN $2 = 'expired' THEN COALESCE(expired_at, now()) ELSE expired_at END,
                failed_at = CASE WHEN $2 = 'rejected' THEN COALESCE(failed_at, now()) ELSE failed_at END,
                next_attempt_at = CASE WHEN $12 THEN now() ELSE next_attempt_at END,
                updated_at = now(), version = version + 1
          WHERE order_id = $1),
         events AS (
         INSERT INTO order_events (order_id, step, state, detail, instance_id)
         SELECT $1, s.step, s.state, s.detail, $18
           FROM unnest($19::text[], $20::text[], $21::jsonb[]) AS s(step, state, detail))
         SELECT count(*) FROM fill",
    )
    .bind(order_id)
    .bind(next.status.as_str())
    .bind(next.step.as_str())
    .bind(next.step_state.as_str())
    .bind(i32::try_from(next.attempts).unwrap_or(i32::MAX))
    .bind(filled_qty)
    .bind(avg_price)
    .bind(&execution.venue_status)
    .bind(cum_qty)
    .bind(&execution.venue_order_id)
    .bind(reject_reason)
    .bind(projection.release_now)
    .bind(fill.map(|f| f.exec_id.as_str()))
    .bind(fill.map(|f| f.qty))
    .bind(fill.map(|f| f.price))
    .bind(fill.map(|f| f.transact_time))
    .bind(execution.source.as_str())
    .bind(instance_id)
    .bind(events.steps)
    .bind(events.states)
    .bind(events.details)
    .fetch_one(&mut **tx)
    .await?;
    if inserted != i64::from(new_fill) {
        // The exec_id appeared between our read and our insert, which the
        // order's row lock rules out for this order: someone else's row.
        // The caller rolls back; the unique key keeps the venue's truth.
        return Err(ApplyError::Corrupt(
            order_id,
            "exec_id recorded concurrently for another order".to_string(),
        ));
    }
    Ok((
        Applied::Applied {
            order_id,
            new_fill,
            missing_fills: projection.missing_fills,
            release_now: projection.release_now,
        },
        trade_update,
    ))
}

/// The order row an applier locked, and the venue stream's fencing token.
#[derive(sqlx::FromRow)]
struct LockedOrder {
    #[sqlx(flatten)]
    order: OrderRecord,
    current_fence: Option<i64>,
}

/// The Alpaca `trade_updates` event for a change, if it is one traders see.
pub(crate) fn trade_event(before: Status, after: Status, new_fill: bool) -> Option<&'static str> {
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
        Status::New => Some("new"),
        Status::Canceled => Some("canceled"),
        Status::Expired => Some("expired"),
        Status::Rejected => Some("rejected"),
        Status::PendingCancel => Some("pending_cancel"),
        Status::Filled => Some("fill"),
        Status::PartiallyFilled | Status::PendingNew => None,
    }
}

/// The payload of a trade update on [`TRADE_UPDATES_CHANNEL`] (counted as
/// sent: it is built only to be sent).
pub(crate) fn trade_update_payload(
    account_id: Uuid,
    order_id: Uuid,
    event: &str,
    fill: Option<&ExecutionFill>,
) -> String {
    let payload = serde_json::json!({
        "account_id": account_id,
        "order_id": order_id,
        "event": event,
        "execution_id": fill.map(|f| f.exec_id.clone()),
        "price": fill.map(|f| f.price),
        "qty": fill.map(|f| f.qty),
        "timestamp": fill.map(|f| f.transact_time).unwrap_or_else(Utc::now),
    });
    metrics::counter!(crate::metrics::names::TRADE_EVENTS, "event" => event.to_string())
        .increment(1);
    payload.to_string()
}

/// Fills of `order_id` not yet settled (pending or unknown).
pub async fn unsettled_count(pool: &PgPool, order_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM fills WHERE order_id = $1 AND settlement_state IN ('pending', 'unknown')",
    )
    .bind(order_id)
    .fetch_one(pool)
    .await
}

/// A fill as the trader API shows it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct FillRecord {
    pub exec_id: String,
    pub order_id: Uuid,
    pub qty: Decimal,
    pub price: Decimal,
    pub transact_time: DateTime<Utc>,
    pub source: String,
    pub settlement_state: String,
    pub settled_at: Option<DateTime<Utc>>,
}

pub async fn fills_of(pool: &PgPool, order_id: Uuid) -> Result<Vec<FillRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT exec_id, order_id, qty, price, transact_time, source, settlement_state, settled_at
           FROM fills WHERE order_id = $1 ORDER BY transact_time, exec_id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// A fill due for settlement, with what the settlement request needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettlementWork {
    pub exec_id: String,
    pub order_id: Uuid,
    pub qty: Decimal,
    pub price: Decimal,
    pub settlement_attempts: i32,
    pub side: String,
    pub symbol: String,
    pub hold_id: Option<String>,
    pub hold_rate: Option<Decimal>,
    pub balances_account_id: String,
}

/// Takes up to `limit` due unsettled fills for `lease_ms` (SKIP LOCKED, so
/// instances share the queue).
pub async fn claim_settlements(
    pool: &PgPool,
    limit: u32,
    lease_ms: u64,
) -> Result<Vec<SettlementWork>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS (
            SELECT exec_id FROM fills
             WHERE settlement_state IN ('pending', 'unknown') AND next_settle_at <= now()
               AND (settle_lease_until IS NULL OR settle_lease_until < now())
             ORDER BY next_settle_at LIMIT $1
             FOR UPDATE SKIP LOCKED),
         taken AS (
            UPDATE fills f SET settle_lease_until = now() + make_interval(secs => $2::float8 / 1000)
              FROM due WHERE f.exec_id = due.exec_id
            RETURNING f.exec_id, f.order_id, f.qty, f.price, f.settlement_attempts)
         SELECT t.exec_id, t.order_id, t.qty, t.price, t.settlement_attempts,
                o.side, o.symbol, o.hold_id, o.hold_rate, a.balances_account_id
           FROM taken t JOIN orders o USING (order_id) JOIN accounts a ON a.account_id = o.account_id",
    )
    .bind(i64::from(limit))
    .bind(lease_ms as f64)
    .fetch_all(pool)
    .await
}

/// The outcome of one settlement attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettlementOutcome {
    Settled {
        settlement_id: String,
        flagged: bool,
    },
    Unknown {
        detail: String,
    },
    Retry {
        detail: String,
    },
    Failed {
        detail: String,
    },
}

/// One settlement attempt's result, to record.
#[derive(Debug, Clone)]
pub struct SettlementAttempt {
    pub work: SettlementWork,
    pub outcome: SettlementOutcome,
    /// When to try again if it did not settle.
    pub retry_in_ms: u64,
}

/// Records settlement attempts (of distinct fills), with their events, in
/// one statement; an order waiting in `release` for a fill settled here is
/// made due now. The orders are locked in `order_id` order, as the
/// appliers lock them, so the two cannot deadlock.
pub async fn record_settlements(
    pool: &PgPool,
    instance_id: Uuid,
    attempts: &[SettlementAttempt],
) -> Result<(), sqlx::Error> {
    if attempts.is_empty() {
        return Ok(());
    }
    let n = attempts.len();
    let (mut exec_ids, mut order_ids, mut states) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut settlement_ids, mut flags, mut retry_ms) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut event_states, mut details) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for SettlementAttempt {
        work,
        outcome,
        retry_in_ms,
    } in attempts
    {
        let (state, event_state, settlement_id, flagged, detail) = match outcome {
            SettlementOutcome::Settled {
                settlement_id,
                flagged,
            } => (
                "settled",
                ActionState::Succeeded,
                Some(settlement_id.as_str()),
                Some(*flagged),
                serde_json::json!({
                    "exec_id": work.exec_id, "settlement_id": settlement_id, "flagged": flagged}),
            ),
            SettlementOutcome::Unknown { detail }
            | SettlementOutcome::Retry { detail }
            | SettlementOutcome::Failed { detail } => {
                let (state, event_state) = match outcome {
                    SettlementOutcome::Unknown { .. } => ("unknown", ActionState::Unknown),
                    SettlementOutcome::Failed { .. } => ("failed", ActionState::Failed),
                    _ => ("pending", ActionState::Failed),
                };
                let detail = serde_json::json!({"exec_id": work.exec_id, "detail": detail});
                (state, event_state, None, None, detail)
            }
        };
        tracing::debug!(exec_id = %work.exec_id, state, "settlement recorded");
        exec_ids.push(work.exec_id.as_str());
        order_ids.push(work.order_id);
        states.push(state);
        settlement_ids.push(settlement_id);
        flags.push(flagged);
        retry_ms.push(*retry_in_ms as f64);
        event_states.push(event_state.as_str());
        details.push(serde_json::json!({ "settle": detail }));
    }
    sqlx::query(
        "WITH input AS (
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::bool[],
                              $6::float8[], $7::text[], $8::jsonb[])
                    AS i(exec_id, order_id, state, settlement_id, flagged, retry_ms,
                         event_state, detail)),
         settled AS (
         UPDATE fills f SET settlement_state = 'settled', settlement_id = i.settlement_id,
                settlement_flagged = i.flagged, settled_at = now(), settle_lease_until = NULL
           FROM input i WHERE f.exec_id = i.exec_id AND i.state = 'settled'),
         -- An unknown stays unknown until evidence says otherwise.
         retried AS (
         UPDATE fills f SET settlement_state = CASE WHEN f.settlement_state = 'unknown'
                                                         AND i.state = 'pending'
                                                    THEN 'unknown' ELSE i.state END,
                settlement_attempts = f.settlement_attempts + 1,
                next_settle_at = now() + make_interval(secs => i.retry_ms / 1000),
                settle_lease_until = NULL
           FROM input i WHERE f.exec_id = i.exec_id AND i.state <> 'settled'),
         nudged AS (
         UPDATE orders o SET next_attempt_at = now()
          WHERE o.order_id IN (SELECT w.order_id FROM orders w
                                WHERE w.order_id IN (SELECT order_id FROM input WHERE state = 'settled')
                                  AND w.step = 'release'
                                ORDER BY w.order_id FOR UPDATE)),
         events AS (
         INSERT INTO order_events (order_id, step, state, detail, instance_id)
         SELECT order_id, 'working', event_state, detail, $9 FROM input)
         SELECT 1",
    )
    .bind(exec_ids)
    .bind(order_ids)
    .bind(states)
    .bind(settlement_ids)
    .bind(flags)
    .bind(retry_ms)
    .bind(event_states)
    .bind(details)
    .bind(instance_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Evidence from the ledger: the fill is settled.
pub async fn mark_settled(
    pool: &PgPool,
    instance_id: Uuid,
    order_id: Uuid,
    exec_id: &str,
    settlement_id: &str,
    flagged: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE fills SET settlement_state = 'settled', settlement_id = $2, settlement_flagged = $3,
                settled_at = now(), settle_lease_until = NULL
          WHERE exec_id = $1 AND settlement_state <> 'settled'",
    )
    .bind(exec_id)
    .bind(settlement_id)
    .bind(flagged)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        sqlx::query(
            "UPDATE orders SET next_attempt_at = now() WHERE order_id = $1 AND step = 'release'",
        )
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
        insert_events(
            &mut tx,
            order_id,
            instance_id,
            &[EventRecord {
                step: Step::Working,
                state: ActionState::Succeeded,
                detail: serde_json::json!({"settle": {"exec_id": exec_id, "settlement_id": settlement_id,
                                                       "evidence": "reconciliation found it in the ledger"}}),
            }],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Makes a fill's settlement due now (a settled one is sent again; the
/// keyed request replays at the ledger).
pub async fn requeue_settlement(pool: &PgPool, exec_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE fills SET settlement_state = CASE WHEN settlement_state = 'settled' THEN 'pending'
                                                  ELSE settlement_state END,
                next_settle_at = now(), settle_lease_until = NULL
          WHERE exec_id = $1",
    )
    .bind(exec_id)
    .execute(pool)
    .await?;
    Ok(())
}

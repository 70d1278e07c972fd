//! Orders, their recovery point and lease, and the append-only event log.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::trade_updates::TradeUpdates;
use crate::domain::lifecycle::{
    ActionState, Change, EventRecord, Lifecycle, RejectReason, Status, Step, StepState,
};

/// The recovery-step encoding this binary writes. A newer binary that
/// changes what a step means bumps it and keeps reading older rows.
pub const RECOVERY_VERSION: i16 = 1;

/// An order row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRecord {
    pub order_id: Uuid,
    pub account_id: Uuid,
    pub client_order_id: String,
    pub venue_client_order_id: String,
    pub request_fingerprint: String,
    pub symbol: String,
    pub side: String,
    pub order_type: String,
    pub time_in_force: String,
    pub qty: Decimal,
    pub limit_price: Option<Decimal>,
    pub status: String,
    pub step: String,
    pub step_state: String,
    pub recovery_version: i16,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_owner: Option<Uuid>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub hold_asset: Option<String>,
    pub hold_amount: Option<Decimal>,
    pub hold_rate: Option<Decimal>,
    pub hold_id: Option<String>,
    pub venue_order_id: Option<String>,
    pub filled_qty: Decimal,
    pub filled_avg_price: Option<Decimal>,
    pub reject_reason: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub filled_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub expired_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub venue_status: Option<String>,
    pub venue_cum_qty: Decimal,
}

/// A row whose text columns hold a value this binary does not know.
#[derive(Debug, thiserror::Error)]
#[error("order {order_id}: unreadable {column} {value:?}")]
pub struct CorruptRow {
    pub order_id: Uuid,
    pub column: &'static str,
    pub value: String,
}

impl OrderRecord {
    pub fn status(&self) -> Result<Status, CorruptRow> {
        Status::parse(&self.status).ok_or_else(|| self.corrupt("status", &self.status))
    }

    /// The domain view the transition table works on.
    pub fn lifecycle(&self) -> Result<Lifecycle, CorruptRow> {
        Ok(Lifecycle {
            status: self.status()?,
            step: Step::parse(&self.step).ok_or_else(|| self.corrupt("step", &self.step))?,
            step_state: StepState::parse(&self.step_state)
                .ok_or_else(|| self.corrupt("step_state", &self.step_state))?,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            hold_id: self.hold_id.clone(),
            venue_order_id: self.venue_order_id.clone(),
            reject_reason: self.reject_reason().ok().flatten(),
            cancel_requested: self.cancel_requested_at.is_some(),
        })
    }

    pub fn reject_reason(&self) -> Result<Option<RejectReason>, CorruptRow> {
        self.reject_reason
            .clone()
            .map(|v| {
                serde_json::from_value(v.clone())
                    .map_err(|_| self.corrupt("reject_reason", &v.to_string()))
            })
            .transpose()
    }

    fn corrupt(&self, column: &'static str, value: &str) -> CorruptRow {
        CorruptRow {
            order_id: self.order_id,
            column,
            value: value.to_string(),
        }
    }
}

/// Everything needed to insert a just-accepted order.
#[derive(Debug, Clone)]
pub struct NewOrderRow {
    pub order_id: Uuid,
    pub account_id: Uuid,
    pub client_order_id: String,
    pub venue_client_order_id: String,
    pub request_fingerprint: String,
    pub symbol: String,
    pub side: String,
    pub order_type: String,
    pub time_in_force: String,
    pub qty: Decimal,
    pub limit_price: Option<Decimal>,
    pub hold_asset: String,
    /// `None` for a market buy until a quote is known.
    pub hold_amount: Option<Decimal>,
    pub hold_rate: Option<Decimal>,
}

/// Inserts the order and its `reserve requested` event, and takes the
/// lease for `instance_id`, in one statement (in the caller's transaction
/// or on its own). Returns the row, or `None` when the account already has
/// an order with this client_order_id (nothing written).
pub async fn insert_order<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    row: &NewOrderRow,
    instance_id: Uuid,
    lease_ms: u64,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as(
        "WITH inserted AS (
         INSERT INTO orders (order_id, account_id, client_order_id, venue_client_order_id,
                             request_fingerprint, symbol, side, order_type, time_in_force, qty,
                             limit_price, status, step, step_state, recovery_version,
                             hold_asset, hold_amount, hold_rate, lease_owner, lease_expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending_new', 'reserve', 'pending',
                 $12, $13, $14, $15, $16, now() + make_interval(secs => $17::float8 / 1000))
         ON CONFLICT (account_id, client_order_id) DO NOTHING
         RETURNING *),
         events AS (
         INSERT INTO order_events (order_id, step, state, detail, instance_id)
         SELECT inserted.order_id, $18, $19, $20, $16 FROM inserted)
         SELECT * FROM inserted",
    )
    .bind(row.order_id)
    .bind(row.account_id)
    .bind(&row.client_order_id)
    .bind(&row.venue_client_order_id)
    .bind(&row.request_fingerprint)
    .bind(&row.symbol)
    .bind(&row.side)
    .bind(&row.order_type)
    .bind(&row.time_in_force)
    .bind(row.qty)
    .bind(row.limit_price)
    .bind(RECOVERY_VERSION)
    .bind(&row.hold_asset)
    .bind(row.hold_amount)
    .bind(row.hold_rate)
    .bind(instance_id)
    .bind(lease_ms as f64)
    .bind(Step::Reserve.as_str())
    .bind(ActionState::Requested.as_str())
    .bind(serde_json::json!({
        "accepted": true,
        "client_order_id": row.client_order_id,
        "asset": row.hold_asset,
        "amount": row.hold_amount,
    }))
    .fetch_optional(executor)
    .await
}

pub async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    instance_id: Uuid,
    events: &[EventRecord],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let columns = EventColumns::of(events);
    sqlx::query(
        "INSERT INTO order_events (order_id, step, state, detail, instance_id)
         SELECT $1, s.step, s.state, s.detail, $5
           FROM unnest($2::text[], $3::text[], $4::jsonb[]) AS s(step, state, detail)",
    )
    .bind(order_id)
    .bind(columns.steps)
    .bind(columns.states)
    .bind(columns.details)
    .bind(instance_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Events as the three arrays an `unnest($a::text[], $b::text[],
/// $c::jsonb[])` takes, for statements that write the events in the same
/// statement as the change they record.
pub(crate) struct EventColumns {
    pub steps: Vec<&'static str>,
    pub states: Vec<&'static str>,
    pub details: Vec<serde_json::Value>,
}

impl EventColumns {
    pub fn of(events: &[EventRecord]) -> Self {
        Self {
            steps: events.iter().map(|e| e.step.as_str()).collect(),
            states: events.iter().map(|e| e.state.as_str()).collect(),
            details: events.iter().map(|e| e.detail.clone()).collect(),
        }
    }
}

pub async fn load(pool: &PgPool, order_id: Uuid) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

pub async fn load_for_account(
    pool: &PgPool,
    account_id: Uuid,
    order_id: Uuid,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM orders WHERE order_id = $1 AND account_id = $2")
        .bind(order_id)
        .bind(account_id)
        .fetch_optional(pool)
        .await
}

pub async fn load_by_client_order_id(
    pool: &PgPool,
    account_id: Uuid,
    client_order_id: &str,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM orders WHERE account_id = $1 AND client_order_id = $2")
        .bind(account_id)
        .bind(client_order_id)
        .fetch_optional(pool)
        .await
}

/// How the lease is left after recording a step.
#[derive(Debug, Clone, Copy)]
pub enum LeaseAfter {
    /// Keep driving: extend it.
    Keep { lease_ms: u64 },
    /// Hand the order to whoever finds it due (the completer).
    Release,
}

/// Records a transition in one statement (so one implicit transaction and
/// one round trip): the new recovery point and projection, the events, the
/// retry timer, the lease and the trader stream's notification. Applies
/// only if the row is still at `order.version` and leased to
/// `instance_id`; returns the row as written, or `None` when someone else
/// moved it (reload).
pub async fn record_change(
    pool: &PgPool,
    updates: &TradeUpdates,
    order: &OrderRecord,
    change: &Change,
    instance_id: Uuid,
    next_attempt_in_ms: u64,
    lease: LeaseAfter,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    let next = &change.next;
    let reject_reason = next
        .reject_reason
        .as_ref()
        .map(|r| serde_json::to_value(r).unwrap_or(serde_json::Value::Null));
    let (lease_owner, lease_ms) = match lease {
        LeaseAfter::Keep { lease_ms } => (Some(instance_id), lease_ms as f64),
        LeaseAfter::Release => (None, 0.0),
    };
    let events = EventColumns::of(&change.events);
    let trade_update = order
        .status()
        .ok()
        .and_then(|before| crate::store::fills::trade_event(before, next.status, false))
        .map(|event| {
            crate::store::fills::trade_update_payload(order.account_id, order.order_id, event, None)
        });
    // Data-modifying CTEs run whether or not the outer query reads them;
    // the events are written only if the update matched (they select from
    // `updated`). The trade update is published after the commit.
    let written: Option<OrderRecord> = sqlx::query_as(
        "WITH updated AS (
         UPDATE orders
            SET status = $3, step = $4, step_state = $5, attempts = $6,
                hold_id = COALESCE($7, hold_id), venue_order_id = COALESCE($8, venue_order_id),
                reject_reason = COALESCE($9, reject_reason),
                next_attempt_at = now() + make_interval(secs => $10::float8 / 1000),
                lease_owner = $11,
                lease_expires_at = CASE WHEN $11::uuid IS NULL THEN NULL
                                        ELSE now() + make_interval(secs => $12::float8 / 1000) END,
                submitted_at = CASE WHEN $8::text IS NOT NULL AND submitted_at IS NULL THEN now() ELSE submitted_at END,
                failed_at = CASE WHEN $3 = 'rejected' AND failed_at IS NULL THEN now() ELSE failed_at END,
                canceled_at = CASE WHEN $3 = 'canceled' AND canceled_at IS NULL THEN now() ELSE canceled_at END,
                recovery_version = $14,
                updated_at = now(), version = version + 1
          WHERE order_id = $1 AND version = $2 AND lease_owner = $13
         RETURNING *),
         events AS (
         INSERT INTO order_events (order_id, step, state, detail, instance_id)
         SELECT updated.order_id, s.step, s.state, s.detail, $13
           FROM updated, unnest($15::text[], $16::text[], $17::jsonb[]) AS s(step, state, detail))
         SELECT * FROM updated",
    )
    .bind(order.order_id)
    .bind(order.version)
    .bind(next.status.as_str())
    .bind(next.step.as_str())
    .bind(next.step_state.as_str())
    .bind(i32::try_from(next.attempts).unwrap_or(i32::MAX))
    .bind(next.hold_id.as_deref())
    .bind(next.venue_order_id.as_deref())
    .bind(reject_reason)
    .bind(next_attempt_in_ms as f64)
    .bind(lease_owner)
    .bind(lease_ms)
    .bind(instance_id)
    .bind(RECOVERY_VERSION)
    .bind(events.steps)
    .bind(events.states)
    .bind(events.details)
    .fetch_optional(pool)
    .await?;
    if written.is_some()
        && let Some(update) = trade_update
    {
        updates.publish(update);
    }
    Ok(written)
}

/// Records the hold a market buy will ask for, once, before asking: a
/// retry must send the identical request under the same key. Returns the
/// row as written, or `None` if an amount was already recorded.
pub async fn set_hold_amount(
    pool: &PgPool,
    order_id: Uuid,
    amount: Decimal,
    rate: Decimal,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE orders SET hold_amount = $2, hold_rate = $3, version = version + 1, updated_at = now()
          WHERE order_id = $1 AND hold_amount IS NULL
         RETURNING *",
    )
    .bind(order_id)
    .bind(amount)
    .bind(rate)
    .fetch_optional(pool)
    .await
}

/// SQL condition: the lease on `orders` is free. A lease is free when
/// nobody holds it, it expired, or its holder's heartbeat is older than the
/// dead-instance threshold (restart recovery does not wait out leases of a
/// process that is gone). A lease this instance holds is **not** free: one
/// of its own tasks is driving the order (a `POST`, the completer, a
/// cancel), and a second driver would only repeat its keyed calls
/// concurrently (`orderd bench` saw holds refused as "in flight").
const LEASE_FREE: &str = "(lease_owner IS NULL OR lease_expires_at < now()
     OR lease_owner IN (SELECT instance_id FROM instances
                         WHERE stopped_at IS NOT NULL
                            OR last_seen_at < now() - make_interval(secs => $4::float8 / 1000)))";

/// Takes the lease on one order if it is free. Returns the fresh row.
pub async fn claim(
    pool: &PgPool,
    order_id: Uuid,
    instance_id: Uuid,
    lease_ms: u64,
    dead_after_ms: u64,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    let sql = format!(
        "UPDATE orders SET lease_owner = $2,
                lease_expires_at = now() + make_interval(secs => $3::float8 / 1000)
          WHERE order_id = $1 AND {LEASE_FREE}
         RETURNING *"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .bind(instance_id)
        .bind(lease_ms as f64)
        .bind(dead_after_ms as f64)
        .fetch_optional(pool)
        .await
}

/// An order the completer claimed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    #[sqlx(flatten)]
    pub order: OrderRecord,
    /// Another instance's lease was taken over.
    pub taken_over: bool,
}

/// The completer's pick: up to `limit` due orders in a driven step whose
/// lease is free, leased to `instance_id` in the same statement
/// (`FOR UPDATE SKIP LOCKED`, so instances never pick the same order).
pub async fn claim_due(
    pool: &PgPool,
    instance_id: Uuid,
    limit: u32,
    lease_ms: u64,
    dead_after_ms: u64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let sql = format!(
        "WITH due AS (
            SELECT order_id, (lease_owner IS NOT NULL AND lease_owner <> $2) AS taken_over FROM orders
             WHERE step IN ('reserve', 'place', 'cancel', 'release')
               AND next_attempt_at <= now()
               AND {LEASE_FREE}
             ORDER BY next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         UPDATE orders o SET lease_owner = $2,
                lease_expires_at = now() + make_interval(secs => $3::float8 / 1000)
           FROM due WHERE o.order_id = due.order_id
         RETURNING o.*, due.taken_over"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(i64::from(limit))
        .bind(instance_id)
        .bind(lease_ms as f64)
        .bind(dead_after_ms as f64)
        .fetch_all(pool)
        .await
}

/// Gives up the lease without changing anything else.
pub async fn release_lease(
    pool: &PgPool,
    order_id: Uuid,
    instance_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET lease_owner = NULL, lease_expires_at = NULL
          WHERE order_id = $1 AND lease_owner = $2",
    )
    .bind(order_id)
    .bind(instance_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// One row of an order's timeline.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct OrderEvent {
    pub event_id: i64,
    pub step: String,
    pub state: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub instance_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

pub async fn events(pool: &PgPool, order_id: Uuid) -> Result<Vec<OrderEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_id, step, state, detail, instance_id, created_at
           FROM order_events WHERE order_id = $1 ORDER BY event_id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// Filters of `GET /v2/orders`.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub account_id: Uuid,
    /// `None`: all statuses.
    pub statuses: Option<Vec<String>>,
    pub symbols: Option<Vec<String>>,
    pub after: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub ascending: bool,
    pub limit: i64,
}

pub async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<OrderRecord>, sqlx::Error> {
    let order = if filter.ascending { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT * FROM orders
          WHERE account_id = $1
            AND ($2::text[] IS NULL OR status = ANY($2))
            AND ($3::text[] IS NULL OR symbol = ANY($3))
            AND ($4::timestamptz IS NULL OR created_at > $4)
            AND ($5::timestamptz IS NULL OR created_at < $5)
          ORDER BY created_at {order}, order_id {order}
          LIMIT $6"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(filter.account_id)
        .bind(filter.statuses.as_deref())
        .bind(filter.symbols.as_deref())
        .bind(filter.after)
        .bind(filter.until)
        .bind(filter.limit)
        .fetch_all(pool)
        .await
}

/// How long after a cancel or expiry an order is still caught up after a
/// stream gap: venues report fills that raced the cancel after it.
pub const LATE_FILL_WINDOW_SECS: f64 = 30.0;

/// Orders the venue may still report on: placed and not terminal, or
/// canceled/expired within [`LATE_FILL_WINDOW_SECS`]. What a stream gap or
/// reconnect must catch up.
pub async fn at_venue(pool: &PgPool) -> Result<Vec<OrderRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM orders
          WHERE venue_order_id IS NOT NULL
            AND (step IN ('working', 'cancel')
                 OR (status IN ('canceled', 'expired')
                     AND updated_at > now() - make_interval(secs => $1)))",
    )
    .bind(LATE_FILL_WINDOW_SECS)
    .fetch_all(pool)
    .await
}

/// What a cancel request did.
#[derive(Debug, Clone)]
pub enum CancelRequest {
    NotFound,
    AlreadyTerminal(Status),
    /// Recorded (or already recorded); the order as it is now.
    Recorded(Box<OrderRecord>),
}

/// Records the trader's cancel in one transaction (see
/// `domain::lifecycle::request_cancel`); the driver does the rest.
pub async fn request_cancel(
    pool: &PgPool,
    updates: &TradeUpdates,
    account_id: Uuid,
    order_id: Uuid,
    instance_id: Uuid,
) -> Result<CancelRequest, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let order: Option<OrderRecord> =
        sqlx::query_as("SELECT * FROM orders WHERE order_id = $1 AND account_id = $2 FOR UPDATE")
            .bind(order_id)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(order) = order else {
        tx.rollback().await?;
        return Ok(CancelRequest::NotFound);
    };
    let current = match order.lifecycle() {
        Ok(current) => current,
        Err(error) => return Err(sqlx::Error::Protocol(error.to_string())),
    };
    let change = match crate::domain::lifecycle::request_cancel(&current) {
        Ok(change) => change,
        Err(done) => {
            tx.rollback().await?;
            return Ok(CancelRequest::AlreadyTerminal(done.0));
        }
    };
    if change.events.is_empty() {
        tx.rollback().await?;
        return Ok(CancelRequest::Recorded(Box::new(order)));
    }
    let next = &change.next;
    let updated: OrderRecord = sqlx::query_as(
        "UPDATE orders SET status = $2, step = $3, step_state = $4, attempts = $5,
                cancel_requested_at = COALESCE(cancel_requested_at, now()),
                next_attempt_at = now(), updated_at = now(), version = version + 1
          WHERE order_id = $1 RETURNING *",
    )
    .bind(order_id)
    .bind(next.status.as_str())
    .bind(next.step.as_str())
    .bind(next.step_state.as_str())
    .bind(i32::try_from(next.attempts).unwrap_or(i32::MAX))
    .fetch_one(&mut *tx)
    .await?;
    insert_events(&mut tx, order_id, instance_id, &change.events).await?;
    tx.commit().await?;
    updates.publish(crate::store::fills::trade_update_payload(
        account_id,
        order_id,
        "pending_cancel",
        None,
    ));
    Ok(CancelRequest::Recorded(Box::new(updated)))
}

/// The account's orders that are not terminal.
pub async fn open_orders(pool: &PgPool, account_id: Uuid) -> Result<Vec<OrderRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM orders WHERE account_id = $1
            AND status NOT IN ('filled', 'canceled', 'expired', 'rejected')
          ORDER BY created_at",
    )
    .bind(account_id)
    .fetch_all(pool)
    .await
}

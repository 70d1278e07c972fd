//! Writes of the recovery point: a transition recorded in one statement
//! (recovery point, projection, events, retry timer, lease), leases taken
//! and given up, a market buy's hold amount, the trader's cancel.

use std::sync::LazyLock;

use rust_decimal::Decimal;
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use super::events::{EventColumns, insert_events};
use super::orders::{OrderRecord, RECOVERY_VERSION};
use super::trade_updates::{TradeUpdates, trade_event, trade_update_payload};
use super::types::{DRIVEN_STEPS, statement, terminal_timestamps};
use crate::domain::lifecycle::{self, Change, Status};

/// How the lease is left after recording a step.
#[derive(Debug, Clone, Copy)]
pub enum LeaseAfter {
    /// Keep driving: extend it.
    Keep { lease_ms: u64 },
    /// Hand the order to whoever finds it due (the completer).
    Release,
}

static RECORD_CHANGE: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
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
                {terminal_timestamps},
                recovery_version = $14,
                updated_at = now(), version = version + 1
          WHERE order_id = $1 AND version = $2 AND lease_owner = $13
         RETURNING *),
         events AS (
         INSERT INTO order_events (order_id, step, state, detail, instance_id)
         SELECT updated.order_id, s.step, s.state, s.detail, $13
           FROM updated, unnest($15::text[], $16::text[], $17::jsonb[]) AS s(step, state, detail))
         SELECT * FROM updated",
        terminal_timestamps = terminal_timestamps("$3"),
    ))
});

/// Records a transition in one statement (so one implicit transaction and
/// one round trip): the new recovery point and projection, the events, the
/// retry timer and the lease. Applies only if the row is still at
/// `order.version` and leased to `instance_id`; returns the row as
/// written, or `None` when someone else moved it (reload). The trade
/// update it causes is published after the commit.
pub async fn record_change(
    pool: &PgPool,
    updates: &TradeUpdates,
    order: &OrderRecord,
    change: &Change,
    instance_id: Uuid,
    next_attempt_in_ms: u64,
    lease: LeaseAfter,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    debug_assert_eq!(
        order.lease_owner,
        Some(instance_id),
        "recording a step of an order whose lease this instance does not hold"
    );
    let next = &change.next;
    let (lease_owner, lease_ms) = match lease {
        LeaseAfter::Keep { lease_ms } => (Some(instance_id), lease_ms as f64),
        LeaseAfter::Release => (None, 0.0),
    };
    let events = EventColumns::of(&change.events);
    let trade_update = trade_event(order.status, next.status, false)
        .map(|event| trade_update_payload(order.account_id, order.order_id, event, None));
    // Data-modifying CTEs run whether or not the outer query reads them;
    // the events are written only if the update matched (they select from
    // `updated`).
    let written: Option<OrderRecord> = sqlx::query_as(*RECORD_CHANGE)
        .bind(order.order_id)
        .bind(order.version)
        .bind(next.status)
        .bind(next.step)
        .bind(next.step_state)
        .bind(i32::try_from(next.attempts).unwrap_or(i32::MAX))
        .bind(next.hold_id.as_ref())
        .bind(next.venue_order_id.as_ref())
        .bind(next.reject_reason.clone().map(Json))
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

const SET_HOLD_AMOUNT: &str =
    "UPDATE orders SET hold_amount = $2, hold_rate = $3, version = version + 1, updated_at = now()
      WHERE order_id = $1 AND hold_amount IS NULL
     RETURNING *";

/// Records the hold a market buy will ask for, once, before asking: a
/// retry must send the identical request under the same key. Returns the
/// row as written, or `None` if an amount was already recorded.
pub async fn set_hold_amount(
    pool: &PgPool,
    order_id: Uuid,
    amount: Decimal,
    rate: Decimal,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as(SET_HOLD_AMOUNT)
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
const LEASE_FREE_FRAGMENT: &str = "(lease_owner IS NULL OR lease_expires_at < now()
     OR lease_owner IN (SELECT instance_id FROM instances
                         WHERE stopped_at IS NOT NULL
                            OR last_seen_at < now() - make_interval(secs => $4::float8 / 1000)))";

static CLAIM: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "UPDATE orders SET lease_owner = $2,
                lease_expires_at = now() + make_interval(secs => $3::float8 / 1000)
          WHERE order_id = $1 AND {LEASE_FREE_FRAGMENT}
         RETURNING *"
    ))
});

/// Takes the lease on one order if it is free. Returns the fresh row.
pub async fn claim(
    pool: &PgPool,
    order_id: Uuid,
    instance_id: Uuid,
    lease_ms: u64,
    dead_after_ms: u64,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as(*CLAIM)
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

static CLAIM_DUE: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "WITH due AS (
            SELECT order_id, (lease_owner IS NOT NULL AND lease_owner <> $2) AS taken_over FROM orders
             WHERE step IN {driven}
               AND next_attempt_at <= now()
               AND {LEASE_FREE_FRAGMENT}
             ORDER BY next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         UPDATE orders o SET lease_owner = $2,
                lease_expires_at = now() + make_interval(secs => $3::float8 / 1000)
           FROM due WHERE o.order_id = due.order_id
         RETURNING o.*, due.taken_over",
        driven = *DRIVEN_STEPS,
    ))
});

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
    sqlx::query_as(*CLAIM_DUE)
        .bind(i64::from(limit))
        .bind(instance_id)
        .bind(lease_ms as f64)
        .bind(dead_after_ms as f64)
        .fetch_all(pool)
        .await
}

const RELEASE_LEASE: &str = "UPDATE orders SET lease_owner = NULL, lease_expires_at = NULL
      WHERE order_id = $1 AND lease_owner = $2";

/// Gives up the lease without changing anything else.
pub async fn release_lease(
    pool: &PgPool,
    order_id: Uuid,
    instance_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(RELEASE_LEASE)
        .bind(order_id)
        .bind(instance_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// What a cancel request did.
#[derive(Debug, Clone)]
pub enum CancelRequest {
    NotFound,
    AlreadyTerminal(Status),
    /// Recorded (or already recorded); the order as it is now.
    Recorded(Box<OrderRecord>),
}

/// Why recording a cancel failed.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Corrupt(#[from] super::orders::CorruptRow),
}

const LOCK_FOR_ACCOUNT: &str =
    "SELECT * FROM orders WHERE order_id = $1 AND account_id = $2 FOR UPDATE";

const RECORD_CANCEL: &str =
    "UPDATE orders SET status = $2, step = $3, step_state = $4, attempts = $5,
            cancel_requested_at = COALESCE(cancel_requested_at, now()),
            next_attempt_at = now(), updated_at = now(), version = version + 1
      WHERE order_id = $1 RETURNING *";

/// Records the trader's cancel in one transaction (see
/// `domain::lifecycle::request_cancel`); the driver does the rest.
pub async fn request_cancel(
    pool: &PgPool,
    updates: &TradeUpdates,
    account_id: Uuid,
    order_id: Uuid,
    instance_id: Uuid,
) -> Result<CancelRequest, CancelError> {
    let mut tx = pool.begin().await?;
    let order: Option<OrderRecord> = sqlx::query_as(LOCK_FOR_ACCOUNT)
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
        Err(corrupt) => {
            tx.rollback().await?;
            return Err(corrupt.into());
        }
    };
    let change = match lifecycle::request_cancel(&current) {
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
    let updated: OrderRecord = sqlx::query_as(RECORD_CANCEL)
        .bind(order_id)
        .bind(next.status)
        .bind(next.step)
        .bind(next.step_state)
        .bind(i32::try_from(next.attempts).unwrap_or(i32::MAX))
        .fetch_one(&mut *tx)
        .await?;
    insert_events(&mut tx, order_id, instance_id, &change.events).await?;
    tx.commit().await?;
    if let Some(event) = trade_event(order.status, updated.status, false) {
        updates.publish(trade_update_payload(account_id, order_id, event, None));
    }
    Ok(CancelRequest::Recorded(Box::new(updated)))
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RECORD_CHANGE", *RECORD_CHANGE),
        ("SET_HOLD_AMOUNT", SET_HOLD_AMOUNT),
        ("CLAIM", *CLAIM),
        ("CLAIM_DUE", *CLAIM_DUE),
        ("RELEASE_LEASE", RELEASE_LEASE),
        ("LOCK_FOR_ACCOUNT", LOCK_FOR_ACCOUNT),
        ("RECORD_CANCEL", RECORD_CANCEL),
    ]
}

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
use super::readable::{ORDER_COLUMNS, ORDER_COLUMNS_O, decode_claims, drivable_order};
use super::trade_updates::{TradeUpdates, trade_event, trade_update_payload};
use super::types::{DRIVEN_STEPS, TERMINAL_STATUSES, statement, terminal_timestamps};
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
                lease_token = CASE WHEN $11::uuid IS NULL THEN NULL ELSE lease_token END,
                placement_sent_at = CASE WHEN $19 THEN COALESCE(placement_sent_at, now())
                                         ELSE placement_sent_at END,
                -- A new placement intent (not one already on record).
                placement_last_sent_at = CASE WHEN $4 = 'place' AND $5 = 'sent'
                                                   AND NOT (step = 'place' AND step_state = 'sent')
                                              THEN now() ELSE placement_last_sent_at END,
                parked_step = $20,
                submitted_at = CASE WHEN $8::text IS NOT NULL AND submitted_at IS NULL THEN now() ELSE submitted_at END,
                {terminal_timestamps},
                recovery_version = $14,
                updated_at = now(), version = version + 1
          WHERE order_id = $1 AND version = $2 AND lease_token = $18
         RETURNING {columns}),
         events AS (
         INSERT INTO order_events (order_id, step, state, detail, instance_id)
         SELECT updated.order_id, s.step, s.state, s.detail, $13
           FROM updated, unnest($15::text[], $16::text[], $17::jsonb[]) AS s(step, state, detail)),
         -- A replacement that ended without reaching the venue replaced
         -- nothing: the order it was to replace works on as it was.
         reverted AS (
         UPDATE orders a
            SET replaced_by = NULL,
                status = CASE WHEN a.status <> 'pending_replace' THEN a.status
                              WHEN a.cancel_requested_at IS NOT NULL THEN 'pending_cancel'
                              WHEN a.filled_qty > 0 THEN 'partially_filled'
                              ELSE 'new' END,
                updated_at = now(), version = a.version + 1
           FROM updated u
          WHERE u.replaces IS NOT NULL AND a.order_id = u.replaces AND a.replaced_by = u.order_id
            AND u.venue_order_id IS NULL AND u.status IN {terminal}
         RETURNING a.order_id, u.order_id AS replacement),
         reverted_events AS (
         INSERT INTO order_events (order_id, step, state, detail, instance_id)
         SELECT order_id, 'working', 'failed',
                jsonb_build_object('replace_rejected', replacement), $13
           FROM reverted)
         SELECT * FROM updated",
        terminal_timestamps = terminal_timestamps("$3"),
        terminal = *TERMINAL_STATUSES,
        columns = *ORDER_COLUMNS,
    ))
});

/// Records a transition in one statement (so one implicit transaction and
/// one round trip): the new recovery point and projection, the events, the
/// retry timer and the lease. Applies only if the row is still at
/// `order.version` and its claim is still `order.lease_token` (the
/// driver's own); returns the row as written, or `None` when someone else
/// moved it (reload) or took it over. The trade
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
    debug_assert!(
        order.lease_owner == Some(instance_id) && order.lease_token.is_some(),
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
        .bind(order.lease_token)
        .bind(next.placement_sent)
        .bind(next.parked_step)
        .fetch_optional(pool)
        .await?;
    if written.is_some()
        && let Some(update) = trade_update
    {
        updates.publish(update);
    }
    if let Some(row) = &written
        && let Some(original) = replace_rejected(order, row)
    {
        updates.publish(trade_update_payload(
            order.account_id,
            original,
            "order_replace_rejected",
            None,
        ));
    }
    Ok(written)
}

/// The order a replacement was to replace, when this write ended the
/// replacement without it reaching the venue (the write reverted that
/// order's pending replace).
fn replace_rejected(before: &OrderRecord, after: &OrderRecord) -> Option<Uuid> {
    let ended = !before.status.is_terminal() && after.status.is_terminal();
    (ended && after.venue_order_id.is_none())
        .then_some(after.replaces)
        .flatten()
}

static SET_HOLD_AMOUNT: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "UPDATE orders SET hold_amount = $2, hold_rate = $3, version = version + 1, updated_at = now()
          WHERE order_id = $1 AND hold_amount IS NULL
         RETURNING {columns}",
        columns = *ORDER_COLUMNS,
    ))
});

/// Records the hold a market buy will ask for, once, before asking: a
/// retry must send the identical request under the same key. Returns the
/// row as written, or `None` if an amount was already recorded.
pub async fn set_hold_amount(
    pool: &PgPool,
    order_id: Uuid,
    amount: Decimal,
    rate: Option<Decimal>,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as(*SET_HOLD_AMOUNT)
        .bind(order_id)
        .bind(amount)
        .bind(rate)
        .fetch_optional(pool)
        .await
}

static SET_HOLD_RAISE: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "UPDATE orders SET hold_raise = $2, version = version + 1, updated_at = now()
          WHERE order_id = $1 AND hold_raise IS NULL
         RETURNING {columns}",
        columns = *ORDER_COLUMNS,
    ))
});

/// Records what a replacement raises the hold it takes over by, once,
/// before asking (a retry asks for the identical raise under the same
/// key). Returns the row as written, or `None` if one was recorded before.
pub async fn set_hold_raise(
    pool: &PgPool,
    order_id: Uuid,
    amount: Decimal,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as(*SET_HOLD_RAISE)
        .bind(order_id)
        .bind(amount)
        .fetch_optional(pool)
        .await
}

/// A replacement's quantities once the venue has stated them.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct ConfirmedQty {
    pub qty: Decimal,
    pub carried_qty: Decimal,
}

/// Not a recovery-point change (no version bump: a driver's write in
/// flight still applies): the venue's word on a replacement's own
/// quantity, which is at most orderd's estimate and not below its fills.
const CONFIRM_REPLACEMENT_QTY: &str = "UPDATE orders
        SET qty = $2, carried_qty = carried_qty + qty - $2, qty_confirmed = true,
            updated_at = now()
      WHERE order_id = $1 AND replaces IS NOT NULL AND NOT qty_confirmed
        AND $2 > 0 AND $2 <= qty AND filled_qty <= $2
     RETURNING qty, carried_qty";

/// Records the venue's word on a replacement's own quantity (what it
/// carried in is the rest of the total asked for). `None` when the row is
/// not an unconfirmed replacement or the quantity cannot be its own.
pub async fn confirm_replacement_qty(
    pool: &PgPool,
    order_id: Uuid,
    qty: Decimal,
) -> Result<Option<ConfirmedQty>, sqlx::Error> {
    sqlx::query_as(CONFIRM_REPLACEMENT_QTY)
        .bind(order_id)
        .bind(qty)
        .fetch_optional(pool)
        .await
}

/// SQL condition: the lease on `orders` is free. A lease is free when
/// nobody holds it, it expired, or its holder is dead: stopped, fenced by
/// a successor under its name, found dead by a peer (its advisory lock
/// was free), or silent for longer than the dead-instance threshold. A
/// lease this instance holds is **not** free: one of its own tasks is
/// driving the order (a `POST`, the completer, a cancel), and a second
/// driver would only repeat its keyed calls concurrently.
const LEASE_FREE_FRAGMENT: &str = "(lease_token IS NULL OR lease_expires_at < now()
     OR lease_owner IN (SELECT instance_id FROM instances
                         WHERE stopped_at IS NOT NULL OR fenced_at IS NOT NULL
                            OR last_seen_at < now() - make_interval(secs => $4::float8 / 1000)))";

/// What a claim does besides taking the lease: a fresh token (`$5`, drawn
/// by the claimer: [`claim_token`]; the previous driver's writes now
/// fail), a new version, and an intent the previous
/// claim recorded becomes unknown (it may have sent the call). A pending
/// release or cancel gets its intent in the claim itself (one write fewer
/// per order): both are keyed calls the new driver makes next, and sending
/// either again is harmless. A placement's intent is never folded here: it
/// carries the placement's timestamp.
const CLAIM_SET_FRAGMENT: &str = "lease_owner = $2,
                lease_expires_at = now() + make_interval(secs => $3::float8 / 1000),
                lease_token = $5,
                step_state = CASE WHEN step_state = 'sent' THEN 'unknown'
                                  WHEN step_state = 'pending' AND step IN ('release', 'cancel')
                                  THEN 'sent'
                                  ELSE step_state END,
                version = version + 1";

/// Rows this binary can drive (`store::readable`).
static DRIVABLE_ORDER: LazyLock<String> = LazyLock::new(|| drivable_order(RECOVERY_VERSION));

static CLAIM: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "UPDATE orders SET {CLAIM_SET_FRAGMENT}
          WHERE order_id = $1 AND {LEASE_FREE_FRAGMENT}
            AND {drivable}
         RETURNING {columns}",
        drivable = *DRIVABLE_ORDER,
        columns = *ORDER_COLUMNS,
    ))
});

/// Takes the lease on one order if it is free and the row is one this
/// binary can drive (`store::readable`: a row a newer version wrote with
/// values this one does not know is left alone, as if another instance
/// held it). Returns the fresh row.
pub async fn claim(
    pool: &PgPool,
    order_id: Uuid,
    instance_id: Uuid,
    lease_ms: u64,
    dead_after_ms: u64,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    let token = claim_token();
    let row = match sqlx::query(*CLAIM)
        .bind(order_id)
        .bind(instance_id)
        .bind(lease_ms as f64)
        .bind(dead_after_ms as f64)
        .bind(token)
        .fetch_optional(pool)
        .await
    {
        Ok(row) => row,
        Err(error) => {
            return Err(
                give_back_unknown_claim(pool, instance_id, token, Some(order_id), error).await,
            );
        }
    };
    let rows = Vec::from_iter(row);
    // The claim committed; if reading it back fails, it is given back too.
    let (mut claimed, failed) = match decode_claims::<OrderRecord>(pool, "claim", rows).await {
        Ok(decoded) => decoded,
        Err(error) => {
            return Err(
                give_back_unknown_claim(pool, instance_id, token, Some(order_id), error).await,
            );
        }
    };
    match failed {
        Some(error) => Err(error),
        None => Ok(claimed.pop()),
    }
}

/// A lease token for one claim, drawn by the claimer so that a claim whose
/// answer was lost can be given back by evidence ([`give_back_unknown_claim`]).
/// Negative, so it never meets a token of the `lease_tokens` sequence (the
/// accept's, positive); a token fences only within its own order, so 63
/// random bits are as unique as a sequence there.
pub fn claim_token() -> i64 {
    (rand::random::<u64>() | (1 << 63)) as i64
}

const GIVE_BACK_CLAIM: &str =
    "UPDATE orders SET lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL
      WHERE order_id = $3 AND lease_owner = $1 AND lease_token = $2";

/// A batch claim's give-back: only orders in a driven step are claimed by
/// the completer, so only those are looked at (not every open order).
static GIVE_BACK_CLAIMS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "UPDATE orders SET lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL
          WHERE step IN {driven} AND lease_owner = $1 AND lease_token = $2",
        driven = *DRIVEN_STEPS,
    ))
});

/// A claim failed with `error`, and its outcome is unknown: the statement
/// may have committed with its answer lost (a connection cut, a primary
/// that died mid-commit). A lease this instance holds is never free to it
/// (`LEASE_FREE_FRAGMENT`), so a claim that did commit would keep every
/// retry of the order, and the trader's retry with it, out for the whole
/// lease. Whatever the claim took under `token` (of `order_id`, or of the
/// batch) is given back (nothing, if it never committed); with the
/// database away too, the lease expires on its own. Returns `error`.
async fn give_back_unknown_claim(
    pool: &PgPool,
    instance_id: Uuid,
    token: i64,
    order_id: Option<Uuid>,
    error: sqlx::Error,
) -> sqlx::Error {
    let give_back = match order_id {
        Some(order_id) => sqlx::query(GIVE_BACK_CLAIM)
            .bind(instance_id)
            .bind(token)
            .bind(order_id),
        None => sqlx::query(*GIVE_BACK_CLAIMS).bind(instance_id).bind(token),
    };
    match give_back.execute(pool).await {
        Ok(done) if done.rows_affected() > 0 => {
            tracing::warn!(%error, orders = done.rows_affected(),
                "a claim's answer was lost, but it committed; given back");
            metrics::counter!(crate::metrics::names::UNKNOWN_OUTCOMES_RESOLVED, "step" => "claim")
                .increment(1);
        }
        Ok(_) => {}
        Err(give_back) => {
            tracing::debug!(error = %give_back, "giving an unknown claim back failed; it expires");
        }
    }
    error
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
               AND {drivable}
             ORDER BY next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         UPDATE orders o SET {CLAIM_SET_FRAGMENT}
           FROM due WHERE o.order_id = due.order_id
         RETURNING {columns}, due.taken_over",
        columns = *ORDER_COLUMNS_O,
        driven = *DRIVEN_STEPS,
        drivable = *DRIVABLE_ORDER,
    ))
});

/// The completer's pick: up to `limit` due orders in a driven step whose
/// lease is free and which this binary can drive (`store::readable`),
/// claimed for `instance_id` in the same statement (`FOR UPDATE SKIP
/// LOCKED`, so instances never pick the same order). A claimed row that
/// still fails to decode costs only itself: its lease is given back at
/// once, and the others are driven.
pub async fn claim_due(
    pool: &PgPool,
    instance_id: Uuid,
    limit: u32,
    lease_ms: u64,
    dead_after_ms: u64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    // One token for the whole batch: a token fences within its order.
    let token = claim_token();
    let rows = match sqlx::query(*CLAIM_DUE)
        .bind(i64::from(limit))
        .bind(instance_id)
        .bind(lease_ms as f64)
        .bind(dead_after_ms as f64)
        .bind(token)
        .fetch_all(pool)
        .await
    {
        Ok(rows) => rows,
        Err(error) => {
            return Err(give_back_unknown_claim(pool, instance_id, token, None, error).await);
        }
    };
    // The claim committed; if reading it back fails, it is given back too.
    match decode_claims(pool, "claim_due", rows).await {
        Ok((claimed, _)) => Ok(claimed),
        Err(error) => Err(give_back_unknown_claim(pool, instance_id, token, None, error).await),
    }
}

const RELEASE_LEASE: &str =
    "UPDATE orders SET lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL
      WHERE order_id = $1 AND lease_token = $2";

/// Gives up the claim `lease_token` without changing anything else.
pub async fn release_lease(
    pool: &PgPool,
    order_id: Uuid,
    lease_token: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(RELEASE_LEASE)
        .bind(order_id)
        .bind(lease_token)
        .execute(pool)
        .await?;
    Ok(())
}

const RENEW_LEASE: &str =
    "UPDATE orders SET lease_expires_at = now() + make_interval(secs => $3::float8 / 1000)
      WHERE order_id = $1 AND lease_token = $2
     RETURNING lease_expires_at";

/// Extends the claim `lease_token` to `lease_ms` from now; `None` when
/// the claim is no longer the order's (taken over).
pub async fn renew_lease(
    pool: &PgPool,
    order_id: Uuid,
    lease_token: Option<i64>,
    lease_ms: u64,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error> {
    sqlx::query_scalar(RENEW_LEASE)
        .bind(order_id)
        .bind(lease_token)
        .bind(lease_ms as f64)
        .fetch_optional(pool)
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

static LOCK_FOR_ACCOUNT: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT {columns} FROM orders
          WHERE order_id = $1 AND ($2::uuid IS NULL OR account_id = $2) FOR UPDATE",
        columns = *ORDER_COLUMNS,
    ))
});

/// A change made by someone other than the order's driver (a trader's
/// cancel, an operator's resume): recovery point and projection, due now.
/// It bumps the version, so a driver's write in flight is re-applied to it
/// or dropped (`Engine::drive`).
static RECORD_UNDRIVEN: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "UPDATE orders SET status = $2, step = $3, step_state = $4, attempts = $5,
                cancel_requested_at = CASE WHEN $6 THEN COALESCE(cancel_requested_at, now())
                                           ELSE cancel_requested_at END,
                parked_step = $7,
                next_attempt_at = now(), updated_at = now(), version = version + 1
          WHERE order_id = $1 RETURNING {columns}",
        columns = *ORDER_COLUMNS,
    ))
});

/// Why a change from outside the driver failed.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Corrupt(#[from] super::orders::CorruptRow),
}

/// Locks `order_id` (of `account_id`, when given), asks `decide` for the
/// change, records it with its events in one transaction, and publishes
/// its trade update after the commit. `decide` returns `Err` to refuse
/// (nothing written) or a change without events for "nothing to do".
async fn change_undriven<E>(
    pool: &PgPool,
    updates: &TradeUpdates,
    account_id: Option<Uuid>,
    order_id: Uuid,
    actor: Uuid,
    decide: impl FnOnce(&lifecycle::Lifecycle) -> Result<Change, E>,
) -> Result<Option<Result<OrderRecord, E>>, CancelError> {
    let mut tx = pool.begin().await?;
    let order: Option<OrderRecord> = sqlx::query_as(*LOCK_FOR_ACCOUNT)
        .bind(order_id)
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(order) = order else {
        tx.rollback().await?;
        return Ok(None);
    };
    let current = match order.lifecycle() {
        Ok(current) => current,
        Err(corrupt) => {
            tx.rollback().await?;
            return Err(corrupt.into());
        }
    };
    let change = match decide(&current) {
        Ok(change) => change,
        Err(refused) => {
            tx.rollback().await?;
            return Ok(Some(Err(refused)));
        }
    };
    if change.events.is_empty() {
        tx.rollback().await?;
        return Ok(Some(Ok(order)));
    }
    let next = &change.next;
    let updated: OrderRecord = sqlx::query_as(*RECORD_UNDRIVEN)
        .bind(order_id)
        .bind(next.status)
        .bind(next.step)
        .bind(next.step_state)
        .bind(i32::try_from(next.attempts).unwrap_or(i32::MAX))
        .bind(next.cancel_requested)
        .bind(next.parked_step)
        .fetch_one(&mut *tx)
        .await?;
    insert_events(&mut tx, order_id, actor, &change.events).await?;
    tx.commit().await?;
    if let Some(event) = trade_event(order.status, updated.status, false) {
        updates.publish(trade_update_payload(
            order.account_id,
            order_id,
            event,
            None,
        ));
    }
    Ok(Some(Ok(updated)))
}

/// Records the trader's cancel in one transaction (see
/// `domain::lifecycle::request_cancel`), with the request that asked
/// (`request_id`) in its events; the driver does the rest.
pub async fn request_cancel(
    pool: &PgPool,
    updates: &TradeUpdates,
    account_id: Uuid,
    order_id: Uuid,
    instance_id: Uuid,
    request_id: Option<&str>,
) -> Result<CancelRequest, CancelError> {
    let changed = change_undriven(
        pool,
        updates,
        Some(account_id),
        order_id,
        instance_id,
        |current| lifecycle::request_cancel(current).map(|change| requested(change, request_id)),
    )
    .await?;
    Ok(match changed {
        None => CancelRequest::NotFound,
        Some(Err(done)) => CancelRequest::AlreadyTerminal(done.0),
        Some(Ok(order)) => CancelRequest::Recorded(Box::new(order)),
    })
}

/// What an operator's action on an order did.
#[derive(Debug, Clone)]
pub enum OperatorAction {
    NotFound,
    /// Refused, with why (not parked; already terminal).
    Refused(String),
    /// Recorded; the order as it is now (the completer drives it).
    Done(Box<OrderRecord>),
}

/// `change` with the request that caused it named in its events.
fn requested(mut change: lifecycle::Change, request_id: Option<&str>) -> lifecycle::Change {
    for event in &mut change.events {
        super::events::tag_request(&mut event.detail, request_id);
    }
    change
}

/// An operator resumes a parked order (`domain::lifecycle::resume`);
/// `request_id` is the console request that asked, if any.
pub async fn resume(
    pool: &PgPool,
    updates: &TradeUpdates,
    order_id: Uuid,
    operator: &str,
    actor: Uuid,
    request_id: Option<&str>,
) -> Result<OperatorAction, CancelError> {
    let changed = change_undriven(pool, updates, None, order_id, actor, |current| {
        lifecycle::resume(current, operator).map(|change| requested(change, request_id))
    })
    .await?;
    Ok(match changed {
        None => OperatorAction::NotFound,
        Some(Err(refused)) => OperatorAction::Refused(refused.to_string()),
        Some(Ok(order)) => OperatorAction::Done(Box::new(order)),
    })
}

/// An operator cancels an order as its trader would, and resumes it if it
/// was parked so the cancel is carried out.
pub async fn operator_cancel(
    pool: &PgPool,
    updates: &TradeUpdates,
    order_id: Uuid,
    operator: &str,
    actor: Uuid,
    request_id: Option<&str>,
) -> Result<OperatorAction, CancelError> {
    let changed = change_undriven(pool, updates, None, order_id, actor, |current| {
        let mut change = lifecycle::request_cancel(current).map_err(|e| e.to_string())?;
        for event in &mut change.events {
            event.detail["by_operator"] = serde_json::json!(operator);
        }
        if change.next.step == crate::domain::lifecycle::Step::Parked {
            let resumed = lifecycle::resume(&change.next, operator).map_err(|e| e.to_string())?;
            change.events.extend(resumed.events);
            change.next = resumed.next;
        }
        Ok::<_, String>(requested(change, request_id))
    })
    .await?;
    Ok(match changed {
        None => OperatorAction::NotFound,
        Some(Err(refused)) => OperatorAction::Refused(refused),
        Some(Ok(order)) => OperatorAction::Done(Box::new(order)),
    })
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RECORD_CHANGE", *RECORD_CHANGE),
        ("SET_HOLD_AMOUNT", *SET_HOLD_AMOUNT),
        ("SET_HOLD_RAISE", *SET_HOLD_RAISE),
        ("CONFIRM_REPLACEMENT_QTY", CONFIRM_REPLACEMENT_QTY),
        ("CLAIM", *CLAIM),
        ("CLAIM_DUE", *CLAIM_DUE),
        ("RELEASE_LEASE", RELEASE_LEASE),
        ("GIVE_BACK_CLAIM", GIVE_BACK_CLAIM),
        ("GIVE_BACK_CLAIMS", *GIVE_BACK_CLAIMS),
        ("RENEW_LEASE", RENEW_LEASE),
        ("LOCK_FOR_ACCOUNT", *LOCK_FOR_ACCOUNT),
        ("RECORD_UNDRIVEN", *RECORD_UNDRIVEN),
    ]
}

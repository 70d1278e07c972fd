//! What the reconciliation jobs look at: orders the venue works that have
//! been quiet, orders stuck mid-step, fills whose settlement is not
//! known, terminal orders whose hold may still be open. Each scan is
//! bounded by `limit`, and sees only rows this version can read
//! (`store::readable`): during a rolling upgrade, what a newer version
//! wrote is left to the newer version's runs, and a batch is never spent
//! on rows this one cannot act on.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::orders::OrderRecord;
use super::readable::{
    KNOWN_ORDER, KNOWN_ORDER_O, KNOWN_SETTLEMENT_STATES, ORDER_COLUMNS, ORDER_COLUMNS_O,
    decode_each,
};
use super::types::{
    AT_VENUE_STEPS, LATE_FILL_STATUSES, SESSION_TIME_IN_FORCE, STUCK_STEPS, TERMINAL_STATUSES,
    statement,
};
use crate::domain::fills::SettlementState;
use crate::domain::ids::ExecId;
use crate::domain::order::TimeInForce;

static QUIET_AT_VENUE: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT {columns} FROM orders
          WHERE venue_order_id IS NOT NULL
            AND ((step IN {at_venue} AND updated_at < now() - make_interval(secs => $1::float8 / 1000))
                 OR (status IN {late} AND updated_at > now() - make_interval(secs => $2)))
            AND {known}
          ORDER BY updated_at LIMIT $3",
        at_venue = *AT_VENUE_STEPS,
        late = *LATE_FILL_STATUSES,
        known = *KNOWN_ORDER,
        columns = *ORDER_COLUMNS,
    ))
});

/// Orders the venue works with no news for `stale_after_ms`, and orders
/// canceled or expired within `late_fill_watch_secs` (late fills).
pub async fn quiet_at_venue(
    pool: &PgPool,
    stale_after_ms: u64,
    late_fill_watch_secs: f64,
    limit: u32,
) -> Result<Vec<OrderRecord>, sqlx::Error> {
    let rows = sqlx::query(*QUIET_AT_VENUE)
        .bind(stale_after_ms as f64)
        .bind(late_fill_watch_secs)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(decode_each("quiet_at_venue", rows))
}

static PAST_THEIR_SESSION: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT {columns} FROM orders o
          WHERE o.status NOT IN {terminal}
            AND o.time_in_force IN {session}
            AND EXISTS (SELECT 1 FROM trading_sessions s
                         WHERE (CASE WHEN o.time_in_force = '{opg}' THEN s.open ELSE s.close END)
                               BETWEEN o.created_at
                                   AND now() - make_interval(secs => $1::float8 / 1000))
            AND {known}
          ORDER BY o.created_at LIMIT $2",
        known = *KNOWN_ORDER_O,
        columns = *ORDER_COLUMNS_O,
        terminal = *TERMINAL_STATUSES,
        session = *SESSION_TIME_IN_FORCE,
        opg = TimeInForce::Opg.as_str(),
    ))
});

/// Orders not terminal that should have ended with a session whose close
/// (or open, for OPG) passed more than `grace_ms` ago.
pub async fn past_their_session(
    pool: &PgPool,
    grace_ms: u64,
    limit: u32,
) -> Result<Vec<OrderRecord>, sqlx::Error> {
    let rows = sqlx::query(*PAST_THEIR_SESSION)
        .bind(grace_ms as f64)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(decode_each("past_their_session", rows))
}

static STUCK: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT {columns} FROM orders
          WHERE step IN {stuck}
            -- Quiet for a while, or retried and still failing (the
            -- completer's retries keep updated_at fresh).
            AND (updated_at < now() - make_interval(secs => $1::float8 / 1000)
                 OR (attempts > 0 AND created_at < now() - make_interval(secs => $1::float8 / 1000)))
            AND {known}
          ORDER BY updated_at LIMIT $2",
        stuck = *STUCK_STEPS,
        known = *KNOWN_ORDER,
        columns = *ORDER_COLUMNS,
    ))
});

/// Orders in a driven step or parked for longer than `settle_time_ms`.
pub async fn stuck(
    pool: &PgPool,
    settle_time_ms: u64,
    limit: u32,
) -> Result<Vec<OrderRecord>, sqlx::Error> {
    let rows = sqlx::query(*STUCK)
        .bind(settle_time_ms as f64)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(decode_each("stuck", rows))
}

/// A fill whose settlement is not done.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnsettledFill {
    pub exec_id: ExecId,
    pub order_id: Uuid,
    pub settlement_state: SettlementState,
}

static UNSETTLED_FILLS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT exec_id, order_id, settlement_state FROM fills
          WHERE settlement_state <> 'settled' AND settlement_state IN {known}
            AND created_at < now() - make_interval(secs => $1::float8 / 1000)
          LIMIT $2",
        known = *KNOWN_SETTLEMENT_STATES,
    ))
});

/// Fills recorded more than `settle_time_ms` ago and not settled.
pub async fn unsettled_fills(
    pool: &PgPool,
    settle_time_ms: u64,
    limit: u32,
) -> Result<Vec<UnsettledFill>, sqlx::Error> {
    sqlx::query_as(*UNSETTLED_FILLS)
        .bind(settle_time_ms as f64)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
}

static TERMINAL_WITH_HOLDS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT {columns} FROM orders
          WHERE hold_id IS NOT NULL AND status IN {terminal} AND updated_at >= $1
            AND {known}
          ORDER BY updated_at LIMIT $2",
        terminal = *TERMINAL_STATUSES,
        known = *KNOWN_ORDER,
        columns = *ORDER_COLUMNS,
    ))
});

/// Terminal orders with a hold that changed since `since`.
pub async fn terminal_with_holds(
    pool: &PgPool,
    since: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<OrderRecord>, sqlx::Error> {
    let rows = sqlx::query(*TERMINAL_WITH_HOLDS)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(decode_each("terminal_with_holds", rows))
}

/// A fill that arrived after its order's hold was released.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LateFill {
    pub exec_id: ExecId,
    pub order_id: Uuid,
    pub settlement_state: SettlementState,
}

static LATE_FILLS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT exec_id, order_id, settlement_state FROM fills
          WHERE late AND created_at >= $1 AND settlement_state IN {known}
          ORDER BY created_at LIMIT $2",
        known = *KNOWN_SETTLEMENT_STATES,
    ))
});

/// Late fills recorded since `since`.
pub async fn late_fills(
    pool: &PgPool,
    since: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<LateFill>, sqlx::Error> {
    sqlx::query_as(*LATE_FILLS)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("QUIET_AT_VENUE", *QUIET_AT_VENUE),
        ("STUCK", *STUCK),
        ("PAST_THEIR_SESSION", *PAST_THEIR_SESSION),
        ("UNSETTLED_FILLS", *UNSETTLED_FILLS),
        ("TERMINAL_WITH_HOLDS", *TERMINAL_WITH_HOLDS),
        ("LATE_FILLS", *LATE_FILLS),
    ]
}

//! Read queries for operators: orders with their account and stuck
//! orders (the CLI), accounts with their activity, the gauges `/metrics`
//! reports, and the facts `orderd check` compares with the venues.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use super::readable::{KNOWN_ORDER, KNOWN_SETTLEMENT_STATES, decode_each};
use super::types::{STUCK_STEPS, TERMINAL_STATUSES, statement};
use crate::domain::fills::SettlementState;
use crate::domain::ids::{ClientOrderId, ExecId, VenueClientOrderId, VenueOrderId};
use crate::domain::lifecycle::{Status, Step, StepState};
use crate::domain::order::{OrderType, Side};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct OrderRow {
    pub order_id: Uuid,
    pub account: String,
    pub client_order_id: ClientOrderId,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: Decimal,
    pub filled_qty: Decimal,
    pub status: Status,
    pub step: Step,
    pub step_state: StepState,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

static ORDERS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT o.order_id, a.name AS account, o.client_order_id, o.symbol, o.side, o.order_type, o.qty,
                o.filled_qty, o.status, o.step, o.step_state, o.attempts, o.next_attempt_at,
                o.created_at, o.updated_at
           FROM orders o JOIN accounts a USING (account_id)
          WHERE ($1::text IS NULL OR o.status = $1)
            AND ($2::float8 IS NULL
                 OR o.step IN {stuck}
                 OR (o.step = $4 AND o.updated_at < now() - make_interval(secs => $2 / 1000)))
          ORDER BY o.created_at DESC LIMIT $3",
        stuck = *STUCK_STEPS,
    ))
});

/// Orders, newest first. `stuck_after_ms`: only orders mid-step or parked,
/// or working with no news for that long. A row this version cannot read
/// is left out, logged and counted (`store::readable`).
pub async fn orders(
    pool: &PgPool,
    status: Option<Status>,
    stuck_after_ms: Option<u64>,
    limit: i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    let rows = sqlx::query(*ORDERS)
        .bind(status)
        .bind(stuck_after_ms.map(|ms| ms as f64))
        .bind(limit)
        .bind(Step::Working)
        .fetch_all(pool)
        .await?;
    Ok(decode_each("operator_orders", rows))
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AccountRow {
    pub account_id: Uuid,
    pub name: String,
    pub balances_account_id: String,
    pub created_at: DateTime<Utc>,
    pub api_keys: i64,
    pub orders: i64,
    pub open_orders: i64,
}

static ACCOUNTS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT a.account_id, a.name, a.balances_account_id, a.created_at,
                (SELECT count(*) FROM api_keys k WHERE k.account_id = a.account_id AND k.revoked_at IS NULL) AS api_keys,
                (SELECT count(*) FROM orders o WHERE o.account_id = a.account_id) AS orders,
                (SELECT count(*) FROM orders o WHERE o.account_id = a.account_id
                    AND o.status NOT IN {terminal}) AS open_orders
           FROM accounts a ORDER BY a.created_at",
        terminal = *TERMINAL_STATUSES,
    ))
});

pub async fn accounts(pool: &PgPool) -> Result<Vec<AccountRow>, sqlx::Error> {
    sqlx::query_as(*ACCOUNTS).fetch_all(pool).await
}

/// One of orderd's tables, as a soak samples it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct TableSize {
    pub table: String,
    /// Heap, indexes and TOAST.
    pub bytes: i64,
    pub rows: i64,
}

/// The tables that grow with use: their sizes and exact row counts (a
/// scan each; a soak samples once a minute).
macro_rules! table_sizes {
    ($($table:literal),+ $(,)?) => {
        concat!($(
            "SELECT '", $table, "'::text AS table, pg_total_relation_size('", $table,
            "') AS bytes, (SELECT count(*) FROM ", $table, ") AS rows UNION ALL ",
        )+ "SELECT NULL, NULL, NULL WHERE false")
    };
}

const TABLE_SIZES: &str = table_sizes!(
    "orders",
    "order_events",
    "fills",
    "idempotency_keys",
    "reconcile_ticks",
    "reconciliation_runs",
    "reconciliation_findings",
    "quarantined_reports",
    "equity_snapshots",
    "instances",
);

/// The sizes of the tables that grow with use.
pub async fn table_sizes(pool: &PgPool) -> Result<Vec<TableSize>, sqlx::Error> {
    sqlx::query_as(TABLE_SIZES).fetch_all(pool).await
}

/// What `/metrics` reports about the database: counts by the values this
/// version knows (`store::readable`; a value a newer version wrote has no
/// label here and would fail the whole scrape).
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Orders not terminal, by status.
    pub open_by_status: Vec<(Status, i64)>,
    /// Orders not closed, by step and step state.
    pub by_step: Vec<(Step, StepState, i64)>,
    /// Age of the oldest order not terminal, in seconds.
    pub oldest_open_secs: Option<f64>,
    /// Fills not settled, by settlement state.
    pub unsettled_fills: Vec<(SettlementState, i64)>,
}

static OPEN_BY_STATUS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT status, count(*) FROM orders WHERE status NOT IN {terminal} AND {known}
          GROUP BY status",
        terminal = *TERMINAL_STATUSES,
        known = *KNOWN_ORDER,
    ))
});

static BY_STEP: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT step, step_state, count(*) FROM orders WHERE step <> $1 AND {known}
          GROUP BY step, step_state",
        known = *KNOWN_ORDER,
    ))
});

static OLDEST_OPEN: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT extract(epoch FROM now() - min(created_at))::float8 FROM orders
          WHERE status NOT IN {terminal}",
        terminal = *TERMINAL_STATUSES,
    ))
});

static UNSETTLED_FILLS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT settlement_state, count(*) FROM fills
          WHERE settlement_state <> $1 AND settlement_state IN {known} GROUP BY 1",
        known = *KNOWN_SETTLEMENT_STATES,
    ))
});

/// The database gauges of `/metrics`.
pub async fn gauges(pool: &PgPool) -> Result<Gauges, sqlx::Error> {
    Ok(Gauges {
        open_by_status: sqlx::query_as(*OPEN_BY_STATUS).fetch_all(pool).await?,
        by_step: sqlx::query_as(*BY_STEP)
            .bind(Step::Closed)
            .fetch_all(pool)
            .await?,
        oldest_open_secs: sqlx::query_scalar(*OLDEST_OPEN).fetch_one(pool).await?,
        unsettled_fills: sqlx::query_as(*UNSETTLED_FILLS)
            .bind(SettlementState::Settled)
            .fetch_all(pool)
            .await?,
    })
}

/// One order as the invariant checker needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderFacts {
    pub order_id: Uuid,
    pub account_id: Uuid,
    pub venue_client_order_id: VenueClientOrderId,
    pub venue_order_id: Option<VenueOrderId>,
    pub symbol: String,
    pub side: Side,
    /// 0 for a notional order until the venue reports it filled.
    pub qty: Decimal,
    pub notional: Option<Decimal>,
    pub status: Status,
    pub step: Step,
    pub filled_qty: Decimal,
    pub filled_avg_price: Option<Decimal>,
    pub time_in_force: crate::domain::order::TimeInForce,
    /// It ends with its session and that session's close (its open, for
    /// OPG) passed more than [`SESSION_END_GRACE_SECS`] ago.
    pub session_over: bool,
    /// Its place in a replace chain.
    pub replaces: Option<Uuid>,
    pub replaced_by: Option<Uuid>,
}

/// How long after a session's end the checker expects every order that
/// ended with it to be terminal.
pub const SESSION_END_GRACE_SECS: u32 = 5;

/// One fill as the invariant checker needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FillFacts {
    pub exec_id: ExecId,
    pub order_id: Uuid,
    pub qty: Decimal,
    pub price: Decimal,
    pub settlement_state: SettlementState,
}

static ORDER_FACTS: std::sync::LazyLock<&'static str> = std::sync::LazyLock::new(|| {
    super::types::statement(format!(
        "SELECT order_id, account_id, venue_client_order_id, venue_order_id, symbol, side, qty,
                notional, status, step, filled_qty, filled_avg_price, time_in_force,
                (time_in_force IN {session}
                 AND EXISTS (SELECT 1 FROM trading_sessions s
                              WHERE (CASE WHEN o.time_in_force = '{opg}' THEN s.open ELSE s.close END)
                                    BETWEEN o.created_at AND now() - interval '{grace} seconds'))
                  AS session_over, replaces, replaced_by
           FROM orders o",
        session = *super::types::SESSION_TIME_IN_FORCE,
        opg = crate::domain::order::TimeInForce::Opg.as_str(),
        grace = SESSION_END_GRACE_SECS,
    ))
});

const FILL_FACTS: &str = "SELECT exec_id, order_id, qty, price, settlement_state FROM fills";

const ACCOUNT_FACTS: &str = "SELECT account_id, balances_account_id FROM accounts";

/// Every order, fill and account (the checker's view of orderd).
pub async fn check_facts(
    pool: &PgPool,
) -> Result<(Vec<OrderFacts>, Vec<FillFacts>, Vec<(Uuid, String)>), sqlx::Error> {
    let orders = sqlx::query_as(*ORDER_FACTS).fetch_all(pool).await?;
    let fills = sqlx::query_as(FILL_FACTS).fetch_all(pool).await?;
    let accounts = sqlx::query_as(ACCOUNT_FACTS).fetch_all(pool).await?;
    Ok((orders, fills, accounts))
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ORDERS", *ORDERS),
        ("ACCOUNTS", *ACCOUNTS),
        ("OPEN_BY_STATUS", *OPEN_BY_STATUS),
        ("BY_STEP", *BY_STEP),
        ("OLDEST_OPEN", *OLDEST_OPEN),
        ("UNSETTLED_FILLS", *UNSETTLED_FILLS),
        ("ORDER_FACTS", *ORDER_FACTS),
        ("FILL_FACTS", FILL_FACTS),
        ("ACCOUNT_FACTS", ACCOUNT_FACTS),
        ("TABLE_SIZES", TABLE_SIZES),
    ]
}

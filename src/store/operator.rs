//! Read queries for operators (the CLI): orders with their account, stuck
//! orders, accounts with their activity.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct OrderRow {
    pub order_id: Uuid,
    pub account: String,
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub order_type: String,
    pub qty: Decimal,
    pub filled_qty: Decimal,
    pub status: String,
    pub step: String,
    pub step_state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Orders, newest first. `stuck_after_ms`: only orders mid-step or parked,
/// or working with no news for that long.
pub async fn orders(
    pool: &PgPool,
    status: Option<&str>,
    stuck_after_ms: Option<u64>,
    limit: i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.order_id, a.name AS account, o.client_order_id, o.symbol, o.side, o.order_type, o.qty,
                o.filled_qty, o.status, o.step, o.step_state, o.attempts, o.next_attempt_at,
                o.created_at, o.updated_at
           FROM orders o JOIN accounts a USING (account_id)
          WHERE ($1::text IS NULL OR o.status = $1)
            AND ($2::float8 IS NULL
                 OR o.step IN ('reserve', 'place', 'cancel', 'release', 'parked')
                 OR (o.step = 'working' AND o.updated_at < now() - make_interval(secs => $2 / 1000)))
          ORDER BY o.created_at DESC LIMIT $3",
    )
    .bind(status)
    .bind(stuck_after_ms.map(|ms| ms as f64))
    .bind(limit)
    .fetch_all(pool)
    .await
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

pub async fn accounts(pool: &PgPool) -> Result<Vec<AccountRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.account_id, a.name, a.balances_account_id, a.created_at,
                (SELECT count(*) FROM api_keys k WHERE k.account_id = a.account_id AND k.revoked_at IS NULL) AS api_keys,
                (SELECT count(*) FROM orders o WHERE o.account_id = a.account_id) AS orders,
                (SELECT count(*) FROM orders o WHERE o.account_id = a.account_id
                    AND o.status NOT IN ('filled', 'canceled', 'expired', 'rejected')) AS open_orders
           FROM accounts a ORDER BY a.created_at",
    )
    .fetch_all(pool)
    .await
}

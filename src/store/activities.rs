//! An account's fills as a history: the settled trades a position's cost
//! folds, and the FILL activities `/v2/account/activities` pages through.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::fills::SettlementState;
use crate::domain::ids::ExecId;
use crate::domain::order::Side;
use crate::domain::position::Trade;

const SETTLED_TRADES: &str = "SELECT o.side, f.qty, f.price
       FROM fills f JOIN orders o ON o.order_id = f.order_id
      WHERE o.account_id = $1 AND o.symbol = $2 AND f.settlement_state = $3
      ORDER BY f.transact_time, f.exec_id";

/// The account's settled fills of `symbol`, in execution order: what the
/// ledger's position is made of.
pub async fn settled_trades(
    pool: &PgPool,
    account_id: Uuid,
    symbol: &str,
) -> Result<Vec<Trade>, sqlx::Error> {
    let rows: Vec<(Side, Decimal, Decimal)> = sqlx::query_as(SETTLED_TRADES)
        .bind(account_id)
        .bind(symbol)
        .bind(SettlementState::Settled)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(side, qty, price)| Trade { side, qty, price })
        .collect())
}

/// One fill of the account with its order's figures at that fill.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FillActivity {
    pub exec_id: ExecId,
    pub order_id: Uuid,
    pub symbol: String,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub transact_time: DateTime<Utc>,
    /// `None` while a notional order's quantity is not known.
    pub order_qty: Option<Decimal>,
    /// The order's filled quantity counting this fill and those before it.
    pub cum_qty: Decimal,
}

/// Which page of the account's fills.
#[derive(Debug, Clone, Default)]
pub struct ActivityPage {
    /// Only fills at or after this time.
    pub after: Option<DateTime<Utc>>,
    /// Only fills before this time.
    pub until: Option<DateTime<Utc>>,
    /// The last fill of the previous page (the page continues past it).
    pub past: Option<(DateTime<Utc>, ExecId)>,
    pub ascending: bool,
    pub limit: i64,
}

macro_rules! fill_activities {
    ($cmp:literal, $order:literal) => {
        concat!(
            "SELECT f.exec_id, f.order_id, o.symbol, o.side, f.qty, f.price, f.transact_time,
                    NULLIF(o.qty, 0) AS order_qty,
                    (SELECT sum(g.qty) FROM fills g
                      WHERE g.order_id = f.order_id
                        AND (g.transact_time, g.exec_id) <= (f.transact_time, f.exec_id)) AS cum_qty
               FROM fills f JOIN orders o ON o.order_id = f.order_id
              WHERE o.account_id = $1
                AND ($2::timestamptz IS NULL OR f.transact_time >= $2)
                AND ($3::timestamptz IS NULL OR f.transact_time < $3)
                AND ($4::timestamptz IS NULL OR (f.transact_time, f.exec_id) ",
            $cmp,
            " ($4, $5))
              ORDER BY f.transact_time ",
            $order,
            ", f.exec_id ",
            $order,
            " LIMIT $6"
        )
    };
}

const FILL_ACTIVITIES_ASC: &str = fill_activities!(">", "ASC");
const FILL_ACTIVITIES_DESC: &str = fill_activities!("<", "DESC");

/// A page of the account's fills, newest first unless `page.ascending`.
pub async fn fill_activities(
    pool: &PgPool,
    account_id: Uuid,
    page: &ActivityPage,
) -> Result<Vec<FillActivity>, sqlx::Error> {
    let statement = if page.ascending {
        FILL_ACTIVITIES_ASC
    } else {
        FILL_ACTIVITIES_DESC
    };
    let (past_time, past_exec) = match &page.past {
        Some((time, exec)) => (Some(*time), Some(exec.clone())),
        None => (None, None),
    };
    sqlx::query_as(statement)
        .bind(account_id)
        .bind(page.after)
        .bind(page.until)
        .bind(past_time)
        .bind(past_exec)
        .bind(page.limit)
        .fetch_all(pool)
        .await
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SETTLED_TRADES", SETTLED_TRADES),
        ("FILL_ACTIVITIES_ASC", FILL_ACTIVITIES_ASC),
        ("FILL_ACTIVITIES_DESC", FILL_ACTIVITIES_DESC),
    ]
}

//! The synced reference data: the venue's instruments (`assets`) and its
//! calendar of sessions (`trading_sessions`).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Row};

use crate::domain::asset::Asset;
use crate::domain::session::SessionDay;

impl<'r> FromRow<'r, PgRow> for Asset {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            symbol: row.try_get("symbol")?,
            asset_id: row.try_get("asset_id")?,
            venue_asset_id: row.try_get("venue_asset_id")?,
            name: row.try_get("name")?,
            exchange: row.try_get("exchange")?,
            asset_class: row.try_get("asset_class")?,
            status: row.try_get("status")?,
            tradable: row.try_get("tradable")?,
            shortable: row.try_get("shortable")?,
            easy_to_borrow: row.try_get("easy_to_borrow")?,
            fractionable: row.try_get("fractionable")?,
            marginable: row.try_get("marginable")?,
            halted: row.try_get("halted")?,
            tick_size: row.try_get("tick_size")?,
            sub_dollar_tick_size: row.try_get("sub_dollar_tick_size")?,
            tick_threshold: row.try_get("tick_threshold")?,
            lot_size: row.try_get("lot_size")?,
            min_qty: row.try_get("min_qty")?,
            max_qty: row.try_get("max_qty")?,
        })
    }
}

impl<'r> FromRow<'r, PgRow> for SessionDay {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            date: row.try_get("session_date")?,
            pre_open: row.try_get("pre_open")?,
            open: row.try_get("open")?,
            closing_auction: row.try_get("closing_auction")?,
            close: row.try_get("close")?,
            early_close: row.try_get("early_close")?,
        })
    }
}

const LOAD_ASSETS: &str = "SELECT symbol, asset_id, venue_asset_id, name, exchange, asset_class,
            status, tradable, shortable, easy_to_borrow, fractionable, marginable, halted,
            tick_size, sub_dollar_tick_size, tick_threshold, lot_size, min_qty, max_qty
       FROM assets ORDER BY symbol";

pub async fn assets(pool: &PgPool) -> Result<Vec<Asset>, sqlx::Error> {
    sqlx::query_as(LOAD_ASSETS).fetch_all(pool).await
}

const UPSERT_ASSET: &str = "INSERT INTO assets (symbol, asset_id, venue_asset_id, name, exchange,
        asset_class, status, tradable, shortable, easy_to_borrow, fractionable, marginable, halted,
        tick_size, sub_dollar_tick_size, tick_threshold, lot_size, min_qty, max_qty, synced_at,
        changed_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
             now(), now())
     ON CONFLICT (symbol) DO UPDATE SET venue_asset_id = EXCLUDED.venue_asset_id,
        name = EXCLUDED.name, exchange = EXCLUDED.exchange, asset_class = EXCLUDED.asset_class,
        status = EXCLUDED.status, tradable = EXCLUDED.tradable, shortable = EXCLUDED.shortable,
        easy_to_borrow = EXCLUDED.easy_to_borrow, fractionable = EXCLUDED.fractionable,
        marginable = EXCLUDED.marginable, halted = EXCLUDED.halted,
        tick_size = EXCLUDED.tick_size, sub_dollar_tick_size = EXCLUDED.sub_dollar_tick_size,
        tick_threshold = EXCLUDED.tick_threshold, lot_size = EXCLUDED.lot_size,
        min_qty = EXCLUDED.min_qty, max_qty = EXCLUDED.max_qty, synced_at = now(),
        changed_at = now()";

const TOUCH_ASSETS: &str = "UPDATE assets SET synced_at = now()";

/// Writes the assets that changed (new ones included) and marks every
/// asset synced, in one transaction.
pub async fn save_assets(pool: &PgPool, changed: &[Asset]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for a in changed {
        sqlx::query(UPSERT_ASSET)
            .bind(&a.symbol)
            .bind(a.asset_id)
            .bind(&a.venue_asset_id)
            .bind(&a.name)
            .bind(&a.exchange)
            .bind(&a.asset_class)
            .bind(a.status)
            .bind(a.tradable)
            .bind(a.shortable)
            .bind(a.easy_to_borrow)
            .bind(a.fractionable)
            .bind(a.marginable)
            .bind(a.halted)
            .bind(a.tick_size)
            .bind(a.sub_dollar_tick_size)
            .bind(a.tick_threshold)
            .bind(a.lot_size)
            .bind(a.min_qty)
            .bind(a.max_qty)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(TOUCH_ASSETS).execute(&mut *tx).await?;
    tx.commit().await
}

/// The sessions kept: from a week back on.
const LOAD_SESSIONS: &str =
    "SELECT session_date, pre_open, open, closing_auction, close, early_close
       FROM trading_sessions
      WHERE close >= now() - interval '7 days' ORDER BY open";

pub async fn sessions(pool: &PgPool) -> Result<Vec<SessionDay>, sqlx::Error> {
    sqlx::query_as(LOAD_SESSIONS).fetch_all(pool).await
}

const DROP_SESSIONS_NOT_LISTED: &str = "DELETE FROM trading_sessions
      WHERE session_date >= $1 AND session_date <= $2 AND NOT (session_date = ANY($3))";

const DROP_SESSIONS_PAST_END: &str = "DELETE FROM trading_sessions WHERE session_date > $1";

const UPSERT_SESSIONS: &str = "INSERT INTO trading_sessions (session_date, pre_open, open,
        closing_auction, close, early_close, synced_at)
     SELECT * , now() FROM UNNEST($1::date[], $2::timestamptz[], $3::timestamptz[],
        $4::timestamptz[], $5::timestamptz[], $6::boolean[])
     ON CONFLICT (session_date) DO UPDATE SET pre_open = EXCLUDED.pre_open,
        open = EXCLUDED.open, closing_auction = EXCLUDED.closing_auction,
        close = EXCLUDED.close, early_close = EXCLUDED.early_close, synced_at = now()";

/// Makes the stored calendar for `start..=end` exactly `days`: what the
/// venue no longer lists in that range is removed (as is anything after
/// it: a venue restarted on a shorter calendar), the rest written.
pub async fn replace_sessions(
    pool: &PgPool,
    start: NaiveDate,
    end: NaiveDate,
    days: &[SessionDay],
) -> Result<(), sqlx::Error> {
    let dates: Vec<NaiveDate> = days.iter().map(|d| d.date).collect();
    let column = |f: fn(&SessionDay) -> DateTime<Utc>| days.iter().map(f).collect::<Vec<_>>();
    let mut tx = pool.begin().await?;
    sqlx::query(DROP_SESSIONS_NOT_LISTED)
        .bind(start)
        .bind(end)
        .bind(&dates)
        .execute(&mut *tx)
        .await?;
    sqlx::query(DROP_SESSIONS_PAST_END)
        .bind(end)
        .execute(&mut *tx)
        .await?;
    sqlx::query(UPSERT_SESSIONS)
        .bind(&dates)
        .bind(column(|d| d.pre_open))
        .bind(column(|d| d.open))
        .bind(column(|d| d.closing_auction))
        .bind(column(|d| d.close))
        .bind(days.iter().map(|d| d.early_close).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LOAD_ASSETS", LOAD_ASSETS),
        ("UPSERT_ASSET", UPSERT_ASSET),
        ("TOUCH_ASSETS", TOUCH_ASSETS),
        ("LOAD_SESSIONS", LOAD_SESSIONS),
        ("DROP_SESSIONS_NOT_LISTED", DROP_SESSIONS_NOT_LISTED),
        ("DROP_SESSIONS_PAST_END", DROP_SESSIONS_PAST_END),
        ("UPSERT_SESSIONS", UPSERT_SESSIONS),
    ]
}

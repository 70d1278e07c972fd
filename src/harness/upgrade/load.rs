//! The drill's database before the upgrade: the previous release's schema
//! (migrations up to [`PREVIOUS_VERSION`]) holding a realistic mix of
//! orders, most of them long closed, with the fills of those that filled.

use sqlx::{Connection, PgConnection};

/// The last migration of the previous release (a59b06a).
pub const PREVIOUS_VERSION: i64 = 14;

/// Accounts the loaded orders belong to.
pub const ACCOUNTS: i64 = 100;

/// The drill's accounts, `md5('drill-account-' || n)::uuid` for n in
/// 0..ACCOUNTS (so each order names its account without a join).
const LOAD_ACCOUNTS: &str = "INSERT INTO accounts (account_id, name, balances_account_id)
     SELECT md5('drill-account-' || a)::uuid, 'drill-' || a, 'drill-bal-' || a
       FROM generate_series(0, $1::bigint - 1) a";

/// `$1` orders in the columns the schema had at 0005 (the columns later
/// migrations added keep NULL or their defaults: what the drill measures,
/// locks and failed statements, reads none of them), by `k = g % 100`:
/// 60 % filled, 15 % canceled, 5 % rejected, 2 % expired (all closed);
/// 10 % new and 4 % partially filled (working at the venue); 2 % placing
/// with an unknown outcome, 1 % reserving, 1 % canceling (driven, their
/// retry a little later). One order every 7 s back from now (1 M orders
/// span 81 days). Buys hold cash at 105 % of their price, sells shares.
const LOAD_ORDERS: &str = "WITH src AS (
       SELECT g, g % 100 AS k, now() - make_interval(secs => g * 7.0) AS created,
              2 + g % 100 AS qty, (100 + g % 50)::numeric AS price, g % 2 = 0 AS buy,
              (ARRAY['AAPL','MSFT','GOOG','AMZN','TSLA','NVDA','META','SPY'])[1 + g % 8] AS symbol
         FROM generate_series(1, $1::bigint) g),
     typed AS (
       SELECT src.*,
              CASE WHEN k < 60 THEN 'filled' WHEN k < 75 THEN 'canceled'
                   WHEN k < 80 THEN 'rejected' WHEN k < 82 THEN 'expired'
                   WHEN k < 92 THEN 'new' WHEN k < 96 THEN 'partially_filled'
                   WHEN k < 99 THEN 'pending_new' ELSE 'pending_cancel' END AS status,
              CASE WHEN k < 82 THEN 'closed' WHEN k < 96 THEN 'working'
                   WHEN k < 98 THEN 'place' WHEN k < 99 THEN 'reserve' ELSE 'cancel' END AS step,
              (k < 75 OR (k >= 80 AND k < 96) OR k = 99) AS at_venue,
              CASE WHEN k < 60 THEN qty WHEN k >= 92 AND k < 96 THEN qty / 2 ELSE 0 END AS filled
         FROM src)
     INSERT INTO orders (order_id, account_id, client_order_id, venue_client_order_id,
                         request_fingerprint, symbol, side, order_type, time_in_force, qty,
                         limit_price, status, step, step_state, recovery_version, attempts,
                         next_attempt_at, hold_asset, hold_amount, hold_rate, hold_id,
                         venue_order_id, filled_qty, filled_avg_price, reject_reason,
                         created_at, updated_at, submitted_at, filled_at, canceled_at,
                         expired_at, failed_at, version, cancel_requested_at, venue_status,
                         venue_cum_qty)
     SELECT md5('drill-order-' || g)::uuid,
            md5('drill-account-' || (g % $2::bigint))::uuid,
            'bulk-' || g, 'od-' || md5('drill-order-' || g), md5('fp-' || g),
            symbol, CASE WHEN buy THEN 'buy' ELSE 'sell' END,
            CASE WHEN g % 3 = 0 THEN 'market' ELSE 'limit' END,
            CASE WHEN g % 5 = 0 THEN 'gtc' ELSE 'day' END,
            qty, CASE WHEN g % 3 = 0 THEN NULL ELSE price END,
            status, step, CASE WHEN k IN (96, 97) THEN 'unknown' ELSE 'pending' END, 1,
            CASE WHEN k IN (96, 97) THEN 1 ELSE 0 END,
            CASE WHEN step = 'closed' OR step = 'working' THEN created
                 ELSE now() + interval '1 hour' END,
            CASE WHEN buy THEN 'USD' ELSE symbol END,
            CASE WHEN buy THEN qty * price * 1.05 ELSE qty END,
            CASE WHEN buy THEN price * 1.05 ELSE 1 END,
            CASE WHEN status = 'rejected' OR step = 'reserve' THEN NULL ELSE 'hold-' || g END,
            CASE WHEN at_venue THEN 'v-' || g END,
            filled, CASE WHEN filled > 0 THEN price END,
            CASE WHEN status = 'rejected'
                 THEN '{\"kind\": \"insufficient_funds\", \"available\": \"0\"}'::jsonb END,
            created,
            created + CASE WHEN step = 'closed' THEN interval '10 minutes' ELSE interval '1 second' END,
            CASE WHEN at_venue THEN created + interval '50 milliseconds' END,
            CASE WHEN status = 'filled' THEN created + interval '1 second' END,
            CASE WHEN status = 'canceled' THEN created + interval '10 minutes' END,
            CASE WHEN status = 'expired' THEN created + interval '6 hours' END,
            CASE WHEN status = 'rejected' THEN created + interval '10 milliseconds' END,
            CASE WHEN step = 'closed' THEN 5 ELSE 3 END,
            CASE WHEN status IN ('canceled', 'pending_cancel') THEN created + interval '5 minutes' END,
            CASE WHEN at_venue THEN (CASE WHEN status = 'pending_cancel' THEN 'new' ELSE status END) END,
            filled
       FROM typed";

/// One fill per order that has filled quantity: settled for filled
/// orders, pending (settlement in a while) for partially filled ones.
const LOAD_FILLS: &str = "INSERT INTO fills (exec_id, order_id, qty, price, transact_time, source,
                         settlement_state, settlement_attempts, next_settle_at, settlement_id,
                         settlement_flagged, settled_at, created_at)
     SELECT 'x-' || venue_order_id, order_id, filled_qty, filled_avg_price,
            created_at + interval '1 second', 'stream',
            CASE WHEN status = 'filled' THEN 'settled' ELSE 'pending' END,
            CASE WHEN status = 'filled' THEN 1 ELSE 0 END,
            now() + interval '1 hour',
            CASE WHEN status = 'filled' THEN 'settlement-' || venue_order_id END,
            CASE WHEN status = 'filled' THEN false END,
            CASE WHEN status = 'filled' THEN created_at + interval '2 seconds' END,
            created_at + interval '1 second'
       FROM orders WHERE filled_qty > 0";

/// Rows in the loaded tables.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Loaded {
    pub orders: i64,
    pub fills: i64,
    pub secs: f64,
}

/// Loads `orders` orders and their fills over `conn` (a connection without
/// the application's timeouts), then `VACUUM ANALYZE`s both tables, as
/// autovacuum would have long since done on a database this old.
pub async fn load(conn: &mut PgConnection, orders: u64) -> anyhow::Result<Loaded> {
    let started = std::time::Instant::now();
    let mut tx = conn.begin().await?;
    sqlx::query(LOAD_ACCOUNTS)
        .bind(ACCOUNTS)
        .execute(&mut *tx)
        .await?;
    let orders = sqlx::query(LOAD_ORDERS)
        .bind(i64::try_from(orders)?)
        .bind(ACCOUNTS)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let fills = sqlx::query(LOAD_FILLS)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    // One statement per message: VACUUM cannot run in the implicit
    // transaction of a multi-statement one.
    for statement in [
        "VACUUM ANALYZE orders",
        "VACUUM ANALYZE fills",
        "ANALYZE accounts",
    ] {
        sqlx::raw_sql(statement).execute(&mut *conn).await?;
    }
    Ok(Loaded {
        orders: i64::try_from(orders)?,
        fills: i64::try_from(fills)?,
        secs: started.elapsed().as_secs_f64(),
    })
}

//! The previous version's writes, as 3dd1c1b (schema 0005) makes them:
//! its statements copied with their column sets, over a pool with the
//! application's server-side timeouts (3dd1c1b's defaults are today's:
//! `statement_timeout` 5 s, `lock_timeout` 2 s), every write timed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

/// 3dd1c1b's accept: the order and its `reserve requested` event.
const INSERT_ORDER: &str = "WITH inserted AS (
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
     SELECT * FROM inserted";

/// 3dd1c1b's `record_change`: a recorded step with its events.
const RECORD_CHANGE: &str = "WITH updated AS (
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
     SELECT * FROM updated";

/// 3dd1c1b's `apply_execution`: lock the order, read its fills, write.
const LOCK_ORDER: &str =
    "SELECT o.*, (SELECT fencing_token FROM leases WHERE name = $2) AS current_fence
       FROM orders o WHERE venue_client_order_id = $1 FOR UPDATE OF o";
const FILLS_FOR_APPLY: &str = "SELECT exec_id, qty, price, order_id = $1 FROM fills
      WHERE order_id = $1 OR exec_id = $2";
const APPLY: &str = "WITH fill AS (
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
     SELECT count(*) FROM fill";

/// 3dd1c1b's completer pick.
const CLAIM_DUE: &str = "WITH due AS (
        SELECT order_id, (lease_owner IS NOT NULL AND lease_owner <> $2) AS taken_over FROM orders
         WHERE step IN ('reserve', 'place', 'cancel', 'release')
           AND next_attempt_at <= now()
           AND (lease_owner IS NULL OR lease_expires_at < now()
                OR lease_owner IN (SELECT instance_id FROM instances
                                    WHERE stopped_at IS NOT NULL
                                       OR last_seen_at < now() - make_interval(secs => $4::float8 / 1000)))
         ORDER BY next_attempt_at
         LIMIT $1
         FOR UPDATE SKIP LOCKED)
     UPDATE orders o SET lease_owner = $2,
            lease_expires_at = now() + make_interval(secs => $3::float8 / 1000)
       FROM due WHERE o.order_id = due.order_id
     RETURNING o.*, due.taken_over";

/// 3dd1c1b's registration and heartbeat.
const REGISTER: &str =
    "INSERT INTO instances (instance_id, hostname, pid, version) VALUES ($1, $2, $3, $4)";
const HEARTBEAT: &str = "UPDATE instances SET last_seen_at = now() WHERE instance_id = $1";

/// 3dd1c1b's recovery encoding.
const RECOVERY_VERSION: i16 = 1;
const LEASE_MS: f64 = 30_000.0;

/// One timed write.
#[derive(Debug, Clone)]
pub struct Write {
    pub op: &'static str,
    /// Since the drill's clock started.
    pub start: Duration,
    pub took: Duration,
    pub error: Option<String>,
}

impl Write {
    pub fn end(&self) -> Duration {
        self.start + self.took
    }
}

const ACCOUNT_IDS: &str = "SELECT account_id FROM accounts ORDER BY name";

/// The previous version's instance, registered like 3dd1c1b does, and
/// the accounts its traders order for.
pub async fn register(pool: &PgPool) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
    let id = Uuid::new_v4();
    sqlx::query(REGISTER)
        .bind(id)
        .bind("upgrade-drill")
        .bind(i32::try_from(std::process::id()).unwrap_or(0))
        .bind("3dd1c1b")
        .execute(pool)
        .await?;
    let accounts: Vec<Uuid> = sqlx::query_scalar(ACCOUNT_IDS).fetch_all(pool).await?;
    anyhow::ensure!(!accounts.is_empty(), "no accounts loaded");
    Ok((id, accounts))
}

/// Times `write`, recording its outcome whatever it was.
async fn timed<F, T>(log: &mut Vec<Write>, clock: Instant, op: &'static str, write: F) -> bool
where
    F: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let start = clock.elapsed();
    let began = Instant::now();
    let outcome = write.await;
    log.push(Write {
        op,
        start,
        took: began.elapsed(),
        error: outcome.as_ref().err().map(describe),
    });
    outcome.is_ok()
}

/// An error as the report shows it: the server's SQLSTATE and message.
fn describe(error: &sqlx::Error) -> String {
    match error.as_database_error() {
        Some(db) => format!("{} {}", db.code().unwrap_or_default(), db.message()),
        None => error.to_string(),
    }
}

/// The heartbeat, once a second, until `stop`.
pub async fn heartbeat(
    pool: PgPool,
    instance: Uuid,
    clock: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Write> {
    let mut log = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let beat = sqlx::query(HEARTBEAT).bind(instance).execute(&pool);
        timed(&mut log, clock, "heartbeat (UPDATE instances)", beat).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    log
}

/// One writer: order after order, each accepted, reserved, placed and
/// filled with 3dd1c1b's statements (and the completer's pick every fifth),
/// until `stop`. A failed write is recorded and the writer goes on with a
/// new order.
pub async fn writer(
    pool: PgPool,
    instance: Uuid,
    accounts: Arc<Vec<Uuid>>,
    writer: usize,
    clock: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Write> {
    let mut log = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let order_id = Uuid::new_v4();
        let venue_client_order_id = format!("od-{}", order_id.simple());
        let account = accounts[(n as usize + writer) % accounts.len()];
        let (qty, price) = (Decimal::from(10), Decimal::from(100));
        let insert = sqlx::query(INSERT_ORDER)
            .bind(order_id)
            .bind(account)
            .bind(format!("drill-w{writer}-{n}"))
            .bind(&venue_client_order_id)
            .bind("drill")
            .bind("AAPL")
            .bind("buy")
            .bind("limit")
            .bind("day")
            .bind(qty)
            .bind(Some(price))
            .bind(RECOVERY_VERSION)
            .bind("USD")
            .bind(Some(qty * price))
            .bind(Some(price))
            .bind(instance)
            .bind(LEASE_MS)
            .bind("reserve")
            .bind("requested")
            .bind(serde_json::json!({"accepted": true}))
            .fetch_optional(&pool);
        if !timed(
            &mut log,
            clock,
            "insert_order (INSERT … RETURNING *)",
            insert,
        )
        .await
        {
            continue;
        }
        // The hold's outcome, then the placement's.
        let steps = [
            (
                "pending_new",
                "place",
                Some(format!("hold-{order_id}")),
                None,
            ),
            ("new", "working", None, Some(format!("v-{order_id}"))),
        ];
        let mut recorded = true;
        for (version, (status, step, hold_id, venue_order_id)) in (1i64..).zip(steps) {
            let change = sqlx::query(RECORD_CHANGE)
                .bind(order_id)
                .bind(version)
                .bind(status)
                .bind(step)
                .bind("pending")
                .bind(0i32)
                .bind(hold_id)
                .bind(venue_order_id)
                .bind(None::<serde_json::Value>)
                .bind(0.0f64)
                .bind(Some(instance))
                .bind(LEASE_MS)
                .bind(instance)
                .bind(RECOVERY_VERSION)
                .bind(vec![step])
                .bind(vec!["succeeded"])
                .bind(vec![serde_json::json!({})])
                .fetch_optional(&pool);
            recorded = timed(
                &mut log,
                clock,
                "record_change (UPDATE … RETURNING *)",
                change,
            )
            .await;
            if !recorded {
                break;
            }
        }
        if !recorded {
            continue;
        }
        let fill = apply_fill(
            &pool,
            instance,
            order_id,
            &venue_client_order_id,
            qty,
            price,
        );
        timed(
            &mut log,
            clock,
            "apply_execution (SELECT o.* … FOR UPDATE; INSERT fill)",
            fill,
        )
        .await;
        if n.is_multiple_of(5) {
            let pick = sqlx::query(CLAIM_DUE)
                .bind(10i64)
                .bind(instance)
                .bind(LEASE_MS)
                .bind(30_000.0f64)
                .fetch_all(&pool);
            timed(&mut log, clock, "claim_due (UPDATE … RETURNING o.*)", pick).await;
        }
    }
    log
}

/// A whole fill at `price`, applied as 3dd1c1b applies an execution: one
/// transaction of three statements (no timeout around it: the server's).
async fn apply_fill(
    pool: &PgPool,
    instance: Uuid,
    order_id: Uuid,
    venue_client_order_id: &str,
    qty: Decimal,
    price: Decimal,
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query(LOCK_ORDER)
        .bind(venue_client_order_id)
        .bind("venue_stream")
        .fetch_optional(&mut *tx)
        .await?;
    let exec_id = format!("x-{order_id}");
    sqlx::query(FILLS_FOR_APPLY)
        .bind(order_id)
        .bind(&exec_id)
        .fetch_all(&mut *tx)
        .await?;
    sqlx::query(APPLY)
        .bind(order_id)
        .bind("filled")
        .bind("release")
        .bind("pending")
        .bind(0i32)
        .bind(qty)
        .bind(Some(price))
        .bind("filled")
        .bind(qty)
        .bind(None::<String>)
        .bind(None::<serde_json::Value>)
        .bind(true)
        .bind(Some(&exec_id))
        .bind(qty)
        .bind(price)
        .bind(chrono::Utc::now())
        .bind("stream")
        .bind(instance)
        .bind(vec!["working"])
        .bind(vec!["succeeded"])
        .bind(vec![serde_json::json!({"fill": {"exec_id": exec_id}})])
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await
}

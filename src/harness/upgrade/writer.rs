//! The previous version's writes, as a59b06a (schema 0014) makes them:
//! its statements copied as its binary renders them (every one names its
//! columns), over a pool with the application's server-side timeouts
//! (a59b06a's defaults are today's: `statement_timeout` 5 s,
//! `lock_timeout` 2 s), every write timed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sqlx::{Connection, PgPool, Row};
use uuid::Uuid;

/// a59b06a's accept (`store::orders::insert_order`): the order, its lease
/// with a fresh token, and its `reserve requested` event.
const INSERT_ORDER: &str = "WITH inserted AS (
     INSERT INTO orders (order_id, account_id, client_order_id, venue_client_order_id,
                         request_fingerprint, symbol, side, order_type, time_in_force, qty,
                         limit_price, status, step, step_state, recovery_version,
                         hold_asset, hold_amount, hold_rate, lease_owner, lease_expires_at,
                         lease_token, expires_at, stop_price, trail_price, trail_percent,
                         notional)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $21, $18, $22,
             $12, $13, $14, $15, $16, now() + make_interval(secs => $17::float8 / 1000),
             nextval('lease_tokens'), $23, $24, $25, $26, $27)
     ON CONFLICT (account_id, client_order_id) DO NOTHING
     RETURNING order_id, account_id, client_order_id, venue_client_order_id, request_fingerprint, symbol, side, order_type, time_in_force, qty, limit_price, status, step, step_state, recovery_version, attempts, next_attempt_at, lease_owner, lease_expires_at, hold_asset, hold_amount, hold_rate, hold_id, venue_order_id, filled_qty, filled_avg_price, reject_reason, created_at, updated_at, submitted_at, filled_at, canceled_at, expired_at, failed_at, version, cancel_requested_at, venue_status, venue_cum_qty, lease_token, placement_sent_at, placement_last_sent_at, expires_at, parked_step, stop_price, trail_price, trail_percent, notional),
     events AS (
     INSERT INTO order_events (order_id, step, state, detail, instance_id)
     SELECT inserted.order_id, $18, $19, $20, $16 FROM inserted)
     SELECT * FROM inserted";

/// a59b06a's `record_change`: a recorded step with its events, under the
/// claim's token.
const RECORD_CHANGE: &str = "WITH updated AS (
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
                filled_at = CASE WHEN $3 = 'filled' THEN COALESCE(filled_at, now()) ELSE filled_at END,
                canceled_at = CASE WHEN $3 = 'canceled' THEN COALESCE(canceled_at, now()) ELSE canceled_at END,
                expired_at = CASE WHEN $3 = 'expired' THEN COALESCE(expired_at, now()) ELSE expired_at END,
                failed_at = CASE WHEN $3 = 'rejected' THEN COALESCE(failed_at, now()) ELSE failed_at END,
                recovery_version = $14,
                updated_at = now(), version = version + 1
          WHERE order_id = $1 AND version = $2 AND lease_token = $18
         RETURNING order_id, account_id, client_order_id, venue_client_order_id, request_fingerprint, symbol, side, order_type, time_in_force, qty, limit_price, status, step, step_state, recovery_version, attempts, next_attempt_at, lease_owner, lease_expires_at, hold_asset, hold_amount, hold_rate, hold_id, venue_order_id, filled_qty, filled_avg_price, reject_reason, created_at, updated_at, submitted_at, filled_at, canceled_at, expired_at, failed_at, version, cancel_requested_at, venue_status, venue_cum_qty, lease_token, placement_sent_at, placement_last_sent_at, expires_at, parked_step, stop_price, trail_price, trail_percent, notional),
         events AS (
         INSERT INTO order_events (order_id, step, state, detail, instance_id)
         SELECT updated.order_id, s.step, s.state, s.detail, $13
           FROM updated, unnest($15::text[], $16::text[], $17::jsonb[]) AS s(step, state, detail))
         SELECT * FROM updated";

/// a59b06a's `apply_execution`: lock the order, read its fills, write.
const LOCK_ORDER: &str = "SELECT o.order_id, o.account_id, o.client_order_id, o.venue_client_order_id, o.request_fingerprint, o.symbol, o.side, o.order_type, o.time_in_force, o.qty, o.limit_price, o.status, o.step, o.step_state, o.recovery_version, o.attempts, o.next_attempt_at, o.lease_owner, o.lease_expires_at, o.hold_asset, o.hold_amount, o.hold_rate, o.hold_id, o.venue_order_id, o.filled_qty, o.filled_avg_price, o.reject_reason, o.created_at, o.updated_at, o.submitted_at, o.filled_at, o.canceled_at, o.expired_at, o.failed_at, o.version, o.cancel_requested_at, o.venue_status, o.venue_cum_qty, o.lease_token, o.placement_sent_at, o.placement_last_sent_at, o.expires_at, o.parked_step, o.stop_price, o.trail_price, o.trail_percent, o.notional, (SELECT fencing_token FROM leases WHERE name = $2) AS current_fence
           FROM orders o WHERE venue_client_order_id = $1 FOR UPDATE OF o";

const FILLS_FOR_APPLY: &str = "SELECT exec_id, qty, price, order_id = $1 FROM fills
      WHERE order_id = $1 OR exec_id = $2";

const APPLY: &str = "WITH fill AS (
         INSERT INTO fills (exec_id, order_id, qty, price, transact_time, source, late)
         SELECT $13, $1, $14, $15, $16, $17, $22 WHERE $13::text IS NOT NULL
         ON CONFLICT (exec_id) DO NOTHING
         RETURNING exec_id),
         updated AS (
         UPDATE orders
            SET status = $2, step = $3, step_state = $4, attempts = $5,
                filled_qty = $6, filled_avg_price = $7,
                qty = CASE WHEN $23 THEN $6 ELSE qty END,
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

/// a59b06a's completer pick (its drivable rows: `store::readable`).
const CLAIM_DUE: &str = "WITH due AS (
            SELECT order_id, (lease_owner IS NOT NULL AND lease_owner <> $2) AS taken_over FROM orders
             WHERE step IN ('reserve', 'place', 'cancel', 'release')
               AND next_attempt_at <= now()
               AND (lease_token IS NULL OR lease_expires_at < now()
     OR lease_owner IN (SELECT instance_id FROM instances
                         WHERE stopped_at IS NOT NULL OR fenced_at IS NOT NULL
                            OR last_seen_at < now() - make_interval(secs => $4::float8 / 1000)))
               AND status IN ('pending_new', 'accepted', 'new', 'partially_filled', 'filled', 'pending_cancel', 'canceled', 'expired', 'rejected') AND step IN ('reserve', 'place', 'working', 'cancel', 'release', 'closed', 'parked') AND step_state IN ('pending', 'sent', 'unknown') AND side IN ('buy', 'sell') AND order_type IN ('market', 'limit', 'stop', 'stop_limit', 'trailing_stop') AND time_in_force IN ('day', 'gtc', 'ioc', 'fok', 'opg', 'cls') AND (venue_status IS NULL OR venue_status IN ('accepted', 'new', 'partially_filled', 'filled', 'pending_cancel', 'canceled', 'expired', 'rejected')) AND (parked_step IS NULL OR parked_step IN ('reserve', 'place', 'working', 'cancel', 'release', 'closed', 'parked')) AND recovery_version <= 2
             ORDER BY next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         UPDATE orders o SET lease_owner = $2,
                lease_expires_at = now() + make_interval(secs => $3::float8 / 1000),
                lease_token = $5,
                step_state = CASE WHEN step_state = 'sent' THEN 'unknown'
                                  WHEN step_state = 'pending' AND step IN ('release', 'cancel')
                                  THEN 'sent'
                                  ELSE step_state END,
                version = version + 1
           FROM due WHERE o.order_id = due.order_id
         RETURNING o.order_id, o.account_id, o.client_order_id, o.venue_client_order_id, o.request_fingerprint, o.symbol, o.side, o.order_type, o.time_in_force, o.qty, o.limit_price, o.status, o.step, o.step_state, o.recovery_version, o.attempts, o.next_attempt_at, o.lease_owner, o.lease_expires_at, o.hold_asset, o.hold_amount, o.hold_rate, o.hold_id, o.venue_order_id, o.filled_qty, o.filled_avg_price, o.reject_reason, o.created_at, o.updated_at, o.submitted_at, o.filled_at, o.canceled_at, o.expired_at, o.failed_at, o.version, o.cancel_requested_at, o.venue_status, o.venue_cum_qty, o.lease_token, o.placement_sent_at, o.placement_last_sent_at, o.expires_at, o.parked_step, o.stop_price, o.trail_price, o.trail_percent, o.notional, due.taken_over";

/// a59b06a's registration (one transaction) and heartbeat.
const SERIALIZE_NAME: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";

const FENCE_PREDECESSORS: &str =
    "UPDATE instances SET fenced_at = now(), stopped_at = COALESCE(stopped_at, now())
      WHERE name = $1 AND fenced_at IS NULL";

const REGISTER: &str = "INSERT INTO instances (instance_id, name, generation, hostname, pid, version)
     SELECT $1, $2, COALESCE((SELECT max(generation) FROM instances WHERE name = $2), 0) + 1, $3, $4, $5
     RETURNING generation";

const HEARTBEAT: &str = "UPDATE instances SET last_seen_at = now(), stopped_at = NULL
      WHERE instance_id = $1 AND fenced_at IS NULL
     RETURNING instance_id";

/// a59b06a's liveness lock class (`store::instances`), the registration's
/// advisory lock.
const LIVENESS_LOCK_CLASS: i32 = 0x6F72_6464;
/// a59b06a's recovery encoding and its default lease settings.
const RECOVERY_VERSION: i16 = 2;
const LEASE_MS: f64 = 5_000.0;
const DEAD_AFTER_MS: f64 = 15_000.0;

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

/// The previous version's instance, registered like a59b06a does (its
/// name's earlier instances fenced in the same transaction), and the
/// accounts its traders order for.
pub async fn register(pool: &PgPool) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
    let id = Uuid::now_v7();
    let name = "upgrade-drill";
    let mut tx = pool.begin().await?;
    sqlx::query(SERIALIZE_NAME)
        .bind(LIVENESS_LOCK_CLASS)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query(FENCE_PREDECESSORS)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query_scalar::<_, i64>(REGISTER)
        .bind(id)
        .bind(name)
        .bind("upgrade-drill")
        .bind(i32::try_from(std::process::id()).unwrap_or(i32::MAX))
        .bind("a59b06a")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    let accounts: Vec<Uuid> = sqlx::query_scalar(ACCOUNT_IDS).fetch_all(pool).await?;
    anyhow::ensure!(!accounts.is_empty(), "no accounts loaded");
    Ok((id, accounts))
}

/// Times `write`, recording its outcome whatever it was; its value if it
/// succeeded.
async fn timed<F, T>(log: &mut Vec<Write>, clock: Instant, op: &'static str, write: F) -> Option<T>
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
    outcome.ok()
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
        let beat = sqlx::query_scalar::<_, Uuid>(HEARTBEAT)
            .bind(instance)
            .fetch_optional(&pool);
        timed(&mut log, clock, "heartbeat (UPDATE instances)", beat).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    log
}

/// A lease token of a59b06a's completer (`store::recovery::claim_token`):
/// negative, never one of the accept's sequence.
fn claim_token() -> i64 {
    (rand::random::<u64>() | (1 << 63)) as i64
}

/// One writer: order after order, each accepted, reserved, placed and
/// filled with a59b06a's statements (and the completer's pick every fifth),
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
        let client_order_id = format!("drill-w{writer}-{n}");
        let account = accounts[(n as usize + writer) % accounts.len()];
        let (qty, price) = (Decimal::from(10), Decimal::from(100));
        // Accepted, its hold's intent recorded (reserve, sent).
        let accepted = serde_json::json!({
            "accepted": true, "client_order_id": client_order_id, "asset": "USD", "amount": qty * price,
        });
        let insert = sqlx::query(INSERT_ORDER)
            .bind(order_id)
            .bind(account)
            .bind(&client_order_id)
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
            .bind(accepted)
            .bind("pending_new")
            .bind("sent")
            .bind(chrono::Utc::now() + chrono::Duration::hours(6))
            .bind(None::<Decimal>)
            .bind(None::<Decimal>)
            .bind(None::<Decimal>)
            .bind(None::<Decimal>)
            .fetch_optional(&pool);
        let Some(Some(row)) = timed(
            &mut log,
            clock,
            "insert_order (INSERT … RETURNING named columns)",
            insert,
        )
        .await
        else {
            continue;
        };
        let Ok(lease_token) = row.try_get::<Option<i64>, _>("lease_token") else {
            continue;
        };
        // The hold's outcome with the placement's intent folded in, then
        // the placement's outcome.
        let hold_id = format!("hold-{order_id}");
        let steps = [
            (
                "pending_new",
                "place",
                "sent",
                Some(hold_id.clone()),
                None,
                vec!["reserve", "place"],
                vec!["succeeded", "requested"],
                vec![
                    serde_json::json!({"hold_id": hold_id}),
                    serde_json::json!({}),
                ],
            ),
            (
                "new",
                "working",
                "pending",
                None,
                Some(format!("v-{order_id}")),
                vec!["place"],
                vec!["succeeded"],
                vec![serde_json::json!({"venue_order_id": format!("v-{order_id}")})],
            ),
        ];
        let mut recorded = true;
        for (
            version,
            (status, step, step_state, hold_id, venue_order_id, steps, states, details),
        ) in (1i64..).zip(steps)
        {
            let change = sqlx::query(RECORD_CHANGE)
                .bind(order_id)
                .bind(version)
                .bind(status)
                .bind(step)
                .bind(step_state)
                .bind(0i32)
                .bind(hold_id)
                .bind(venue_order_id)
                .bind(None::<serde_json::Value>)
                .bind(0.0f64)
                .bind(Some(instance))
                .bind(LEASE_MS)
                .bind(instance)
                .bind(RECOVERY_VERSION)
                .bind(steps)
                .bind(states)
                .bind(details)
                .bind(lease_token)
                .bind(true)
                .bind(None::<String>)
                .fetch_optional(&pool);
            recorded = timed(
                &mut log,
                clock,
                "record_change (UPDATE … RETURNING named columns)",
                change,
            )
            .await
            .is_some();
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
            "apply_execution (SELECT o.<columns> … FOR UPDATE; INSERT fill)",
            fill,
        )
        .await;
        if n.is_multiple_of(5) {
            let pick = sqlx::query(CLAIM_DUE)
                .bind(10i64)
                .bind(instance)
                .bind(LEASE_MS)
                .bind(DEAD_AFTER_MS)
                .bind(claim_token())
                .fetch_all(&pool);
            timed(
                &mut log,
                clock,
                "claim_due (UPDATE … RETURNING o.<columns>)",
                pick,
            )
            .await;
        }
    }
    log
}

/// A whole fill at `price`, applied as a59b06a applies an execution: one
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
        .bind(Some(qty))
        .bind(Some(price))
        .bind(Some(chrono::Utc::now()))
        .bind("stream")
        .bind(instance)
        .bind(vec!["working", "release"])
        .bind(vec!["succeeded", "requested"])
        .bind(vec![
            serde_json::json!({"fill": {"exec_id": exec_id, "qty": qty, "price": price},
                               "source": "stream"}),
            serde_json::json!({}),
        ])
        .bind(false)
        .bind(false)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await
}

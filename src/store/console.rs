//! What the operator console reads and writes of its own: its sessions
//! (shared by every instance), the blotter's pages (keyset-paged on the
//! orders' existing indexes, never OFFSET), the orders a live update
//! names, and the instances' heartbeats. Everything else it shows comes
//! from the other store modules, the reconciler and the engine.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::types::{DRIVEN_STEPS, STUCK_STEPS, statement};
use crate::domain::ids::ClientOrderId;
use crate::domain::lifecycle::{Status, Step, StepState};
use crate::domain::order::{OrderType, Side};

// ---- sessions ----

const INSERT_SESSION: &str =
    "INSERT INTO console_sessions (session_hash, role, operator, csrf_token, expires_at)
     VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::float8 / 1000))";

const LOAD_SESSION: &str = "SELECT role, operator, csrf_token, expires_at FROM console_sessions
      WHERE session_hash = $1 AND expires_at > now()";

const DELETE_SESSION: &str = "DELETE FROM console_sessions WHERE session_hash = $1";

const DELETE_EXPIRED_SESSIONS: &str = "DELETE FROM console_sessions WHERE expires_at <= now()";

/// A console session as stored (its id is only in the cookie).
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub role: String,
    pub operator: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Records a session; expired ones are swept first (logins are rare).
pub async fn insert_session(
    pool: &PgPool,
    session_hash: &str,
    role: &str,
    operator: &str,
    csrf_token: &str,
    ttl_ms: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(DELETE_EXPIRED_SESSIONS).execute(pool).await?;
    sqlx::query(INSERT_SESSION)
        .bind(session_hash)
        .bind(role)
        .bind(operator)
        .bind(csrf_token)
        .bind(ttl_ms as f64)
        .execute(pool)
        .await?;
    Ok(())
}

/// The live session with this hash, if any.
pub async fn load_session(
    pool: &PgPool,
    session_hash: &str,
) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as(LOAD_SESSION)
        .bind(session_hash)
        .fetch_optional(pool)
        .await
}

pub async fn delete_session(pool: &PgPool, session_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query(DELETE_SESSION)
        .bind(session_hash)
        .execute(pool)
        .await?;
    Ok(())
}

// ---- the blotter ----

/// One blotter row: the order, its recovery point, and the last problem
/// recorded on its timeline (a failed or unknown event's reason).
#[derive(Debug, Clone, FromRow)]
pub struct BlotterRow {
    pub order_id: Uuid,
    pub account_id: Uuid,
    pub account: String,
    pub client_order_id: ClientOrderId,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: Decimal,
    pub filled_qty: Decimal,
    pub limit_price: Option<Decimal>,
    pub status: Status,
    pub step: Step,
    pub step_state: StepState,
    pub parked_step: Option<Step>,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub problem: Option<String>,
    pub problem_at: Option<DateTime<Utc>>,
}

/// Which index drives a page: the primary key (order ids are UUIDv7, so
/// they sort by creation), an account's `orders_account_created`, or the
/// partial `orders_not_closed` (every order that still needs work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    All,
    Account,
    NotClosed,
}

/// What the blotter asks for: each `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct BlotterQuery {
    pub account_id: Option<Uuid>,
    pub symbol: Option<String>,
    pub status: Option<Status>,
    pub step: Option<Step>,
    /// `any`, `stuck`, `parked` or `unknown`.
    pub attention: Option<&'static str>,
    pub stuck_after_ms: u64,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    /// The last row of the previous page: `(created_at, order_id)`.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

impl BlotterQuery {
    /// The index that answers this query best.
    pub fn driver(&self) -> Driver {
        if self.account_id.is_some() {
            Driver::Account
        } else if self.attention.is_some()
            || self.step.is_some_and(|s| s != Step::Closed)
            || self.status.is_some_and(|s| !s.is_terminal())
        {
            Driver::NotClosed
        } else {
            Driver::All
        }
    }
}

/// A page: the orders chosen and limited first (so the last problem is
/// read for the page's rows only, and the driving index gives the order),
/// then their account names and last problems.
const BLOTTER_TEMPLATE: &str =
    "SELECT o.order_id, o.account_id, a.name AS account, o.client_order_id, o.symbol, o.side,
            o.order_type, o.qty, o.filled_qty, o.limit_price, o.status, o.step, o.step_state,
            o.parked_step, o.attempts, o.next_attempt_at, o.cancel_requested_at, o.created_at,
            o.updated_at, lp.problem, lp.problem_at
       FROM (SELECT o.order_id, o.account_id, o.client_order_id, o.symbol, o.side, o.order_type,
                    o.qty, o.filled_qty, o.limit_price, o.status, o.step, o.step_state,
                    o.parked_step, o.attempts, o.next_attempt_at, o.cancel_requested_at,
                    o.created_at, o.updated_at
               FROM orders o
              WHERE {driver}
                AND ($1::text IS NULL OR o.symbol = $1)
                AND ($2::text IS NULL OR o.status = $2)
                AND ($3::text IS NULL OR o.step = $3)
                AND ($4::text IS NULL
                     OR ($4 IN ('any', 'parked') AND o.step = 'parked')
                     OR ($4 IN ('any', 'unknown') AND o.step_state = 'unknown' AND o.step <> 'parked')
                     OR ($4 IN ('any', 'stuck') AND o.step <> 'parked'
                         AND (o.step IN {driven} OR o.status IN ('pending_new', 'pending_cancel'))
                         AND o.updated_at < now() - make_interval(secs => $5::float8 / 1000)))
              ORDER BY {order} LIMIT $6) o
       JOIN accounts a ON a.account_id = o.account_id
       LEFT JOIN LATERAL (
            SELECT coalesce(e.detail->>'last_error', e.detail->>'reason', e.detail->>'detail',
                            e.detail->>'deferred', e.detail->>'lookup') AS problem,
                   e.created_at AS problem_at
              FROM order_events e
             WHERE e.order_id = o.order_id AND e.state IN ('failed', 'unknown')
             ORDER BY e.event_id DESC LIMIT 1) lp ON true
      ORDER BY {order}";

/// The page statement of `driver`, newest (`<`) or oldest (`>`) first.
/// `$7`/`$8` are the cursor, `$9` the account.
fn blotter(driver: Driver, newer_first: bool) -> &'static str {
    let (cmp, dir) = if newer_first {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let (keyset, order) = match driver {
        Driver::All => (format!("o.order_id {cmp} $8"), format!("o.order_id {dir}")),
        Driver::Account => (
            format!("o.account_id = $9 AND (o.created_at, o.order_id) {cmp} ($7, $8)"),
            format!("o.created_at {dir}, o.order_id {dir}"),
        ),
        Driver::NotClosed => (
            format!("o.step <> 'closed' AND o.order_id {cmp} $8"),
            format!("o.order_id {dir}"),
        ),
    };
    // `$7` appears in every statement so that all take the same binds.
    let keyset = format!("{keyset} AND $7::timestamptz IS NOT NULL AND $9::uuid IS NOT NULL");
    statement(
        BLOTTER_TEMPLATE
            .replace("{driver}", &keyset)
            .replace("{order}", &order)
            .replace("{driven}", &DRIVEN_STEPS),
    )
}

static BLOTTER_ALL_NEWEST: LazyLock<&'static str> = LazyLock::new(|| blotter(Driver::All, true));
static BLOTTER_ALL_OLDEST: LazyLock<&'static str> = LazyLock::new(|| blotter(Driver::All, false));
static BLOTTER_ACCOUNT_NEWEST: LazyLock<&'static str> =
    LazyLock::new(|| blotter(Driver::Account, true));
static BLOTTER_ACCOUNT_OLDEST: LazyLock<&'static str> =
    LazyLock::new(|| blotter(Driver::Account, false));
static BLOTTER_OPEN_NEWEST: LazyLock<&'static str> =
    LazyLock::new(|| blotter(Driver::NotClosed, true));
static BLOTTER_OPEN_OLDEST: LazyLock<&'static str> =
    LazyLock::new(|| blotter(Driver::NotClosed, false));

/// One page of the blotter. Rows this version cannot read are left out
/// and logged (a newer release's spelling must not blank the page).
pub async fn blotter_page(
    pool: &PgPool,
    query: &BlotterQuery,
) -> Result<Vec<BlotterRow>, sqlx::Error> {
    let sql = match (query.driver(), query.oldest_first) {
        (Driver::All, false) => *BLOTTER_ALL_NEWEST,
        (Driver::All, true) => *BLOTTER_ALL_OLDEST,
        (Driver::Account, false) => *BLOTTER_ACCOUNT_NEWEST,
        (Driver::Account, true) => *BLOTTER_ACCOUNT_OLDEST,
        (Driver::NotClosed, false) => *BLOTTER_OPEN_NEWEST,
        (Driver::NotClosed, true) => *BLOTTER_OPEN_OLDEST,
    };
    // The first page's cursor is past every row: one statement shape.
    let (at, id) = query.after.unwrap_or(if query.oldest_first {
        (DateTime::<Utc>::UNIX_EPOCH, Uuid::nil())
    } else {
        (far_future(), Uuid::max())
    });
    // Planned for its own values each time (an unnamed statement gets a
    // custom plan): a cached generic plan cannot tell which filters are
    // given, and at a million orders it sorted an account's 10,000 rows
    // where the custom plan reads 50 from the index.
    let rows = sqlx::query(sql)
        .persistent(false)
        .bind(query.symbol.as_deref())
        .bind(query.status)
        .bind(query.step)
        .bind(query.attention)
        .bind(query.stuck_after_ms as f64)
        .bind(query.limit)
        .bind(at)
        .bind(id)
        .bind(query.account_id.unwrap_or(Uuid::nil()))
        .fetch_all(pool)
        .await?;
    Ok(decode_rows("console_blotter", &rows))
}

static BLOTTER_ROWS_BY_ID: LazyLock<&'static str> = LazyLock::new(|| {
    statement(
        BLOTTER_TEMPLATE
            .replace(
                "{driver}",
                "o.order_id = ANY($7::uuid[]) AND $8::uuid IS NULL AND $9::uuid IS NULL",
            )
            .replace("{order}", "o.order_id")
            .replace("{driven}", &DRIVEN_STEPS),
    )
});

/// The blotter rows of `order_ids` (what a live update shows), with no
/// filter.
pub async fn blotter_rows(
    pool: &PgPool,
    order_ids: &[Uuid],
    stuck_after_ms: u64,
) -> Result<Vec<BlotterRow>, sqlx::Error> {
    let rows = sqlx::query(*BLOTTER_ROWS_BY_ID)
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(None::<String>)
        .bind(stuck_after_ms as f64)
        .bind(order_ids.len() as i64)
        .bind(order_ids)
        .bind(None::<Uuid>)
        .bind(None::<Uuid>)
        .fetch_all(pool)
        .await?;
    Ok(decode_rows("console_live", &rows))
}

/// Later than any row's `created_at`, within PostgreSQL's range.
fn far_future() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Decodes each row on its own; one that fails is logged and left out.
fn decode_rows<T: for<'r> FromRow<'r, PgRow>>(query: &'static str, rows: &[PgRow]) -> Vec<T> {
    rows.iter()
        .filter_map(|row| match T::from_row(row) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(%error, query, "a row this version cannot read; left out");
                None
            }
        })
        .collect()
}

/// How many orders need an operator's eyes, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct AttentionCounts {
    pub parked: i64,
    pub unknown: i64,
    pub stuck: i64,
}

static ATTENTION_COUNTS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT count(*) FILTER (WHERE step = 'parked') AS parked,
                count(*) FILTER (WHERE step_state = 'unknown' AND step <> 'parked') AS unknown,
                count(*) FILTER (WHERE step <> 'parked' AND (step IN {driven} OR status IN ('pending_new', 'pending_cancel'))
                                   AND updated_at < now() - make_interval(secs => $1::float8 / 1000)) AS stuck
           FROM orders
          WHERE step IN {stuck}
             OR (status IN ('pending_new', 'pending_cancel') AND step <> 'closed')",
        driven = *DRIVEN_STEPS,
        stuck = *STUCK_STEPS,
    ))
});

/// Counts of parked, unknown-outcome and stuck orders: read from the
/// orders mid-step or parked (`orders_not_closed`) and those waiting for
/// the venue (`orders_open_status`), never from every open order (a
/// million resting orders would cost a second a load).
pub async fn attention_counts(
    pool: &PgPool,
    stuck_after_ms: u64,
) -> Result<AttentionCounts, sqlx::Error> {
    sqlx::query_as(*ATTENTION_COUNTS)
        .bind(stuck_after_ms as f64)
        .fetch_one(pool)
        .await
}

// ---- health ----

/// An instance as the health page shows it.
#[derive(Debug, Clone, FromRow)]
pub struct InstanceRow {
    pub instance_id: Uuid,
    pub name: String,
    pub generation: i64,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub fenced_at: Option<DateTime<Utc>>,
    pub heartbeat_age_ms: f64,
}

const INSTANCES: &str =
    "SELECT instance_id, name, generation, started_at, last_seen_at, stopped_at,
            fenced_at, extract(epoch FROM now() - last_seen_at)::float8 * 1000 AS heartbeat_age_ms
       FROM instances
      WHERE stopped_at IS NULL OR stopped_at > now() - interval '1 hour'
      ORDER BY stopped_at IS NOT NULL, name, generation DESC LIMIT $1";

/// Instances running, and those stopped within the hour.
pub async fn instances(pool: &PgPool, limit: i64) -> Result<Vec<InstanceRow>, sqlx::Error> {
    sqlx::query_as(INSTANCES).bind(limit).fetch_all(pool).await
}

/// The venue stream's lease: holder, fencing token, expiry, and the
/// progress its holder last wrote (migration 0012).
#[derive(Debug, Clone, FromRow)]
pub struct LeaseRow {
    pub owner: Uuid,
    pub fencing_token: i64,
    pub expires_at: DateTime<Utc>,
    /// The token the progress was written under (not the current one: a
    /// former holder's, or none written yet).
    pub progress_token: Option<i64>,
    /// How long ago it was written (the database's clock).
    pub progress_age_ms: Option<f64>,
    /// When written: how long since the holder last received a report.
    pub last_report_age_ms: Option<f64>,
    /// The venue's timestamp to the apply's commit, of the last report
    /// the holder applied.
    pub report_lag_ms: Option<f64>,
}

impl LeaseRow {
    /// The holder's progress, if the current holder wrote it: (seconds
    /// since it last received a report, as of now; its last lag in
    /// seconds, if it applied one).
    pub fn progress(&self) -> Option<(Option<f64>, Option<f64>)> {
        if self.progress_token != Some(self.fencing_token) {
            return None;
        }
        let since_written = self.progress_age_ms.unwrap_or(0.0).max(0.0);
        Some((
            self.last_report_age_ms
                .map(|age| (age + since_written) / 1000.0),
            self.report_lag_ms.map(|lag| lag / 1000.0),
        ))
    }
}

const LEASE: &str = "SELECT owner, fencing_token, expires_at, progress_token,
            extract(epoch FROM now() - progress_at)::float8 * 1000 AS progress_age_ms,
            last_report_age_ms, report_lag_ms
       FROM leases WHERE name = $1";

pub async fn lease(pool: &PgPool, name: &str) -> Result<Option<LeaseRow>, sqlx::Error> {
    sqlx::query_as(LEASE).bind(name).fetch_optional(pool).await
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("INSERT_SESSION", INSERT_SESSION),
        ("LOAD_SESSION", LOAD_SESSION),
        ("DELETE_SESSION", DELETE_SESSION),
        ("DELETE_EXPIRED_SESSIONS", DELETE_EXPIRED_SESSIONS),
        ("BLOTTER_ALL_NEWEST", *BLOTTER_ALL_NEWEST),
        ("BLOTTER_ALL_OLDEST", *BLOTTER_ALL_OLDEST),
        ("BLOTTER_ACCOUNT_NEWEST", *BLOTTER_ACCOUNT_NEWEST),
        ("BLOTTER_ACCOUNT_OLDEST", *BLOTTER_ACCOUNT_OLDEST),
        ("BLOTTER_OPEN_NEWEST", *BLOTTER_OPEN_NEWEST),
        ("BLOTTER_OPEN_OLDEST", *BLOTTER_OPEN_OLDEST),
        ("BLOTTER_ROWS_BY_ID", *BLOTTER_ROWS_BY_ID),
        ("ATTENTION_COUNTS", *ATTENTION_COUNTS),
        ("INSTANCES", INSTANCES),
        ("LEASE", LEASE),
    ]
}

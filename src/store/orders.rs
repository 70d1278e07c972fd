//! Order rows: the typed record, the insert that accepts an order, and the
//! reads. Writes of the recovery point (leases, recorded steps, cancels)
//! are in `recovery.rs`.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use super::readable::{KNOWN_ORDER, ORDER_COLUMNS, decode_each};
use super::types::{AT_VENUE_STEPS, LATE_FILL_STATUSES, TERMINAL_STATUSES, statement};
use crate::domain::ids::{ClientOrderId, HoldId, VenueClientOrderId, VenueOrderId};
use crate::domain::lifecycle::{
    ActionState, Lifecycle, RejectReason, Status, Step, StepState, VenueStatus,
};
use crate::domain::order::{OrderType, PriceTerms, Side, TimeInForce};
use crate::domain::session::SessionRules;

/// The recovery-step encoding this binary writes. A newer binary that
/// changes what a step means bumps it and keeps reading older rows.
/// Version 2 added the `sent` step state (an intent recorded by the
/// current claim); version 1 rows never hold it and read unchanged.
pub const RECOVERY_VERSION: i16 = 2;

/// An order row, decoded once: every lifecycle value is its domain type
/// (a value this binary does not know fails the read, naming it).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderRecord {
    pub order_id: Uuid,
    pub account_id: Uuid,
    pub client_order_id: ClientOrderId,
    pub venue_client_order_id: VenueClientOrderId,
    pub request_fingerprint: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub qty: Decimal,
    pub limit_price: Option<Decimal>,
    pub status: Status,
    pub step: Step,
    pub step_state: StepState,
    pub recovery_version: i16,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_owner: Option<Uuid>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub hold_asset: Option<String>,
    pub hold_amount: Option<Decimal>,
    pub hold_rate: Option<Decimal>,
    pub hold_id: Option<HoldId>,
    pub venue_order_id: Option<VenueOrderId>,
    pub filled_qty: Decimal,
    pub filled_avg_price: Option<Decimal>,
    pub reject_reason: Option<Json<RejectReason>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub filled_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub expired_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub venue_status: Option<VenueStatus>,
    pub venue_cum_qty: Decimal,
    /// The claim that drives the order now (a fresh token per claim);
    /// every write a driver makes checks it.
    pub lease_token: Option<i64>,
    /// When the intent to place the order was first recorded.
    pub placement_sent_at: Option<DateTime<Utc>>,
    /// When it was last recorded: the placement's `timestamp` at the venue.
    pub placement_last_sent_at: Option<DateTime<Utc>>,
    /// When the order expires; `None` for orders entered before it was
    /// stored (see `expires_at()`).
    #[sqlx(rename = "expires_at")]
    pub stored_expires_at: Option<DateTime<Utc>>,
    pub parked_step: Option<Step>,
    /// A stop or stop_limit order's stop price.
    pub stop_price: Option<Decimal>,
    /// A trailing stop's trail: a price distance, or a percentage.
    pub trail_price: Option<Decimal>,
    pub trail_percent: Option<Decimal>,
    /// A notional order's cash amount (migration 0013). Its `qty` is 0
    /// until the venue reports it filled, then the filled quantity.
    pub notional: Option<Decimal>,
    /// On a replacement: the order it replaces (migration 0015).
    pub replaces: Option<Uuid>,
    /// On an order being (or once) replaced: its replacement.
    pub replaced_by: Option<Uuid>,
    /// What the replaced chain had filled, carried into this replacement
    /// (the venue's word once `qty_confirmed`); `qty` is this order's own.
    pub carried_qty: Decimal,
    /// `false` while a replacement's `qty` is orderd's estimate (an upper
    /// bound): the venue decides what is carried.
    pub qty_confirmed: bool,
    /// What this replacement added to the hold it shares with the order
    /// it replaces, recorded before the keyed increase (0: nothing).
    pub hold_raise: Option<Decimal>,
    pub replaced_at: Option<DateTime<Utc>>,
}

/// A row whose values break a rule the code relies on (a negative attempt
/// count): found, named, never defaulted.
#[derive(Debug, thiserror::Error)]
#[error("order {order_id}: unreadable {column} {value:?}")]
pub struct CorruptRow {
    pub order_id: Uuid,
    pub column: &'static str,
    pub value: String,
}

impl OrderRecord {
    /// The order's quantity: `None` while a notional order's is not known
    /// (the venue decides it; orderd records it when the venue reports
    /// the order filled).
    pub fn known_qty(&self) -> Option<Decimal> {
        (self.notional.is_none() || self.qty > Decimal::ZERO).then_some(self.qty)
    }

    /// What the order's fills may add up to: its quantity, or for a
    /// notional order not filled yet, any quantity a report may carry.
    pub fn qty_bound(&self) -> Decimal {
        self.known_qty()
            .unwrap_or(crate::domain::fills::REPORT_QTY_MAX)
    }

    /// When the order expires. Orders entered before it was stored (there
    /// was no `[market]` setting then) follow New York's default day.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.stored_expires_at.unwrap_or_else(|| {
            SessionRules::NEW_YORK.expires_at(self.time_in_force, self.created_at)
        })
    }

    /// The domain view the transition table works on.
    pub fn lifecycle(&self) -> Result<Lifecycle, CorruptRow> {
        let attempts = u32::try_from(self.attempts).map_err(|_| CorruptRow {
            order_id: self.order_id,
            column: "attempts",
            value: self.attempts.to_string(),
        })?;
        Ok(Lifecycle {
            status: self.status,
            step: self.step,
            step_state: self.step_state,
            attempts,
            hold_id: self.hold_id.clone(),
            venue_order_id: self.venue_order_id.clone(),
            reject_reason: self.reject_reason(),
            cancel_requested: self.cancel_requested_at.is_some(),
            placement_sent: self.placement_sent_at.is_some(),
            parked_step: self.parked_step,
            replace_pending: self.replaced_by.is_some(),
        })
    }

    /// The order's prices: what its hold is sized from, what the venue
    /// is sent.
    pub fn terms(&self) -> PriceTerms {
        PriceTerms {
            limit: self.limit_price,
            stop: self.stop_price,
            trail_price: self.trail_price,
            trail_percent: self.trail_percent,
        }
    }

    pub fn reject_reason(&self) -> Option<RejectReason> {
        self.reject_reason.as_ref().map(|r| r.0.clone())
    }
}

/// Everything needed to insert a just-accepted order.
#[derive(Debug, Clone)]
pub struct NewOrderRow {
    pub order_id: Uuid,
    pub account_id: Uuid,
    pub client_order_id: ClientOrderId,
    pub venue_client_order_id: VenueClientOrderId,
    pub request_fingerprint: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    /// 0 for a notional order (its quantity is the venue's to decide).
    pub qty: Decimal,
    pub notional: Option<Decimal>,
    pub terms: PriceTerms,
    pub hold_asset: String,
    /// `None` for a market buy until a quote is known.
    pub hold_amount: Option<Decimal>,
    pub hold_rate: Option<Decimal>,
    /// When the order expires (`SessionRules::expires_at`).
    pub expires_at: DateTime<Utc>,
    /// A replacement (PATCH /v2/orders/{id}): what it replaces.
    pub replacing: Option<Replacing>,
}

/// What a replacement replaces, and what orderd estimates is carried into
/// it (the chain's fills it knows of): its `qty` is the total less that,
/// unconfirmed until the venue says.
#[derive(Debug, Clone, Copy)]
pub struct Replacing {
    pub original: Uuid,
    pub carried_qty: Decimal,
}

static INSERT_ORDER: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "WITH inserted AS (
     INSERT INTO orders (order_id, account_id, client_order_id, venue_client_order_id,
                         request_fingerprint, symbol, side, order_type, time_in_force, qty,
                         limit_price, status, step, step_state, recovery_version,
                         hold_asset, hold_amount, hold_rate, lease_owner, lease_expires_at,
                         lease_token, expires_at, stop_price, trail_price, trail_percent,
                         notional, replaces, carried_qty, qty_confirmed)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $21, $18, $22,
             $12, $13, $14, $15, $16, now() + make_interval(secs => $17::float8 / 1000),
             nextval('lease_tokens'), $23, $24, $25, $26, $27,
             $28, COALESCE($29, 0), $28::uuid IS NULL)
     ON CONFLICT (account_id, client_order_id) DO NOTHING
     RETURNING {columns}),
     events AS (
     INSERT INTO order_events (order_id, step, state, detail, instance_id)
     SELECT inserted.order_id, $18, $19, $20, $16 FROM inserted)
     SELECT * FROM inserted",
        columns = *ORDER_COLUMNS,
    ))
});

/// Inserts the order and its `reserve requested` event, and takes the
/// lease for `instance_id` with a fresh token, in one statement (in the
/// caller's transaction or on its own). The hold's intent is in it: the
/// order starts `reserve`/`sent`, for the driver that accepted it. Returns the row, or `None` when the account already has
/// an order with this client_order_id (nothing written). `request_id`,
/// the request that submitted it, is recorded in the event's detail.
pub async fn insert_order<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    row: &NewOrderRow,
    instance_id: Uuid,
    lease_ms: u64,
    request_id: Option<&str>,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    let accepted = Lifecycle::accepted_and_reserving();
    let mut detail = serde_json::json!({
        "accepted": true,
        "client_order_id": row.client_order_id,
        "asset": row.hold_asset,
        "amount": row.hold_amount,
    });
    if let Some(replacing) = &row.replacing {
        detail["replaces"] = serde_json::json!(replacing.original);
    }
    super::events::tag_request(&mut detail, request_id);
    sqlx::query_as(*INSERT_ORDER)
        .bind(row.order_id)
        .bind(row.account_id)
        .bind(&row.client_order_id)
        .bind(&row.venue_client_order_id)
        .bind(&row.request_fingerprint)
        .bind(&row.symbol)
        .bind(row.side)
        .bind(row.order_type)
        .bind(row.time_in_force)
        .bind(row.qty)
        .bind(row.terms.limit)
        .bind(RECOVERY_VERSION)
        .bind(&row.hold_asset)
        .bind(row.hold_amount)
        .bind(row.hold_rate)
        .bind(instance_id)
        .bind(lease_ms as f64)
        .bind(accepted.step)
        .bind(ActionState::Requested)
        .bind(detail)
        .bind(accepted.status)
        .bind(accepted.step_state)
        .bind(row.expires_at)
        .bind(row.terms.stop)
        .bind(row.terms.trail_price)
        .bind(row.terms.trail_percent)
        .bind(row.notional)
        .bind(row.replacing.map(|r| r.original))
        .bind(row.replacing.map(|r| r.carried_qty))
        .fetch_optional(executor)
        .await
}

/// Marks `original` as being replaced by `replacement` (`pending_replace`,
/// `replaced_by`), with an event, if it can still be replaced: it works at
/// the venue, no cancel and no other replace is pending. In the
/// replacement's accept transaction: both or neither. `false` when it
/// cannot (the caller rolls back).
const MARK_REPLACING: &str = "WITH marked AS (
     UPDATE orders
        SET replaced_by = $2, status = 'pending_replace', updated_at = now(),
            version = version + 1
      WHERE order_id = $1 AND account_id = $3 AND replaced_by IS NULL
        AND cancel_requested_at IS NULL AND status IN ('new', 'partially_filled')
        AND step = 'working'
     RETURNING order_id),
     events AS (
     INSERT INTO order_events (order_id, step, state, detail, instance_id)
     SELECT order_id, 'working', 'requested', jsonb_build_object('replaced_by', $2::uuid), $4
       FROM marked)
     SELECT count(*) FROM marked";

pub async fn mark_replacing(
    executor: impl sqlx::PgExecutor<'_>,
    original: Uuid,
    replacement: Uuid,
    account_id: Uuid,
    instance_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let marked: i64 = sqlx::query_scalar(MARK_REPLACING)
        .bind(original)
        .bind(replacement)
        .bind(account_id)
        .bind(instance_id)
        .fetch_one(executor)
        .await?;
    Ok(marked == 1)
}

static LOAD: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT {columns} FROM orders WHERE order_id = $1",
        columns = *ORDER_COLUMNS,
    ))
});

pub async fn load(pool: &PgPool, order_id: Uuid) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as(*LOAD)
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

static LOAD_FOR_ACCOUNT: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT {columns} FROM orders WHERE order_id = $1 AND account_id = $2",
        columns = *ORDER_COLUMNS,
    ))
});

pub async fn load_for_account(
    pool: &PgPool,
    account_id: Uuid,
    order_id: Uuid,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as(*LOAD_FOR_ACCOUNT)
        .bind(order_id)
        .bind(account_id)
        .fetch_optional(pool)
        .await
}

static LOAD_BY_CLIENT_ORDER_ID: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT {columns} FROM orders WHERE account_id = $1 AND client_order_id = $2",
        columns = *ORDER_COLUMNS,
    ))
});

pub async fn load_by_client_order_id(
    pool: &PgPool,
    account_id: Uuid,
    client_order_id: &ClientOrderId,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as(*LOAD_BY_CLIENT_ORDER_ID)
        .bind(account_id)
        .bind(client_order_id)
        .fetch_optional(pool)
        .await
}

static LOAD_BY_VENUE_CLIENT_ORDER_ID: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT {columns} FROM orders WHERE venue_client_order_id = $1",
        columns = *ORDER_COLUMNS,
    ))
});

/// The order orderd placed under `venue_client_order_id`, if any.
pub async fn load_by_venue_client_order_id(
    pool: &PgPool,
    venue_client_order_id: &VenueClientOrderId,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    sqlx::query_as(*LOAD_BY_VENUE_CLIENT_ORDER_ID)
        .bind(venue_client_order_id)
        .fetch_optional(pool)
        .await
}

/// Filters of `GET /v2/orders`.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub account_id: Uuid,
    /// `None`: all statuses.
    pub statuses: Option<Vec<Status>>,
    pub symbols: Option<Vec<String>>,
    pub after: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub ascending: bool,
    pub limit: i64,
}

const LIST_TEMPLATE: &str = "SELECT COLUMNS FROM orders
      WHERE account_id = $1
        AND ($2::text[] IS NULL OR status = ANY($2))
        AND ($3::text[] IS NULL OR symbol = ANY($3))
        AND ($4::timestamptz IS NULL OR created_at > $4)
        AND ($5::timestamptz IS NULL OR created_at < $5)
      ORDER BY created_at DIRECTION, order_id DIRECTION
      LIMIT $6";

static LIST_ASC: LazyLock<&'static str> = LazyLock::new(|| statement(list_statement("ASC")));
static LIST_DESC: LazyLock<&'static str> = LazyLock::new(|| statement(list_statement("DESC")));

fn list_statement(direction: &str) -> String {
    LIST_TEMPLATE
        .replace("COLUMNS", &ORDER_COLUMNS)
        .replace("DIRECTION", direction)
}

/// The account's orders as `filter` says. A row this version cannot read
/// (a newer one wrote it, `store::readable`) is left out, logged and
/// counted; the page is the others.
pub async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<OrderRecord>, sqlx::Error> {
    let sql = if filter.ascending {
        *LIST_ASC
    } else {
        *LIST_DESC
    };
    let rows = sqlx::query(sql)
        .bind(filter.account_id)
        .bind(filter.statuses.as_deref())
        .bind(filter.symbols.as_deref())
        .bind(filter.after)
        .bind(filter.until)
        .bind(filter.limit)
        .fetch_all(pool)
        .await?;
    Ok(decode_each("orders_list", rows))
}

/// How long after a cancel or expiry an order is still caught up after a
/// stream gap: venues report fills that raced the cancel after it.
pub const LATE_FILL_WINDOW_SECS: f64 = 30.0;

static AT_VENUE: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT {columns} FROM orders
          WHERE venue_order_id IS NOT NULL AND order_id > $2
            AND (step IN {steps}
                 OR (status IN {late} AND updated_at > now() - make_interval(secs => $1)))
            AND {known}
          ORDER BY order_id LIMIT $3",
        steps = *AT_VENUE_STEPS,
        late = *LATE_FILL_STATUSES,
        known = *KNOWN_ORDER,
        columns = *ORDER_COLUMNS,
    ))
});

/// A page of a keyset scan: the rows this version could read, and where
/// the next page starts (the last row read, readable or not; `None` once
/// the scan is done).
#[derive(Debug, Clone)]
pub struct Page<T, K> {
    pub rows: Vec<T>,
    pub next: Option<K>,
}

/// Orders the venue may still report on: placed and not terminal, or
/// canceled/expired within [`LATE_FILL_WINDOW_SECS`]. What a stream gap or
/// reconnect must catch up. A page of them, in id order past `after`;
/// only rows this version can read (`store::readable`: a newer instance
/// catches up the rest).
pub async fn at_venue(
    pool: &PgPool,
    after: Uuid,
    limit: i64,
) -> Result<Page<OrderRecord, Uuid>, sqlx::Error> {
    let rows = sqlx::query(*AT_VENUE)
        .bind(LATE_FILL_WINDOW_SECS)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let next = match rows.last() {
        Some(last) => Some(sqlx::Row::try_get(last, "order_id")?),
        None => None,
    };
    Ok(Page {
        rows: decode_each("at_venue", rows),
        next,
    })
}

static OPEN_ORDERS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT created_at, order_id FROM orders WHERE account_id = $1 AND status NOT IN {terminal}
            AND (created_at, order_id) > ($2, $3)
          ORDER BY created_at, order_id LIMIT $4",
        terminal = *TERMINAL_STATUSES,
    ))
});

/// A page of the account's orders that are not terminal, oldest first,
/// past `after` (created_at, order_id): their keys only, so an order this
/// version cannot read is still listed (its cancel then fails on its own,
/// and says so, instead of the whole cancel-all).
pub async fn open_orders(
    pool: &PgPool,
    account_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<(DateTime<Utc>, Uuid)>, sqlx::Error> {
    let (at, id) = after.unwrap_or((DateTime::<Utc>::UNIX_EPOCH, Uuid::nil()));
    sqlx::query_as(*OPEN_ORDERS)
        .bind(account_id)
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("INSERT_ORDER", *INSERT_ORDER),
        ("MARK_REPLACING", MARK_REPLACING),
        ("LOAD", *LOAD),
        ("LOAD_FOR_ACCOUNT", *LOAD_FOR_ACCOUNT),
        ("LOAD_BY_CLIENT_ORDER_ID", *LOAD_BY_CLIENT_ORDER_ID),
        (
            "LOAD_BY_VENUE_CLIENT_ORDER_ID",
            *LOAD_BY_VENUE_CLIENT_ORDER_ID,
        ),
        ("LIST_ASC", *LIST_ASC),
        ("LIST_DESC", *LIST_DESC),
        ("AT_VENUE", *AT_VENUE),
        ("OPEN_ORDERS", *OPEN_ORDERS),
    ]
}

//! Executions: the one function that applies venue news, whatever path it
//! came by (stream, REST catch-up, reconciliation), and the fills it
//! records.
//!
//! [`apply_execution`] runs in one transaction: lock the order, insert the
//! fill (the primary key on exec_id makes a repeat a no-op), re-fold all of
//! the order's fills into its projection, apply the venue's status through
//! the domain's `on_venue_news`, append events; the trade update follows
//! the commit.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::events::EventColumns;
use super::orders::{CorruptRow, OrderRecord};
use super::trade_updates::{FillNote, TradeUpdates, trade_event, trade_update_payload};
use super::types::{statement, terminal_timestamps};
pub use crate::domain::fills::FillSource;
use crate::domain::fills::{self, Fill, FoldError, SettlementState};
use crate::domain::ids::{ExecId, VenueClientOrderId, VenueOrderId};
use crate::domain::lifecycle::{
    ActionState, EventRecord, Step, VenueNews, VenueStatus, on_venue_news,
};

/// The lease one instance holds to listen to the venue stream.
pub const VENUE_STREAM_LEASE: &str = "venue_stream";

/// One piece of venue news about an order: an execution (a fill when
/// `fill` is set) or a status observation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Execution {
    pub venue_client_order_id: VenueClientOrderId,
    pub venue_order_id: VenueOrderId,
    pub fill: Option<ExecutionFill>,
    /// The order's status at the venue after this execution.
    pub venue_status: VenueStatus,
    pub cum_qty: Decimal,
    pub source: FillSource,
    /// Set by the venue-stream holder: applied only while its lease token
    /// is still the current one (a replaced holder's reports are refused).
    pub fencing_token: Option<i64>,
    /// The session closed with the order still working (a GTC order): it
    /// carries on next session. Traders get `done_for_day`.
    pub done_for_day: bool,
    /// The order's own quantity as the venue states it (`None` when the
    /// report does not say): how a replacement learns what the venue
    /// carried into it.
    pub order_qty: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExecutionFill {
    pub exec_id: ExecId,
    pub qty: Decimal,
    pub price: Decimal,
    pub transact_time: DateTime<Utc>,
}

impl ExecutionFill {
    fn note(&self) -> FillNote {
        FillNote {
            exec_id: self.exec_id.clone(),
            qty: self.qty,
            price: self.price,
            transact_time: self.transact_time,
        }
    }
}

/// What applying did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// No order of ours has this client_order_id (an orphan, or another
    /// system's): reconciliation's business.
    UnknownOrder,
    /// Refused: the stream lease moved to another instance.
    Fenced,
    Applied {
        order_id: Uuid,
        /// A fill was recorded now (not a repeat).
        new_fill: bool,
        /// The venue counts fills orderd does not have: catch up.
        missing_fills: bool,
        /// The order became terminal; its hold is due for release.
        release_now: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// More shares filled than ordered, or numbers out of range: never
    /// absorbed; the report is quarantined.
    #[error("order {order_id}: {source}")]
    Overfill { order_id: Uuid, source: FoldError },
    #[error(transparent)]
    Corrupt(#[from] CorruptRow),
    /// The exec id is already recorded for another order: a venue that
    /// reused an exec id, or two orders racing for one. The unique key
    /// keeps the first; this report is refused.
    #[error("order {order_id}: exec_id {exec_id} is recorded for another order")]
    ExecIdTaken { order_id: Uuid, exec_id: ExecId },
}

/// Applies one execution. See the module docs.
pub async fn apply_execution(
    pool: &PgPool,
    updates: &TradeUpdates,
    instance_id: Uuid,
    execution: &Execution,
) -> Result<Applied, ApplyError> {
    let mut tx = pool.begin().await?;
    match apply_in(&mut tx, instance_id, execution).await {
        Ok((applied, update)) => {
            tx.commit().await?;
            if let Some(update) = update {
                updates.publish(update);
            }
            Ok(applied)
        }
        Err(error) => {
            tx.rollback().await?;
            Err(error)
        }
    }
}

/// Applies `executions` (reports of different orders, or several of one
/// order in arrival order) in one transaction: one commit for the lot. If
/// any fails, the transaction is rolled back and each is applied on its
/// own, so one bad report costs the others nothing. One result per
/// execution, in order.
pub async fn apply_executions(
    pool: &PgPool,
    updates: &TradeUpdates,
    instance_id: Uuid,
    executions: &[Execution],
) -> Vec<Result<Applied, ApplyError>> {
    if executions.len() > 1 {
        match apply_batch(pool, updates, instance_id, executions).await {
            Ok(applied) => return applied.into_iter().map(Ok).collect(),
            Err(error) => {
                tracing::warn!(%error, count = executions.len(),
                    "applying a batch of reports failed; applying them one by one");
            }
        }
    }
    let mut results = Vec::with_capacity(executions.len());
    for execution in executions {
        results.push(apply_execution(pool, updates, instance_id, execution).await);
    }
    results
}

async fn apply_batch(
    pool: &PgPool,
    updates: &TradeUpdates,
    instance_id: Uuid,
    executions: &[Execution],
) -> Result<Vec<Applied>, ApplyError> {
    // Orders are locked in order_id order (venue_client_order_id is
    // `od-` and the order id's hex, so it sorts the same), like every
    // other statement that locks several orders: no deadlocks. The sort is
    // stable, so one order's reports keep their arrival order.
    let mut sequence: Vec<usize> = (0..executions.len()).collect();
    sequence.sort_by(|&a, &b| {
        executions[a]
            .venue_client_order_id
            .cmp(&executions[b].venue_client_order_id)
    });
    let mut tx = pool.begin().await?;
    let mut applied = vec![Applied::UnknownOrder; executions.len()];
    let mut announced = Vec::new();
    for i in sequence {
        match apply_in(&mut tx, instance_id, &executions[i]).await {
            Ok((one, update)) => {
                applied[i] = one;
                announced.extend(update);
            }
            Err(error) => {
                tx.rollback().await?;
                return Err(error);
            }
        }
    }
    tx.commit().await?;
    for update in announced {
        updates.publish(update);
    }
    Ok(applied)
}

static LOCK_ORDER: std::sync::LazyLock<&'static str> = std::sync::LazyLock::new(|| {
    statement(format!(
        "SELECT {columns}, (SELECT fencing_token FROM leases WHERE name = $2) AS current_fence
           FROM orders o WHERE venue_client_order_id = $1 FOR UPDATE OF o",
        columns = *super::readable::ORDER_COLUMNS_O,
    ))
});

const FILLS_FOR_APPLY: &str = "SELECT exec_id, qty, price, order_id = $1 FROM fills
      WHERE order_id = $1 OR exec_id = $2";

static APPLY: std::sync::LazyLock<&'static str> = std::sync::LazyLock::new(|| {
    statement(format!(
        "WITH fill AS (
         INSERT INTO fills (exec_id, order_id, qty, price, transact_time, source, late)
         SELECT $13, $1, $14, $15, $16, $17, $22 WHERE $13::text IS NOT NULL
         ON CONFLICT (exec_id) DO NOTHING
         RETURNING exec_id),
         updated AS (
         UPDATE orders
            SET status = $2, step = $3, step_state = $4, attempts = $5,
                filled_qty = $6, filled_avg_price = $7,
                qty = CASE WHEN $23 THEN $6 WHEN $24::numeric IS NOT NULL THEN $24 ELSE qty END,
                carried_qty = CASE WHEN $24::numeric IS NOT NULL THEN carried_qty + qty - $24
                                   ELSE carried_qty END,
                qty_confirmed = qty_confirmed OR $24::numeric IS NOT NULL,
                venue_status = $8, venue_cum_qty = $9,
                venue_order_id = COALESCE(venue_order_id, $10),
                reject_reason = COALESCE(reject_reason, $11),
                submitted_at = COALESCE(submitted_at, now()),
                {terminal_timestamps},
                next_attempt_at = CASE WHEN $12 THEN now() ELSE next_attempt_at END,
                updated_at = now(), version = version + 1
          WHERE order_id = $1),
         events AS (
         INSERT INTO order_events (order_id, step, state, detail, instance_id)
         SELECT $1, s.step, s.state, s.detail, $18
           FROM unnest($19::text[], $20::text[], $21::jsonb[]) AS s(step, state, detail))
         SELECT count(*) FROM fill",
        terminal_timestamps = terminal_timestamps("$2"),
    ))
});

/// The body of [`apply_execution`], in the caller's transaction; writes
/// nothing unless it returns `Applied::Applied`. Also returns the trade
/// update to publish once the transaction commits.
#[tracing::instrument(name = "execution", skip_all, fields(
    venue_client_order_id = %execution.venue_client_order_id,
    exec_id = execution.fill.as_ref().map(|f| f.exec_id.as_str()),
    source = execution.source.as_str(),
    order_id = tracing::field::Empty,
))]
async fn apply_in(
    tx: &mut Transaction<'_, Postgres>,
    instance_id: Uuid,
    execution: &Execution,
) -> Result<(Applied, Option<String>), ApplyError> {
    // Three round trips: lock the order (and read the fencing token); read
    // its fills; write everything in one statement. The fills are read in
    // a statement of their own, after the lock: a statement that waited for
    // the lock still sees its old snapshot, which could miss a fill the
    // lock holder just committed.
    let locked: Option<LockedOrder> = sqlx::query_as(*LOCK_ORDER)
        .bind(&execution.venue_client_order_id)
        .bind(VENUE_STREAM_LEASE)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(LockedOrder {
        order,
        current_fence,
    }) = locked
    else {
        return Ok((Applied::UnknownOrder, None));
    };
    if let Some(token) = execution.fencing_token
        && current_fence != Some(token)
    {
        return Ok((Applied::Fenced, None));
    }
    let order_id = order.order_id;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));

    let fill = execution.fill.as_ref().filter(|f| f.qty > Decimal::ZERO);
    let mut events = Vec::new();
    // A replacement's own quantity is the venue's word (what it carried in
    // is the rest of the total): confirmed by the first report that states
    // it. It is at most orderd's estimate, which counted only the fills
    // orderd knew of when it accepted the replace.
    let confirmed_qty = confirmed_replacement_qty(&order, execution.order_qty);
    let qty_bound = confirmed_qty.unwrap_or_else(|| order.qty_bound());
    // The projection is always the fold of every recorded fill. Only a
    // fill changes the fold, and every fill is written here together with
    // the fold, so a report without one keeps the stored projection.
    let (fill, filled_qty, avg_price) = match fill {
        None => (None, order.filled_qty, order.filled_avg_price),
        Some(fill) => {
            // This order's fills, and any row with the report's exec_id
            // (the primary key: a repeat, of this order or, by a venue
            // bug, another).
            let rows: Vec<(ExecId, Decimal, Decimal, bool)> = sqlx::query_as(FILLS_FOR_APPLY)
                .bind(order_id)
                .bind(&fill.exec_id)
                .fetch_all(&mut **tx)
                .await?;
            if rows
                .iter()
                .any(|(exec_id, .., mine)| *exec_id == fill.exec_id && !*mine)
            {
                // The unique key keeps the first order's fill; this report
                // adds nothing here.
                tracing::warn!(%order_id, exec_id = %fill.exec_id,
                    "the venue reported an exec_id already recorded for another order");
            }
            let repeat = rows.iter().any(|(exec_id, ..)| *exec_id == fill.exec_id);
            let mut all: Vec<Fill> = rows
                .into_iter()
                .filter(|(.., mine)| *mine)
                .map(|(exec_id, qty, price, _)| Fill {
                    exec_id: exec_id.as_str().to_string(),
                    qty,
                    price,
                })
                .collect();
            if !repeat {
                all.push(Fill {
                    exec_id: fill.exec_id.as_str().to_string(),
                    qty: fill.qty,
                    price: fill.price,
                });
                events.push(EventRecord {
                    step: Step::Working,
                    state: ActionState::Succeeded,
                    detail: serde_json::json!({
                        "fill": {"exec_id": fill.exec_id, "qty": fill.qty, "price": fill.price},
                        "source": execution.source.as_str(),
                    }),
                });
            }
            let summary = fills::fold(qty_bound, &all).map_err(|source| {
                tracing::error!(%order_id, %source, "fills that cannot be the order's");
                ApplyError::Overfill { order_id, source }
            })?;
            debug_assert!(
                summary.filled_qty >= order.filled_qty,
                "the fold never shrinks: {} < {}",
                summary.filled_qty,
                order.filled_qty
            );
            (
                (!repeat).then_some(fill),
                summary.filled_qty,
                summary.avg_price,
            )
        }
    };
    let new_fill = fill.is_some();

    let current = order.lifecycle()?;
    let news = VenueNews {
        status: execution.venue_status,
        cum_qty: execution.cum_qty.max(order.venue_cum_qty),
    };
    // A notional order's quantity is the venue's: known here once the
    // venue reports the order filled with every fill of it recorded (it is
    // then what was filled), and recorded with that news.
    let qty_now_known = order.known_qty().is_none()
        && news.status == VenueStatus::Filled
        && news.cum_qty <= filled_qty
        && filled_qty > Decimal::ZERO;
    let qty = match order.known_qty() {
        _ if confirmed_qty.is_some() => qty_bound,
        Some(qty) => qty,
        None if qty_now_known => filled_qty,
        None => order.qty_bound(),
    };
    let projection = on_venue_news(&current, qty, filled_qty, news);
    if confirmed_qty.is_none()
        && projection.changes_nothing(&current, news, order.venue_cum_qty, new_fill)
    {
        let done_for_day = execution
            .done_for_day
            .then(|| trade_update_payload(order.account_id, order_id, "done_for_day", None));
        return Ok((
            Applied::Applied {
                order_id,
                new_fill: false,
                missing_fills: false,
                release_now: false,
            },
            done_for_day,
        ));
    }
    events.extend(projection.events.iter().cloned());
    let next = &projection.next;
    let trade_update = trade_event(current.status, next.status, new_fill).map(|event| {
        trade_update_payload(
            order.account_id,
            order_id,
            event,
            fill.map(ExecutionFill::note).as_ref(),
        )
    });
    // The hold is gone: this fill is settled from free balance.
    let late = new_fill && current.step == Step::Closed && current.hold_id.is_some();
    if late {
        tracing::warn!(%order_id, "a fill arrived after the order's hold was released");
        metrics::counter!(crate::metrics::names::LATE_FILLS).increment(1);
    }
    let events = EventColumns::of(&events);

    let inserted: i64 = sqlx::query_scalar(*APPLY)
        .bind(order_id)
        .bind(next.status)
        .bind(next.step)
        .bind(next.step_state)
        .bind(i32::try_from(next.attempts).unwrap_or(i32::MAX))
        .bind(filled_qty)
        .bind(avg_price)
        .bind(news.status)
        .bind(news.cum_qty)
        .bind(&execution.venue_order_id)
        .bind(next.reject_reason.clone().map(Json))
        .bind(projection.release_now)
        .bind(fill.map(|f| &f.exec_id))
        .bind(fill.map(|f| f.qty))
        .bind(fill.map(|f| f.price))
        .bind(fill.map(|f| f.transact_time))
        .bind(execution.source)
        .bind(instance_id)
        .bind(events.steps)
        .bind(events.states)
        .bind(events.details)
        .bind(late)
        .bind(qty_now_known)
        .bind(confirmed_qty)
        .fetch_one(&mut **tx)
        .await?;
    if inserted != i64::from(new_fill) {
        // The exec_id appeared between our read and our insert, which the
        // order's row lock rules out for this order: someone else's row.
        // The caller rolls back; the unique key keeps the venue's truth.
        let exec_id = fill
            .map(|f| f.exec_id.clone())
            .unwrap_or_else(|| ExecId::new(""));
        return Err(ApplyError::ExecIdTaken { order_id, exec_id });
    }
    Ok((
        Applied::Applied {
            order_id,
            new_fill,
            missing_fills: projection.missing_fills,
            release_now: projection.release_now,
        },
        trade_update,
    ))
}

/// The quantity a report confirms for a replacement whose own quantity is
/// still orderd's estimate: the venue's, when it states one that can be
/// (more than nothing, at most the estimate; anything else is left
/// unconfirmed and logged).
fn confirmed_replacement_qty(order: &OrderRecord, reported: Option<Decimal>) -> Option<Decimal> {
    if order.replaces.is_none() || order.qty_confirmed {
        return None;
    }
    let reported = reported?;
    if reported > Decimal::ZERO && reported <= order.qty {
        Some(reported)
    } else {
        tracing::warn!(order_id = %order.order_id, %reported, estimate = %order.qty,
            "the venue states a replacement's qty orderd cannot take");
        None
    }
}

/// The order row an applier locked, and the venue stream's fencing token.
#[derive(sqlx::FromRow)]
struct LockedOrder {
    #[sqlx(flatten)]
    order: OrderRecord,
    current_fence: Option<i64>,
}

/// A fill as the trader API shows it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct FillRecord {
    pub exec_id: ExecId,
    pub order_id: Uuid,
    pub qty: Decimal,
    pub price: Decimal,
    pub transact_time: DateTime<Utc>,
    pub source: FillSource,
    pub settlement_state: SettlementState,
    pub settled_at: Option<DateTime<Utc>>,
}

const FILLS_OF: &str =
    "SELECT exec_id, order_id, qty, price, transact_time, source, settlement_state, settled_at
       FROM fills WHERE order_id = $1 ORDER BY transact_time, exec_id";

pub async fn fills_of(pool: &PgPool, order_id: Uuid) -> Result<Vec<FillRecord>, sqlx::Error> {
    sqlx::query_as(FILLS_OF)
        .bind(order_id)
        .fetch_all(pool)
        .await
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LOCK_ORDER", *LOCK_ORDER),
        ("FILLS_FOR_APPLY", FILLS_FOR_APPLY),
        ("APPLY", *APPLY),
        ("FILLS_OF", FILLS_OF),
    ]
}

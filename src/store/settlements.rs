//! The settlement queue: unsettled fills claimed by settlers (`SKIP
//! LOCKED`, short lease), their attempts recorded in batches, and the
//! evidence paths reconciliation uses.

use std::sync::LazyLock;

use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use super::events::insert_events;
use super::types::{sql_list, statement};
use crate::domain::fills::SettlementState;
use crate::domain::ids::{ExecId, HoldId};
use crate::domain::lifecycle::{ActionState, EventRecord, Step};
use crate::domain::order::Side;

/// `('pending', 'unknown')`: [`SettlementState::UNSETTLED`] in SQL.
static UNSETTLED: LazyLock<String> = LazyLock::new(|| sql_list(SettlementState::UNSETTLED));

/// A fill due for settlement, with what the settlement request needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettlementWork {
    pub exec_id: ExecId,
    pub order_id: Uuid,
    pub qty: Decimal,
    pub price: Decimal,
    pub settlement_attempts: i32,
    pub side: Side,
    pub symbol: String,
    pub hold_id: Option<HoldId>,
    pub hold_rate: Option<Decimal>,
    pub balances_account_id: String,
    /// This claim's token: only its own outcome is recorded under it.
    pub settle_token: i64,
}

static CLAIM_SETTLEMENTS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "WITH due AS (
            SELECT exec_id FROM fills
             WHERE settlement_state IN {unsettled} AND next_settle_at <= now()
               AND (settle_lease_until IS NULL OR settle_lease_until < now())
               -- Only fills of orders whose side this version knows (a
               -- newer version settles the others; `store::readable`).
               AND EXISTS (SELECT 1 FROM orders o
                            WHERE o.order_id = fills.order_id AND o.side IN {sides})
             ORDER BY next_settle_at LIMIT $1
             FOR UPDATE SKIP LOCKED),
         taken AS (
            UPDATE fills f SET settle_lease_until = now() + make_interval(secs => $2::float8 / 1000),
                   settle_token = $3
              FROM due WHERE f.exec_id = due.exec_id
            RETURNING f.exec_id, f.order_id, f.qty, f.price, f.settlement_attempts, f.settle_token)
         SELECT t.exec_id, t.order_id, t.qty, t.price, t.settlement_attempts,
                o.side, o.symbol, o.hold_id, o.hold_rate, a.balances_account_id, t.settle_token
           FROM taken t JOIN orders o USING (order_id) JOIN accounts a ON a.account_id = o.account_id",
        unsettled = *UNSETTLED,
        sides = sql_list(Side::ALL),
    ))
});

/// Takes up to `limit` due unsettled fills for `lease_ms` (SKIP LOCKED, so
/// instances share the queue), under a claim token drawn here
/// (`recovery::claim_token`). The claim is the settlement's intent: a fill
/// claimed and not recorded may have been sent, and is sent again (keyed
/// by its exec id) once the claim expires. A claim whose answer was lost
/// is given back at once, by its token: nothing was sent under it.
pub async fn claim_settlements(
    pool: &PgPool,
    limit: u32,
    lease_ms: u64,
) -> Result<Vec<SettlementWork>, sqlx::Error> {
    let token = super::recovery::claim_token();
    let claimed = sqlx::query_as(*CLAIM_SETTLEMENTS)
        .bind(i64::from(limit))
        .bind(lease_ms as f64)
        .bind(token)
        .fetch_all(pool)
        .await;
    if let Err(error) = &claimed {
        match sqlx::query(*GIVE_BACK_SETTLEMENTS)
            .bind(token)
            .execute(pool)
            .await
        {
            Ok(done) if done.rows_affected() > 0 => {
                tracing::warn!(%error, fills = done.rows_affected(),
                    "a settlement claim's answer was lost, but it committed; given back");
                metrics::counter!(crate::metrics::names::UNKNOWN_OUTCOMES_RESOLVED,
                    "step" => "settlement_claim")
                .increment(1);
            }
            Ok(_) => {}
            Err(give_back) => {
                tracing::debug!(error = %give_back, "giving a settlement claim back failed; it expires");
            }
        }
    }
    claimed
}

static GIVE_BACK_SETTLEMENTS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "UPDATE fills SET settle_lease_until = NULL
          WHERE settlement_state IN {unsettled} AND settle_token = $1",
        unsettled = *UNSETTLED,
    ))
});

/// The outcome of one settlement attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettlementOutcome {
    Settled {
        settlement_id: String,
        flagged: bool,
    },
    Unknown {
        detail: String,
    },
    Retry {
        detail: String,
    },
    Failed {
        detail: String,
    },
}

impl SettlementOutcome {
    /// The fill's state after this outcome, and the action state recorded.
    fn states(&self) -> (SettlementState, ActionState) {
        match self {
            SettlementOutcome::Settled { .. } => (SettlementState::Settled, ActionState::Succeeded),
            SettlementOutcome::Unknown { .. } => (SettlementState::Unknown, ActionState::Unknown),
            SettlementOutcome::Retry { .. } => (SettlementState::Pending, ActionState::Failed),
            SettlementOutcome::Failed { .. } => (SettlementState::Failed, ActionState::Failed),
        }
    }
}

/// One settlement attempt's result, to record.
#[derive(Debug, Clone)]
pub struct SettlementAttempt {
    pub work: SettlementWork,
    pub outcome: SettlementOutcome,
    /// When to try again if it did not settle.
    pub retry_in_ms: u64,
}

const RECORD_SETTLEMENTS: &str = "WITH input AS (
     SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::bool[],
                          $6::float8[], $7::text[], $8::jsonb[], $12::int8[])
                AS i(exec_id, order_id, state, settlement_id, flagged, retry_ms,
                     event_state, detail, token)),
     -- Settled is final, whichever claim learned it: never moved back.
     settled AS (
     UPDATE fills f SET settlement_state = 'settled', settlement_id = i.settlement_id,
            settlement_flagged = i.flagged, settled_at = now(), settle_lease_until = NULL
       FROM input i WHERE f.exec_id = i.exec_id AND i.state = 'settled'
                      AND f.settlement_state <> 'settled'),
     -- Anything else only under the claim that made the attempt (a late
     -- answer of an earlier claim cannot overwrite a later outcome), and
     -- an unknown stays unknown until evidence says otherwise.
     retried AS (
     UPDATE fills f SET settlement_state = CASE WHEN f.settlement_state = 'unknown'
                                                     AND i.state = 'pending'
                                                THEN 'unknown' ELSE i.state END,
            settlement_attempts = f.settlement_attempts + 1,
            next_settle_at = now() + make_interval(secs => i.retry_ms / 1000),
            settle_lease_until = NULL
       FROM input i WHERE f.exec_id = i.exec_id AND i.state <> 'settled'
                      AND f.settle_token = i.token AND f.settlement_state <> 'settled'),
     nudged AS (
     UPDATE orders o SET next_attempt_at = now()
      WHERE o.order_id IN (SELECT w.order_id FROM orders w
                            WHERE w.order_id IN (SELECT order_id FROM input WHERE state = 'settled')
                              AND w.step = $10
                            ORDER BY w.order_id FOR UPDATE)),
     events AS (
     INSERT INTO order_events (order_id, step, state, detail, instance_id)
     SELECT order_id, $11, event_state, detail, $9 FROM input)
     SELECT 1";

/// Records settlement attempts (of distinct fills), with their events, in
/// one statement; an order waiting in `release` for a fill settled here is
/// made due now. The orders are locked in `order_id` order, as the
/// appliers lock them, so the two cannot deadlock.
pub async fn record_settlements(
    pool: &PgPool,
    instance_id: Uuid,
    attempts: &[SettlementAttempt],
) -> Result<(), sqlx::Error> {
    if attempts.is_empty() {
        return Ok(());
    }
    let n = attempts.len();
    let mut exec_ids = Vec::with_capacity(n);
    let mut order_ids = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut settlement_ids = Vec::with_capacity(n);
    let mut flags = Vec::with_capacity(n);
    let mut retry_ms = Vec::with_capacity(n);
    let mut event_states = Vec::with_capacity(n);
    let mut details = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    for SettlementAttempt {
        work,
        outcome,
        retry_in_ms,
    } in attempts
    {
        let (state, event_state) = outcome.states();
        let (settlement_id, flagged, detail) = match outcome {
            SettlementOutcome::Settled {
                settlement_id,
                flagged,
            } => (
                Some(settlement_id.as_str()),
                Some(*flagged),
                serde_json::json!({
                    "exec_id": work.exec_id, "settlement_id": settlement_id, "flagged": flagged}),
            ),
            SettlementOutcome::Unknown { detail }
            | SettlementOutcome::Retry { detail }
            | SettlementOutcome::Failed { detail } => (
                None,
                None,
                serde_json::json!({"exec_id": work.exec_id, "detail": detail}),
            ),
        };
        tracing::debug!(exec_id = %work.exec_id, %state, "settlement recorded");
        exec_ids.push(&work.exec_id);
        order_ids.push(work.order_id);
        states.push(state);
        settlement_ids.push(settlement_id);
        flags.push(flagged);
        retry_ms.push(*retry_in_ms as f64);
        event_states.push(event_state);
        details.push(serde_json::json!({ "settle": detail }));
        tokens.push(work.settle_token);
    }
    sqlx::query(RECORD_SETTLEMENTS)
        .bind(exec_ids)
        .bind(order_ids)
        .bind(states)
        .bind(settlement_ids)
        .bind(flags)
        .bind(retry_ms)
        .bind(event_states)
        .bind(details)
        .bind(instance_id)
        .bind(Step::Release)
        .bind(Step::Working)
        .bind(tokens)
        .execute(pool)
        .await?;
    Ok(())
}

const MARK_SETTLED: &str =
    "UPDATE fills SET settlement_state = 'settled', settlement_id = $2, settlement_flagged = $3,
            settled_at = now(), settle_lease_until = NULL
      WHERE exec_id = $1 AND settlement_state <> 'settled'";

const NUDGE_RELEASE: &str =
    "UPDATE orders SET next_attempt_at = now() WHERE order_id = $1 AND step = $2";

/// Evidence from the ledger: the fill is settled.
pub async fn mark_settled(
    pool: &PgPool,
    instance_id: Uuid,
    order_id: Uuid,
    exec_id: &ExecId,
    settlement_id: &str,
    flagged: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(MARK_SETTLED)
        .bind(exec_id)
        .bind(settlement_id)
        .bind(flagged)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 1 {
        sqlx::query(NUDGE_RELEASE)
            .bind(order_id)
            .bind(Step::Release)
            .execute(&mut *tx)
            .await?;
        insert_events(
            &mut tx,
            order_id,
            instance_id,
            &[EventRecord {
                step: Step::Working,
                state: ActionState::Succeeded,
                detail: serde_json::json!({"settle": {"exec_id": exec_id, "settlement_id": settlement_id,
                                                       "evidence": "reconciliation found it in the ledger"}}),
            }],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

const REQUEUE_SETTLEMENT: &str =
    "UPDATE fills SET next_settle_at = now(), settle_lease_until = NULL
      WHERE exec_id = $1 AND settlement_state IN ('pending', 'unknown')";

/// Makes an unsettled fill's settlement due now. A settled fill is never
/// touched: its state is final.
pub async fn requeue_settlement(pool: &PgPool, exec_id: &ExecId) -> Result<(), sqlx::Error> {
    sqlx::query(REQUEUE_SETTLEMENT)
        .bind(exec_id)
        .execute(pool)
        .await?;
    Ok(())
}

const SETTLEMENT_OF: &str = "SELECT f.exec_id, f.order_id, f.qty, f.price, f.settlement_attempts,
            o.side, o.symbol, o.hold_id, o.hold_rate, a.balances_account_id,
            COALESCE(f.settle_token, 0) AS settle_token
       FROM fills f JOIN orders o USING (order_id) JOIN accounts a ON a.account_id = o.account_id
      WHERE f.exec_id = $1";

/// What the settlement of one fill sends (for re-sending it under its
/// key as a repair, without claiming it).
pub async fn settlement_of(
    pool: &PgPool,
    exec_id: &ExecId,
) -> Result<Option<SettlementWork>, sqlx::Error> {
    sqlx::query_as(SETTLEMENT_OF)
        .bind(exec_id)
        .fetch_optional(pool)
        .await
}

static SETTLEMENT_COUNTS: LazyLock<&'static str> = LazyLock::new(|| {
    statement(format!(
        "SELECT count(*) FILTER (WHERE settlement_state IN {unsettled}) AS unsettled,
                count(*) FILTER (WHERE settlement_state = 'failed') AS failed
           FROM fills WHERE order_id = $1",
        unsettled = *UNSETTLED,
    ))
});

/// How an order's fills stand at the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct SettlementCounts {
    /// Pending or unknown.
    pub unsettled: i64,
    /// Refused by the ledger.
    pub failed: i64,
}

pub async fn settlement_counts(
    pool: &PgPool,
    order_id: Uuid,
) -> Result<SettlementCounts, sqlx::Error> {
    sqlx::query_as(*SETTLEMENT_COUNTS)
        .bind(order_id)
        .fetch_one(pool)
        .await
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CLAIM_SETTLEMENTS", *CLAIM_SETTLEMENTS),
        ("RECORD_SETTLEMENTS", RECORD_SETTLEMENTS),
        ("GIVE_BACK_SETTLEMENTS", *GIVE_BACK_SETTLEMENTS),
        ("MARK_SETTLED", MARK_SETTLED),
        ("NUDGE_RELEASE", NUDGE_RELEASE),
        ("REQUEUE_SETTLEMENT", REQUEUE_SETTLEMENT),
        ("SETTLEMENT_OF", SETTLEMENT_OF),
        ("SETTLEMENT_COUNTS", *SETTLEMENT_COUNTS),
    ]
}

//! The settler: settles every recorded fill at the balances service, keyed
//! by the venue's exec_id, until the outcome is known. Woken when a fill is
//! recorded; also polls, so a restart or a lost wake-up loses nothing.

use std::sync::Arc;

use futures_util::StreamExt;
use rust_decimal::Decimal;

use super::{Engine, EngineError};
use crate::domain::lifecycle::backoff;
use crate::store::settlements::{
    self as settlement_store, SettlementAttempt, SettlementOutcome, SettlementWork,
};
use crate::venues::CallError;
use crate::venues::balances::{SettlementReference, SettlementRequest};

/// Fees orderd charges per fill (none: the simulated venue charges none).
pub const FEE_PER_FILL: Decimal = Decimal::ZERO;

/// One pass: claim due fills and settle them concurrently. Returns how
/// many were claimed.
pub async fn run_once(engine: &Arc<Engine>) -> Result<usize, EngineError> {
    let work = settlement_store::claim_settlements(
        &engine.pool,
        engine.settings.completer_batch,
        engine.settings.lease_ms,
    )
    .await?;
    let claimed = work.len();
    if claimed > 0 {
        crate::failpoints::hit(crate::failpoints::BEFORE_SETTLE_CALL);
    }
    // Whatever attempts have finished are recorded together, one statement
    // per chunk: batches under load, no waiting for stragglers.
    let mut results = futures_util::stream::iter(work)
        .map(|work| {
            let engine = engine.clone();
            // A panic costs this attempt only: its claim expires and the
            // fill is claimed again.
            async move { crate::supervise::catch_panic("settler", settle_one(&engine, work)).await }
        })
        .buffer_unordered(engine.settings.completer_concurrency)
        .filter_map(std::future::ready)
        .ready_chunks(RECORD_CHUNK);
    while let Some(attempts) = results.next().await {
        let recorded =
            settlement_store::record_settlements(&engine.pool, engine.instance_id, &attempts).await;
        if recorded.is_ok() {
            crate::failpoints::hit(crate::failpoints::AFTER_SETTLE_RECORDED);
        }
        if let Err(error) = recorded {
            // Their leases expire and the fills are claimed again: the
            // keyed settlements replay their outcomes.
            tracing::error!(%error, count = attempts.len(), "recording settlements");
        }
    }
    Ok(claimed)
}

/// Most settlement attempts recorded in one statement.
const RECORD_CHUNK: usize = 64;

/// The keyed settlement request of a fill. The part of the hold that
/// belonged to it is qty at the hold's rate (the limit or collared price
/// for buys, one share per share for sells); what the fill cost less than
/// that is freed. `Err` when the numbers are out of range.
pub fn settlement_request(work: &SettlementWork) -> Result<SettlementRequest, String> {
    let hold_amount = match work.hold_rate {
        Some(rate) => Some(
            work.qty
                .checked_mul(rate)
                .ok_or_else(|| format!("qty {} x rate {rate} is out of range", work.qty))?,
        ),
        None => None,
    };
    Ok(SettlementRequest {
        idempotency_key: work.exec_id.clone(),
        account_id: work.balances_account_id.clone(),
        hold_id: work.hold_id.clone(),
        side: work.side,
        symbol: work.symbol.clone(),
        qty: work.qty,
        price: work.price,
        fee: FEE_PER_FILL,
        hold_amount,
        reference: SettlementReference {
            order_id: work.order_id.to_string(),
            exec_id: work.exec_id.clone(),
        },
    })
}

/// Sends a fill's keyed settlement again, without claiming or recording
/// anything (reconciliation's repair of a settlement the ledger lacks).
pub async fn resend(
    engine: &Engine,
    work: &SettlementWork,
) -> Result<crate::venues::balances::Settlement, String> {
    let request = settlement_request(work)?;
    engine
        .balances
        .settle(&request)
        .await
        .map_err(|error| error.to_string())
}

#[tracing::instrument(name = "settlement", skip_all, fields(order_id = %work.order_id, exec_id = %work.exec_id))]
async fn settle_one(engine: &Engine, work: SettlementWork) -> SettlementAttempt {
    let attempts = u32::try_from(work.settlement_attempts).unwrap_or(u32::MAX);
    let request = match settlement_request(&work) {
        Ok(request) => request,
        Err(detail) => {
            return SettlementAttempt {
                work,
                outcome: SettlementOutcome::Failed { detail },
                retry_in_ms: 0,
            };
        }
    };
    let answer = engine.balances.settle(&request).await;
    crate::failpoints::hit(crate::failpoints::AFTER_SETTLE_CALL);
    let outcome = match answer {
        Ok(settlement) => {
            if settlement.flagged {
                tracing::warn!(
                    exec_id = %work.exec_id,
                    order_id = %work.order_id,
                    reason = ?settlement.flag_reason,
                    "settlement flagged by the balances service"
                );
            }
            SettlementOutcome::Settled {
                settlement_id: settlement.id,
                flagged: settlement.flagged,
            }
        }
        Err(CallError::Unknown { detail, .. }) => SettlementOutcome::Unknown { detail },
        Err(CallError::Retryable { detail, .. }) => SettlementOutcome::Retry { detail },
        Err(CallError::Unexpected { detail, .. })
            if attempts + 1 < engine.settings.max_unexpected_attempts =>
        {
            SettlementOutcome::Retry { detail }
        }
        Err(error) => {
            tracing::error!(exec_id = %work.exec_id, %error, "settlement refused; an operator must look");
            SettlementOutcome::Failed {
                detail: error.to_string(),
            }
        }
    };
    // No retry without an end: past the budget the fill is failed, which
    // blocks its order's release and parks it for an operator.
    let outcome = match outcome {
        SettlementOutcome::Unknown { detail } | SettlementOutcome::Retry { detail }
            if attempts + 1 >= engine.settings.max_attempts =>
        {
            tracing::error!(exec_id = %work.exec_id, attempts = attempts + 1, %detail,
                "settlement still not done after its attempt budget; an operator must look");
            SettlementOutcome::Failed {
                detail: format!("gave up after {} attempts: {detail}", attempts + 1),
            }
        }
        other => other,
    };
    let label = match &outcome {
        SettlementOutcome::Settled { flagged: true, .. } => "settled_flagged",
        SettlementOutcome::Settled { .. } => "settled",
        SettlementOutcome::Unknown { .. } => "unknown",
        SettlementOutcome::Retry { .. } => "retry",
        SettlementOutcome::Failed { .. } => "failed",
    };
    metrics::counter!(crate::metrics::names::SETTLEMENTS, "outcome" => label).increment(1);
    let retry_in = backoff(
        attempts + 1,
        engine.settings.retry_base(),
        engine.settings.retry_cap(),
        rand::random::<f64>(),
    );
    SettlementAttempt {
        work,
        outcome,
        retry_in_ms: u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
    }
}

/// Runs passes until `shutdown`: back to back while there is work, else
/// waiting for a wake-up or the poll interval.
pub async fn run(engine: Arc<Engine>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let claimed = match run_once(&engine).await {
            Ok(n) => n,
            Err(error) => {
                tracing::error!(%error, "settler pass failed");
                0
            }
        };
        if *shutdown.borrow() {
            return;
        }
        if claimed == 0 {
            tokio::select! {
                // Whichever first: a new fill, the poll interval, the stop.
                _ = engine.settler_wake.notified() => {}
                _ = tokio::time::sleep(engine.settings.completer_interval()) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

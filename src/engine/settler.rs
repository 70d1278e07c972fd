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
    // Whatever attempts have finished are recorded together, one statement
    // per chunk: batches under load, no waiting for stragglers.
    let mut results = futures_util::stream::iter(work)
        .map(|work| {
            let engine = engine.clone();
            async move { settle_one(&engine, work).await }
        })
        .buffer_unordered(engine.settings.completer_concurrency)
        .ready_chunks(RECORD_CHUNK);
    while let Some(attempts) = results.next().await {
        if let Err(error) =
            settlement_store::record_settlements(&engine.pool, engine.instance_id, &attempts).await
        {
            // Their leases expire and the fills are claimed again: the
            // keyed settlements replay their outcomes.
            tracing::error!(%error, count = attempts.len(), "recording settlements");
        }
    }
    Ok(claimed)
}

/// Most settlement attempts recorded in one statement.
const RECORD_CHUNK: usize = 64;

#[tracing::instrument(name = "settlement", skip_all, fields(order_id = %work.order_id, exec_id = %work.exec_id))]
async fn settle_one(engine: &Engine, work: SettlementWork) -> SettlementAttempt {
    // The part of the hold that belonged to this fill: qty at the hold's
    // rate (the limit or collared price for buys, one share per share for
    // sells). What the fill cost less than that is freed.
    let hold_amount = work.hold_rate.map(|rate| work.qty * rate);
    let request = SettlementRequest {
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
    };
    let attempts = u32::try_from(work.settlement_attempts).unwrap_or(u32::MAX);
    let outcome = match engine.balances.settle(&request).await {
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

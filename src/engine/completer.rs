//! The completer: finds orders in a driven step whose retry timer is due
//! and whose lease is free (expired, or its owner is dead), takes them with
//! `FOR UPDATE SKIP LOCKED` and drives them. On start-up its first pass
//! resumes everything a crashed process left mid-way. Several instances can
//! run it at once: the lease makes each order one instance's at a time, and
//! every external call is keyed, so even a double drive has one effect.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::{Engine, EngineError};
use crate::store::recovery;

/// One pass: claim up to `completer_batch` due orders and drive them,
/// `completer_concurrency` at a time, without inline retry sleeps (a retry
/// is left to the durable timer). Returns how many it claimed.
pub async fn run_once(engine: &Arc<Engine>) -> Result<usize, EngineError> {
    let claims = recovery::claim_due(
        &engine.pool,
        engine.instance_id,
        engine.settings.completer_batch,
        engine.settings.lease_ms,
        engine.settings.instance_dead_after_ms,
    )
    .await?;
    let claimed = claims.len();
    metrics::counter!(crate::metrics::names::COMPLETER_CLAIMS).increment(claimed as u64);
    let takeovers = claims.iter().filter(|c| c.taken_over).count();
    metrics::counter!(crate::metrics::names::COMPLETER_TAKEOVERS).increment(takeovers as u64);
    futures_util::stream::iter(claims.into_iter().map(|c| c.order))
        .map(|order| {
            let engine = engine.clone();
            async move {
                let order_id = order.order_id;
                // Deadline now: go on through immediate steps, never sleep.
                // A panic costs this order's turn only: its claim expires
                // and it is claimed again.
                let driven =
                    crate::supervise::catch_panic("completer", engine.drive(order, Instant::now()))
                        .await;
                if let Some(Err(error)) = driven {
                    tracing::error!(%order_id, %error, "completer: driving order");
                }
            }
        })
        .buffer_unordered(engine.settings.completer_concurrency)
        .collect::<()>()
        .await;
    Ok(claimed)
}

/// Runs passes until `shutdown` resolves: back to back while there is
/// work, `completer_interval_ms` apart when there is none.
pub async fn run(engine: Arc<Engine>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let claimed = match run_once(&engine).await {
            Ok(n) => n,
            Err(error) => {
                tracing::error!(%error, "completer pass failed");
                0
            }
        };
        if *shutdown.borrow() {
            return;
        }
        if claimed == 0 {
            tokio::select! {
                // Whichever comes first: the next poll, a wake-up, or the stop.
                _ = tokio::time::sleep(engine.settings.completer_interval()) => {}
                _ = engine.completer_wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

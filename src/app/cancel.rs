//! Canceling: one order, or every open order of an account. The trader's
//! wish is recorded in one transaction (`domain::lifecycle::request_cancel`
//! decides what it means at the order's step); the driver does the rest —
//! for one order at once in the background, for many through the
//! completer, so a large cancel-all never spawns a task per order.

use std::sync::Arc;

use futures_util::StreamExt;
use uuid::Uuid;

use super::{App, Internal};
use crate::domain::lifecycle::Status;
use crate::store::orders::{self as order_store, OrderRecord};
use crate::store::recovery::{self, CancelRequest};

/// Cancels recorded at once by a cancel-all.
pub const CANCEL_ALL_CONCURRENCY: usize = 8;

/// Open orders a cancel-all reads at once (page by page).
pub const CANCEL_ALL_PAGE: i64 = 500;

/// What a cancel request found.
#[derive(Debug, Clone)]
pub enum Canceled {
    /// Recorded (or already recorded): the order as it is now. The
    /// outcome (canceled, or filled if a fill wins the race) follows.
    Recorded(Box<OrderRecord>),
    NotFound,
    /// Nothing left to cancel.
    AlreadyTerminal(Status),
}

/// Records the cancel of `order_id` for `account_id` (asked by the
/// request `request_id`) and drives it.
pub async fn cancel(
    app: &Arc<App>,
    account_id: Uuid,
    order_id: Uuid,
    request_id: Option<&str>,
) -> Result<Canceled, Internal> {
    // In its own task: a client that hangs up must not cut the
    // transaction short (sqlx #4393).
    let request_id = request_id.map(str::to_string);
    let recorded = tokio::spawn({
        let app = app.clone();
        let request_id = request_id.clone();
        async move { record(&app, account_id, order_id, request_id.as_deref()).await }
    })
    .await??;
    if let Canceled::Recorded(order) = &recorded {
        crate::failpoints::hit(crate::failpoints::AFTER_CANCEL_REQUEST_COMMIT);
        drive(app, order_id);
        // An order being replaced: whichever of the two the venue ends up
        // working, the trader wants it gone. Its replacement is canceled
        // too (the venue refuses the replace of an order it cancels, or
        // refuses the cancel of an order it replaced).
        if let Some(replacement) = order.replaced_by {
            cancel_replacement(app, account_id, replacement, request_id).await?;
        }
    }
    Ok(recorded)
}

async fn cancel_replacement(
    app: &Arc<App>,
    account_id: Uuid,
    replacement: Uuid,
    request_id: Option<String>,
) -> Result<(), Internal> {
    let recorded = tokio::spawn({
        let app = app.clone();
        async move { record(&app, account_id, replacement, request_id.as_deref()).await }
    })
    .await??;
    if matches!(recorded, Canceled::Recorded(_)) {
        drive(app, replacement);
    }
    Ok(())
}

/// One order's part of a cancel-all.
#[derive(Debug, Clone)]
pub struct CancelAllEntry {
    pub order_id: Uuid,
    /// `None` when recording it failed (logged).
    pub canceled: Option<Canceled>,
}

/// Records a cancel of every open order of `account_id`, a few at a time,
/// and wakes the completer to drive them (each cancel names `request_id`).
pub async fn cancel_all(
    app: &Arc<App>,
    account_id: Uuid,
    request_id: Option<&str>,
) -> Result<Vec<CancelAllEntry>, Internal> {
    let request_id: Option<Arc<str>> = request_id.map(Arc::from);
    let work = tokio::spawn({
        let app = app.clone();
        async move {
            let mut entries: Vec<CancelAllEntry> = Vec::new();
            let mut after = None;
            loop {
                let open =
                    order_store::open_orders(&app.pool, account_id, after, CANCEL_ALL_PAGE).await?;
                let Some(&last) = open.last() else {
                    break;
                };
                after = Some(last);
                let page: Vec<CancelAllEntry> = futures_util::stream::iter(open)
                    .map(|(_, order_id)| {
                        let app = app.clone();
                        let request_id = request_id.clone();
                        async move {
                            let canceled =
                                match record(&app, account_id, order_id, request_id.as_deref())
                                    .await
                                {
                                    Ok(canceled) => Some(canceled),
                                    Err(error) => {
                                        tracing::error!(%order_id, %error, "cancel-all entry");
                                        None
                                    }
                                };
                            CancelAllEntry { order_id, canceled }
                        }
                    })
                    .buffered(CANCEL_ALL_CONCURRENCY)
                    .collect()
                    .await;
                entries.extend(page);
                app.engine.completer_wake.notify_one();
            }
            Ok::<_, Internal>(entries)
        }
    });
    work.await?
}

async fn record(
    app: &App,
    account_id: Uuid,
    order_id: Uuid,
    request_id: Option<&str>,
) -> Result<Canceled, Internal> {
    let request = recovery::request_cancel(
        &app.pool,
        &app.engine.trade_updates,
        account_id,
        order_id,
        app.instance_id,
        request_id,
    )
    .await
    .map_err(|error| match error {
        recovery::CancelError::Database(error) => Internal::Database(error),
        recovery::CancelError::Corrupt(error) => Internal::from(error),
    })?;
    Ok(match request {
        CancelRequest::NotFound => Canceled::NotFound,
        CancelRequest::AlreadyTerminal(status) => Canceled::AlreadyTerminal(status),
        CancelRequest::Recorded(order) => Canceled::Recorded(order),
    })
}

/// Drives a just-canceled order's next step in the background (the venue
/// cancel, or the lookup of a placement that may exist). The driver that
/// holds the lease, if any, sees the cancel at its next step instead.
fn drive(app: &Arc<App>, order_id: Uuid) {
    let app = app.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + app.settings.lifecycle.submit_deadline();
        if let Err(error) = app.engine.claim_and_drive(order_id, deadline).await {
            tracing::error!(%order_id, %error, "driving a cancel");
        }
    });
}

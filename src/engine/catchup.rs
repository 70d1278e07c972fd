//! Catch-up over REST: when the venue stream may have lost something (a
//! sequence gap, a silent stall, a reconnect, a terminal report whose
//! cumulative quantity is ahead of the fills orderd has), ask the venue for
//! the affected orders and their fills, and apply what it says through the
//! one apply function. Requests are coalesced: many triggers while a pass
//! runs make one more pass, not many.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{Engine, EngineError};
use crate::domain::ids::VenueClientOrderId;
use crate::domain::lifecycle::VenueStatus;
use crate::store::executions::{self as fill_store, Applied, Execution, ExecutionFill, FillSource};
use crate::store::orders::{self as order_store, OrderRecord};
use crate::venues::exchange::{VenueFill, VenueOrder};

/// Orders caught up at once.
pub const CATCH_UP_CONCURRENCY: usize = 16;

/// Single orders waiting for a catch-up at most; past it the requests
/// collapse into one catch-up of every order at the venue (a bound on
/// memory, and cheaper than thousands of single look-ups anyway).
pub const PENDING_ORDERS_MAX: usize = 10_000;

/// Pending catch-up requests.
#[derive(Debug, Default)]
pub struct Requests {
    all: AtomicBool,
    orders: Mutex<HashSet<Uuid>>,
    notify: tokio::sync::Notify,
}

impl Requests {
    /// Every order at the venue (after a gap, stall or reconnect).
    pub fn all(&self) {
        self.all.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// One order (its terminal report came before all its fills).
    pub fn order(&self, order_id: Uuid) {
        if let Ok(mut orders) = self.orders.lock() {
            if orders.len() >= PENDING_ORDERS_MAX {
                orders.clear();
                self.all.store(true, Ordering::SeqCst);
            } else {
                orders.insert(order_id);
            }
        }
        self.notify.notify_one();
    }

    fn take(&self) -> (bool, Vec<Uuid>) {
        let all = self.all.swap(false, Ordering::SeqCst);
        let orders = self
            .orders
            .lock()
            .map(|mut o| o.drain().collect())
            .unwrap_or_default();
        (all, orders)
    }
}

/// Orders read at once by a catch-up of everything (page by page: memory
/// stays bounded however many orders work at the venue).
pub const CATCH_UP_PAGE: i64 = 500;

/// Catches up every order the venue still works for us. Returns how many
/// orders it looked at.
pub async fn catch_up_all(engine: &Arc<Engine>) -> Result<usize, EngineError> {
    let mut after = Uuid::nil();
    let mut count = 0;
    loop {
        let page = order_store::at_venue(&engine.pool, after, CATCH_UP_PAGE).await?;
        let Some(next) = page.next else {
            return Ok(count);
        };
        after = next;
        count += catch_up_orders(engine, page.rows).await;
    }
}

async fn catch_up_orders(engine: &Arc<Engine>, orders: Vec<OrderRecord>) -> usize {
    let count = orders.len();
    futures_util::stream::iter(orders)
        .map(|order| {
            let engine = engine.clone();
            async move {
                if let Err(error) = catch_up_order(&engine, &order).await {
                    tracing::warn!(order_id = %order.order_id, %error, "catch-up failed; next pass retries");
                }
            }
        })
        .buffer_unordered(CATCH_UP_CONCURRENCY)
        .collect::<()>()
        .await;
    count
}

#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error(transparent)]
    Venue(#[from] crate::venues::CallError),
    #[error(transparent)]
    Apply(#[from] fill_store::ApplyError),
    #[error("the venue answered an order status orderd does not know: {0:?}")]
    UnknownStatus(String),
    #[error("the venue answered numbers out of range: {0}")]
    Invalid(String),
}

/// Asks the venue about one order and applies its fills and status. An
/// order orderd has no venue id for (its placement's answer was lost) is
/// looked up by its client order id.
pub async fn catch_up_order(engine: &Engine, order: &OrderRecord) -> Result<(), CatchUpError> {
    let venue = match &order.venue_order_id {
        Some(id) => engine.exchange.order(id).await?,
        None => {
            engine
                .exchange
                .order_by_client_order_id(&order.venue_client_order_id)
                .await?
        }
    };
    // Not visible (a stale read, or never placed) is no news.
    let Some(venue) = venue else {
        return Ok(());
    };
    let base = order_news(&order.venue_client_order_id, &venue)?;
    let mut new_fills = false;
    if venue.filled_qty > order.filled_qty {
        for fill in engine.exchange.fills(&venue.id).await? {
            let (execution, checked) = fill_news(&base, fill);
            if let Err(reason) = checked {
                super::venue_stream::quarantine_execution(engine, &execution, &reason).await;
                continue;
            }
            match fill_store::apply_execution(
                &engine.pool,
                &engine.trade_updates,
                engine.instance_id,
                &execution,
            )
            .await
            {
                Ok(Applied::Applied { new_fill: true, .. }) => new_fills = true,
                Ok(_) => {}
                Err(error @ fill_store::ApplyError::Overfill { .. }) => {
                    super::venue_stream::quarantine_execution(
                        engine,
                        &execution,
                        &error.to_string(),
                    )
                    .await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    fill_store::apply_execution(
        &engine.pool,
        &engine.trade_updates,
        engine.instance_id,
        &base,
    )
    .await?;
    if new_fills {
        tracing::info!(order_id = %order.order_id, "catch-up recovered fills the stream lost");
        engine.settler_wake.notify_one();
    }
    Ok(())
}

/// What the venue's view of an order says, as the apply function's input
/// (its status and cumulative quantity, no fill), checked first. Pure.
pub fn order_news(
    venue_client_order_id: &VenueClientOrderId,
    venue: &VenueOrder,
) -> Result<Execution, CatchUpError> {
    let Some(venue_status) = VenueStatus::parse(&venue.status) else {
        return Err(CatchUpError::UnknownStatus(venue.status.clone()));
    };
    crate::domain::fills::check_report(Decimal::ZERO, None, venue.filled_qty)
        .map_err(CatchUpError::Invalid)?;
    Ok(Execution {
        venue_client_order_id: venue_client_order_id.clone(),
        venue_order_id: venue.id.clone(),
        fill: None,
        venue_status,
        cum_qty: venue.filled_qty,
        source: FillSource::Rest,
        fencing_token: None,
        done_for_day: false,
        order_qty: venue.qty,
    })
}

/// One fill the venue lists for the order of `base`, as the apply
/// function's input, and whether its numbers may be applied (`Err`: why it
/// is quarantined instead). Pure.
pub fn fill_news(base: &Execution, fill: VenueFill) -> (Execution, Result<(), String>) {
    // A fill is of some shares: `check_report` takes a quantity of 0 (a
    // report without a fill) and then does not look at the price.
    let checked = if fill.qty > Decimal::ZERO {
        crate::domain::fills::check_report(fill.qty, Some(fill.price), fill.qty)
    } else {
        Err(format!("a fill of {} shares", fill.qty))
    };
    let execution = Execution {
        fill: Some(ExecutionFill {
            exec_id: fill.exec_id,
            qty: fill.qty,
            price: fill.price,
            transact_time: fill.transact_time,
        }),
        ..base.clone()
    };
    (execution, checked)
}

/// Serves catch-up requests until `shutdown`.
pub async fn run(engine: Arc<Engine>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            // A request, or the stop.
            _ = engine.catch_up.notify.notified() => {}
            _ = shutdown.changed() => return,
        }
        let (all, ids) = engine.catch_up.take();
        if all {
            match catch_up_all(&engine).await {
                Ok(n) => tracing::info!(orders = n, "caught up over REST"),
                Err(error) => {
                    tracing::warn!(%error, "catch-up pass failed; retrying");
                    engine.catch_up.all();
                    tokio::time::sleep(engine.settings.retry_cap()).await;
                }
            }
        } else {
            let mut orders = Vec::new();
            for id in ids {
                match order_store::load(&engine.pool, id).await {
                    Ok(Some(order)) => orders.push(order),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, order_id = %id, "catch-up load"),
                }
            }
            catch_up_orders(&engine, orders).await;
        }
    }
}

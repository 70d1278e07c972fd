//! What a trader may read of its own orders: one order (by id or by its
//! client_order_id), a filtered page, its recorded timeline, its fills.
//! Another account's order is not found.

use uuid::Uuid;

use super::App;
use crate::domain::ids::ClientOrderId;
use crate::store::activities::{self, ActivityPage, FillActivity};
use crate::store::events::{self, OrderEvent};
use crate::store::executions::{self, FillRecord};
use crate::store::orders::{self as order_store, ListFilter, OrderRecord};

pub async fn order(
    app: &App,
    account_id: Uuid,
    order_id: Uuid,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    order_store::load_for_account(&app.pool, account_id, order_id).await
}

pub async fn order_by_client_order_id(
    app: &App,
    account_id: Uuid,
    client_order_id: &ClientOrderId,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    order_store::load_by_client_order_id(&app.pool, account_id, client_order_id).await
}

pub async fn orders(app: &App, filter: &ListFilter) -> Result<Vec<OrderRecord>, sqlx::Error> {
    order_store::list(&app.pool, filter).await
}

/// The order and its recorded action timeline.
pub async fn timeline(
    app: &App,
    account_id: Uuid,
    order_id: Uuid,
) -> Result<Option<(OrderRecord, Vec<OrderEvent>)>, sqlx::Error> {
    let Some(order) = order(app, account_id, order_id).await? else {
        return Ok(None);
    };
    let events = events::events_of(&app.pool, order_id).await?;
    Ok(Some((order, events)))
}

/// The order's executions and their settlement.
pub async fn fills(
    app: &App,
    account_id: Uuid,
    order_id: Uuid,
) -> Result<Option<Vec<FillRecord>>, sqlx::Error> {
    if order(app, account_id, order_id).await?.is_none() {
        return Ok(None);
    }
    Ok(Some(executions::fills_of(&app.pool, order_id).await?))
}

/// A page of the account's fills, as activities.
pub async fn fill_activities(
    app: &App,
    account_id: Uuid,
    page: &ActivityPage,
) -> Result<Vec<FillActivity>, sqlx::Error> {
    activities::fill_activities(&app.pool, account_id, page).await
}

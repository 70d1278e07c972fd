//! Closing positions: each close is an ordinary market sell, submitted
//! through [`super::intake`] like any trader's order, so it goes through
//! the whole lifecycle (hold of the shares at the ledger, placement,
//! fills, settlement) and every recovery point of it.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;

use super::App;
use super::account::{self, AccountError};
use super::cancel;
use super::idempotency::IdempotencyKey;
use super::intake::{self, Render, Reply, SubmitError};
use crate::domain::InvalidField;
use crate::domain::hold::CASH_ASSET;
use crate::domain::order::{NewOrder, OrderType, Prices, Qty, Side, Symbol, TimeInForce};
use crate::domain::position::CloseAmount;
use crate::store::accounts::Account;

/// How often a close-all looks again whether the canceled orders' shares
/// are free.
const RELEASE_POLL: Duration = Duration::from_millis(100);

/// Why a close was not submitted.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error("position does not exist")]
    NoPosition,
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Submit(#[from] SubmitError),
}

/// Closes `amount` of the account's long position in `symbol` with a
/// market day sell (`key` makes a retry a replay, as on `POST
/// /v2/orders`; `request_id` is recorded on its accept).
pub async fn close(
    app: Arc<App>,
    account: Account,
    symbol: Symbol,
    amount: CloseAmount,
    key: Option<IdempotencyKey>,
    render: Render,
    request_id: Option<&str>,
) -> Result<Reply, CloseError> {
    // A retry replays the first close, whatever became of the position.
    let digest = amount.request_digest(symbol.as_str());
    if let Some(key) = &key
        && let Some(reply) = intake::replay(&app, &account, key, &digest, render).await?
    {
        return Ok(reply);
    }
    let held = account::held(&app, &account)
        .await?
        .remove(symbol.as_str())
        .ok_or(CloseError::NoPosition)?;
    let fractionable = fractionable(&app, symbol.as_str());
    let order = sell(symbol, amount.shares_of(held, fractionable)?)?.derived_from(digest);
    Ok(intake::submit(app, account, order, key, render, request_id).await?)
}

/// Whether `symbol` takes fractional orders (reference data): then a
/// position of it is closed to the last fraction of a share.
fn fractionable(app: &App, symbol: &str) -> bool {
    app.reference
        .snapshot()
        .asset(symbol)
        .is_some_and(|asset| asset.fractionable)
}

/// A market day sell of `shares`.
fn sell(symbol: Symbol, shares: Decimal) -> Result<NewOrder, InvalidField> {
    NewOrder::new(
        symbol,
        Side::Sell,
        OrderType::Market,
        TimeInForce::Day,
        Qty::parse(shares)?,
        Prices::default(),
        None,
    )
}

/// One position's part of a close-all.
#[derive(Debug)]
pub struct Closed {
    pub symbol: String,
    pub outcome: Result<Reply, CloseError>,
}

/// Closes every long position of the account. With `cancel_orders`, the
/// account's open orders are canceled first and the close waits (up to
/// the submit deadline plus the late-fill window) until the shares their
/// sells held are free again, so the sells can hold them. Every cancel
/// and sell names `request_id`.
pub async fn close_all(
    app: Arc<App>,
    account: Account,
    cancel_orders: bool,
    render: Render,
    request_id: Option<&str>,
) -> Result<Vec<Closed>, CloseError> {
    if cancel_orders {
        cancel::cancel_all(&app, account.account_id, request_id)
            .await
            .map_err(|e| CloseError::Submit(SubmitError::Internal(e)))?;
        let settings = &app.settings.lifecycle;
        let until = tokio::time::Instant::now()
            + settings.submit_deadline()
            + settings.late_fill_window()
            + Duration::from_secs(1);
        while tokio::time::Instant::now() < until && held_by_orders(&app, &account).await? {
            tokio::time::sleep(RELEASE_POLL).await;
        }
        crate::failpoints::hit(crate::failpoints::AFTER_CLOSE_ALL_CANCELS);
    }
    let held = account::held(&app, &account).await?;
    let mut closed = Vec::with_capacity(held.len());
    for (symbol, qty) in held {
        let outcome = match Symbol::parse(&symbol) {
            Ok(parsed) => match CloseAmount::All
                .shares_of(qty, fractionable(&app, &symbol))
                .and_then(|s| sell(parsed, s))
            {
                Ok(order) => intake::submit(
                    app.clone(),
                    account.clone(),
                    order,
                    None,
                    render,
                    request_id,
                )
                .await
                .map_err(CloseError::from),
                Err(invalid) => Err(invalid.into()),
            },
            Err(invalid) => Err(invalid.into()),
        };
        closed.push(Closed { symbol, outcome });
    }
    Ok(closed)
}

/// Whether any of the account's shares are still held by an order.
async fn held_by_orders(app: &App, account: &Account) -> Result<bool, AccountError> {
    let balances = account::ledger_balances(app, account).await?;
    Ok(balances
        .iter()
        .any(|(asset, b)| asset != CASH_ASSET && b.available < b.total))
}

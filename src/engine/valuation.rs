//! What an account is worth now: its cash and its long positions at the
//! venue's last price, read from the ledger of record and the venue. One
//! place for the figure `GET /v2/account` shows and the close's equity
//! snapshot records.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::Engine;
use crate::domain::hold::CASH_ASSET;
use crate::venues::CallError;
use crate::venues::balances::AssetBalance;

/// An account's cash and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountValue {
    pub cash: Decimal,
    pub buying_power: Decimal,
    pub long_market_value: Decimal,
    pub equity: Decimal,
}

/// The value of `balances` now: positions the venue cannot quote now
/// count nothing (logged) — a live read, never a made-up price.
pub async fn value_of(engine: &Engine, balances: &BTreeMap<String, AssetBalance>) -> AccountValue {
    let (long_market_value, unpriced) = price_positions(engine, balances).await;
    for (symbol, error) in &unpriced {
        tracing::warn!(%error, symbol, "no quote to value a position");
    }
    with_cash(balances, long_market_value)
}

/// The value of the ledger account `balances_account_id` with every
/// position priced (a figure that is kept, such as the close's equity,
/// must not count an unquoted position as nothing): an error otherwise.
pub async fn value_exactly(
    engine: &Engine,
    balances_account_id: &str,
) -> Result<AccountValue, CallError> {
    let balances = engine.balances.balances(balances_account_id).await?;
    let (long_market_value, unpriced) = price_positions(engine, &balances.balances).await;
    match unpriced.into_iter().next() {
        Some((_, error)) => Err(error),
        None => Ok(with_cash(&balances.balances, long_market_value)),
    }
}

/// The long positions at the venue's last price, and those it could not
/// price now.
async fn price_positions(
    engine: &Engine,
    balances: &BTreeMap<String, AssetBalance>,
) -> (Decimal, Vec<(String, CallError)>) {
    let mut value = Decimal::ZERO;
    let mut unpriced = Vec::new();
    for (symbol, balance) in balances.iter().filter(|(a, _)| a.as_str() != CASH_ASSET) {
        if balance.total.is_zero() {
            continue;
        }
        match engine.exchange.quote(symbol).await {
            Ok(quote) => value += balance.total * quote.last,
            Err(error) => unpriced.push((symbol.clone(), error)),
        }
    }
    (value, unpriced)
}

fn with_cash(
    balances: &BTreeMap<String, AssetBalance>,
    long_market_value: Decimal,
) -> AccountValue {
    let cash = balances.get(CASH_ASSET);
    let total_cash = cash.map(|c| c.total).unwrap_or_default();
    AccountValue {
        cash: total_cash,
        buying_power: cash.map(|c| c.available).unwrap_or_default(),
        long_market_value,
        equity: total_cash + long_market_value,
    }
}

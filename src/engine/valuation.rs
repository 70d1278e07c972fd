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

/// The value of `balances`: positions the venue cannot quote now count
/// nothing (logged), so the figure is never made up.
pub async fn value_of(engine: &Engine, balances: &BTreeMap<String, AssetBalance>) -> AccountValue {
    let cash = balances.get(CASH_ASSET);
    let total_cash = cash.map(|c| c.total).unwrap_or_default();
    let buying_power = cash.map(|c| c.available).unwrap_or_default();
    let mut long_market_value = Decimal::ZERO;
    for (symbol, balance) in balances.iter().filter(|(a, _)| a.as_str() != CASH_ASSET) {
        if balance.total.is_zero() {
            continue;
        }
        match engine.exchange.quote(symbol).await {
            Ok(quote) => long_market_value += balance.total * quote.last,
            Err(error) => tracing::warn!(%error, symbol, "no quote to value a position"),
        }
    }
    AccountValue {
        cash: total_cash,
        buying_power,
        long_market_value,
        equity: total_cash + long_market_value,
    }
}

/// The value of the ledger account `balances_account_id`.
pub async fn value(engine: &Engine, balances_account_id: &str) -> Result<AccountValue, CallError> {
    let balances = engine.balances.balances(balances_account_id).await?;
    Ok(value_of(engine, &balances.balances).await)
}

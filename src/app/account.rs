//! The trader's cash and positions: quantities from the balances service
//! (the ledger of record), prices from the venue, entry prices from the
//! fills orderd recorded.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;

use super::App;
use crate::domain::hold::CASH_ASSET;
use crate::domain::position::{Costed, Lot};
use crate::engine::valuation::{self, AccountValue};
use crate::store::accounts;
use crate::store::accounts::Account;
use crate::store::activities;
use crate::venues::CallError;
use crate::venues::balances::AssetBalance;

/// Upper bound of cached keys; the cache is cleared when it is reached.
pub const AUTH_CACHE_MAX: usize = 10_000;

#[derive(Debug)]
struct CachedKey {
    secret_digest: Vec<u8>,
    /// `None`: this key id and secret were refused (a flood of bad secrets
    /// costs one query per `ttl`, not one per request).
    account: Option<Account>,
    verified_at: Instant,
}

/// What the cache knows of a key id and secret.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cached {
    Unknown,
    Refused,
    Account(Box<Account>),
}

/// Verified keys, cached in memory for `http.auth_cache_ms` so the hot
/// path costs at most a query per key that often; the cache holds
/// digests, never secrets. A revoked key is refused once its entry is
/// older than that.
#[derive(Debug)]
pub struct AuthCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, CachedKey>>,
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, key_id: &str, secret: &str) -> Cached {
        let Ok(entries) = self.entries.read() else {
            return Cached::Unknown;
        };
        match entries.get(key_id) {
            Some(cached)
                if cached.verified_at.elapsed() < self.ttl
                    && cached.secret_digest == accounts::hash_secret(secret) =>
            {
                match &cached.account {
                    Some(account) => Cached::Account(Box::new(account.clone())),
                    None => Cached::Refused,
                }
            }
            _ => Cached::Unknown,
        }
    }

    fn put(&self, key_id: &str, secret: &str, account: Option<&Account>) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= AUTH_CACHE_MAX {
                entries.clear();
            }
            entries.insert(
                key_id.to_string(),
                CachedKey {
                    secret_digest: accounts::hash_secret(secret),
                    account: account.cloned(),
                    verified_at: Instant::now(),
                },
            );
        }
    }
}

/// The account behind an API key id and secret, if they match and the key
/// is live (both answers cached for `http.auth_cache_ms`).
pub async fn authenticate(
    app: &App,
    key_id: &str,
    secret: &str,
) -> Result<Option<Account>, sqlx::Error> {
    match app.auth_cache.get(key_id, secret) {
        Cached::Account(account) => return Ok(Some(*account)),
        Cached::Refused => return Ok(None),
        Cached::Unknown => {}
    }
    let account = accounts::authenticate(&app.pool, key_id, secret).await?;
    app.auth_cache.put(key_id, secret, account.as_ref());
    Ok(account)
}

/// The account's total of `symbol` at the ledger (`None` when it cannot
/// be read now).
pub async fn position_qty(app: &App, account: &Account, symbol: &str) -> Option<Decimal> {
    let balances = app
        .engine
        .balances
        .balances(&account.balances_account_id)
        .await
        .ok()?;
    balances.balances.get(symbol).map(|b| b.total)
}

/// Why an account read failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The balances service could not answer: the read cannot be made now.
    #[error("the balances service is unavailable: {0}")]
    Unavailable(CallError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One position, at average cost ([`crate::domain::position`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub symbol: String,
    pub qty: Decimal,
    pub qty_available: Decimal,
    pub avg_entry_price: Decimal,
    /// What the shares held cost. Shares with no recorded fill (funded
    /// directly at the ledger) are an opening lot at the current price.
    pub cost_basis: Decimal,
    /// `None` when the venue cannot quote it now.
    pub current_price: Option<Decimal>,
}

impl Position {
    /// Unrealized profit or loss at the current price, and as a fraction
    /// of the cost (`None` without a price).
    pub fn unrealized(&self) -> Option<(Decimal, Option<Decimal>)> {
        let costed = Costed {
            qty: self.qty,
            avg_entry_price: self.avg_entry_price,
            cost_basis: self.cost_basis,
        };
        self.current_price.map(|price| costed.unrealized(price))
    }
}

pub(super) async fn ledger_balances(
    app: &App,
    account: &Account,
) -> Result<std::collections::BTreeMap<String, AssetBalance>, AccountError> {
    app.engine
        .balances
        .balances(&account.balances_account_id)
        .await
        .map(|b| b.balances)
        .map_err(|error| {
            tracing::warn!(%error, "balances service unavailable for an account read");
            AccountError::Unavailable(error)
        })
}

/// The account's long positions at the ledger: shares held, by symbol.
pub async fn held(
    app: &App,
    account: &Account,
) -> Result<std::collections::BTreeMap<String, Decimal>, AccountError> {
    Ok(long_positions(&ledger_balances(app, account).await?))
}

/// The account's cash and value now, and its equity at the latest close
/// (`None` before the first close it was valued at).
/// The account's long positions, by symbol (shares held at the ledger).
fn long_positions(
    balances: &std::collections::BTreeMap<String, AssetBalance>,
) -> std::collections::BTreeMap<String, Decimal> {
    balances
        .iter()
        .filter(|(asset, b)| asset.as_str() != CASH_ASSET && b.total > Decimal::ZERO)
        .map(|(asset, b)| (asset.clone(), b.total))
        .collect()
}

pub async fn summary(
    app: &App,
    account: &Account,
) -> Result<(AccountValue, Option<Decimal>), AccountError> {
    let balances = ledger_balances(app, account).await?;
    let value = valuation::value_of(&app.engine, &balances).await;
    let last_equity = accounts::last_equity(&app.pool, account.account_id).await?;
    Ok((value, last_equity))
}

pub async fn positions(app: &App, account: &Account) -> Result<Vec<Position>, AccountError> {
    let balances = ledger_balances(app, account).await?;
    let mut out = Vec::new();
    for (symbol, balance) in &balances {
        if symbol == CASH_ASSET || balance.total.is_zero() {
            continue;
        }
        out.push(position_of(app, account, symbol, balance).await?);
    }
    Ok(out)
}

pub async fn position(
    app: &App,
    account: &Account,
    symbol: &str,
) -> Result<Option<Position>, AccountError> {
    let balances = ledger_balances(app, account).await?;
    match balances.get(symbol) {
        Some(balance) if symbol != CASH_ASSET && !balance.total.is_zero() => {
            Ok(Some(position_of(app, account, symbol, balance).await?))
        }
        _ => Ok(None),
    }
}

async fn position_of(
    app: &App,
    account: &Account,
    symbol: &str,
    balance: &AssetBalance,
) -> Result<Position, AccountError> {
    let current_price = match app.engine.exchange.quote(symbol).await {
        Ok(quote) => Some(quote.last),
        Err(error) => {
            tracing::warn!(%error, symbol, "no quote for a position");
            None
        }
    };
    let trades = activities::settled_trades(&app.pool, account.account_id, symbol).await?;
    let costed = Lot::fold_with_opening(balance.total, current_price, &trades)
        .costed(balance.total, current_price);
    Ok(Position {
        symbol: symbol.to_string(),
        qty: balance.total,
        qty_available: balance.available,
        avg_entry_price: costed.avg_entry_price,
        cost_basis: costed.cost_basis,
        current_price,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_cached_like_accounts_and_expire_alike() {
        let cache = AuthCache::new(Duration::from_millis(50));
        assert_eq!(cache.get("k", "bad"), Cached::Unknown);
        cache.put("k", "bad", None);
        assert_eq!(cache.get("k", "bad"), Cached::Refused);
        // Another secret for the same id is not answered from the cache.
        assert_eq!(cache.get("k", "other"), Cached::Unknown);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("k", "bad"), Cached::Unknown);
    }
}

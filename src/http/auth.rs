//! `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` authentication. Verified keys
//! are cached in memory for [`AUTH_CACHE_TTL`] so the hot path costs no
//! query; the cache holds digests, never secrets.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::startup::AppState;
use crate::store::accounts::{self, Account};

pub const KEY_ID_HEADER: &str = "apca-api-key-id";
pub const SECRET_HEADER: &str = "apca-api-secret-key";

/// How long a verified key is trusted without asking the database again
/// (a revoked key stops working within this time).
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(30);

/// Upper bound of cached keys; the cache is cleared when it is reached.
pub const AUTH_CACHE_MAX: usize = 10_000;

#[derive(Debug)]
struct CachedKey {
    secret_digest: Vec<u8>,
    account: Account,
    verified_at: Instant,
}

#[derive(Debug, Default)]
pub struct AuthCache {
    entries: RwLock<HashMap<String, CachedKey>>,
}

impl AuthCache {
    fn get(&self, key_id: &str, secret: &str) -> Option<Account> {
        let entries = self.entries.read().ok()?;
        let cached = entries.get(key_id)?;
        (cached.verified_at.elapsed() < AUTH_CACHE_TTL
            && cached.secret_digest == accounts::hash_secret(secret))
        .then(|| cached.account.clone())
    }

    fn put(&self, key_id: &str, secret: &str, account: &Account) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= AUTH_CACHE_MAX {
                entries.clear();
            }
            entries.insert(
                key_id.to_string(),
                CachedKey {
                    secret_digest: accounts::hash_secret(secret),
                    account: account.clone(),
                    verified_at: Instant::now(),
                },
            );
        }
    }
}

/// The authenticated trader account of a request.
#[derive(Debug, Clone)]
pub struct Trader(pub Account);

impl FromRequestParts<Arc<AppState>> for Trader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let (Some(key_id), Some(secret)) = (header(KEY_ID_HEADER), header(SECRET_HEADER)) else {
            return Err(ApiError::unauthorized());
        };
        if let Some(account) = state.auth_cache.get(key_id, secret) {
            return Ok(Trader(account));
        }
        match accounts::authenticate(&state.pool, key_id, secret).await? {
            Some(account) => {
                state.auth_cache.put(key_id, secret, &account);
                tracing::Span::current()
                    .record("account_id", tracing::field::display(account.account_id));
                Ok(Trader(account))
            }
            None => Err(ApiError::unauthorized()),
        }
    }
}

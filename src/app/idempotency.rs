//! The Idempotency-Key protocol (IETF draft *The Idempotency-Key HTTP
//! Header Field*), on its own: the key, taking it in the accept
//! transaction, and what a request that finds it taken gets.
//!
//! - A new key is taken in the same transaction that accepts the order
//!   (so an accepted order always has its key, and a key never names an
//!   order that was rolled back).
//! - The same request again: its stored final response is replayed; if
//!   none is stored yet (the first is still running, or died, or answered
//!   `pending_new`), the order is resumed from its recovery point when no
//!   live instance drives it, and its answer derived afresh.
//! - A different request under the same key: refused.
//! - Only while a live driver really works on it does the request wait
//!   (up to `idempotency_wait_ms`) and then get *in progress*.
//!
//! An unexpected internal error is never stored: the retry resumes.

use std::time::Duration;

use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::time::Instant;
use uuid::Uuid;

use super::{App, Internal};
use crate::metrics::names;
use crate::store::idempotency as store;
use crate::store::orders::{self as order_store, OrderRecord};

/// Longest Idempotency-Key accepted.
pub const KEY_MAX_LEN: usize = 255;

/// How often a waiting duplicate re-reads the first request's record.
const POLL: Duration = Duration::from_millis(20);

/// A validated Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Idempotency-Key must be 1 to {KEY_MAX_LEN} visible ASCII characters (inner spaces allowed)"
)]
pub struct InvalidKey;

impl IdempotencyKey {
    /// 1 to [`KEY_MAX_LEN`] visible ASCII characters and inner spaces
    /// (HTTP drops the spaces around a header's value).
    /// The draft's sf-string form is a quoted string: one surrounding pair
    /// of quotes is dropped (`"abc"` is the key `abc`).
    pub fn parse(text: &str) -> Result<Self, InvalidKey> {
        if text.is_empty()
            || text.starts_with(' ')
            || text.ends_with(' ')
            || text.len() > KEY_MAX_LEN
            || !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(InvalidKey);
        }
        let key = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|inner| !inner.is_empty())
            .unwrap_or(text);
        Ok(Self(key.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A response as stored for replay: status code and body.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Value,
}

/// Taking a key in the accept transaction.
#[derive(Debug, Clone)]
pub enum Taken {
    /// The key is ours: go on and accept the order in this transaction.
    New,
    /// The key was used before (and has not expired).
    Existing(store::IdempotencyRecord),
}

/// Takes `key` for `account_id` in the caller's transaction, or returns
/// the record already there.
pub async fn take(
    tx: &mut Transaction<'_, Postgres>,
    account_id: Uuid,
    key: &IdempotencyKey,
    fingerprint: &str,
    ttl_secs: u64,
) -> Result<Taken, sqlx::Error> {
    Ok(
        match store::take(tx, account_id, key.as_str(), fingerprint, ttl_secs).await? {
            Some(existing) => Taken::Existing(existing),
            None => Taken::New,
        },
    )
}

/// Names the order the key was taken for (same transaction).
pub async fn attach(
    tx: &mut Transaction<'_, Postgres>,
    account_id: Uuid,
    key: &IdempotencyKey,
    order_id: Uuid,
) -> Result<(), sqlx::Error> {
    store::attach_order(tx, account_id, key.as_str(), order_id).await
}

/// Stores the final response; the first one stored wins.
pub async fn complete(
    pool: &PgPool,
    account_id: Uuid,
    key: &IdempotencyKey,
    response: &StoredResponse,
) -> Result<(), sqlx::Error> {
    store::complete(
        pool,
        account_id,
        key.as_str(),
        response.status,
        &response.body,
    )
    .await
}

/// What a request that found its key taken gets.
#[derive(Debug)]
pub enum Followed {
    /// The stored final response.
    Replay(StoredResponse),
    /// No final response was stored: the order as it is now, after
    /// resuming it if nobody was driving it.
    Order(Box<OrderRecord>),
}

/// Why following a taken key failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("Idempotency-Key was already used with a different request")]
    DifferentRequest,
    /// A live driver is still working on the first request's order.
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    InProgress { retry_after: Duration },
    #[error(transparent)]
    Internal(#[from] Internal),
}

impl From<sqlx::Error> for FollowError {
    fn from(error: sqlx::Error) -> Self {
        FollowError::Internal(error.into())
    }
}

/// The key was used before: replay, refuse a different body, or resume.
/// Waits (re-reading the record) only while a live instance is driving
/// the order, up to `idempotency_wait_ms`.
pub async fn follow(
    app: &App,
    account_id: Uuid,
    key: &IdempotencyKey,
    mut record: store::IdempotencyRecord,
    fingerprint: &str,
) -> Result<Followed, FollowError> {
    if record.request_fingerprint != fingerprint {
        metrics::counter!(names::IDEMPOTENCY_CONFLICTS, "reason" => "different_request")
            .increment(1);
        return Err(FollowError::DifferentRequest);
    }
    let wait = app.settings.lifecycle.idempotency_wait();
    let wait_until = Instant::now() + wait;
    loop {
        if let (Some(status), Some(body)) = (record.response_status, record.response_body.clone()) {
            metrics::counter!(names::IDEMPOTENCY_REPLAYS, "key" => "idempotency_key").increment(1);
            return Ok(Followed::Replay(StoredResponse {
                status: u16::try_from(status).unwrap_or(500),
                body,
            }));
        }
        let Some(order_id) = record.order_id else {
            return Err(Internal::Broken("an idempotency record without an order".into()).into());
        };
        if let Some(order) = resume(app, order_id).await? {
            metrics::counter!(names::IDEMPOTENCY_REPLAYS, "key" => "idempotency_key").increment(1);
            return Ok(Followed::Order(Box::new(order)));
        }
        if Instant::now() >= wait_until {
            metrics::counter!(names::IDEMPOTENCY_CONFLICTS, "reason" => "in_progress").increment(1);
            return Err(FollowError::InProgress {
                retry_after: wait.max(Duration::from_secs(1)),
            });
        }
        tokio::time::sleep(POLL).await;
        record = store::load(&app.pool, account_id, key.as_str())
            .await?
            .ok_or_else(|| Internal::Broken("an idempotency record vanished".into()))?;
    }
}

/// Claims and drives `order_id` as far as its answer if no live instance
/// holds it; returns the order then. `None` while someone drives it.
pub async fn resume(app: &App, order_id: Uuid) -> Result<Option<OrderRecord>, Internal> {
    let current = order_store::load(&app.pool, order_id)
        .await?
        .ok_or_else(|| Internal::Broken(format!("order {order_id} vanished")))?;
    if !current.step.is_driven() {
        return Ok(Some(current));
    }
    let deadline = Instant::now() + app.settings.lifecycle.submit_deadline();
    Ok(app.engine.claim_and_drive(order_id, deadline).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_visible_ascii_and_unquoted() {
        assert_eq!(IdempotencyKey::parse("\"abc\"").unwrap().as_str(), "abc");
        assert_eq!(IdempotencyKey::parse("k 1").unwrap().as_str(), "k 1");
        assert!(IdempotencyKey::parse(" k-1").is_err());
        assert!(IdempotencyKey::parse("").is_err());
        // An empty pair is not a quoted key: it is the two-character key.
        assert_eq!(IdempotencyKey::parse("\"\"").unwrap().as_str(), "\"\"");
        assert!(IdempotencyKey::parse(&"k".repeat(KEY_MAX_LEN + 1)).is_err());
        assert!(IdempotencyKey::parse("a\u{0}b").is_err());
        assert!(IdempotencyKey::parse("é").is_err());
    }
}

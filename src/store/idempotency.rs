//! Idempotency-Key records: the key lock (a row per account and key, taken
//! in the accept transaction), the request fingerprint, and the stored
//! final response. Internal errors are never stored, so a retry resumes.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdempotencyRecord {
    pub request_fingerprint: String,
    pub order_id: Option<Uuid>,
    pub response_status: Option<i16>,
    pub response_body: Option<serde_json::Value>,
}

/// Result of trying to take a key.
#[derive(Debug, Clone)]
pub enum Taken {
    /// The key is ours; go on and create the order in this transaction.
    New,
    /// The key was used before (and has not expired).
    Existing(IdempotencyRecord),
}

/// Takes `key` for `account_id` in the caller's transaction, or returns the
/// record already there. An expired record is replaced.
pub async fn take(
    tx: &mut Transaction<'_, Postgres>,
    account_id: Uuid,
    key: &str,
    fingerprint: &str,
    ttl_secs: u64,
) -> Result<Taken, sqlx::Error> {
    // An expired key is as good as unused.
    sqlx::query(
        "DELETE FROM idempotency_keys
          WHERE account_id = $1 AND idempotency_key = $2 AND expires_at < now()",
    )
    .bind(account_id)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (account_id, idempotency_key, request_fingerprint, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4::float8))
         ON CONFLICT (account_id, idempotency_key) DO NOTHING",
    )
    .bind(account_id)
    .bind(key)
    .bind(fingerprint)
    .bind(ttl_secs as f64)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Taken::New);
    }
    let record = sqlx::query_as(
        "SELECT request_fingerprint, order_id, response_status, response_body
           FROM idempotency_keys WHERE account_id = $1 AND idempotency_key = $2",
    )
    .bind(account_id)
    .bind(key)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Taken::Existing(record))
}

pub async fn attach_order(
    tx: &mut Transaction<'_, Postgres>,
    account_id: Uuid,
    key: &str,
    order_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET order_id = $3 WHERE account_id = $1 AND idempotency_key = $2",
    )
    .bind(account_id)
    .bind(key)
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn load(
    pool: &PgPool,
    account_id: Uuid,
    key: &str,
) -> Result<Option<IdempotencyRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT request_fingerprint, order_id, response_status, response_body
           FROM idempotency_keys WHERE account_id = $1 AND idempotency_key = $2",
    )
    .bind(account_id)
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// Stores the final response; the first one stored wins.
pub async fn complete(
    pool: &PgPool,
    account_id: Uuid,
    key: &str,
    status: u16,
    body: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4
          WHERE account_id = $1 AND idempotency_key = $2 AND response_status IS NULL",
    )
    .bind(account_id)
    .bind(key)
    .bind(i16::try_from(status).unwrap_or(500))
    .bind(body)
    .execute(pool)
    .await?;
    Ok(())
}

/// Garbage collection of expired records; returns how many went.
pub async fn delete_expired(pool: &PgPool, limit: i64) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(
        "DELETE FROM idempotency_keys WHERE ctid IN (
             SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT $1)",
    )
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}

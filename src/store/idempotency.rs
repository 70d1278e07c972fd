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

const DELETE_EXPIRED_KEY: &str = "DELETE FROM idempotency_keys
      WHERE account_id = $1 AND idempotency_key = $2 AND expires_at < now()";

const INSERT_KEY: &str =
    "INSERT INTO idempotency_keys (account_id, idempotency_key, request_fingerprint, expires_at)
     VALUES ($1, $2, $3, now() + make_interval(secs => $4::float8))
     ON CONFLICT (account_id, idempotency_key) DO NOTHING";

const LOAD_KEY: &str = "SELECT request_fingerprint, order_id, response_status, response_body
       FROM idempotency_keys WHERE account_id = $1 AND idempotency_key = $2";

/// Takes `key` for `account_id` in the caller's transaction (`None`), or
/// returns the record already there. An expired record is replaced.
pub async fn take(
    tx: &mut Transaction<'_, Postgres>,
    account_id: Uuid,
    key: &str,
    fingerprint: &str,
    ttl_secs: u64,
) -> Result<Option<IdempotencyRecord>, sqlx::Error> {
    // An expired key is as good as unused.
    sqlx::query(DELETE_EXPIRED_KEY)
        .bind(account_id)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    let inserted = sqlx::query(INSERT_KEY)
        .bind(account_id)
        .bind(key)
        .bind(fingerprint)
        .bind(ttl_secs as f64)
        .execute(&mut **tx)
        .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let record = sqlx::query_as(LOAD_KEY)
        .bind(account_id)
        .bind(key)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Some(record))
}

const ATTACH_ORDER: &str =
    "UPDATE idempotency_keys SET order_id = $3 WHERE account_id = $1 AND idempotency_key = $2";

pub async fn attach_order(
    tx: &mut Transaction<'_, Postgres>,
    account_id: Uuid,
    key: &str,
    order_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(ATTACH_ORDER)
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
    sqlx::query_as(LOAD_KEY)
        .bind(account_id)
        .bind(key)
        .fetch_optional(pool)
        .await
}

const COMPLETE: &str = "UPDATE idempotency_keys SET response_status = $3, response_body = $4
      WHERE account_id = $1 AND idempotency_key = $2 AND response_status IS NULL";

/// Stores the final response; the first one stored wins.
pub async fn complete(
    pool: &PgPool,
    account_id: Uuid,
    key: &str,
    status: u16,
    body: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(COMPLETE)
        .bind(account_id)
        .bind(key)
        .bind(i16::try_from(status).unwrap_or(500))
        .bind(body)
        .execute(pool)
        .await?;
    Ok(())
}

const DELETE_EXPIRED: &str = "DELETE FROM idempotency_keys WHERE ctid IN (
         SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT $1)";

/// Garbage collection of expired records; returns how many went.
pub async fn delete_expired(pool: &PgPool, limit: i64) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(DELETE_EXPIRED)
        .bind(limit)
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected())
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("DELETE_EXPIRED_KEY", DELETE_EXPIRED_KEY),
        ("INSERT_KEY", INSERT_KEY),
        ("LOAD_KEY", LOAD_KEY),
        ("ATTACH_ORDER", ATTACH_ORDER),
        ("COMPLETE", COMPLETE),
        ("DELETE_EXPIRED", DELETE_EXPIRED),
    ]
}

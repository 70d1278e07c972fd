//! Trader accounts and their API keys. Secrets are 256-bit random values
//! stored as SHA-256 digests and compared in constant time.

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

/// A trader account as request handlers need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub account_id: Uuid,
    pub name: String,
    pub balances_account_id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// What `orderd account create` prints: the secret is shown once, here,
/// and never stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewCredentials {
    pub account_id: Uuid,
    pub key_id: String,
    pub secret_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAccountError {
    #[error("an account named {0:?} already exists")]
    NameTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

const INSERT_ACCOUNT: &str =
    "INSERT INTO accounts (account_id, name, balances_account_id) VALUES ($1, $2, $3)";

const INSERT_API_KEY: &str =
    "INSERT INTO api_keys (key_id, account_id, secret_sha256) VALUES ($1, $2, $3)";

/// Creates an account with one API key.
pub async fn create_account(
    pool: &PgPool,
    name: &str,
    balances_account_id: &str,
) -> Result<NewCredentials, CreateAccountError> {
    let account_id = Uuid::now_v7();
    let key_id = new_key_id();
    let secret_key = random_token(32);
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(INSERT_ACCOUNT)
        .bind(account_id)
        .bind(name)
        .bind(balances_account_id)
        .execute(&mut *tx)
        .await;
    if let Err(error) = inserted {
        if super::is_unique_violation(&error) {
            return Err(CreateAccountError::NameTaken(name.to_string()));
        }
        return Err(error.into());
    }
    sqlx::query(INSERT_API_KEY)
        .bind(&key_id)
        .bind(account_id)
        .bind(hash_secret(&secret_key))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(NewCredentials {
        account_id,
        key_id,
        secret_key,
    })
}

const FIND_ACCOUNT: &str = "SELECT account_id FROM accounts
      WHERE account_id::text = $1 OR name = $1 ORDER BY (account_id::text = $1) DESC LIMIT 1";

/// The account named `name_or_id` (its name, or its id).
pub async fn find_account(pool: &PgPool, name_or_id: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(FIND_ACCOUNT)
        .bind(name_or_id)
        .fetch_optional(pool)
        .await
}

/// A new API key of an account: the secret is shown once, here.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewKey {
    pub account_id: Uuid,
    pub key_id: String,
    pub secret_key: String,
}

fn new_key_id() -> String {
    // Alpaca-looking key ids: a prefix and 20 upper-case hex characters.
    format!("OD{}", random_token(10).to_ascii_uppercase())
}

/// Adds an API key to `account_id` (the others stay live: rotate by
/// adding the new key, moving clients to it, then revoking the old one).
pub async fn create_key(pool: &PgPool, account_id: Uuid) -> Result<NewKey, sqlx::Error> {
    let key_id = new_key_id();
    let secret_key = random_token(32);
    sqlx::query(INSERT_API_KEY)
        .bind(&key_id)
        .bind(account_id)
        .bind(hash_secret(&secret_key))
        .execute(pool)
        .await?;
    Ok(NewKey {
        account_id,
        key_id,
        secret_key,
    })
}

/// An API key as operators see it (never its secret).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct KeyRecord {
    pub key_id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

const LIST_KEYS: &str = "SELECT key_id, created_at, revoked_at FROM api_keys
      WHERE account_id = $1 ORDER BY created_at, key_id";

pub async fn list_keys(pool: &PgPool, account_id: Uuid) -> Result<Vec<KeyRecord>, sqlx::Error> {
    sqlx::query_as(LIST_KEYS)
        .bind(account_id)
        .fetch_all(pool)
        .await
}

const REVOKE_KEY: &str = "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
      WHERE key_id = $1 RETURNING key_id, created_at, revoked_at";

/// Revokes `key_id` (again: keeps the first revocation's time); `None`
/// when there is no such key. Every instance refuses it within
/// `http.auth_cache_ms`.
pub async fn revoke_key(pool: &PgPool, key_id: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
    sqlx::query_as(REVOKE_KEY)
        .bind(key_id)
        .fetch_optional(pool)
        .await
}

const AUTHENTICATE: &str =
    "SELECT k.secret_sha256, a.account_id, a.name, a.balances_account_id, a.created_at
           FROM api_keys k JOIN accounts a USING (account_id)
          WHERE k.key_id = $1 AND k.revoked_at IS NULL";

/// The account behind a key id and secret, if they match and the key is
/// not revoked.
pub async fn authenticate(
    pool: &PgPool,
    key_id: &str,
    secret: &str,
) -> Result<Option<Account>, sqlx::Error> {
    let row: Option<KeyRow> = sqlx::query_as(AUTHENTICATE)
        .bind(key_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.and_then(|row| {
        constant_time_eq(&row.secret_sha256, &hash_secret(secret)).then_some(Account {
            account_id: row.account_id,
            name: row.name,
            balances_account_id: row.balances_account_id,
            created_at: row.created_at,
        })
    }))
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    secret_sha256: Vec<u8>,
    account_id: Uuid,
    name: String,
    balances_account_id: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

const LIST_ACCOUNTS: &str =
    "SELECT account_id, name, balances_account_id, created_at FROM accounts ORDER BY created_at";

pub async fn list_accounts(pool: &PgPool) -> Result<Vec<Account>, sqlx::Error> {
    let rows: Vec<(Uuid, String, String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as(LIST_ACCOUNTS).fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(
            |(account_id, name, balances_account_id, created_at)| Account {
                account_id,
                name,
                balances_account_id,
                created_at,
            },
        )
        .collect())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const BALANCES_ACCOUNT_ID: &str = "SELECT balances_account_id FROM accounts WHERE account_id = $1";

/// The balances service's account of `account_id`, if the account exists.
pub async fn balances_account_id(
    pool: &PgPool,
    account_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(BALANCES_ACCOUNT_ID)
        .bind(account_id)
        .fetch_optional(pool)
        .await
}

const WITHOUT_SNAPSHOT: &str = "SELECT a.account_id, a.balances_account_id FROM accounts a
      WHERE a.account_id > $2
        AND NOT EXISTS (SELECT 1 FROM equity_snapshots s
                         WHERE s.account_id = a.account_id AND s.session_date = $1)
      ORDER BY a.account_id LIMIT $3";

/// A page of the accounts (id, balances account) with no equity snapshot
/// for the session of `session_date` yet, past `after` in id order.
pub async fn without_snapshot(
    pool: &PgPool,
    session_date: chrono::NaiveDate,
    after: Uuid,
    limit: i64,
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(WITHOUT_SNAPSHOT)
        .bind(session_date)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await
}

const INSERT_SNAPSHOT: &str = "INSERT INTO equity_snapshots (account_id, session_date, equity)
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

/// Records the account's equity at the close of `session_date` (the first
/// one recorded stays).
pub async fn insert_snapshot(
    pool: &PgPool,
    account_id: Uuid,
    session_date: chrono::NaiveDate,
    equity: rust_decimal::Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT_SNAPSHOT)
        .bind(account_id)
        .bind(session_date)
        .bind(equity)
        .execute(pool)
        .await
        .map(|_| ())
}

const LAST_EQUITY: &str = "SELECT equity FROM equity_snapshots WHERE account_id = $1
      ORDER BY session_date DESC LIMIT 1";

/// The account's equity at the latest close recorded.
pub async fn last_equity(
    pool: &PgPool,
    account_id: Uuid,
) -> Result<Option<rust_decimal::Decimal>, sqlx::Error> {
    sqlx::query_scalar(LAST_EQUITY)
        .bind(account_id)
        .fetch_optional(pool)
        .await
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("INSERT_ACCOUNT", INSERT_ACCOUNT),
        ("INSERT_API_KEY", INSERT_API_KEY),
        ("AUTHENTICATE", AUTHENTICATE),
        ("LIST_ACCOUNTS", LIST_ACCOUNTS),
        ("BALANCES_ACCOUNT_ID", BALANCES_ACCOUNT_ID),
        ("FIND_ACCOUNT", FIND_ACCOUNT),
        ("LIST_KEYS", LIST_KEYS),
        ("REVOKE_KEY", REVOKE_KEY),
        ("WITHOUT_SNAPSHOT", WITHOUT_SNAPSHOT),
        ("INSERT_SNAPSHOT", INSERT_SNAPSHOT),
        ("LAST_EQUITY", LAST_EQUITY),
    ]
}

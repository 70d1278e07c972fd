//! The one place a Postgres pool is built, and the migrations.
//!
//! sqlx 0.9.0 trap (sqlx issue #4393, fix unreleased): a `begin()` whose
//! future is dropped mid-way (a `timeout`, a `select!`, an aborted task, an
//! HTTP client that hung up) leaves the server-side transaction open, and the
//! pool hands that connection to the next borrower, whose writes then vanish
//! into a transaction nobody commits. Defences, all set here:
//! - nothing in orderd wraps `begin()` or a transaction in a client-side
//!   timeout; deadlines are the server's `statement_timeout`, `lock_timeout`
//!   and `idle_in_transaction_session_timeout`, set on every connection;
//! - `before_acquire` asks the server whether the connection is inside a
//!   transaction block and rolls it back if so, before anyone borrows it.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};

use crate::config::DatabaseSettings;

pub mod hosts;

/// Every migration in `migrations/`, compiled in.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Parses `database.url`.
pub fn connect_options_from_url(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    PgConnectOptions::from_str(url)
}

/// `options` with what every pooled connection of orderd's carries: the
/// server-side deadlines of `settings` and the application name.
pub fn decorate(options: PgConnectOptions, settings: &DatabaseSettings) -> PgConnectOptions {
    options
        .options([
            (
                "statement_timeout",
                settings.statement_timeout_ms.to_string(),
            ),
            ("lock_timeout", settings.lock_timeout_ms.to_string()),
            (
                "idle_in_transaction_session_timeout",
                settings.idle_in_transaction_session_timeout_ms.to_string(),
            ),
        ])
        .application_name("orderd")
        .log_statements(tracing::log::LevelFilter::Trace)
}

/// Builds the pool for `options` with the limits of `settings`.
/// Connects lazily: the first query opens the first connection.
pub fn build_pool(options: PgConnectOptions, settings: &DatabaseSettings) -> PgPool {
    let options = decorate(options, settings);
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout())
        // The rollback guard subsumes a ping.
        .test_before_acquire(false);
    let pool = if settings.rollback_guard {
        pool.before_acquire(|conn, _meta| Box::pin(roll_back_if_in_transaction(conn)))
    } else {
        pool
    };
    pool.connect_lazy_with(options)
}

/// Rolls back a transaction left open on a pooled connection.
///
/// `PgConnection`'s own transaction flag is not public, and the depth sqlx
/// tracks is exactly what the bug gets wrong, so ask the server: inside a
/// transaction block, the current statement started after the transaction
/// did. Outside one, every statement is its own transaction and the two
/// timestamps are equal. A connection whose transaction is aborted fails
/// this query; returning the error makes the pool close it.
///
/// The same round trip asks whether the server is in recovery: after a
/// failover, a connection to a host that became a standby is discarded
/// (`Ok(false)`), and the pool opens one to the primary it now points at.
async fn roll_back_if_in_transaction(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    // The simple query protocol on purpose: with it both timestamps come
    // from the same Query message outside a transaction block, whereas the
    // extended protocol stamps Parse and Execute separately.
    let row = sqlx::raw_sql(
        "SELECT transaction_timestamp() <> statement_timestamp(), pg_is_in_recovery()",
    )
    .fetch_one(&mut *conn)
    .await?;
    let in_transaction: bool = sqlx::Row::try_get(&row, 0)?;
    let in_recovery: bool = sqlx::Row::try_get(&row, 1)?;
    if in_recovery {
        tracing::warn!("a pooled connection's server is a standby now; discarding it");
        return Ok(false);
    }
    if in_transaction {
        tracing::error!(
            "pooled connection was inside an open transaction (cancelled begin?); rolling back"
        );
        conn.execute("ROLLBACK").await?;
    }
    Ok(true)
}

/// Creates `database` on the server `admin` points at, if it does not exist.
pub async fn create_database_if_missing(
    admin: &PgConnectOptions,
    database: &str,
) -> Result<(), sqlx::Error> {
    let mut conn = admin.connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // Identifiers cannot be bound; quote it.
        let sql = format!("CREATE DATABASE \"{}\"", database.replace('"', "\"\""));
        match conn.execute(sqlx::AssertSqlSafe(sql)).await {
            Ok(_) => {}
            // Another process created it between our check and now.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e),
        }
    }
    conn.close().await?;
    Ok(())
}

/// Applies pending migrations on a connection of their own, without the
/// application's server-side timeouts (a migration that validates a
/// constraint on a large table may take minutes; the pool's 5 s statement
/// timeout would fail it half-way, every start). Safe to run from several
/// instances at once: sqlx holds an advisory lock for the whole run, so
/// one instance migrates and the others wait for it.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    use sqlx::Connection;
    let options = pool.connect_options().as_ref().clone().options([
        ("statement_timeout", "0"),
        ("lock_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
    ]);
    let mut connection = sqlx::PgConnection::connect_with(&options).await?;
    let migrated = MIGRATOR.run(&mut connection).await;
    let _ = connection.close().await;
    migrated
}

/// The schema is at the version this binary was built with.
pub async fn is_migrated(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .or_else(|e| match &e {
                // No migrations table yet: not migrated.
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(None),
                _ => Err(e),
            })?;
    Ok(applied.unwrap_or(0) >= latest)
}

/// Whether `error` says the database cannot be reached now (a connection
/// refused, dropped or timed out, the pool exhausted, the server shutting
/// down or starting up), as opposed to a statement that failed: the
/// caller may answer "unavailable, retry" instead of "internal error".
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P0x: the server is shutting
            // down, crashed, or cannot take connections yet; 25006: a
            // standby (a failover in progress) refused a write.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "25006")
        }),
        _ => false,
    }
}

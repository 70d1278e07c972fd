//! Postgres persistence: every query orderd runs lives under this module.
//! Functions take a pool or an open transaction and never call out of the
//! process, so no external call can end up inside a transaction here.

pub mod accounts;
pub mod fills;
pub mod idempotency;
pub mod operator;
pub mod orders;
pub mod reconcile;
pub mod trade_updates;

/// Whether a sqlx error is a unique-constraint violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "23505")
}

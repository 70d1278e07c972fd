//! Venue news orderd refused to apply — numbers out of bounds, fills that
//! would exceed the order, a status it does not know, an exec id another
//! order owns — kept with the reason for operators (`orderd orders show`).
//! Recording one is an alert (logged at error, counted in
//! `orderd_reports_quarantined_total`); the task that found it goes on.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::ids::{ExecId, VenueClientOrderId};

/// A refused report.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Quarantined {
    pub quarantine_id: i64,
    pub received_at: DateTime<Utc>,
    pub source: String,
    pub venue_client_order_id: Option<VenueClientOrderId>,
    pub order_id: Option<Uuid>,
    pub exec_id: Option<ExecId>,
    pub reason: String,
    pub report: serde_json::Value,
}

const INSERT: &str = "INSERT INTO quarantined_reports
         (source, venue_client_order_id, order_id, exec_id, reason, report)
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Keeps `report` with why it was refused.
pub async fn quarantine(
    pool: &PgPool,
    source: &str,
    venue_client_order_id: Option<&VenueClientOrderId>,
    order_id: Option<Uuid>,
    exec_id: Option<&ExecId>,
    reason: &str,
    report: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT)
        .bind(source)
        .bind(venue_client_order_id)
        .bind(order_id)
        .bind(exec_id)
        .bind(reason)
        .bind(report)
        .execute(pool)
        .await?;
    Ok(())
}

const OF_ORDER: &str = "SELECT quarantine_id, received_at, source, venue_client_order_id, order_id,
            exec_id, reason, report
       FROM quarantined_reports
      WHERE venue_client_order_id = $1 OR order_id = $2
      ORDER BY quarantine_id LIMIT 100";

/// What was refused about one order (at most 100).
pub async fn of_order(
    pool: &PgPool,
    venue_client_order_id: &VenueClientOrderId,
    order_id: Uuid,
) -> Result<Vec<Quarantined>, sqlx::Error> {
    sqlx::query_as(OF_ORDER)
        .bind(venue_client_order_id)
        .bind(order_id)
        .fetch_all(pool)
        .await
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![("INSERT", INSERT), ("OF_ORDER", OF_ORDER)]
}

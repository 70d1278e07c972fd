//! Rows this binary can read, during a rolling upgrade.
//!
//! While instances of two versions share the database, the newer one may
//! write values the older has no name for (a new status, step state or
//! order type). Such a row is the newer instance's business:
//!
//! - a **claim** takes only rows whose every lifecycle value is a spelling
//!   this binary knows, and whose recovery encoding is not newer than its
//!   own ([`drivable_order`], rendered from the domain's `ALL` lists like
//!   the other sets in `store::types`); an unreadable row is never leased
//!   here, so it waits for an instance that can drive it;
//! - **work scans** (reconciliation, catch-up) filter the same way, so a
//!   batch's `LIMIT` and a page's keyset are spent on rows this instance
//!   can act on;
//! - **reads shown to people** (a trader's order list, the operator's
//!   `orders list`) decode row by row: a row that fails to decode is
//!   skipped, logged with its id and counted in
//!   `orderd_rows_unreadable_total{query}`, and the others are returned.
//!
//! What SQL cannot see (a JSON column of a newer shape) is caught by the
//! row-by-row decode behind every filter too; a claim releases the lease
//! of a row it then cannot decode.

use std::sync::LazyLock;

use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Row};
use uuid::Uuid;

use super::types::sql_list;
use crate::domain::TextEnum;
use crate::domain::fills::SettlementState;
use crate::domain::lifecycle::{Status, Step, StepState, VenueStatus};
use crate::domain::order::{OrderType, Side, TimeInForce};

/// SQL condition: every lifecycle column of the `orders` row (qualified
/// by `alias`, e.g. `"o."`, or `""`) holds a spelling this binary knows.
pub(crate) fn known_order_spellings(alias: &str) -> String {
    fn known<T: TextEnum>(alias: &str, column: &str) -> String {
        format!("{alias}{column} IN {}", sql_list(T::ALL))
    }
    fn known_or_null<T: TextEnum>(alias: &str, column: &str) -> String {
        format!(
            "({alias}{column} IS NULL OR {alias}{column} IN {})",
            sql_list(T::ALL)
        )
    }
    [
        known::<Status>(alias, "status"),
        known::<Step>(alias, "step"),
        known::<StepState>(alias, "step_state"),
        known::<Side>(alias, "side"),
        known::<OrderType>(alias, "order_type"),
        known::<TimeInForce>(alias, "time_in_force"),
        known_or_null::<VenueStatus>(alias, "venue_status"),
        known_or_null::<Step>(alias, "parked_step"),
    ]
    .join(" AND ")
}

/// SQL condition: the `orders` row (unqualified) is one this binary can
/// read and drive: known spellings, and a recovery encoding no newer than
/// `recovery_version`, its own (a newer binary that changes what a step
/// means bumps it).
pub(crate) fn drivable_order(recovery_version: i16) -> String {
    format!(
        "{} AND recovery_version <= {recovery_version}",
        known_order_spellings("")
    )
}

/// The `orders` row (unqualified) is one this binary can read.
pub(crate) static KNOWN_ORDER: LazyLock<String> = LazyLock::new(|| known_order_spellings(""));

/// The `orders` row (as `o`) is one this binary can read.
pub(crate) static KNOWN_ORDER_O: LazyLock<String> = LazyLock::new(|| known_order_spellings("o."));

/// Every column [`OrderRecord`](super::orders::OrderRecord) reads, by name. Statements return these,
/// never `*`: sqlx prepares each statement once per connection, and a
/// statement prepared with `*` fails with `0A000 cached plan must not
/// change result type` on every pooled connection once a migration adds a
/// column to the table, so a running instance of this version would fail
/// every order statement the moment a newer version migrates (what
/// `orderd db upgrade-drill` shows of the previous release, 3dd1c1b).
const ORDER_COLUMN_NAMES: [&str; 53] = [
    "order_id",
    "account_id",
    "client_order_id",
    "venue_client_order_id",
    "request_fingerprint",
    "symbol",
    "side",
    "order_type",
    "time_in_force",
    "qty",
    "limit_price",
    "status",
    "step",
    "step_state",
    "recovery_version",
    "attempts",
    "next_attempt_at",
    "lease_owner",
    "lease_expires_at",
    "hold_asset",
    "hold_amount",
    "hold_rate",
    "hold_id",
    "venue_order_id",
    "filled_qty",
    "filled_avg_price",
    "reject_reason",
    "created_at",
    "updated_at",
    "submitted_at",
    "filled_at",
    "canceled_at",
    "expired_at",
    "failed_at",
    "version",
    "cancel_requested_at",
    "venue_status",
    "venue_cum_qty",
    "lease_token",
    "placement_sent_at",
    "placement_last_sent_at",
    "expires_at",
    "parked_step",
    "stop_price",
    "trail_price",
    "trail_percent",
    "notional",
    "replaces",
    "replaced_by",
    "carried_qty",
    "qty_confirmed",
    "hold_raise",
    "replaced_at",
];

/// [`ORDER_COLUMN_NAMES`] as a select list, each qualified by `alias`
/// (`""` or `"o."`).
pub(crate) fn order_columns(alias: &str) -> String {
    ORDER_COLUMN_NAMES
        .iter()
        .map(|column| format!("{alias}{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns an order row is read with, unqualified.
pub(crate) static ORDER_COLUMNS: LazyLock<String> = LazyLock::new(|| order_columns(""));

/// The columns an order row is read with, of `orders o`.
pub(crate) static ORDER_COLUMNS_O: LazyLock<String> = LazyLock::new(|| order_columns("o."));

/// `(...)`: every settlement state this binary knows, in SQL.
pub(crate) static KNOWN_SETTLEMENT_STATES: LazyLock<String> =
    LazyLock::new(|| sql_list(SettlementState::ALL));

/// Counts and logs a row `query` could not decode.
pub(crate) fn unreadable(query: &'static str, row: &PgRow, error: &sqlx::Error) {
    metrics::counter!(crate::metrics::names::ROWS_UNREADABLE, "query" => query).increment(1);
    let order_id: Option<Uuid> = row.try_get("order_id").ok();
    tracing::warn!(
        query,
        order_id = order_id.map(tracing::field::display),
        %error,
        "a row this version cannot read (written by a newer one?) is skipped"
    );
}

/// Decodes `rows` one by one: a row that fails is skipped (counted and
/// logged, see [`unreadable`]) and the rest are returned in order.
pub(crate) fn decode_each<T>(query: &'static str, rows: Vec<PgRow>) -> Vec<T>
where
    T: for<'r> FromRow<'r, PgRow>,
{
    rows.iter()
        .filter_map(|row| match T::from_row(row) {
            Ok(decoded) => Some(decoded),
            Err(error) => {
                unreadable(query, row, &error);
                None
            }
        })
        .collect()
}

const RELEASE_LEASES: &str =
    "UPDATE orders o SET lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL
       FROM unnest($1::uuid[], $2::int8[]) AS r(order_id, lease_token)
      WHERE o.order_id = r.order_id AND o.lease_token = r.lease_token";

/// Decodes the rows a claim (`UPDATE orders … RETURNING`) took. A row that
/// fails to decode costs only itself: counted, logged, and its lease
/// given back at once (by the token the claim wrote), so it is not held
/// until the lease expires, claim after claim. Returns the decoded rows,
/// and the first decode error if any row failed.
pub(crate) async fn decode_claims<T>(
    pool: &PgPool,
    query: &'static str,
    rows: Vec<PgRow>,
) -> Result<(Vec<T>, Option<sqlx::Error>), sqlx::Error>
where
    T: for<'r> FromRow<'r, PgRow>,
{
    let mut claimed = Vec::with_capacity(rows.len());
    let (mut ids, mut tokens) = (Vec::new(), Vec::new());
    let mut first_error = None;
    for row in &rows {
        match T::from_row(row) {
            Ok(decoded) => claimed.push(decoded),
            Err(error) => {
                unreadable(query, row, &error);
                ids.push(row.try_get::<Uuid, _>("order_id")?);
                tokens.push(row.try_get::<Option<i64>, _>("lease_token")?);
                first_error.get_or_insert(error);
            }
        }
    }
    if !ids.is_empty() {
        sqlx::query(RELEASE_LEASES)
            .bind(ids)
            .bind(tokens)
            .execute(pool)
            .await?;
    }
    Ok((claimed, first_error))
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![("RELEASE_LEASES", RELEASE_LEASES)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_spelling_is_rendered_and_nothing_else() {
        let sql = known_order_spellings("o.");
        for status in Status::ALL {
            assert!(sql.contains(&format!("'{status}'")), "{sql}");
        }
        for step_state in StepState::ALL {
            assert!(sql.contains(&format!("'{step_state}'")), "{sql}");
        }
        for order_type in OrderType::ALL {
            assert!(sql.contains(&format!("'{order_type}'")), "{sql}");
        }
        assert!(sql.contains("o.status IN ('pending_new'"), "{sql}");
        assert!(sql.contains("(o.parked_step IS NULL OR o.parked_step IN"));
        assert!(!sql.contains("'held'"));
        assert!(order_columns("o.").starts_with("o.order_id, o.account_id"));
        assert!(drivable_order(2).ends_with("AND recovery_version <= 2"));
    }
}

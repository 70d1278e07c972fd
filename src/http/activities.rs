//! `/v2/account/activities`: the account's history in Alpaca's shapes.
//! orderd's history is its fills (FILL activities); every other type
//! Alpaca names (dividends, transfers, fees, ...) is one orderd never
//! records, so asking for it finds nothing rather than an error.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Trader;
use super::docs::ErrorBody;
use super::error::ApiError;
use super::orders::{parse_ascending, parse_time};
use super::state::AppState;
use crate::app::queries;
use crate::domain::ids::ExecId;
use crate::store::activities::{ActivityPage, FillActivity};

/// Every activity type of Alpaca's Trading API.
pub const ACTIVITY_TYPES: [&str; 39] = [
    "FILL", "TRANS", "MISC", "ACATC", "ACATS", "CFEE", "CGD", "CSD", "CSW", "DIV", "DIVCGL",
    "DIVCGS", "DIVFEE", "DIVFT", "DIVNRA", "DIVROC", "DIVTW", "DIVTXEX", "FEE", "INT", "INTNRA",
    "INTTW", "JNL", "JNLC", "JNLS", "MA", "NC", "OPASN", "OPCA", "OPCSH", "OPEXC", "OPEXP",
    "OPTRD", "PTC", "PTR", "REORG", "SPIN", "SPLIT", "FOPT",
];

/// The activity categories.
pub const CATEGORIES: [&str; 2] = ["trade_activity", "non_trade_activity"];

/// Page size: default and maximum (Alpaca's).
pub const PAGE_SIZE_MAX: i64 = 100;

const FILL: &str = "FILL";

/// Alpaca's trade activity: one execution.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = TradingActivities)]
pub struct TradeActivity {
    /// `<transaction time in microseconds since the epoch, 16 digits>::<exec
    /// id>`; the `page_token` that continues after it.
    pub id: String,
    /// The account's id (alpaca-py's activity model requires it).
    pub account_id: Uuid,
    pub activity_type: String,
    pub transaction_time: DateTime<Utc>,
    /// fill or partial_fill (whether it completed its order).
    #[serde(rename = "type")]
    pub fill_type: String,
    pub price: String,
    pub qty: String,
    /// buy or sell.
    pub side: String,
    pub symbol: String,
    pub leaves_qty: String,
    pub order_id: Uuid,
    pub cum_qty: String,
    /// The order's status right after this fill.
    pub order_status: String,
}

/// Digits of an id's time part (microseconds since the epoch, zero
/// padded): up to the year 2286.
const ID_TIME_DIGITS: usize = 16;

fn activity_id(time: DateTime<Utc>, exec_id: &ExecId) -> String {
    format!(
        "{:0width$}::{}",
        time.timestamp_micros(),
        exec_id,
        width = ID_TIME_DIGITS
    )
}

/// What a `page_token` matches: an activity id this endpoint gives.
pub fn page_token_pattern() -> String {
    format!("^[0-9]{{1,{ID_TIME_DIGITS}}}::[\\x21-\\x7e]+$")
}

/// A `page_token`: an activity id this endpoint gave.
fn parse_page_token(token: &str) -> Result<(DateTime<Utc>, ExecId), ApiError> {
    let invalid = || ApiError::validation(format!("page_token is not an activity id: {token:?}"));
    let (time, exec_id) = token.split_once("::").ok_or_else(invalid)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(time)
        || time.len() > ID_TIME_DIGITS
        || exec_id.is_empty()
        || !exec_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid());
    }
    let micros: i64 = time.parse().map_err(|_| invalid())?;
    let time = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    Ok((time, ExecId::new(exec_id)))
}

fn activity(account_id: Uuid, fill: FillActivity) -> TradeActivity {
    // A notional order's quantity is known once it is filled: until then
    // every fill of it is partial, and what is left is not a quantity.
    let leaves = fill
        .order_qty
        .map(|qty| (qty - fill.cum_qty).max(rust_decimal::Decimal::ZERO));
    let complete = leaves.is_some_and(|l| l.is_zero());
    let leaves = leaves.unwrap_or_default();
    TradeActivity {
        id: activity_id(fill.transact_time, &fill.exec_id),
        account_id,
        activity_type: FILL.to_string(),
        transaction_time: fill.transact_time,
        fill_type: if complete { "fill" } else { "partial_fill" }.to_string(),
        price: fill.price.normalize().to_string(),
        qty: fill.qty.normalize().to_string(),
        side: fill.side.as_str().to_string(),
        symbol: fill.symbol,
        leaves_qty: leaves.normalize().to_string(),
        order_id: fill.order_id,
        cum_qty: fill.cum_qty.normalize().to_string(),
        order_status: if complete {
            "filled"
        } else {
            "partially_filled"
        }
        .to_string(),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivitiesQuery {
    /// Comma-separated activity types (FILL is the one orderd records).
    activity_types: Option<String>,
    /// trade_activity or non_trade_activity (with activity_types: those
    /// of the listed types in the category).
    category: Option<String>,
    /// Only activities of this day (UTC), or from this time for one day.
    date: Option<String>,
    /// Only activities before this time or date.
    until: Option<String>,
    /// Only activities at or after this time or date.
    after: Option<String>,
    /// desc (default) or asc by transaction time.
    direction: Option<String>,
    /// 1 to 100 (default 100).
    page_size: Option<String>,
    /// The id of the last activity of the previous page.
    page_token: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivitiesByTypeQuery {
    /// Only activities of this day (UTC), or from this time for one day.
    date: Option<String>,
    /// Only activities before this time or date.
    until: Option<String>,
    /// Only activities at or after this time or date.
    after: Option<String>,
    /// desc (default) or asc by transaction time.
    direction: Option<String>,
    /// 1 to 100 (default 100).
    page_size: Option<String>,
    /// The id of the last activity of the previous page.
    page_token: Option<String>,
}

fn known_type(text: &str) -> Result<&str, ApiError> {
    ACTIVITY_TYPES
        .iter()
        .find(|t| **t == text)
        .copied()
        .ok_or_else(|| {
            ApiError::validation(format!(
                "activity type must be one of {}, got {text:?}",
                ACTIVITY_TYPES.join(", ")
            ))
        })
}

/// Whether the request asks for fills at all.
fn wants_fills(activity_types: Option<&str>, category: Option<&str>) -> Result<bool, ApiError> {
    if let Some(category) = category
        && !CATEGORIES.contains(&category)
    {
        return Err(ApiError::validation(format!(
            "category must be trade_activity or non_trade_activity, got {category:?}"
        )));
    }
    // Both given: the activities of the listed types in the category.
    let by_category = category.is_none_or(|category| category == "trade_activity");
    let by_types = match activity_types {
        Some(types) => {
            let mut fills = false;
            for text in types.split(',') {
                fills |= known_type(text)? == FILL;
            }
            fills
        }
        None => true,
    };
    Ok(by_category && by_types)
}

struct Window<'a> {
    date: Option<&'a str>,
    until: Option<&'a str>,
    after: Option<&'a str>,
    direction: Option<&'a str>,
    page_size: Option<&'a str>,
    page_token: Option<&'a str>,
}

fn page(window: Window<'_>) -> Result<ActivityPage, ApiError> {
    let mut after = window.after.map(|t| parse_time("after", t)).transpose()?;
    let mut until = window.until.map(|t| parse_time("until", t)).transpose()?;
    if let Some(date) = window.date {
        let from = parse_time("date", date)?;
        after = Some(after.map_or(from, |a| a.max(from)));
        let to = from + Duration::days(1);
        until = Some(until.map_or(to, |u| u.min(to)));
    }
    let limit = match window.page_size {
        None => PAGE_SIZE_MAX,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=PAGE_SIZE_MAX).contains(l))
            .ok_or_else(|| {
                ApiError::validation(format!("page_size must be 1 to {PAGE_SIZE_MAX}"))
            })?,
    };
    Ok(ActivityPage {
        after,
        until,
        past: window.page_token.map(parse_page_token).transpose()?,
        ascending: parse_ascending(window.direction)?,
        limit,
    })
}

/// The paging parameters both queries share.
macro_rules! window_of {
    ($query:expr) => {
        Window {
            date: $query.date.as_deref(),
            until: $query.until.as_deref(),
            after: $query.after.as_deref(),
            direction: $query.direction.as_deref(),
            page_size: $query.page_size.as_deref(),
            page_token: $query.page_token.as_deref(),
        }
    };
}

/// The page of fills `window` asks for (validated whether or not fills are
/// `wanted`), or none.
async fn answer(
    state: &AppState,
    account_id: Uuid,
    wanted: bool,
    window: Window<'_>,
) -> Result<Json<Vec<TradeActivity>>, ApiError> {
    let page = page(window)?;
    if !wanted {
        return Ok(Json(Vec::new()));
    }
    fills(state, account_id, page).await
}

async fn fills(
    state: &AppState,
    account_id: Uuid,
    page: ActivityPage,
) -> Result<Json<Vec<TradeActivity>>, ApiError> {
    let fills = queries::fill_activities(&state.app, account_id, &page).await?;
    Ok(Json(
        fills
            .into_iter()
            .map(|fill| activity(account_id, fill))
            .collect(),
    ))
}

/// `GET /v2/account/activities`.
#[utoipa::path(get, path = "/v2/account/activities", tag = "account", operation_id = "getAccountActivities",
    params(ActivitiesQuery),
    responses((status = 200, description = "The account's activities (orderd records FILL)", body = Vec<TradeActivity>),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn activities(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Query(query): Query<ActivitiesQuery>,
) -> Result<Json<Vec<TradeActivity>>, ApiError> {
    let wanted = wants_fills(query.activity_types.as_deref(), query.category.as_deref())?;
    answer(&state, account.account_id, wanted, window_of!(query)).await
}

/// `GET /v2/account/activities/{activity_type}`.
#[utoipa::path(get, path = "/v2/account/activities/{activity_type}", tag = "account", operation_id = "getAccountActivitiesByActivityType",
    params(("activity_type" = String, Path, description = "One of Alpaca's activity types (orderd records FILL)"), ActivitiesByTypeQuery),
    responses((status = 200, body = Vec<TradeActivity>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn activities_of_type(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Path(activity_type): Path<String>,
    Query(query): Query<ActivitiesByTypeQuery>,
) -> Result<Json<Vec<TradeActivity>>, ApiError> {
    let wanted = known_type(&activity_type)? == FILL;
    answer(&state, account.account_id, wanted, window_of!(query)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_page_tokens() {
        let time = DateTime::parse_from_rfc3339("2026-11-30T15:04:05.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let exec = ExecId::new("E-17");
        let id = activity_id(time, &exec);
        assert_eq!(id, "1796051045123456::E-17");
        assert_eq!(parse_page_token(&id).unwrap(), (time, exec));
        let pattern = regex_automata::meta::Regex::new(&page_token_pattern()).unwrap();
        assert!(pattern.is_match(&id));
        // Whatever the pattern admits parses, and nothing else does.
        assert!(pattern.is_match("9999999999999999::x"));
        assert!(parse_page_token("9999999999999999::x").is_ok());
        for bad in [
            "",
            "::E",
            "2026::",
            "20261130150405123456::E",
            "1x::E",
            "1:: E",
            "1::\u{19a32}",
        ] {
            assert!(!pattern.is_match(bad), "{bad:?}");
            assert!(parse_page_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn types_and_categories() {
        assert!(wants_fills(None, None).unwrap());
        assert!(wants_fills(Some("FILL,DIV"), None).unwrap());
        assert!(!wants_fills(Some("DIV"), None).unwrap());
        assert!(wants_fills(Some("fill"), None).is_err());
        assert!(wants_fills(Some("FILL"), Some("trade_activity")).unwrap());
        assert!(!wants_fills(Some("FILL"), Some("non_trade_activity")).unwrap());
        assert!(!wants_fills(None, Some("non_trade_activity")).unwrap());
        assert!(wants_fills(None, Some("trades")).is_err());
    }
}

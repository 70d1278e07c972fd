//! `/v2/assets`, `/v2/clock`, `/v2/calendar`: the venue's instruments and
//! trading day in Alpaca's shapes, answered from the reference data every
//! instance holds in memory (synced by the `reference` job; never a call
//! to the venue per request).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Trader;
use super::docs::ErrorBody;
use super::error::ApiError;
use super::state::AppState;
use crate::domain::asset::{Asset, AssetStatus};
use crate::domain::session::SessionDay;

/// Alpaca's asset object.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Assets)]
pub struct AlpacaAsset {
    /// orderd's stable id of the symbol (orders and positions show it).
    pub id: uuid::Uuid,
    /// Always `us_equity`.
    pub class: String,
    pub exchange: String,
    pub symbol: String,
    pub name: String,
    /// active or inactive.
    pub status: String,
    pub tradable: bool,
    pub marginable: bool,
    pub shortable: bool,
    pub easy_to_borrow: bool,
    /// easy_to_borrow or hard_to_borrow.
    pub borrow_status: String,
    pub fractionable: bool,
    /// The smallest order, in shares.
    pub min_order_size: String,
    /// The lot: quantities are multiples of it.
    pub min_trade_increment: String,
    /// The tick at or above the tick threshold ($1).
    pub price_increment: String,
    /// Beyond Alpaca: trading in it is halted at the venue (orders are
    /// taken and cancelable; nothing executes until it resumes).
    pub halted: bool,
    pub attributes: Vec<String>,
}

impl From<&Asset> for AlpacaAsset {
    fn from(a: &Asset) -> Self {
        Self {
            id: a.asset_id,
            class: a.asset_class.clone(),
            exchange: a.exchange.clone(),
            symbol: a.symbol.clone(),
            name: a.name.clone(),
            status: a.status.to_string(),
            tradable: a.tradable,
            marginable: a.marginable,
            shortable: a.shortable,
            easy_to_borrow: a.easy_to_borrow,
            borrow_status: if a.easy_to_borrow {
                "easy_to_borrow"
            } else {
                "hard_to_borrow"
            }
            .to_string(),
            fractionable: a.fractionable,
            min_order_size: a.min_qty.normalize().to_string(),
            min_trade_increment: a.lot_size.normalize().to_string(),
            price_increment: a.tick_size.normalize().to_string(),
            halted: a.halted,
            attributes: Vec::new(),
        }
    }
}

/// The exchanges an asset may list on (Alpaca's list).
pub const EXCHANGES: [&str; 7] = ["AMEX", "ARCA", "BATS", "NYSE", "NASDAQ", "NYSEARCA", "OTC"];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetsQuery {
    /// active or inactive (all when absent).
    status: Option<String>,
    /// us_equity (the only class orderd trades).
    asset_class: Option<String>,
    /// One of Alpaca's exchanges.
    exchange: Option<String>,
}

/// `GET /v2/assets`.
#[utoipa::path(get, path = "/v2/assets", tag = "assets", operation_id = "get-v2-assets", params(AssetsQuery),
    responses((status = 200, body = Vec<AlpacaAsset>), (status = 422, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn assets(
    State(state): State<Arc<AppState>>,
    Trader(_): Trader,
    Query(query): Query<AssetsQuery>,
) -> Result<Json<Vec<AlpacaAsset>>, ApiError> {
    let status = query
        .status
        .as_deref()
        .map(|s| {
            AssetStatus::parse(s).ok_or_else(|| {
                ApiError::validation(format!("status must be active or inactive, got {s:?}"))
            })
        })
        .transpose()?;
    if let Some(class) = query.asset_class.as_deref()
        && class != "us_equity"
    {
        return Err(ApiError::validation(format!(
            "asset_class must be us_equity, got {class:?}"
        )));
    }
    if let Some(exchange) = query.exchange.as_deref()
        && !EXCHANGES.contains(&exchange)
    {
        return Err(ApiError::validation(format!(
            "exchange must be one of {}, got {exchange:?}",
            EXCHANGES.join(", ")
        )));
    }
    let reference = state.app.reference.snapshot();
    Ok(Json(
        reference
            .assets()
            .iter()
            .filter(|a| status.is_none_or(|s| a.status == s))
            .filter(|a| query.exchange.as_deref().is_none_or(|e| a.exchange == e))
            .map(AlpacaAsset::from)
            .collect(),
    ))
}

/// `GET /v2/assets/{symbol_or_asset_id}`.
#[utoipa::path(get, path = "/v2/assets/{symbol_or_asset_id}", tag = "assets", operation_id = "get-v2-assets-symbol_or_asset_id",
    params(("symbol_or_asset_id" = String, Path, description = "A symbol, or orderd's asset id")),
    responses((status = 200, body = AlpacaAsset), (status = 404, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn asset(
    State(state): State<Arc<AppState>>,
    Trader(_): Trader,
    Path(symbol_or_asset_id): Path<String>,
) -> Result<Json<AlpacaAsset>, ApiError> {
    let reference = state.app.reference.snapshot();
    reference
        .asset(&symbol_or_asset_id)
        .map(|a| Json(AlpacaAsset::from(a)))
        .ok_or_else(|| ApiError::not_found(format!("asset not found for {symbol_or_asset_id}")))
}

/// Alpaca's clock.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Clock)]
pub struct AlpacaClock {
    /// Now, in the exchange's timezone.
    pub timestamp: DateTime<chrono::FixedOffset>,
    /// Continuous trading is on.
    pub is_open: bool,
    pub next_open: DateTime<chrono::FixedOffset>,
    /// The close of the session in progress, or of the next one.
    pub next_close: DateTime<chrono::FixedOffset>,
}

fn local(at: DateTime<Utc>, tz: Tz) -> DateTime<chrono::FixedOffset> {
    at.with_timezone(&tz).fixed_offset()
}

/// `GET /v2/clock`.
#[utoipa::path(get, path = "/v2/clock", tag = "assets", operation_id = "LegacyClock",
    responses((status = 200, body = AlpacaClock)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn clock(State(state): State<Arc<AppState>>, Trader(_): Trader) -> Json<AlpacaClock> {
    let reference = state.app.reference.snapshot();
    let tz = reference.calendar.rules().timezone;
    let clock = reference.calendar.clock(Utc::now());
    Json(AlpacaClock {
        timestamp: local(clock.timestamp, tz),
        is_open: clock.is_open,
        next_open: local(clock.next_open, tz),
        next_close: local(clock.next_close, tz),
    })
}

/// One day of Alpaca's calendar.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CalendarDay)]
pub struct AlpacaCalendarDay {
    pub date: NaiveDate,
    /// When trading opens, local `HH:MM`.
    pub open: String,
    /// When it closes, local `HH:MM` (13:00 on an early close).
    pub close: String,
    /// The session's start (pre-open), local `HHMM`.
    pub session_open: String,
    /// The session's end, local `HHMM` (orderd has no extended hours: the
    /// close).
    pub session_close: String,
    /// The trade date's settlement date (T+1: the next session's date).
    pub settlement_date: NaiveDate,
    /// Beyond Alpaca: the open and close as instants (an accelerated
    /// venue's days last seconds).
    pub open_at: DateTime<Utc>,
    pub close_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CalendarQuery {
    /// The first date (a date, or a timestamp whose date counts).
    start: Option<String>,
    /// The last date.
    end: Option<String>,
    /// TRADING (default): start and end select trade dates; SETTLEMENT:
    /// settlement dates.
    date_type: Option<String>,
}

fn calendar_date(name: &str, text: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| DateTime::parse_from_rfc3339(text).map(|t| t.date_naive()))
        .map_err(|_| {
            ApiError::validation(format!(
                "{name} must be a date (YYYY-MM-DD) or an RFC 3339 timestamp"
            ))
        })
}

/// `GET /v2/calendar`.
#[utoipa::path(get, path = "/v2/calendar", tag = "assets", operation_id = "LegacyCalendar", params(CalendarQuery),
    responses((status = 200, body = Vec<AlpacaCalendarDay>), (status = 422, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn calendar(
    State(state): State<Arc<AppState>>,
    Trader(_): Trader,
    Query(query): Query<CalendarQuery>,
) -> Result<Json<Vec<AlpacaCalendarDay>>, ApiError> {
    let start = query
        .start
        .as_deref()
        .map(|t| calendar_date("start", t))
        .transpose()?
        .unwrap_or(NaiveDate::MIN);
    let end = query
        .end
        .as_deref()
        .map(|t| calendar_date("end", t))
        .transpose()?
        .unwrap_or(NaiveDate::MAX);
    let by_settlement = match query.date_type.as_deref() {
        None | Some("TRADING") => false,
        Some("SETTLEMENT") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "date_type must be TRADING or SETTLEMENT, got {other:?}"
            )));
        }
    };
    let reference = state.app.reference.snapshot();
    let tz = reference.calendar.rules().timezone;
    let days = reference.calendar.days();
    let hm = |at: DateTime<Utc>, format: &str| at.with_timezone(&tz).format(format).to_string();
    let rendered = days
        .iter()
        .enumerate()
        .map(|(i, day): (usize, &SessionDay)| {
            // T+1; past the calendar's end, the next weekday.
            let settlement_date = days.get(i + 1).map(|d| d.date).unwrap_or_else(|| {
                let mut next = day.date.succ_opt().unwrap_or(day.date);
                while matches!(
                    chrono::Datelike::weekday(&next),
                    chrono::Weekday::Sat | chrono::Weekday::Sun
                ) {
                    next = next.succ_opt().unwrap_or(next);
                }
                next
            });
            AlpacaCalendarDay {
                date: day.date,
                open: hm(day.open, "%H:%M"),
                close: hm(day.close, "%H:%M"),
                session_open: hm(day.pre_open, "%H%M"),
                session_close: hm(day.close, "%H%M"),
                settlement_date,
                open_at: day.open,
                close_at: day.close,
            }
        })
        .filter(|d| {
            let date = if by_settlement {
                d.settlement_date
            } else {
                d.date
            };
            start <= date && date <= end
        })
        .collect();
    Ok(Json(rendered))
}

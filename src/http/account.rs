//! `/v2/account` and `/v2/positions`: the trader's cash and positions come
//! from the balances service (the ledger of record), prices from the venue,
//! average entry prices from the fills orderd recorded.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use super::docs::ErrorBody;

/// Alpaca's account object (decimals as strings).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Account)]
pub struct AlpacaAccount {
    pub id: uuid::Uuid,
    pub account_number: String,
    pub status: String,
    pub crypto_status: String,
    pub currency: String,
    pub buying_power: String,
    pub regt_buying_power: String,
    pub daytrading_buying_power: String,
    pub non_marginable_buying_power: String,
    pub options_buying_power: String,
    pub cash: String,
    pub accrued_fees: String,
    pub pending_transfer_in: String,
    pub pending_transfer_out: String,
    pub portfolio_value: String,
    pub equity: String,
    pub last_equity: String,
    pub long_market_value: String,
    pub short_market_value: String,
    pub initial_margin: String,
    pub maintenance_margin: String,
    pub last_maintenance_margin: String,
    pub sma: String,
    pub multiplier: String,
    pub pattern_day_trader: bool,
    pub trading_blocked: bool,
    pub transfers_blocked: bool,
    pub account_blocked: bool,
    pub trade_suspended_by_user: bool,
    pub shorting_enabled: bool,
    pub daytrade_count: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Alpaca's position object (decimals as strings).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Position)]
pub struct AlpacaPosition {
    pub asset_id: uuid::Uuid,
    pub symbol: String,
    pub exchange: String,
    pub asset_class: String,
    pub asset_marginable: bool,
    pub qty: String,
    pub qty_available: String,
    pub avg_entry_price: String,
    pub side: String,
    pub market_value: Option<String>,
    pub cost_basis: String,
    pub unrealized_pl: Option<String>,
    pub unrealized_plpc: Option<String>,
    pub unrealized_intraday_pl: Option<String>,
    pub unrealized_intraday_plpc: Option<String>,
    pub current_price: Option<String>,
    pub lastday_price: Option<String>,
    pub change_today: String,
}

use super::alpaca::{AlpacaOrder, asset_id};
use super::auth::Trader;
use super::error::ApiError;
use super::orders;
use super::request_id::RequestId;
use super::state::AppState;
use crate::app::account::{self, AccountError, Position};
use crate::app::positions::{self, CloseError};
use crate::domain::order::Symbol;
use crate::domain::position::CloseAmount;

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Unavailable(_) => {
                ApiError::unavailable("the balances service is unavailable; retry shortly")
            }
            AccountError::Database(error) => error.into(),
        }
    }
}

fn money(value: Decimal) -> String {
    value.round_dp(2).normalize().to_string()
}

fn position_json(position: &Position) -> AlpacaPosition {
    let qty = position.qty;
    let price = position.current_price;
    let market_value = price.map(|p| qty * p);
    let unrealized = position.unrealized();
    let pl = unrealized.map(|(pl, _)| pl);
    let plpc = unrealized.and_then(|(_, plpc)| plpc).map(|p| p.round_dp(6));
    AlpacaPosition {
        asset_id: asset_id(&position.symbol),
        symbol: position.symbol.clone(),
        exchange: "NASDAQ".to_string(),
        asset_class: "us_equity".to_string(),
        asset_marginable: false,
        qty: qty.normalize().to_string(),
        qty_available: position.qty_available.normalize().to_string(),
        avg_entry_price: position.avg_entry_price.normalize().to_string(),
        side: if qty >= Decimal::ZERO {
            "long"
        } else {
            "short"
        }
        .to_string(),
        market_value: market_value.map(money),
        cost_basis: money(position.cost_basis),
        unrealized_pl: pl.map(money),
        unrealized_plpc: plpc.map(|p| p.normalize().to_string()),
        unrealized_intraday_pl: pl.map(money),
        unrealized_intraday_plpc: plpc.map(|p| p.normalize().to_string()),
        current_price: price.map(|p| p.normalize().to_string()),
        lastday_price: price.map(|p| p.normalize().to_string()),
        change_today: "0".to_string(),
    }
}

/// `GET /v2/account`.
#[utoipa::path(get, path = "/v2/account", tag = "account", operation_id = "getAccount",
    responses((status = 200, body = AlpacaAccount), (status = 401, body = ErrorBody),
              (status = 503, description = "The balances service is unavailable", body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn account(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
) -> Result<Json<AlpacaAccount>, ApiError> {
    let (summary, last_equity) = account::summary(&state.app, &account).await?;
    let cash = money(summary.cash);
    let power = money(summary.buying_power);
    let equity = money(summary.equity);
    // Before the first close it was valued at, the account's equity now.
    let last_equity = last_equity.map(money).unwrap_or_else(|| equity.clone());
    Ok(Json(AlpacaAccount {
        id: account.account_id,
        account_number: account.name,
        status: "ACTIVE".to_string(),
        crypto_status: "INACTIVE".to_string(),
        currency: "USD".to_string(),
        buying_power: power.clone(),
        regt_buying_power: power.clone(),
        daytrading_buying_power: power.clone(),
        non_marginable_buying_power: power.clone(),
        options_buying_power: power,
        cash,
        accrued_fees: "0".to_string(),
        pending_transfer_in: "0".to_string(),
        pending_transfer_out: "0".to_string(),
        portfolio_value: equity.clone(),
        equity,
        last_equity,
        long_market_value: money(summary.long_market_value),
        short_market_value: "0".to_string(),
        initial_margin: "0".to_string(),
        maintenance_margin: "0".to_string(),
        last_maintenance_margin: "0".to_string(),
        sma: "0".to_string(),
        multiplier: "1".to_string(),
        pattern_day_trader: false,
        trading_blocked: false,
        transfers_blocked: false,
        account_blocked: false,
        trade_suspended_by_user: false,
        shorting_enabled: false,
        daytrade_count: 0,
        created_at: account.created_at,
    }))
}

/// `GET /v2/positions`.
#[utoipa::path(get, path = "/v2/positions", tag = "account", operation_id = "getAllOpenPositions",
    responses((status = 200, body = Vec<AlpacaPosition>), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn positions(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
) -> Result<Json<Vec<AlpacaPosition>>, ApiError> {
    let positions = account::positions(&state.app, &account).await?;
    Ok(Json(positions.iter().map(position_json).collect()))
}

/// `GET /v2/positions/{symbol}`.
#[utoipa::path(get, path = "/v2/positions/{symbol_or_asset_id}", tag = "account", operation_id = "getOpenPosition",
    params(("symbol_or_asset_id" = String, Path, description = "A symbol, or the asset_id orderd shows for it")),
    responses((status = 200, body = AlpacaPosition), (status = 401, body = ErrorBody), (status = 404, description = "No position in it", body = ErrorBody),
              (status = 422, description = "Neither a symbol nor an asset id", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn position(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Path(symbol_or_asset_id): Path<String>,
) -> Result<Json<AlpacaPosition>, ApiError> {
    let found = match position_symbol(&state, &account, &symbol_or_asset_id).await? {
        Some(symbol) => account::position(&state.app, &account, symbol.as_str()).await?,
        None => None,
    };
    match found {
        Some(position) => Ok(Json(position_json(&position))),
        None => Err(ApiError::not_found("position does not exist")),
    }
}

impl From<CloseError> for ApiError {
    fn from(error: CloseError) -> Self {
        match error {
            CloseError::NoPosition => ApiError::not_found(error.to_string()),
            CloseError::Invalid(field) => field.into(),
            CloseError::Account(error) => error.into(),
            CloseError::Submit(error) => error.into(),
        }
    }
}

/// The symbol a path names: a symbol, or the asset id of one of the
/// account's positions (`None`: no such position).
async fn position_symbol(
    state: &AppState,
    account: &crate::store::accounts::Account,
    symbol_or_asset_id: &str,
) -> Result<Option<Symbol>, ApiError> {
    match uuid::Uuid::parse_str(symbol_or_asset_id) {
        Ok(asset) => Ok(account::held(&state.app, account)
            .await?
            .into_keys()
            .find(|symbol| asset_id(symbol) == asset)
            .map(|symbol| Symbol::parse(&symbol))
            .transpose()?),
        Err(_) => Ok(Some(Symbol::parse(symbol_or_asset_id)?)),
    }
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CloseQuery {
    /// Whole shares to sell; not with percentage.
    qty: Option<String>,
    /// Percent of the position to sell (0 < p <= 100), rounded down to
    /// whole shares; not with qty.
    percentage: Option<String>,
}

/// `DELETE /v2/positions/{symbol_or_asset_id}`: a market day sell of the
/// position (or `qty` shares, or `percentage` of it).
#[utoipa::path(delete, path = "/v2/positions/{symbol_or_asset_id}", tag = "account", operation_id = "deleteOpenPosition",
    params(("symbol_or_asset_id" = String, Path, description = "A symbol, or the asset_id orderd shows for it"), CloseQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first outcome of the same close")),
    responses((status = 200, description = "The sell order that closes it", body = AlpacaOrder),
              (status = 401, body = ErrorBody),
              (status = 403, description = "The shares are held by other orders", body = ErrorBody),
              (status = 404, description = "No position in it", body = ErrorBody),
              (status = 422, description = "Bad qty or percentage, or neither a symbol nor an asset id", body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn close_position(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    request_id: RequestId,
    headers: HeaderMap,
    Path(symbol_or_asset_id): Path<String>,
    Query(query): Query<CloseQuery>,
) -> Result<Response, ApiError> {
    let amount = CloseAmount::parse(query.qty.as_deref(), query.percentage.as_deref())?;
    let key = orders::idempotency_key(&headers)?;
    let symbol = position_symbol(&state, &account, &symbol_or_asset_id)
        .await?
        .ok_or(CloseError::NoPosition)?;
    let reply = positions::close(
        state.app.clone(),
        account,
        symbol,
        amount,
        key,
        orders::render,
        Some(request_id.as_str()),
    )
    .await?;
    Ok(orders::respond(orders::stored(reply.body), reply.replayed))
}

/// One position's part of `DELETE /v2/positions` (Alpaca's
/// PositionClosedReponse).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = PositionClosed)]
pub struct PositionClosedEntry {
    pub symbol: String,
    pub status: u16,
    /// The sell order's id, when one was made.
    pub order_id: Option<uuid::Uuid>,
    /// The sell order (200) or an error body.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CloseAllQuery {
    /// true: cancel every open order first (and wait until the shares
    /// they held are free).
    cancel_orders: Option<String>,
}

/// `DELETE /v2/positions`: a market day sell of every long position,
/// answered 207 with each close's status. Not idempotent: a retry closes
/// what is open then (an Idempotency-Key is refused).
#[utoipa::path(delete, path = "/v2/positions", tag = "account", operation_id = "deleteAllOpenPositions",
    params(CloseAllQuery),
    responses((status = 207, description = "One entry per position", body = Vec<PositionClosedEntry>),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn close_all_positions(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    request_id: RequestId,
    headers: HeaderMap,
    Query(query): Query<CloseAllQuery>,
) -> Result<Response, ApiError> {
    // A retry would close (and, with cancel_orders, cancel) again: refused
    // rather than ignored.
    if headers.contains_key(orders::IDEMPOTENCY_KEY_HEADER) {
        return Err(ApiError::validation(
            "Idempotency-Key is not supported by DELETE /v2/positions (a retry closes again); close positions one by one under keys",
        ));
    }
    let cancel_orders = match query.cancel_orders.as_deref() {
        None | Some("false" | "False") => false,
        Some("true" | "True") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "cancel_orders must be true or false, got {other:?}"
            )));
        }
    };
    // In its own task: a client that hangs up (or the request deadline)
    // does not leave the positions half closed.
    let app = state.app.clone();
    let closed = tokio::spawn(async move {
        let request = Some(request_id.as_str());
        positions::close_all(app, account, cancel_orders, orders::render, request).await
    })
    .await
    .map_err(ApiError::internal)??;
    let mut unavailable = None;
    let mut any_made = false;
    let entries: Vec<PositionClosedEntry> = closed
        .into_iter()
        .map(|closed| {
            let (status, body) = match closed.outcome {
                Ok(reply) => {
                    any_made = true;
                    let stored = orders::stored(reply.body);
                    (stored.status, stored.body)
                }
                Err(error) => {
                    let error = ApiError::from(error);
                    let answer = (error.status.as_u16(), error.body());
                    if error.status == StatusCode::SERVICE_UNAVAILABLE {
                        unavailable = Some(error);
                    }
                    answer
                }
            };
            let order_id = (status == StatusCode::OK.as_u16())
                .then(|| body["id"].as_str().and_then(|id| id.parse().ok()))
                .flatten();
            PositionClosedEntry {
                symbol: closed.symbol,
                status,
                order_id,
                body,
            }
        })
        .collect();
    // Nothing was closed and something could not be tried now: the whole
    // request is to be retried (503 with Retry-After), not a multi-status.
    if let (false, Some(error)) = (any_made, unavailable) {
        return Err(error);
    }
    Ok((StatusCode::MULTI_STATUS, Json(entries)).into_response())
}

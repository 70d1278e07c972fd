//! `/v2/account` and `/v2/positions`: the trader's cash and positions come
//! from the balances service (the ledger of record), prices from the venue,
//! average entry prices from the fills orderd recorded.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
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

use super::alpaca::asset_id;
use super::auth::Trader;
use super::error::ApiError;
use super::state::AppState;
use crate::app::account::{self, AccountError, Position};
use crate::domain::order::Symbol;

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
    let entry = position.avg_entry_price;
    let price = position.current_price;
    let cost_basis = qty * entry;
    let market_value = price.map(|p| qty * p);
    let unrealized = market_value.map(|m| m - cost_basis);
    let plpc = match (unrealized, cost_basis.is_zero()) {
        (Some(u), false) => Some((u / cost_basis).round_dp(6)),
        _ => None,
    };
    AlpacaPosition {
        asset_id: asset_id(&position.symbol),
        symbol: position.symbol.clone(),
        exchange: "NASDAQ".to_string(),
        asset_class: "us_equity".to_string(),
        asset_marginable: false,
        qty: qty.normalize().to_string(),
        qty_available: position.qty_available.normalize().to_string(),
        avg_entry_price: entry.normalize().to_string(),
        side: if qty >= Decimal::ZERO {
            "long"
        } else {
            "short"
        }
        .to_string(),
        market_value: market_value.map(money),
        cost_basis: money(cost_basis),
        unrealized_pl: unrealized.map(money),
        unrealized_plpc: plpc.map(|p| p.normalize().to_string()),
        unrealized_intraday_pl: unrealized.map(money),
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
    let summary = account::summary(&state.app, &account).await?;
    let cash = money(summary.cash);
    let power = money(summary.buying_power);
    let equity = money(summary.equity);
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
        equity: equity.clone(),
        last_equity: equity,
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
    let found = match uuid::Uuid::parse_str(&symbol_or_asset_id) {
        // An asset id is the UUID v5 of its symbol: found among the positions.
        Ok(asset) => account::positions(&state.app, &account)
            .await?
            .into_iter()
            .find(|p| asset_id(&p.symbol) == asset),
        Err(_) => {
            let symbol = Symbol::parse(&symbol_or_asset_id)?;
            account::position(&state.app, &account, symbol.as_str()).await?
        }
    };
    match found {
        Some(position) => Ok(Json(position_json(&position))),
        None => Err(ApiError::not_found("position does not exist")),
    }
}

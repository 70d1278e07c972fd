//! Wire types of the venue's REST API, stream and admin API. These are the
//! contract; `fixtures/` holds a golden example of each.
//!
//! Amounts (qty, prices) are JSON strings in everything the venue sends.
//! Requests accept strings or numbers.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::clock::{ClockMode, ClockView, Phase, Session};
use crate::market::{
    Exchange, ExecReport, ExecType, Fill, HaltReason, HaltRecord, Instrument, NewOrder, Order,
    OrderStatus, OrderType, Quote, SessionRecord, Side, TimeInForce,
};

/// Error codes of `{"code", "message"}` bodies (Alpaca style).
pub mod codes {
    /// 400: malformed request or invalid field.
    pub const VALIDATION: u32 = 40_010_000;
    /// 401: missing or wrong API key.
    pub const UNAUTHORIZED: u32 = 40_110_000;
    /// 404: unknown order, symbol or route.
    pub const NOT_FOUND: u32 = 40_410_000;
    /// 405: method not allowed on this route.
    pub const METHOD_NOT_ALLOWED: u32 = 40_510_000;
    /// 409: the state does not allow it (listing an active symbol, moving
    /// the wall clock).
    pub const CONFLICT: u32 = 40_910_000;
    /// 413: request body larger than 64 KiB.
    pub const PAYLOAD_TOO_LARGE: u32 = 41_310_000;
    /// 422: well-formed but refused (duplicate client_order_id, unknown or
    /// untradable symbol, a time in force the phase does not take, venue
    /// rejection, cancel of a terminal order).
    pub const UNPROCESSABLE: u32 = 42_210_000;
    /// 429: rate limited (fault injection).
    pub const RATE_LIMIT: u32 = 42_910_000;
    /// 500: internal error (fault injection: response lost).
    pub const INTERNAL: u32 = 50_010_000;
    /// 503: unavailable (fault injection).
    pub const UNAVAILABLE: u32 = 50_310_000;
    /// 504: gateway timeout (fault injection: response lost after a hang).
    pub const TIMEOUT: u32 = 50_410_000;
}

/// Every error response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: u32,
    pub message: String,
}

/// `POST /v1/orders` body, as sent by clients (see `parse_place_order`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceOrderRequest {
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    /// Absent for a notional order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty: Option<Decimal>,
    /// Cash to trade instead of a qty: a market day order of a
    /// fractionable symbol; the venue decides its qty at execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notional: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<Decimal>,
    /// stop and stop_limit: the trigger price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<Decimal>,
    /// trailing_stop: the trail as an amount (exclusive with `trail_percent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail_price: Option<Decimal>,
    /// trailing_stop: the trail as a percentage (> 0, < 100, ≤ 4 decimals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail_percent: Option<Decimal>,
}

/// An order as the venue shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderResponse {
    pub id: Uuid,
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    /// null while a notional order's qty is undecided (until its first
    /// execution).
    pub qty: Option<Decimal>,
    /// A notional order's cash amount; null for the others.
    pub notional: Option<Decimal>,
    pub limit_price: Option<Decimal>,
    /// The stop price in force: as entered for stop and stop_limit; for a
    /// trailing stop the one its `hwm` gives now (null before it has one);
    /// null for market and limit.
    pub stop_price: Option<Decimal>,
    pub trail_price: Option<Decimal>,
    pub trail_percent: Option<Decimal>,
    /// trailing_stop: the high-water mark (sell) or low-water mark (buy) of
    /// the trigger price since it started working; null otherwise.
    pub hwm: Option<Decimal>,
    /// When a stop-type order was triggered; null before and for market
    /// and limit orders.
    pub triggered_at: Option<DateTime<Utc>>,
    pub status: OrderStatus,
    pub filled_qty: Decimal,
    pub leaves_qty: Decimal,
    pub filled_avg_price: Option<Decimal>,
    pub reject_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
    /// The order this one replaced (cancel/replace); null otherwise.
    pub replaces: Option<Uuid>,
    /// The order that replaced this one (status `replaced`); null otherwise.
    pub replaced_by: Option<Uuid>,
    /// What the replaced order had filled, carried into this one: the
    /// replace asked for `qty + carried_qty` in all; `filled_qty` and
    /// `leaves_qty` are this order's own. "0" for an order that replaced
    /// nothing.
    pub carried_qty: Decimal,
}

impl From<&Order> for OrderResponse {
    fn from(o: &Order) -> Self {
        OrderResponse {
            id: o.id,
            client_order_id: o.client_order_id.clone(),
            symbol: o.symbol.clone(),
            side: o.side,
            order_type: o.order_type,
            time_in_force: o.time_in_force,
            qty: o.known_qty(),
            notional: o.notional,
            limit_price: o.limit_price,
            stop_price: o.current_stop_price(),
            trail_price: o.trail_price,
            trail_percent: o.trail_percent,
            hwm: o.hwm,
            triggered_at: o.triggered_at,
            status: o.status,
            filled_qty: o.filled_qty,
            leaves_qty: o.leaves_qty(),
            filled_avg_price: o.avg_price(),
            reject_reason: o.reject_reason.clone(),
            created_at: o.created_at,
            updated_at: o.updated_at,
            version: o.version,
            replaces: o.replaces,
            replaced_by: o.replaced_by,
            carried_qty: o.carried_qty,
        }
    }
}

/// One fill (`GET /v1/orders/{id}/fills`, ground truth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillResponse {
    pub exec_id: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub transact_time: DateTime<Utc>,
}

impl From<&Fill> for FillResponse {
    fn from(f: &Fill) -> Self {
        FillResponse {
            exec_id: f.exec_id.clone(),
            qty: f.qty,
            price: f.price,
            transact_time: f.transact_time,
        }
    }
}

/// `GET /v1/quotes/{symbol}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteResponse {
    pub symbol: String,
    pub bid: Decimal,
    pub ask: Decimal,
    pub last: Decimal,
    pub time: DateTime<Utc>,
}

impl QuoteResponse {
    pub fn new(q: Quote, time: DateTime<Utc>) -> Self {
        QuoteResponse {
            symbol: q.symbol,
            bid: q.bid,
            ask: q.ask,
            last: q.last,
            time,
        }
    }
}

/// `active` while listed, `inactive` once delisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetStatus {
    Active,
    Inactive,
}

/// `GET /v1/assets` element, `GET /v1/assets/{symbol}`, and the admin
/// listing, delisting and halt answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetResponse {
    /// UUID v5 of the symbol (see `market::asset_id`).
    pub id: Uuid,
    pub symbol: String,
    pub name: String,
    pub exchange: Exchange,
    pub status: AssetStatus,
    /// Orders may be placed (listed; a halted asset is still tradable).
    pub tradable: bool,
    pub halted: bool,
    pub shortable: bool,
    pub easy_to_borrow: bool,
    pub fractionable: bool,
    pub marginable: bool,
    /// Price tick at or above `tick_threshold`.
    pub tick_size: Decimal,
    /// Price tick below `tick_threshold`.
    pub sub_dollar_tick_size: Decimal,
    pub tick_threshold: Decimal,
    pub lot_size: Decimal,
    pub min_qty: Decimal,
    pub max_qty: Decimal,
}

impl From<&Instrument> for AssetResponse {
    fn from(i: &Instrument) -> Self {
        AssetResponse {
            id: i.id,
            symbol: i.symbol.clone(),
            name: i.name.clone(),
            exchange: i.exchange,
            status: if i.active {
                AssetStatus::Active
            } else {
                AssetStatus::Inactive
            },
            tradable: i.tradable(),
            halted: i.halted,
            shortable: i.shortable,
            easy_to_borrow: i.shortable,
            fractionable: i.fractionable,
            marginable: true,
            tick_size: Decimal::new(1, 2),
            sub_dollar_tick_size: Decimal::new(1, 4),
            tick_threshold: Decimal::ONE,
            lot_size: Decimal::ONE,
            min_qty: i.min_qty,
            max_qty: Decimal::from(crate::market::MAX_ORDER_QTY),
        }
    }
}

/// `GET /v1/assets` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssetsQuery {
    /// active, inactive, or absent for all.
    pub status: Option<String>,
}

/// `POST /admin/assets` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAssetRequest {
    pub symbol: String,
    pub name: String,
    pub price: Decimal,
    /// NASDAQ when absent.
    #[serde(default)]
    pub exchange: Option<Exchange>,
    /// true when absent.
    #[serde(default)]
    pub shortable: Option<bool>,
    /// Whole shares, string or number; 1 when absent.
    #[serde(default)]
    pub min_qty: Option<Decimal>,
    /// Takes fractional quantities; when absent, whether min_qty is 1.
    #[serde(default)]
    pub fractionable: Option<bool>,
}

/// `GET /v1/clock`, and the answer of `POST /admin/clock/advance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockResponse {
    pub timestamp: DateTime<Utc>,
    pub mode: ClockMode,
    pub phase: Phase,
    /// Continuous trading: phase `open` or `closing_auction`.
    pub is_open: bool,
    /// The session in progress (pre_open to closing_auction) or the next one.
    pub session_date: NaiveDate,
    /// The next start of continuous trading strictly after `timestamp`.
    pub next_open: DateTime<Utc>,
    /// The close of the session in progress, else of the next session.
    pub next_close: DateTime<Utc>,
}

impl ClockResponse {
    pub fn new(mode: ClockMode, view: ClockView, now: DateTime<Utc>) -> Self {
        ClockResponse {
            timestamp: now,
            mode,
            phase: view.phase,
            is_open: view.phase.is_open(),
            session_date: view.session_date,
            next_open: view.next_open,
            next_close: view.next_close,
        }
    }
}

/// `POST /admin/clock/advance` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvanceClockRequest {
    /// pre_open, opening_auction, open, closing_auction or closed.
    pub to: String,
}

/// `GET /v1/calendar` query parameters (`YYYY-MM-DD`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CalendarQuery {
    pub start: Option<String>,
    pub end: Option<String>,
}

/// `GET /v1/calendar` element: one trading day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalendarDay {
    pub date: NaiveDate,
    /// Orders start being taken for the day.
    pub pre_open: DateTime<Utc>,
    /// The opening auction executes; continuous trading starts.
    pub open: DateTime<Utc>,
    /// The closing-auction phase starts (CLS cut-off).
    pub closing_auction: DateTime<Utc>,
    /// The closing auction executes; the session ends.
    pub close: DateTime<Utc>,
    pub early_close: bool,
}

impl From<&Session> for CalendarDay {
    fn from(s: &Session) -> Self {
        CalendarDay {
            date: s.date,
            pre_open: s.pre_open,
            open: s.open,
            closing_auction: s.closing_auction,
            close: s.close,
            early_close: s.early_close,
        }
    }
}

/// Stream, client → server, first message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamAuthRequest {
    pub action: String,
    pub key: String,
}

/// Stream, server → client: answer to a good `auth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamAuthResponse {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
}

/// Stream, server → client: error (bad auth, slow consumer), then close.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamError {
    #[serde(rename = "type")]
    pub kind: String,
    pub code: u32,
    pub message: String,
}

/// Stream, server → client: one execution report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamExecutionReport {
    #[serde(rename = "type")]
    pub kind: String,
    pub seq: u64,
    pub exec_id: String,
    pub exec_type: ExecType,
    pub order_id: Uuid,
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub status: OrderStatus,
    pub last_qty: Decimal,
    pub last_px: Option<Decimal>,
    pub cum_qty: Decimal,
    pub leaves_qty: Decimal,
    pub avg_px: Option<Decimal>,
    pub transact_time: DateTime<Utc>,
    pub reason: Option<String>,
    /// The order's qty; null while a notional order's is undecided.
    pub qty: Option<Decimal>,
    /// A notional order's cash amount; null for the others.
    pub notional: Option<Decimal>,
}

impl StreamExecutionReport {
    pub fn new(seq: u64, r: &ExecReport) -> Self {
        StreamExecutionReport {
            kind: "execution_report".to_owned(),
            seq,
            exec_id: r.exec_id.clone(),
            exec_type: r.exec_type,
            order_id: r.order_id,
            client_order_id: r.client_order_id.clone(),
            symbol: r.symbol.clone(),
            side: r.side,
            status: r.status,
            last_qty: r.last_qty,
            last_px: r.last_px,
            cum_qty: r.cum_qty,
            leaves_qty: r.leaves_qty,
            avg_px: r.avg_px,
            transact_time: r.transact_time,
            reason: r.reason.clone(),
            qty: r.qty,
            notional: r.notional,
        }
    }
}

/// Stream, server → client: heartbeat carrying the last seq assigned on
/// this connection (0 before the first report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamHeartbeat {
    #[serde(rename = "type")]
    pub kind: String,
    pub seq: u64,
    pub time: DateTime<Utc>,
}

/// `GET /admin/ground-truth` order element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruthOrder {
    #[serde(flatten)]
    pub order: OrderResponse,
    pub fills: Vec<FillResponse>,
    /// Raw POST /v1/orders requests seen with this client_order_id.
    pub placement_requests: u64,
}

/// `GET /admin/ground-truth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub orders: Vec<GroundTruthOrder>,
    /// Raw POST /v1/orders requests per client_order_id, including
    /// duplicates, invalid ones and those answered 429/503 by fault injection
    /// (every request whose body carried a string client_order_id).
    pub placement_requests: BTreeMap<String, u64>,
    /// Venue orders created per client_order_id: 1 by construction.
    pub orders_created: BTreeMap<String, u64>,
    /// Sessions started since start-up, oldest first.
    #[serde(default)]
    pub sessions: Vec<GroundTruthSession>,
    /// Halts since start-up, oldest first.
    #[serde(default)]
    pub halts: Vec<HaltResponse>,
}

/// `GET /admin/ground-truth` session element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruthSession {
    pub date: NaiveDate,
    /// When continuous trading started (null before; the scheduled instant
    /// when start-up came after it).
    pub open: Option<DateTime<Utc>>,
    /// When the session closed (null while it has not).
    pub close: Option<DateTime<Utc>>,
    /// Auction price per symbol (listed, not halted symbols).
    pub opening_auction: BTreeMap<String, Decimal>,
    pub closing_auction: BTreeMap<String, Decimal>,
}

impl From<&SessionRecord> for GroundTruthSession {
    fn from(r: &SessionRecord) -> Self {
        use crate::clock::SessionEvent;
        GroundTruthSession {
            date: r.date,
            open: r.at(SessionEvent::Open),
            close: r.at(SessionEvent::Close),
            opening_auction: r.opening_auction.clone(),
            closing_auction: r.closing_auction.clone(),
        }
    }
}

/// `GET /admin/ground-truth` halt element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaltResponse {
    pub symbol: String,
    pub from: DateTime<Utc>,
    /// null while still halted.
    pub to: Option<DateTime<Utc>>,
    /// admin or fault.
    pub reason: HaltReason,
}

impl From<&HaltRecord> for HaltResponse {
    fn from(h: &HaltRecord) -> Self {
        HaltResponse {
            symbol: h.symbol.clone(),
            from: h.from,
            to: h.to,
            reason: h.reason,
        }
    }
}

/// `POST /admin/prices` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetPriceRequest {
    pub symbol: String,
    pub price: Decimal,
}

/// Counts of injected faults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultStats {
    pub response_lost_timeout: u64,
    pub response_lost_500: u64,
    pub reject: u64,
    pub reject_response_lost: u64,
    pub rate_limited: u64,
    pub unavailable: u64,
    pub stale_read: u64,
    pub duplicate_report: u64,
    pub out_of_order_report: u64,
    pub drop_report: u64,
    pub disconnect: u64,
    pub fill_after_cancel: u64,
    pub fill_races_cancel: u64,
    pub latency: u64,
    #[serde(default)]
    pub late_arrival: u64,
    #[serde(default)]
    pub fill_races_replace: u64,
    /// Symbols halted by the `halt` fault.
    #[serde(default)]
    pub halt: u64,
}

/// `GET /admin/stats`. Counters since start (reset does not clear them),
/// except `orders` and `open_orders`, which describe the current book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub faults: FaultStats,
    pub orders: u64,
    pub open_orders: u64,
    pub orders_created: u64,
    pub orders_rejected: u64,
    pub placement_requests: u64,
    pub reports_published: u64,
    pub reports_sent: u64,
    pub connections_opened: u64,
    pub connections_open: u64,
    pub slow_consumer_disconnects: u64,
}

/// Parses a `POST /v1/orders` body. Returns the client_order_id (if the body
/// carried a string one, for counting) and the order or the reason it is
/// malformed.
pub fn parse_place_order(body: &Value) -> (Option<String>, Result<NewOrder, String>) {
    let Some(obj) = body.as_object() else {
        return (None, Err("request body must be a JSON object".into()));
    };
    let client_order_id = obj
        .get("client_order_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let parsed = (|| {
        let client_order_id = required_str(obj, "client_order_id")?;
        let symbol = required_str(obj, "symbol")?;
        let side = match required_str(obj, "side")?.as_str() {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            _ => return Err("side must be buy or sell".to_owned()),
        };
        let order_type = match required_str(obj, "type")?.as_str() {
            "market" => OrderType::Market,
            "limit" => OrderType::Limit,
            "stop" => OrderType::Stop,
            "stop_limit" => OrderType::StopLimit,
            "trailing_stop" => OrderType::TrailingStop,
            _ => {
                return Err(
                    "type must be market, limit, stop, stop_limit or trailing_stop".to_owned(),
                );
            }
        };
        let time_in_force = match required_str(obj, "time_in_force")?.as_str() {
            "day" => TimeInForce::Day,
            "gtc" => TimeInForce::Gtc,
            "ioc" => TimeInForce::Ioc,
            "fok" => TimeInForce::Fok,
            "opg" => TimeInForce::Opg,
            "cls" => TimeInForce::Cls,
            _ => return Err("time_in_force must be day, gtc, ioc, fok, opg or cls".to_owned()),
        };
        let optional_amount = |field: &str| match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => parse_amount(v)
                .map(Some)
                .map_err(|e| format!("{field} {e}")),
        };
        // Exactly one of qty and notional (the venue decides a notional
        // order's qty when it executes it).
        let notional = optional_amount("notional")?;
        let qty = match (optional_amount("qty")?, notional) {
            (Some(_), Some(_)) => return Err("qty and notional cannot both be given".to_owned()),
            (None, None) => return Err("qty is required (or notional)".to_owned()),
            (Some(qty), None) => qty,
            (None, Some(_)) => Decimal::ZERO,
        };
        Ok(NewOrder {
            client_order_id,
            symbol,
            side,
            order_type,
            time_in_force,
            qty,
            limit_price: optional_amount("limit_price")?,
            stop_price: optional_amount("stop_price")?,
            trail_price: optional_amount("trail_price")?,
            trail_percent: optional_amount("trail_percent")?,
            notional,
        })
    })();
    (client_order_id, parsed)
}

/// Parses a `POST /v1/orders/{id}/replace` body: `client_order_id` (the
/// replacement's, required) and what changes, each optional: `qty` (the
/// total wanted, filled included), `time_in_force` (day or gtc),
/// `limit_price`, `stop_price`, `trail_price`, `trail_percent`.
pub fn parse_replace(body: &Value) -> Result<crate::market::ReplaceTerms, String> {
    let Some(obj) = body.as_object() else {
        return Err("request body must be a JSON object".into());
    };
    let optional_amount = |field: &str| match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_amount(v)
            .map(Some)
            .map_err(|e| format!("{field} {e}")),
    };
    let time_in_force = match obj.get("time_in_force") {
        None | Some(Value::Null) => None,
        Some(Value::String(tif)) if tif == "day" => Some(TimeInForce::Day),
        Some(Value::String(tif)) if tif == "gtc" => Some(TimeInForce::Gtc),
        Some(_) => return Err("time_in_force must be day or gtc".to_owned()),
    };
    Ok(crate::market::ReplaceTerms {
        client_order_id: required_str(obj, "client_order_id")?,
        qty: optional_amount("qty")?,
        time_in_force,
        limit_price: optional_amount("limit_price")?,
        stop_price: optional_amount("stop_price")?,
        trail_price: optional_amount("trail_price")?,
        trail_percent: optional_amount("trail_percent")?,
    })
}

fn required_str(obj: &serde_json::Map<String, Value>, field: &str) -> Result<String, String> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(format!("{field} is required")),
        Some(_) => Err(format!("{field} must be a string")),
    }
}

/// Longest amount string accepted (digits, sign and point).
const MAX_AMOUNT_LEN: usize = 40;

/// A decimal amount from a JSON string or number: plain decimal notation
/// only (no exponent, NaN, infinity, spaces or separators).
pub fn parse_amount(value: &Value) -> Result<Decimal, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err("must be a decimal string or number".to_owned()),
    };
    if text.is_empty() || text.len() > MAX_AMOUNT_LEN {
        return Err("is not a valid decimal".to_owned());
    }
    let digits = text.strip_prefix('-').unwrap_or(&text);
    let mut points = 0;
    for c in digits.chars() {
        match c {
            '0'..='9' => {}
            '.' => points += 1,
            _ => return Err("is not a valid decimal".to_owned()),
        }
    }
    if points > 1 || digits.starts_with('.') || digits.ends_with('.') || digits.is_empty() {
        return Err("is not a valid decimal".to_owned());
    }
    Decimal::from_str_exact(&text).map_err(|_| "is not a representable decimal".to_owned())
}

/// `GET /v1/orders` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListOrdersQuery {
    /// open (default), closed or all.
    pub status: Option<String>,
    /// Page size, 1..=500, default 100.
    pub limit: Option<String>,
    /// Cursor: the id of the last order of the previous page.
    pub after: Option<String>,
}

/// `GET /v1/orders:by_client_order_id` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByClientOrderIdQuery {
    pub client_order_id: Option<String>,
}

/// Parses a Decimal from `FromStr` for tests and tools.
pub fn decimal(s: &str) -> Option<Decimal> {
    Decimal::from_str(s).ok()
}

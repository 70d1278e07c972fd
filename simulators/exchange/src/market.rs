//! The venue's pure core: reference prices, quotes, order state, matching,
//! and the trading day (phases, auctions, halts).
//!
//! No I/O, no clock, no tokio: every operation takes `now`, randomness comes
//! from the seeded generators owned by the market, and execution reports are
//! appended to an outbox that the caller drains and publishes. Fault choices
//! that change the market's behaviour are decided by the caller and passed
//! in (the cancel races), or handed over as a probability (the halt fault).
//!
//! The trading day lives in [`session`] (phase events, auctions, the close),
//! the instruments' life in [`listing`] (listing, delisting, halts), the
//! stop-type orders' rules and triggers in [`stops`].

mod listing;
mod replace;
mod session;
mod stops;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::calendar::Calendar;
use crate::clock::{Phase, Schedule, ScheduleSpec, Session, SessionEvent};
use crate::config::{Config, SymbolConfig};
pub use replace::{ReplaceError, ReplaceMode, ReplaceTerms, Replaced};
use stops::check_type_fields;

pub use listing::{HaltReason, HaltRecord, ListError, Listing, asset_id};
pub use session::SessionRecord;
pub use stops::{TRAIL_PERCENT_MAX_DP, trailing_stop_price};

/// Largest quantity of one order, in shares.
pub const MAX_ORDER_QTY: u64 = 10_000_000;
/// Most decimal places of a quantity (fractional shares, as Alpaca's).
pub const QTY_DP: u32 = 9;
/// Largest notional of one order (cash).
pub const MAX_NOTIONAL: u64 = 1_000_000_000;
/// Most decimal places of a notional (Alpaca's, as for a quantity).
pub const NOTIONAL_DP: u32 = 9;
/// The only order a fractional quantity or a notional may be: market, for
/// the day.
pub const FRACTIONAL_ORDER: (OrderType, TimeInForce) = (OrderType::Market, TimeInForce::Day);
/// Largest limit price accepted.
pub const MAX_LIMIT_PRICE: u64 = 1_000_000;
/// Longest client_order_id accepted.
pub const MAX_CLIENT_ORDER_ID_LEN: usize = 48;
/// Decimal places of `avg_px` / `filled_avg_price`.
pub const AVG_PRICE_DP: u32 = 6;
/// Smallest reference price the walk may reach.
const MIN_REFERENCE_PRICE: Decimal = Decimal::from_parts(1, 0, 0, false, 2);
/// Mixed into the seed so halt rolls and reopening jumps draw from their
/// own stream (switching the fault on does not shift the price walk).
const HALT_SEED_SALT: u64 = 0x4A17_5EED;

/// Refusal of an IOC/FOK outside continuous trading.
pub const IOC_FOK_NEED_CONTINUOUS: &str =
    "market is closed: ioc/fok orders need continuous trading";
/// Refusal of an OPG once the opening auction has run.
pub const OPG_ONLY_BEFORE_OPEN: &str = "opg orders are accepted only before the opening auction";
/// Refusal of a CLS from the closing auction's cut-off on.
pub const CLS_ONLY_UNTIL_CLOSING_AUCTION: &str =
    "cls orders are accepted only until the closing auction";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    Market,
    Limit,
    /// Becomes a market order when the price reaches `stop_price`.
    Stop,
    /// Becomes a limit order at `limit_price` when the price reaches
    /// `stop_price`.
    StopLimit,
    /// A stop whose stop price trails the best price seen since it started
    /// working (`hwm`) by `trail_price` or `trail_percent`; becomes a market
    /// order when the price reaches it.
    TrailingStop,
}

impl OrderType {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
            OrderType::Stop => "stop",
            OrderType::StopLimit => "stop_limit",
            OrderType::TrailingStop => "trailing_stop",
        }
    }

    /// stop, stop_limit or trailing_stop: waits for a trigger.
    pub fn is_stop(self) -> bool {
        matches!(
            self,
            OrderType::Stop | OrderType::StopLimit | OrderType::TrailingStop
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    Day,
    Gtc,
    Ioc,
    Fok,
    /// At the opening: executes only in the opening auction, else expires.
    Opg,
    /// At the close: executes only in the closing auction, else expires.
    Cls,
}

impl TimeInForce {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            TimeInForce::Day => "day",
            TimeInForce::Gtc => "gtc",
            TimeInForce::Ioc => "ioc",
            TimeInForce::Fok => "fok",
            TimeInForce::Opg => "opg",
            TimeInForce::Cls => "cls",
        }
    }

    /// Works in continuous matching (DAY and GTC).
    fn is_continuous(self) -> bool {
        matches!(self, TimeInForce::Day | TimeInForce::Gtc)
    }

    /// Why an order with this time in force cannot be entered in `phase`.
    pub fn refusal_in(self, phase: Phase) -> Option<&'static str> {
        match self {
            TimeInForce::Ioc | TimeInForce::Fok if !phase.is_open() => {
                Some(IOC_FOK_NEED_CONTINUOUS)
            }
            TimeInForce::Opg if phase.is_open() => Some(OPG_ONLY_BEFORE_OPEN),
            TimeInForce::Cls if matches!(phase, Phase::ClosingAuction | Phase::Closed) => {
                Some(CLS_ONLY_UNTIL_CLOSING_AUCTION)
            }
            _ => None,
        }
    }
}

/// Order status (Alpaca vocabulary). Orders entered outside continuous
/// trading start at `accepted` and become `new` at the open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Accepted,
    New,
    PartiallyFilled,
    Filled,
    PendingCancel,
    Canceled,
    Expired,
    Rejected,
    /// Replaced by another order (cancel/replace): it executes no more,
    /// and what it had filled is carried into its replacement.
    Replaced,
}

impl OrderStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Canceled
                | OrderStatus::Expired
                | OrderStatus::Rejected
                | OrderStatus::Replaced
        )
    }
}

/// What happened, separate from the order's resulting status (FIX ExecType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecType {
    /// Taken outside continuous trading; waits for the open or an auction.
    Accepted,
    New,
    PartialFill,
    Fill,
    Canceled,
    Expired,
    Rejected,
    CancelRejected,
    /// A GTC order still working at the close; it works again next session.
    DoneForDay,
    /// The order was replaced (cancel/replace): reported for the replaced
    /// order; its replacement's first report is `new` (or `accepted`).
    Replaced,
}

/// A validated placement request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub qty: Decimal,
    pub limit_price: Option<Decimal>,
    /// stop and stop_limit: the trigger price.
    pub stop_price: Option<Decimal>,
    /// trailing_stop: the trail as an amount (exclusive with `trail_percent`).
    pub trail_price: Option<Decimal>,
    /// trailing_stop: the trail as a percentage of `hwm`.
    pub trail_percent: Option<Decimal>,
    /// A notional order: the amount of cash to trade instead of a `qty`
    /// (which is then 0); the venue decides the quantity at execution.
    pub notional: Option<Decimal>,
}

/// One execution of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    pub exec_id: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub transact_time: DateTime<Utc>,
}

/// Caller-decided behaviour of a cancel (fault injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CancelMode {
    #[default]
    Normal,
    /// Report `canceled`, then one more fill for part of the remaining qty.
    FillAfterCancel,
    /// If fills are pending, the rest fills first and the cancel is rejected.
    FillRacesCancel,
}

/// A venue order. Scheduling fields are private to the market.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: Uuid,
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub qty: Decimal,
    pub limit_price: Option<Decimal>,
    /// stop and stop_limit: the trigger price as entered (see
    /// [`Order::current_stop_price`] for trailing stops).
    pub stop_price: Option<Decimal>,
    pub trail_price: Option<Decimal>,
    pub trail_percent: Option<Decimal>,
    /// trailing_stop: the high-water mark (sell) or low-water mark (buy) of
    /// the trigger price while the order waited for its trigger; None before
    /// it started working and for the other types.
    pub hwm: Option<Decimal>,
    /// When a stop-type order was triggered (it then works as a market or
    /// limit order); None before, and for market and limit orders.
    pub triggered_at: Option<DateTime<Utc>>,
    pub status: OrderStatus,
    pub filled_qty: Decimal,
    /// Sum of qty * price over the fills.
    pub filled_value: Decimal,
    /// A notional order's amount of cash; its `qty` is 0 until the venue
    /// decides it at the first execution (see [`Order::qty_known`]).
    pub notional: Option<Decimal>,
    pub reject_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Increases with every change of the order.
    pub version: u64,
    pub fills: Vec<Fill>,
    /// The order this one replaced (cancel/replace), if any.
    pub replaces: Option<Uuid>,
    /// The order that replaced this one, once it is `replaced`.
    pub replaced_by: Option<Uuid>,
    /// What the replaced order(s) had filled, carried into this one: the
    /// replace asked for `qty + carried_qty` in all, and this order works
    /// (and reports `filled_qty`, `cum_qty`) only its own `qty`. 0 for an
    /// order that replaced nothing.
    pub carried_qty: Decimal,
    symbol_index: usize,
    /// Entered outside continuous trading (DAY, GTC, CLS): becomes `new`
    /// (and DAY/GTC start matching) at the next open.
    queued: bool,
    /// Fill chunks still planned (the last one takes all that is left).
    chunks_left: u32,
    /// Bumped to invalidate scheduled fill chunks.
    fill_generation: u64,
    fill_scheduled: bool,
    cancel_mode: CancelMode,
}

impl Order {
    /// A stop-type order not triggered yet: it does not execute.
    pub fn awaiting_trigger(&self) -> bool {
        self.order_type.is_stop() && self.triggered_at.is_none()
    }

    /// The stop price in force: `stop_price` for stop and stop_limit; for a
    /// trailing stop the one its `hwm` gives (None before it has one).
    pub fn current_stop_price(&self) -> Option<Decimal> {
        match self.order_type {
            OrderType::TrailingStop => self.hwm.and_then(|hwm| {
                trailing_stop_price(self.side, hwm, self.trail_price, self.trail_percent)
            }),
            _ => self.stop_price,
        }
    }

    /// The order's quantity: null while a notional order waits for its
    /// first execution, which decides it.
    pub fn known_qty(&self) -> Option<Decimal> {
        (self.notional.is_none() || !self.qty.is_zero()).then_some(self.qty)
    }

    /// Qty still working: 0 once the order is terminal (and while a
    /// notional order's quantity is undecided).
    pub fn leaves_qty(&self) -> Decimal {
        if self.status.is_terminal() {
            Decimal::ZERO
        } else {
            self.qty - self.filled_qty
        }
    }

    /// Volume-weighted fill price, rounded to `AVG_PRICE_DP`; None before any fill.
    pub fn avg_price(&self) -> Option<Decimal> {
        if self.filled_qty.is_zero() {
            None
        } else {
            Some(
                (self.filled_value / self.filled_qty)
                    .round_dp_with_strategy(AVG_PRICE_DP, RoundingStrategy::MidpointAwayFromZero)
                    .normalize(),
            )
        }
    }
}

/// A report to publish on the stream (the caller adds the per-connection seq).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecReport {
    pub exec_id: String,
    pub exec_type: ExecType,
    pub order_id: Uuid,
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub status: OrderStatus,
    /// "0" for exec types that are not fills.
    pub last_qty: Decimal,
    /// null for exec types that are not fills.
    pub last_px: Option<Decimal>,
    pub cum_qty: Decimal,
    pub leaves_qty: Decimal,
    /// null before the first fill.
    pub avg_px: Option<Decimal>,
    pub transact_time: DateTime<Utc>,
    /// Why, for `rejected` and `cancel_rejected`; null otherwise.
    pub reason: Option<String>,
    /// The order's quantity; null while a notional order's is undecided.
    pub qty: Option<Decimal>,
    /// A notional order's amount of cash; null for the others.
    pub notional: Option<Decimal>,
}

/// A symbol's quote.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub symbol: String,
    pub bid: Decimal,
    pub ask: Decimal,
    pub last: Decimal,
}

/// Listing exchange of a symbol (reference data only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Exchange {
    #[default]
    #[serde(rename = "NASDAQ")]
    Nasdaq,
    #[serde(rename = "NYSE")]
    Nyse,
    #[serde(rename = "ARCA")]
    Arca,
}

/// A symbol: its reference data and its price state.
#[derive(Debug, Clone)]
pub struct Instrument {
    /// Stable id: [`asset_id`] of the symbol.
    pub id: Uuid,
    pub symbol: String,
    pub name: String,
    pub exchange: Exchange,
    pub shortable: bool,
    /// Smallest order qty, in shares.
    pub min_qty: Decimal,
    /// Takes fractional quantities (market orders for the day).
    pub fractionable: bool,
    /// Listed; false once delisted (then nothing can be placed in it).
    pub active: bool,
    /// Trading halted: orders are taken and cancelable, nothing executes.
    pub halted: bool,
    pub reference: Decimal,
    pub last: Decimal,
    /// Orders of this symbol waiting for the price to cross their limit,
    /// for trading to resume (halt, close), or for the open.
    resting: BTreeSet<usize>,
    /// Working stop-type orders of this symbol waiting for their trigger,
    /// in creation order.
    stops: BTreeSet<usize>,
    /// Bumped by every halt and resume, so a fault's scheduled resume does
    /// not end a later halt.
    halt_generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceError {
    /// A field fails validation (HTTP 400).
    Invalid(String),
    /// Well-formed but against a rule of the stop order types: a field the
    /// type requires or does not take, a stop price or trail out of bounds,
    /// a time in force they do not take (HTTP 422).
    Refused(String),
    /// Unknown symbol (HTTP 422).
    UnknownSymbol(String),
    /// Delisted symbol (HTTP 422).
    NotTradable(String),
    /// The time in force cannot be entered in the current phase (HTTP 422).
    WrongPhase(&'static str),
    /// The client_order_id was used before (HTTP 422).
    DuplicateClientOrderId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelError {
    NotFound,
    AlreadyTerminal(OrderStatus),
}

/// `/admin/clock/advance` on the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClockError;

impl std::fmt::Display for WallClockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the wall clock cannot be advanced")
    }
}

impl std::error::Error for WallClockError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    FillChunk {
        order: usize,
        generation: u64,
    },
    Cancel {
        order: usize,
    },
    LateFill {
        order: usize,
    },
    /// End of a `halt` fault.
    Resume {
        instrument: usize,
        generation: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    due_ms: i64,
    seq: u64,
    kind: TimerKind,
}

/// Market parameters taken from `Config`.
#[derive(Debug, Clone)]
pub struct MarketParams {
    pub fill_chunks_min: u32,
    pub fill_chunks_max: u32,
    pub fill_interval_ms: i64,
    pub immediate_liquidity_qty: Decimal,
    pub walk_interval_ms: i64,
    pub walk_step_bps: Decimal,
    pub spread_bps: Decimal,
    pub cancel_latency_ms: i64,
    pub auction_step_bps: Decimal,
    pub halt_reopen_bps: Decimal,
    pub schedule: ScheduleSpec,
}

impl MarketParams {
    /// The parameters of `config`, with `calendar` (see
    /// `Config::load_calendar`). Fails on clock settings it cannot run.
    pub fn new(config: &Config, calendar: Calendar) -> Result<MarketParams, String> {
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX / 4);
        Ok(MarketParams {
            fill_chunks_min: config.fill_chunks_min.max(1),
            fill_chunks_max: config.fill_chunks_max.max(config.fill_chunks_min.max(1)),
            fill_interval_ms: ms(config.fill_interval_ms),
            immediate_liquidity_qty: Decimal::from(config.immediate_liquidity_qty),
            walk_interval_ms: ms(config.walk_interval_ms).max(1),
            walk_step_bps: config.walk_step_bps,
            spread_bps: config.spread_bps,
            cancel_latency_ms: ms(config.cancel_latency_ms),
            auction_step_bps: config.auction_step_bps,
            halt_reopen_bps: config.halt_reopen_bps,
            schedule: ScheduleSpec::new(&config.clock, config.session_secs, calendar)?,
        })
    }

    /// [`MarketParams::new`] with the built-in calendar.
    pub fn from_config(config: &Config) -> Result<MarketParams, String> {
        MarketParams::new(config, Calendar::builtin())
    }
}

/// Price tick of a price: $0.01 at or above $1, $0.0001 below.
pub fn tick_for(price: Decimal) -> Decimal {
    if price >= Decimal::ONE {
        Decimal::new(1, 2)
    } else {
        Decimal::new(1, 4)
    }
}

/// True if `price` is a positive multiple of its tick.
pub fn is_on_tick(price: Decimal) -> bool {
    price > Decimal::ZERO && (price % tick_for(price)).is_zero()
}

fn round_to_tick(price: Decimal, strategy: RoundingStrategy) -> Decimal {
    let dp = if price >= Decimal::ONE { 2 } else { 4 };
    price.round_dp_with_strategy(dp, strategy).normalize()
}

/// `reference` moved by a uniform step in `[-bps, +bps]` basis points, on
/// the tick and at least the smallest reference price.
fn seeded_move(rng: &mut ChaCha8Rng, reference: Decimal, bps: Decimal) -> Decimal {
    let step = Decimal::new(rng.random_range(-1000..=1000), 3);
    let moved = reference + reference * step * bps / Decimal::from(10_000);
    round_to_tick(moved, RoundingStrategy::MidpointAwayFromZero).max(MIN_REFERENCE_PRICE)
}

/// The next session event to fire.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    session: Session,
    event: SessionEvent,
}

impl Cursor {
    fn due(&self) -> DateTime<Utc> {
        self.session.at(self.event)
    }
}

/// The whole venue state.
pub struct Market {
    params: MarketParams,
    seed: u64,
    rng: ChaCha8Rng,
    /// Prefix of exec ids, random per process so ids never repeat across runs.
    run_id: String,
    exec_counter: u64,
    instruments: Vec<Instrument>,
    instrument_index: HashMap<String, usize>,
    orders: Vec<Order>,
    by_id: HashMap<Uuid, usize>,
    by_client_order_id: HashMap<String, usize>,
    /// Non-terminal orders, in creation order.
    open: BTreeSet<usize>,
    timers: BinaryHeap<Reverse<Timer>>,
    timer_seq: u64,
    next_walk: DateTime<Utc>,
    outbox: Vec<ExecReport>,
    schedule: Schedule,
    /// The phase as of the last session event fired.
    phase: Phase,
    cursor: Cursor,
    /// Sessions started since start-up, oldest first (bounded).
    sessions: VecDeque<SessionRecord>,
    /// Halts since start-up, oldest first (bounded).
    halts: VecDeque<HaltRecord>,
    /// Probability of the `halt` fault per symbol and walk step, and its length.
    halt_probability: f64,
    halt_ms: i64,
    halt_rng: ChaCha8Rng,
    /// Halts injected by the fault since start-up.
    fault_halts: u64,
}

impl Market {
    pub fn new(
        params: MarketParams,
        symbols: &[SymbolConfig],
        seed: u64,
        run_id: String,
        now: DateTime<Utc>,
    ) -> Market {
        let instruments: Vec<Instrument> = symbols
            .iter()
            .map(|s| {
                Instrument::new(Listing {
                    symbol: s.symbol.clone(),
                    name: s.name.clone(),
                    price: s.price,
                    exchange: s.exchange.unwrap_or_default(),
                    shortable: s.shortable,
                    min_qty: s.min_qty,
                    fractionable: s.is_fractionable(),
                })
            })
            .collect();
        let instrument_index = instruments
            .iter()
            .enumerate()
            .map(|(i, s)| (s.symbol.clone(), i))
            .collect();
        let schedule = Schedule::start(params.schedule.clone(), now);
        let (cursor, phase, first_record) = session::starting_point(&schedule, now);
        Market {
            next_walk: now + Duration::milliseconds(params.walk_interval_ms),
            params,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            run_id,
            exec_counter: 0,
            instruments,
            instrument_index,
            orders: Vec::new(),
            by_id: HashMap::new(),
            by_client_order_id: HashMap::new(),
            open: BTreeSet::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            outbox: Vec::new(),
            schedule,
            phase,
            cursor,
            sessions: first_record.into_iter().collect(),
            halts: VecDeque::new(),
            halt_probability: 0.0,
            halt_ms: 0,
            halt_rng: ChaCha8Rng::seed_from_u64(seed ^ HALT_SEED_SALT),
            fault_halts: 0,
        }
    }

    /// Forgets all orders. Prices, instruments, halts, the clock, the
    /// session history and the exec id counter are kept.
    pub fn reset(&mut self) {
        self.orders.clear();
        self.by_id.clear();
        self.by_client_order_id.clear();
        self.open.clear();
        // Timers of orders go; the end of a fault halt stays.
        self.timers
            .retain(|Reverse(t)| matches!(t.kind, TimerKind::Resume { .. }));
        self.outbox.clear();
        for instrument in &mut self.instruments {
            instrument.resting.clear();
            instrument.stops.clear();
        }
    }

    /// Sets the `halt` fault: probability per symbol and walk step, length.
    pub fn set_halt_fault(&mut self, probability: f64, halt_ms: u64) {
        self.halt_probability = probability;
        self.halt_ms = i64::try_from(halt_ms).unwrap_or(i64::MAX / 4);
    }

    /// Halts injected by the `halt` fault since start-up.
    pub fn fault_halts(&self) -> u64 {
        self.fault_halts
    }

    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    pub fn instrument(&self, symbol: &str) -> Option<&Instrument> {
        self.instrument_index
            .get(symbol)
            .map(|&i| &self.instruments[i])
    }

    pub fn orders(&self) -> &[Order] {
        &self.orders
    }

    pub fn order(&self, id: Uuid) -> Option<&Order> {
        self.by_id.get(&id).map(|&i| &self.orders[i])
    }

    pub fn order_by_client_order_id(&self, client_order_id: &str) -> Option<&Order> {
        self.by_client_order_id
            .get(client_order_id)
            .map(|&i| &self.orders[i])
    }

    /// The phase as of the last [`Market::advance`].
    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Reports produced since the last call, in order.
    pub fn drain_reports(&mut self) -> Vec<ExecReport> {
        std::mem::take(&mut self.outbox)
    }

    /// Orders in creation order, filtered by `open` (true: non-terminal,
    /// false: terminal, None: all), starting after the order `after`.
    pub fn list(&self, open: Option<bool>, after: Option<Uuid>, limit: usize) -> Vec<&Order> {
        let start = match after {
            Some(id) => match self.by_id.get(&id) {
                Some(&i) => i + 1,
                None => return Vec::new(),
            },
            None => 0,
        };
        match open {
            Some(true) => self
                .open
                .range(start..)
                .take(limit)
                .map(|&i| &self.orders[i])
                .collect(),
            Some(false) => self.orders[start.min(self.orders.len())..]
                .iter()
                .filter(|o| o.status.is_terminal())
                .take(limit)
                .collect(),
            None => self.orders[start.min(self.orders.len())..]
                .iter()
                .take(limit)
                .collect(),
        }
    }

    pub fn quote(&self, symbol: &str) -> Option<Quote> {
        let &i = self.instrument_index.get(symbol)?;
        let (bid, ask) = self.touch(i);
        let instrument = &self.instruments[i];
        Some(Quote {
            symbol: instrument.symbol.clone(),
            bid,
            ask,
            last: instrument.last,
        })
    }

    /// (bid, ask) around the reference price: half the spread each side, at
    /// least one tick, on the tick.
    fn touch(&self, instrument: usize) -> (Decimal, Decimal) {
        let reference = self.instruments[instrument].reference;
        let tick = tick_for(reference);
        let half = round_to_tick(
            reference * self.params.spread_bps / Decimal::from(20_000),
            RoundingStrategy::AwayFromZero,
        )
        .max(tick);
        let bid = round_to_tick(reference - half, RoundingStrategy::ToNegativeInfinity)
            .max(Decimal::new(1, 4));
        let ask = round_to_tick(reference + half, RoundingStrategy::ToPositiveInfinity);
        (bid, ask)
    }

    /// Sets a reference price (admin) and lets resting orders that now cross fill.
    pub fn set_price(&mut self, symbol: &str, price: Decimal, now: DateTime<Utc>) -> Option<Quote> {
        let &i = self.instrument_index.get(symbol)?;
        let price =
            round_to_tick(price, RoundingStrategy::MidpointAwayFromZero).max(MIN_REFERENCE_PRICE);
        self.instruments[i].reference = price;
        self.instruments[i].last = price;
        self.wake_resting(i, now);
        self.check_stops(i, now);
        self.quote(symbol)
    }

    /// Checks a request against the venue's rules (fields, symbol, phase).
    pub fn validate(&self, order: &NewOrder) -> Result<(), PlaceError> {
        if order.client_order_id.is_empty() {
            return Err(PlaceError::Invalid("client_order_id is required".into()));
        }
        if order.client_order_id.chars().count() > MAX_CLIENT_ORDER_ID_LEN {
            return Err(PlaceError::Invalid(format!(
                "client_order_id must be at most {MAX_CLIENT_ORDER_ID_LEN} characters"
            )));
        }
        if let Some(notional) = order.notional {
            if !order.qty.is_zero() {
                return Err(PlaceError::Invalid(
                    "qty and notional cannot both be given".into(),
                ));
            }
            if notional <= Decimal::ZERO
                || notional.normalize().scale() > NOTIONAL_DP
                || notional > Decimal::from(MAX_NOTIONAL)
            {
                return Err(PlaceError::Invalid(format!(
                    "notional must be more than 0, at most {MAX_NOTIONAL}, with at most {NOTIONAL_DP} decimal places"
                )));
            }
        } else if order.qty <= Decimal::ZERO || order.qty.normalize().scale() > QTY_DP {
            return Err(PlaceError::Invalid(format!(
                "qty must be a positive number of shares with at most {QTY_DP} decimal places"
            )));
        }
        if order.qty > Decimal::from(MAX_ORDER_QTY) {
            return Err(PlaceError::Invalid(format!(
                "qty must be at most {MAX_ORDER_QTY}"
            )));
        }
        check_type_fields(order)?;
        let Some(instrument) = self.instrument(&order.symbol) else {
            return Err(PlaceError::UnknownSymbol(order.symbol.clone()));
        };
        if order.notional.is_some() {
            if !instrument.fractionable {
                return Err(PlaceError::Refused(format!(
                    "{} is not fractionable: notional orders need a fractionable asset",
                    instrument.symbol
                )));
            }
            if (order.order_type, order.time_in_force) != FRACTIONAL_ORDER {
                return Err(PlaceError::Refused(
                    "a notional order is a market order with time_in_force day".into(),
                ));
            }
        }
        let fractional = !order.qty.fract().is_zero();
        if fractional && !instrument.fractionable {
            return Err(PlaceError::Refused(format!(
                "{} is not fractionable: qty must be a whole number of shares",
                instrument.symbol
            )));
        }
        if fractional && (order.order_type, order.time_in_force) != FRACTIONAL_ORDER {
            return Err(PlaceError::Refused(
                "a fractional qty is accepted for market orders with time_in_force day only".into(),
            ));
        }
        if order.notional.is_none() && !fractional && order.qty < instrument.min_qty {
            return Err(PlaceError::Invalid(format!(
                "qty must be at least {} for {}",
                instrument.min_qty, instrument.symbol
            )));
        }
        if !instrument.active {
            return Err(PlaceError::NotTradable(order.symbol.clone()));
        }
        if let Some(refusal) = order.time_in_force.refusal_in(self.phase) {
            return Err(PlaceError::WrongPhase(refusal));
        }
        if self.by_client_order_id.contains_key(&order.client_order_id) {
            return Err(PlaceError::DuplicateClientOrderId);
        }
        Ok(())
    }

    /// Creates a venue order. With `venue_reject` the order is recorded as
    /// rejected (the client_order_id is consumed) and a `rejected` report is
    /// published. Otherwise, in continuous trading it is acknowledged `new`
    /// and starts working; outside it (and OPG always) it is `accepted` and
    /// waits for the open or its auction.
    pub fn place(
        &mut self,
        order: NewOrder,
        venue_reject: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Uuid, PlaceError> {
        self.enter(order, venue_reject, None, now)
    }

    /// Enters a validated order: a placement, or (with `replacing`: the
    /// replaced order's id and the quantity it carries in) the replacement
    /// of a cancel/replace.
    fn enter(
        &mut self,
        order: NewOrder,
        venue_reject: Option<String>,
        replacing: Option<(Uuid, Decimal)>,
        now: DateTime<Utc>,
    ) -> Result<Uuid, PlaceError> {
        self.validate(&order)?;
        let Some(&symbol_index) = self.instrument_index.get(&order.symbol) else {
            return Err(PlaceError::UnknownSymbol(order.symbol));
        };
        let tif = order.time_in_force;
        // OPG waits for the opening auction; DAY, GTC and CLS entered
        // outside continuous trading wait for the open.
        let waits = tif == TimeInForce::Opg || !self.phase.is_open();
        let queued = waits && tif != TimeInForce::Opg;
        let status = match (&venue_reject, waits) {
            (Some(_), _) => OrderStatus::Rejected,
            (None, true) => OrderStatus::Accepted,
            (None, false) => OrderStatus::New,
        };
        // Random per process (not seeded): ids must not repeat when the venue
        // restarts with the same seed while a client keeps its records.
        let id = Uuid::new_v4();
        let index = self.orders.len();
        self.orders.push(Order {
            id,
            client_order_id: order.client_order_id.clone(),
            symbol: order.symbol,
            side: order.side,
            order_type: order.order_type,
            time_in_force: tif,
            qty: order.qty.normalize(),
            limit_price: order.limit_price.map(|p| p.normalize()),
            stop_price: order.stop_price.map(|p| p.normalize()),
            trail_price: order.trail_price.map(|p| p.normalize()),
            trail_percent: order.trail_percent.map(|p| p.normalize()),
            hwm: None,
            triggered_at: None,
            status,
            filled_qty: Decimal::ZERO,
            filled_value: Decimal::ZERO,
            notional: order.notional.map(|n| n.normalize()),
            reject_reason: venue_reject.clone(),
            created_at: now,
            updated_at: now,
            version: 1,
            fills: Vec::new(),
            replaces: replacing.map(|(id, _)| id),
            replaced_by: None,
            carried_qty: replacing.map_or(Decimal::ZERO, |(_, carried)| carried),
            symbol_index,
            queued: queued && venue_reject.is_none(),
            chunks_left: 0,
            fill_generation: 0,
            fill_scheduled: false,
            cancel_mode: CancelMode::Normal,
        });
        self.by_id.insert(id, index);
        self.by_client_order_id.insert(order.client_order_id, index);
        if let Some(reason) = venue_reject {
            self.report(index, ExecType::Rejected, None, now, Some(reason));
            return Ok(id);
        }
        self.open.insert(index);
        if waits {
            self.report(index, ExecType::Accepted, None, now, None);
            return Ok(id);
        }
        self.report(index, ExecType::New, None, now, None);
        match tif {
            TimeInForce::Ioc | TimeInForce::Fok => self.execute_immediately(index, now),
            TimeInForce::Day | TimeInForce::Gtc => self.start_working(index, now),
            // CLS rests until the closing auction; OPG never gets here.
            TimeInForce::Cls | TimeInForce::Opg => {}
        }
        Ok(id)
    }

    /// DAY/GTC entering continuous matching: plan the chunks, then fill if
    /// marketable (and the symbol trades), else rest. A stop-type order not
    /// triggered yet waits for its trigger instead (see [`stops`]).
    fn start_working(&mut self, index: usize, now: DateTime<Utc>) {
        debug_assert!(self.orders[index].time_in_force.is_continuous());
        if self.orders[index].awaiting_trigger() {
            self.arm(index, now);
            return;
        }
        // A notional order's quantity is decided at its first execution,
        // which caps its chunks then.
        let qty_cap = match self.orders[index].known_qty() {
            Some(qty) => u32::try_from(qty.mantissa()).unwrap_or(u32::MAX),
            None => u32::MAX,
        };
        let chunks = self
            .rng
            .random_range(self.params.fill_chunks_min..=self.params.fill_chunks_max)
            .min(qty_cap)
            .max(1);
        self.orders[index].chunks_left = chunks;
        if self.can_match(self.orders[index].symbol_index) && self.marketable(index) {
            self.schedule_fill(index, now);
        } else {
            self.rest(index);
        }
    }

    /// Continuous matching runs for this symbol now: the phase is open or
    /// closing_auction, and the symbol is listed and not halted.
    fn can_match(&self, instrument: usize) -> bool {
        let i = &self.instruments[instrument];
        self.phase.is_open() && i.active && !i.halted
    }

    /// IOC/FOK: one attempt against `immediate_liquidity_qty` at the touch
    /// (none while the symbol is halted).
    fn execute_immediately(&mut self, index: usize, now: DateTime<Utc>) {
        let order = &self.orders[index];
        let available = if self.can_match(order.symbol_index) && self.marketable(index) {
            self.params.immediate_liquidity_qty
        } else {
            Decimal::ZERO
        };
        let fillable = order.qty.min(available);
        let fill_qty = match order.time_in_force {
            TimeInForce::Fok if fillable < order.qty => Decimal::ZERO,
            _ => fillable,
        };
        if fill_qty > Decimal::ZERO {
            let price = self.execution_price(index);
            self.apply_fill(index, fill_qty, price, now);
        }
        if !self.orders[index].status.is_terminal() {
            self.finish(index, OrderStatus::Expired, now);
            self.report(index, ExecType::Expired, None, now, None);
        }
    }

    /// Requests a cancel: the order goes `pending_cancel` and the cancel takes
    /// effect after `cancel_latency_ms`, where its outcome is reported.
    pub fn request_cancel(
        &mut self,
        id: Uuid,
        mode: CancelMode,
        now: DateTime<Utc>,
    ) -> Result<(), CancelError> {
        self.request_cancel_after(id, mode, now, 0)
    }

    /// [`Market::request_cancel`], taking effect `extra_ms` later than the
    /// configured latency (the `cancel_delay_ms` fault).
    pub fn request_cancel_after(
        &mut self,
        id: Uuid,
        mode: CancelMode,
        now: DateTime<Utc>,
        extra_ms: u64,
    ) -> Result<(), CancelError> {
        let &index = self.by_id.get(&id).ok_or(CancelError::NotFound)?;
        let order = &mut self.orders[index];
        if order.status.is_terminal() {
            return Err(CancelError::AlreadyTerminal(order.status));
        }
        if order.status == OrderStatus::PendingCancel {
            // A repeated request changes nothing; the first one's outcome stands.
            return Ok(());
        }
        order.status = OrderStatus::PendingCancel;
        order.cancel_mode = mode;
        order.version += 1;
        order.updated_at = now;
        let extra = i64::try_from(extra_ms).unwrap_or(i64::MAX / 4);
        let due = now.timestamp_millis() + self.params.cancel_latency_ms + extra;
        self.push_timer(due, TimerKind::Cancel { order: index });
        Ok(())
    }

    /// Runs everything due at `now`, in time order: the price walk, then
    /// fill chunks, cancels, halt ends and the session's phase events (a
    /// timer due at the same instant as a phase event goes first).
    pub fn advance(&mut self, now: DateTime<Utc>) {
        if now >= self.next_walk {
            self.walk(now);
            self.next_walk = now + Duration::milliseconds(self.params.walk_interval_ms);
        }
        let now_ms = now.timestamp_millis();
        loop {
            let event_ms = self.cursor.due().timestamp_millis();
            let timer = self.timers.peek().map(|Reverse(t)| *t);
            match timer {
                Some(timer) if timer.due_ms <= event_ms && timer.due_ms <= now_ms => {
                    self.timers.pop();
                    self.fire(timer.kind, now);
                }
                _ if event_ms <= now_ms => {
                    let Cursor { session, event } = self.cursor;
                    self.cursor = match event.next() {
                        Some(next) => Cursor {
                            session,
                            event: next,
                        },
                        None => Cursor {
                            session: self.schedule.session_after(&session),
                            event: SessionEvent::PreOpen,
                        },
                    };
                    self.on_session_event(session, event, now);
                }
                _ => break,
            }
        }
    }

    fn fire(&mut self, kind: TimerKind, now: DateTime<Utc>) {
        match kind {
            TimerKind::FillChunk { order, generation } => {
                self.on_fill_chunk(order, generation, now)
            }
            TimerKind::Cancel { order } => self.on_cancel(order, now),
            TimerKind::LateFill { order } => self.on_late_fill(order, now),
            TimerKind::Resume {
                instrument,
                generation,
            } => {
                if self.instruments[instrument].halt_generation == generation {
                    self.resume_index(instrument, now);
                }
            }
        }
    }

    /// Earliest time something is due (for tests and idle ticks).
    pub fn next_due(&self) -> Option<i64> {
        let timer = self.timers.peek().map(|Reverse(t)| t.due_ms);
        let event = self.cursor.due().timestamp_millis();
        Some(timer.map_or(event, |t| t.min(event)))
    }

    /// One walk step: each listed, trading symbol's reference moves; during
    /// continuous trading each may be halted by the `halt` fault.
    fn walk(&mut self, now: DateTime<Utc>) {
        for i in 0..self.instruments.len() {
            if !self.instruments[i].active || self.instruments[i].halted {
                continue;
            }
            if !self.params.walk_step_bps.is_zero() {
                let reference = self.instruments[i].reference;
                let moved = seeded_move(&mut self.rng, reference, self.params.walk_step_bps);
                if moved != reference {
                    self.instruments[i].reference = moved;
                    self.wake_resting(i, now);
                    self.check_stops(i, now);
                }
            }
            if self.phase.is_open()
                && crate::faults::roll(&mut self.halt_rng, self.halt_probability)
            {
                self.fault_halts += 1;
                let generation = self.halt_index(i, HaltReason::Fault, now);
                let due = now.timestamp_millis() + self.halt_ms;
                self.push_timer(
                    due,
                    TimerKind::Resume {
                        instrument: i,
                        generation,
                    },
                );
            }
        }
    }

    /// Lets the resting orders of a symbol that now cross fill — only while
    /// the symbol trades.
    fn wake_resting(&mut self, instrument: usize, now: DateTime<Utc>) {
        if !self.can_match(instrument) {
            return;
        }
        let resting: Vec<usize> = self.instruments[instrument]
            .resting
            .iter()
            .copied()
            .collect();
        for index in resting {
            if self.marketable(index) {
                self.instruments[instrument].resting.remove(&index);
                self.schedule_fill(index, now);
            }
        }
    }

    fn marketable(&self, index: usize) -> bool {
        let order = &self.orders[index];
        let (bid, ask) = self.touch(order.symbol_index);
        match (order.limit_price, order.side) {
            (None, _) => true,
            (Some(limit), Side::Buy) => limit >= ask,
            (Some(limit), Side::Sell) => limit <= bid,
        }
    }

    /// Touch price, never worse than the limit.
    fn execution_price(&self, index: usize) -> Decimal {
        let order = &self.orders[index];
        let (bid, ask) = self.touch(order.symbol_index);
        match (order.side, order.limit_price) {
            (Side::Buy, None) => ask,
            (Side::Sell, None) => bid,
            (Side::Buy, Some(limit)) => ask.min(limit),
            (Side::Sell, Some(limit)) => bid.max(limit),
        }
    }

    fn schedule_fill(&mut self, index: usize, due: DateTime<Utc>) {
        let order = &mut self.orders[index];
        order.fill_generation += 1;
        order.fill_scheduled = true;
        let generation = order.fill_generation;
        self.push_timer(
            due.timestamp_millis(),
            TimerKind::FillChunk {
                order: index,
                generation,
            },
        );
    }

    /// Parks a DAY/GTC order until the price crosses it or trading resumes.
    fn rest(&mut self, index: usize) {
        let order = &mut self.orders[index];
        debug_assert!(order.time_in_force.is_continuous());
        order.fill_scheduled = false;
        order.fill_generation += 1;
        let instrument = order.symbol_index;
        self.instruments[instrument].resting.insert(index);
    }

    fn push_timer(&mut self, due_ms: i64, kind: TimerKind) {
        self.timer_seq += 1;
        self.timers.push(Reverse(Timer {
            due_ms,
            seq: self.timer_seq,
            kind,
        }));
    }

    fn on_fill_chunk(&mut self, index: usize, generation: u64, now: DateTime<Utc>) {
        let Some(order) = self.orders.get(index) else {
            return;
        };
        if order.fill_generation != generation || order.status.is_terminal() {
            return;
        }
        if !self.can_match(order.symbol_index) || !self.marketable(index) {
            self.rest(index);
            return;
        }
        let price = self.execution_price(index);
        if !self.decide_qty(index, price, now) {
            let reason = format!("the notional buys no share at {price}");
            self.finish(index, OrderStatus::Canceled, now);
            self.report(index, ExecType::Canceled, None, now, Some(reason));
            return;
        }
        let order = &mut self.orders[index];
        let leaves = order.qty - order.filled_qty;
        let chunk = if order.chunks_left <= 1 {
            leaves
        } else {
            (leaves / Decimal::from(order.chunks_left))
                .ceil()
                .min(leaves)
        };
        order.chunks_left = order.chunks_left.saturating_sub(1);
        self.apply_fill(index, chunk, price, now);
        if !self.orders[index].status.is_terminal() {
            self.schedule_fill(
                index,
                now + Duration::milliseconds(self.params.fill_interval_ms),
            );
        }
    }

    fn on_cancel(&mut self, index: usize, now: DateTime<Utc>) {
        let Some(order) = self.orders.get(index) else {
            return;
        };
        if order.status == OrderStatus::Canceled {
            // Canceled meanwhile by a delisting: that was the outcome.
            return;
        }
        if order.status.is_terminal() {
            // The order filled (or expired) before the cancel took effect.
            let reason = format!("order is already {}", status_name(order.status));
            self.report(index, ExecType::CancelRejected, None, now, Some(reason));
            return;
        }
        let mode = order.cancel_mode;
        let leaves = order.qty - order.filled_qty;
        let trading = self.can_match(order.symbol_index);
        // Only an order in continuous matching can have a fill on its way.
        let matching = order.time_in_force.is_continuous() && !order.queued;
        let price = self.execution_price(index);
        if mode == CancelMode::FillRacesCancel
            && order.fill_scheduled
            && trading
            && self.decide_qty(index, price, now)
        {
            let leaves = self.orders[index].qty - self.orders[index].filled_qty;
            self.apply_fill(index, leaves, price, now);
            self.report(
                index,
                ExecType::CancelRejected,
                None,
                now,
                Some("order is already filled".into()),
            );
            return;
        }
        self.finish(index, OrderStatus::Canceled, now);
        self.report(index, ExecType::Canceled, None, now, None);
        if mode == CancelMode::FillAfterCancel && leaves > Decimal::ZERO && matching {
            let due = now.timestamp_millis() + self.params.fill_interval_ms;
            self.push_timer(due, TimerKind::LateFill { order: index });
        }
    }

    /// The fill that was already on its way when the cancel was acknowledged:
    /// half the remaining qty (rounded up), the order stays canceled. None
    /// while the symbol does not trade.
    fn on_late_fill(&mut self, index: usize, now: DateTime<Utc>) {
        let Some(order) = self.orders.get(index) else {
            return;
        };
        let remaining = order.qty - order.filled_qty;
        if remaining <= Decimal::ZERO || !self.can_match(order.symbol_index) {
            return;
        }
        let qty = (remaining / Decimal::TWO).ceil().min(remaining);
        let price = self.execution_price(index);
        self.apply_fill(index, qty, price, now);
    }

    /// A notional order's quantity, decided at its first execution at
    /// `price`: as many shares as the notional buys (or, for a sell, as
    /// it is worth), to [`QTY_DP`] places rounded down, so the fills never
    /// cost more than the notional. `false` when that is no share at all.
    /// Every other order (and a notional one decided already): `true`.
    fn decide_qty(&mut self, index: usize, price: Decimal, now: DateTime<Utc>) -> bool {
        let order = &mut self.orders[index];
        let Some(notional) = order.notional else {
            return true;
        };
        if !order.qty.is_zero() {
            return true;
        }
        let qty = (notional / price)
            .round_dp_with_strategy(QTY_DP, RoundingStrategy::ToZero)
            .min(Decimal::from(MAX_ORDER_QTY))
            .normalize();
        if qty.is_zero() {
            return false;
        }
        order.qty = qty;
        order.version += 1;
        order.updated_at = now;
        let cap = u32::try_from(qty.mantissa()).unwrap_or(u32::MAX);
        order.chunks_left = order.chunks_left.min(cap).max(1);
        true
    }

    /// Records a fill and reports it. On a working order the status follows
    /// the fill; a terminal (canceled) order keeps its status.
    fn apply_fill(&mut self, index: usize, qty: Decimal, price: Decimal, now: DateTime<Utc>) {
        self.exec_counter += 1;
        let exec_id = format!("{}-{}", self.run_id, self.exec_counter);
        let order = &mut self.orders[index];
        order.filled_qty += qty;
        order.filled_value += qty * price;
        order.version += 1;
        order.updated_at = now;
        order.fills.push(Fill {
            exec_id: exec_id.clone(),
            qty,
            price,
            transact_time: now,
        });
        let instrument = order.symbol_index;
        let complete = order.filled_qty >= order.qty;
        if complete && !order.status.is_terminal() {
            order.status = OrderStatus::Filled;
        } else if matches!(order.status, OrderStatus::New | OrderStatus::Accepted) {
            order.status = OrderStatus::PartiallyFilled;
        }
        let exec_type = if order.status == OrderStatus::Filled {
            ExecType::Fill
        } else {
            ExecType::PartialFill
        };
        self.instruments[instrument].last = price;
        if self.orders[index].status.is_terminal() {
            self.finish(index, self.orders[index].status, now);
        }
        self.report_with_id(index, exec_id, exec_type, Some((qty, price)), now, None);
    }

    /// Moves an order to a terminal status and stops all its scheduling.
    fn finish(&mut self, index: usize, status: OrderStatus, now: DateTime<Utc>) {
        let order = &mut self.orders[index];
        if order.status != status {
            order.status = status;
            order.version += 1;
            order.updated_at = now;
        }
        order.fill_generation += 1;
        order.fill_scheduled = false;
        order.queued = false;
        let instrument = order.symbol_index;
        self.instruments[instrument].resting.remove(&index);
        self.instruments[instrument].stops.remove(&index);
        self.open.remove(&index);
    }

    fn report(
        &mut self,
        index: usize,
        exec_type: ExecType,
        last: Option<(Decimal, Decimal)>,
        now: DateTime<Utc>,
        reason: Option<String>,
    ) {
        self.exec_counter += 1;
        let exec_id = format!("{}-{}", self.run_id, self.exec_counter);
        self.report_with_id(index, exec_id, exec_type, last, now, reason);
    }

    fn report_with_id(
        &mut self,
        index: usize,
        exec_id: String,
        exec_type: ExecType,
        last: Option<(Decimal, Decimal)>,
        now: DateTime<Utc>,
        reason: Option<String>,
    ) {
        let order = &self.orders[index];
        self.outbox.push(ExecReport {
            exec_id,
            exec_type,
            order_id: order.id,
            client_order_id: order.client_order_id.clone(),
            symbol: order.symbol.clone(),
            side: order.side,
            status: order.status,
            last_qty: last.map_or(Decimal::ZERO, |(q, _)| q),
            last_px: last.map(|(_, p)| p),
            cum_qty: order.filled_qty,
            leaves_qty: order.leaves_qty(),
            avg_px: order.avg_price(),
            transact_time: now,
            reason,
            qty: order.known_qty(),
            notional: order.notional,
        });
    }
}

/// The wire name of a status.
pub fn status_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Accepted => "accepted",
        OrderStatus::New => "new",
        OrderStatus::PartiallyFilled => "partially_filled",
        OrderStatus::Filled => "filled",
        OrderStatus::PendingCancel => "pending_cancel",
        OrderStatus::Canceled => "canceled",
        OrderStatus::Expired => "expired",
        OrderStatus::Rejected => "rejected",
        OrderStatus::Replaced => "replaced",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 2, 14, 30, 0)
            .single()
            .expect("time")
    }

    fn market(config: Config) -> Market {
        Market::new(
            MarketParams::from_config(&config).expect("params"),
            &config.symbols,
            7,
            "run".into(),
            t0(),
        )
    }

    fn frozen() -> Config {
        Config {
            walk_step_bps: Decimal::ZERO,
            ..Config::default()
        }
    }

    fn order(coid: &str, side: Side, tif: TimeInForce, qty: u32, limit: Option<&str>) -> NewOrder {
        NewOrder {
            client_order_id: coid.into(),
            symbol: "AAPL".into(),
            side,
            order_type: if limit.is_some() {
                OrderType::Limit
            } else {
                OrderType::Market
            },
            time_in_force: tif,
            qty: qty.into(),
            limit_price: limit.map(|p| p.parse().expect("price")),
            stop_price: None,
            trail_price: None,
            trail_percent: None,
            notional: None,
        }
    }

    fn ms(n: i64) -> DateTime<Utc> {
        t0() + Duration::milliseconds(n)
    }

    #[test]
    fn tick_rules() {
        assert!(is_on_tick("1.00".parse().expect("d")));
        assert!(is_on_tick("190.5".parse().expect("d")));
        assert!(!is_on_tick("190.123".parse().expect("d")));
        assert!(is_on_tick("0.9999".parse().expect("d")));
        assert!(!is_on_tick("0.99995".parse().expect("d")));
        assert!(!is_on_tick(Decimal::ZERO));
        assert!(
            !is_on_tick("1.0001".parse().expect("d")),
            "above $1 the tick is a cent"
        );
    }

    #[test]
    fn quote_straddles_the_reference_on_the_tick() {
        let m = market(frozen());
        let q = m.quote("AAPL").expect("quote");
        assert_eq!(q.bid, Decimal::new(18998, 2));
        assert_eq!(q.ask, Decimal::new(19002, 2));
        assert_eq!(q.last, Decimal::from(190));
        assert!(m.quote("NOPE").is_none());
    }

    #[test]
    fn market_order_fills_in_chunks_as_time_passes() {
        let mut m = market(Config {
            fill_chunks_min: 3,
            fill_chunks_max: 3,
            fill_interval_ms: 100,
            ..frozen()
        });
        let id = m
            .place(
                order("a", Side::Buy, TimeInForce::Day, 10, None),
                None,
                t0(),
            )
            .expect("placed");
        let types: Vec<_> = m.drain_reports().iter().map(|r| r.exec_type).collect();
        assert_eq!(types, [ExecType::New]);
        m.advance(ms(0));
        let r = m.drain_reports();
        assert_eq!(
            (r.len(), r[0].last_qty, r[0].last_px),
            (1, Decimal::from(4), Some(Decimal::new(19002, 2)))
        );
        m.advance(ms(99));
        assert!(m.drain_reports().is_empty(), "next chunk not due yet");
        m.advance(ms(100));
        assert_eq!(m.drain_reports()[0].last_qty, Decimal::from(3));
        m.advance(ms(200));
        let r = m.drain_reports();
        assert_eq!(
            (r[0].exec_type, r[0].cum_qty, r[0].leaves_qty),
            (ExecType::Fill, 10.into(), 0.into())
        );
        let o = m.order(id).expect("order");
        assert_eq!(
            (o.status, o.version, o.fills.len()),
            (OrderStatus::Filled, 4, 3)
        );
        assert_eq!(o.avg_price(), Some(Decimal::new(19002, 2)));
    }

    /// 2.5 shares in three chunks: whole shares first, the fraction last;
    /// the fills add up to the order exactly.
    #[test]
    fn a_fractional_market_order_fills_exactly() {
        let mut m = market(Config {
            fill_chunks_min: 3,
            fill_chunks_max: 3,
            fill_interval_ms: 100,
            ..frozen()
        });
        let fractional = |coid: &str, qty: &str, tif| NewOrder {
            qty: qty.parse().expect("qty"),
            ..order(coid, Side::Buy, tif, 1, None)
        };
        let id = m
            .place(fractional("f", "2.5", TimeInForce::Day), None, t0())
            .expect("placed");
        m.drain_reports();
        for step in [0, 100, 200] {
            m.advance(ms(step));
        }
        let qtys: Vec<Decimal> = m.drain_reports().iter().map(|r| r.last_qty).collect();
        assert_eq!(qtys, [Decimal::ONE, Decimal::ONE, Decimal::new(5, 1)]);
        let o = m.order(id).expect("order");
        assert_eq!(
            (o.status, o.filled_qty),
            (OrderStatus::Filled, Decimal::new(25, 1))
        );
        // Nine places at most; market day only; fractionable symbols only.
        let refused = |m: &Market, o: NewOrder| m.validate(&o).expect_err("refused");
        assert!(matches!(
            refused(&m, fractional("x1", "0.1234567891", TimeInForce::Day)),
            PlaceError::Invalid(_)
        ));
        assert!(matches!(
            refused(&m, fractional("x2", "0.5", TimeInForce::Gtc)),
            PlaceError::Refused(_)
        ));
        let mut limit = fractional("x3", "0.5", TimeInForce::Day);
        limit.order_type = OrderType::Limit;
        limit.limit_price = Some(Decimal::from(190));
        assert!(matches!(refused(&m, limit), PlaceError::Refused(_)));
        let mut whole_only = market(Config {
            symbols: vec![SymbolConfig {
                fractionable: Some(false),
                ..SymbolConfig::new("AAPL", "Apple Inc.", Decimal::from(190))
            }],
            ..frozen()
        });
        assert!(matches!(
            refused(&whole_only, fractional("x4", "0.5", TimeInForce::Day)),
            PlaceError::Refused(_)
        ));
        assert!(
            whole_only
                .place(order("w", Side::Buy, TimeInForce::Day, 1, None), None, t0())
                .is_ok()
        );
    }

    /// $1,000 of AAPL at an ask of 190.02: the venue decides 5.262603936
    /// shares (rounded down, so the fills cost at most the notional) at the
    /// first execution, then fills them in chunks; the reports carry the
    /// qty once decided, null before.
    #[test]
    fn a_notional_order_gets_its_qty_at_execution() {
        let mut m = market(Config {
            fill_chunks_min: 3,
            fill_chunks_max: 3,
            fill_interval_ms: 100,
            ..frozen()
        });
        let notional = |coid: &str, side, amount: &str| NewOrder {
            qty: Decimal::ZERO,
            notional: Some(amount.parse().expect("notional")),
            ..order(coid, side, TimeInForce::Day, 1, None)
        };
        let id = m
            .place(notional("n", Side::Buy, "1000"), None, t0())
            .expect("placed");
        let new = m.drain_reports();
        assert_eq!(
            (new[0].qty, new[0].notional),
            (None, Some(Decimal::from(1000)))
        );
        assert_eq!(m.order(id).expect("order").known_qty(), None);
        for step in [0, 100, 200] {
            m.advance(ms(step));
        }
        let fills = m.drain_reports();
        let qty: Decimal = "5.262603936".parse().expect("qty");
        assert!(fills.iter().all(|r| r.qty == Some(qty)), "{fills:?}");
        let o = m.order(id).expect("order");
        assert_eq!(
            (o.status, o.filled_qty, o.qty),
            (OrderStatus::Filled, qty, qty)
        );
        assert!(o.filled_value <= Decimal::from(1000), "{}", o.filled_value);
        assert_eq!(o.filled_value, qty * Decimal::new(19002, 2));
        // A sell's qty is what the notional is worth at the bid.
        let sell = m
            .place(notional("s", Side::Sell, "100"), None, ms(300))
            .expect("placed");
        for step in [300, 400, 500] {
            m.advance(ms(step));
        }
        let o = m.order(sell).expect("order");
        assert_eq!(o.qty, "0.526371196".parse::<Decimal>().expect("qty"));
        assert_eq!(o.status, OrderStatus::Filled);
        // Too little to buy a billionth of a share: canceled at execution.
        let dust = m
            .place(notional("d", Side::Buy, "0.000000001"), None, ms(600))
            .expect("placed");
        m.advance(ms(600));
        let o = m.order(dust).expect("order");
        assert_eq!((o.status, o.known_qty()), (OrderStatus::Canceled, None));
        // Exactly one of qty and notional; market day of a fractionable symbol.
        let both = NewOrder {
            qty: Decimal::ONE,
            ..notional("b", Side::Buy, "10")
        };
        assert!(matches!(m.validate(&both), Err(PlaceError::Invalid(_))));
        let mut gtc = notional("g", Side::Buy, "10");
        gtc.time_in_force = TimeInForce::Gtc;
        assert!(matches!(m.validate(&gtc), Err(PlaceError::Refused(_))));
        assert!(matches!(
            m.validate(&notional("p", Side::Buy, "0.0000000001")),
            Err(PlaceError::Invalid(_))
        ));
    }

    #[test]
    fn limit_order_rests_until_crossed_and_fills_at_or_better_than_limit() {
        let mut m = market(frozen());
        let id = m
            .place(
                order("a", Side::Buy, TimeInForce::Gtc, 5, Some("189.00")),
                None,
                t0(),
            )
            .expect("placed");
        m.advance(ms(1000));
        assert_eq!(m.order(id).expect("o").status, OrderStatus::New);
        m.set_price("AAPL", "188.50".parse().expect("d"), ms(1000));
        for step in 0..10 {
            m.advance(ms(1000 + step * 100));
        }
        let o = m.order(id).expect("o");
        assert_eq!(o.status, OrderStatus::Filled);
        assert!(o.fills.iter().all(|f| f.price <= "189".parse().expect("d")));
    }

    #[test]
    fn ioc_and_fok_against_limited_liquidity() {
        let mut m = market(Config {
            immediate_liquidity_qty: 100,
            ..frozen()
        });
        let ioc = m
            .place(
                order("i", Side::Sell, TimeInForce::Ioc, 150, None),
                None,
                t0(),
            )
            .expect("p");
        let o = m.order(ioc).expect("o");
        assert_eq!((o.status, o.filled_qty), (OrderStatus::Expired, 100.into()));
        let fok = m
            .place(
                order("f", Side::Sell, TimeInForce::Fok, 150, None),
                None,
                t0(),
            )
            .expect("p");
        let o = m.order(fok).expect("o");
        assert_eq!((o.status, o.filled_qty), (OrderStatus::Expired, 0.into()));
    }

    #[test]
    fn validation_and_duplicates() {
        let mut m = market(frozen());
        assert!(matches!(
            m.validate(&order("a", Side::Buy, TimeInForce::Day, 0, None)),
            Err(PlaceError::Invalid(_))
        ));
        assert!(matches!(
            m.validate(&order("a", Side::Buy, TimeInForce::Day, 1, Some("1.001"))),
            Err(PlaceError::Invalid(_))
        ));
        let mut unknown = order("a", Side::Buy, TimeInForce::Day, 1, None);
        unknown.symbol = "ZZZ".into();
        assert_eq!(
            m.validate(&unknown),
            Err(PlaceError::UnknownSymbol("ZZZ".into()))
        );
        m.place(
            order("a", Side::Buy, TimeInForce::Day, 1, None),
            Some("no".into()),
            t0(),
        )
        .expect("rejected order");
        assert_eq!(
            m.order_by_client_order_id("a").expect("o").status,
            OrderStatus::Rejected
        );
        assert_eq!(
            m.place(order("a", Side::Buy, TimeInForce::Day, 1, None), None, t0()),
            Err(PlaceError::DuplicateClientOrderId)
        );
    }

    #[test]
    fn session_close_expires_day_orders_only() {
        let mut m = market(Config {
            session_secs: 10,
            ..frozen()
        });
        let day = m
            .place(
                order("d", Side::Buy, TimeInForce::Day, 1, Some("100")),
                None,
                t0(),
            )
            .expect("p");
        let gtc = m
            .place(
                order("g", Side::Buy, TimeInForce::Gtc, 1, Some("100")),
                None,
                t0(),
            )
            .expect("p");
        // Open 10 s, then the 1 s closing auction; the close is at 11 s.
        m.advance(ms(10_999));
        assert_eq!(m.order(day).expect("o").status, OrderStatus::New);
        m.advance(ms(11_000));
        assert_eq!(m.order(day).expect("o").status, OrderStatus::Expired);
        assert_eq!(m.order(gtc).expect("o").status, OrderStatus::New);
        // A day is 1 + 1 + 10 + 1 + 1 = 14 s.
        assert_eq!(m.clock(ms(11_000)).next_close, ms(25_000));
    }

    #[test]
    fn cancel_outcomes() {
        let mut m = market(Config {
            fill_chunks_min: 2,
            fill_chunks_max: 2,
            fill_interval_ms: 100,
            ..frozen()
        });
        let resting = m
            .place(
                order("r", Side::Buy, TimeInForce::Gtc, 10, Some("100")),
                None,
                t0(),
            )
            .expect("p");
        m.request_cancel(resting, CancelMode::FillAfterCancel, t0())
            .expect("cancel");
        assert_eq!(
            m.order(resting).expect("o").status,
            OrderStatus::PendingCancel
        );
        m.advance(ms(0));
        m.advance(ms(100));
        let r = m.drain_reports();
        let kinds: Vec<_> = r.iter().map(|r| (r.exec_type, r.status)).collect();
        assert_eq!(
            kinds,
            [
                (ExecType::New, OrderStatus::New),
                (ExecType::Canceled, OrderStatus::Canceled),
                (ExecType::PartialFill, OrderStatus::Canceled)
            ]
        );
        assert_eq!((r[2].cum_qty, r[2].leaves_qty), (5.into(), 0.into()));
        assert_eq!(
            m.request_cancel(resting, CancelMode::Normal, ms(200)),
            Err(CancelError::AlreadyTerminal(OrderStatus::Canceled))
        );
        assert_eq!(
            m.request_cancel(Uuid::nil(), CancelMode::Normal, ms(200)),
            Err(CancelError::NotFound)
        );

        let racing = m
            .place(
                order("x", Side::Buy, TimeInForce::Gtc, 10, None),
                None,
                ms(200),
            )
            .expect("p");
        m.request_cancel(racing, CancelMode::FillRacesCancel, ms(200))
            .expect("cancel");
        m.advance(ms(200));
        let kinds: Vec<_> = m.drain_reports().iter().map(|r| r.exec_type).collect();
        assert_eq!(
            kinds,
            [
                ExecType::New,
                ExecType::PartialFill,
                ExecType::Fill,
                ExecType::CancelRejected
            ]
        );
        assert_eq!(m.order(racing).expect("o").status, OrderStatus::Filled);
    }

    #[test]
    fn same_seed_same_walk() {
        let walk = |seed| {
            let config = Config::default();
            let mut m = Market::new(
                MarketParams::from_config(&config).expect("params"),
                &config.symbols,
                seed,
                "r".into(),
                t0(),
            );
            (1..50)
                .map(|i| {
                    m.advance(ms(i * 250));
                    m.quote("NVDA").expect("q").bid
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(walk(3), walk(3));
        assert_ne!(walk(3), walk(4));
    }

    #[test]
    fn listing_pages_by_cursor() {
        let mut m = market(frozen());
        let ids: Vec<_> = (0..4)
            .map(|i| {
                m.place(
                    order(
                        &format!("l{i}"),
                        Side::Buy,
                        TimeInForce::Gtc,
                        1,
                        Some("100"),
                    ),
                    None,
                    t0(),
                )
                .expect("p")
            })
            .collect();
        let page: Vec<_> = m
            .list(Some(true), Some(ids[1]), 10)
            .iter()
            .map(|o| o.id)
            .collect();
        assert_eq!(page, ids[2..]);
        assert!(m.list(Some(false), None, 10).is_empty());
        m.reset();
        assert!(m.orders().is_empty() && m.order(ids[0]).is_none());
    }
}

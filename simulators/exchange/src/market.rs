//! The venue's pure core: reference prices, quotes, order state and matching.
//!
//! No I/O, no clock, no tokio: every operation takes `now`, randomness comes
//! from the seeded generator owned by the market, and execution reports are
//! appended to an outbox that the caller drains and publishes. Fault choices
//! that change the market's behaviour (the cancel races) are decided by the
//! caller and passed in.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{Config, SymbolConfig};

/// Largest quantity of one order, in shares.
pub const MAX_ORDER_QTY: u64 = 10_000_000;
/// Largest limit price accepted.
pub const MAX_LIMIT_PRICE: u64 = 1_000_000;
/// Longest client_order_id accepted.
pub const MAX_CLIENT_ORDER_ID_LEN: usize = 48;
/// Decimal places of `avg_px` / `filled_avg_price`.
pub const AVG_PRICE_DP: u32 = 6;
/// Smallest reference price the walk may reach.
const MIN_REFERENCE_PRICE: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    Day,
    Gtc,
    Ioc,
    Fok,
}

/// Order status (Alpaca vocabulary). `accepted` is part of the vocabulary but
/// this venue acknowledges synchronously, so orders start at `new`.
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
}

impl OrderStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Canceled
                | OrderStatus::Expired
                | OrderStatus::Rejected
        )
    }
}

/// What happened, separate from the order's resulting status (FIX ExecType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecType {
    New,
    PartialFill,
    Fill,
    Canceled,
    Expired,
    Rejected,
    CancelRejected,
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
    pub status: OrderStatus,
    pub filled_qty: Decimal,
    /// Sum of qty * price over the fills.
    pub notional: Decimal,
    pub reject_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Increases with every change of the order.
    pub version: u64,
    pub fills: Vec<Fill>,
    symbol_index: usize,
    /// Fill chunks still planned (the last one takes all that is left).
    chunks_left: u32,
    /// Bumped to invalidate scheduled fill chunks.
    fill_generation: u64,
    fill_scheduled: bool,
    cancel_mode: CancelMode,
}

impl Order {
    /// Qty still working: 0 once the order is terminal.
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
                (self.notional / self.filled_qty)
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
}

/// A symbol's quote.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub symbol: String,
    pub bid: Decimal,
    pub ask: Decimal,
    pub last: Decimal,
}

/// A tradable symbol and its price state.
#[derive(Debug, Clone)]
pub struct Instrument {
    pub symbol: String,
    pub name: String,
    pub reference: Decimal,
    pub last: Decimal,
    /// Orders of this symbol waiting for the price to cross their limit.
    resting: BTreeSet<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceError {
    /// A field fails validation (HTTP 400).
    Invalid(String),
    /// Unknown symbol (HTTP 422).
    UnknownSymbol(String),
    /// The client_order_id was used before (HTTP 422).
    DuplicateClientOrderId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelError {
    NotFound,
    AlreadyTerminal(OrderStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    FillChunk { generation: u64 },
    Cancel,
    LateFill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    due_ms: i64,
    seq: u64,
    order: usize,
    kind: TimerKind,
}

/// Market parameters taken from `Config`.
#[derive(Debug, Clone)]
pub struct MarketParams {
    pub fill_chunks_min: u32,
    pub fill_chunks_max: u32,
    pub fill_interval_ms: i64,
    pub immediate_liquidity_qty: Decimal,
    pub session_ms: i64,
    pub walk_interval_ms: i64,
    pub walk_step_bps: Decimal,
    pub spread_bps: Decimal,
    pub cancel_latency_ms: i64,
}

impl MarketParams {
    pub fn from_config(config: &Config) -> MarketParams {
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX / 4);
        MarketParams {
            fill_chunks_min: config.fill_chunks_min.max(1),
            fill_chunks_max: config.fill_chunks_max.max(config.fill_chunks_min.max(1)),
            fill_interval_ms: ms(config.fill_interval_ms),
            immediate_liquidity_qty: Decimal::from(config.immediate_liquidity_qty),
            session_ms: ms(config.session_secs.saturating_mul(1000)).max(1),
            walk_interval_ms: ms(config.walk_interval_ms).max(1),
            walk_step_bps: config.walk_step_bps,
            spread_bps: config.spread_bps,
            cancel_latency_ms: ms(config.cancel_latency_ms),
        }
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

/// The whole venue state.
pub struct Market {
    params: MarketParams,
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
    session_close: DateTime<Utc>,
    next_walk: DateTime<Utc>,
    outbox: Vec<ExecReport>,
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
                let price = round_to_tick(s.price, RoundingStrategy::MidpointAwayFromZero)
                    .max(MIN_REFERENCE_PRICE);
                Instrument {
                    symbol: s.symbol.clone(),
                    name: if s.name.is_empty() {
                        s.symbol.clone()
                    } else {
                        s.name.clone()
                    },
                    reference: price,
                    last: price,
                    resting: BTreeSet::new(),
                }
            })
            .collect();
        let instrument_index = instruments
            .iter()
            .enumerate()
            .map(|(i, s)| (s.symbol.clone(), i))
            .collect();
        Market {
            session_close: now + Duration::milliseconds(params.session_ms),
            next_walk: now + Duration::milliseconds(params.walk_interval_ms),
            params,
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
        }
    }

    /// Forgets all orders (prices, session and exec id counter are kept).
    pub fn reset(&mut self) {
        self.orders.clear();
        self.by_id.clear();
        self.by_client_order_id.clear();
        self.open.clear();
        self.timers.clear();
        self.outbox.clear();
        for instrument in &mut self.instruments {
            instrument.resting.clear();
        }
    }

    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
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

    pub fn session_close(&self) -> DateTime<Utc> {
        self.session_close
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
        self.quote(symbol)
    }

    /// Checks a request against the venue's rules (symbol, tick, limits).
    pub fn validate(&self, order: &NewOrder) -> Result<(), PlaceError> {
        if order.client_order_id.is_empty() {
            return Err(PlaceError::Invalid("client_order_id is required".into()));
        }
        if order.client_order_id.chars().count() > MAX_CLIENT_ORDER_ID_LEN {
            return Err(PlaceError::Invalid(format!(
                "client_order_id must be at most {MAX_CLIENT_ORDER_ID_LEN} characters"
            )));
        }
        if order.qty <= Decimal::ZERO || !order.qty.fract().is_zero() {
            return Err(PlaceError::Invalid(
                "qty must be a positive whole number of shares".into(),
            ));
        }
        if order.qty > Decimal::from(MAX_ORDER_QTY) {
            return Err(PlaceError::Invalid(format!(
                "qty must be at most {MAX_ORDER_QTY}"
            )));
        }
        match (order.order_type, order.limit_price) {
            (OrderType::Market, Some(_)) => {
                return Err(PlaceError::Invalid(
                    "limit_price is not allowed for market orders".into(),
                ));
            }
            (OrderType::Limit, None) => {
                return Err(PlaceError::Invalid(
                    "limit_price is required for limit orders".into(),
                ));
            }
            (OrderType::Limit, Some(price)) => {
                if price <= Decimal::ZERO || price > Decimal::from(MAX_LIMIT_PRICE) {
                    return Err(PlaceError::Invalid(format!(
                        "limit_price must be > 0 and at most {MAX_LIMIT_PRICE}"
                    )));
                }
                if !is_on_tick(price) {
                    return Err(PlaceError::Invalid(
                        "limit_price must be on the tick (0.01 at or above $1, 0.0001 below)"
                            .into(),
                    ));
                }
            }
            (OrderType::Market, None) => {}
        }
        if !self.instrument_index.contains_key(&order.symbol) {
            return Err(PlaceError::UnknownSymbol(order.symbol.clone()));
        }
        if self.by_client_order_id.contains_key(&order.client_order_id) {
            return Err(PlaceError::DuplicateClientOrderId);
        }
        Ok(())
    }

    /// Creates a venue order. With `venue_reject` the order is recorded as
    /// rejected (the client_order_id is consumed) and a `rejected` report is
    /// published; otherwise it is acknowledged (`new`) and starts working.
    pub fn place(
        &mut self,
        order: NewOrder,
        venue_reject: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Uuid, PlaceError> {
        self.validate(&order)?;
        let Some(&symbol_index) = self.instrument_index.get(&order.symbol) else {
            return Err(PlaceError::UnknownSymbol(order.symbol));
        };
        // Random per process (not seeded): ids must not repeat when the venue
        // restarts with the same seed while a client keeps its records.
        let id = Uuid::new_v4();
        let index = self.orders.len();
        let rejected = venue_reject.is_some();
        self.orders.push(Order {
            id,
            client_order_id: order.client_order_id.clone(),
            symbol: order.symbol,
            side: order.side,
            order_type: order.order_type,
            time_in_force: order.time_in_force,
            qty: order.qty.normalize(),
            limit_price: order.limit_price.map(|p| p.normalize()),
            status: if rejected {
                OrderStatus::Rejected
            } else {
                OrderStatus::New
            },
            filled_qty: Decimal::ZERO,
            notional: Decimal::ZERO,
            reject_reason: venue_reject.clone(),
            created_at: now,
            updated_at: now,
            version: 1,
            fills: Vec::new(),
            symbol_index,
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
        self.report(index, ExecType::New, None, now, None);
        match self.orders[index].time_in_force {
            TimeInForce::Ioc | TimeInForce::Fok => self.execute_immediately(index, now),
            TimeInForce::Day | TimeInForce::Gtc => {
                let qty_cap = u32::try_from(self.orders[index].qty.mantissa()).unwrap_or(u32::MAX);
                let chunks = self
                    .rng
                    .random_range(self.params.fill_chunks_min..=self.params.fill_chunks_max)
                    .min(qty_cap)
                    .max(1);
                self.orders[index].chunks_left = chunks;
                if self.marketable(index) {
                    self.schedule_fill(index, now);
                } else {
                    self.rest(index);
                }
            }
        }
        Ok(id)
    }

    /// IOC/FOK: one attempt against `immediate_liquidity_qty` at the touch.
    fn execute_immediately(&mut self, index: usize, now: DateTime<Utc>) {
        let order = &self.orders[index];
        let available = if self.marketable(index) {
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
        self.push_timer(due, index, TimerKind::Cancel);
        Ok(())
    }

    /// Runs everything due at `now`: price walk, fill chunks, cancels, session close.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        if now >= self.next_walk {
            self.walk(now);
            self.next_walk = now + Duration::milliseconds(self.params.walk_interval_ms);
        }
        let now_ms = now.timestamp_millis();
        while let Some(Reverse(timer)) = self.timers.peek().copied() {
            if timer.due_ms > now_ms {
                break;
            }
            self.timers.pop();
            match timer.kind {
                TimerKind::FillChunk { generation } => {
                    self.on_fill_chunk(timer.order, generation, now)
                }
                TimerKind::Cancel => self.on_cancel(timer.order, now),
                TimerKind::LateFill => self.on_late_fill(timer.order, now),
            }
        }
        while now >= self.session_close {
            self.close_session(now);
            self.session_close += Duration::milliseconds(self.params.session_ms);
        }
    }

    /// Earliest time something is due (for tests and idle ticks).
    pub fn next_due(&self) -> Option<i64> {
        self.timers.peek().map(|Reverse(t)| t.due_ms)
    }

    fn walk(&mut self, now: DateTime<Utc>) {
        if self.params.walk_step_bps.is_zero() {
            return;
        }
        for i in 0..self.instruments.len() {
            let step = Decimal::new(self.rng.random_range(-1000..=1000), 3);
            let reference = self.instruments[i].reference;
            let moved =
                reference + reference * step * self.params.walk_step_bps / Decimal::from(10_000);
            let moved = round_to_tick(moved, RoundingStrategy::MidpointAwayFromZero)
                .max(MIN_REFERENCE_PRICE);
            if moved != reference {
                self.instruments[i].reference = moved;
                self.wake_resting(i, now);
            }
        }
    }

    fn wake_resting(&mut self, instrument: usize, now: DateTime<Utc>) {
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
            index,
            TimerKind::FillChunk { generation },
        );
    }

    fn rest(&mut self, index: usize) {
        let order = &mut self.orders[index];
        order.fill_scheduled = false;
        order.fill_generation += 1;
        let instrument = order.symbol_index;
        self.instruments[instrument].resting.insert(index);
    }

    fn push_timer(&mut self, due_ms: i64, order: usize, kind: TimerKind) {
        self.timer_seq += 1;
        self.timers.push(Reverse(Timer {
            due_ms,
            seq: self.timer_seq,
            order,
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
        if !self.marketable(index) {
            self.rest(index);
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
        let price = self.execution_price(index);
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
        if order.status.is_terminal() {
            // The order filled (or expired) before the cancel took effect.
            let reason = format!("order is already {}", status_name(order.status));
            self.report(index, ExecType::CancelRejected, None, now, Some(reason));
            return;
        }
        let mode = order.cancel_mode;
        let leaves = order.qty - order.filled_qty;
        if mode == CancelMode::FillRacesCancel && order.fill_scheduled {
            let price = self.execution_price(index);
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
        if mode == CancelMode::FillAfterCancel && leaves > Decimal::ZERO {
            let due = now.timestamp_millis() + self.params.fill_interval_ms;
            self.push_timer(due, index, TimerKind::LateFill);
        }
    }

    /// The fill that was already on its way when the cancel was acknowledged:
    /// half the remaining qty (rounded up), the order stays canceled.
    fn on_late_fill(&mut self, index: usize, now: DateTime<Utc>) {
        let Some(order) = self.orders.get(index) else {
            return;
        };
        let remaining = order.qty - order.filled_qty;
        if remaining <= Decimal::ZERO {
            return;
        }
        let qty = (remaining / Decimal::TWO).ceil();
        let price = self.execution_price(index);
        self.apply_fill(index, qty, price, now);
    }

    fn close_session(&mut self, now: DateTime<Utc>) {
        let day_orders: Vec<usize> = self
            .open
            .iter()
            .copied()
            .filter(|&i| self.orders[i].time_in_force == TimeInForce::Day)
            .collect();
        for index in day_orders {
            self.finish(index, OrderStatus::Expired, now);
            self.report(index, ExecType::Expired, None, now, None);
        }
    }

    /// Records a fill and reports it. On a working order the status follows
    /// the fill; a terminal (canceled) order keeps its status.
    fn apply_fill(&mut self, index: usize, qty: Decimal, price: Decimal, now: DateTime<Utc>) {
        self.exec_counter += 1;
        let exec_id = format!("{}-{}", self.run_id, self.exec_counter);
        let order = &mut self.orders[index];
        order.filled_qty += qty;
        order.notional += qty * price;
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
        } else if order.status == OrderStatus::New {
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
        let instrument = order.symbol_index;
        self.instruments[instrument].resting.remove(&index);
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
            MarketParams::from_config(&config),
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
        m.advance(ms(9_999));
        assert_eq!(m.order(day).expect("o").status, OrderStatus::New);
        m.advance(ms(10_000));
        assert_eq!(m.order(day).expect("o").status, OrderStatus::Expired);
        assert_eq!(m.order(gtc).expect("o").status, OrderStatus::New);
        assert_eq!(m.session_close(), ms(20_000));
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
                MarketParams::from_config(&config),
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

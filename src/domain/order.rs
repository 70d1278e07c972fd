//! The order's nouns: validated values with `parse` constructors, and the
//! trader's request once validated. Nothing here knows about HTTP or SQL.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use super::ids::{CLIENT_ORDER_ID_MAX_LEN, ClientOrderId};
use super::{InvalidField, TextEnum, invalid};

/// Longest symbol accepted.
pub const SYMBOL_MAX_LEN: usize = 12;

/// Largest quantity of one order, in shares. A named limit, not a market
/// rule: it keeps notional arithmetic far from overflow.
pub const QTY_MAX: u64 = 10_000_000;

/// Most decimal places of a quantity (Alpaca's limit for fractional
/// shares): orders, venue reports and share amounts at the ledger.
pub const QTY_DP: u32 = 9;

/// Largest limit price accepted.
pub const PRICE_MAX: u64 = 1_000_000;

/// Parses a request field that takes one of `T`'s spellings; the error
/// names the field and lists what it accepts.
pub fn parse_field<T: TextEnum>(text: &str) -> Result<T, InvalidField> {
    T::parse(text).ok_or_else(|| {
        invalid(
            T::NAME,
            format!("must be one of {}, got {:?}", T::spellings(), text),
        )
    })
}

text_enum! {
    /// Buy or sell.
    pub enum Side as "side" { Buy => "buy", Sell => "sell" }
}

text_enum! {
    /// What executes the order: at once at the market, at a limit, or, once
    /// the venue triggers it at its stop price (fixed, or trailing the
    /// price), at the market (stop, trailing_stop) or at a limit
    /// (stop_limit).
    pub enum OrderType as "type" {
        Market => "market",
        Limit => "limit",
        Stop => "stop",
        StopLimit => "stop_limit",
        TrailingStop => "trailing_stop"
    }
}

impl OrderType {
    /// The types the venue triggers.
    pub const STOPS: &'static [OrderType] = &[
        OrderType::Stop,
        OrderType::StopLimit,
        OrderType::TrailingStop,
    ];

    /// Whether the venue holds the order until a trigger.
    pub fn is_stop(self) -> bool {
        Self::STOPS.contains(&self)
    }

    /// Whether a limit price belongs to the order (limit, stop_limit).
    pub fn has_limit(self) -> bool {
        matches!(self, OrderType::Limit | OrderType::StopLimit)
    }
}

/// Largest trail_percent accepted (exclusive), and its decimal places.
pub const TRAIL_PERCENT_MAX: u64 = 100;
pub const TRAIL_PERCENT_DP: u32 = 4;

/// How a trailing stop trails the price: by a price distance, or by a
/// percentage of the high-water mark (the low-water mark for a buy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Trail {
    Price(LimitPrice),
    Percent(TrailPercent),
}

/// A trail percentage: more than 0, less than [`TRAIL_PERCENT_MAX`], at
/// most [`TRAIL_PERCENT_DP`] decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrailPercent(Decimal);

impl TrailPercent {
    pub fn parse(value: Decimal) -> Result<Self, InvalidField> {
        if value <= Decimal::ZERO || value >= Decimal::from(TRAIL_PERCENT_MAX) {
            return Err(invalid(
                "trail_percent",
                format!("must be more than 0 and less than {TRAIL_PERCENT_MAX}"),
            ));
        }
        if value.round_dp(TRAIL_PERCENT_DP) != value {
            return Err(invalid(
                "trail_percent",
                format!("must have at most {TRAIL_PERCENT_DP} decimal places"),
            ));
        }
        Ok(Self(value.normalize()))
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

/// The prices of an order's terms, as the trader gave them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Prices {
    pub limit: Option<LimitPrice>,
    pub stop: Option<LimitPrice>,
    pub trail: Option<Trail>,
}

text_enum! {
    /// How long an order works: the session (day), until canceled (gtc),
    /// at once (ioc, fok), in the opening or the closing auction (opg, cls).
    pub enum TimeInForce as "time_in_force" {
        Day => "day", Gtc => "gtc", Ioc => "ioc", Fok => "fok", Opg => "opg", Cls => "cls"
    }
}

impl TimeInForce {
    /// Orders that end with their session: at its close (day, cls, and
    /// ioc and fok, which end sooner) or at its open (opg, which executes
    /// in the opening auction or not at all).
    pub const ENDS_WITH_SESSION: &'static [TimeInForce] = &[
        TimeInForce::Day,
        TimeInForce::Ioc,
        TimeInForce::Fok,
        TimeInForce::Cls,
        TimeInForce::Opg,
    ];
}

/// Whether `text` is a plain decimal: digits without a superfluous leading
/// zero, then optionally a point and digits. No sign, exponent or spaces
/// (the grammar `/openapi.json`'s patterns describe).
pub fn is_plain_decimal(text: &str) -> bool {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && (whole == "0" || !whole.starts_with('0')) && fraction.is_none_or(digits)
}

/// `text` as a decimal, if it is a plain one ([`is_plain_decimal`]) that
/// fits.
pub fn parse_plain_decimal(text: &str) -> Option<Decimal> {
    if !is_plain_decimal(text) {
        return None;
    }
    text.parse().ok()
}

/// An upper-case ticker symbol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Symbol(String);

impl Symbol {
    pub fn parse(text: &str) -> Result<Self, InvalidField> {
        let upper = text.to_ascii_uppercase();
        if upper.is_empty() {
            return Err(invalid("symbol", "is required"));
        }
        if upper.len() > SYMBOL_MAX_LEN
            || !upper
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/')
        {
            return Err(invalid(
                "symbol",
                format!("must be 1 to {SYMBOL_MAX_LEN} letters, digits, '.' or '/'"),
            ));
        }
        Ok(Self(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A quantity of shares: more than 0, at most [`QTY_MAX`], at most
/// [`QTY_DP`] decimal places. A quantity with a fraction is a fractional
/// order, which only some orders may be ([`NewOrder::new`]) and only for
/// fractionable assets (`Asset::admits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Qty(Decimal);

impl Qty {
    pub fn parse(value: Decimal) -> Result<Self, InvalidField> {
        if value <= Decimal::ZERO {
            return Err(invalid("qty", "must be greater than 0"));
        }
        if value.round_dp(QTY_DP) != value {
            return Err(invalid(
                "qty",
                format!("must have at most {QTY_DP} decimal places"),
            ));
        }
        if value > Decimal::from(QTY_MAX) {
            return Err(invalid("qty", format!("must be at most {QTY_MAX}")));
        }
        Ok(Self(value.normalize()))
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    /// Whether the quantity is not a whole number of shares.
    pub fn is_fractional(self) -> bool {
        !self.0.fract().is_zero()
    }
}

/// The only order a fractional quantity may be (Alpaca's rule for
/// fractional orders): a market order for the day. A notional order too.
pub const FRACTIONAL_ORDER: (OrderType, TimeInForce) = (OrderType::Market, TimeInForce::Day);

/// Largest notional of one order, in dollars: the venue's bound.
pub const NOTIONAL_MAX: u64 = 1_000_000_000;

/// Most decimal places of a notional: cents (a hold is whole cents, and
/// the cash a notional order may spend is what is held).
pub const NOTIONAL_DP: u32 = 2;

/// A notional: cash to trade instead of a quantity, more than 0, at most
/// [`NOTIONAL_MAX`], to the cent. The venue decides the quantity when it
/// executes the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Notional(Decimal);

impl Notional {
    pub fn parse(value: Decimal) -> Result<Self, InvalidField> {
        if value <= Decimal::ZERO {
            return Err(invalid("notional", "must be greater than 0"));
        }
        if value.round_dp(NOTIONAL_DP) != value {
            return Err(invalid(
                "notional",
                format!("must have at most {NOTIONAL_DP} decimal places (cents)"),
            ));
        }
        if value > Decimal::from(NOTIONAL_MAX) {
            return Err(invalid(
                "notional",
                format!("must be at most {NOTIONAL_MAX}"),
            ));
        }
        Ok(Self(value.normalize()))
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

/// How much an order trades: a quantity of shares, or a notional (the
/// venue decides the quantity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Amount {
    #[serde(rename = "qty")]
    Qty(Qty),
    #[serde(rename = "notional")]
    Notional(Notional),
}

impl Amount {
    /// The quantity, when the order has one from the start.
    pub fn qty(self) -> Option<Qty> {
        match self {
            Amount::Qty(qty) => Some(qty),
            Amount::Notional(_) => None,
        }
    }

    pub fn notional(self) -> Option<Notional> {
        match self {
            Amount::Qty(_) => None,
            Amount::Notional(notional) => Some(notional),
        }
    }
}

/// A limit price: positive, on the venue's tick ($0.01 at or above $1,
/// $0.0001 below), at most [`PRICE_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LimitPrice(Decimal);

impl LimitPrice {
    pub fn parse(value: Decimal) -> Result<Self, InvalidField> {
        Self::parse_as("limit_price", value)
    }

    /// A price on the tick given as `field` (a stop_price, a trail_price
    /// obey the limit price's rules).
    pub fn parse_as(field: &'static str, value: Decimal) -> Result<Self, InvalidField> {
        if value <= Decimal::ZERO {
            return Err(invalid(field, "must be greater than 0"));
        }
        if value > Decimal::from(PRICE_MAX) {
            return Err(invalid(field, format!("must be at most {PRICE_MAX}")));
        }
        let tick_places = Self::tick_places(value);
        if value.round_dp(tick_places) != value {
            return Err(invalid(
                field,
                format!(
                    "must be a multiple of the tick: {tick_places} decimal places at most for this price"
                ),
            ));
        }
        Ok(Self(value.normalize()))
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    /// Decimal places of the venue's tick at `price`: $0.01 at or above
    /// $1, $0.0001 below.
    pub fn tick_places(price: Decimal) -> u32 {
        if price >= Decimal::ONE { 2 } else { 4 }
    }
}

/// A validated new-order request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewOrder {
    pub symbol: Symbol,
    pub side: Side,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    #[serde(flatten)]
    pub amount: Amount,
    #[serde(skip)]
    pub prices: Prices,
    pub client_order_id: Option<ClientOrderId>,
    /// When the order is derived from another request (a position's
    /// close), that request's digest: what makes a retry of it a replay,
    /// whatever order it derives this time.
    #[serde(skip)]
    pub request_digest: Option<String>,
}

impl Prices {
    /// The prices that must be on the instrument's tick, by field.
    pub fn on_the_tick(&self) -> Vec<(&'static str, Decimal)> {
        let mut prices = Vec::new();
        if let Some(limit) = self.limit {
            prices.push(("limit_price", limit.value()));
        }
        if let Some(stop) = self.stop {
            prices.push(("stop_price", stop.value()));
        }
        if let Some(Trail::Price(trail)) = self.trail {
            prices.push(("trail_price", trail.value()));
        }
        prices
    }

    /// The terms as plain decimals, as rows and holds carry them.
    pub fn terms(&self) -> PriceTerms {
        PriceTerms {
            limit: self.limit.map(LimitPrice::value),
            stop: self.stop.map(LimitPrice::value),
            trail_price: match self.trail {
                Some(Trail::Price(p)) => Some(p.value()),
                _ => None,
            },
            trail_percent: match self.trail {
                Some(Trail::Percent(p)) => Some(p.value()),
                _ => None,
            },
        }
    }
}

/// An order's prices as plain decimals (as stored): what its hold is
/// sized from and what the venue is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PriceTerms {
    pub limit: Option<Decimal>,
    pub stop: Option<Decimal>,
    pub trail_price: Option<Decimal>,
    pub trail_percent: Option<Decimal>,
}

/// Times in force a stop order takes (Alpaca's): it works until its
/// trigger, in the session or until canceled.
pub const STOP_TIMES_IN_FORCE: [TimeInForce; 2] = [TimeInForce::Day, TimeInForce::Gtc];

impl NewOrder {
    /// Cross-field rules: each type takes exactly its prices (limit:
    /// limit_price; stop: stop_price; stop_limit: both; trailing_stop:
    /// trail_price or trail_percent), a stop order works day or gtc, and a
    /// fractional qty is a market order for the day ([`FRACTIONAL_ORDER`]).
    pub fn new(
        symbol: Symbol,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        qty: Qty,
        prices: Prices,
        client_order_id: Option<ClientOrderId>,
    ) -> Result<Self, InvalidField> {
        Self::of(
            symbol,
            side,
            order_type,
            time_in_force,
            Amount::Qty(qty),
            prices,
            client_order_id,
        )
    }

    /// [`NewOrder::new`] for either amount: a notional order is a market
    /// order for the day ([`FRACTIONAL_ORDER`]), as Alpaca's.
    pub fn of(
        symbol: Symbol,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        amount: Amount,
        prices: Prices,
        client_order_id: Option<ClientOrderId>,
    ) -> Result<Self, InvalidField> {
        let kind = order_type.as_str();
        let needs = |field: &'static str| invalid(field, format!("is required for {kind} orders"));
        let refuses =
            |field: &'static str| invalid(field, format!("must not be given for {kind} orders"));
        match (order_type.has_limit(), prices.limit) {
            (true, None) => return Err(needs("limit_price")),
            (false, Some(_)) => return Err(refuses("limit_price")),
            _ => {}
        }
        let takes_stop = matches!(order_type, OrderType::Stop | OrderType::StopLimit);
        match (takes_stop, prices.stop) {
            (true, None) => return Err(needs("stop_price")),
            (false, Some(_)) => return Err(refuses("stop_price")),
            _ => {}
        }
        match (order_type == OrderType::TrailingStop, prices.trail) {
            (true, None) => {
                return Err(invalid(
                    "trail_price",
                    "or trail_percent is required for trailing_stop orders",
                ));
            }
            (false, Some(Trail::Price(_))) => return Err(refuses("trail_price")),
            (false, Some(Trail::Percent(_))) => return Err(refuses("trail_percent")),
            _ => {}
        }
        let (fractional_type, fractional_tif) = FRACTIONAL_ORDER;
        if amount.notional().is_some() {
            if order_type != fractional_type {
                return Err(invalid(
                    "notional",
                    format!("is accepted for {fractional_type} orders only, not {kind}; give qty"),
                ));
            }
            if time_in_force != fractional_tif {
                return Err(invalid(
                    "time_in_force",
                    format!(
                        "{time_in_force} is not supported for notional orders; use {fractional_tif}"
                    ),
                ));
            }
        }
        if let Some(qty) = amount.qty().filter(|q| q.is_fractional()) {
            if order_type != fractional_type {
                return Err(invalid(
                    "qty",
                    format!(
                        "a fractional qty ({}) is accepted for {fractional_type} orders only, not {kind}; use whole shares",
                        qty.value()
                    ),
                ));
            }
            if time_in_force != fractional_tif {
                return Err(invalid(
                    "time_in_force",
                    format!(
                        "{time_in_force} is not supported for fractional orders; use {fractional_tif}"
                    ),
                ));
            }
        }
        if order_type.is_stop() && !STOP_TIMES_IN_FORCE.contains(&time_in_force) {
            return Err(invalid(
                "time_in_force",
                format!("{time_in_force} is not supported for {kind} orders; use day or gtc"),
            ));
        }
        Ok(Self {
            symbol,
            side,
            order_type,
            time_in_force,
            amount,
            prices,
            client_order_id,
            request_digest: None,
        })
    }

    /// The order, derived from a request with digest `digest`.
    pub fn derived_from(mut self, digest: String) -> Self {
        self.request_digest = Some(digest);
        self
    }

    /// A digest of what the order *is* (not how it was spelled): two
    /// requests with the same fingerprint are the same request, so a repeat
    /// is a replay and anything else under the same key is a conflict.
    pub fn fingerprint(&self) -> String {
        if let Some(digest) = &self.request_digest {
            return digest.clone();
        }
        let canonical = format!(
            "v1|{}|{}|{}|{}|{}|{}|{}",
            self.symbol,
            self.side,
            self.order_type,
            self.time_in_force,
            match self.amount {
                Amount::Qty(qty) => qty.value().normalize().to_string(),
                Amount::Notional(n) => format!("notional:{}", n.value().normalize()),
            },
            self.prices
                .limit
                .map(|p| p.value().normalize().to_string())
                .unwrap_or_default(),
            self.client_order_id
                .as_ref()
                .map(ClientOrderId::as_str)
                .unwrap_or_default(),
        );
        // A stop order's terms follow; a market or limit order's digest is
        // what it always was, so a retry across an upgrade still matches.
        let canonical = match (self.prices.stop, self.prices.trail) {
            (None, None) => canonical,
            (stop, trail) => format!(
                "{canonical}|stop={}|trail={}",
                stop.map(|p| p.value().normalize().to_string())
                    .unwrap_or_default(),
                match trail {
                    Some(Trail::Price(p)) => format!("price:{}", p.value().normalize()),
                    Some(Trail::Percent(p)) => format!("percent:{}", p.value().normalize()),
                    None => String::new(),
                }
            ),
        };
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;

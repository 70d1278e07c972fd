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
    /// Market or limit (the order types orderd supports).
    pub enum OrderType as "type" { Market => "market", Limit => "limit" }
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

/// A quantity of whole shares, 1 ..= [`QTY_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Qty(Decimal);

impl Qty {
    pub fn parse(value: Decimal) -> Result<Self, InvalidField> {
        if value <= Decimal::ZERO {
            return Err(invalid("qty", "must be greater than 0"));
        }
        if value.fract() != Decimal::ZERO {
            return Err(invalid("qty", "must be a whole number of shares"));
        }
        if value > Decimal::from(QTY_MAX) {
            return Err(invalid("qty", format!("must be at most {QTY_MAX}")));
        }
        Ok(Self(value.normalize()))
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

/// A limit price: positive, on the venue's tick ($0.01 at or above $1,
/// $0.0001 below), at most [`PRICE_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LimitPrice(Decimal);

impl LimitPrice {
    pub fn parse(value: Decimal) -> Result<Self, InvalidField> {
        if value <= Decimal::ZERO {
            return Err(invalid("limit_price", "must be greater than 0"));
        }
        if value > Decimal::from(PRICE_MAX) {
            return Err(invalid(
                "limit_price",
                format!("must be at most {PRICE_MAX}"),
            ));
        }
        let tick_places = Self::tick_places(value);
        if value.round_dp(tick_places) != value {
            return Err(invalid(
                "limit_price",
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
    pub qty: Qty,
    pub limit_price: Option<LimitPrice>,
    pub client_order_id: Option<ClientOrderId>,
}

impl NewOrder {
    /// Cross-field rules.
    pub fn new(
        symbol: Symbol,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        qty: Qty,
        limit_price: Option<LimitPrice>,
        client_order_id: Option<ClientOrderId>,
    ) -> Result<Self, InvalidField> {
        match (order_type, limit_price) {
            (OrderType::Limit, None) => {
                return Err(invalid("limit_price", "is required for limit orders"));
            }
            (OrderType::Market, Some(_)) => {
                return Err(invalid(
                    "limit_price",
                    "must not be given for market orders",
                ));
            }
            _ => {}
        }
        Ok(Self {
            symbol,
            side,
            order_type,
            time_in_force,
            qty,
            limit_price,
            client_order_id,
        })
    }

    /// A digest of what the order *is* (not how it was spelled): two
    /// requests with the same fingerprint are the same request, so a repeat
    /// is a replay and anything else under the same key is a conflict.
    pub fn fingerprint(&self) -> String {
        let canonical = format!(
            "v1|{}|{}|{}|{}|{}|{}|{}",
            self.symbol,
            self.side,
            self.order_type,
            self.time_in_force,
            self.qty.value().normalize(),
            self.limit_price
                .map(|p| p.value().normalize().to_string())
                .unwrap_or_default(),
            self.client_order_id
                .as_ref()
                .map(ClientOrderId::as_str)
                .unwrap_or_default(),
        );
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros_free::dec;

    /// `Decimal` literals without a macro crate.
    mod rust_decimal_macros_free {
        pub fn dec(text: &str) -> rust_decimal::Decimal {
            text.parse().expect("decimal literal")
        }
    }

    #[test]
    fn qty_must_be_whole_positive_and_bounded() {
        assert!(Qty::parse(dec("10")).is_ok());
        assert_eq!(Qty::parse(dec("0")).unwrap_err().field, "qty");
        assert!(Qty::parse(dec("-1")).is_err());
        assert!(Qty::parse(dec("1.5")).is_err());
        assert!(Qty::parse(dec("10000001")).is_err());
        assert_eq!(Qty::parse(dec("10.000")).unwrap().value().to_string(), "10");
    }

    #[test]
    fn limit_price_is_on_the_tick() {
        assert!(LimitPrice::parse(dec("190.12")).is_ok());
        assert!(LimitPrice::parse(dec("190.123")).is_err());
        assert!(LimitPrice::parse(dec("0.1234")).is_ok());
        assert!(LimitPrice::parse(dec("0.12345")).is_err());
        assert!(LimitPrice::parse(dec("0")).is_err());
    }

    #[test]
    fn limit_orders_need_a_price_and_market_orders_refuse_one() {
        let base = |t, p| {
            NewOrder::new(
                Symbol::parse("aapl").unwrap(),
                Side::Buy,
                t,
                TimeInForce::Day,
                Qty::parse(dec("1")).unwrap(),
                p,
                None,
            )
        };
        assert!(base(OrderType::Limit, None).is_err());
        assert!(
            base(
                OrderType::Market,
                Some(LimitPrice::parse(dec("1")).unwrap())
            )
            .is_err()
        );
        let ok = base(OrderType::Market, None).unwrap();
        assert_eq!(ok.symbol.as_str(), "AAPL");
    }

    #[test]
    fn fingerprint_ignores_spelling_but_not_meaning() {
        let make = |qty: &str| {
            NewOrder::new(
                Symbol::parse("AAPL").unwrap(),
                Side::Buy,
                OrderType::Market,
                TimeInForce::Day,
                Qty::parse(dec(qty)).unwrap(),
                None,
                None,
            )
            .unwrap()
        };
        assert_eq!(make("10").fingerprint(), make("10.00").fingerprint());
        assert_ne!(make("10").fingerprint(), make("11").fingerprint());
    }

    #[test]
    fn enums_parse_their_wire_names_and_name_the_field() {
        assert_eq!(TimeInForce::parse("fok").unwrap(), TimeInForce::Fok);
        let error = parse_field::<Side>("short").unwrap_err();
        assert_eq!(error.field, "side");
        assert!(error.problem.contains("buy, sell"));
    }
}

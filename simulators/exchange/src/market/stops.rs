//! Stop-type orders (stop, stop_limit, trailing_stop): the fields each
//! order type requires and refuses, and the triggers. A stop-type order
//! waits, without executing, until the trigger price (the symbol's
//! reference price) reaches its stop price; it then works as a market order
//! (stop, trailing_stop) or a limit order at its limit (stop_limit).
//! Triggers are evaluated only in phase `open` for a listed, non-halted
//! symbol: at placement, at the open, on every move of the reference (walk,
//! admin price) and when trading resumes after a halt.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::{
    MAX_LIMIT_PRICE, Market, NewOrder, OrderType, PlaceError, Side, is_on_tick, round_to_tick,
};
use crate::clock::Phase;

/// Most decimal places of a `trail_percent`.
pub const TRAIL_PERCENT_MAX_DP: u32 = 4;

/// The stop price of a trailing stop whose water mark is `hwm`: for a sell
/// `hwm - trail_price` or `hwm * (1 - trail_percent / 100)` rounded down to
/// the tick; for a buy `hwm + trail_price` or `hwm * (1 + trail_percent /
/// 100)` rounded up to the tick (a sell's never below 0). None without a
/// trail.
pub fn trailing_stop_price(
    side: Side,
    hwm: Decimal,
    trail_price: Option<Decimal>,
    trail_percent: Option<Decimal>,
) -> Option<Decimal> {
    let hundred = Decimal::ONE_HUNDRED;
    let raw = match (side, trail_price, trail_percent) {
        // A trail as large as the price: a stop of 0, never reached.
        (Side::Sell, Some(trail), _) => (hwm - trail).max(Decimal::ZERO),
        (Side::Buy, Some(trail), _) => hwm + trail,
        (Side::Sell, None, Some(pct)) => hwm * (hundred - pct) / hundred,
        (Side::Buy, None, Some(pct)) => hwm * (hundred + pct) / hundred,
        (_, None, None) => return None,
    };
    let strategy = match side {
        Side::Sell => RoundingStrategy::ToNegativeInfinity,
        Side::Buy => RoundingStrategy::ToPositiveInfinity,
    };
    Some(round_to_tick(raw, strategy))
}

/// `limit_price` bounds and tick (HTTP 400, as for limit orders).
fn check_limit_price(price: Decimal) -> Result<(), PlaceError> {
    if price <= Decimal::ZERO || price > Decimal::from(MAX_LIMIT_PRICE) {
        return Err(PlaceError::Invalid(format!(
            "limit_price must be > 0 and at most {MAX_LIMIT_PRICE}"
        )));
    }
    if !is_on_tick(price) {
        return Err(PlaceError::Invalid(
            "limit_price must be on the tick (0.01 at or above $1, 0.0001 below)".into(),
        ));
    }
    Ok(())
}

/// The price fields each order type requires and refuses, their bounds,
/// and the times in force of the stop types. The market and limit rules
/// that predate the stop types answer 400 (`Invalid`); the stop types'
/// rules answer 422 (`Refused`).
pub(super) fn check_type_fields(order: &NewOrder) -> Result<(), PlaceError> {
    let kind = order.order_type;
    let name = kind.name();
    let refuse = |message: String| Err(PlaceError::Refused(message));
    let not_allowed = |field: &str| refuse(format!("{field} is not allowed for {name} orders"));
    let required = |field: &str| refuse(format!("{field} is required for {name} orders"));
    let has_trail = order.trail_price.is_some() || order.trail_percent.is_some();
    match kind {
        OrderType::Market | OrderType::Limit => {
            if order.stop_price.is_some() {
                return not_allowed("stop_price");
            }
            if order.trail_price.is_some() {
                return not_allowed("trail_price");
            }
            if order.trail_percent.is_some() {
                return not_allowed("trail_percent");
            }
            match (kind, order.limit_price) {
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
                _ => {}
            }
        }
        OrderType::Stop | OrderType::StopLimit => {
            if order.stop_price.is_none() {
                return required("stop_price");
            }
            match (kind, order.limit_price) {
                (OrderType::Stop, Some(_)) => return not_allowed("limit_price"),
                (OrderType::StopLimit, None) => return required("limit_price"),
                _ => {}
            }
            if order.trail_price.is_some() {
                return not_allowed("trail_price");
            }
            if order.trail_percent.is_some() {
                return not_allowed("trail_percent");
            }
        }
        OrderType::TrailingStop => {
            if order.stop_price.is_some() {
                return not_allowed("stop_price");
            }
            if order.limit_price.is_some() {
                return not_allowed("limit_price");
            }
            if !has_trail {
                return refuse(
                    "trail_price or trail_percent is required for trailing_stop orders".into(),
                );
            }
            if order.trail_price.is_some() && order.trail_percent.is_some() {
                return refuse(
                    "trail_price and trail_percent are exclusive: give exactly one".into(),
                );
            }
        }
    }
    if let Some(limit) = order.limit_price {
        check_limit_price(limit)?;
    }
    if let Some(stop) = order.stop_price {
        if stop <= Decimal::ZERO || stop > Decimal::from(MAX_LIMIT_PRICE) {
            return refuse(format!(
                "stop_price must be > 0 and at most {MAX_LIMIT_PRICE}"
            ));
        }
        if !is_on_tick(stop) {
            return refuse(
                "stop_price must be on the tick (0.01 at or above $1, 0.0001 below)".into(),
            );
        }
    }
    if let Some(trail) = order.trail_price {
        if trail <= Decimal::ZERO || trail > Decimal::from(MAX_LIMIT_PRICE) {
            return refuse(format!(
                "trail_price must be > 0 and at most {MAX_LIMIT_PRICE}"
            ));
        }
        if !is_on_tick(trail) {
            return refuse(
                "trail_price must be on the tick (0.01 at or above $1, 0.0001 below)".into(),
            );
        }
    }
    if let Some(pct) = order.trail_percent {
        if pct <= Decimal::ZERO || pct >= Decimal::ONE_HUNDRED {
            return refuse("trail_percent must be > 0 and < 100".into());
        }
        if pct.normalize().scale() > TRAIL_PERCENT_MAX_DP {
            return refuse(format!(
                "trail_percent must have at most {TRAIL_PERCENT_MAX_DP} decimal places"
            ));
        }
    }
    if kind.is_stop() && !order.time_in_force.is_continuous() {
        return refuse(format!(
            "time_in_force {} is not supported for stop orders: stop, stop_limit and trailing_stop take day or gtc",
            order.time_in_force.name()
        ));
    }
    Ok(())
}

impl Market {
    /// Stop triggers are evaluated for this symbol now: the phase is
    /// `open` (not the closing auction) and the symbol is listed and not
    /// halted.
    fn can_trigger(&self, instrument: usize) -> bool {
        let i = &self.instruments[instrument];
        self.phase == Phase::Open && i.active && !i.halted
    }

    /// A stop-type order starting to work (placed in continuous trading, or
    /// at the open): a trailing stop's water mark starts at the trigger
    /// price if it has none, then it waits for its trigger — evaluated at
    /// once if triggers are.
    pub(super) fn arm(&mut self, index: usize, now: DateTime<Utc>) {
        let instrument = self.orders[index].symbol_index;
        let price = self.instruments[instrument].reference;
        let order = &mut self.orders[index];
        if order.order_type == OrderType::TrailingStop && order.hwm.is_none() {
            order.hwm = Some(price);
        }
        self.instruments[instrument].stops.insert(index);
        if self.can_trigger(instrument) && self.stop_reached(index) {
            self.trigger(index, now);
        }
    }

    /// Evaluates the waiting stop-type orders of a symbol after its price
    /// moved (or trading resumed): trailing stops move their water mark,
    /// and those whose stop price is reached are triggered, in creation
    /// order. Nothing happens while triggers are not evaluated.
    pub(super) fn check_stops(&mut self, instrument: usize, now: DateTime<Utc>) {
        if !self.can_trigger(instrument) || self.instruments[instrument].stops.is_empty() {
            return;
        }
        let waiting: Vec<usize> = self.instruments[instrument].stops.iter().copied().collect();
        for index in waiting {
            if self.stop_reached(index) {
                self.trigger(index, now);
            }
        }
    }

    /// Moves a trailing stop's water mark to the trigger price if it is
    /// better, then tells whether the trigger price reached the stop price:
    /// a buy when it is at or above it, a sell at or below.
    fn stop_reached(&mut self, index: usize) -> bool {
        let price = self.instruments[self.orders[index].symbol_index].reference;
        let order = &mut self.orders[index];
        if order.order_type == OrderType::TrailingStop {
            let hwm = order.hwm.unwrap_or(price);
            order.hwm = Some(match order.side {
                Side::Sell => hwm.max(price),
                Side::Buy => hwm.min(price),
            });
        }
        match (order.current_stop_price(), order.side) {
            (Some(stop), Side::Buy) => price >= stop,
            (Some(stop), Side::Sell) => price <= stop,
            (None, _) => false,
        }
    }

    /// Triggers a waiting stop-type order: it records when, and works from
    /// now on as a market order (stop, trailing_stop) or a limit order at
    /// its limit (stop_limit). No report: its fills are reported as usual.
    fn trigger(&mut self, index: usize, now: DateTime<Utc>) {
        let order = &mut self.orders[index];
        order.triggered_at = Some(now);
        order.version += 1;
        order.updated_at = now;
        let instrument = order.symbol_index;
        self.instruments[instrument].stops.remove(&index);
        self.start_working(index, now);
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::super::{ExecType, MarketParams, OrderStatus, TimeInForce};
    use super::*;
    use crate::config::{ClockConfig, Config};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0)
            .single()
            .expect("time")
    }

    fn ms(n: i64) -> DateTime<Utc> {
        t0() + Duration::milliseconds(n)
    }

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    /// AAPL at 190, frozen walk, 2 chunks every 100 ms.
    fn market_in(start_phase: Phase) -> Market {
        let config = Config {
            walk_step_bps: Decimal::ZERO,
            fill_chunks_min: 2,
            fill_chunks_max: 2,
            fill_interval_ms: 100,
            clock: ClockConfig {
                start_phase,
                ..ClockConfig::default()
            },
            ..Config::default()
        };
        let params = MarketParams::from_config(&config).expect("params");
        Market::new(params, &config.symbols, 7, "run".into(), t0())
    }

    fn open_market() -> Market {
        market_in(Phase::Open)
    }

    fn base(coid: &str, side: Side, order_type: OrderType) -> NewOrder {
        NewOrder {
            client_order_id: coid.into(),
            symbol: "AAPL".into(),
            side,
            order_type,
            time_in_force: TimeInForce::Day,
            qty: 10.into(),
            limit_price: None,
            stop_price: None,
            trail_price: None,
            trail_percent: None,
            notional: None,
        }
    }

    fn stop(coid: &str, side: Side, stop_price: &str) -> NewOrder {
        NewOrder {
            stop_price: Some(d(stop_price)),
            ..base(coid, side, OrderType::Stop)
        }
    }

    fn stop_limit(coid: &str, side: Side, stop_price: &str, limit: &str) -> NewOrder {
        NewOrder {
            stop_price: Some(d(stop_price)),
            limit_price: Some(d(limit)),
            ..base(coid, side, OrderType::StopLimit)
        }
    }

    fn trailing(coid: &str, side: Side, price: Option<&str>, percent: Option<&str>) -> NewOrder {
        NewOrder {
            trail_price: price.map(d),
            trail_percent: percent.map(d),
            ..base(coid, side, OrderType::TrailingStop)
        }
    }

    fn place(m: &mut Market, order: NewOrder, now: DateTime<Utc>) -> uuid::Uuid {
        m.place(order, None, now).expect("placed")
    }

    /// Lets time pass in 100 ms steps (fill chunks are 100 ms apart).
    fn run(m: &mut Market, from_ms: i64, steps: i64) {
        for step in 0..=steps {
            m.advance(ms(from_ms + step * 100));
        }
    }

    fn order(m: &Market, id: uuid::Uuid) -> &crate::market::Order {
        m.order(id).expect("order")
    }

    #[test]
    fn a_buy_stop_triggers_exactly_at_its_stop_price_then_fills_as_a_market_order() {
        let mut m = open_market();
        let id = place(&mut m, stop("b", Side::Buy, "191"), t0());
        let o = order(&m, id);
        assert_eq!(
            (o.status, o.version, o.triggered_at),
            (OrderStatus::New, 1, None)
        );
        assert_eq!(o.current_stop_price(), Some(d("191")));
        m.set_price("AAPL", d("190.99"), ms(100));
        run(&mut m, 100, 5);
        let o = order(&m, id);
        assert_eq!((o.triggered_at, o.fills.len()), (None, 0), "one cent short");
        m.set_price("AAPL", d("191.00"), ms(1000));
        let o = order(&m, id);
        assert_eq!(o.triggered_at, Some(ms(1000)));
        assert_eq!((o.status, o.version), (OrderStatus::New, 2));
        let reports: Vec<_> = m.drain_reports().iter().map(|r| r.exec_type).collect();
        assert_eq!(reports, [ExecType::New], "no report for the trigger itself");
        run(&mut m, 1000, 2);
        let o = order(&m, id);
        assert_eq!((o.status, o.filled_qty), (OrderStatus::Filled, 10.into()));
        // A market order: at the ask (191 + 0.02).
        assert!(o.fills.iter().all(|f| f.price == d("191.02")));
        let types: Vec<_> = m.drain_reports().iter().map(|r| r.exec_type).collect();
        assert_eq!(types, [ExecType::PartialFill, ExecType::Fill]);
    }

    #[test]
    fn a_sell_stop_triggers_exactly_at_its_stop_price() {
        let mut m = open_market();
        let id = place(&mut m, stop("s", Side::Sell, "189"), t0());
        m.set_price("AAPL", d("189.01"), ms(100));
        run(&mut m, 100, 3);
        assert_eq!(order(&m, id).triggered_at, None);
        m.set_price("AAPL", d("189"), ms(500));
        assert_eq!(order(&m, id).triggered_at, Some(ms(500)));
        run(&mut m, 500, 2);
        let o = order(&m, id);
        assert_eq!(o.status, OrderStatus::Filled);
        assert!(o.fills.iter().all(|f| f.price == d("188.98")), "at the bid");
    }

    #[test]
    fn a_stop_already_reached_triggers_at_placement() {
        let mut m = open_market();
        let buy = place(&mut m, stop("b", Side::Buy, "189.50"), t0());
        let sell = place(&mut m, stop("s", Side::Sell, "190"), t0());
        let away = place(&mut m, stop("a", Side::Sell, "189.99"), t0());
        assert_eq!(order(&m, buy).triggered_at, Some(t0()));
        assert_eq!(order(&m, sell).triggered_at, Some(t0()), "at the stop");
        assert_eq!(order(&m, away).triggered_at, None);
        run(&mut m, 0, 2);
        assert_eq!(order(&m, buy).status, OrderStatus::Filled);
        assert_eq!(order(&m, sell).status, OrderStatus::Filled);
        assert!(order(&m, away).fills.is_empty());
    }

    #[test]
    fn a_stop_limit_triggers_then_rests_at_its_limit_until_marketable() {
        let mut m = open_market();
        let id = place(&mut m, stop_limit("sl", Side::Buy, "191", "191"), t0());
        m.set_price("AAPL", d("191"), ms(100));
        assert_eq!(order(&m, id).triggered_at, Some(ms(100)));
        // The ask is 191.02, above the limit: it rests as a limit order.
        run(&mut m, 100, 5);
        let o = order(&m, id);
        assert_eq!((o.status, o.fills.len()), (OrderStatus::New, 0));
        // Below the stop again: still triggered, and now marketable.
        m.set_price("AAPL", d("190.50"), ms(1000));
        run(&mut m, 1000, 2);
        let o = order(&m, id);
        assert_eq!(o.status, OrderStatus::Filled);
        assert!(o.fills.iter().all(|f| f.price <= d("191")));
        assert_eq!(o.triggered_at, Some(ms(100)));
    }

    #[test]
    fn a_trailing_sell_follows_the_price_up_and_triggers_on_a_fall_of_its_trail() {
        let mut m = open_market();
        let id = place(&mut m, trailing("t", Side::Sell, Some("1"), None), t0());
        let o = order(&m, id);
        assert_eq!(
            (o.hwm, o.current_stop_price()),
            (Some(d("190")), Some(d("189")))
        );
        m.set_price("AAPL", d("192"), ms(100));
        let o = order(&m, id);
        assert_eq!(
            (o.hwm, o.current_stop_price()),
            (Some(d("192")), Some(d("191")))
        );
        assert_eq!(
            o.version, 1,
            "the water mark moving is not a change of version"
        );
        m.set_price("AAPL", d("191.01"), ms(200));
        let o = order(&m, id);
        assert_eq!(
            (o.hwm, o.triggered_at),
            (Some(d("192")), None),
            "a fall does not lower it"
        );
        m.set_price("AAPL", d("191"), ms(300));
        assert_eq!(order(&m, id).triggered_at, Some(ms(300)));
        run(&mut m, 300, 2);
        let o = order(&m, id);
        assert_eq!(o.status, OrderStatus::Filled);
        // Triggered: the water mark stays where it was.
        m.set_price("AAPL", d("200"), ms(600));
        assert_eq!(order(&m, id).hwm, Some(d("192")));
    }

    #[test]
    fn a_trailing_buy_follows_the_price_down() {
        let mut m = open_market();
        let id = place(&mut m, trailing("t", Side::Buy, Some("0.50"), None), t0());
        m.set_price("AAPL", d("188"), ms(100));
        let o = order(&m, id);
        assert_eq!(
            (o.hwm, o.current_stop_price()),
            (Some(d("188")), Some(d("188.5")))
        );
        m.set_price("AAPL", d("188.49"), ms(200));
        assert_eq!(order(&m, id).triggered_at, None);
        m.set_price("AAPL", d("188.50"), ms(300));
        assert_eq!(order(&m, id).triggered_at, Some(ms(300)));
    }

    #[test]
    fn trail_percent_stops_round_away_from_the_price_to_the_tick() {
        let sell = |hwm: &str, pct: &str| {
            trailing_stop_price(Side::Sell, d(hwm), None, Some(d(pct))).expect("stop")
        };
        let buy = |hwm: &str, pct: &str| {
            trailing_stop_price(Side::Buy, d(hwm), None, Some(d(pct))).expect("stop")
        };
        assert_eq!(sell("190", "1.5"), d("187.15"), "exact");
        assert_eq!(sell("190.37", "1.5"), d("187.51"), "187.51445 down");
        assert_eq!(buy("190.37", "1.5"), d("193.23"), "193.22555 up");
        assert_eq!(
            sell("0.5123", "3"),
            d("0.4969"),
            "0.496931 down, sub-dollar tick"
        );
        assert_eq!(buy("0.9999", "0.0001"), d("1"), "0.99999999 up: 1");
        assert_eq!(sell("100", "0.0001"), d("99.99"), "99.9999 down");
        assert_eq!(
            trailing_stop_price(Side::Sell, d("5"), Some(d("6")), None),
            Some(Decimal::ZERO),
            "a trail larger than the price never triggers"
        );

        let mut m = open_market();
        m.set_price("AAPL", d("190.37"), t0());
        let id = place(&mut m, trailing("p", Side::Sell, None, Some("1.5")), t0());
        let o = order(&m, id);
        assert_eq!(
            (o.hwm, o.current_stop_price()),
            (Some(d("190.37")), Some(d("187.51")))
        );
        m.set_price("AAPL", d("187.52"), ms(100));
        assert_eq!(order(&m, id).triggered_at, None);
        m.set_price("AAPL", d("187.51"), ms(200));
        assert_eq!(order(&m, id).triggered_at, Some(ms(200)));
    }

    #[test]
    fn nothing_triggers_outside_the_open_phase() {
        // Closing auction: taken `new`, not triggered, expires at the close.
        let mut m = open_market();
        m.advance_clock_to(Phase::ClosingAuction, t0())
            .expect("moved");
        let day = place(&mut m, stop("d", Side::Buy, "191"), t0());
        assert_eq!(order(&m, day).status, OrderStatus::New);
        m.set_price("AAPL", d("195"), t0());
        run(&mut m, 0, 3);
        assert_eq!(order(&m, day).triggered_at, None);
        assert!(order(&m, day).fills.is_empty());
        m.drain_reports();
        m.advance_clock_to(Phase::Closed, ms(300)).expect("moved");
        let o = order(&m, day);
        assert_eq!((o.status, o.triggered_at), (OrderStatus::Expired, None));
        let types: Vec<_> = m.drain_reports().iter().map(|r| r.exec_type).collect();
        assert_eq!(types, [ExecType::Expired]);

        // Closed, pre-open, opening auction: accepted, waits; triggers at the open.
        let gtc = place(
            &mut m,
            NewOrder {
                time_in_force: TimeInForce::Gtc,
                ..trailing("g", Side::Buy, Some("1"), None)
            },
            ms(300),
        );
        let plain = place(&mut m, stop("p", Side::Buy, "191"), ms(300));
        assert_eq!(order(&m, gtc).status, OrderStatus::Accepted);
        assert_eq!(order(&m, gtc).hwm, None, "no water mark before it works");
        for phase in [Phase::PreOpen, Phase::OpeningAuction] {
            m.advance_clock_to(phase, ms(300)).expect("moved");
            m.set_price("AAPL", d("150"), ms(300));
            m.set_price("AAPL", d("199"), ms(300));
            assert_eq!(order(&m, plain).triggered_at, None, "{phase:?}");
        }
        m.advance_clock_to(Phase::Open, ms(300)).expect("moved");
        // The opening auction printed within 10 bps of 199: above 191.
        // (its first chunk fills at once, in the same advance).
        let o = order(&m, plain);
        assert_ne!(o.status, OrderStatus::Accepted);
        assert_eq!(o.triggered_at, Some(ms(300)));
        let auction = m.sessions().last().expect("session").opening_auction["AAPL"];
        assert_eq!(
            order(&m, gtc).hwm,
            Some(auction),
            "the water mark starts at the open"
        );
        assert_eq!(order(&m, gtc).triggered_at, None);
        run(&mut m, 300, 2);
        assert_eq!(order(&m, plain).status, OrderStatus::Filled);
    }

    #[test]
    fn nothing_triggers_while_halted_and_triggers_are_evaluated_on_resume() {
        let mut m = open_market();
        let id = place(&mut m, stop("s", Side::Sell, "189"), t0());
        m.halt("AAPL", ms(10)).expect("symbol");
        m.set_price("AAPL", d("188"), ms(20));
        run(&mut m, 20, 3);
        assert_eq!(order(&m, id).triggered_at, None);
        // Placed while halted: taken, not triggered either.
        let late = place(&mut m, stop("l", Side::Sell, "189"), ms(400));
        assert_eq!(order(&m, late).status, OrderStatus::New);
        assert_eq!(order(&m, late).triggered_at, None);
        // The reopening print is within 50 bps of 188: below 189.
        m.resume("AAPL", ms(500)).expect("symbol");
        assert_eq!(order(&m, id).triggered_at, Some(ms(500)));
        assert_eq!(order(&m, late).triggered_at, Some(ms(500)));
        run(&mut m, 500, 2);
        assert_eq!(order(&m, id).status, OrderStatus::Filled);
    }

    #[test]
    fn a_gtc_stop_stays_untriggered_over_the_close_and_works_from_the_next_open() {
        let mut m = open_market();
        let id = place(
            &mut m,
            NewOrder {
                time_in_force: TimeInForce::Gtc,
                ..stop("g", Side::Buy, "250")
            },
            t0(),
        );
        m.drain_reports();
        m.advance_clock_to(Phase::Closed, t0()).expect("moved");
        let r = m.drain_reports();
        assert_eq!(
            (r[0].exec_type, r[0].status),
            (ExecType::DoneForDay, OrderStatus::New)
        );
        m.advance_clock_to(Phase::Open, t0()).expect("moved");
        run(&mut m, 0, 3);
        let o = order(&m, id);
        assert_eq!(
            (o.triggered_at, o.fills.len()),
            (None, 0),
            "not triggered by the open"
        );
        m.set_price("AAPL", d("250"), ms(400));
        assert_eq!(order(&m, id).triggered_at, Some(ms(400)));
        run(&mut m, 400, 2);
        assert_eq!(order(&m, id).status, OrderStatus::Filled);
    }

    #[test]
    fn an_untriggered_stop_cancels_like_a_resting_order() {
        let mut m = open_market();
        let id = place(&mut m, stop("c", Side::Buy, "191"), t0());
        m.request_cancel(id, crate::market::CancelMode::Normal, ms(10))
            .expect("cancel");
        m.advance(ms(10));
        assert_eq!(order(&m, id).status, OrderStatus::Canceled);
        m.set_price("AAPL", d("195"), ms(20));
        run(&mut m, 20, 2);
        let o = order(&m, id);
        assert_eq!((o.triggered_at, o.fills.len()), (None, 0));
    }

    #[test]
    fn same_seed_same_triggers() {
        let run_walk = |seed: u64| {
            let config = Config {
                walk_step_bps: 20.into(),
                walk_interval_ms: 50,
                ..Config::default()
            };
            let params = MarketParams::from_config(&config).expect("params");
            let mut m = Market::new(params, &config.symbols, seed, "r".into(), t0());
            let ids: Vec<_> = [
                trailing("t1", Side::Sell, Some("0.20"), None),
                trailing("t2", Side::Buy, None, Some("0.1")),
                stop("s1", Side::Buy, "190.30"),
                stop_limit("s2", Side::Sell, "189.70", "189.60"),
            ]
            .into_iter()
            .map(|o| place(&mut m, o, t0()))
            .collect();
            for step in 1..400 {
                m.advance(ms(step * 25));
            }
            ids.iter()
                .map(|&id| {
                    let o = order(&m, id);
                    (o.triggered_at, o.hwm, o.filled_qty, o.avg_price())
                })
                .collect::<Vec<_>>()
        };
        let a = run_walk(11);
        assert_eq!(a, run_walk(11));
        assert!(
            a.iter().any(|(t, ..)| t.is_some()),
            "the walk triggers: {a:?}"
        );
    }

    fn refused(m: &Market, order: NewOrder) -> String {
        match m.validate(&order) {
            Err(PlaceError::Refused(message)) => message,
            other => panic!("{order:?} -> {other:?}"),
        }
    }

    #[test]
    fn each_rule_of_the_stop_types_is_refused_with_the_field_named() {
        let m = open_market();
        let cases: Vec<(NewOrder, &str)> = vec![
            (
                base("a", Side::Buy, OrderType::Stop),
                "stop_price is required",
            ),
            (
                NewOrder {
                    limit_price: Some(d("190")),
                    ..stop("a", Side::Buy, "191")
                },
                "limit_price is not allowed for stop",
            ),
            (
                NewOrder {
                    trail_price: Some(d("1")),
                    ..stop("a", Side::Buy, "191")
                },
                "trail_price is not allowed for stop",
            ),
            (
                NewOrder {
                    stop_price: None,
                    ..stop_limit("a", Side::Buy, "191", "191")
                },
                "stop_price is required for stop_limit",
            ),
            (
                NewOrder {
                    limit_price: None,
                    ..stop_limit("a", Side::Buy, "191", "191")
                },
                "limit_price is required for stop_limit",
            ),
            (
                NewOrder {
                    trail_percent: Some(d("1")),
                    ..stop_limit("a", Side::Buy, "191", "191")
                },
                "trail_percent is not allowed for stop_limit",
            ),
            (
                trailing("a", Side::Sell, None, None),
                "trail_price or trail_percent is required",
            ),
            (
                trailing("a", Side::Sell, Some("1"), Some("1")),
                "trail_price and trail_percent are exclusive",
            ),
            (
                NewOrder {
                    stop_price: Some(d("189")),
                    ..trailing("a", Side::Sell, Some("1"), None)
                },
                "stop_price is not allowed for trailing_stop",
            ),
            (
                NewOrder {
                    limit_price: Some(d("189")),
                    ..trailing("a", Side::Sell, Some("1"), None)
                },
                "limit_price is not allowed for trailing_stop",
            ),
            (
                trailing("a", Side::Sell, Some("0"), None),
                "trail_price must be > 0",
            ),
            (
                trailing("a", Side::Sell, Some("1.001"), None),
                "trail_price must be on the tick",
            ),
            (
                trailing("a", Side::Sell, None, Some("0")),
                "trail_percent must be > 0 and < 100",
            ),
            (
                trailing("a", Side::Sell, None, Some("100")),
                "trail_percent must be > 0 and < 100",
            ),
            (
                trailing("a", Side::Sell, None, Some("1.00001")),
                "trail_percent must have at most 4 decimal places",
            ),
            (stop("a", Side::Buy, "0"), "stop_price must be > 0"),
            (stop("a", Side::Buy, "-1"), "stop_price must be > 0"),
            (
                stop("a", Side::Buy, "1000000.01"),
                "stop_price must be > 0 and at most 1000000",
            ),
            (
                stop("a", Side::Buy, "190.001"),
                "stop_price must be on the tick",
            ),
            (
                stop("a", Side::Buy, "0.50001"),
                "stop_price must be on the tick",
            ),
            (
                NewOrder {
                    stop_price: Some(d("191")),
                    ..base("a", Side::Buy, OrderType::Market)
                },
                "stop_price is not allowed for market",
            ),
            (
                NewOrder {
                    limit_price: Some(d("191")),
                    trail_price: Some(d("1")),
                    ..base("a", Side::Buy, OrderType::Limit)
                },
                "trail_price is not allowed for limit",
            ),
            (
                NewOrder {
                    trail_percent: Some(d("1")),
                    ..base("a", Side::Buy, OrderType::Market)
                },
                "trail_percent is not allowed for market",
            ),
        ];
        for (order, expected) in cases {
            let message = refused(&m, order.clone());
            assert!(message.contains(expected), "{order:?}: {message}");
        }
        for tif in [
            TimeInForce::Ioc,
            TimeInForce::Fok,
            TimeInForce::Opg,
            TimeInForce::Cls,
        ] {
            for order in [
                stop("a", Side::Buy, "191"),
                stop_limit("a", Side::Buy, "191", "191"),
                trailing("a", Side::Buy, None, Some("1.25")),
            ] {
                let message = refused(
                    &m,
                    NewOrder {
                        time_in_force: tif,
                        ..order
                    },
                );
                let prefix = format!(
                    "time_in_force {} is not supported for stop orders",
                    tif.name()
                );
                assert!(message.starts_with(&prefix), "{message}");
            }
        }
        // The rules that predate the stop types keep their 400.
        let invalid = |order: NewOrder| matches!(m.validate(&order), Err(PlaceError::Invalid(_)));
        assert!(invalid(stop_limit("a", Side::Buy, "191", "191.001")));
        assert!(invalid(base("a", Side::Buy, OrderType::Limit)));
        // And what is fine is fine.
        for order in [
            stop("a", Side::Buy, "0.5001"),
            stop_limit("a", Side::Sell, "189", "188.5"),
            trailing("a", Side::Sell, Some("0.0005"), None),
            trailing("a", Side::Buy, None, Some("99.9999")),
            NewOrder {
                time_in_force: TimeInForce::Gtc,
                ..trailing("a", Side::Buy, None, Some("0.0001"))
            },
        ] {
            assert_eq!(m.validate(&order), Ok(()), "{order:?}");
        }
    }
}

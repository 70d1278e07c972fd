//! The trading day inside the market: the phase events fired from the
//! schedule, the opening and closing auctions, the end of the day (DAY
//! orders expire, GTC orders are done for the day), moving the accelerated
//! clock, and the session history kept for ground truth and the calendar.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

use super::{
    Cursor, ExecType, Market, OrderStatus, Side, TimeInForce, WallClockError, seeded_move,
};
use crate::clock::{ClockMode, ClockView, Phase, Schedule, Session, SessionEvent};

/// Sessions kept in the history (the oldest are forgotten first).
pub const MAX_SESSION_HISTORY: usize = 10_000;
/// Mixed into the seed of each auction's price draw.
const AUCTION_SEED_SALT: u64 = 0xA0C7_10E5_5EED;

/// A session that started since start-up: when its events happened and the
/// auction prices it printed.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub ordinal: i64,
    pub date: NaiveDate,
    /// When each event happened, in [`SessionEvent`] order (an event before
    /// start-up: its scheduled instant); None until it has.
    pub events: [Option<DateTime<Utc>>; 5],
    /// Opening auction price per symbol (symbols that were listed and not
    /// halted); empty when start-up came after the open.
    pub opening_auction: BTreeMap<String, Decimal>,
    pub closing_auction: BTreeMap<String, Decimal>,
}

impl SessionRecord {
    fn new(session: &Session) -> SessionRecord {
        SessionRecord {
            ordinal: session.ordinal,
            date: session.date,
            events: [None; 5],
            opening_auction: BTreeMap::new(),
            closing_auction: BTreeMap::new(),
        }
    }

    pub fn at(&self, event: SessionEvent) -> Option<DateTime<Utc>> {
        self.events[event as usize]
    }
}

/// Where a market started at `now` stands: the next event to fire, the
/// phase, and the record of the session in progress (if one is).
pub(super) fn starting_point(
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> (Cursor, Phase, Option<SessionRecord>) {
    let session = schedule.current_or_next(now);
    // The session has not closed, so its close at least is still ahead.
    let event = SessionEvent::ALL
        .into_iter()
        .find(|e| session.at(*e) > now)
        .unwrap_or(SessionEvent::Close);
    let record = (now >= session.pre_open).then(|| {
        let mut record = SessionRecord::new(&session);
        for e in SessionEvent::ALL {
            if session.at(e) <= now {
                record.events[e as usize] = Some(session.at(e));
            }
        }
        record
    });
    (Cursor { session, event }, session.phase_at(now), record)
}

/// The seed of one auction's draw: the same for a given seed, session and
/// auction, whatever happened before.
fn auction_seed(seed: u64, ordinal: i64, event: SessionEvent) -> u64 {
    seed ^ AUCTION_SEED_SALT
        ^ (ordinal as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ ((event as u64) << 56)
}

impl Market {
    /// Fires one phase event of `session` at `now`.
    pub(super) fn on_session_event(
        &mut self,
        session: Session,
        event: SessionEvent,
        now: DateTime<Utc>,
    ) {
        self.record_event(&session, event, now);
        match event {
            SessionEvent::Open => {
                self.auction(&session, SessionEvent::Open, TimeInForce::Opg, now);
                self.phase = Phase::Open;
                self.activate_queued(now);
                for instrument in 0..self.instruments.len() {
                    self.wake_resting(instrument, now);
                    self.check_stops(instrument, now);
                }
            }
            SessionEvent::Close => {
                self.auction(&session, SessionEvent::Close, TimeInForce::Cls, now);
                self.end_of_day(now);
                self.phase = Phase::Closed;
            }
            other => self.phase = other.phase(),
        }
    }

    /// One auction: a seeded price per listed, trading symbol (which
    /// becomes its reference and last), then every order of `tif` executes
    /// in full at it if it crosses, or expires.
    fn auction(
        &mut self,
        session: &Session,
        event: SessionEvent,
        tif: TimeInForce,
        now: DateTime<Utc>,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(auction_seed(self.seed, session.ordinal, event));
        let mut prices: Vec<Option<Decimal>> = vec![None; self.instruments.len()];
        let mut printed = BTreeMap::new();
        for (i, price) in prices.iter_mut().enumerate() {
            let instrument = &mut self.instruments[i];
            // Drawn for every symbol, so one symbol's halt does not move
            // the others' prices.
            let moved = seeded_move(&mut rng, instrument.reference, self.params.auction_step_bps);
            if !instrument.active || instrument.halted {
                continue;
            }
            instrument.reference = moved;
            instrument.last = moved;
            *price = Some(moved);
            printed.insert(instrument.symbol.clone(), moved);
        }
        if let Some(record) = self.record_mut(session) {
            match event {
                SessionEvent::Open => record.opening_auction = printed,
                _ => record.closing_auction = printed,
            }
        }
        let participants: Vec<usize> = self
            .open
            .iter()
            .copied()
            .filter(|&i| self.orders[i].time_in_force == tif)
            .collect();
        for index in participants {
            let order = &self.orders[index];
            let crossing =
                prices[order.symbol_index].filter(|&price| match (order.side, order.limit_price) {
                    (_, None) => true,
                    (Side::Buy, Some(limit)) => price <= limit,
                    (Side::Sell, Some(limit)) => price >= limit,
                });
            match crossing {
                Some(price) => {
                    let leaves = order.qty - order.filled_qty;
                    self.apply_fill(index, leaves, price, now);
                }
                None => {
                    self.finish(index, OrderStatus::Expired, now);
                    self.report(index, ExecType::Expired, None, now, None);
                }
            }
        }
    }

    /// At the open: orders queued outside continuous trading become `new`
    /// (a pending cancel stays pending) and DAY/GTC start matching (a
    /// stop-type order starts waiting for its trigger).
    fn activate_queued(&mut self, now: DateTime<Utc>) {
        let queued: Vec<usize> = self
            .open
            .iter()
            .copied()
            .filter(|&i| self.orders[i].queued)
            .collect();
        for index in queued {
            let order = &mut self.orders[index];
            order.queued = false;
            if order.status == OrderStatus::Accepted {
                order.status = OrderStatus::New;
                order.version += 1;
                order.updated_at = now;
                self.report(index, ExecType::New, None, now, None);
            }
            if self.orders[index].time_in_force.is_continuous() {
                self.start_working(index, now);
            }
        }
    }

    /// After the closing auction: DAY orders still working expire; GTC
    /// orders still working are done for the day (reported, status
    /// unchanged) and rest until the next open.
    fn end_of_day(&mut self, now: DateTime<Utc>) {
        let working: Vec<usize> = self.open.iter().copied().collect();
        for index in working {
            match self.orders[index].time_in_force {
                TimeInForce::Day => {
                    self.finish(index, OrderStatus::Expired, now);
                    self.report(index, ExecType::Expired, None, now, None);
                }
                TimeInForce::Gtc if !self.orders[index].queued => {
                    // A stop waiting for its trigger keeps waiting (triggers
                    // are evaluated again from the next open).
                    if !self.orders[index].awaiting_trigger() {
                        self.rest(index);
                    }
                    self.report(index, ExecType::DoneForDay, None, now, None);
                }
                _ => {}
            }
        }
    }

    fn record_event(&mut self, session: &Session, event: SessionEvent, now: DateTime<Utc>) {
        if self.record_mut(session).is_none() {
            self.sessions.push_back(SessionRecord::new(session));
            if self.sessions.len() > MAX_SESSION_HISTORY {
                self.sessions.pop_front();
            }
        }
        if let Some(record) = self.record_mut(session) {
            record.events[event as usize] = Some(now);
        }
    }

    fn record_mut(&mut self, session: &Session) -> Option<&mut SessionRecord> {
        self.sessions
            .iter_mut()
            .rev()
            .find(|r| r.ordinal == session.ordinal)
    }

    fn record(&self, ordinal: i64) -> Option<&SessionRecord> {
        self.sessions.iter().rev().find(|r| r.ordinal == ordinal)
    }

    /// Sessions started since start-up, oldest first.
    pub fn sessions(&self) -> impl Iterator<Item = &SessionRecord> {
        self.sessions.iter()
    }

    /// The clock at `now` (call [`Market::advance`] first so the phase
    /// the market acts on is the same).
    pub fn clock(&self, now: DateTime<Utc>) -> ClockView {
        self.schedule.clock(now)
    }

    /// Trading days with a date in `[start, end]`. Accelerated: the
    /// compressed days, with the instants their events really happened at
    /// for those already under way.
    pub fn calendar(&self, start: NaiveDate, end: NaiveDate) -> Vec<Session> {
        let mut sessions = self.schedule.sessions_in(start, end);
        if self.schedule.mode() == ClockMode::Accelerated {
            for session in &mut sessions {
                if let Some(record) = self.record(session.ordinal) {
                    for event in SessionEvent::ALL {
                        if let Some(at) = record.at(event) {
                            session.set(event, at);
                        }
                    }
                }
            }
        }
        sessions
    }

    /// Accelerated clock: moves the cycle so the next start of `phase`
    /// (strictly after now) is now, firing everything due on the way in
    /// order. The wall clock cannot be moved.
    pub fn advance_clock_to(
        &mut self,
        phase: Phase,
        now: DateTime<Utc>,
    ) -> Result<(), WallClockError> {
        self.advance(now);
        let target = self
            .schedule
            .next_phase_start(phase, now)
            .ok_or(WallClockError)?;
        // In whole ms, so the phase starts at (not after) `now`.
        let shift_ms = target.timestamp_millis() - now.timestamp_millis();
        debug_assert!(shift_ms >= 0);
        self.schedule.shift_earlier(shift_ms);
        self.cursor.session = self.schedule.session(self.cursor.session.ordinal);
        self.advance(now);
        debug_assert_eq!(self.phase, self.schedule.phase_at(now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::super::{MarketParams, NewOrder, OrderType};
    use super::*;
    use crate::config::{ClockConfig, Config};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0)
            .single()
            .expect("time")
    }

    fn market(start_phase: Phase, seed: u64) -> Market {
        let config = Config {
            walk_step_bps: Decimal::ZERO,
            clock: ClockConfig {
                start_phase,
                ..ClockConfig::default()
            },
            ..Config::default()
        };
        let params = MarketParams::from_config(&config).expect("params");
        Market::new(params, &config.symbols, seed, "run".into(), t0())
    }

    fn order(coid: &str, tif: TimeInForce, limit: Option<i64>) -> NewOrder {
        NewOrder {
            client_order_id: coid.into(),
            symbol: "AAPL".into(),
            side: Side::Buy,
            order_type: if limit.is_some() {
                OrderType::Limit
            } else {
                OrderType::Market
            },
            time_in_force: tif,
            qty: 10.into(),
            limit_price: limit.map(Decimal::from),
            stop_price: None,
            trail_price: None,
            trail_percent: None,
            notional: None,
        }
    }

    fn opening_prices(m: &Market) -> BTreeMap<String, Decimal> {
        m.sessions()
            .last()
            .map(|r| r.opening_auction.clone())
            .unwrap_or_default()
    }

    #[test]
    fn auction_prices_depend_on_the_seed_and_the_session_only() {
        let mut quiet = market(Phase::Closed, 7);
        quiet.advance_clock_to(Phase::Open, t0()).expect("moved");
        let mut busy = market(Phase::Closed, 7);
        busy.place(order("a", TimeInForce::Gtc, Some(100)), None, t0())
            .expect("placed");
        busy.advance_clock_to(Phase::Open, t0()).expect("moved");
        let prices = opening_prices(&quiet);
        assert_eq!(prices.len(), 8);
        assert_eq!(prices, opening_prices(&busy));
        let mut other = market(Phase::Closed, 8);
        other.advance_clock_to(Phase::Open, t0()).expect("moved");
        assert_ne!(prices, opening_prices(&other));
        let aapl = prices["AAPL"];
        assert!((aapl - Decimal::from(190)).abs() <= Decimal::new(19, 2));
        assert_eq!(quiet.quote("AAPL").expect("quote").last, aapl);
    }

    #[test]
    fn orders_wait_outside_continuous_trading_and_work_from_the_open() {
        let mut m = market(Phase::Closed, 7);
        let id = m
            .place(order("a", TimeInForce::Day, None), None, t0())
            .expect("placed");
        let r = m.drain_reports();
        assert_eq!(
            (r[0].exec_type, r[0].status),
            (ExecType::Accepted, OrderStatus::Accepted)
        );
        m.advance(t0() + Duration::milliseconds(1500));
        assert_eq!(m.phase(), Phase::PreOpen);
        assert!(m.drain_reports().is_empty(), "nothing before the open");
        m.advance(t0() + Duration::seconds(3));
        assert_eq!(m.phase(), Phase::Open);
        let types: Vec<_> = m.drain_reports().iter().map(|r| r.exec_type).collect();
        assert_eq!(types[0], ExecType::New);
        assert_eq!(types[1], ExecType::PartialFill, "the first chunk at once");
        assert_eq!(m.order(id).expect("o").version, 3);
    }

    #[test]
    fn the_close_runs_the_closing_auction_then_expires_day_and_parks_gtc() {
        let mut m = market(Phase::Open, 7);
        let cls = m
            .place(order("c", TimeInForce::Cls, None), None, t0())
            .expect("placed");
        let day = m
            .place(order("d", TimeInForce::Day, Some(100)), None, t0())
            .expect("placed");
        let gtc = m
            .place(order("g", TimeInForce::Gtc, Some(100)), None, t0())
            .expect("placed");
        m.drain_reports();
        m.advance_clock_to(Phase::Closed, t0()).expect("moved");
        let r: Vec<_> = m
            .drain_reports()
            .iter()
            .map(|r| (r.order_id, r.exec_type, r.status))
            .collect();
        assert_eq!(
            r,
            [
                (cls, ExecType::Fill, OrderStatus::Filled),
                (day, ExecType::Expired, OrderStatus::Expired),
                (gtc, ExecType::DoneForDay, OrderStatus::New),
            ]
        );
        let price = m.sessions().last().expect("record").closing_auction["AAPL"];
        assert_eq!(m.order(cls).expect("o").avg_price(), Some(price));
        // Closed: a crossing price does not fill the GTC order.
        m.set_price("AAPL", Decimal::from(99), t0());
        m.advance(t0() + Duration::milliseconds(500));
        assert!(m.order(gtc).expect("o").fills.is_empty());
    }
}

//! Property tests of the pure market: for any sequence of orders, cancels,
//! price moves, halts, elapsed time and clock moves, every report keeps the
//! quantities consistent, nothing executes where the trading day or a halt
//! forbids it, the phase rules of each time in force hold, and stop-type
//! orders trigger only in phase `open` for a symbol that is not halted.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use exchange_sim::clock::Phase;
use exchange_sim::market::{
    CancelMode, ExecType, Market, MarketParams, NewOrder, OrderStatus, OrderType, PlaceError, Side,
    TimeInForce,
};
use exchange_sim::{ClockConfig, Config};
use proptest::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

const TIFS: [TimeInForce; 6] = [
    TimeInForce::Day,
    TimeInForce::Gtc,
    TimeInForce::Ioc,
    TimeInForce::Fok,
    TimeInForce::Opg,
    TimeInForce::Cls,
];

#[derive(Debug, Clone)]
enum Op {
    Place {
        symbol: usize,
        buy: bool,
        limit_ticks: Option<i64>,
        tif: usize,
        qty: u32,
    },
    /// stop (0), stop_limit (1), trailing_stop by price (2) or percent (3).
    PlaceStop {
        symbol: usize,
        buy: bool,
        kind: u8,
        ticks: i64,
        tif: usize,
        qty: u32,
    },
    Cancel {
        order: usize,
        mode: u8,
    },
    Advance {
        ms: i64,
    },
    Move {
        symbol: usize,
        cents: i64,
    },
    ToPhase {
        phase: usize,
    },
    Halt {
        symbol: usize,
    },
    Resume {
        symbol: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..3usize, any::<bool>(), proptest::option::of(-30i64..30), 0..6usize, 1..3000u32)
            .prop_map(|(symbol, buy, limit_ticks, tif, qty)| Op::Place { symbol, buy, limit_ticks, tif, qty }),
        2 => (0..3usize, any::<bool>(), 0..4u8, -30i64..30, 0..6usize, 1..3000u32)
            .prop_map(|(symbol, buy, kind, ticks, tif, qty)| Op::PlaceStop { symbol, buy, kind, ticks, tif, qty }),
        2 => (0..64usize, 0..3u8).prop_map(|(order, mode)| Op::Cancel { order, mode }),
        3 => (0..400i64).prop_map(|ms| Op::Advance { ms }),
        1 => (0..3usize, -300i64..300).prop_map(|(symbol, cents)| Op::Move { symbol, cents }),
        1 => (0..5usize).prop_map(|phase| Op::ToPhase { phase }),
        1 => (0..3usize).prop_map(|symbol| Op::Halt { symbol }),
        1 => (0..3usize).prop_map(|symbol| Op::Resume { symbol }),
    ]
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 14, 30, 0)
        .single()
        .expect("time")
}

#[derive(Default)]
struct Seen {
    last_qty_sum: Decimal,
    terminal: bool,
    reports: Vec<ExecType>,
}

/// What must not execute during one operation.
struct Quiet {
    /// Nothing at all fills (the market stayed out of continuous trading
    /// and no open fired).
    everything: bool,
    /// Symbols that stayed halted throughout.
    halted: HashSet<String>,
}

fn check(
    market: &mut Market,
    seen: &mut HashMap<Uuid, Seen>,
    exec_ids: &mut HashSet<String>,
    quiet: &Quiet,
) -> Result<(), TestCaseError> {
    for r in market.drain_reports() {
        prop_assert!(
            exec_ids.insert(r.exec_id.clone()),
            "exec_id reused: {}",
            r.exec_id
        );
        let order = market.order(r.order_id).expect("reported order exists");
        let s = seen.entry(r.order_id).or_default();
        s.last_qty_sum += r.last_qty;
        s.reports.push(r.exec_type);
        prop_assert_eq!(
            r.cum_qty,
            s.last_qty_sum,
            "cum_qty = sum of last_qty: {:?}",
            r
        );
        let is_fill = matches!(r.exec_type, ExecType::Fill | ExecType::PartialFill);
        prop_assert_eq!(is_fill, r.last_px.is_some());
        prop_assert_eq!(is_fill, r.last_qty > Decimal::ZERO);
        if is_fill {
            prop_assert!(!quiet.everything, "a fill outside trading: {:?}", r);
            prop_assert!(
                !quiet.halted.contains(&r.symbol),
                "a fill while halted: {:?}",
                r
            );
        }
        if r.status.is_terminal() {
            s.terminal = true;
            prop_assert_eq!(r.leaves_qty, Decimal::ZERO);
            prop_assert!(r.cum_qty <= order.qty);
        } else {
            prop_assert!(
                !s.terminal || r.exec_type == ExecType::CancelRejected,
                "working after terminal: {:?}",
                r
            );
            prop_assert_eq!(
                r.cum_qty + r.leaves_qty,
                order.qty,
                "cum + leaves = qty while working: {:?}",
                r
            );
        }
        match r.exec_type {
            ExecType::Fill => {
                prop_assert_eq!(r.status, OrderStatus::Filled);
                prop_assert_eq!(r.cum_qty, order.qty);
            }
            ExecType::Accepted => {
                prop_assert_eq!(r.status, OrderStatus::Accepted);
                prop_assert_eq!(s.reports.len(), 1, "accepted comes first");
            }
            ExecType::New => {
                prop_assert_eq!(r.status, OrderStatus::New);
                let news = s.reports.iter().filter(|t| **t == ExecType::New).count();
                prop_assert_eq!(news, 1, "one new report per order");
            }
            ExecType::DoneForDay => {
                prop_assert_eq!(order.time_in_force, TimeInForce::Gtc);
                prop_assert!(!r.status.is_terminal());
            }
            _ => {}
        }
        if let (Some(px), Some(limit)) = (r.last_px, order.limit_price) {
            match order.side {
                Side::Buy => prop_assert!(px <= limit),
                Side::Sell => prop_assert!(px >= limit),
            }
        }
    }
    for order in market.orders() {
        let fills: Decimal = order.fills.iter().map(|f| f.qty).sum();
        prop_assert_eq!(fills, order.filled_qty);
        prop_assert!(order.filled_qty <= order.qty);
        match order.time_in_force {
            TimeInForce::Fok | TimeInForce::Opg | TimeInForce::Cls => {
                prop_assert!(order.filled_qty.is_zero() || order.filled_qty == order.qty);
                prop_assert!(order.fills.len() <= 1);
            }
            _ => {}
        }
        if order.status == OrderStatus::Accepted {
            prop_assert!(order.fills.is_empty());
        }
        if order.order_type.is_stop() {
            match order.triggered_at {
                // Executes only once triggered (a cancel's late fill aside).
                Some(at) => prop_assert!(order.fills.iter().all(|f| f.transact_time >= at)),
                None => prop_assert!(
                    order.fills.is_empty() || order.status == OrderStatus::Canceled,
                    "an untriggered stop filled: {:?}",
                    order
                ),
            }
        } else {
            prop_assert!(order.triggered_at.is_none() && order.hwm.is_none());
        }
    }
    Ok(())
}

fn open_halts(market: &Market) -> HashSet<String> {
    market
        .instruments()
        .iter()
        .filter(|i| i.halted)
        .map(|i| i.symbol.clone())
        .collect()
}

/// Per symbol, how many of its halts have ended.
fn ended_halts(market: &Market) -> HashMap<String, usize> {
    let mut ended = HashMap::new();
    for halt in market.halts().filter(|h| h.to.is_some()) {
        *ended.entry(halt.symbol.clone()).or_default() += 1;
    }
    ended
}

fn opens_fired(market: &Market) -> usize {
    market
        .sessions()
        .filter(|s| s.at(exchange_sim::clock::SessionEvent::Open).is_some())
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn quantities_and_the_trading_day_stay_consistent(
        ops in proptest::collection::vec(op(), 1..80),
        seed in any::<u64>(),
        start_phase in 0..5usize,
        halt_fault in prop_oneof![Just(0.0), Just(0.05)],
    ) {
        let config = Config {
            fill_interval_ms: 20,
            session_secs: 2,
            walk_step_bps: 5.into(),
            walk_interval_ms: 50,
            immediate_liquidity_qty: 1000,
            clock: ClockConfig { start_phase: Phase::ALL[start_phase], ..ClockConfig::default() },
            ..Config::default()
        };
        let mut now = start();
        let params = MarketParams::from_config(&config).expect("params");
        let mut market = Market::new(params, &config.symbols[..3], seed, "t".into(), now);
        market.set_halt_fault(halt_fault, 300);
        let mut ids: Vec<Uuid> = Vec::new();
        let mut seen = HashMap::new();
        let mut exec_ids = HashSet::new();
        for (i, op) in ops.into_iter().enumerate() {
            let halted_before = open_halts(&market);
            let ended_before = ended_halts(&market);
            let opens_before = opens_fired(&market);
            let trading_before = market.phase().is_open();
            let triggered_before: HashSet<Uuid> = market
                .orders()
                .iter()
                .filter(|o| o.triggered_at.is_some())
                .map(|o| o.id)
                .collect();
            match op {
                Op::Place { symbol, buy, limit_ticks, tif, qty } => {
                    let sym = config.symbols[symbol].symbol.clone();
                    let reference = market.quote(&sym).expect("quote").last;
                    let limit_price = limit_ticks.map(|t| (reference + Decimal::new(t, 2)).max(Decimal::new(1, 2)));
                    let tif = TIFS[tif];
                    let order = NewOrder {
                        client_order_id: format!("c{i}"),
                        symbol: sym,
                        side: if buy { Side::Buy } else { Side::Sell },
                        order_type: if limit_price.is_some() { OrderType::Limit } else { OrderType::Market },
                        time_in_force: tif,
                        qty: qty.into(),
                        limit_price,
                        stop_price: None,
                        trail_price: None,
                        trail_percent: None,
                        notional: None,
                    };
                    match market.place(order, None, now) {
                        Ok(id) => {
                            prop_assert_eq!(tif.refusal_in(market.phase()), None);
                            ids.push(id);
                        }
                        Err(PlaceError::WrongPhase(message)) => {
                            prop_assert_eq!(Some(message), tif.refusal_in(market.phase()));
                        }
                        Err(other) => prop_assert!(false, "unexpected refusal {:?}", other),
                    }
                }
                Op::PlaceStop { symbol, buy, kind, ticks, tif, qty } => {
                    let sym = config.symbols[symbol].symbol.clone();
                    let reference = market.quote(&sym).expect("quote").last;
                    let at = (reference + Decimal::new(ticks, 2)).max(Decimal::new(1, 2));
                    let trail = Decimal::new(ticks.abs().max(1), 2);
                    let tif = TIFS[tif];
                    let (order_type, stop_price, limit_price, trail_price, trail_percent) = match kind {
                        0 => (OrderType::Stop, Some(at), None, None, None),
                        1 => (OrderType::StopLimit, Some(at), Some(at), None, None),
                        2 => (OrderType::TrailingStop, None, None, Some(trail), None),
                        _ => (OrderType::TrailingStop, None, None, None, Some(trail)),
                    };
                    let order = NewOrder {
                        client_order_id: format!("c{i}"),
                        symbol: sym,
                        side: if buy { Side::Buy } else { Side::Sell },
                        order_type,
                        time_in_force: tif,
                        qty: qty.into(),
                        limit_price,
                        stop_price,
                        trail_price,
                        trail_percent,
                        notional: None,
                    };
                    let continuous = matches!(tif, TimeInForce::Day | TimeInForce::Gtc);
                    match market.place(order, None, now) {
                        Ok(id) => {
                            prop_assert!(continuous);
                            ids.push(id);
                        }
                        Err(PlaceError::Refused(message)) => {
                            prop_assert!(!continuous, "{}", message);
                        }
                        Err(other) => prop_assert!(false, "unexpected refusal {:?}", other),
                    }
                }
                Op::Cancel { order, mode } => {
                    if let Some(&id) = ids.get(order) {
                        let mode = [CancelMode::Normal, CancelMode::FillAfterCancel, CancelMode::FillRacesCancel][mode as usize];
                        let _ = market.request_cancel(id, mode, now);
                    }
                }
                Op::Advance { ms } => {
                    now += Duration::milliseconds(ms);
                    market.advance(now);
                }
                Op::Move { symbol, cents } => {
                    let sym = config.symbols[symbol].symbol.clone();
                    let last = market.quote(&sym).expect("quote").last;
                    market.set_price(&sym, (last + Decimal::new(cents, 2)).max(Decimal::ONE), now);
                }
                Op::ToPhase { phase } => {
                    let phase = Phase::ALL[phase];
                    market.advance_clock_to(phase, now).expect("accelerated");
                    // The phase starts now (a zero-length one is already over).
                    prop_assert_eq!(market.phase(), market.schedule().phase_at(now));
                    prop_assert!(market.clock(now).next_open > now);
                }
                Op::Halt { symbol } => {
                    market.halt(&config.symbols[symbol].symbol, now).expect("symbol");
                }
                Op::Resume { symbol } => {
                    market.resume(&config.symbols[symbol].symbol, now).expect("symbol");
                }
            }
            // Halted before and after, and no halt of it ended meanwhile.
            let ended_after = ended_halts(&market);
            let still_halted = open_halts(&market);
            let quiet = Quiet {
                everything: !trading_before
                    && !market.phase().is_open()
                    && opens_fired(&market) == opens_before,
                halted: halted_before
                    .intersection(&still_halted)
                    .filter(|s| ended_before.get(*s) == ended_after.get(*s))
                    .cloned()
                    .collect(),
            };
            for order in market.orders() {
                if order.triggered_at.is_some() && !triggered_before.contains(&order.id) {
                    prop_assert!(!quiet.everything, "a trigger outside trading: {:?}", order);
                    prop_assert!(
                        !quiet.halted.contains(&order.symbol),
                        "a trigger while halted: {:?}",
                        order
                    );
                    prop_assert_eq!(order.triggered_at, Some(now));
                }
            }
            check(&mut market, &mut seen, &mut exec_ids, &quiet)?;
        }
        // Let everything due happen, then close the day: only GTC orders
        // may still work after a close.
        for _ in 0..20 {
            now += Duration::milliseconds(20);
            market.advance(now);
            let quiet = Quiet { everything: false, halted: HashSet::new() };
            check(&mut market, &mut seen, &mut exec_ids, &quiet)?;
        }
        market.advance_clock_to(Phase::Closed, now).expect("accelerated");
        let quiet = Quiet { everything: false, halted: HashSet::new() };
        check(&mut market, &mut seen, &mut exec_ids, &quiet)?;
        for order in market.orders() {
            if !order.status.is_terminal() {
                prop_assert_eq!(order.time_in_force, TimeInForce::Gtc, "{:?}", order.status);
            }
        }
    }
}

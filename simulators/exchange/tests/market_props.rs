//! Property test of the pure market: for any sequence of orders, cancels,
//! price moves and elapsed time, every report keeps the quantities consistent.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use exchange_sim::Config;
use exchange_sim::market::{
    CancelMode, ExecType, Market, MarketParams, NewOrder, OrderStatus, OrderType, Side, TimeInForce,
};
use proptest::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Place {
        symbol: usize,
        buy: bool,
        limit_ticks: Option<i64>,
        tif: u8,
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
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, any::<bool>(), proptest::option::of(-30i64..30), 0..4u8, 1..3000u32)
            .prop_map(|(symbol, buy, limit_ticks, tif, qty)| Op::Place { symbol, buy, limit_ticks, tif, qty }),
        2 => (0..64usize, 0..3u8).prop_map(|(order, mode)| Op::Cancel { order, mode }),
        3 => (0..250i64).prop_map(|ms| Op::Advance { ms }),
        1 => (0..3usize, -300i64..300).prop_map(|(symbol, cents)| Op::Move { symbol, cents }),
    ]
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 2, 14, 30, 0)
        .single()
        .expect("time")
}

#[derive(Default)]
struct Seen {
    last_qty_sum: Decimal,
    terminal: bool,
}

fn check(
    market: &mut Market,
    seen: &mut HashMap<Uuid, Seen>,
    exec_ids: &mut std::collections::HashSet<String>,
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
        prop_assert_eq!(
            r.cum_qty,
            s.last_qty_sum,
            "cum_qty = sum of last_qty: {:?}",
            r
        );
        let is_fill = matches!(r.exec_type, ExecType::Fill | ExecType::PartialFill);
        prop_assert_eq!(is_fill, r.last_px.is_some());
        prop_assert_eq!(is_fill, r.last_qty > Decimal::ZERO);
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
        if r.exec_type == ExecType::Fill {
            prop_assert_eq!(r.status, OrderStatus::Filled);
            prop_assert_eq!(r.cum_qty, order.qty);
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
        if order.time_in_force == TimeInForce::Fok {
            prop_assert!(order.filled_qty.is_zero() || order.filled_qty == order.qty);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn quantities_stay_consistent(ops in proptest::collection::vec(op(), 1..80), seed in any::<u64>()) {
        let config = Config { fill_interval_ms: 20, session_secs: 2, walk_step_bps: 5.into(), walk_interval_ms: 50, immediate_liquidity_qty: 1000, ..Config::default() };
        let mut now = start();
        let mut market = Market::new(MarketParams::from_config(&config), &config.symbols[..3], seed, "t".into(), now);
        let mut ids: Vec<Uuid> = Vec::new();
        let mut seen = HashMap::new();
        let mut exec_ids = std::collections::HashSet::new();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Place { symbol, buy, limit_ticks, tif, qty } => {
                    let sym = config.symbols[symbol].symbol.clone();
                    let reference = market.quote(&sym).expect("quote").last;
                    let limit_price = limit_ticks.map(|t| (reference + Decimal::new(t, 2)).max(Decimal::new(1, 2)));
                    let order = NewOrder {
                        client_order_id: format!("c{i}"),
                        symbol: sym,
                        side: if buy { Side::Buy } else { Side::Sell },
                        order_type: if limit_price.is_some() { OrderType::Limit } else { OrderType::Market },
                        time_in_force: [TimeInForce::Day, TimeInForce::Gtc, TimeInForce::Ioc, TimeInForce::Fok][tif as usize],
                        qty: qty.into(),
                        limit_price,
                    };
                    let id = market.place(order, None, now).expect("valid order");
                    ids.push(id);
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
            }
            check(&mut market, &mut seen, &mut exec_ids)?;
        }
        // Let everything due happen; only GTC orders may still work after a session close.
        for _ in 0..150 {
            now += Duration::milliseconds(20);
            market.advance(now);
            check(&mut market, &mut seen, &mut exec_ids)?;
        }
        for order in market.orders() {
            if !order.status.is_terminal() {
                prop_assert_eq!(order.time_in_force, TimeInForce::Gtc);
            }
        }
    }
}

//! Property tests on the pure ledger core (no HTTP): for any sequence of holds,
//! raises, releases and settlements the books balance.

use std::collections::BTreeMap;

use balances_sim::ledger::{
    EntryType, HoldReference, HoldStatus, IncreaseHold, Ledger, NewHold, NewSettlement,
    ReleaseHold, SettlementReference, Side, USD,
};
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

const ACCOUNT: &str = "acct";
const ASSETS: [&str; 3] = [USD, "AAPL", "MSFT"];

#[derive(Clone, Debug)]
enum Op {
    Hold {
        asset: usize,
        cents: i64,
    },
    Release {
        hold: usize,
        cents: Option<i64>,
    },
    Increase {
        hold: usize,
        cents: i64,
    },
    Settle {
        hold: Option<usize>,
        sell: bool,
        symbol: usize,
        qty: i64,
        price_cents: i64,
        fee_cents: i64,
        hold_cents: Option<i64>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 1..200_000i64).prop_map(|(asset, cents)| Op::Hold { asset, cents }),
        (0..64usize, proptest::option::of(1..100_000i64))
            .prop_map(|(hold, cents)| Op::Release { hold, cents }),
        (0..64usize, 1..100_000i64).prop_map(|(hold, cents)| Op::Increase { hold, cents }),
        (
            proptest::option::of(0..64usize),
            any::<bool>(),
            1..3usize,
            1..20i64,
            1..50_000i64,
            0..500i64,
            proptest::option::of(0..200_000i64),
        )
            .prop_map(
                |(hold, sell, symbol, qty, price_cents, fee_cents, hold_cents)| Op::Settle {
                    hold,
                    sell,
                    symbol,
                    qty,
                    price_cents,
                    fee_cents,
                    hold_cents
                }
            ),
    ]
}

fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

fn now(step: usize) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + step as i64, 0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn books_balance(ops in proptest::collection::vec(op(), 1..80), usd in 0..1_000_000i64, shares in 0..100i64) {
        let mut ledger = Ledger::new(1);
        let initial: BTreeMap<String, Decimal> = [
            (USD.to_owned(), cents(usd)),
            ("AAPL".to_owned(), Decimal::from(shares)),
            ("MSFT".to_owned(), Decimal::from(shares)),
        ]
        .into();
        ledger.create_account(ACCOUNT, &initial, now(0)).unwrap();
        let mut holds = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            let entries_before = ledger.entries().len();
            let result = match op {
                Op::Hold { asset, cents: c } => {
                    let req = NewHold {
                        idempotency_key: format!("h{step}"),
                        account_id: ACCOUNT.to_owned(),
                        asset: ASSETS[*asset].to_owned(),
                        amount: if *asset == 0 { cents(*c) } else { Decimal::from(c % 30 + 1) },
                        reference: HoldReference::default(),
                    };
                    ledger.create_hold(&req, now(step)).map(|h| holds.push(h.id)).map_err(|e| e.to_string())
                }
                Op::Release { hold, cents: c } if !holds.is_empty() => {
                    let req = ReleaseHold {
                        hold_id: holds[hold % holds.len()],
                        idempotency_key: format!("r{step}"),
                        amount: c.map(cents),
                    };
                    ledger.release_hold(&req, now(step)).map(|_| ()).map_err(|e| e.to_string())
                }
                Op::Release { .. } => Ok(()),
                Op::Increase { hold, cents: c } if !holds.is_empty() => {
                    let hold_id = holds[hold % holds.len()];
                    let on_usd = ledger.hold(hold_id).unwrap().asset == USD;
                    let req = IncreaseHold {
                        hold_id,
                        idempotency_key: format!("i{step}"),
                        amount: if on_usd { cents(*c) } else { Decimal::from(c % 30 + 1) },
                    };
                    ledger.increase_hold(&req, now(step)).map(|_| ()).map_err(|e| e.to_string())
                }
                Op::Increase { .. } => Ok(()),
                Op::Settle { hold, sell, symbol, qty, price_cents, fee_cents, hold_cents } => {
                    // Only holds on the right asset make a valid settlement.
                    let debit_asset = if *sell { ASSETS[*symbol] } else { USD };
                    let hold_id = hold.and_then(|i| {
                        let candidates: Vec<_> = holds.iter().filter(|id| ledger.hold(**id).unwrap().asset == debit_asset).collect();
                        (!candidates.is_empty()).then(|| *candidates[i % candidates.len()])
                    });
                    let req = NewSettlement {
                        idempotency_key: format!("e{step}"),
                        account_id: ACCOUNT.to_owned(),
                        hold_id,
                        side: if *sell { Side::Sell } else { Side::Buy },
                        symbol: ASSETS[*symbol].to_owned(),
                        qty: Decimal::from(*qty),
                        price: cents(*price_cents),
                        fee: cents(*fee_cents),
                        hold_amount: hold_cents.map(|c| if *sell { Decimal::from(c % 20) } else { cents(c) }),
                        reference: SettlementReference::default(),
                    };
                    ledger.settle(&req, now(step)).map(|_| ()).map_err(|e| e.to_string())
                }
            };
            if let Err(e) = &result {
                // Only insufficient funds (or raising a closed hold) may
                // refuse; a refusal changes nothing.
                prop_assert!(
                    e.starts_with("insufficient funds") || e.ends_with("nothing remains of it to raise"),
                    "unexpected error {e}"
                );
                prop_assert_eq!(ledger.entries().len(), entries_before);
            }
            check(&ledger, &initial)?;
        }
    }
}

fn check(ledger: &Ledger, initial: &BTreeMap<String, Decimal>) -> Result<(), TestCaseError> {
    let account = ledger.account(ACCOUNT).unwrap();
    let flagged = ledger.settlements().any(|s| s.flag_reason.is_some());
    for asset in ASSETS {
        let balance = account.balances.get(asset).copied().unwrap_or_default();
        // total = initial + Σ trade and fee entries.
        let moved: Decimal = ledger
            .entries()
            .iter()
            .filter(|e| {
                e.asset == asset
                    && matches!(
                        e.entry_type,
                        EntryType::TradeDebit | EntryType::TradeCredit | EntryType::Fee
                    )
            })
            .map(|e| e.amount)
            .sum();
        prop_assert_eq!(balance.total, initial[asset] + moved, "total of {}", asset);
        // total = Σ settlements, computed independently of the ledger entries.
        let settled: Decimal = ledger
            .settlements()
            .map(|s| {
                let gross = s.qty * s.price;
                match (s.side, asset == USD, s.symbol == asset) {
                    (Side::Buy, true, _) => -(gross + s.fee),
                    (Side::Sell, true, _) => gross - s.fee,
                    (Side::Buy, false, true) => s.qty,
                    (Side::Sell, false, true) => -s.qty,
                    _ => Decimal::ZERO,
                }
            })
            .sum();
        prop_assert_eq!(
            balance.total,
            initial[asset] + settled,
            "settled total of {}",
            asset
        );
        // held = Σ remaining of open holds; closed holds have nothing remaining.
        let open_remaining: Decimal = ledger
            .holds()
            .filter(|h| h.asset == asset && h.status == HoldStatus::Open)
            .map(|h| h.remaining())
            .sum();
        prop_assert_eq!(balance.held, open_remaining, "held of {}", asset);
        for hold in ledger.holds() {
            prop_assert!(hold.remaining() >= Decimal::ZERO);
            prop_assert!(hold.status == HoldStatus::Open || hold.remaining().is_zero());
        }
        // held = Σ hold/release entries.
        let held_entries: Decimal = ledger
            .entries()
            .iter()
            .filter(|e| e.asset == asset && !e.entry_type.changes_total())
            .map(|e| e.amount)
            .sum();
        prop_assert_eq!(balance.held, held_entries);
        prop_assert!(balance.held >= Decimal::ZERO);
        if !flagged {
            prop_assert!(
                balance.available() >= Decimal::ZERO,
                "available of {} is {} with no flagged settlement",
                asset,
                balance.available()
            );
        }
    }
    // Ledger seqs are gap-free.
    for (i, e) in ledger.entries().iter().enumerate() {
        prop_assert_eq!(e.seq, i as u64 + 1);
    }
    Ok(())
}

//! The fold of an order's fills into its projection: filled quantity and
//! volume-weighted average price. Duplicates are dropped by exec id; a fold
//! that would exceed the order's quantity is a bug and says so.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::order::QTY_DP;

text_enum! {
    /// Where a fill's settlement at the balances service stands.
    pub enum SettlementState as "settlement_state" {
        /// Not sent yet, or sent and known not to have taken effect.
        Pending => "pending",
        /// Sent; the answer was lost. Re-sent under the same key.
        Unknown => "unknown",
        /// Done, final.
        Settled => "settled",
        /// Refused by the ledger for a reason retrying cannot fix.
        Failed => "failed",
    }
}

impl SettlementState {
    /// The states a settler still has work in.
    pub const UNSETTLED: &'static [SettlementState] =
        &[SettlementState::Pending, SettlementState::Unknown];
}

text_enum! {
    /// How orderd learned of an execution.
    pub enum FillSource as "source" {
        Stream => "stream",
        Rest => "rest",
        Reconcile => "reconcile",
    }
}

/// Decimal places kept in an average price.
pub const AVG_PRICE_DP: u32 = 6;

/// One execution at the venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    pub exec_id: String,
    pub qty: Decimal,
    pub price: Decimal,
}

/// The fold's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillSummary {
    pub filled_qty: Decimal,
    /// `None` while nothing is filled.
    pub avg_price: Option<Decimal>,
    pub fills: usize,
}

/// Why a set of fills cannot be an order's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("fills total {filled} shares, more than the order's {order_qty}")]
    Overfill { order_qty: Decimal, filled: Decimal },
    /// A quantity or price that is not positive, or so large the
    /// arithmetic would overflow: no venue report of a real order carries
    /// one.
    #[error("fills with quantities or prices out of range")]
    OutOfRange,
}

/// Largest quantity a venue report may carry (shares).
pub const REPORT_QTY_MAX: Decimal = Decimal::from_parts(100_000_000, 0, 0, false, 0);

/// Largest price a venue report may carry: far above any real equity
/// price, far below where notional arithmetic could overflow.
pub const REPORT_PRICE_MAX: Decimal = Decimal::from_parts(100_000_000, 0, 0, false, 0);

/// Most decimal places a venue report's quantity may carry: an order's
/// ([`QTY_DP`], Alpaca's fractional shares).
pub const REPORT_QTY_DP: u32 = QTY_DP;

/// Most decimal places a venue report's price may carry: the finest tick
/// is 4 ($0.0001 below $1), and a midpoint or price-improved execution
/// between two ticks of a sub-dollar stock takes a fifth; 6 leaves room.
///
/// Together with [`REPORT_QTY_DP`] it bounds every product orderd or the
/// ledger forms from a report (`qty × price`, `qty × rate`) to
/// `REPORT_QTY_DP + REPORT_PRICE_DP` places (the ledger's `LEDGER_DP`),
/// few enough that the products are exact: an average price is never
/// rounded away from its fills' prices, and cash moves by exactly what the
/// shares cost.
pub const REPORT_PRICE_DP: u32 = 6;

/// Checks the numbers of one venue report before anything is computed
/// from them: `Err` names what is wrong, and the report is quarantined,
/// never applied (and never a panic).
pub fn check_report(
    last_qty: Decimal,
    last_px: Option<Decimal>,
    cum_qty: Decimal,
) -> Result<(), String> {
    if last_qty < Decimal::ZERO || last_qty > REPORT_QTY_MAX {
        return Err(format!("last_qty {last_qty} out of range"));
    }
    if cum_qty < Decimal::ZERO || cum_qty > REPORT_QTY_MAX {
        return Err(format!("cum_qty {cum_qty} out of range"));
    }
    if last_qty > cum_qty {
        return Err(format!("last_qty {last_qty} above cum_qty {cum_qty}"));
    }
    let mut places = vec![
        ("last_qty", last_qty, REPORT_QTY_DP),
        ("cum_qty", cum_qty, REPORT_QTY_DP),
    ];
    if last_qty > Decimal::ZERO {
        match last_px {
            None => return Err("a fill without a price".to_string()),
            Some(px) if px <= Decimal::ZERO || px > REPORT_PRICE_MAX => {
                return Err(format!("last_px {px} out of range"));
            }
            Some(px) => places.push(("last_px", px, REPORT_PRICE_DP)),
        }
    }
    if let Some((name, value, most)) = places
        .into_iter()
        .find(|&(_, value, most)| value.normalize().scale() > most)
    {
        return Err(format!(
            "{name} {value} has more than {most} decimal places"
        ));
    }
    Ok(())
}

/// Folds `fills` (in any order, duplicates allowed) for an order of
/// `order_qty` shares.
pub fn fold(order_qty: Decimal, fills: &[Fill]) -> Result<FillSummary, FoldError> {
    // Keyed by exec id: a replayed execution counts once, and the order of
    // arrival does not change the result.
    let unique: BTreeMap<&str, &Fill> = fills.iter().map(|f| (f.exec_id.as_str(), f)).collect();
    let mut filled = Decimal::ZERO;
    let mut notional = Decimal::ZERO;
    for fill in unique.values() {
        if fill.qty <= Decimal::ZERO
            || fill.qty > REPORT_QTY_MAX
            || fill.price <= Decimal::ZERO
            || fill.price > REPORT_PRICE_MAX
        {
            return Err(FoldError::OutOfRange);
        }
        filled = filled.checked_add(fill.qty).ok_or(FoldError::OutOfRange)?;
        let value = fill
            .qty
            .checked_mul(fill.price)
            .ok_or(FoldError::OutOfRange)?;
        notional = notional.checked_add(value).ok_or(FoldError::OutOfRange)?;
    }
    if filled > order_qty {
        return Err(FoldError::Overfill { order_qty, filled });
    }
    let avg_price = if filled > Decimal::ZERO {
        Some(
            notional
                .checked_div(filled)
                .ok_or(FoldError::OutOfRange)?
                .round_dp(AVG_PRICE_DP),
        )
    } else {
        None
    };
    debug_assert!(
        avg_price.is_none_or(|avg| {
            let lowest = unique.values().map(|f| f.price).min().unwrap_or(avg);
            let highest = unique.values().map(|f| f.price).max().unwrap_or(avg);
            // Within one unit of the last place: 28-digit arithmetic
            // rounds a notional of many decimals.
            let unit = Decimal::new(1, AVG_PRICE_DP);
            avg >= lowest.round_dp(AVG_PRICE_DP) - unit
                && avg <= highest.round_dp(AVG_PRICE_DP) + unit
        }),
        "an average outside its fills' prices"
    );
    Ok(FillSummary {
        filled_qty: filled,
        avg_price,
        fills: unique.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fill(id: &str, qty: i64, cents: i64) -> Fill {
        Fill {
            exec_id: id.to_string(),
            qty: Decimal::from(qty),
            price: Decimal::new(cents, 2),
        }
    }

    #[test]
    fn average_is_volume_weighted() {
        let s = fold(
            Decimal::from(10),
            &[fill("a", 4, 10000), fill("b", 6, 10100)],
        )
        .unwrap();
        assert_eq!(s.filled_qty, Decimal::from(10));
        assert_eq!(s.avg_price, Some(Decimal::new(10060, 2)));
    }

    #[test]
    fn duplicates_count_once() {
        let s = fold(Decimal::from(10), &[fill("a", 4, 100), fill("a", 4, 100)]).unwrap();
        assert_eq!(s.filled_qty, Decimal::from(4));
        assert_eq!(s.fills, 1);
    }

    #[test]
    fn nothing_filled_has_no_average() {
        assert_eq!(fold(Decimal::from(1), &[]).unwrap().avg_price, None);
    }

    #[test]
    fn overfill_is_an_error() {
        let error = fold(Decimal::from(5), &[fill("a", 4, 100), fill("b", 2, 100)]).unwrap_err();
        assert_eq!(
            error,
            FoldError::Overfill {
                order_qty: Decimal::from(5),
                filled: Decimal::from(6)
            }
        );
    }

    #[test]
    fn absurd_numbers_are_an_error_not_a_panic() {
        let huge = Fill {
            exec_id: "x".into(),
            qty: Decimal::MAX,
            price: Decimal::MAX,
        };
        assert_eq!(fold(Decimal::MAX, &[huge]), Err(FoldError::OutOfRange));
        assert!(check_report(Decimal::MAX, Some(Decimal::ONE), Decimal::MAX).is_err());
        assert!(check_report(Decimal::ONE, None, Decimal::ONE).is_err());
        assert!(check_report(Decimal::ONE, Some(Decimal::ZERO), Decimal::ONE).is_err());
        assert!(check_report(Decimal::TWO, Some(Decimal::ONE), Decimal::ONE).is_err());
        assert!(check_report(-Decimal::ONE, None, Decimal::ZERO).is_err());
        assert!(check_report(Decimal::ONE, Some(Decimal::ONE), Decimal::TWO).is_ok());
        assert!(check_report(Decimal::ZERO, None, Decimal::ZERO).is_ok());
    }

    /// Found by `fuzz_venue_stream_messages`: a fill of 1e-28 shares at
    /// 7456.02 folded to an average of 7456 (the product's 30 places
    /// rounded to 28), which the fold's debug assertion turned into a
    /// panic (a silently wrong average in a release build). Reports with
    /// more places than the ledger takes are refused before the fold.
    #[test]
    fn more_decimal_places_than_the_ledger_takes_are_refused() {
        let tiny = Decimal::new(1, 28);
        let price = Decimal::new(745602, 2);
        assert!(check_report(tiny, Some(price), Decimal::ONE).is_err());
        assert!(
            check_report(
                Decimal::ONE,
                Some(Decimal::new(1, REPORT_PRICE_DP + 1)),
                Decimal::ONE
            )
            .is_err()
        );
        assert!(check_report(Decimal::ZERO, None, Decimal::new(1, 10)).is_err());
        let qty_edge = Decimal::new(1, REPORT_QTY_DP);
        let price_edge = Decimal::new(1, REPORT_PRICE_DP);
        assert!(check_report(qty_edge, Some(price_edge), Decimal::ONE).is_ok());
        assert!(check_report(qty_edge, Some(qty_edge), Decimal::ONE).is_err());
        // Trailing zeros are not places.
        assert!(check_report(Decimal::ONE, Some(Decimal::new(1_000, 7)), Decimal::ONE).is_ok());
        // What a checked report folds to lies within its price.
        let fill = Fill {
            exec_id: "e".into(),
            qty: qty_edge,
            price,
        };
        assert_eq!(fold(Decimal::ONE, &[fill]).unwrap().avg_price, Some(price));
    }

    proptest! {
        /// Whatever numbers arrive, checking and folding them answers; it
        /// never panics.
        #[test]
        fn any_numbers_fold_or_fail_without_panicking(
            parts in proptest::collection::vec((any::<i64>(), any::<u32>(), 0u32..28, any::<i64>(), any::<u32>(), 0u32..28), 0..8),
        ) {
            let fills: Vec<Fill> = parts
                .iter()
                .enumerate()
                .map(|(i, (q, qh, qs, p, ph, ps))| Fill {
                    exec_id: format!("e{i}"),
                    qty: Decimal::from_parts(*q as u32, (*q >> 32) as u32, *qh, *q < 0, *qs),
                    price: Decimal::from_parts(*p as u32, (*p >> 32) as u32, *ph, *p < 0, *ps),
                })
                .collect();
            for f in &fills {
                let _ = check_report(f.qty, Some(f.price), f.qty);
            }
            let _ = fold(Decimal::MAX, &fills);
        }
    }

    /// Fractional fills fold exactly: 0.333333333 + 0.666666667 shares
    /// is one share, and the average is the volume-weighted price.
    #[test]
    fn fractional_fills_fold_exactly() {
        let f = |id: &str, qty: &str, price: &str| Fill {
            exec_id: id.into(),
            qty: qty.parse().unwrap(),
            price: price.parse().unwrap(),
        };
        let fills = [
            f("a", "0.333333333", "190.01"),
            f("b", "0.666666667", "190.04"),
        ];
        let summary = fold(Decimal::ONE, &fills).unwrap();
        assert_eq!(summary.filled_qty, Decimal::ONE);
        // (0.333333333 × 190.01 + 0.666666667 × 190.04) / 1 = 190.03000000001
        assert_eq!(summary.avg_price, Some("190.03".parse().unwrap()));
        assert!(matches!(
            fold("0.999999999".parse().unwrap(), &fills),
            Err(FoldError::Overfill { .. })
        ));
    }

    proptest! {
        #[test]
        fn order_and_duplicates_do_not_change_the_fold(
            parts in proptest::collection::vec((1i64..50, 1i64..100_000), 1..20),
            seed in any::<u64>(),
        ) {
            let fills: Vec<Fill> = parts
                .iter()
                .enumerate()
                .map(|(i, (q, p))| fill(&format!("e{i}"), *q, *p))
                .collect();
            let total: i64 = parts.iter().map(|(q, _)| q).sum();
            let order_qty = Decimal::from(total);
            let once = fold(order_qty, &fills).unwrap();
            // Shuffle deterministically and replay some fills twice.
            let mut replayed = fills.clone();
            replayed.extend(fills.iter().step_by(2).cloned());
            let n = replayed.len();
            replayed.rotate_left((seed as usize) % n);
            replayed.reverse();
            let again = fold(order_qty, &replayed).unwrap();
            prop_assert_eq!(&once, &again);
            prop_assert_eq!(once.filled_qty, order_qty);
            let min = fills.iter().map(|f| f.price).min().unwrap();
            let max = fills.iter().map(|f| f.price).max().unwrap();
            let avg = once.avg_price.unwrap();
            prop_assert!(avg >= min && avg <= max);
        }
    }
}

//! Replace (cancel/replace): which orders can be replaced, and the hold a
//! replace chain shares.
//!
//! A replacement takes over the hold of the order it replaces (one hold
//! per chain). While both may execute (the replace is on its way to the
//! venue), the hold covers the larger need (Alpaca's rule: buying power is
//! reduced by the larger of the two orders): it is **raised before** the
//! replace by [`raise`], and **lowered after** by [`surplus`], once the
//! replaced order's fills are final and settled. A replacement that never
//! reaches the venue gives its raise back.
//!
//! Every amount is in the hold's asset (cash for a buy, shares for a
//! sell), and every fill consumes `qty × rate` of the hold.

use rust_decimal::Decimal;

use super::lifecycle::{Status, Step};
use super::order::{OrderType, TimeInForce};

/// Why an order cannot be replaced as it stands (Alpaca's 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotReplaceable(pub String);

/// What decides whether an order can be replaced.
#[derive(Debug, Clone, Copy)]
pub struct ReplaceFacts {
    pub status: Status,
    pub step: Step,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub notional: bool,
    pub cancel_requested: bool,
    pub replaced_by: bool,
}

/// Alpaca's rules: an order is replaced while it works at the venue (`new`
/// or `partially_filled`); not while `accepted`, `pending_new`,
/// `pending_cancel` or `pending_replace`, nor once done; never a notional
/// order. orderd adds the venue's: a market order (it executes at once)
/// and one whose time in force is not day or gtc cannot be replaced.
pub fn replaceable(facts: ReplaceFacts) -> Result<(), NotReplaceable> {
    let refuse = |reason: String| Err(NotReplaceable(reason));
    if facts.status.is_terminal() {
        return refuse(format!("order is already {}", facts.status));
    }
    if facts.replaced_by || facts.status == Status::PendingReplace {
        return refuse("order is already pending replace".into());
    }
    if facts.cancel_requested || facts.status == Status::PendingCancel {
        return refuse("order is pending cancel".into());
    }
    if !matches!(facts.status, Status::New | Status::PartiallyFilled) || facts.step != Step::Working
    {
        return refuse(format!(
            "order is {}; it can be replaced once the venue works it",
            facts.status
        ));
    }
    if facts.notional {
        return refuse("a notional order cannot be replaced".into());
    }
    if facts.order_type == OrderType::Market {
        return refuse("a market order cannot be replaced".into());
    }
    if !matches!(facts.time_in_force, TimeInForce::Day | TimeInForce::Gtc) {
        return refuse(format!(
            "a {} order cannot be replaced; only day and gtc orders can",
            facts.time_in_force
        ));
    }
    Ok(())
}

/// An order's part of a chain's hold: what it has left to execute and the
/// rate its fills consume the hold at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub qty: Decimal,
    pub rate: Decimal,
}

impl Need {
    fn amount(self) -> Decimal {
        self.qty * self.rate
    }
}

/// How much to raise the hold before a replace: the replaced order still
/// needs `original` (its leaves, at its rate), and the hold covers at least
/// that; the replacement needs `replacement` (its quantity as estimated,
/// at its rate). The replaced order may fill up to all its leaves before
/// the replace takes effect, each share consuming its own rate and taking
/// one share off the replacement, so the raise covers the worst of those
/// races:
/// `max(0, b·rB − a·rA, (b − a)·rB)` for `a` leaves and `b` replacement
/// shares. Rounded up to the cent for cash (`cash_dp`), as holds are.
pub fn raise(original: Need, replacement: Need, dp: u32) -> Decimal {
    let none_fills = replacement.amount() - original.amount();
    let all_fill = (replacement.qty - original.qty) * replacement.rate;
    none_fills
        .max(all_fill)
        .max(Decimal::ZERO)
        .round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::AwayFromZero)
}

/// What the hold holds beyond the replacement's need once the replaced
/// order is done and settled, to be released: the replaced order's share
/// (what the hold held for it), less what its fills consumed, plus the
/// raise, less everything the replacement can consume (its own quantity
/// at its rate; what it has consumed so far cancels out). Never below 0.
pub fn surplus(
    original_share: Decimal,
    original_filled: Need,
    raised: Decimal,
    replacement: Need,
) -> Decimal {
    (original_share - original_filled.amount() + raised - replacement.amount()).max(Decimal::ZERO)
}

/// Whether an ended order's hold is another order's now: a replaced
/// order's passed to its replacement, and the hold a replacement that never
/// reached the venue took over is still the original's. Reconciliation
/// never releases such a hold for it.
pub fn hold_passed_on(status: Status, replaces: bool, placed: bool) -> bool {
    status == Status::Replaced || (replaces && !placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        text.parse().expect("decimal literal")
    }

    fn need(qty: &str, rate: &str) -> Need {
        Need {
            qty: dec(qty),
            rate: dec(rate),
        }
    }

    #[test]
    fn a_bigger_replacement_raises_by_the_difference() {
        // 10 @ 100 working, replaced by 15 @ 100: 500 more.
        assert_eq!(raise(need("10", "100"), need("15", "100"), 2), dec("500"));
    }

    #[test]
    fn a_smaller_replacement_raises_nothing() {
        assert_eq!(raise(need("10", "100"), need("4", "100"), 2), dec("0"));
        assert_eq!(raise(need("10", "100"), need("10", "90"), 2), dec("0"));
    }

    #[test]
    fn a_lower_price_covers_the_original_filling_first() {
        // 10 @ 100 → 10 @ 90: if the original fills 10 first they consume
        // 1,000, which the hold had; then nothing is left to replace. If
        // it fills 5, 500 consumed, 500 left, the replacement needs 5 @ 90:
        // covered. No raise.
        assert_eq!(raise(need("10", "100"), need("10", "90"), 2), dec("0"));
        // 10 @ 100 → 12 @ 90: none fill: 1,080 − 1,000 = 80; all fill:
        // (12 − 10) × 90 = 180 (the replacement's 2 at 90, with the hold
        // spent on the original's 10 at 100). The larger one.
        assert_eq!(raise(need("10", "100"), need("12", "90"), 2), dec("180"));
    }

    #[test]
    fn a_higher_price_raises_by_the_price_difference() {
        // 10 @ 100 → 10 @ 110: 100 more.
        assert_eq!(raise(need("10", "100"), need("10", "110"), 2), dec("100"));
    }

    #[test]
    fn raises_round_up_to_the_cent() {
        assert_eq!(
            raise(need("3", "10.001"), need("3", "10.002"), 2),
            dec("0.01")
        );
    }

    #[test]
    fn after_the_replace_the_surplus_leaves_exactly_the_replacement_need() {
        // 10 @ 100 held 1,000; 4 filled (400 consumed). Replaced by a
        // total of 6 (2 more, at 100): raise 0; the venue carried 4 and the
        // replacement's own qty is 2 → 200 needed; 600 left: 400 surplus.
        let raised = raise(need("6", "100"), need("2", "100"), 2);
        assert_eq!(raised, dec("0"));
        assert_eq!(
            surplus(dec("1000"), need("4", "100"), raised, need("2", "100")),
            dec("400")
        );
    }

    #[test]
    fn a_race_the_raise_covered_leaves_no_shortfall() {
        // 10 @ 100 (1,000 held), replaced by 10 @ 90 with the original's
        // leaves estimated at 10; it fills 3 more first (300 consumed), so
        // the venue carries 3 and the replacement's own is 7 @ 90 = 630.
        let raised = raise(need("10", "100"), need("10", "90"), 2);
        let left = surplus(dec("1000"), need("3", "100"), raised, need("7", "90"));
        assert_eq!(left, dec("70"));
        assert!(left >= Decimal::ZERO);
    }

    #[test]
    fn a_chain_hold_is_passed_on_not_leaked() {
        assert!(hold_passed_on(Status::Replaced, false, true));
        assert!(hold_passed_on(Status::Rejected, true, false));
        assert!(!hold_passed_on(Status::Filled, true, true));
        assert!(!hold_passed_on(Status::Canceled, false, true));
    }

    #[test]
    fn only_working_orders_can_be_replaced() {
        let working = ReplaceFacts {
            status: Status::New,
            step: Step::Working,
            order_type: OrderType::Limit,
            time_in_force: TimeInForce::Day,
            notional: false,
            cancel_requested: false,
            replaced_by: false,
        };
        assert!(replaceable(working).is_ok());
        for (facts, phrase) in [
            (
                ReplaceFacts {
                    status: Status::Accepted,
                    ..working
                },
                "once the venue works it",
            ),
            (
                ReplaceFacts {
                    status: Status::PendingNew,
                    step: Step::Place,
                    ..working
                },
                "once the venue works it",
            ),
            (
                ReplaceFacts {
                    cancel_requested: true,
                    status: Status::PendingCancel,
                    ..working
                },
                "pending cancel",
            ),
            (
                ReplaceFacts {
                    replaced_by: true,
                    status: Status::PendingReplace,
                    ..working
                },
                "pending replace",
            ),
            (
                ReplaceFacts {
                    status: Status::Filled,
                    step: Step::Closed,
                    ..working
                },
                "already filled",
            ),
            (
                ReplaceFacts {
                    status: Status::Replaced,
                    step: Step::Closed,
                    replaced_by: true,
                    ..working
                },
                "already replaced",
            ),
            (
                ReplaceFacts {
                    notional: true,
                    ..working
                },
                "notional",
            ),
            (
                ReplaceFacts {
                    order_type: OrderType::Market,
                    ..working
                },
                "market",
            ),
            (
                ReplaceFacts {
                    time_in_force: TimeInForce::Ioc,
                    ..working
                },
                "day and gtc",
            ),
        ] {
            let refused = replaceable(facts).unwrap_err();
            assert!(refused.0.contains(phrase), "{facts:?}: {refused}");
        }
    }
}

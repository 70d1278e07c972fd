//! A position's cost, at average cost: the fold of its settled fills in
//! the order they executed, and what closing part of it means. Pure.
//!
//! Average cost (the method Alpaca's `avg_entry_price` and `cost_basis`
//! follow): a buy adds its quantity and its cost; a sell removes its
//! quantity at the average cost, so the average is unchanged by sells and
//! the difference to the sale price is realized profit or loss; a position
//! that reaches zero starts afresh.

use rust_decimal::Decimal;

use super::order::{QTY_DP, Side};
use super::{InvalidField, invalid};

/// Decimal places of a reported average entry price.
pub const ENTRY_PRICE_DP: u32 = 4;

/// One settled fill of the position's symbol, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trade {
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
}

/// The shares held and what they cost, at average cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lot {
    pub qty: Decimal,
    pub cost: Decimal,
    /// Profit or loss realized by the sells folded so far.
    pub realized: Decimal,
}

impl Lot {
    /// The lot after `trade`. A sell of more than the lot holds (shares
    /// that came to the ledger without a recorded fill) realizes only the
    /// part with a known cost and leaves the lot empty.
    pub fn apply(self, trade: Trade) -> Lot {
        match trade.side {
            Side::Buy => Lot {
                qty: self.qty + trade.qty,
                cost: self.cost + trade.qty * trade.price,
                realized: self.realized,
            },
            Side::Sell => {
                let sold = trade.qty.min(self.qty);
                if sold.is_zero() {
                    return Lot::default().with_realized(self.realized);
                }
                let released = self.cost * sold / self.qty;
                let qty = self.qty - sold;
                Lot {
                    qty,
                    // Exactly zero once nothing is held: no residue of
                    // the division survives a round trip.
                    cost: if qty.is_zero() {
                        Decimal::ZERO
                    } else {
                        self.cost - released
                    },
                    realized: self.realized + sold * trade.price - released,
                }
            }
        }
    }

    fn with_realized(mut self, realized: Decimal) -> Lot {
        self.realized = realized;
        self
    }

    /// The fold of `trades` (settled fills of one symbol, in execution
    /// order).
    pub fn fold(trades: impl IntoIterator<Item = Trade>) -> Lot {
        trades.into_iter().fold(Lot::default(), Lot::apply)
    }

    /// The lot of a position the ledger holds `ledger_qty` of, made of
    /// `trades`: shares the fills do not account for (funded at the ledger
    /// without a fill) are taken as an opening lot ahead of the fills, at
    /// `opening_price` (the current price: their cost is unknown), so a
    /// later sell leaves the average where it was, as for any share.
    pub fn fold_with_opening(
        ledger_qty: Decimal,
        opening_price: Option<Decimal>,
        trades: &[Trade],
    ) -> Lot {
        let net: Decimal = trades
            .iter()
            .map(|t| match t.side {
                Side::Buy => t.qty,
                Side::Sell => -t.qty,
            })
            .sum();
        let opening = ledger_qty - net;
        let start = match opening_price {
            Some(price) if opening > Decimal::ZERO => Lot {
                qty: opening,
                cost: opening * price,
                realized: Decimal::ZERO,
            },
            _ => Lot::default(),
        };
        trades.iter().copied().fold(start, Lot::apply)
    }

    /// The average cost per share (`None` with nothing held).
    pub fn avg_price(&self) -> Option<Decimal> {
        (!self.qty.is_zero()).then(|| self.cost / self.qty)
    }

    /// The position the ledger holds (`ledger_qty`) at this lot's cost.
    /// Shares beyond the lot's (funded at the ledger, no fill recorded)
    /// are carried at `current_price`, or at the lot's average when there
    /// is no price; fewer shares than the lot's (withdrawn at the ledger)
    /// keep the lot's average.
    pub fn costed(&self, ledger_qty: Decimal, current_price: Option<Decimal>) -> Costed {
        let extra = ledger_qty - self.qty;
        let cost = if extra > Decimal::ZERO {
            let carried = current_price.or(self.avg_price()).unwrap_or(Decimal::ZERO);
            self.cost + extra * carried
        } else {
            self.avg_price().unwrap_or(Decimal::ZERO) * ledger_qty
        };
        let avg_entry_price = if ledger_qty.is_zero() {
            Decimal::ZERO
        } else {
            (cost / ledger_qty).round_dp(ENTRY_PRICE_DP)
        };
        Costed {
            qty: ledger_qty,
            avg_entry_price,
            cost_basis: cost,
        }
    }
}

/// A position's quantity and cost, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Costed {
    pub qty: Decimal,
    pub avg_entry_price: Decimal,
    pub cost_basis: Decimal,
}

impl Costed {
    /// Unrealized profit or loss at `price`, and as a fraction of the cost.
    pub fn unrealized(&self, price: Decimal) -> (Decimal, Option<Decimal>) {
        let pl = self.qty * price - self.cost_basis;
        let plpc = (!self.cost_basis.is_zero()).then(|| pl / self.cost_basis);
        (pl, plpc)
    }
}

/// How much of a position to close (`DELETE /v2/positions/{symbol}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAmount {
    All,
    Qty(Decimal),
    /// Percent of the position, in (0, 100].
    Percentage(Decimal),
}

impl CloseAmount {
    /// From the request's `qty` and `percentage` (at most one of them).
    pub fn parse(qty: Option<&str>, percentage: Option<&str>) -> Result<Self, InvalidField> {
        match (qty, percentage) {
            (Some(_), Some(_)) => Err(invalid(
                "qty",
                "and percentage cannot both be given; choose one",
            )),
            (Some(qty), None) => {
                let value = parse_positive("qty", qty)?;
                // A fraction is a fractional sell: the intake takes it for a
                // fractionable asset only, as any order.
                if value.round_dp(QTY_DP) != value {
                    return Err(invalid(
                        "qty",
                        format!("must have at most {QTY_DP} decimal places, got {qty:?}"),
                    ));
                }
                Ok(CloseAmount::Qty(value))
            }
            (None, Some(pct)) => {
                let value = parse_positive("percentage", pct)?;
                if value > Decimal::ONE_HUNDRED {
                    return Err(invalid(
                        "percentage",
                        format!("must be at most 100, got {pct:?}"),
                    ));
                }
                Ok(CloseAmount::Percentage(value))
            }
            (None, None) => Ok(CloseAmount::All),
        }
    }

    /// The digest of a request to close `amount` of `symbol`: a retry of
    /// it (under its Idempotency-Key) replays the first close.
    pub fn request_digest(self, symbol: &str) -> String {
        use sha2::Digest;
        let amount = match self {
            CloseAmount::All => "all".to_string(),
            CloseAmount::Qty(qty) => format!("qty:{}", qty.normalize()),
            CloseAmount::Percentage(pct) => format!("percentage:{}", pct.normalize()),
        };
        hex::encode(sha2::Sha256::digest(format!("close|v1|{symbol}|{amount}")))
    }

    /// The shares to sell out of a long position of `held` shares: of a
    /// `fractionable` asset, all of it or the percentage to [`QTY_DP`]
    /// places (rounded down), as Alpaca closes fractional positions; of
    /// any other, whole shares (a percentage rounds down).
    pub fn shares_of(self, held: Decimal, fractionable: bool) -> Result<Decimal, InvalidField> {
        let sellable = |shares: Decimal| {
            if fractionable {
                shares.round_dp_with_strategy(QTY_DP, rust_decimal::RoundingStrategy::ToZero)
            } else {
                shares.trunc()
            }
        };
        let shares = match self {
            CloseAmount::All => sellable(held),
            CloseAmount::Qty(qty) => qty,
            CloseAmount::Percentage(pct) => sellable(held * pct / Decimal::ONE_HUNDRED),
        };
        if shares <= Decimal::ZERO {
            return Err(invalid(
                match self {
                    CloseAmount::Percentage(_) => "percentage",
                    _ => "qty",
                },
                format!("closes no share of a position of {held}"),
            ));
        }
        Ok(shares)
    }
}

fn parse_positive(field: &'static str, text: &str) -> Result<Decimal, InvalidField> {
    let value = super::order::parse_plain_decimal(text).ok_or_else(|| {
        invalid(
            field,
            format!("must be a plain decimal number, got {text:?}"),
        )
    })?;
    if value <= Decimal::ZERO {
        return Err(invalid(field, format!("must be positive, got {text:?}")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        text.parse().expect("decimal literal")
    }

    fn buy(qty: &str, price: &str) -> Trade {
        Trade {
            side: Side::Buy,
            qty: dec(qty),
            price: dec(price),
        }
    }

    fn sell(qty: &str, price: &str) -> Trade {
        Trade {
            side: Side::Sell,
            qty: dec(qty),
            price: dec(price),
        }
    }

    /// Worked by hand: buy 10 @ 100, buy 10 @ 110 (avg 105, cost 2,100);
    /// sell 5 @ 120 (realize 5 × (120 − 105) = 75; 15 left, cost 1,575,
    /// avg still 105); sell 15 @ 90 (realize 15 × (90 − 105) = −225; flat);
    /// buy 4 @ 50 (a fresh lot: avg 50, not a blend with the old one).
    #[test]
    fn round_trip_at_average_cost() {
        let lot = Lot::fold([buy("10", "100"), buy("10", "110")]);
        assert_eq!((lot.qty, lot.cost), (dec("20"), dec("2100")));
        assert_eq!(lot.avg_price(), Some(dec("105")));

        let lot = lot.apply(sell("5", "120"));
        assert_eq!((lot.qty, lot.cost), (dec("15"), dec("1575")));
        assert_eq!(lot.avg_price(), Some(dec("105")));
        assert_eq!(lot.realized, dec("75"));

        let lot = lot.apply(sell("15", "90"));
        assert_eq!((lot.qty, lot.cost), (Decimal::ZERO, Decimal::ZERO));
        assert_eq!(lot.avg_price(), None);
        assert_eq!(lot.realized, dec("-150"));

        let lot = lot.apply(buy("4", "50"));
        assert_eq!(lot.avg_price(), Some(dec("50")));
        let costed = lot.costed(dec("4"), Some(dec("55")));
        assert_eq!(costed.cost_basis, dec("200"));
        assert_eq!(costed.unrealized(dec("55")), (dec("20"), Some(dec("0.1"))));
    }

    #[test]
    fn thirds_leave_no_residue() {
        let lot = Lot::fold([
            buy("1", "10"),
            buy("1", "10"),
            buy("1", "11"),
            sell("1", "12"),
            sell("1", "12"),
            sell("1", "12"),
        ]);
        assert_eq!(
            lot,
            Lot {
                qty: Decimal::ZERO,
                cost: Decimal::ZERO,
                realized: dec("5"),
            }
        );
    }

    #[test]
    fn shares_without_a_fill_are_carried_at_the_price() {
        // 10 bought @ 100 through orderd, 10 more funded at the ledger.
        let lot = Lot::fold([buy("10", "100")]);
        let costed = lot.costed(dec("20"), Some(dec("120")));
        assert_eq!(costed.cost_basis, dec("2200"));
        assert_eq!(costed.avg_entry_price, dec("110"));
        // Funded only, no price: nothing known.
        let costed = Lot::default().costed(dec("5"), None);
        assert_eq!(costed.cost_basis, Decimal::ZERO);
        // Fewer at the ledger than bought: the lot's average.
        let costed = lot.costed(dec("4"), None);
        assert_eq!(
            (costed.avg_entry_price, costed.cost_basis),
            (dec("100"), dec("400"))
        );
        // A sell of funded shares beyond the lot empties it.
        assert_eq!(lot.apply(sell("15", "110")).qty, Decimal::ZERO);
    }

    /// Funded 50 at the ledger, bought 10 @ 100, priced at 200: the
    /// opening lot is 50 @ 200, the average (10,000 + 1,000) / 60 =
    /// 183.33; selling 10 leaves it there.
    #[test]
    fn shares_funded_before_the_fills_are_an_opening_lot() {
        let price = Some(dec("200"));
        let bought = [buy("10", "100")];
        let lot = Lot::fold_with_opening(dec("60"), price, &bought);
        assert_eq!((lot.qty, lot.cost), (dec("60"), dec("11000")));
        let before = lot.costed(dec("60"), price).avg_entry_price;
        assert_eq!(before, dec("183.3333"));
        let sold = [buy("10", "100"), sell("10", "210")];
        let lot = Lot::fold_with_opening(dec("50"), price, &sold);
        assert_eq!(lot.costed(dec("50"), price).avg_entry_price, before);
        // Nothing funded: the plain fold.
        assert_eq!(
            Lot::fold_with_opening(dec("10"), price, &bought),
            Lot::fold(bought)
        );
    }

    #[test]
    fn close_amounts() {
        let held = dec("10");
        assert_eq!(
            CloseAmount::parse(None, None)
                .unwrap()
                .shares_of(held, false)
                .unwrap(),
            held
        );
        let pct = CloseAmount::parse(None, Some("25")).unwrap();
        assert_eq!(pct.shares_of(held, false).unwrap(), dec("2"));
        assert!(
            CloseAmount::parse(None, Some("5"))
                .unwrap()
                .shares_of(held, false)
                .is_err()
        );
        // A fractional position of a fractionable asset closes whole, and
        // a percentage of it to 9 places; of another asset, whole shares.
        let fractional = dec("2.5");
        assert_eq!(
            CloseAmount::All.shares_of(fractional, true).unwrap(),
            fractional
        );
        assert_eq!(
            CloseAmount::All.shares_of(fractional, false).unwrap(),
            dec("2")
        );
        assert_eq!(
            CloseAmount::Percentage(dec("33"))
                .shares_of(dec("1"), true)
                .unwrap(),
            dec("0.33")
        );
        assert_eq!(
            CloseAmount::Percentage(dec("50"))
                .shares_of(dec("0.000000003"), true)
                .unwrap(),
            dec("0.000000001")
        );
        assert!(CloseAmount::All.shares_of(dec("0.5"), false).is_err());
        assert_eq!(
            CloseAmount::All.shares_of(dec("0.5"), true).unwrap(),
            dec("0.5")
        );
        assert!(CloseAmount::parse(Some("1"), Some("5")).is_err());
        assert!(CloseAmount::parse(None, Some("100.5")).is_err());
        assert!(CloseAmount::parse(None, Some("0")).is_err());
        assert_eq!(
            CloseAmount::parse(Some("1.5"), None).unwrap(),
            CloseAmount::Qty(dec("1.5"))
        );
        assert!(CloseAmount::parse(Some("1.0000000001"), None).is_err());
        assert!(CloseAmount::parse(Some("1e3"), None).is_err());
        assert_eq!(
            CloseAmount::parse(Some("3"), None)
                .unwrap()
                .shares_of(held, false)
                .unwrap(),
            dec("3")
        );
    }
}

//! What an order holds at the balances service while it works: the one
//! hold rule. A buy holds cash (its limit, or a market buy's collared
//! quote, times its quantity, rounded up to the cent); a sell holds the
//! shares it sells. The per-share `rate` is what each fill consumes of
//! the hold, so price improvement is freed fill by fill.

use rust_decimal::{Decimal, RoundingStrategy};

use super::order::{PriceTerms, QTY_DP, Side};

/// The asset cash is held and settled in.
pub const CASH_ASSET: &str = "USD";

/// Cash is held to the cent.
pub const CASH_DP: u32 = 2;

/// The prices of a quote a market buy's hold (ask, last) or a notional
/// sell's (bid) is sized from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotePrices {
    pub bid: Decimal,
    pub ask: Decimal,
    pub last: Decimal,
}

/// A hold to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// `USD` for buys, the symbol for sells.
    pub asset: String,
    pub amount: Decimal,
    /// What one filled share consumes of the hold.
    pub rate: Decimal,
}

/// A notional order's hold.
///
/// - A buy holds its notional (cents already): the venue buys at most as
///   many shares as it pays for (rounding the quantity down), so the
///   fills never cost more. No rate: each fill consumes what it cost
///   ([`notional_rate`]).
/// - A sell holds the shares the notional is worth at the bid less the
///   collar, `notional / (bid × (1 − collar))` rounded up to
///   [`QTY_DP`] places, and needs `quote`: the venue sells
///   `notional / price` shares, so the price may fall by the collar before
///   the hold is short (a fall past it is settled from the free shares,
///   flagged by the ledger). A sell of more shares than the account holds
///   is refused by the ledger's hold, as any sell.
pub fn notional_hold(
    side: Side,
    symbol: &str,
    notional: Decimal,
    quote: Option<QuotePrices>,
    collar: Decimal,
) -> Result<Hold, NeedsQuote> {
    match side {
        Side::Buy => Ok(Hold {
            asset: CASH_ASSET.to_string(),
            amount: notional.round_dp_with_strategy(CASH_DP, RoundingStrategy::AwayFromZero),
            rate: Decimal::ONE,
        }),
        Side::Sell => {
            let quote = quote.ok_or(NeedsQuote)?;
            let floor = quote.bid * (Decimal::ONE - collar);
            if floor <= Decimal::ZERO {
                return Err(NeedsQuote);
            }
            let shares =
                (notional / floor).round_dp_with_strategy(QTY_DP, RoundingStrategy::AwayFromZero);
            Ok(Hold {
                asset: symbol.to_string(),
                amount: shares,
                rate: Decimal::ONE,
            })
        }
    }
}

/// The rate a notional order's fills consume its hold at: a sell's one
/// share per share; a buy's none (`None`: each fill consumes what it cost,
/// the ledger's `min(remaining, cost)`).
pub fn notional_rate(side: Side) -> Option<Decimal> {
    match side {
        Side::Buy => None,
        Side::Sell => Some(Decimal::ONE),
    }
}

/// The hold of any order, by the one rule for its kind: [`hold_for`] for
/// an order of `qty` shares, [`notional_hold`] for one of `notional` cash;
/// with the rate its fills consume it at, as recorded on the order
/// (`None` for a notional buy: each fill consumes what it cost).
pub fn order_hold(
    side: Side,
    symbol: &str,
    qty: Decimal,
    notional: Option<Decimal>,
    terms: &PriceTerms,
    quote: Option<QuotePrices>,
    collar: Decimal,
) -> Result<(Hold, Option<Decimal>), NeedsQuote> {
    match notional {
        Some(notional) => notional_hold(side, symbol, notional, quote, collar)
            .map(|hold| (hold, notional_rate(side))),
        None => hold_for(side, symbol, qty, terms, quote, collar).map(|hold| {
            let rate = Some(hold.rate);
            (hold, rate)
        }),
    }
}

/// A market (or trailing-stop) buy cannot be sized without a quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a market or trailing-stop buy's hold needs a quote")]
pub struct NeedsQuote;

/// The asset an order holds: cash for a buy, the shares for a sell.
pub fn hold_asset(side: Side, symbol: &str) -> &str {
    match side {
        Side::Buy => CASH_ASSET,
        Side::Sell => symbol,
    }
}

/// Whether a buy with these terms can only be sized from a quote: every
/// buy that executes at the market (market, stop, trailing stop).
pub fn needs_quote(side: Side, terms: &PriceTerms) -> bool {
    side == Side::Buy && terms.limit.is_none()
}

/// The hold for an order of `qty` `symbol` on `side` with price `terms`.
///
/// - A sell holds its shares.
/// - A buy with a limit (limit, stop_limit) holds its limit.
/// - A stop buy executes at the market once the price reaches its stop —
///   at once if it is there already: it holds
///   `max(stop, ask, last) × (1 + collar)` a share, the collar being the
///   buffer for the market moving past the stop before the fill, and
///   needs `quote`.
/// - A trailing-stop buy triggers at most its trail above the price it
///   starts from (its low-water mark only falls): it holds
///   `(max(ask, last) + trail_price) × (1 + collar)`, or
///   `max(ask, last) × (1 + trail_percent/100) × (1 + collar)`, and needs
///   `quote`.
/// - A market buy needs `quote`; it holds `max(ask, last) × (1 + collar)`
///   a share, so the price may move by the collar before the hold is short.
///
/// Rates and amounts are rounded up to the cent.
pub fn hold_for(
    side: Side,
    symbol: &str,
    qty: Decimal,
    terms: &PriceTerms,
    quote: Option<QuotePrices>,
    collar: Decimal,
) -> Result<Hold, NeedsQuote> {
    let up_to_cent =
        |value: Decimal| value.round_dp_with_strategy(CASH_DP, RoundingStrategy::AwayFromZero);
    let collared = |price: Decimal| up_to_cent(price * (Decimal::ONE + collar));
    let cash = |rate: Decimal| Hold {
        asset: CASH_ASSET.to_string(),
        amount: up_to_cent(qty * rate),
        rate,
    };
    if side == Side::Sell {
        return Ok(Hold {
            asset: hold_asset(side, symbol).to_string(),
            amount: qty,
            rate: Decimal::ONE,
        });
    }
    if let Some(limit) = terms.limit {
        return Ok(cash(limit));
    }
    let quote = quote.ok_or(NeedsQuote)?;
    let start = quote.ask.max(quote.last);
    if let Some(stop) = terms.stop {
        return Ok(cash(collared(stop.max(start))));
    }
    let trigger_bound = match (terms.trail_price, terms.trail_percent) {
        (Some(trail), _) => start + trail,
        (None, Some(percent)) => start * (Decimal::ONE + percent / Decimal::ONE_HUNDRED),
        (None, None) => start,
    };
    Ok(cash(collared(trigger_bound)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        text.parse().expect("decimal literal")
    }

    fn limit(price: Decimal) -> PriceTerms {
        PriceTerms {
            limit: Some(price),
            ..PriceTerms::default()
        }
    }

    #[test]
    fn a_sell_holds_its_shares() {
        let hold = hold_for(
            Side::Sell,
            "AAPL",
            dec("7"),
            &PriceTerms::default(),
            None,
            dec("0.05"),
        )
        .unwrap();
        assert_eq!(
            (hold.asset.as_str(), hold.amount, hold.rate),
            ("AAPL", dec("7"), Decimal::ONE)
        );
    }

    #[test]
    fn a_limit_buy_holds_its_limit_rounded_up_to_the_cent() {
        let hold = hold_for(
            Side::Buy,
            "X",
            dec("3"),
            &limit(dec("0.3333")),
            None,
            dec("0.05"),
        )
        .unwrap();
        assert_eq!(hold.asset, CASH_ASSET);
        assert_eq!(hold.amount, dec("1.00"), "0.9999 rounds up");
        assert_eq!(hold.rate, dec("0.3333"));
    }

    #[test]
    fn a_market_buy_holds_the_collared_quote_and_needs_one() {
        assert_eq!(
            hold_for(
                Side::Buy,
                "X",
                dec("2"),
                &PriceTerms::default(),
                None,
                dec("0.05")
            ),
            Err(NeedsQuote)
        );
        let quote = QuotePrices {
            bid: dec("100") - dec("0.02"),
            ask: dec("100"),
            last: dec("101"),
        };
        let hold = hold_for(
            Side::Buy,
            "X",
            dec("2"),
            &PriceTerms::default(),
            Some(quote),
            dec("0.05"),
        )
        .unwrap();
        assert_eq!(hold.rate, dec("106.05"));
        assert_eq!(hold.amount, dec("212.10"));
    }

    #[test]
    fn stop_buys_hold_the_collared_stop_or_their_limit() {
        let stop = PriceTerms {
            stop: Some(dec("100")),
            ..PriceTerms::default()
        };
        assert!(needs_quote(Side::Buy, &stop));
        assert_eq!(
            hold_for(Side::Buy, "X", dec("3"), &stop, None, dec("0.05")),
            Err(NeedsQuote)
        );
        let below = QuotePrices {
            bid: dec("90") - dec("0.02"),
            ask: dec("90"),
            last: dec("89"),
        };
        let hold = hold_for(Side::Buy, "X", dec("3"), &stop, Some(below), dec("0.05")).unwrap();
        assert_eq!((hold.rate, hold.amount), (dec("105.00"), dec("315.00")));
        // A stop the market is past already triggers at once, at the market.
        let above = QuotePrices {
            bid: dec("190") - dec("0.02"),
            ask: dec("190"),
            last: dec("189.5"),
        };
        let hold = hold_for(Side::Buy, "X", dec("3"), &stop, Some(above), dec("0.05")).unwrap();
        assert_eq!(hold.rate, dec("199.50"));
        let stop_limit = PriceTerms {
            limit: Some(dec("101.5")),
            ..stop
        };
        let hold = hold_for(Side::Buy, "X", dec("2"), &stop_limit, None, dec("0.05")).unwrap();
        assert_eq!((hold.rate, hold.amount), (dec("101.5"), dec("203.00")));
    }

    #[test]
    fn a_trailing_buy_holds_its_furthest_trigger_collared_and_needs_a_quote() {
        let by_price = PriceTerms {
            trail_price: Some(dec("2")),
            ..PriceTerms::default()
        };
        assert!(needs_quote(Side::Buy, &by_price));
        assert!(!needs_quote(Side::Sell, &by_price));
        assert_eq!(
            hold_for(Side::Buy, "X", dec("1"), &by_price, None, dec("0.05")),
            Err(NeedsQuote)
        );
        let quote = QuotePrices {
            bid: dec("100") - dec("0.02"),
            ask: dec("100"),
            last: dec("99"),
        };
        let hold = hold_for(
            Side::Buy,
            "X",
            dec("1"),
            &by_price,
            Some(quote),
            dec("0.05"),
        )
        .unwrap();
        // (100 + 2) × 1.05
        assert_eq!(hold.rate, dec("107.10"));
        let by_percent = PriceTerms {
            trail_percent: Some(dec("1.5")),
            ..PriceTerms::default()
        };
        let hold = hold_for(
            Side::Buy,
            "X",
            dec("1"),
            &by_percent,
            Some(quote),
            dec("0.05"),
        )
        .unwrap();
        // 100 × 1.015 × 1.05 = 106.575, up to the cent
        assert_eq!(hold.rate, dec("106.58"));
    }

    #[test]
    fn a_notional_buy_holds_its_notional_and_a_sell_the_shares_it_is_worth() {
        let buy = notional_hold(Side::Buy, "AAPL", dec("1000"), None, dec("0.05")).unwrap();
        assert_eq!((buy.asset.as_str(), buy.amount), ("USD", dec("1000")));
        assert_eq!(notional_rate(Side::Buy), None);
        assert_eq!(
            notional_hold(Side::Sell, "AAPL", dec("100"), None, dec("0.05")),
            Err(NeedsQuote)
        );
        // 100 / (99.99 × 0.95) = 1.0527368526..., up to 9 places.
        let quote = Some(QuotePrices {
            bid: dec("99.99"),
            ask: dec("100.01"),
            last: dec("100"),
        });
        let sell = notional_hold(Side::Sell, "AAPL", dec("100"), quote, dec("0.05")).unwrap();
        assert_eq!(
            (sell.asset.as_str(), sell.amount),
            ("AAPL", dec("1.052736853"))
        );
        assert_eq!(notional_rate(Side::Sell), Some(Decimal::ONE));
    }

    #[test]
    fn an_orders_hold_and_rate_follow_its_kind() {
        let quote = Some(QuotePrices {
            bid: dec("99.99"),
            ask: dec("100.01"),
            last: dec("100"),
        });
        let terms = limit(dec("10"));
        let (whole, rate) =
            order_hold(Side::Buy, "AAPL", dec("3"), None, &terms, None, dec("0.05")).unwrap();
        assert_eq!((whole.amount, rate), (dec("30"), Some(dec("10"))));
        // A notional buy: its notional, no rate, whatever its Hold says.
        let market = PriceTerms::default();
        let (buy, rate) = order_hold(
            Side::Buy,
            "AAPL",
            Decimal::ZERO,
            Some(dec("100")),
            &market,
            None,
            dec("0.05"),
        )
        .unwrap();
        assert_eq!((buy.amount, rate), (dec("100"), None));
        let (sell, rate) = order_hold(
            Side::Sell,
            "AAPL",
            Decimal::ZERO,
            Some(dec("100")),
            &market,
            quote,
            dec("0.05"),
        )
        .unwrap();
        assert_eq!(
            (sell.amount, rate),
            (dec("1.052736853"), Some(Decimal::ONE))
        );
    }
}

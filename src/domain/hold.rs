//! What an order holds at the balances service while it works: the one
//! hold rule. A buy holds cash (its limit, or a market buy's collared
//! quote, times its quantity, rounded up to the cent); a sell holds the
//! shares it sells. The per-share `rate` is what each fill consumes of
//! the hold, so price improvement is freed fill by fill.

use rust_decimal::{Decimal, RoundingStrategy};

use super::order::Side;

/// The asset cash is held and settled in.
pub const CASH_ASSET: &str = "USD";

/// Cash is held to the cent.
pub const CASH_DP: u32 = 2;

/// The prices of a quote a market buy's hold is sized from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotePrices {
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

/// A market buy cannot be sized without a quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a market buy's hold needs a quote")]
pub struct NeedsQuote;

/// The asset an order holds: cash for a buy, the shares for a sell.
pub fn hold_asset(side: Side, symbol: &str) -> &str {
    match side {
        Side::Buy => CASH_ASSET,
        Side::Sell => symbol,
    }
}

/// The hold for an order of `qty` `symbol` on `side` at `limit_price`
/// (`None`: market). A market buy needs `quote`; it holds
/// `max(ask, last) × (1 + collar)` a share, so the price may move by the
/// collar before the hold is short.
pub fn hold_for(
    side: Side,
    symbol: &str,
    qty: Decimal,
    limit_price: Option<Decimal>,
    quote: Option<QuotePrices>,
    collar: Decimal,
) -> Result<Hold, NeedsQuote> {
    let up_to_cent =
        |value: Decimal| value.round_dp_with_strategy(CASH_DP, RoundingStrategy::AwayFromZero);
    match (side, limit_price) {
        (Side::Sell, _) => Ok(Hold {
            asset: hold_asset(side, symbol).to_string(),
            amount: qty,
            rate: Decimal::ONE,
        }),
        (Side::Buy, Some(limit)) => Ok(Hold {
            asset: CASH_ASSET.to_string(),
            amount: up_to_cent(qty * limit),
            rate: limit,
        }),
        (Side::Buy, None) => {
            let quote = quote.ok_or(NeedsQuote)?;
            let rate = up_to_cent(quote.ask.max(quote.last) * (Decimal::ONE + collar));
            Ok(Hold {
                asset: CASH_ASSET.to_string(),
                amount: up_to_cent(qty * rate),
                rate,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        text.parse().expect("decimal literal")
    }

    #[test]
    fn a_sell_holds_its_shares() {
        let hold = hold_for(Side::Sell, "AAPL", dec("7"), None, None, dec("0.05")).unwrap();
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
            Some(dec("0.3333")),
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
            hold_for(Side::Buy, "X", dec("2"), None, None, dec("0.05")),
            Err(NeedsQuote)
        );
        let quote = QuotePrices {
            ask: dec("100"),
            last: dec("101"),
        };
        let hold = hold_for(Side::Buy, "X", dec("2"), None, Some(quote), dec("0.05")).unwrap();
        assert_eq!(hold.rate, dec("106.05"));
        assert_eq!(hold.amount, dec("212.10"));
    }
}

//! Instruments: what the venue lists, and whether an order for one can be
//! taken: an unknown, inactive or non-tradable symbol, a quantity off the
//! lot or outside the asset's bounds, a price off its tick, are refused
//! before anything is recorded.

use rust_decimal::Decimal;
use uuid::Uuid;

use super::InvalidField;

text_enum! {
    /// Whether the venue lists the instrument for trading.
    pub enum AssetStatus as "status" { Active => "active", Inactive => "inactive" }
}

/// An instrument as orderd knows it (synced from the venue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub symbol: String,
    /// orderd's stable id of the symbol (what orders and positions show).
    pub asset_id: Uuid,
    pub venue_asset_id: String,
    pub name: String,
    pub exchange: String,
    pub asset_class: String,
    pub status: AssetStatus,
    pub tradable: bool,
    pub shortable: bool,
    pub easy_to_borrow: bool,
    pub fractionable: bool,
    pub marginable: bool,
    pub halted: bool,
    pub tick_size: Decimal,
    pub sub_dollar_tick_size: Decimal,
    pub tick_threshold: Decimal,
    pub lot_size: Decimal,
    pub min_qty: Decimal,
    pub max_qty: Decimal,
}

/// The namespace of the asset ids orderd shows (UUID v5 of the symbol), so
/// a symbol always has the same asset_id, on every instance and across
/// restarts.
const ASSET_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7264_4000_8000_6173_7365_7473);

/// orderd's id of `symbol`.
pub fn asset_id(symbol: &str) -> Uuid {
    Uuid::new_v5(&ASSET_ID_NAMESPACE, symbol.as_bytes())
}

/// What a sync of the venue's list changes in orderd's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetChange {
    /// Listed by the venue, new to orderd.
    Listed(Asset),
    /// Known, and listed differently now (status, tradability, halt, ticks,
    /// bounds, name).
    Changed { before: Asset, after: Asset },
    /// Known, and no longer listed at all: kept, inactive and not tradable.
    Unlisted { before: Asset, after: Asset },
}

impl AssetChange {
    pub fn kind(&self) -> &'static str {
        match self {
            AssetChange::Listed(_) => "asset_listed",
            AssetChange::Changed { .. } => "asset_changed",
            AssetChange::Unlisted { .. } => "asset_unlisted",
        }
    }

    /// The asset as it is to be recorded.
    pub fn after(&self) -> &Asset {
        match self {
            AssetChange::Listed(after)
            | AssetChange::Changed { after, .. }
            | AssetChange::Unlisted { after, .. } => after,
        }
    }
}

/// The changes that make `known` what the venue `listed`. Pure.
pub fn diff(known: &[Asset], listed: &[Asset]) -> Vec<AssetChange> {
    let mut changes = Vec::new();
    for after in listed {
        match known.iter().find(|k| k.symbol == after.symbol) {
            None => changes.push(AssetChange::Listed(after.clone())),
            Some(before) if before != after => changes.push(AssetChange::Changed {
                before: before.clone(),
                after: after.clone(),
            }),
            Some(_) => {}
        }
    }
    for before in known {
        if !listed.iter().any(|l| l.symbol == before.symbol)
            && (before.status == AssetStatus::Active || before.tradable)
        {
            let mut after = before.clone();
            after.status = AssetStatus::Inactive;
            after.tradable = false;
            changes.push(AssetChange::Unlisted {
                before: before.clone(),
                after,
            });
        }
    }
    changes
}

/// Why an order cannot be taken for an asset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssetRefusal {
    #[error("asset \"{0}\" not found")]
    Unknown(String),
    #[error("asset \"{0}\" is not active")]
    Inactive(String),
    #[error("asset \"{0}\" is not tradable")]
    NotTradable(String),
    #[error(transparent)]
    Field(#[from] InvalidField),
}

impl Asset {
    /// The tick at `price`: the sub-dollar tick below the threshold.
    pub fn tick_at(&self, price: Decimal) -> Decimal {
        if price < self.tick_threshold {
            self.sub_dollar_tick_size
        } else {
            self.tick_size
        }
    }

    /// Whether an order of `qty` (at its `prices`, each named by its
    /// field: limit, stop, trail price) can be taken. A fractional `qty`
    /// needs a fractionable asset; `min_qty` and `lot_size` bound whole
    /// orders.
    pub fn admits(
        &self,
        qty: Decimal,
        prices: &[(&'static str, Decimal)],
    ) -> Result<(), AssetRefusal> {
        self.takes_orders()?;
        let field = |field: &'static str, problem: String| InvalidField { field, problem };
        // A fractional order: the asset must take fractions; the
        // whole-share lot and minimum are the rules of whole orders.
        let fractional = !qty.fract().is_zero();
        if fractional && !self.fractionable {
            return Err(field(
                "qty",
                format!(
                    "{} is not fractionable: qty must be a whole number of shares",
                    self.symbol
                ),
            )
            .into());
        }
        if qty > self.max_qty {
            return Err(field(
                "qty",
                format!("must be at most {} for {}", self.max_qty, self.symbol),
            )
            .into());
        }
        if fractional {
            return self.on_the_tick(prices);
        }
        if qty < self.min_qty {
            return Err(field(
                "qty",
                format!("must be at least {} for {}", self.min_qty, self.symbol),
            )
            .into());
        }
        if !(qty % self.lot_size).is_zero() {
            return Err(field(
                "qty",
                format!(
                    "must be a multiple of {} for {}",
                    self.lot_size, self.symbol
                ),
            )
            .into());
        }
        self.on_the_tick(prices)
    }

    /// Whether a notional order can be taken: the venue decides its
    /// quantity, a fraction as likely as not, so the asset must be
    /// fractionable (Alpaca's rule).
    pub fn admits_notional(&self) -> Result<(), AssetRefusal> {
        self.takes_orders()?;
        if !self.fractionable {
            return Err(InvalidField {
                field: "notional",
                problem: format!(
                    "orders need a fractionable asset; {} is not fractionable",
                    self.symbol
                ),
            }
            .into());
        }
        Ok(())
    }

    /// Whether the asset takes orders at all: listed and tradable.
    fn takes_orders(&self) -> Result<(), AssetRefusal> {
        if self.status != AssetStatus::Active {
            return Err(AssetRefusal::Inactive(self.symbol.clone()));
        }
        if !self.tradable {
            return Err(AssetRefusal::NotTradable(self.symbol.clone()));
        }
        Ok(())
    }

    /// Whether each of `prices` is on the asset's tick.
    fn on_the_tick(&self, prices: &[(&'static str, Decimal)]) -> Result<(), AssetRefusal> {
        let field = |field: &'static str, problem: String| InvalidField { field, problem };
        for &(name, price) in prices {
            let tick = self.tick_at(price);
            if !(price % tick).is_zero() {
                return Err(field(
                    name,
                    format!(
                        "must be a multiple of {} for {} at this price",
                        tick.normalize(),
                        self.symbol
                    ),
                )
                .into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn asset(symbol: &str) -> Asset {
        Asset {
            symbol: symbol.to_string(),
            asset_id: Uuid::nil(),
            venue_asset_id: "v".into(),
            name: symbol.into(),
            exchange: "NASDAQ".into(),
            asset_class: "us_equity".into(),
            status: AssetStatus::Active,
            tradable: true,
            shortable: true,
            easy_to_borrow: true,
            fractionable: false,
            marginable: true,
            halted: false,
            tick_size: Decimal::new(1, 2),
            sub_dollar_tick_size: Decimal::new(1, 4),
            tick_threshold: Decimal::ONE,
            lot_size: Decimal::ONE,
            min_qty: Decimal::ONE,
            max_qty: Decimal::from(1000),
        }
    }

    #[test]
    fn a_diff_lists_what_is_new_changed_and_gone_and_nothing_else() {
        let known = vec![asset("AAPL"), asset("MSFT"), asset("OLD")];
        let mut msft = asset("MSFT");
        msft.halted = true;
        let listed = vec![asset("AAPL"), msft.clone(), asset("NEW")];
        let changes = diff(&known, &listed);
        let kinds: Vec<_> = changes
            .iter()
            .map(|c| (c.kind(), c.after().symbol.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("asset_changed", "MSFT"),
                ("asset_listed", "NEW"),
                ("asset_unlisted", "OLD")
            ]
        );
        assert_eq!(changes[2].after().status, AssetStatus::Inactive);
        assert!(!changes[2].after().tradable);
        // Applying the diff leaves nothing to change.
        let applied: Vec<Asset> = listed
            .iter()
            .cloned()
            .chain([changes[2].after().clone()])
            .collect();
        assert!(diff(&applied, &listed).is_empty());
        assert_eq!(asset_id("AAPL"), asset_id("AAPL"));
        assert_ne!(asset_id("AAPL"), asset_id("MSFT"));
    }

    #[test]
    fn an_order_is_held_to_the_assets_status_lot_bounds_and_tick() {
        let a = asset("AAPL");
        assert!(
            a.admits(
                Decimal::from(10),
                &[("limit_price", Decimal::new(19025, 2))]
            )
            .is_ok()
        );
        assert!(
            a.admits(Decimal::from(10), &[("stop_price", Decimal::new(5, 1))])
                .is_ok()
        );
        assert!(matches!(
            a.admits(Decimal::from(1001), &[]),
            Err(AssetRefusal::Field(InvalidField { field: "qty", .. }))
        ));
        assert!(matches!(
            a.admits(
                Decimal::from(1),
                &[("limit_price", Decimal::new(190255, 3))]
            ),
            Err(AssetRefusal::Field(InvalidField {
                field: "limit_price",
                ..
            }))
        ));
        let mut lots = asset("BRK");
        lots.lot_size = Decimal::from(100);
        lots.min_qty = Decimal::from(100);
        assert!(lots.admits(Decimal::from(150), &[]).is_err());
        assert!(lots.admits(Decimal::from(200), &[]).is_ok());
        let mut halted = asset("X");
        halted.halted = true;
        assert!(
            halted.admits(Decimal::ONE, &[]).is_ok(),
            "a halt does not refuse orders"
        );
        let mut gone = asset("Y");
        gone.status = AssetStatus::Inactive;
        assert_eq!(
            gone.admits(Decimal::ONE, &[]),
            Err(AssetRefusal::Inactive("Y".into()))
        );
        let mut frozen = asset("Z");
        frozen.tradable = false;
        assert_eq!(
            frozen.admits(Decimal::ONE, &[]),
            Err(AssetRefusal::NotTradable("Z".into()))
        );
    }

    #[test]
    fn a_fractional_qty_needs_a_fractionable_asset() {
        let half = Decimal::new(5, 1);
        let whole_only = asset("AAPL");
        match whole_only.admits(half, &[]) {
            Err(AssetRefusal::Field(InvalidField {
                field: "qty",
                problem,
            })) => {
                assert!(problem.contains("not fractionable"), "{problem}")
            }
            other => panic!("{other:?}"),
        }
        let mut fractions = asset("AAPL");
        fractions.fractionable = true;
        // Below the whole-share minimum and off the lot: fractions are not
        // bound by the rules of whole orders.
        fractions.min_qty = Decimal::from(5);
        assert!(fractions.admits(half, &[]).is_ok());
        assert!(fractions.admits(Decimal::new(123_456_789, 9), &[]).is_ok());
        assert!(fractions.admits(Decimal::from(2), &[]).is_err());
        assert!(fractions.admits(Decimal::new(10_005, 1), &[]).is_err());
    }

    #[test]
    fn a_notional_order_needs_a_fractionable_asset() {
        let mut a = asset("AAPL");
        assert!(matches!(
            a.admits_notional(),
            Err(AssetRefusal::Field(InvalidField {
                field: "notional",
                ..
            }))
        ));
        a.fractionable = true;
        assert_eq!(a.admits_notional(), Ok(()));
        a.tradable = false;
        assert_eq!(
            a.admits_notional(),
            Err(AssetRefusal::NotTradable("AAPL".into()))
        );
    }
}

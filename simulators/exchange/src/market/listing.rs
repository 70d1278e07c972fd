//! Instruments over time: their reference data, listing and delisting, and
//! halts (by the admin or the `halt` fault) with the reopening print.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Exchange, ExecType, Instrument, MAX_LIMIT_PRICE, MAX_ORDER_QTY, MIN_REFERENCE_PRICE, Market,
    OrderStatus, round_to_tick, seeded_move,
};

/// Halts kept in the history (the oldest are forgotten first).
pub const MAX_HALT_HISTORY: usize = 10_000;
/// Longest symbol a listing may have.
pub const MAX_SYMBOL_LEN: usize = 16;
/// Longest asset name a listing may have.
pub const MAX_ASSET_NAME_LEN: usize = 200;
/// Namespace of asset ids: UUID v5 of the URL `urn:exchange-sim:assets`.
pub const ASSET_ID_NAMESPACE: Uuid = Uuid::from_u128(0x53bd_e44e_20fa_52ad_bc06_6b84_3004_0630);

/// The stable id of a symbol's asset: UUID v5 of its UTF-8 bytes in
/// [`ASSET_ID_NAMESPACE`].
pub fn asset_id(symbol: &str) -> Uuid {
    Uuid::new_v5(&ASSET_ID_NAMESPACE, symbol.as_bytes())
}

/// A symbol to list (configured at start-up or `POST /admin/assets`).
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub symbol: String,
    pub name: String,
    pub price: Decimal,
    pub exchange: Exchange,
    pub shortable: bool,
    pub min_qty: u64,
    /// Takes fractional quantities (market orders for the day); only a
    /// symbol whose whole orders start at one share can.
    pub fractionable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HaltReason {
    /// `POST /admin/assets/{symbol}/halt`.
    Admin,
    /// The `halt` fault.
    Fault,
}

/// One halt of one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct HaltRecord {
    pub symbol: String,
    pub from: DateTime<Utc>,
    /// None while the symbol is still halted.
    pub to: Option<DateTime<Utc>>,
    pub reason: HaltReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    /// The symbol is listed and active (HTTP 409).
    AlreadyActive,
    /// A field is not acceptable (HTTP 400).
    Invalid(String),
}

impl Instrument {
    pub(super) fn new(listing: Listing) -> Instrument {
        let price = round_to_tick(listing.price, RoundingStrategy::MidpointAwayFromZero)
            .max(MIN_REFERENCE_PRICE);
        Instrument {
            id: asset_id(&listing.symbol),
            name: if listing.name.is_empty() {
                listing.symbol.clone()
            } else {
                listing.name
            },
            symbol: listing.symbol,
            exchange: listing.exchange,
            shortable: listing.shortable,
            min_qty: Decimal::from(listing.min_qty.max(1)),
            fractionable: listing.fractionable,
            active: true,
            halted: false,
            reference: price,
            last: price,
            resting: Default::default(),
            stops: Default::default(),
            halt_generation: 0,
        }
    }

    /// Orders may be placed in it: it is listed (a halted symbol still takes orders).
    pub fn tradable(&self) -> bool {
        self.active
    }
}

impl Listing {
    fn check(&self) -> Result<(), ListError> {
        let symbol_ok = !self.symbol.is_empty()
            && self.symbol.len() <= MAX_SYMBOL_LEN
            && self
                .symbol
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.' || c == '-');
        if !symbol_ok {
            return Err(ListError::Invalid(format!(
                "symbol must be 1 to {MAX_SYMBOL_LEN} of A-Z, 0-9, '.', '-'"
            )));
        }
        if self.name.chars().count() > MAX_ASSET_NAME_LEN {
            return Err(ListError::Invalid(format!(
                "name must be at most {MAX_ASSET_NAME_LEN} characters"
            )));
        }
        if self.price <= Decimal::ZERO || self.price > Decimal::from(MAX_LIMIT_PRICE) {
            return Err(ListError::Invalid(format!(
                "price must be > 0 and at most {MAX_LIMIT_PRICE}"
            )));
        }
        if !(1..=MAX_ORDER_QTY).contains(&self.min_qty) {
            return Err(ListError::Invalid(format!(
                "min_qty must be 1 to {MAX_ORDER_QTY}"
            )));
        }
        if self.fractionable && self.min_qty != 1 {
            return Err(ListError::Invalid(
                "a fractionable symbol must have min_qty 1".to_owned(),
            ));
        }
        Ok(())
    }
}

impl Market {
    /// Lists a new symbol, or re-lists a delisted one (active again, not
    /// halted, at the new price and reference data). An active symbol is
    /// refused.
    pub fn list_asset(
        &mut self,
        listing: Listing,
        now: DateTime<Utc>,
    ) -> Result<&Instrument, ListError> {
        listing.check()?;
        let index = match self.instrument_index.get(&listing.symbol) {
            Some(&i) if self.instruments[i].active => return Err(ListError::AlreadyActive),
            Some(&i) => {
                self.end_halt(i, now);
                let resting = std::mem::take(&mut self.instruments[i].resting);
                let stops = std::mem::take(&mut self.instruments[i].stops);
                let generation = self.instruments[i].halt_generation + 1;
                self.instruments[i] = Instrument {
                    resting,
                    stops,
                    halt_generation: generation,
                    ..Instrument::new(listing)
                };
                i
            }
            None => {
                let i = self.instruments.len();
                self.instrument_index.insert(listing.symbol.clone(), i);
                self.instruments.push(Instrument::new(listing));
                i
            }
        };
        Ok(&self.instruments[index])
    }

    /// Delists a symbol: inactive, not tradable; its working orders are
    /// canceled at once (`canceled` reports).
    pub fn delist(&mut self, symbol: &str, now: DateTime<Utc>) -> Option<&Instrument> {
        let &i = self.instrument_index.get(symbol)?;
        self.instruments[i].active = false;
        let working: Vec<usize> = self
            .open
            .iter()
            .copied()
            .filter(|&o| self.orders[o].symbol_index == i)
            .collect();
        for index in working {
            self.finish(index, OrderStatus::Canceled, now);
            self.report(index, ExecType::Canceled, None, now, None);
        }
        Some(&self.instruments[i])
    }

    /// Halts a symbol until [`Market::resume`] (an admin halt of a symbol
    /// the fault halted lasts until resumed too).
    pub fn halt(&mut self, symbol: &str, now: DateTime<Utc>) -> Option<&Instrument> {
        let &i = self.instrument_index.get(symbol)?;
        self.halt_index(i, HaltReason::Admin, now);
        Some(&self.instruments[i])
    }

    /// Resumes a halted symbol: the reopening print, then matching resumes.
    pub fn resume(&mut self, symbol: &str, now: DateTime<Utc>) -> Option<&Instrument> {
        let &i = self.instrument_index.get(symbol)?;
        self.resume_index(i, now);
        Some(&self.instruments[i])
    }

    /// Halts (or keeps halted) a symbol; returns the halt's generation.
    pub(super) fn halt_index(
        &mut self,
        instrument: usize,
        reason: HaltReason,
        now: DateTime<Utc>,
    ) -> u64 {
        let i = &mut self.instruments[instrument];
        i.halt_generation += 1;
        if !i.halted {
            i.halted = true;
            self.halts.push_back(HaltRecord {
                symbol: i.symbol.clone(),
                from: now,
                to: None,
                reason,
            });
            if self.halts.len() > MAX_HALT_HISTORY {
                self.halts.pop_front();
            }
        }
        i.halt_generation
    }

    /// Ends a halt: the reference takes a seeded jump within
    /// ±`halt_reopen_bps` that is also the last price (the reopening
    /// print), orders that now cross fill, and stop triggers are evaluated.
    pub(super) fn resume_index(&mut self, instrument: usize, now: DateTime<Utc>) {
        if !self.end_halt(instrument, now) {
            return;
        }
        let reference = self.instruments[instrument].reference;
        let reopening = seeded_move(&mut self.halt_rng, reference, self.params.halt_reopen_bps);
        self.instruments[instrument].reference = reopening;
        self.instruments[instrument].last = reopening;
        self.wake_resting(instrument, now);
        self.check_stops(instrument, now);
    }

    /// Clears the halt flag and closes its record; false if not halted.
    fn end_halt(&mut self, instrument: usize, now: DateTime<Utc>) -> bool {
        let i = &mut self.instruments[instrument];
        if !i.halted {
            return false;
        }
        i.halted = false;
        i.halt_generation += 1;
        if let Some(record) = self
            .halts
            .iter_mut()
            .rev()
            .find(|h| h.symbol == i.symbol && h.to.is_none())
        {
            record.to = Some(now);
        }
        true
    }

    /// Halts since start-up, oldest first.
    pub fn halts(&self) -> impl Iterator<Item = &HaltRecord> {
        self.halts.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_ids_are_uuid_v5_in_the_documented_namespace() {
        assert_eq!(
            ASSET_ID_NAMESPACE,
            Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:exchange-sim:assets")
        );
        assert_eq!(
            asset_id("AAPL").to_string(),
            "8d8bb26d-a16c-535e-bd3b-12e7271e4a03"
        );
        assert_eq!(asset_id("AAPL").get_version_num(), 5);
        assert_ne!(asset_id("AAPL"), asset_id("MSFT"));
    }
}

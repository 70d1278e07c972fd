//! The pure ledger core: accounts, two-phase holds, settlements and the append-only ledger.
//!
//! Architecture invariant: this module knows nothing about HTTP, JSON, idempotency
//! records, faults, clocks or tasks. Time comes in as `now`, ids come from a seeded
//! generator owned by the ledger, and every operation either applies completely or
//! returns an error having changed nothing. That is what makes it property-testable.
//!
//! Ledger entry semantics (the `amount` of an entry is signed):
//! - `adjustment`: change of `total` (funding by `/admin/accounts`);
//! - `hold`: change of `held` (+amount) when a hold is created;
//! - `release`: change of `held` (−amount) when a hold is released, **and** when a
//!   settlement consumes a hold (that entry carries the settlement's `exec_id`);
//! - `trade_debit` / `trade_credit`: change of `total` by the trade itself
//!   (−qty×price or −qty, +qty or +qty×price);
//! - `fee`: change of `total` of USD (−fee).
//!
//! So for every (account, asset): `total` = Σ adjustment + trade_* + fee entries and
//! `held` = Σ hold + release entries = Σ remaining of that account's holds on that asset.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use uuid::Uuid;

/// The cash asset; every other asset is a symbol (shares).
pub const USD: &str = "USD";

/// Largest amount, quantity, price or fee accepted in one request, and the largest
/// value of `qty × price`. Keeps every product exact inside `Decimal`'s 96-bit mantissa.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0); // 1e12

/// Most decimal places accepted in one amount: a share quantity of 9
/// places (fractional shares) times a price of 6 (the finest tick, 4, and
/// room for a midpoint or price-improved execution between ticks), so
/// the cash of a fractional fill is kept exactly. Every amount below
/// MAX_AMOUNT at this scale, and every product `qty × price` the ledger
/// forms of two of them that it keeps, fits `Decimal`'s mantissa.
pub const MAX_SCALE: u32 = 15;

/// Per-asset balance. `available` is derived, never stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    pub total: Decimal,
    pub held: Decimal,
}

impl Balance {
    pub fn available(&self) -> Decimal {
        self.total - self.held
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub account_id: String,
    /// Ordered so that responses and the ground truth are stable.
    pub balances: BTreeMap<String, Balance>,
}

/// What a hold was taken for (both optional; `order_id` is indexed for look-ups).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HoldReference {
    pub order_id: Option<String>,
    pub client_order_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldStatus {
    Open,
    Closed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub id: Uuid,
    pub account_id: String,
    pub asset: String,
    pub amount: Decimal,
    /// Taken by settlements (moved out of `held` and out of `total`).
    pub consumed: Decimal,
    /// Given back to `available` by releases.
    pub released: Decimal,
    pub status: HoldStatus,
    pub reference: HoldReference,
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Hold {
    pub fn remaining(&self) -> Decimal {
        self.amount - self.consumed - self.released
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHold {
    pub idempotency_key: String,
    pub account_id: String,
    pub asset: String,
    pub amount: Decimal,
    pub reference: HoldReference,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseHold {
    pub hold_id: Uuid,
    pub idempotency_key: String,
    /// `None`: release everything that remains and close the hold.
    pub amount: Option<Decimal>,
}

/// Raises an open hold by `amount` (what an order that now needs more,
/// e.g. one being replaced with a larger one, must hold before it asks).
/// Lowering is a partial [`ReleaseHold`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncreaseHold {
    pub hold_id: Uuid,
    pub idempotency_key: String,
    pub amount: Decimal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettlementReference {
    pub order_id: Option<String>,
    pub exec_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSettlement {
    /// The venue's exec_id: one settlement per key.
    pub idempotency_key: String,
    pub account_id: String,
    pub hold_id: Option<Uuid>,
    pub side: Side,
    pub symbol: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    /// The part of the hold that belonged to this fill; `None`: min(remaining, debit).
    pub hold_amount: Option<Decimal>,
    pub reference: SettlementReference,
}

/// Why a settlement was flagged. A flagged settlement is still settled in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagReason {
    /// The hold was already closed (released): nothing could be consumed from it.
    HoldClosed,
    /// The hold had less remaining than this fill needed; the rest came from available.
    HoldInsufficient,
    /// An asset this settlement took from ended with a negative available balance.
    NegativeAvailable,
}

impl FlagReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagReason::HoldClosed => "hold_closed",
            FlagReason::HoldInsufficient => "hold_insufficient",
            FlagReason::NegativeAvailable => "negative_available",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub id: Uuid,
    pub idempotency_key: String,
    pub account_id: String,
    pub hold_id: Option<Uuid>,
    pub side: Side,
    pub symbol: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    pub hold_amount: Option<Decimal>,
    /// How much was actually taken out of the hold.
    pub hold_consumed: Decimal,
    pub flag_reason: Option<FlagReason>,
    pub reference: SettlementReference,
    pub ledger_seqs: Vec<u64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryType {
    Hold,
    Release,
    TradeDebit,
    TradeCredit,
    Fee,
    Adjustment,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Hold => "hold",
            EntryType::Release => "release",
            EntryType::TradeDebit => "trade_debit",
            EntryType::TradeCredit => "trade_credit",
            EntryType::Fee => "fee",
            EntryType::Adjustment => "adjustment",
        }
    }

    /// True when `amount` is a change of `total`; false when it is a change of `held`.
    pub fn changes_total(self) -> bool {
        !matches!(self, EntryType::Hold | EntryType::Release)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Global, gap-free, starting at 1.
    pub seq: u64,
    pub account_id: String,
    pub entry_type: EntryType,
    pub asset: String,
    pub amount: Decimal,
    pub total_after: Decimal,
    pub held_after: Decimal,
    pub hold_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub exec_id: Option<String>,
    pub order_id: Option<String>,
    pub time: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("account {0} already exists")]
    AccountExists(String),
    #[error("account {0} not found")]
    AccountNotFound(String),
    #[error("hold {0} not found")]
    HoldNotFound(Uuid),
    #[error("the hold is closed: nothing remains of it to raise")]
    HoldClosed(Uuid),
    #[error("insufficient funds: {asset} available {available}, requested {requested}")]
    InsufficientFunds {
        asset: String,
        available: Decimal,
        requested: Decimal,
    },
    #[error("hold {hold_id} belongs to account {hold_account}, not {account}")]
    HoldAccountMismatch {
        hold_id: Uuid,
        hold_account: String,
        account: String,
    },
    #[error("hold {hold_id} is on {hold_asset}, but this settlement debits {debit_asset}")]
    HoldAssetMismatch {
        hold_id: Uuid,
        hold_asset: String,
        debit_asset: String,
    },
    #[error("{field} is invalid: {reason}")]
    InvalidAmount { field: &'static str, reason: String },
    #[error("arithmetic overflow: the resulting balance would exceed the supported range")]
    Overflow,
}

/// The whole ledger. One instance per simulator, behind one mutex.
pub struct Ledger {
    accounts: HashMap<String, Account>,
    holds: HashMap<Uuid, Hold>,
    /// Creation order, for the ground truth.
    hold_ids: Vec<Uuid>,
    holds_by_key: HashMap<String, Uuid>,
    holds_by_order: HashMap<String, Vec<Uuid>>,
    settlements: HashMap<Uuid, Settlement>,
    settlement_ids: Vec<Uuid>,
    settlements_by_key: HashMap<String, Uuid>,
    settlements_by_order: HashMap<String, Vec<Uuid>>,
    /// entries[i].seq == i + 1.
    entries: Vec<LedgerEntry>,
    /// Indexes into `entries`, ascending.
    entries_by_account: HashMap<String, Vec<usize>>,
    id_rng: ChaCha8Rng,
}

/// Checks an amount against the named limits; `allow_zero` for fees and funding.
pub fn check_amount(
    field: &'static str,
    value: Decimal,
    allow_zero: bool,
) -> Result<(), LedgerError> {
    let invalid = |reason: &str| LedgerError::InvalidAmount {
        field,
        reason: reason.to_owned(),
    };
    if value < Decimal::ZERO {
        return Err(invalid("must not be negative"));
    }
    if value.is_zero() && !allow_zero {
        return Err(invalid("must be greater than 0"));
    }
    if value > MAX_AMOUNT {
        return Err(invalid("must be at most 1000000000000"));
    }
    if value.normalize().scale() > MAX_SCALE {
        return Err(invalid(&format!(
            "must have at most {MAX_SCALE} decimal places"
        )));
    }
    Ok(())
}

fn add(a: Decimal, b: Decimal) -> Result<Decimal, LedgerError> {
    a.checked_add(b).ok_or(LedgerError::Overflow)
}

fn sub(a: Decimal, b: Decimal) -> Result<Decimal, LedgerError> {
    a.checked_sub(b).ok_or(LedgerError::Overflow)
}

/// A planned change of one balance, applied only after every change of the operation
/// has been computed without error.
struct Change {
    entry_type: EntryType,
    asset: String,
    amount: Decimal,
}

impl Ledger {
    /// `id_seed` seeds the generator of hold and settlement ids.
    pub fn new(id_seed: u64) -> Self {
        Ledger {
            accounts: HashMap::new(),
            holds: HashMap::new(),
            hold_ids: Vec::new(),
            holds_by_key: HashMap::new(),
            holds_by_order: HashMap::new(),
            settlements: HashMap::new(),
            settlement_ids: Vec::new(),
            settlements_by_key: HashMap::new(),
            settlements_by_order: HashMap::new(),
            entries: Vec::new(),
            entries_by_account: HashMap::new(),
            id_rng: ChaCha8Rng::seed_from_u64(id_seed),
        }
    }

    fn next_id(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.id_rng.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    // ---- reads -------------------------------------------------------------------

    pub fn account(&self, account_id: &str) -> Option<&Account> {
        self.accounts.get(account_id)
    }

    /// All accounts, ordered by id.
    pub fn accounts(&self) -> Vec<&Account> {
        let mut accounts: Vec<&Account> = self.accounts.values().collect();
        accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        accounts
    }

    pub fn hold(&self, hold_id: Uuid) -> Option<&Hold> {
        self.holds.get(&hold_id)
    }

    pub fn hold_by_key(&self, idempotency_key: &str) -> Option<&Hold> {
        self.holds_by_key
            .get(idempotency_key)
            .and_then(|id| self.holds.get(id))
    }

    pub fn holds_by_order(&self, order_id: &str) -> Vec<&Hold> {
        self.holds_by_order
            .get(order_id)
            .map(|ids| ids.iter().filter_map(|id| self.holds.get(id)).collect())
            .unwrap_or_default()
    }

    /// All holds in creation order.
    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.hold_ids.iter().filter_map(|id| self.holds.get(id))
    }

    pub fn settlement(&self, settlement_id: Uuid) -> Option<&Settlement> {
        self.settlements.get(&settlement_id)
    }

    pub fn settlement_by_key(&self, idempotency_key: &str) -> Option<&Settlement> {
        self.settlements_by_key
            .get(idempotency_key)
            .and_then(|id| self.settlements.get(id))
    }

    pub fn settlements_by_order(&self, order_id: &str) -> Vec<&Settlement> {
        self.settlements_by_order
            .get(order_id)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.settlements.get(id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// All settlements in creation order.
    pub fn settlements(&self) -> impl Iterator<Item = &Settlement> {
        self.settlement_ids
            .iter()
            .filter_map(|id| self.settlements.get(id))
    }

    /// The whole ledger in seq order.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// Up to `limit` entries with seq > `after_seq`, of one account or of all.
    /// Returns the page and whether more entries follow it.
    pub fn entries_page(
        &self,
        account_id: Option<&str>,
        after_seq: u64,
        limit: usize,
    ) -> (Vec<&LedgerEntry>, bool) {
        match account_id {
            None => {
                let start = usize::try_from(after_seq)
                    .unwrap_or(usize::MAX)
                    .min(self.entries.len());
                let rest = &self.entries[start..];
                let page: Vec<&LedgerEntry> = rest.iter().take(limit).collect();
                (page, rest.len() > limit)
            }
            Some(account_id) => {
                let Some(indexes) = self.entries_by_account.get(account_id) else {
                    return (Vec::new(), false);
                };
                // entries[i].seq == i + 1, so seq > after_seq  <=>  i >= after_seq.
                let start = indexes.partition_point(|&i| (i as u64) < after_seq);
                let rest = &indexes[start..];
                let page = rest.iter().take(limit).map(|&i| &self.entries[i]).collect();
                (page, rest.len() > limit)
            }
        }
    }

    // ---- writes ------------------------------------------------------------------

    /// Creates and funds an account; each initial balance is an `adjustment` entry.
    pub fn create_account(
        &mut self,
        account_id: &str,
        balances: &BTreeMap<String, Decimal>,
        now: DateTime<Utc>,
    ) -> Result<&Account, LedgerError> {
        if self.accounts.contains_key(account_id) {
            return Err(LedgerError::AccountExists(account_id.to_owned()));
        }
        for amount in balances.values() {
            check_amount("balances", *amount, true)?;
        }
        self.accounts.insert(
            account_id.to_owned(),
            Account {
                account_id: account_id.to_owned(),
                balances: balances
                    .keys()
                    .map(|a| (a.clone(), Balance::default()))
                    .collect(),
            },
        );
        let changes: Vec<Change> = balances
            .iter()
            .filter(|(_, amount)| !amount.is_zero())
            .map(|(asset, amount)| Change {
                entry_type: EntryType::Adjustment,
                asset: asset.clone(),
                amount: *amount,
            })
            .collect();
        let refs = EntryRefs::default();
        self.apply(account_id, &changes, &refs, now)?;
        Ok(&self.accounts[account_id])
    }

    /// Creates an open hold when available ≥ amount.
    pub fn create_hold(&mut self, req: &NewHold, now: DateTime<Utc>) -> Result<&Hold, LedgerError> {
        if let Some(&id) = self.holds_by_key.get(&req.idempotency_key) {
            // Defence in depth: the HTTP layer replays keys before we get here.
            return Ok(&self.holds[&id]);
        }
        check_amount("amount", req.amount, false)?;
        let account = self
            .accounts
            .get(&req.account_id)
            .ok_or_else(|| LedgerError::AccountNotFound(req.account_id.clone()))?;
        let available = account
            .balances
            .get(&req.asset)
            .map(Balance::available)
            .unwrap_or_default();
        if available < req.amount {
            return Err(LedgerError::InsufficientFunds {
                asset: req.asset.clone(),
                available,
                requested: req.amount,
            });
        }
        let id = self.next_id();
        let changes = [Change {
            entry_type: EntryType::Hold,
            asset: req.asset.clone(),
            amount: req.amount,
        }];
        let refs = EntryRefs {
            hold_id: Some(id),
            idempotency_key: Some(req.idempotency_key.clone()),
            exec_id: None,
            order_id: req.reference.order_id.clone(),
        };
        self.apply(&req.account_id, &changes, &refs, now)?;
        let hold = Hold {
            id,
            account_id: req.account_id.clone(),
            asset: req.asset.clone(),
            amount: req.amount,
            consumed: Decimal::ZERO,
            released: Decimal::ZERO,
            status: HoldStatus::Open,
            reference: req.reference.clone(),
            idempotency_key: req.idempotency_key.clone(),
            created_at: now,
            updated_at: now,
        };
        self.hold_ids.push(id);
        self.holds_by_key.insert(req.idempotency_key.clone(), id);
        if let Some(order_id) = &req.reference.order_id {
            self.holds_by_order
                .entry(order_id.clone())
                .or_default()
                .push(id);
        }
        Ok(self.holds.entry(id).or_insert(hold))
    }

    /// Releases part (`amount`, capped at what remains) or all of a hold.
    /// The hold closes when nothing remains. A closed hold is returned unchanged.
    pub fn release_hold(
        &mut self,
        req: &ReleaseHold,
        now: DateTime<Utc>,
    ) -> Result<&Hold, LedgerError> {
        if let Some(amount) = req.amount {
            check_amount("amount", amount, false)?;
        }
        let hold = self
            .holds
            .get(&req.hold_id)
            .ok_or(LedgerError::HoldNotFound(req.hold_id))?;
        if hold.status == HoldStatus::Closed {
            return Ok(&self.holds[&req.hold_id]);
        }
        let remaining = hold.remaining();
        let release = req.amount.map_or(remaining, |a| a.min(remaining));
        let account_id = hold.account_id.clone();
        let refs = EntryRefs {
            hold_id: Some(hold.id),
            idempotency_key: Some(req.idempotency_key.clone()),
            exec_id: None,
            order_id: hold.reference.order_id.clone(),
        };
        if !release.is_zero() {
            let changes = [Change {
                entry_type: EntryType::Release,
                asset: hold.asset.clone(),
                amount: -release,
            }];
            self.apply(&account_id, &changes, &refs, now)?;
        }
        let hold = self
            .holds
            .get_mut(&req.hold_id)
            .expect("hold looked up above");
        hold.released += release;
        if hold.remaining().is_zero() {
            hold.status = HoldStatus::Closed;
        }
        hold.updated_at = now;
        Ok(hold)
    }

    /// Raises an open hold by `amount` when available ≥ amount (all or
    /// nothing, like a new hold). A closed hold cannot be raised: what was
    /// consumed or released of it is gone, and a new hold is the honest
    /// answer.
    pub fn increase_hold(
        &mut self,
        req: &IncreaseHold,
        now: DateTime<Utc>,
    ) -> Result<&Hold, LedgerError> {
        check_amount("amount", req.amount, false)?;
        let hold = self
            .holds
            .get(&req.hold_id)
            .ok_or(LedgerError::HoldNotFound(req.hold_id))?;
        if hold.status == HoldStatus::Closed {
            return Err(LedgerError::HoldClosed(req.hold_id));
        }
        let new_amount = add(hold.amount, req.amount)?;
        check_amount("amount", new_amount, false)?;
        let account_id = hold.account_id.clone();
        let available = self
            .accounts
            .get(&account_id)
            .and_then(|a| a.balances.get(&hold.asset))
            .map(Balance::available)
            .unwrap_or_default();
        if available < req.amount {
            return Err(LedgerError::InsufficientFunds {
                asset: hold.asset.clone(),
                available,
                requested: req.amount,
            });
        }
        let changes = [Change {
            entry_type: EntryType::Hold,
            asset: hold.asset.clone(),
            amount: req.amount,
        }];
        let refs = EntryRefs {
            hold_id: Some(hold.id),
            idempotency_key: Some(req.idempotency_key.clone()),
            exec_id: None,
            order_id: hold.reference.order_id.clone(),
        };
        self.apply(&account_id, &changes, &refs, now)?;
        let hold = self
            .holds
            .get_mut(&req.hold_id)
            .expect("hold looked up above");
        hold.amount = new_amount;
        hold.updated_at = now;
        Ok(hold)
    }

    /// Settles one fill atomically. Never refuses a real fill for lack of funds:
    /// what the hold cannot cover comes from available, and the settlement is flagged.
    pub fn settle(
        &mut self,
        req: &NewSettlement,
        now: DateTime<Utc>,
    ) -> Result<&Settlement, LedgerError> {
        if let Some(&id) = self.settlements_by_key.get(&req.idempotency_key) {
            return Ok(&self.settlements[&id]);
        }
        check_amount("qty", req.qty, false)?;
        check_amount("price", req.price, false)?;
        check_amount("fee", req.fee, true)?;
        if let Some(hold_amount) = req.hold_amount {
            check_amount("hold_amount", hold_amount, true)?;
        }
        // A product rounded to fit (more places than MAX_SCALE) would move
        // cash by other than what the shares cost: refused.
        let gross = req
            .qty
            .checked_mul(req.price)
            .filter(|g| *g <= MAX_AMOUNT && g.normalize().scale() <= MAX_SCALE)
            .ok_or_else(|| LedgerError::InvalidAmount {
                field: "qty",
                reason: format!(
                    "qty × price must be at most 1000000000000, with at most {MAX_SCALE} decimal places"
                ),
            })?;
        let account = self
            .accounts
            .get(&req.account_id)
            .ok_or_else(|| LedgerError::AccountNotFound(req.account_id.clone()))?;

        // What leaves the account, in the asset the hold must be on.
        let (debit_asset, debit) = match req.side {
            Side::Buy => (USD.to_owned(), add(gross, req.fee)?),
            Side::Sell => (req.symbol.clone(), req.qty),
        };

        let mut flag_reason = None;
        let mut consumed = Decimal::ZERO;
        let mut order_id = req.reference.order_id.clone();
        if let Some(hold_id) = req.hold_id {
            let hold = self
                .holds
                .get(&hold_id)
                .ok_or(LedgerError::HoldNotFound(hold_id))?;
            if hold.account_id != req.account_id {
                return Err(LedgerError::HoldAccountMismatch {
                    hold_id,
                    hold_account: hold.account_id.clone(),
                    account: req.account_id.clone(),
                });
            }
            if hold.asset != debit_asset {
                return Err(LedgerError::HoldAssetMismatch {
                    hold_id,
                    hold_asset: hold.asset.clone(),
                    debit_asset,
                });
            }
            if order_id.is_none() {
                order_id = hold.reference.order_id.clone();
            }
            let remaining = hold.remaining();
            let wanted = req.hold_amount.unwrap_or_else(|| remaining.min(debit));
            if hold.status == HoldStatus::Closed {
                flag_reason = Some(FlagReason::HoldClosed);
            } else if wanted > remaining || (req.hold_amount.is_none() && remaining < debit) {
                consumed = remaining;
                flag_reason = Some(FlagReason::HoldInsufficient);
            } else {
                consumed = wanted;
            }
        }

        let mut changes = Vec::with_capacity(4);
        if !consumed.is_zero() {
            changes.push(Change {
                entry_type: EntryType::Release,
                asset: debit_asset.clone(),
                amount: -consumed,
            });
        }
        match req.side {
            Side::Buy => {
                changes.push(Change {
                    entry_type: EntryType::TradeDebit,
                    asset: USD.to_owned(),
                    amount: -gross,
                });
                if !req.fee.is_zero() {
                    changes.push(Change {
                        entry_type: EntryType::Fee,
                        asset: USD.to_owned(),
                        amount: -req.fee,
                    });
                }
                changes.push(Change {
                    entry_type: EntryType::TradeCredit,
                    asset: req.symbol.clone(),
                    amount: req.qty,
                });
            }
            Side::Sell => {
                changes.push(Change {
                    entry_type: EntryType::TradeDebit,
                    asset: req.symbol.clone(),
                    amount: -req.qty,
                });
                changes.push(Change {
                    entry_type: EntryType::TradeCredit,
                    asset: USD.to_owned(),
                    amount: gross,
                });
                if !req.fee.is_zero() {
                    changes.push(Change {
                        entry_type: EntryType::Fee,
                        asset: USD.to_owned(),
                        amount: -req.fee,
                    });
                }
            }
        }

        // Flag when an asset this settlement lowered ends with negative available.
        if flag_reason.is_none() {
            let mut available_delta: BTreeMap<&str, Decimal> = BTreeMap::new();
            for change in &changes {
                let delta = available_delta.entry(change.asset.as_str()).or_default();
                // A release raises available; total changes move it one for one.
                *delta = if change.entry_type.changes_total() {
                    add(*delta, change.amount)?
                } else {
                    sub(*delta, change.amount)?
                };
            }
            for (asset, delta) in available_delta {
                let before = account
                    .balances
                    .get(asset)
                    .map(Balance::available)
                    .unwrap_or_default();
                if delta < Decimal::ZERO && add(before, delta)? < Decimal::ZERO {
                    flag_reason = Some(FlagReason::NegativeAvailable);
                }
            }
        }

        let id = self.next_id();
        let refs = EntryRefs {
            hold_id: req.hold_id,
            idempotency_key: Some(req.idempotency_key.clone()),
            exec_id: Some(
                req.reference
                    .exec_id
                    .clone()
                    .unwrap_or_else(|| req.idempotency_key.clone()),
            ),
            order_id: order_id.clone(),
        };
        let ledger_seqs = self.apply(&req.account_id, &changes, &refs, now)?;
        if let Some(hold_id) = req.hold_id {
            let hold = self.holds.get_mut(&hold_id).expect("hold looked up above");
            if !consumed.is_zero() {
                hold.consumed += consumed;
                hold.updated_at = now;
            }
        }
        let settlement = Settlement {
            id,
            idempotency_key: req.idempotency_key.clone(),
            account_id: req.account_id.clone(),
            hold_id: req.hold_id,
            side: req.side,
            symbol: req.symbol.clone(),
            qty: req.qty,
            price: req.price,
            fee: req.fee,
            hold_amount: req.hold_amount,
            hold_consumed: consumed,
            flag_reason,
            reference: SettlementReference {
                order_id: order_id.clone(),
                exec_id: req.reference.exec_id.clone(),
            },
            ledger_seqs,
            created_at: now,
        };
        self.settlement_ids.push(id);
        self.settlements_by_key
            .insert(req.idempotency_key.clone(), id);
        if let Some(order_id) = order_id {
            self.settlements_by_order
                .entry(order_id)
                .or_default()
                .push(id);
        }
        Ok(self.settlements.entry(id).or_insert(settlement))
    }

    /// Applies all changes to one account or none: computes every new balance first
    /// (the only step that can fail), then writes balances and appends entries.
    fn apply(
        &mut self,
        account_id: &str,
        changes: &[Change],
        refs: &EntryRefs,
        now: DateTime<Utc>,
    ) -> Result<Vec<u64>, LedgerError> {
        let account = self
            .accounts
            .get(account_id)
            .ok_or_else(|| LedgerError::AccountNotFound(account_id.to_owned()))?;
        let mut after: Vec<Balance> = Vec::with_capacity(changes.len());
        let mut scratch: BTreeMap<&str, Balance> = BTreeMap::new();
        for change in changes {
            let balance = scratch.entry(change.asset.as_str()).or_insert_with(|| {
                account
                    .balances
                    .get(&change.asset)
                    .copied()
                    .unwrap_or_default()
            });
            if change.entry_type.changes_total() {
                balance.total = add(balance.total, change.amount)?;
            } else {
                balance.held = add(balance.held, change.amount)?;
            }
            // Keep the available side representable too.
            sub(balance.total, balance.held)?;
            after.push(*balance);
        }
        let account = self
            .accounts
            .get_mut(account_id)
            .expect("account looked up above");
        for (asset, balance) in scratch {
            account.balances.insert(asset.to_owned(), balance);
        }
        let indexes = self
            .entries_by_account
            .entry(account_id.to_owned())
            .or_default();
        let mut seqs = Vec::with_capacity(changes.len());
        for (change, balance) in changes.iter().zip(after) {
            let index = self.entries.len();
            let seq = index as u64 + 1;
            self.entries.push(LedgerEntry {
                seq,
                account_id: account_id.to_owned(),
                entry_type: change.entry_type,
                asset: change.asset.clone(),
                amount: change.amount,
                total_after: balance.total,
                held_after: balance.held,
                hold_id: refs.hold_id,
                idempotency_key: refs.idempotency_key.clone(),
                exec_id: refs.exec_id.clone(),
                order_id: refs.order_id.clone(),
                time: now,
            });
            indexes.push(index);
            seqs.push(seq);
        }
        Ok(seqs)
    }
}

/// References copied onto every entry an operation appends.
#[derive(Default)]
struct EntryRefs {
    hold_id: Option<Uuid>,
    idempotency_key: Option<String>,
    exec_id: Option<String>,
    order_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn ledger_with(usd: &str, aapl: &str) -> Ledger {
        let mut ledger = Ledger::new(7);
        let balances =
            BTreeMap::from([("USD".to_owned(), dec(usd)), ("AAPL".to_owned(), dec(aapl))]);
        ledger.create_account("acc", &balances, Utc::now()).unwrap();
        ledger
    }

    fn hold(
        ledger: &mut Ledger,
        key: &str,
        asset: &str,
        amount: &str,
    ) -> Result<Hold, LedgerError> {
        let req = NewHold {
            idempotency_key: key.to_owned(),
            account_id: "acc".to_owned(),
            asset: asset.to_owned(),
            amount: dec(amount),
            reference: HoldReference::default(),
        };
        ledger.create_hold(&req, Utc::now()).cloned()
    }

    fn buy(
        hold_id: Option<Uuid>,
        key: &str,
        qty: &str,
        price: &str,
        hold_amount: Option<&str>,
    ) -> NewSettlement {
        NewSettlement {
            idempotency_key: key.to_owned(),
            account_id: "acc".to_owned(),
            hold_id,
            side: Side::Buy,
            symbol: "AAPL".to_owned(),
            qty: dec(qty),
            price: dec(price),
            fee: dec("1"),
            hold_amount: hold_amount.map(dec),
            reference: SettlementReference::default(),
        }
    }

    #[test]
    fn max_amount_is_one_trillion() {
        assert_eq!(MAX_AMOUNT, dec("1000000000000"));
    }

    #[test]
    fn hold_then_partial_and_full_release() {
        let mut ledger = ledger_with("1000", "0");
        let h = hold(&mut ledger, "k1", "USD", "600").unwrap();
        assert_eq!(
            ledger.account("acc").unwrap().balances["USD"].available(),
            dec("400")
        );
        assert!(matches!(
            hold(&mut ledger, "k2", "USD", "401"),
            Err(LedgerError::InsufficientFunds { .. })
        ));
        let release = |amount: Option<&str>| ReleaseHold {
            hold_id: h.id,
            idempotency_key: "r".to_owned(),
            amount: amount.map(dec),
        };
        let h1 = ledger
            .release_hold(&release(Some("100")), Utc::now())
            .unwrap()
            .clone();
        assert_eq!((h1.remaining(), h1.status), (dec("500"), HoldStatus::Open));
        let h2 = ledger
            .release_hold(&release(Some("9999")), Utc::now())
            .unwrap()
            .clone();
        assert_eq!(
            (h2.remaining(), h2.released, h2.status),
            (dec("0"), dec("600"), HoldStatus::Closed)
        );
        let entries = ledger.entries().len();
        ledger.release_hold(&release(None), Utc::now()).unwrap();
        assert_eq!(
            ledger.entries().len(),
            entries,
            "releasing a closed hold changes nothing"
        );
        assert_eq!(
            ledger.account("acc").unwrap().balances["USD"],
            Balance {
                total: dec("1000"),
                held: dec("0")
            }
        );
    }

    #[test]
    fn settlement_frees_price_improvement() {
        let mut ledger = ledger_with("10000", "0");
        // Limit buy of 10 @ 100 (+ fees budget 10).
        let h = hold(&mut ledger, "k", "USD", "1010").unwrap();
        let s = ledger
            .settle(&buy(Some(h.id), "e1", "10", "95", Some("1000")), Utc::now())
            .unwrap()
            .clone();
        assert_eq!(s.flag_reason, None);
        assert_eq!(s.hold_consumed, dec("1000"));
        let usd = ledger.account("acc").unwrap().balances["USD"];
        assert_eq!(usd.total, dec("10000") - dec("951"));
        assert_eq!(usd.held, dec("10"));
        assert_eq!(
            ledger.account("acc").unwrap().balances["AAPL"].total,
            dec("10")
        );
    }

    /// A fractional fill moves exactly what its shares cost: 0.123456789
    /// shares at 190.07 is 23.46543188523 of cash, kept to the last place,
    /// and consumes exactly qty × rate of its hold.
    #[test]
    fn a_fractional_settlement_is_exact() {
        let mut ledger = ledger_with("1000", "0");
        let h = hold(&mut ledger, "k", "USD", "24.48").unwrap();
        // The hold's rate is 198.28 a share: 0.123456789 × 198.28.
        let s = ledger
            .settle(
                &buy(
                    Some(h.id),
                    "e1",
                    "0.123456789",
                    "190.07",
                    Some("24.47901212292"),
                ),
                Utc::now(),
            )
            .unwrap()
            .clone();
        assert_eq!(s.flag_reason, None);
        assert_eq!(s.hold_consumed, dec("24.47901212292"));
        let balances = &ledger.account("acc").unwrap().balances;
        assert_eq!(
            balances["USD"].total,
            dec("1000") - dec("23.46543188523") - dec("1")
        );
        assert_eq!(balances["USD"].held, dec("24.48") - dec("24.47901212292"));
        assert_eq!(balances["AAPL"].total, dec("0.123456789"));
        // A product past the ledger's places would be rounded: refused.
        let past = buy(None, "e2", "0.1234567891234", "0.1234", None);
        assert!(matches!(
            ledger.settle(&past, Utc::now()),
            Err(LedgerError::InvalidAmount { field: "qty", .. })
        ));
    }

    #[test]
    fn settlement_after_release_is_flagged_and_settled() {
        let mut ledger = ledger_with("100", "0");
        let h = hold(&mut ledger, "k", "USD", "100").unwrap();
        ledger
            .release_hold(
                &ReleaseHold {
                    hold_id: h.id,
                    idempotency_key: "r".into(),
                    amount: None,
                },
                Utc::now(),
            )
            .unwrap();
        let s = ledger
            .settle(&buy(Some(h.id), "e1", "2", "60", None), Utc::now())
            .unwrap()
            .clone();
        assert_eq!(s.flag_reason, Some(FlagReason::HoldClosed));
        assert_eq!(
            ledger.account("acc").unwrap().balances["USD"].available(),
            dec("-21")
        );
        assert_eq!(s.ledger_seqs.len(), 3);
    }

    #[test]
    fn failed_operation_changes_nothing() {
        let mut ledger = ledger_with("100", "0");
        let before = ledger.entries().len();
        let missing = buy(Some(Uuid::nil()), "e1", "1", "1", None);
        assert_eq!(
            ledger.settle(&missing, Utc::now()).unwrap_err(),
            LedgerError::HoldNotFound(Uuid::nil())
        );
        assert_eq!(ledger.entries().len(), before);
        assert!(ledger.settlement_by_key("e1").is_none());
    }
}

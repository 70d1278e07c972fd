//! Cancel/replace, with FIX OrderCancelReplaceRequest semantics: one
//! request replaces a working order with a new one, atomically at the
//! venue. The replaced order becomes `replaced` (it executes no more) and
//! its replacement is entered under a client_order_id of its own — the
//! request's idempotency key: the same request again answers the same
//! replacement. The replace's `qty` is the total wanted: what the replaced
//! order had filled is carried into the replacement (`carried_qty`), which
//! works only the rest (its own `qty`), so each order's fills and its
//! `cum_qty` stay its own.
//!
//! Refused (nothing changes): an unknown order, a client_order_id used by
//! anything but this replacement, an order that is done (filled, canceled,
//! expired, rejected, replaced) or pending a cancel, a notional order, an
//! order outside continuous trading's time in force (only DAY and GTC are
//! replaced, and into DAY or GTC), a total not above what is filled, and
//! terms the order type does not take. With the `fill_races_replace`
//! fault, the fill already on its way executes the rest first and the
//! replace is refused as the order is already filled.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{ExecType, Market, NewOrder, OrderStatus, PlaceError, TimeInForce, status_name};

/// What a replace changes; `None` keeps the replaced order's.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaceTerms {
    /// The replacement's client_order_id: the request's idempotency key.
    pub client_order_id: String,
    /// The total quantity wanted, what was filled included.
    pub qty: Option<Decimal>,
    pub time_in_force: Option<TimeInForce>,
    pub limit_price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub trail_price: Option<Decimal>,
    pub trail_percent: Option<Decimal>,
}

/// Caller-decided behaviour of a replace (fault injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplaceMode {
    #[default]
    Normal,
    /// If a fill is on its way, the rest fills first and the replace is
    /// refused (the order is already filled).
    FillRacesReplace,
}

/// Why a replace was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceError {
    NotFound,
    /// The order cannot be replaced as it stands (HTTP 422).
    NotReplaceable(String),
    /// The replacement's terms are refused, as a placement's would be.
    Invalid(PlaceError),
}

/// What a replace did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// The order was replaced by this new one.
    New(Uuid),
    /// The same request again: its replacement, unchanged.
    Again(Uuid),
}

impl Market {
    /// Replaces the working order `id` with one on `terms` (see the module).
    pub fn replace(
        &mut self,
        id: Uuid,
        terms: ReplaceTerms,
        mode: ReplaceMode,
        now: DateTime<Utc>,
    ) -> Result<Replaced, ReplaceError> {
        let &index = self.by_id.get(&id).ok_or(ReplaceError::NotFound)?;
        if let Some(&existing) = self.by_client_order_id.get(&terms.client_order_id) {
            return match self.orders[existing].replaces {
                Some(replaced) if replaced == id => Ok(Replaced::Again(self.orders[existing].id)),
                _ => Err(ReplaceError::Invalid(PlaceError::DuplicateClientOrderId)),
            };
        }
        self.replaceable(index)?;
        if mode == ReplaceMode::FillRacesReplace && self.fill_on_its_way(index) {
            let price = self.execution_price(index);
            let leaves = self.orders[index].qty - self.orders[index].filled_qty;
            self.apply_fill(index, leaves, price, now);
            return Err(ReplaceError::NotReplaceable(
                "order is already filled".into(),
            ));
        }
        let original = &self.orders[index];
        let carried = original.carried_qty + original.filled_qty;
        let total = terms.qty.unwrap_or(original.qty + original.carried_qty);
        if total <= carried {
            return Err(ReplaceError::Invalid(PlaceError::Invalid(format!(
                "qty must be more than the {carried} already filled"
            ))));
        }
        let time_in_force = terms.time_in_force.unwrap_or(original.time_in_force);
        if !matches!(time_in_force, TimeInForce::Day | TimeInForce::Gtc) {
            return Err(ReplaceError::Invalid(PlaceError::Refused(
                "a replacement's time_in_force must be day or gtc".into(),
            )));
        }
        let replacement = NewOrder {
            client_order_id: terms.client_order_id,
            symbol: original.symbol.clone(),
            side: original.side,
            order_type: original.order_type,
            time_in_force,
            qty: total - carried,
            limit_price: terms.limit_price.or(original.limit_price),
            stop_price: terms.stop_price.or(original.stop_price),
            trail_price: terms.trail_price.or(original.trail_price),
            trail_percent: terms.trail_percent.or(original.trail_percent),
            notional: None,
        };
        self.validate(&replacement).map_err(ReplaceError::Invalid)?;
        // Atomic from here: nothing below can be refused.
        self.finish(index, OrderStatus::Replaced, now);
        self.report(index, ExecType::Replaced, None, now, None);
        let new_id = self
            .enter(replacement, None, Some((id, carried)), now)
            .map_err(ReplaceError::Invalid)?;
        let original = &mut self.orders[index];
        original.replaced_by = Some(new_id);
        original.version += 1;
        Ok(Replaced::New(new_id))
    }

    /// Refuses an order that cannot be replaced as it stands.
    fn replaceable(&self, index: usize) -> Result<(), ReplaceError> {
        let order = &self.orders[index];
        let refuse = |reason: String| Err(ReplaceError::NotReplaceable(reason));
        if order.status.is_terminal() {
            return refuse(format!("order is already {}", status_name(order.status)));
        }
        if order.status == OrderStatus::PendingCancel {
            return refuse("order is pending cancel".into());
        }
        if order.notional.is_some() {
            return refuse("a notional order cannot be replaced".into());
        }
        if !matches!(order.time_in_force, TimeInForce::Day | TimeInForce::Gtc) {
            return refuse("only day and gtc orders can be replaced".into());
        }
        Ok(())
    }

    /// A fill chunk is scheduled and would execute now.
    fn fill_on_its_way(&self, index: usize) -> bool {
        let order = &self.orders[index];
        order.fill_scheduled && self.can_match(order.symbol_index) && self.marketable(index)
    }
}

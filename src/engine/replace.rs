//! The calls of a replacement (PATCH /v2/orders/{id}): it is an order of
//! its own whose steps are an ordinary order's, with three differences,
//! all here:
//!
//! - **reserve** takes over the hold of the order it replaces, raised by
//!   a keyed increase when it needs more (`domain::replace::raise`, the
//!   amount recorded before asking);
//! - **place** is the venue's cancel/replace request, keyed by the
//!   replacement's own client_order_id, so its unknown outcome is looked up
//!   exactly like a placement's; what the venue carried into it (the
//!   replaced order's fills) is learned from its answer, a look-up or any
//!   report;
//! - **release** of a chain's hold: the replaced order gives back the
//!   surplus once its fills are final and settled
//!   (`domain::replace::surplus`); a replacement that never reached the
//!   venue gives back its raise; a placed replacement releases the rest,
//!   once the order it replaced is closed.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::calls::{hold_outcome, placement_outcome};
use super::{Engine, EngineError, keys};
use crate::domain::hold::{CASH_ASSET, CASH_DP};
use crate::domain::lifecycle::{Outcome, Status, Step};
use crate::domain::order::QTY_DP;
use crate::domain::replace::{Need, raise, surplus};
use crate::failpoints;
use crate::store::orders::{self as order_store, OrderRecord};
use crate::store::recovery;
use crate::venues::balances::IncreaseHoldRequest;
use crate::venues::exchange::{ReplaceOrderRequest, VenueOrder};

/// How much of a hold an order's release gives back.
#[derive(Debug)]
pub(super) enum ChainRelease {
    /// All that remains (an order alone, or the last of its chain).
    All,
    /// This much (0: nothing, and no call).
    Part(Decimal),
    /// Not yet: this outcome says why and when to look again.
    NotYet(Outcome),
}

impl Engine {
    /// The order a replacement replaces (or a replaced order's
    /// replacement).
    async fn chain_neighbour(&self, order_id: uuid::Uuid) -> Result<OrderRecord, EngineError> {
        order_store::load(&self.pool, order_id)
            .await?
            .ok_or(EngineError::NoOrder(order_id))
    }

    /// A replacement's reserve: the hold of the order it replaces, raised
    /// first by what the replacement may need beyond it.
    pub(super) async fn take_over_hold(
        &self,
        order: &mut OrderRecord,
    ) -> Result<Outcome, EngineError> {
        let Some(original_id) = order.replaces else {
            return Ok(Outcome::Unexpected {
                detail: "a hold take-over by an order that replaces nothing".to_string(),
            });
        };
        let original = self.chain_neighbour(original_id).await?;
        let Some(hold_id) = original.hold_id.clone() else {
            return Ok(Outcome::HoldRejected {
                reason: crate::domain::lifecycle::RejectReason::HoldRefused {
                    detail: "the order it replaces holds nothing".to_string(),
                },
            });
        };
        if order.hold_raise.is_none() {
            let (Some(original_rate), Some(rate)) = (original.hold_rate, order.hold_rate) else {
                return Ok(Outcome::Unexpected {
                    detail: "a replace chain without hold rates".to_string(),
                });
            };
            let dp = if order.hold_asset.as_deref() == Some(CASH_ASSET) {
                CASH_DP
            } else {
                QTY_DP
            };
            let amount = raise(
                Need {
                    qty: original.qty - original.filled_qty,
                    rate: original_rate,
                },
                Need {
                    qty: order.qty,
                    rate,
                },
                dp,
            );
            let written = recovery::set_hold_raise(&self.pool, order.order_id, amount).await?;
            *order = match written {
                Some(written) => written,
                // Recorded before (by an earlier attempt): that one counts.
                None => self.chain_neighbour(order.order_id).await?,
            };
        }
        let Some(amount) = order.hold_raise else {
            return Ok(Outcome::Unexpected {
                detail: "a raise missing after recording it".to_string(),
            });
        };
        if amount.is_zero() {
            return Ok(Outcome::HoldCreated { hold_id });
        }
        let request = IncreaseHoldRequest {
            idempotency_key: keys::raise(order.order_id),
            amount,
        };
        let result = self.balances.increase_hold(&hold_id, &request).await;
        Ok(hold_outcome(result, Some(&hold_id)))
    }

    /// A replacement's placement: the venue's cancel/replace of the order
    /// it replaces, keyed by the replacement's client_order_id. The total
    /// asked for is the replacement's quantity and what is carried into it.
    pub(super) async fn send_replace(
        &self,
        order: &mut OrderRecord,
        sent_at: DateTime<Utc>,
        recv_window_ms: u64,
    ) -> Result<Outcome, EngineError> {
        let Some(original_id) = order.replaces else {
            return Ok(Outcome::Unexpected {
                detail: "a replace by an order that replaces nothing".to_string(),
            });
        };
        let original = self.chain_neighbour(original_id).await?;
        let Some(venue_order_id) = original.venue_order_id.clone() else {
            return Ok(Outcome::PlacementRejected {
                detail: "the order it replaces never reached the venue".to_string(),
            });
        };
        let request = ReplaceOrderRequest {
            client_order_id: order.venue_client_order_id.clone(),
            qty: order.qty + order.carried_qty,
            time_in_force: order.time_in_force.to_string(),
            prices: order.terms().into(),
            timestamp: sent_at.timestamp_millis(),
            recv_window_ms,
        };
        let result = self.exchange.replace_order(&venue_order_id, &request).await;
        failpoints::hit(failpoints::AFTER_PLACE_SENT);
        if let Ok(crate::venues::exchange::PlaceResult::Accepted(venue)) = &result {
            self.learn_replacement_qty(order, venue).await?;
            // The replaced order's own news (`replaced`) comes by the stream;
            // fetch it too, so a lost report does not leave it pending.
            self.catch_up.order(original_id);
        }
        Ok(placement_outcome(result))
    }

    /// Records what the venue says a replacement's own quantity is (what
    /// it carried in is the rest of the total), once.
    pub(super) async fn learn_replacement_qty(
        &self,
        order: &mut OrderRecord,
        venue: &VenueOrder,
    ) -> Result<(), EngineError> {
        if order.replaces.is_none() || order.qty_confirmed {
            return Ok(());
        }
        let Some(qty) = venue.qty else {
            return Ok(());
        };
        if qty <= rust_decimal::Decimal::ZERO || qty > order.qty {
            tracing::warn!(order_id = %order.order_id, venue_qty = %qty, estimate = %order.qty,
                "the venue states a replacement's qty orderd cannot take");
            return Ok(());
        }
        // `None`: a report confirmed it meanwhile (`apply_execution`).
        if let Some(confirmed) =
            recovery::confirm_replacement_qty(&self.pool, order.order_id, qty).await?
        {
            order.qty = confirmed.qty;
            order.carried_qty = confirmed.carried_qty;
            order.qty_confirmed = true;
        }
        Ok(())
    }

    /// How much of the chain's hold `order`'s release gives back.
    pub(super) async fn chain_release(
        &self,
        order: &OrderRecord,
    ) -> Result<ChainRelease, EngineError> {
        let wait = self.settings.retry_cap();
        // An order that replaced another releases nothing until that one
        // has given back its surplus with its fills settled: its own
        // release, full or partial, must not close the hold under them.
        if let (Some(original_id), Some(_)) = (order.replaces, &order.venue_order_id) {
            let original = self.chain_neighbour(original_id).await?;
            if original.step != Step::Closed {
                return Ok(ChainRelease::NotYet(Outcome::NotYet {
                    detail: "the order it replaced is not closed yet".to_string(),
                    wait,
                }));
            }
        }
        // Replaced: the surplus, once the replacement's own quantity is
        // known (the venue's word).
        if order.status == Status::Replaced {
            let Some(replacement_id) = order.replaced_by else {
                return Ok(ChainRelease::NotYet(Outcome::Blocked {
                    detail: "replaced, but its replacement is not on record".to_string(),
                }));
            };
            let replacement = self.chain_neighbour(replacement_id).await?;
            if !replacement.qty_confirmed {
                return Ok(ChainRelease::NotYet(Outcome::NotYet {
                    detail: "its replacement's quantity is not confirmed yet".to_string(),
                    wait,
                }));
            }
            let (Some(rate), Some(replacement_rate)) = (order.hold_rate, replacement.hold_rate)
            else {
                return Ok(ChainRelease::NotYet(Outcome::Blocked {
                    detail: "a replace chain without hold rates".to_string(),
                }));
            };
            // What the hold held for this order: its own hold, or, for a
            // replacement, its quantity at its rate (what its own
            // predecessor's surplus release left).
            let share = match (order.replaces, order.hold_amount) {
                (None, Some(amount)) => amount,
                _ => order.qty * rate,
            };
            return Ok(ChainRelease::Part(surplus(
                share,
                Need {
                    qty: order.filled_qty,
                    rate,
                },
                replacement.hold_raise.unwrap_or_default(),
                Need {
                    qty: replacement.qty,
                    rate: replacement_rate,
                },
            )));
        }
        // A replacement that never reached the venue: its raise, the rest
        // is the order it did not replace.
        if order.replaces.is_some() && order.venue_order_id.is_none() {
            return Ok(ChainRelease::Part(order.hold_raise.unwrap_or_default()));
        }
        // The last of its chain (or an order alone): the rest.
        Ok(ChainRelease::All)
    }
}

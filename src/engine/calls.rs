//! The external call behind each [`Action`] and the mapping of its result
//! to an [`Outcome`]: what each answer proves, and what it does not.

use std::time::Duration;

use super::{Engine, EngineError, keys};
use crate::domain::hold::{QuotePrices, hold_for};
use crate::domain::ids::{HoldId, VenueOrderId};
use crate::domain::lifecycle::{Action, Outcome, RejectReason, VenueStatus};
use crate::failpoints;
use crate::store::orders::{self as order_store, OrderRecord};
use crate::store::recovery;
use crate::store::settlements;
use crate::venues::CallError;
use crate::venues::balances::{CreateHoldRequest, HoldReference, HoldResult};
use crate::venues::exchange::{CancelResult, PlaceOrderRequest, PlaceResult};

impl Engine {
    /// Makes the call `action` asks for (none for an abandon) and returns
    /// its outcome.
    pub(super) async fn call(
        &self,
        action: &Action,
        order: &mut OrderRecord,
    ) -> Result<Outcome, EngineError> {
        Ok(match action {
            Action::CreateHold => self.reserve(order).await?,
            Action::PlaceOrder => self.place(order).await,
            Action::LookupPlacement => self.lookup(order).await,
            Action::ReleaseHold { hold_id } => self.release(order, hold_id).await?,
            Action::AbandonPlacement => Outcome::PlacementAbandoned,
            Action::CancelAtVenue { venue_order_id } => self.cancel(venue_order_id).await,
            Action::None => {
                return Err(EngineError::Transition(
                    crate::domain::lifecycle::InvalidTransition {
                        step: order.step.as_str(),
                        state: order.step_state.as_str(),
                        outcome: "a call for no action".to_string(),
                    },
                ));
            }
        })
    }

    /// The quote a market buy's hold is sized from. The error is the
    /// outcome for the reserve step when the venue cannot quote.
    pub async fn quote_for_hold(&self, symbol: &str) -> Result<QuotePrices, Outcome> {
        match self.exchange.quote(symbol).await {
            Ok(quote) => Ok(QuotePrices {
                ask: quote.ask,
                last: quote.last,
            }),
            // The venue does not price this symbol: the order cannot be
            // reserved, now or later.
            Err(CallError::Definitive {
                status: 404 | 422 | 400,
                message,
                ..
            }) => Err(Outcome::HoldRejected {
                reason: RejectReason::Venue {
                    detail: format!("no quote for {symbol}: {message}"),
                },
            }),
            // A read: whatever else went wrong, nothing happened. Retry.
            Err(error) => Err(Outcome::Retry {
                detail: format!("quote for the hold: {error}"),
            }),
        }
    }

    /// Reserve: a market buy first fixes its hold amount from a quote (and
    /// records it, so every retry asks for the identical hold).
    async fn reserve(&self, order: &mut OrderRecord) -> Result<Outcome, EngineError> {
        if order.hold_amount.is_none() {
            let quote = match self.quote_for_hold(&order.symbol).await {
                Ok(quote) => quote,
                Err(outcome) => return Ok(outcome),
            };
            let hold = match hold_for(
                order.side,
                &order.symbol,
                order.qty,
                order.limit_price,
                Some(quote),
                self.settings.market_buy_collar,
            ) {
                Ok(hold) => hold,
                Err(missing) => {
                    return Ok(Outcome::Unexpected {
                        detail: missing.to_string(),
                    });
                }
            };
            let written =
                recovery::set_hold_amount(&self.pool, order.order_id, hold.amount, hold.rate)
                    .await?;
            *order = match written {
                Some(written) => written,
                // Recorded before (by an earlier attempt): that one counts.
                None => order_store::load(&self.pool, order.order_id)
                    .await?
                    .ok_or(EngineError::NoOrder(order.order_id))?,
            };
        }
        let (Some(amount), Some(asset)) = (order.hold_amount, order.hold_asset.clone()) else {
            return Ok(Outcome::Unexpected {
                detail: "hold amount or asset missing after recording it".to_string(),
            });
        };
        let request = CreateHoldRequest {
            idempotency_key: keys::hold(order.order_id),
            account_id: self.balances_account(order.account_id).await?,
            asset,
            amount,
            reference: HoldReference {
                order_id: order.order_id.to_string(),
                client_order_id: order.client_order_id.to_string(),
            },
        };
        let result = self.balances.create_hold(&request).await;
        if matches!(result, Ok(HoldResult::Created(_))) {
            failpoints::hit(failpoints::AFTER_HOLD_CREATED);
        }
        Ok(match result {
            Ok(HoldResult::Created(hold)) => Outcome::HoldCreated { hold_id: hold.id },
            Ok(HoldResult::InsufficientFunds { available }) => Outcome::HoldRejected {
                reason: RejectReason::InsufficientFunds { available },
            },
            // Our key with a different body means our own durable request
            // changed: a bug, not the trader's problem. Park after retries.
            Ok(HoldResult::Refused { code, message }) if code == "idempotency_key_reused" => {
                Outcome::Unexpected {
                    detail: format!("{code}: {message}"),
                }
            }
            Ok(HoldResult::Refused { code, message }) => Outcome::HoldRejected {
                reason: RejectReason::HoldRefused {
                    detail: format!("{code}: {message}"),
                },
            },
            Err(error) => outcome_of_error(error),
        })
    }

    async fn place(&self, order: &OrderRecord) -> Outcome {
        let request = PlaceOrderRequest {
            client_order_id: order.venue_client_order_id.clone(),
            symbol: order.symbol.clone(),
            side: order.side.to_string(),
            order_type: order.order_type.to_string(),
            time_in_force: order.time_in_force.to_string(),
            qty: order.qty,
            limit_price: order.limit_price,
        };
        let result = self.exchange.place_order(&request).await;
        failpoints::hit(failpoints::AFTER_PLACE_SENT);
        match result {
            Ok(PlaceResult::Accepted(venue)) => Outcome::Placed {
                venue_order_id: venue.id,
            },
            Ok(PlaceResult::Rejected { message }) => Outcome::PlacementRejected { detail: message },
            // Proof that an earlier attempt reached the venue, not of what
            // became of it: look it up.
            Ok(PlaceResult::DuplicateClientOrderId) => Outcome::Unknown {
                detail: "the venue already has this client_order_id".to_string(),
            },
            Err(error) => outcome_of_error(error),
        }
    }

    async fn lookup(&self, order: &OrderRecord) -> Outcome {
        match self
            .exchange
            .order_by_client_order_id(&order.venue_client_order_id)
            .await
        {
            Ok(Some(venue)) if VenueStatus::parse(&venue.status) == Some(VenueStatus::Rejected) => {
                Outcome::PlacementRejected {
                    detail: venue
                        .reject_reason
                        .unwrap_or_else(|| "rejected".to_string()),
                }
            }
            Ok(Some(venue)) => Outcome::Placed {
                venue_order_id: venue.id,
            },
            // Past the grace window, a placement the venue still does not
            // show never arrived: close it rather than send it late.
            Ok(None) if placement_age(order) > self.placement_grace() => {
                Outcome::PlacementNeverReceived
            }
            Ok(None) => Outcome::PlacementNotFound,
            // A failed read proves nothing either way; the placement stays
            // unknown and is looked up again.
            Err(CallError::Unknown { detail, .. }) => Outcome::Retry { detail },
            Err(error) => outcome_of_error(error),
        }
    }

    async fn cancel(&self, venue_order_id: &VenueOrderId) -> Outcome {
        match self.exchange.cancel_order(venue_order_id).await {
            Ok(CancelResult::Requested) => Outcome::CancelAccepted,
            Ok(CancelResult::AlreadyDone { message }) => Outcome::CancelRefused { detail: message },
            // A fresh order may not be visible yet (stale read): again.
            Ok(CancelResult::NotFound) => Outcome::Retry {
                detail: "the venue does not show the order yet".to_string(),
            },
            Err(error) => outcome_of_error(error),
        }
    }

    /// Releases the rest of the hold once every fill of the order is
    /// settled (a release first would make a later settlement draw on the
    /// trader's free balance).
    async fn release(&self, order: &OrderRecord, hold_id: &HoldId) -> Result<Outcome, EngineError> {
        let unsettled = settlements::unsettled_count(&self.pool, order.order_id).await?;
        if unsettled > 0 {
            return Ok(Outcome::Retry {
                detail: format!("waiting for {unsettled} fill(s) to settle"),
            });
        }
        let result = self
            .balances
            .release_hold(hold_id, &keys::release(order.order_id))
            .await;
        failpoints::hit(failpoints::AFTER_RELEASE_SENT);
        Ok(match result {
            Ok(_) => Outcome::HoldReleased,
            Err(error) => outcome_of_error(error),
        })
    }

    fn placement_grace(&self) -> Duration {
        Duration::from_millis(self.settings.placement_grace_ms)
    }
}

/// How long ago the order was accepted.
fn placement_age(order: &OrderRecord) -> Duration {
    (chrono::Utc::now() - order.created_at)
        .to_std()
        .unwrap_or_default()
}

/// The generic mapping of a failed call to an outcome.
fn outcome_of_error(error: CallError) -> Outcome {
    match error {
        CallError::Unknown { detail, .. } => Outcome::Unknown { detail },
        CallError::Retryable { detail, .. } => Outcome::Retry { detail },
        CallError::Definitive {
            status,
            code,
            message,
            ..
        } => Outcome::Unexpected {
            detail: format!("{status} {code} {message}"),
        },
        CallError::Unexpected { detail, .. } => Outcome::Unexpected { detail },
    }
}

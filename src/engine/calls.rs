//! The external call behind each [`Action`] and the mapping of its result
//! to an [`Outcome`]: what each answer proves, and what it does not.

use std::time::Duration;

use super::replace::ChainRelease;
use super::{Engine, EngineError, keys};
use crate::domain::hold::{QuotePrices, order_hold};
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
            Action::PlaceOrder => self.place(order).await?,
            Action::LookupPlacement => self.lookup(order).await?,
            Action::ReleaseHold { hold_id } => self.release(order, hold_id).await?,
            Action::AbandonPlacement => Outcome::PlacementAbandoned,
            Action::CancelAtVenue { venue_order_id } => self.cancel(order, venue_order_id).await,
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
                bid: quote.bid,
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
            let sized = order_hold(
                order.side,
                &order.symbol,
                order.qty,
                order.notional,
                &order.terms(),
                Some(quote),
                self.settings.market_buy_collar,
            );
            let (hold, rate) = match sized {
                Ok(sized) => sized,
                Err(missing) => {
                    return Ok(Outcome::Unexpected {
                        detail: missing.to_string(),
                    });
                }
            };
            let written =
                recovery::set_hold_amount(&self.pool, order.order_id, hold.amount, rate).await?;
            *order = match written {
                Some(written) => written,
                // Recorded before (by an earlier attempt): that one counts.
                None => order_store::load(&self.pool, order.order_id)
                    .await?
                    .ok_or(EngineError::NoOrder(order.order_id))?,
            };
        }
        if order.replaces.is_some() {
            return self.take_over_hold(order).await;
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
        Ok(hold_outcome(result, None))
    }

    async fn place(&self, order: &mut OrderRecord) -> Result<Outcome, EngineError> {
        // The send carries the durable time of its intent: a send the venue
        // gets later than the window after it is refused there.
        let Some(sent_at) = order.placement_last_sent_at else {
            return Ok(Outcome::Unexpected {
                detail: "a placement without its intent on record".to_string(),
            });
        };
        let recv_window_ms = u64::try_from(self.placement_window.as_millis()).unwrap_or(u64::MAX);
        if order.replaces.is_some() {
            return self.send_replace(order, sent_at, recv_window_ms).await;
        }
        let request = PlaceOrderRequest {
            client_order_id: order.venue_client_order_id.clone(),
            symbol: order.symbol.clone(),
            side: order.side.to_string(),
            order_type: order.order_type.to_string(),
            time_in_force: order.time_in_force.to_string(),
            // A notional order sends its notional; the venue decides the qty.
            qty: order.known_qty(),
            notional: order.notional,
            prices: order.terms().into(),
            timestamp: sent_at.timestamp_millis(),
            recv_window_ms,
        };
        let result = self.exchange.place_order(&request).await;
        failpoints::hit(failpoints::AFTER_PLACE_SENT);
        Ok(placement_outcome(result))
    }

    async fn lookup(&self, order: &mut OrderRecord) -> Result<Outcome, EngineError> {
        let found = self
            .exchange
            .order_by_client_order_id(&order.venue_client_order_id)
            .await;
        if let Ok(Some(venue)) = &found {
            // What happened at the venue meanwhile (fills, a cancel) may
            // never come by the stream: its reports were sent while no one
            // knew the order was there. Catch it up once it is recorded.
            let terminal = VenueStatus::parse(&venue.status).is_some_and(VenueStatus::is_terminal);
            if venue.filled_qty > rust_decimal::Decimal::ZERO || terminal {
                self.catch_up.order(order.order_id);
            }
            self.learn_replacement_qty(order, venue).await?;
        }
        Ok(match found {
            Ok(Some(venue)) if VenueStatus::parse(&venue.status) == Some(VenueStatus::Rejected) => {
                Outcome::PlacementRejected {
                    detail: venue
                        .reject_reason
                        .unwrap_or_else(|| "rejected".to_string()),
                }
            }
            Ok(Some(venue)) => Outcome::Placed {
                queued: VenueStatus::parse(&venue.status) == Some(VenueStatus::Accepted),
                venue_order_id: venue.id,
            },
            // Not there, and no send can reach the venue any more: it never
            // arrived. A canceled order is then done; one past the grace
            // window is closed rather than sent late.
            Ok(None)
                if self.no_placement_can_arrive(order)
                    && (order.cancel_requested_at.is_some()
                        || placement_age(order) > self.placement_grace()) =>
            {
                Outcome::PlacementNeverReceived
            }
            Ok(None) => Outcome::PlacementNotFound {
                may_resend: placement_age(order) <= self.placement_grace(),
            },
            // A failed read proves nothing either way; the placement stays
            // unknown and is looked up again.
            Err(CallError::Unknown { detail, .. }) => Outcome::Retry { detail },
            Err(error) => outcome_of_error(error),
        })
    }

    async fn cancel(&self, order: &OrderRecord, venue_order_id: &VenueOrderId) -> Outcome {
        match self.exchange.cancel_order(venue_order_id).await {
            Ok(CancelResult::Requested) => Outcome::CancelAccepted,
            Ok(CancelResult::AlreadyDone { message }) => {
                // Done at the venue: its last news may be lost; fetch it.
                self.catch_up.order(order.order_id);
                Outcome::CancelRefused { detail: message }
            }
            // A 404 is a fact to look up, not a reason to retry forever.
            Ok(CancelResult::NotFound) => self.cancel_not_found(order).await,
            Err(error) => outcome_of_error(error),
        }
    }

    /// The venue answered a cancel with 404: look the order up by its
    /// client order id. Done there → the cancel is moot and its news is
    /// fetched; still open → a stale read, try again; unknown → retry
    /// within the step's budget (then parked for an operator).
    async fn cancel_not_found(&self, order: &OrderRecord) -> Outcome {
        match self
            .exchange
            .order_by_client_order_id(&order.venue_client_order_id)
            .await
        {
            Ok(Some(venue))
                if VenueStatus::parse(&venue.status).is_some_and(VenueStatus::is_terminal) =>
            {
                self.catch_up.order(order.order_id);
                Outcome::CancelRefused {
                    detail: format!("already {} at the venue", venue.status),
                }
            }
            Ok(Some(_)) => Outcome::Retry {
                detail: "the venue's cancel endpoint does not show the order yet".to_string(),
            },
            Ok(None) => Outcome::Retry {
                detail: "the venue does not know the order it acknowledged".to_string(),
            },
            Err(error) => Outcome::Retry {
                detail: format!("looking up an order the cancel did not find: {error}"),
            },
        }
    }

    /// Releases the rest of the hold once nothing more can arrive: every
    /// fill of the order is settled (a release first would make a later
    /// settlement draw on the trader's free balance), none was refused (an
    /// operator must look), and a canceled or expired order's late-fill
    /// window has passed.
    async fn release(&self, order: &OrderRecord, hold_id: &HoldId) -> Result<Outcome, EngineError> {
        let counts = settlements::settlement_counts(&self.pool, order.order_id).await?;
        if counts.failed > 0 {
            return Ok(Outcome::Blocked {
                detail: format!(
                    "{} settlement(s) refused by the ledger; the hold stays until an operator looks",
                    counts.failed
                ),
            });
        }
        if counts.unsettled > 0 {
            return Ok(Outcome::NotYet {
                detail: format!("{} fill(s) still settling", counts.unsettled),
                // The settler makes the order due as soon as they settle.
                wait: self.settings.retry_cap(),
            });
        }
        if let Some(ended) = late_fills_possible_since(order) {
            let window_ends = ended + self.settings.late_fill_window();
            let now = chrono::Utc::now();
            if let Ok(wait) = (window_ends - now).to_std()
                && !wait.is_zero()
            {
                return Ok(Outcome::NotYet {
                    detail: "the late-fill window".to_string(),
                    wait,
                });
            }
        }
        let key = keys::release(order.order_id);
        let result = match self.chain_release(order).await? {
            ChainRelease::All => self.balances.release_hold(hold_id, &key).await,
            ChainRelease::Part(amount) if amount.is_zero() => return Ok(Outcome::HoldReleased),
            ChainRelease::Part(amount) => self.balances.release_part(hold_id, &key, amount).await,
            ChainRelease::NotYet(outcome) => return Ok(outcome),
        };
        failpoints::hit(failpoints::AFTER_RELEASE_SENT);
        Ok(match result {
            Ok(_) => Outcome::HoldReleased,
            Err(error) => outcome_of_error(error),
        })
    }

    fn placement_grace(&self) -> Duration {
        Duration::from_millis(self.settings.placement_grace_ms)
    }

    /// Whether every placement sent has passed its receive window (and the
    /// allowed clock skew): the venue refuses any that reaches it now.
    fn no_placement_can_arrive(&self, order: &OrderRecord) -> bool {
        let Some(last) = order.placement_last_sent_at.or(order.placement_sent_at) else {
            return true;
        };
        let closes = last + self.placement_window + self.clock_skew;
        chrono::Utc::now() > closes
    }
}

/// How long ago orderd first meant to place the order.
fn placement_age(order: &OrderRecord) -> Duration {
    (chrono::Utc::now() - order.placement_sent_at.unwrap_or(order.created_at))
        .to_std()
        .unwrap_or_default()
}

/// When a canceled or expired order ended: fills that raced its end may
/// still come for a while.
fn late_fills_possible_since(order: &OrderRecord) -> Option<chrono::DateTime<chrono::Utc>> {
    use crate::domain::lifecycle::Status;
    match order.status {
        Status::Canceled => Some(order.canceled_at.unwrap_or(order.updated_at)),
        Status::Expired => Some(order.expired_at.unwrap_or(order.updated_at)),
        _ => None,
    }
}

/// What a hold request's (or a raise's) answer proves. `took_over`: the
/// hold a replacement takes over, raised (the answer names it too).
pub(super) fn hold_outcome(
    result: Result<HoldResult, CallError>,
    took_over: Option<&HoldId>,
) -> Outcome {
    if matches!(result, Ok(HoldResult::Created(_))) {
        failpoints::hit(failpoints::AFTER_HOLD_CREATED);
    }
    match result {
        Ok(HoldResult::Created(hold)) => Outcome::HoldCreated {
            hold_id: took_over.cloned().unwrap_or(hold.id),
        },
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
    }
}

/// What a placement's (or a replace's) answer proves.
pub(super) fn placement_outcome(result: Result<PlaceResult, CallError>) -> Outcome {
    match result {
        Ok(PlaceResult::Accepted(venue)) => Outcome::Placed {
            queued: VenueStatus::parse(&venue.status) == Some(VenueStatus::Accepted),
            venue_order_id: venue.id,
        },
        Ok(PlaceResult::Rejected { message }) => Outcome::PlacementRejected { detail: message },
        // Proof that an earlier attempt reached the venue, not of what
        // became of it: look it up.
        Ok(PlaceResult::DuplicateClientOrderId) => Outcome::Unknown {
            detail: "the venue already has this client_order_id".to_string(),
        },
        // Nothing was created: send it again, under a new intent.
        Ok(PlaceResult::Expired { message }) => Outcome::Retry { detail: message },
        Err(error) => outcome_of_error(error),
    }
}

/// The generic mapping of a failed call to an outcome.
pub(super) fn outcome_of_error(error: CallError) -> Outcome {
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

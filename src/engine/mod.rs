//! The lifecycle engine: drives an order from its recovery point through
//! reserve → place (and release on rejection) with atomic phases. Each turn
//! of the loop makes one external call, outside any transaction, then
//! records its outcome and the next step in one transaction.

pub mod catchup;
pub mod completer;
pub mod settler;
pub mod venue_stream;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rust_decimal::{Decimal, RoundingStrategy};
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::{LifecycleSettings, Settings};
use crate::domain::lifecycle::{
    self, Action, Limits, Outcome, RejectReason, Schedule, backoff, next_action,
};
use crate::failpoints;
use crate::store::orders::{self as order_store, LeaseAfter, OrderRecord};
use crate::store::trade_updates::TradeUpdates;
use crate::venues::CallError;
use crate::venues::balances::{BalancesClient, CreateHoldRequest, HoldReference, HoldResult};
use crate::venues::exchange::{CancelResult, ExchangeClient, PlaceOrderRequest, PlaceResult};

/// Cash is held to the cent.
const CASH_DP: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Corrupt(#[from] order_store::CorruptRow),
    #[error(transparent)]
    Transition(#[from] lifecycle::InvalidTransition),
    #[error("order {0} has no account")]
    NoAccount(Uuid),
}

/// Idempotency keys and venue ids, all derived from the order id, so every
/// retry sends the same ones.
pub mod keys {
    use uuid::Uuid;

    /// Every client_order_id orderd sends to the venue starts with this; a
    /// venue order with it that orderd does not know is an orphan.
    pub const VENUE_CLIENT_ORDER_ID_PREFIX: &str = "od-";

    pub fn venue_client_order_id(order_id: Uuid) -> String {
        format!("{VENUE_CLIENT_ORDER_ID_PREFIX}{}", order_id.simple())
    }
    pub fn hold(order_id: Uuid) -> String {
        format!("hold-{order_id}")
    }
    pub fn release(order_id: Uuid) -> String {
        format!("release-{order_id}")
    }
}

#[derive(Debug)]
pub struct Engine {
    pub pool: PgPool,
    pub exchange: ExchangeClient,
    pub balances: BalancesClient,
    pub instance_id: Uuid,
    pub settings: LifecycleSettings,
    stream_stall_ms: u64,
    /// account_id → balances account id (never changes once created).
    balances_accounts: RwLock<HashMap<Uuid, String>>,
    /// Wakes the settler when a fill is recorded.
    pub settler_wake: tokio::sync::Notify,
    /// Catch-up requests (see [`catchup`]).
    pub catch_up: catchup::Requests,
    /// Trade updates for `/stream`, sent after each commit.
    pub trade_updates: TradeUpdates,
}

impl Engine {
    pub fn new(pool: PgPool, settings: &Settings, instance_id: Uuid) -> Arc<Self> {
        Arc::new(Self {
            trade_updates: TradeUpdates::start(pool.clone()),
            pool,
            exchange: ExchangeClient::new(
                &settings.exchange.url,
                &settings.exchange.api_key,
                Duration::from_millis(settings.exchange.request_timeout_ms),
            ),
            balances: BalancesClient::new(
                &settings.balances.url,
                Duration::from_millis(settings.balances.request_timeout_ms),
            ),
            instance_id,
            settings: settings.lifecycle.clone(),
            stream_stall_ms: settings.exchange.stream_stall_ms,
            balances_accounts: RwLock::new(HashMap::new()),
            settler_wake: tokio::sync::Notify::new(),
            catch_up: catchup::Requests::default(),
        })
    }

    fn settings_stream_stall_ms(&self) -> u64 {
        self.stream_stall_ms
    }

    fn limits(&self) -> Limits {
        Limits {
            max_unexpected_attempts: self.settings.max_unexpected_attempts,
            cancel_lookup_attempts: self.settings.cancel_lookup_attempts,
        }
    }

    /// Takes the lease on `order_id` if free and drives it. `None` when
    /// another live instance holds it.
    pub async fn claim_and_drive(
        &self,
        order_id: Uuid,
        deadline: Instant,
    ) -> Result<Option<OrderRecord>, EngineError> {
        let claimed = order_store::claim(
            &self.pool,
            order_id,
            self.instance_id,
            self.settings.lease_ms,
            self.settings.instance_dead_after_ms,
        )
        .await?;
        match claimed {
            Some(order) => Ok(Some(self.drive(order, deadline).await?)),
            None => Ok(None),
        }
    }

    /// Drives `order`, whose lease this instance holds, until it waits on
    /// the venue, closes, or needs a retry later than `deadline` (then the
    /// lease is given up and the durable timer hands it to the completer).
    /// Returns the order as last recorded.
    pub async fn drive(
        &self,
        order: OrderRecord,
        deadline: Instant,
    ) -> Result<OrderRecord, EngineError> {
        self.drive_until(order, deadline, Until::Idle).await
    }

    /// Drives a just-accepted order as far as its trader's answer: until
    /// the venue has it, or it ended before reaching it. What follows (the
    /// release of a rejected or already filled order's hold, a cancel
    /// requested meanwhile) is left to the completer, so `POST
    /// /v2/orders` never waits on settlements or backoffs it does not
    /// report.
    pub async fn drive_to_answer(
        &self,
        order: OrderRecord,
        deadline: Instant,
    ) -> Result<OrderRecord, EngineError> {
        self.drive_until(order, deadline, Until::Answered).await
    }

    #[tracing::instrument(name = "order", skip_all,
        fields(order_id = %order.order_id, client_order_id = %order.client_order_id))]
    async fn drive_until(
        &self,
        mut order: OrderRecord,
        deadline: Instant,
        until: Until,
    ) -> Result<OrderRecord, EngineError> {
        loop {
            let current = order.lifecycle()?;
            if until == Until::Answered && current.step.answers_trader() {
                if order.lease_owner == Some(self.instance_id) {
                    order_store::release_lease(&self.pool, order.order_id, self.instance_id)
                        .await?;
                }
                return Ok(order);
            }
            let action = next_action(&current);
            let outcome = match action {
                Action::None => {
                    order_store::release_lease(&self.pool, order.order_id, self.instance_id)
                        .await?;
                    return Ok(order);
                }
                Action::CreateHold => self.reserve(&mut order).await?,
                Action::PlaceOrder => self.place(&order).await,
                Action::LookupPlacement => self.lookup(&order).await,
                Action::ReleaseHold { hold_id } => self.release(&order, &hold_id).await?,
                Action::AbandonPlacement => Outcome::PlacementAbandoned,
                Action::CancelAtVenue { venue_order_id } => self.cancel(&venue_order_id).await,
            };
            let mut current = current;
            let mut change = lifecycle::transition(&current, outcome.clone(), self.limits())?;
            loop {
                let (wait, lease_after) =
                    if until == Until::Answered && change.next.step.answers_trader() {
                        // The answer is known: record it and hand the rest
                        // to the completer in the same write.
                        (Duration::ZERO, LeaseAfter::Release)
                    } else {
                        self.schedule(&change, deadline)
                    };
                let written = order_store::record_change(
                    &self.pool,
                    &self.trade_updates,
                    &order,
                    &change,
                    self.instance_id,
                    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    lease_after,
                )
                .await?;
                if let Some(written) = written {
                    order = written;
                    match lease_after {
                        LeaseAfter::Release => return Ok(order),
                        LeaseAfter::Keep { .. } => {
                            if !wait.is_zero() {
                                tokio::time::sleep(wait).await;
                            }
                        }
                    }
                    break;
                }
                // Someone changed the order meanwhile (a cancel request, venue
                // news). The call's outcome still counts if the order is at
                // the same step: apply it to the fresh state. Otherwise the
                // news has overtaken it.
                let fresh = order_store::load(&self.pool, order.order_id)
                    .await?
                    .ok_or(EngineError::NoAccount(order.order_id))?;
                if fresh.lease_owner != Some(self.instance_id) {
                    return Ok(fresh);
                }
                let fresh_lifecycle = fresh.lifecycle()?;
                order = fresh;
                if fresh_lifecycle.step != current.step
                    || fresh_lifecycle.step_state != current.step_state
                {
                    tracing::debug!(order_id = %order.order_id, "order moved on while we called out");
                    break;
                }
                current = fresh_lifecycle;
                change = lifecycle::transition(&current, outcome.clone(), self.limits())?;
            }
        }
    }

    /// When to run the next step, and whether to keep the lease meanwhile.
    fn schedule(&self, change: &lifecycle::Change, deadline: Instant) -> (Duration, LeaseAfter) {
        match change.schedule {
            Schedule::Now => (Duration::ZERO, self.keep_lease()),
            Schedule::Idle => (Duration::ZERO, LeaseAfter::Release),
            Schedule::Backoff { attempts } => {
                let wait = backoff(
                    attempts,
                    self.settings.retry_base(),
                    self.settings.retry_cap(),
                    rand::random::<f64>(),
                );
                if Instant::now() + wait < deadline {
                    (wait, self.keep_lease())
                } else {
                    (wait, LeaseAfter::Release)
                }
            }
        }
    }

    fn placement_grace(&self) -> Duration {
        Duration::from_millis(self.settings.placement_grace_ms)
    }

    fn keep_lease(&self) -> LeaseAfter {
        LeaseAfter::Keep {
            lease_ms: self.settings.lease_ms,
        }
    }

    async fn balances_account(&self, account_id: Uuid) -> Result<String, EngineError> {
        if let Ok(cache) = self.balances_accounts.read()
            && let Some(id) = cache.get(&account_id)
        {
            return Ok(id.clone());
        }
        let id: Option<String> =
            sqlx::query_scalar("SELECT balances_account_id FROM accounts WHERE account_id = $1")
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await?;
        let id = id.ok_or(EngineError::NoAccount(account_id))?;
        if let Ok(mut cache) = self.balances_accounts.write() {
            cache.insert(account_id, id.clone());
        }
        Ok(id)
    }

    /// Reserve: a market buy first fixes its hold amount from a quote (and
    /// records it, so every retry asks for the identical hold).
    /// The hold a market buy of `qty` asks for: the quote's ask (or last,
    /// if higher) plus the collar, to the cent. The error is the outcome
    /// for the reserve step when the venue cannot quote.
    pub async fn market_buy_hold(&self, symbol: &str, qty: Decimal) -> Result<MarketHold, Outcome> {
        let quote = match self.exchange.quote(symbol).await {
            Ok(quote) => quote,
            // The venue does not price this symbol: the order cannot be
            // reserved, now or later.
            Err(CallError::Definitive {
                status: 404 | 422 | 400,
                message,
                ..
            }) => {
                return Err(Outcome::HoldRejected {
                    reason: RejectReason::Venue {
                        detail: format!("no quote for {symbol}: {message}"),
                    },
                });
            }
            // A read: whatever else went wrong, nothing happened. Retry.
            Err(error) => {
                return Err(Outcome::Retry {
                    detail: format!("quote for the hold: {error}"),
                });
            }
        };
        let rate = (quote.ask.max(quote.last) * (Decimal::ONE + self.settings.market_buy_collar))
            .round_dp_with_strategy(CASH_DP, RoundingStrategy::AwayFromZero);
        let amount = (qty * rate).round_dp_with_strategy(CASH_DP, RoundingStrategy::AwayFromZero);
        Ok(MarketHold { amount, rate })
    }

    async fn reserve(&self, order: &mut OrderRecord) -> Result<Outcome, EngineError> {
        if order.hold_amount.is_none() {
            let MarketHold { amount, rate } =
                match self.market_buy_hold(&order.symbol, order.qty).await {
                    Ok(hold) => hold,
                    Err(outcome) => return Ok(outcome),
                };
            let written =
                order_store::set_hold_amount(&self.pool, order.order_id, amount, rate).await?;
            *order = match written {
                Some(written) => written,
                // Recorded before (by an earlier attempt): that one counts.
                None => order_store::load(&self.pool, order.order_id)
                    .await?
                    .ok_or(EngineError::NoAccount(order.order_id))?,
            };
        }
        let Some(amount) = order.hold_amount else {
            return Ok(Outcome::Unexpected {
                detail: "hold amount missing after recording it".to_string(),
            });
        };
        let request = CreateHoldRequest {
            idempotency_key: keys::hold(order.order_id),
            account_id: self.balances_account(order.account_id).await?,
            asset: order
                .hold_asset
                .clone()
                .unwrap_or_else(|| "USD".to_string()),
            amount,
            reference: HoldReference {
                order_id: order.order_id.to_string(),
                client_order_id: order.client_order_id.clone(),
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
            side: order.side.clone(),
            order_type: order.order_type.clone(),
            time_in_force: order.time_in_force.clone(),
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
            Ok(Some(venue)) if venue.status == "rejected" => Outcome::PlacementRejected {
                detail: venue
                    .reject_reason
                    .unwrap_or_else(|| "rejected".to_string()),
            },
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

    async fn cancel(&self, venue_order_id: &str) -> Outcome {
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
    async fn release(&self, order: &OrderRecord, hold_id: &str) -> Result<Outcome, EngineError> {
        let unsettled = crate::store::fills::unsettled_count(&self.pool, order.order_id).await?;
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
}

/// How far [`Engine::drive_until`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Until nothing is left to do now.
    Idle,
    /// Until the trader's answer is known.
    Answered,
}

/// A market buy's hold: `amount` = qty × `rate`, both to the cent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketHold {
    pub amount: Decimal,
    pub rate: Decimal,
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

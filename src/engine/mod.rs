//! The lifecycle engine: drives an order from its recovery point through
//! reserve → place (and release on rejection) with atomic phases. Each turn
//! of the loop makes one external call, outside any transaction, then
//! records its outcome and the next step in one transaction.

mod calls;
pub mod catchup;
pub mod completer;
pub mod keys;
mod replace;
pub mod settler;
pub mod valuation;
pub mod venue_stream;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::{LifecycleSettings, Settings};
use crate::domain::lifecycle::{
    self, Action, Limits, Schedule, Step, StepState, backoff, next_action,
};
use crate::failpoints::{self, CallPoint};
use crate::store::orders::{self as order_store, CorruptRow, OrderRecord};
use crate::store::recovery::{self, LeaseAfter};
use crate::store::trade_updates::TradeUpdates;
use crate::venues::balances::BalancesClient;
use crate::venues::exchange::ExchangeClient;

/// What a claim must have left beyond the longest call: time to record
/// the call's outcome.
pub const LEASE_MARGIN: Duration = Duration::from_millis(1000);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Corrupt(#[from] CorruptRow),
    #[error(transparent)]
    Transition(#[from] lifecycle::InvalidTransition),
    #[error("account {0} does not exist")]
    NoAccount(Uuid),
    #[error("order {0} does not exist")]
    NoOrder(Uuid),
}

#[derive(Debug)]
pub struct Engine {
    pub pool: PgPool,
    pub exchange: ExchangeClient,
    pub balances: BalancesClient,
    pub instance_id: Uuid,
    pub settings: LifecycleSettings,
    stream_stall_ms: u64,
    /// The longest request timeout of the two clients.
    request_timeout_ms_max: u64,
    /// Every placement's receive window at the venue, and the clock skew
    /// allowed between the database's clock and the venue's.
    pub placement_window: Duration,
    pub clock_skew: Duration,
    /// account_id → balances account id (never changes once created).
    balances_accounts: RwLock<HashMap<Uuid, String>>,
    /// Wakes the settler when a fill is recorded.
    pub settler_wake: tokio::sync::Notify,
    /// Wakes the completer when work became due (a cancel-all).
    pub completer_wake: tokio::sync::Notify,
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
            placement_window: Duration::from_millis(settings.exchange.placement_window_ms),
            clock_skew: Duration::from_millis(settings.exchange.clock_skew_ms),
            request_timeout_ms_max: settings
                .exchange
                .request_timeout_ms
                .max(settings.balances.request_timeout_ms),
            balances_accounts: RwLock::new(HashMap::new()),
            settler_wake: tokio::sync::Notify::new(),
            completer_wake: tokio::sync::Notify::new(),
            catch_up: catchup::Requests::default(),
        })
    }

    fn settings_stream_stall_ms(&self) -> u64 {
        self.stream_stall_ms
    }

    fn limits(&self) -> Limits {
        Limits {
            max_attempts: self.settings.max_attempts,
            max_unexpected_attempts: self.settings.max_unexpected_attempts,
        }
    }

    /// Takes the lease on `order_id` if free and drives it. `None` when
    /// another live instance holds it.
    pub async fn claim_and_drive(
        &self,
        order_id: Uuid,
        deadline: Instant,
    ) -> Result<Option<OrderRecord>, EngineError> {
        let claimed = recovery::claim(
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
        order: OrderRecord,
        deadline: Instant,
        until: Until,
    ) -> Result<OrderRecord, EngineError> {
        let (order_id, token) = (order.order_id, order.lease_token);
        let driven = self.drive_steps(order, deadline, until).await;
        if let Err(error) = &driven {
            // This driver stops (a lost connection, a write whose answer
            // was lost, a broken row): give the claim up so that a retry
            // or the completer takes the order over now, rather than once
            // the lease expires. Whatever was recorded stands; the next
            // claim turns an intent into an unknown outcome and resolves
            // it by evidence. Best effort: with the database away, the
            // lease expires on its own.
            tracing::warn!(%error, "driving stopped; giving the claim up");
            if let Err(release) = recovery::release_lease(&self.pool, order_id, token).await {
                tracing::debug!(error = %release, "giving the claim up failed; it expires");
            }
        }
        driven
    }

    async fn drive_steps(
        &self,
        mut order: OrderRecord,
        deadline: Instant,
        until: Until,
    ) -> Result<OrderRecord, EngineError> {
        loop {
            debug_assert!(
                order.lease_owner == Some(self.instance_id) && order.lease_token.is_some(),
                "driving an order whose lease this instance does not hold"
            );
            let current = order.lifecycle()?;
            if until == Until::Answered && current.step.answers_trader() {
                recovery::release_lease(&self.pool, order.order_id, order.lease_token).await?;
                return Ok(order);
            }
            let action = next_action(&current);
            if action == Action::None {
                recovery::release_lease(&self.pool, order.order_id, order.lease_token).await?;
                return Ok(order);
            }
            // Intent before effect: a call that can change something
            // outside is made only once a write says it may have been.
            let outcome = if action.is_mutating() && current.step_state == StepState::Pending {
                None
            } else {
                if !self.lease_covers_a_call(&mut order).await? {
                    return Ok(order);
                }
                if action.is_mutating() {
                    failpoints::hit_call(current.step, CallPoint::Before);
                }
                let outcome = self.call(&action, &mut order).await?;
                if action.is_mutating() {
                    failpoints::hit_call(current.step, CallPoint::After);
                }
                Some(outcome)
            };
            let mut current = current;
            let mut change = match &outcome {
                None => lifecycle::record_intent(&current),
                Some(outcome) => lifecycle::transition(&current, outcome.clone(), self.limits())?,
            };
            loop {
                let (wait, lease_after) =
                    if until == Until::Answered && change.next.step.answers_trader() {
                        // The answer is known: record it and hand the rest
                        // to the completer in the same write.
                        (Duration::ZERO, LeaseAfter::Release)
                    } else {
                        self.schedule(&change, deadline)
                    };
                let written = recovery::record_change(
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
                    if written.step == Step::Parked && current.step != Step::Parked {
                        tracing::error!(order_id = %written.order_id, step = %current.step,
                            "order parked: an operator must look (orderd orders show)");
                        metrics::counter!(crate::metrics::names::ORDERS_PARKED,
                            "step" => current.step.as_str())
                        .increment(1);
                    }
                    if outcome.is_some() {
                        failpoints::hit_call(current.step, CallPoint::Recorded);
                    }
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
                // news), or took it over. The call's outcome still counts if
                // the order is ours and at the same step: apply it to the
                // fresh state. Otherwise the news has overtaken it.
                let fresh = order_store::load(&self.pool, order.order_id)
                    .await?
                    .ok_or(EngineError::NoOrder(order.order_id))?;
                if fresh.lease_token != order.lease_token {
                    tracing::debug!(order_id = %order.order_id, "the order was taken over");
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
                change = match &outcome {
                    None => lifecycle::record_intent(&current),
                    Some(outcome) => {
                        lifecycle::transition(&current, outcome.clone(), self.limits())?
                    }
                };
            }
        }
    }

    /// Makes sure the claim outlasts a call about to be made (the longest
    /// request timeout and a margin), renewing it if not. `false` when the
    /// order was taken over meanwhile: stop driving it.
    async fn lease_covers_a_call(&self, order: &mut OrderRecord) -> Result<bool, EngineError> {
        let needed = self.call_budget();
        let remaining = order
            .lease_expires_at
            .map(|at| (at - chrono::Utc::now()).to_std().unwrap_or_default())
            .unwrap_or_default();
        if remaining > needed {
            return Ok(true);
        }
        match recovery::renew_lease(
            &self.pool,
            order.order_id,
            order.lease_token,
            self.settings.lease_ms,
        )
        .await?
        {
            Some(expires) => {
                order.lease_expires_at = Some(expires);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// When to run the next step, and whether to keep the lease meanwhile
    /// (long enough to cover the wait, then a call).
    fn schedule(&self, change: &lifecycle::Change, deadline: Instant) -> (Duration, LeaseAfter) {
        let wait = match change.schedule {
            Schedule::Now => Duration::ZERO,
            Schedule::Idle => return (Duration::ZERO, LeaseAfter::Release),
            Schedule::After(wait) => wait,
            Schedule::Backoff { attempts } => backoff(
                attempts,
                self.settings.retry_base(),
                self.settings.retry_cap(),
                rand::random::<f64>(),
            ),
        };
        if wait.is_zero() || Instant::now() + wait < deadline {
            let lease_ms = self.settings.lease_ms + u64::try_from(wait.as_millis()).unwrap_or(0);
            (wait, LeaseAfter::Keep { lease_ms })
        } else {
            (wait, LeaseAfter::Release)
        }
    }

    /// How much lease a call needs left: the longest request timeout and
    /// a margin for recording its outcome.
    fn call_budget(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms_max) + LEASE_MARGIN
    }

    /// The balances service's account of orderd account `account_id`.
    pub async fn balances_account(&self, account_id: Uuid) -> Result<String, EngineError> {
        if let Ok(cache) = self.balances_accounts.read()
            && let Some(id) = cache.get(&account_id)
        {
            return Ok(id.clone());
        }
        let id = crate::store::accounts::balances_account_id(&self.pool, account_id)
            .await?
            .ok_or(EngineError::NoAccount(account_id))?;
        if let Ok(mut cache) = self.balances_accounts.write() {
            cache.insert(account_id, id.clone());
        }
        Ok(id)
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

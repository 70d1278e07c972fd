//! The reconciliation jobs. Each reads the two views, asks the pure diff
//! (`domain::reconcile`) what differs, performs the named repair through
//! the normal paths (the apply function, keyed calls, the engine) and
//! records the finding with what it did.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Reconciler, Tally};
use crate::domain::fills::SettlementState;
use crate::domain::ids::ExecId;
use crate::domain::lifecycle::{Step, StepState, VenueStatus};
use crate::domain::reconcile::{
    Classification, Finding, LocalFill, LocalOrder, Repair, VenueOrderView, diff_hold, diff_order,
    diff_settlements, diff_venue_order,
};
use crate::engine::{catchup, keys};
use crate::store::executions;
use crate::store::orders::{self as order_store, OrderRecord};
use crate::store::reconcile::RecordedFinding;
use crate::store::scans;
use crate::store::settlements;
use crate::venues::exchange::VenueOrder;

/// Venue orders read per page by the orphans job.
const VENUE_PAGE: u32 = 500;
/// Canceled and expired orders stay under watch this long for late fills.
const LATE_FILL_WATCH_SECS: f64 = 600.0;

fn quiet_for(updated_at: DateTime<Utc>) -> Duration {
    (Utc::now() - updated_at).to_std().unwrap_or_default()
}

pub(super) fn local_view(order: &OrderRecord) -> Option<LocalOrder> {
    Some(LocalOrder {
        status: order.status,
        step: order.step,
        filled_qty: order.filled_qty,
        quiet_for: quiet_for(order.updated_at),
    })
}

pub(super) fn venue_view(venue: &VenueOrder) -> VenueOrderView {
    VenueOrderView {
        venue_order_id: venue.id.clone(),
        status: VenueStatus::parse(&venue.status),
        filled_qty: venue.filled_qty,
    }
}

impl Reconciler {
    fn settle_time(&self) -> Duration {
        Duration::from_millis(self.settings.settle_time_ms)
    }

    /// Performs `finding`'s repair and records both. A repair that
    /// changes something outside (a cancel, a release, a settlement sent
    /// again) has its finding written first: its intent is on record
    /// before the call leaves.
    pub(super) async fn act(
        &self,
        tally: &mut Tally,
        finding: Finding,
        order: Option<&OrderRecord>,
        subject: Option<String>,
    ) {
        let engine = &self.engine;
        let mutating = match &finding.repair {
            Repair::CancelAtVenue { .. } | Repair::ReleaseHold { .. } => true,
            Repair::Settle { .. } => finding.kind == "settlement_missing_in_ledger",
            _ => false,
        };
        let finding_id = if mutating {
            match crate::store::reconcile::finding_intent(
                &engine.pool,
                tally.run_id,
                &finding,
                order.map(|o| o.order_id),
                subject.as_deref(),
                &format!("requested: {:?}", finding.repair),
            )
            .await
            {
                Ok(id) => Some(id),
                Err(error) => {
                    tally
                        .errors
                        .push(format!("recording a repair's intent: {error}"));
                    return;
                }
            }
        } else {
            None
        };
        let (action, ok) = match &finding.repair {
            Repair::None => (
                match finding.classification {
                    Classification::Pending => "none yet: in flight".to_string(),
                    Classification::Resolvable => "reported; nothing left to repair".to_string(),
                    Classification::Unresolvable => "alert: needs an operator".to_string(),
                },
                None,
            ),
            Repair::ApplyVenueNews => match order {
                Some(order) => match catchup::catch_up_order(engine, order).await {
                    Ok(()) => (
                        "applied the venue's fills and status".to_string(),
                        Some(true),
                    ),
                    Err(error) => (format!("applying venue news failed: {error}"), Some(false)),
                },
                None => ("nothing to apply to".to_string(), Some(false)),
            },
            Repair::CancelAtVenue { venue_order_id } => {
                match engine.exchange.cancel_order(venue_order_id).await {
                    Ok(result) => (format!("cancel sent to the venue: {result:?}"), Some(true)),
                    Err(error) => (format!("cancel failed: {error}"), Some(false)),
                }
            }
            Repair::ReleaseHold { hold_id } => {
                let key = order
                    .map(|o| keys::release(o.order_id))
                    .unwrap_or_else(|| format!("release-{hold_id}"));
                match engine.balances.release_hold(hold_id, &key).await {
                    Ok(hold) => (
                        format!(
                            "released; hold now {} ({} remaining)",
                            hold.status, hold.remaining
                        ),
                        Some(true),
                    ),
                    Err(error) => (format!("release failed: {error}"), Some(false)),
                }
            }
            Repair::Settle { exec_id } => {
                // An unsettled fill is made due; a settled one (final) is
                // sent again under its key without touching its state.
                let settled = finding.kind == "settlement_missing_in_ledger";
                if settled {
                    match settlements::settlement_of(&engine.pool, exec_id).await {
                        Ok(Some(work)) => match crate::engine::settler::resend(engine, &work).await
                        {
                            Ok(s) => (
                                format!("settlement re-sent under its key: {}", s.id),
                                Some(true),
                            ),
                            Err(error) => (format!("re-send failed: {error}"), Some(false)),
                        },
                        Ok(None) => ("no such fill".to_string(), Some(false)),
                        Err(error) => (format!("reading the fill failed: {error}"), Some(false)),
                    }
                } else {
                    match settlements::requeue_settlement(&engine.pool, exec_id).await {
                        Ok(()) => {
                            engine.settler_wake.notify_one();
                            ("settlement due again under its key".to_string(), Some(true))
                        }
                        Err(error) => (format!("requeue failed: {error}"), Some(false)),
                    }
                }
            }
            Repair::MarkSettled { exec_id } => {
                let outcome = match order {
                    Some(order) => {
                        match engine
                            .balances
                            .settlements_for_order(&order.order_id.to_string())
                            .await
                        {
                            Ok(ledger) => {
                                match ledger.iter().find(|s| &s.idempotency_key == exec_id) {
                                    Some(s) => settlements::mark_settled(
                                        &engine.pool,
                                        engine.instance_id,
                                        order.order_id,
                                        exec_id,
                                        &s.id,
                                        s.flagged,
                                    )
                                    .await
                                    .map_err(|e| e.to_string()),
                                    None => Err("the ledger no longer shows it".to_string()),
                                }
                            }
                            Err(error) => Err(error.to_string()),
                        }
                    }
                    None => Err("no order".to_string()),
                };
                match outcome {
                    Ok(()) => (
                        "recorded as settled (the ledger has it)".to_string(),
                        Some(true),
                    ),
                    Err(error) => (format!("could not record: {error}"), Some(false)),
                }
            }
            Repair::DriveOrder => match order {
                Some(order) => {
                    let deadline = tokio::time::Instant::now();
                    match engine.claim_and_drive(order.order_id, deadline).await {
                        Ok(Some(after)) => (
                            format!(
                                "driven from its recovery point: now {} at {}",
                                after.status, after.step
                            ),
                            Some(true),
                        ),
                        Ok(None) => ("another instance is driving it".to_string(), None),
                        Err(error) => (format!("driving failed: {error}"), Some(false)),
                    }
                }
                None => ("nothing to drive".to_string(), Some(false)),
            },
        };
        if let Some(id) = finding_id
            && let Err(error) =
                crate::store::reconcile::finding_done(&engine.pool, id, &action, ok).await
        {
            tally
                .errors
                .push(format!("recording a repair's outcome: {error}"));
        }
        tally.findings.push(RecordedFinding {
            finding,
            order_id: order.map(|o| o.order_id),
            subject,
            action,
            action_ok: ok,
            finding_id,
        });
    }
}

/// The venue's view of `order` (by its venue id once known, else by its
/// client order id); `None` when the look-up failed (recorded as an error
/// of the run).
pub(super) async fn lookup_at_venue(
    r: &Reconciler,
    order: &OrderRecord,
    tally: &mut Tally,
) -> Option<Option<VenueOrder>> {
    let exchange = &r.engine.exchange;
    let found = match &order.venue_order_id {
        Some(id) => exchange.order(id).await,
        None => {
            exchange
                .order_by_client_order_id(&order.venue_client_order_id)
                .await
        }
    };
    match found {
        Ok(venue) => Some(venue),
        Err(error) => {
            tally
                .errors
                .push(format!("order {}: venue lookup: {error}", order.order_id));
            None
        }
    }
}

/// Orders the venue works that have been quiet, and recently canceled or
/// expired ones (late fills): look each up, apply what orderd missed.
pub(super) async fn open_orders(r: &Reconciler, tally: &mut Tally) -> Result<(), sqlx::Error> {
    let orders = scans::quiet_at_venue(
        &r.engine.pool,
        r.settings.stale_after_ms,
        LATE_FILL_WATCH_SECS,
        r.settings.batch,
    )
    .await?;
    for order in orders {
        tally.examined += 1;
        let Some(venue_order_id) = order.venue_order_id.clone() else {
            continue;
        };
        let Some(venue) = lookup_at_venue(r, &order, tally).await else {
            continue;
        };
        let Some(local) = local_view(&order) else {
            continue;
        };
        if let Some(finding) = diff_order(
            &local,
            venue.as_ref().map(venue_view).as_ref(),
            r.settle_time(),
        ) {
            r.act(
                tally,
                finding,
                Some(&order),
                Some(venue_order_id.to_string()),
            )
            .await;
        }
    }
    Ok(())
}

/// Unknown outcomes left unresolved, parked orders, fills whose settlement
/// is unknown.
pub(super) async fn unknown_outcomes(r: &Reconciler, tally: &mut Tally) -> Result<(), sqlx::Error> {
    let pool = &r.engine.pool;
    let stuck = scans::stuck(pool, r.settings.settle_time_ms, r.settings.batch).await?;
    for order in stuck {
        tally.examined += 1;
        let finding = if order.step == Step::Parked {
            Finding {
                kind: "parked_order",
                classification: Classification::Unresolvable,
                repair: Repair::None,
                detail: format!("parked after {} attempts; see its events", order.attempts),
            }
        } else {
            Finding {
                kind: if order.step_state == StepState::Unknown {
                    "unknown_outcome"
                } else {
                    "stalled_step"
                },
                classification: Classification::Resolvable,
                repair: Repair::DriveOrder,
                detail: format!(
                    "at step {} ({}) for {:?}",
                    order.step,
                    order.step_state,
                    quiet_for(order.updated_at)
                ),
            }
        };
        r.act(tally, finding, Some(&order), None).await;
    }
    let fills = scans::unsettled_fills(pool, r.settings.settle_time_ms, r.settings.batch).await?;
    for scans::UnsettledFill {
        exec_id,
        order_id,
        settlement_state: state,
    } in fills
    {
        tally.examined += 1;
        let order = order_store::load(pool, order_id).await?;
        let finding = if state == SettlementState::Failed {
            Finding {
                kind: "settlement_failed",
                classification: Classification::Unresolvable,
                repair: Repair::None,
                detail: format!("the ledger refused to settle {exec_id}"),
            }
        } else {
            Finding {
                kind: "settlement_unresolved",
                classification: Classification::Resolvable,
                repair: Repair::Settle {
                    exec_id: exec_id.clone(),
                },
                detail: format!("{exec_id} is {state}"),
            }
        };
        r.act(tally, finding, order.as_ref(), Some(exec_id.to_string()))
            .await;
    }
    Ok(())
}

/// Holds still open for terminal orders, and each order's settled fills
/// against the ledger's settlements, for orders that changed since the
/// previous run.
pub(super) async fn balances(
    r: &Reconciler,
    since: Option<DateTime<Utc>>,
    tally: &mut Tally,
) -> Result<(), sqlx::Error> {
    let pool = &r.engine.pool;
    let lookback =
        chrono::Duration::seconds(i64::try_from(r.settings.balances_lookback_secs).unwrap_or(3600));
    // A margin, so an order that changed while the last run read is seen.
    let since = since
        .map(|s| s - chrono::Duration::seconds(60))
        .unwrap_or_else(|| Utc::now() - lookback);
    for late in scans::late_fills(pool, since, r.settings.batch).await? {
        tally.examined += 1;
        let order = order_store::load(pool, late.order_id).await?;
        let finding = Finding {
            kind: "late_fill",
            classification: Classification::Resolvable,
            repair: Repair::None,
            detail: format!(
                "{} arrived after the hold was released; settled from free balance ({})",
                late.exec_id, late.settlement_state
            ),
        };
        r.act(
            tally,
            finding,
            order.as_ref(),
            Some(late.exec_id.to_string()),
        )
        .await;
    }
    let orders = scans::terminal_with_holds(pool, since, r.settings.batch).await?;
    for order in orders {
        tally.examined += 1;
        let Some(hold_id) = order.hold_id.clone() else {
            continue;
        };
        // A replace chain's hold is the live order's, not this one's.
        if crate::domain::replace::hold_passed_on(
            order.status,
            order.replaces.is_some(),
            order.venue_order_id.is_some(),
        ) {
            continue;
        }
        let fills = executions::fills_of(pool, order.order_id).await?;
        let unsettled = fills
            .iter()
            .filter(|f| SettlementState::UNSETTLED.contains(&f.settlement_state))
            .count() as u64;
        match r.engine.balances.hold(&hold_id).await {
            Ok(Some(hold)) => {
                if let Some(finding) = diff_hold(
                    order.status,
                    order.step,
                    &hold_id,
                    hold.remaining,
                    unsettled,
                ) {
                    r.act(tally, finding, Some(&order), Some(hold_id.to_string()))
                        .await;
                }
            }
            Ok(None) => {
                let finding = Finding {
                    kind: "hold_missing",
                    classification: Classification::Unresolvable,
                    repair: Repair::None,
                    detail: format!("the ledger does not know hold {hold_id}"),
                };
                r.act(tally, finding, Some(&order), Some(hold_id.to_string()))
                    .await;
            }
            Err(error) => tally
                .errors
                .push(format!("order {}: hold lookup: {error}", order.order_id)),
        }
        if fills.is_empty() {
            continue;
        }
        let ledger: BTreeSet<ExecId> = match r
            .engine
            .balances
            .settlements_for_order(&order.order_id.to_string())
            .await
        {
            Ok(settlements) => settlements.into_iter().map(|s| s.idempotency_key).collect(),
            Err(error) => {
                tally.errors.push(format!(
                    "order {}: settlements lookup: {error}",
                    order.order_id
                ));
                continue;
            }
        };
        let local: Vec<LocalFill> = fills
            .iter()
            .map(|f| LocalFill {
                exec_id: f.exec_id.clone(),
                settlement_state: f.settlement_state,
                quiet_for: quiet_for(f.transact_time),
            })
            .collect();
        for finding in diff_settlements(&local, &ledger, r.settle_time()) {
            let subject = match &finding.repair {
                Repair::Settle { exec_id } | Repair::MarkSettled { exec_id } => {
                    Some(exec_id.to_string())
                }
                _ => None,
            };
            r.act(tally, finding, Some(&order), subject).await;
        }
    }
    Ok(())
}

/// Live venue orders carrying orderd's client-id prefix: each must be an
/// order orderd knows and works.
pub(super) async fn orphans(r: &Reconciler, tally: &mut Tally) -> Result<(), sqlx::Error> {
    let prefix = keys::VENUE_CLIENT_ORDER_ID_PREFIX;
    let mut after: Option<String> = None;
    loop {
        let page = match r
            .engine
            .exchange
            .list_orders("open", after.as_deref(), VENUE_PAGE)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tally.errors.push(format!("listing venue orders: {error}"));
                return Ok(());
            }
        };
        let last = page.last().map(|o| o.id.to_string());
        for venue in page
            .iter()
            .filter(|v| v.client_order_id.as_str().starts_with(prefix))
        {
            tally.examined += 1;
            let order =
                order_store::load_by_venue_client_order_id(&r.engine.pool, &venue.client_order_id)
                    .await?;
            let local = order.as_ref().and_then(local_view);
            if let Some(finding) =
                diff_venue_order(local.as_ref(), &venue_view(venue), r.settle_time())
            {
                r.act(
                    tally,
                    finding,
                    order.as_ref(),
                    Some(venue.client_order_id.to_string()),
                )
                .await;
            }
        }
        if page.len() < VENUE_PAGE as usize || last.is_none() {
            return Ok(());
        }
        after = last;
    }
}

/// Expired idempotency records and tick claims older than a day.
pub(super) async fn gc(r: &Reconciler, tally: &mut Tally) -> Result<(), sqlx::Error> {
    let pool = &r.engine.pool;
    let limit = i64::from(r.settings.batch);
    loop {
        let deleted = crate::store::idempotency::delete_expired(pool, limit).await?;
        tally.examined += deleted;
        if deleted < limit as u64 {
            break;
        }
    }
    tally.examined += crate::store::reconcile::delete_old_ticks(pool).await?;
    Ok(())
}

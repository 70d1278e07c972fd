//! The reconciliation diff: orderd's view of an order, hold or settlement
//! against the other system's, turned into findings. Each finding is
//! classified — *pending* (give it time), *resolvable* (repair it and
//! record what was done) or *unresolvable* (record it and alert) — and
//! names the repair. Nothing here overwrites one view with the other; the
//! caller performs the named repair through the normal paths (the apply
//! function, keyed calls).

use std::collections::BTreeSet;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::Serialize;

use super::fills::SettlementState;
use super::ids::{ExecId, HoldId, VenueOrderId};
use super::lifecycle::{Status, Step, VenueStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Pending,
    Resolvable,
    Unresolvable,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Pending => "pending",
            Classification::Resolvable => "resolvable",
            Classification::Unresolvable => "unresolvable",
        }
    }
}

/// What to do about a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "repair", rename_all = "snake_case")]
pub enum Repair {
    /// Nothing now (pending) or nothing possible (unresolvable).
    None,
    /// Fetch the venue's fills and status and apply them.
    ApplyVenueNews,
    /// Cancel the venue order.
    CancelAtVenue { venue_order_id: VenueOrderId },
    /// Release what is left of the hold.
    ReleaseHold { hold_id: HoldId },
    /// Send the fill's keyed settlement (again).
    Settle { exec_id: ExecId },
    /// The ledger has the settlement: record it as settled.
    MarkSettled { exec_id: ExecId },
    /// Drive the order from its recovery point now.
    DriveOrder,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: &'static str,
    pub classification: Classification,
    pub repair: Repair,
    pub detail: String,
}

fn finding(
    kind: &'static str,
    classification: Classification,
    repair: Repair,
    detail: String,
) -> Finding {
    Finding {
        kind,
        classification,
        repair,
        detail,
    }
}

/// orderd's view of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOrder {
    pub status: Status,
    pub step: Step,
    pub filled_qty: Decimal,
    /// How long since orderd last changed the order.
    pub quiet_for: Duration,
}

/// The venue's view of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueOrderView {
    pub venue_order_id: VenueOrderId,
    pub status: Option<VenueStatus>,
    pub filled_qty: Decimal,
}

/// Compares an order orderd placed with what the venue says about it.
/// `venue` is `None` when the venue does not show it; `settle_time` is how
/// long a difference may be in flight before it is a finding.
pub fn diff_order(
    local: &LocalOrder,
    venue: Option<&VenueOrderView>,
    settle_time: Duration,
) -> Option<Finding> {
    use Classification::*;
    let young = local.quiet_for < settle_time;
    let Some(venue) = venue else {
        return Some(if young {
            finding(
                "venue_order_missing",
                Pending,
                Repair::None,
                "not visible at the venue yet".into(),
            )
        } else {
            finding(
                "venue_order_missing",
                Unresolvable,
                Repair::None,
                "orderd placed it but the venue does not know it".into(),
            )
        });
    };
    let venue_terminal = venue.status.is_some_and(VenueStatus::is_terminal);
    if venue.filled_qty > local.filled_qty {
        return Some(finding(
            "missed_fills",
            if young { Pending } else { Resolvable },
            if young {
                Repair::None
            } else {
                Repair::ApplyVenueNews
            },
            format!(
                "venue filled {}, orderd has {}",
                venue.filled_qty, local.filled_qty
            ),
        ));
    }
    if venue.filled_qty < local.filled_qty {
        // A venue read may lag the venue's own stream (a stale replica):
        // a fill orderd applied moments ago is not news yet. Only once the
        // order has been quiet is a venue that knows less than orderd a
        // contradiction for a person to look at.
        return Some(finding(
            "fills_unknown_to_venue",
            if young { Pending } else { Unresolvable },
            Repair::None,
            format!(
                "orderd has {} filled, the venue {}",
                local.filled_qty, venue.filled_qty
            ),
        ));
    }
    if venue_terminal && !local.status.is_terminal() {
        return Some(finding(
            "missed_terminal_status",
            if young { Pending } else { Resolvable },
            if young {
                Repair::None
            } else {
                Repair::ApplyVenueNews
            },
            format!("venue says {:?}, orderd {}", venue.status, local.status),
        ));
    }
    if local.status.is_terminal() && !venue_terminal && venue.status.is_some() {
        // orderd closed it (e.g. as never received) but it is live there.
        return Some(finding(
            "late_venue_order",
            Resolvable,
            Repair::CancelAtVenue {
                venue_order_id: venue.venue_order_id.clone(),
            },
            format!("orderd has it {}, the venue still works it", local.status),
        ));
    }
    None
}

/// A venue order carrying one of orderd's client ids. `local` is `None`
/// when orderd has no order with that id.
/// An order that should have ended with a session that is over (its close
/// or, for OPG, its open, passed a grace ago) and that orderd still shows
/// working: what the venue says decides the repair.
pub fn diff_session_end(local: &LocalOrder, venue: Option<&VenueOrderView>) -> Finding {
    use Classification::*;
    match venue {
        // Never placed (or not found yet): its own recovery resolves it.
        None if matches!(local.step, Step::Reserve | Step::Place) => finding(
            "session_ended_unplaced",
            Resolvable,
            Repair::DriveOrder,
            "the session it was for is over and it is not at the venue".into(),
        ),
        None => finding(
            "session_ended_venue_order_missing",
            Unresolvable,
            Repair::None,
            "the session it was for is over; orderd placed it, the venue does not know it".into(),
        ),
        Some(venue) if venue.status.is_some_and(VenueStatus::is_terminal) => finding(
            "session_ended_news_missed",
            Resolvable,
            Repair::ApplyVenueNews,
            format!(
                "the venue ended it ({}) and orderd missed the news",
                venue.status.map(VenueStatus::as_str).unwrap_or("?")
            ),
        ),
        Some(venue) => finding(
            "session_ended_still_working",
            Resolvable,
            Repair::CancelAtVenue {
                venue_order_id: venue.venue_order_id.clone(),
            },
            "the venue still works it after the session it was for".into(),
        ),
    }
}

pub fn diff_venue_order(
    local: Option<&LocalOrder>,
    venue: &VenueOrderView,
    settle_time: Duration,
) -> Option<Finding> {
    use Classification::*;
    match local {
        Some(local) => {
            // A placement orderd has not resolved yet is the completer's.
            if matches!(local.step, Step::Reserve | Step::Place) && !local.status.is_terminal() {
                return Some(finding(
                    "placement_unresolved",
                    Pending,
                    Repair::DriveOrder,
                    "the venue has it; orderd's placement is still being resolved".into(),
                ));
            }
            diff_order(local, Some(venue), settle_time)
        }
        None if venue.status.is_some_and(VenueStatus::is_terminal) => {
            (venue.filled_qty > Decimal::ZERO).then(|| {
                finding(
                    "orphan_venue_order",
                    Unresolvable,
                    Repair::None,
                    format!(
                        "an order orderd never recorded filled {} at the venue",
                        venue.filled_qty
                    ),
                )
            })
        }
        None => Some(finding(
            "orphan_venue_order",
            Resolvable,
            Repair::CancelAtVenue {
                venue_order_id: venue.venue_order_id.clone(),
            },
            "a live venue order with orderd's id prefix that orderd never recorded".into(),
        )),
    }
}

/// A hold against its order.
pub fn diff_hold(
    order_status: Status,
    order_step: Step,
    hold_id: &HoldId,
    hold_remaining: Decimal,
    unsettled_fills: u64,
) -> Option<Finding> {
    use Classification::*;
    if !order_status.is_terminal() || hold_remaining <= Decimal::ZERO {
        return None;
    }
    if unsettled_fills > 0 || order_step == Step::Release {
        return Some(finding(
            "hold_awaiting_release",
            Pending,
            Repair::None,
            format!("{hold_remaining} held; {unsettled_fills} fill(s) still settling"),
        ));
    }
    Some(finding(
        "hold_not_released",
        Resolvable,
        Repair::ReleaseHold {
            hold_id: hold_id.clone(),
        },
        format!("{hold_remaining} still held for a {order_status} order"),
    ))
}

/// A fill as orderd records it, for [`diff_settlements`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFill {
    pub exec_id: ExecId,
    pub settlement_state: SettlementState,
    pub quiet_for: Duration,
}

/// An order's fills against the ledger's settlements for it (by key).
pub fn diff_settlements(
    local: &[LocalFill],
    ledger: &BTreeSet<ExecId>,
    settle_time: Duration,
) -> Vec<Finding> {
    use Classification::*;
    let mut findings = Vec::new();
    let ours: BTreeSet<&ExecId> = local.iter().map(|f| &f.exec_id).collect();
    for fill in local {
        let in_ledger = ledger.contains(&fill.exec_id);
        match (fill.settlement_state, in_ledger) {
            (SettlementState::Settled, true) => {}
            (SettlementState::Settled, false) => findings.push(finding(
                "settlement_missing_in_ledger",
                Resolvable,
                Repair::Settle {
                    exec_id: fill.exec_id.clone(),
                },
                format!(
                    "orderd recorded {} settled; the ledger has no such settlement",
                    fill.exec_id
                ),
            )),
            (_, true) => findings.push(finding(
                "settlement_outcome_unrecorded",
                Resolvable,
                Repair::MarkSettled {
                    exec_id: fill.exec_id.clone(),
                },
                format!(
                    "the ledger settled {}; orderd had it {}",
                    fill.exec_id, fill.settlement_state
                ),
            )),
            (SettlementState::Failed, false) => findings.push(finding(
                "settlement_failed",
                Unresolvable,
                Repair::None,
                format!("the ledger refused to settle {}", fill.exec_id),
            )),
            (state, false) => {
                let old = fill.quiet_for >= settle_time;
                findings.push(finding(
                    "settlement_pending",
                    if old { Resolvable } else { Pending },
                    if old {
                        Repair::Settle {
                            exec_id: fill.exec_id.clone(),
                        }
                    } else {
                        Repair::None
                    },
                    format!("{} is {state}", fill.exec_id),
                ));
            }
        }
    }
    for unknown in ledger.iter().filter(|k| !ours.contains(k)) {
        findings.push(finding(
            "ledger_settlement_unknown",
            Unresolvable,
            Repair::None,
            format!("the ledger settled {unknown} for this order; orderd has no such fill"),
        ));
    }
    findings
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;

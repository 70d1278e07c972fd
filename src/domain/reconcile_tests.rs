//! Tests of `src/domain/reconcile.rs`.

use super::*;

const SETTLE: Duration = Duration::from_secs(5);

fn local(status: Status, step: Step, filled: i64, quiet_secs: u64) -> LocalOrder {
    LocalOrder {
        status,
        step,
        filled_qty: filled.into(),
        quiet_for: Duration::from_secs(quiet_secs),
    }
}

fn venue(status: VenueStatus, filled: i64) -> VenueOrderView {
    VenueOrderView {
        venue_order_id: "v1".into(),
        status: Some(status),
        filled_qty: filled.into(),
    }
}

#[test]
fn missed_fills_are_repaired_once_the_order_has_been_quiet() {
    let quiet = local(Status::New, Step::Working, 0, 60);
    let f = diff_order(
        &quiet,
        Some(&venue(VenueStatus::PartiallyFilled, 3)),
        SETTLE,
    )
    .unwrap();
    assert_eq!(f.kind, "missed_fills");
    assert_eq!(f.classification, Classification::Resolvable);
    assert_eq!(f.repair, Repair::ApplyVenueNews);
    let busy = local(Status::New, Step::Working, 0, 1);
    let f = diff_order(&busy, Some(&venue(VenueStatus::PartiallyFilled, 3)), SETTLE).unwrap();
    assert_eq!(
        f.classification,
        Classification::Pending,
        "in flight, give it time"
    );
}

#[test]
fn a_venue_behind_orderd_is_pending_while_the_fill_is_fresh_and_for_a_person_after() {
    // The soak's stale venue reads showed fills orderd had just applied as
    // unknown to the venue, paging a person for nothing.
    let fresh = local(Status::PartiallyFilled, Step::Working, 3, 1);
    let f = diff_order(&fresh, Some(&venue(VenueStatus::New, 0)), SETTLE).unwrap();
    assert_eq!(f.kind, "fills_unknown_to_venue");
    assert_eq!(f.classification, Classification::Pending);
    assert_eq!(f.repair, Repair::None);
    let quiet = local(Status::PartiallyFilled, Step::Working, 3, 60);
    let f = diff_order(&quiet, Some(&venue(VenueStatus::New, 0)), SETTLE).unwrap();
    assert_eq!(f.kind, "fills_unknown_to_venue");
    assert_eq!(f.classification, Classification::Unresolvable);
}

#[test]
fn agreement_is_no_finding() {
    let l = local(Status::PartiallyFilled, Step::Working, 3, 60);
    assert_eq!(
        diff_order(&l, Some(&venue(VenueStatus::PartiallyFilled, 3)), SETTLE),
        None
    );
    let done = local(Status::Filled, Step::Closed, 3, 60);
    assert_eq!(
        diff_order(&done, Some(&venue(VenueStatus::Filled, 3)), SETTLE),
        None
    );
}

#[test]
fn a_live_venue_order_orderd_closed_is_canceled() {
    let closed = local(Status::Rejected, Step::Closed, 0, 60);
    let f = diff_order(&closed, Some(&venue(VenueStatus::New, 0)), SETTLE).unwrap();
    assert_eq!(f.kind, "late_venue_order");
    assert_eq!(
        f.repair,
        Repair::CancelAtVenue {
            venue_order_id: "v1".into()
        }
    );
}

#[test]
fn more_fills_locally_than_at_the_venue_is_unresolvable() {
    let l = local(Status::Filled, Step::Closed, 5, 60);
    let f = diff_order(&l, Some(&venue(VenueStatus::PartiallyFilled, 3)), SETTLE).unwrap();
    assert_eq!(f.classification, Classification::Unresolvable);
}

#[test]
fn orphans_are_canceled_if_live_and_alerted_if_filled() {
    let live = diff_venue_order(None, &venue(VenueStatus::New, 0), SETTLE).unwrap();
    assert_eq!(live.kind, "orphan_venue_order");
    assert!(matches!(live.repair, Repair::CancelAtVenue { .. }));
    let filled = diff_venue_order(None, &venue(VenueStatus::Filled, 2), SETTLE).unwrap();
    assert_eq!(filled.classification, Classification::Unresolvable);
    assert_eq!(
        diff_venue_order(None, &venue(VenueStatus::Canceled, 0), SETTLE),
        None
    );
}

#[test]
fn holds_of_terminal_orders_are_released_after_their_fills_settle() {
    assert_eq!(
        diff_hold(Status::New, Step::Working, &"h".into(), 10.into(), 0),
        None
    );
    let waiting = diff_hold(Status::Filled, Step::Closed, &"h".into(), 10.into(), 1).unwrap();
    assert_eq!(waiting.classification, Classification::Pending);
    let leaked = diff_hold(Status::Canceled, Step::Closed, &"h".into(), 10.into(), 0).unwrap();
    assert_eq!(
        leaked.repair,
        Repair::ReleaseHold {
            hold_id: "h".into()
        }
    );
    assert_eq!(
        diff_hold(Status::Canceled, Step::Closed, &"h".into(), 0.into(), 0),
        None
    );
}

#[test]
fn settlements_are_compared_by_key() {
    let fill = |id: &str, state: SettlementState, quiet: u64| LocalFill {
        exec_id: id.into(),
        settlement_state: state,
        quiet_for: Duration::from_secs(quiet),
    };
    let ledger: BTreeSet<ExecId> = ["a", "b", "z"].into_iter().map(ExecId::from).collect();
    let findings = diff_settlements(
        &[
            fill("a", SettlementState::Settled, 60),
            fill("b", SettlementState::Unknown, 60),
            fill("c", SettlementState::Pending, 60),
            fill("d", SettlementState::Pending, 1),
        ],
        &ledger,
        SETTLE,
    );
    let kinds: Vec<(&str, Classification)> = findings
        .iter()
        .map(|f| (f.kind, f.classification))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("settlement_outcome_unrecorded", Classification::Resolvable),
            ("settlement_pending", Classification::Resolvable),
            ("settlement_pending", Classification::Pending),
            ("ledger_settlement_unknown", Classification::Unresolvable),
        ]
    );
}

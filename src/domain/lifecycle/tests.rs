//! The transition table, `next_action` and venue news, exercised as
//! plain functions (unit and property tests).

use super::*;
use proptest::prelude::*;

const LIMITS: Limits = Limits {
    max_attempts: 20,
    max_unexpected_attempts: 3,
};

fn apply(l: &Lifecycle, o: Outcome) -> Change {
    transition(l, o, LIMITS).expect("valid transition")
}

#[test]
fn the_happy_path_reserves_places_and_waits_for_the_venue() {
    let accepted = Lifecycle::accepted();
    assert_eq!(next_action(&accepted), Action::CreateHold);
    let reserved = apply(
        &accepted,
        Outcome::HoldCreated {
            hold_id: "h1".into(),
        },
    );
    assert_eq!(reserved.next.step, Step::Place);
    assert_eq!(reserved.next.status, Status::PendingNew);
    assert_eq!(reserved.schedule, Schedule::Now);
    assert_eq!(next_action(&reserved.next), Action::PlaceOrder);
    let placed = apply(
        &reserved.next,
        Outcome::Placed {
            venue_order_id: "v1".into(),
            queued: false,
        },
    );
    assert_eq!(placed.next.step, Step::Working);
    assert_eq!(placed.next.status, Status::New);
    assert_eq!(next_action(&placed.next), Action::None);
}

#[test]
fn insufficient_funds_closes_the_order_rejected_with_nothing_to_release() {
    let change = apply(
        &Lifecycle::accepted(),
        Outcome::HoldRejected {
            reason: RejectReason::InsufficientFunds { available: None },
        },
    );
    assert_eq!(change.next.step, Step::Closed);
    assert_eq!(change.next.status, Status::Rejected);
    assert_eq!(change.events[0].state, ActionState::Failed);
}

#[test]
fn an_unknown_placement_is_resolved_by_lookup_then_resend() {
    let mut l = Lifecycle::accepted();
    l = apply(
        &l,
        Outcome::HoldCreated {
            hold_id: "h".into(),
        },
    )
    .next;
    let unknown = apply(
        &l,
        Outcome::Unknown {
            detail: "timeout".into(),
        },
    );
    assert_eq!(unknown.next.step_state, StepState::Unknown);
    assert_eq!(unknown.events[0].state, ActionState::Unknown);
    assert_eq!(next_action(&unknown.next), Action::LookupPlacement);
    let missing = apply(
        &unknown.next,
        Outcome::PlacementNotFound { may_resend: true },
    );
    assert_eq!(next_action(&missing.next), Action::PlaceOrder);
    assert!(matches!(missing.schedule, Schedule::Backoff { .. }));
}

#[test]
fn a_venue_rejection_releases_the_hold_then_closes() {
    let mut l = Lifecycle::accepted();
    l = apply(
        &l,
        Outcome::HoldCreated {
            hold_id: "h".into(),
        },
    )
    .next;
    let rejected = apply(
        &l,
        Outcome::PlacementRejected {
            detail: "risk".into(),
        },
    );
    assert_eq!(rejected.next.status, Status::Rejected);
    assert_eq!(rejected.next.step, Step::Release);
    assert_eq!(
        next_action(&rejected.next),
        Action::ReleaseHold {
            hold_id: "h".into()
        }
    );
    let closed = apply(&rejected.next, Outcome::HoldReleased);
    assert_eq!(closed.next.step, Step::Closed);
    assert_eq!(closed.next.status, Status::Rejected);
}

#[test]
fn a_placement_never_received_is_rejected_and_released_not_sent_late() {
    let mut l = Lifecycle::accepted();
    l = apply(
        &l,
        Outcome::HoldCreated {
            hold_id: "h".into(),
        },
    )
    .next;
    l = apply(
        &l,
        Outcome::Unknown {
            detail: "timeout".into(),
        },
    )
    .next;
    let done = apply(&l, Outcome::PlacementNeverReceived);
    assert_eq!(done.next.status, Status::Rejected);
    assert_eq!(done.next.step, Step::Release);
    // Only an unknown placement can be judged never received.
    let mut pending = Lifecycle::accepted();
    pending = apply(
        &pending,
        Outcome::HoldCreated {
            hold_id: "h".into(),
        },
    )
    .next;
    assert!(transition(&pending, Outcome::PlacementNeverReceived, LIMITS).is_err());
}

#[test]
fn repeated_unexpected_answers_park_the_order() {
    let mut l = Lifecycle::accepted();
    for _ in 0..2 {
        l = apply(&l, Outcome::Unexpected { detail: "?".into() }).next;
        assert_eq!(l.step, Step::Reserve);
    }
    let parked = apply(&l, Outcome::Unexpected { detail: "?".into() });
    assert_eq!(parked.next.step, Step::Parked);
    assert_eq!(next_action(&parked.next), Action::None);
}

#[test]
fn unknown_outcomes_are_retried_within_the_budget_then_parked_still_unknown() {
    let mut l = Lifecycle::accepted();
    for _ in 1..LIMITS.max_attempts {
        l = apply(
            &l,
            Outcome::Unknown {
                detail: "5xx".into(),
            },
        )
        .next;
        assert_eq!(l.step, Step::Reserve);
    }
    let parked = apply(
        &l,
        Outcome::Unknown {
            detail: "5xx".into(),
        },
    );
    assert_eq!(parked.next.step, Step::Parked);
    assert_eq!(parked.next.parked_step, Some(Step::Reserve));
    assert_eq!(
        parked.next.step_state,
        StepState::Unknown,
        "parked, not guessed: the outcome is still unknown"
    );
    assert_eq!(parked.events[0].detail["last_error"], "5xx");
    let resumed = resume(&parked.next, "alice").unwrap();
    assert_eq!(resumed.next.step, Step::Reserve);
    assert_eq!(resumed.next.attempts, 0);
    assert_eq!(resumed.events[0].detail["resumed_by"], "alice");
    assert_eq!(next_action(&resumed.next), Action::CreateHold);
    assert!(
        resume(&resumed.next, "alice").is_err(),
        "only a parked order resumes"
    );
}

#[test]
fn outcomes_that_do_not_fit_the_step_are_errors() {
    let l = Lifecycle::accepted();
    assert!(
        transition(
            &l,
            Outcome::Placed {
                venue_order_id: "v".into(),
                queued: false,
            },
            LIMITS
        )
        .is_err()
    );
    assert!(transition(&l, Outcome::HoldReleased, LIMITS).is_err());
    // A lookup result only answers an unknown placement.
    let mut placing = l.clone();
    placing.step = Step::Place;
    assert!(
        transition(
            &placing,
            Outcome::PlacementNotFound { may_resend: true },
            LIMITS
        )
        .is_err()
    );
    let mut working = l;
    working.step = Step::Working;
    assert!(transition(&working, Outcome::Unknown { detail: "x".into() }, LIMITS).is_err());
}

fn working() -> Lifecycle {
    let mut l = Lifecycle::accepted();
    l = apply(
        &l,
        Outcome::HoldCreated {
            hold_id: "h".into(),
        },
    )
    .next;
    apply(
        &l,
        Outcome::Placed {
            venue_order_id: "v".into(),
            queued: false,
        },
    )
    .next
}

fn news(status: VenueStatus, cum: i64) -> VenueNews {
    VenueNews {
        status,
        cum_qty: rust_decimal::Decimal::from(cum),
    }
}

#[test]
fn fills_project_partial_then_filled_then_release() {
    let l = working();
    let ten = rust_decimal::Decimal::from(10);
    let p = on_venue_news(&l, ten, 4.into(), news(VenueStatus::PartiallyFilled, 4));
    assert_eq!(p.next.status, Status::PartiallyFilled);
    assert_eq!(p.next.step, Step::Working);
    let p = on_venue_news(&p.next, ten, ten, news(VenueStatus::Filled, 10));
    assert_eq!(p.next.status, Status::Filled);
    assert_eq!(p.next.step, Step::Release);
    assert!(p.release_now);
}

#[test]
fn a_terminal_report_with_missing_fills_waits_for_them() {
    let l = working();
    let p = on_venue_news(&l, 10.into(), 4.into(), news(VenueStatus::Canceled, 6));
    assert!(p.missing_fills);
    assert_eq!(p.next.status, Status::PartiallyFilled);
    assert_eq!(p.next.step, Step::Working);
    let p = on_venue_news(&p.next, 10.into(), 6.into(), news(VenueStatus::Canceled, 6));
    assert_eq!(p.next.status, Status::Canceled);
    assert_eq!(p.next.step, Step::Release);
}

#[test]
fn a_late_fill_that_completes_a_canceled_order_leaves_it_canceled() {
    let mut l = request_cancel(&working()).unwrap().next;
    l = apply(&l, Outcome::CancelAccepted).next;
    // The canceled report was lost; the late fill says "canceled".
    let p = on_venue_news(&l, 5.into(), 5.into(), news(VenueStatus::Canceled, 5));
    assert_eq!(p.next.status, Status::Canceled);
    assert_eq!(p.next.step, Step::Release);
}

#[test]
fn a_fill_after_the_end_keeps_the_outcome() {
    let l = working();
    let canceled = on_venue_news(&l, 10.into(), 0.into(), news(VenueStatus::Canceled, 0)).next;
    assert_eq!(canceled.status, Status::Canceled);
    let late = on_venue_news(
        &canceled,
        10.into(),
        3.into(),
        news(VenueStatus::Canceled, 3),
    );
    assert_eq!(late.next.status, Status::Canceled);
    assert!(late.events.is_empty());
}

#[test]
fn news_during_an_unknown_placement_proves_it() {
    let mut l = Lifecycle::accepted();
    l = apply(
        &l,
        Outcome::HoldCreated {
            hold_id: "h".into(),
        },
    )
    .next;
    l = apply(
        &l,
        Outcome::Unknown {
            detail: "timeout".into(),
        },
    )
    .next;
    let p = on_venue_news(
        &l,
        10.into(),
        2.into(),
        news(VenueStatus::PartiallyFilled, 2),
    );
    assert_eq!(p.next.step, Step::Working);
    assert_eq!(p.next.status, Status::PartiallyFilled);
}

#[test]
fn cancel_before_placement_never_places() {
    // Canceled while the hold is being made: never placed.
    let l = request_cancel(&Lifecycle::accepted()).unwrap().next;
    let held = apply(
        &l,
        Outcome::HoldCreated {
            hold_id: "h".into(),
        },
    );
    assert_eq!(held.next.status, Status::Canceled);
    assert_eq!(held.next.step, Step::Release);
    assert!(!held.next.placement_sent);
    assert_eq!(
        next_action(&held.next),
        Action::ReleaseHold {
            hold_id: "h".into()
        }
    );
    // A placement step whose intent was never recorded is abandoned.
    let mut pending = held.next.clone();
    pending.step = Step::Place;
    pending.step_state = StepState::Pending;
    pending.status = Status::PendingCancel;
    assert_eq!(next_action(&pending), Action::AbandonPlacement);
    let done = apply(&pending, Outcome::PlacementAbandoned);
    assert_eq!(done.next.status, Status::Canceled);
}

#[test]
fn a_cancel_once_the_placement_is_intended_looks_it_up_never_abandons() {
    // The issue's schedule: the hold's outcome records the placement's
    // intent; orderd dies after sending it; the new claim makes it
    // unknown; the trader cancels at once.
    let mut l = apply(
        &Lifecycle::accepted(),
        Outcome::HoldCreated {
            hold_id: "h".into(),
        },
    )
    .next;
    assert_eq!(
        l.step_state,
        StepState::Sent,
        "intent folded into the hold's outcome"
    );
    assert!(l.placement_sent);
    l.step_state = StepState::Unknown; // what a new claim makes of it
    let canceled = request_cancel(&l).unwrap().next;
    assert_eq!(next_action(&canceled), Action::LookupPlacement);
    // Even a cancel recorded before the driver sent it looks it up.
    let mut sent = l.clone();
    sent.step_state = StepState::Sent;
    let canceled = request_cancel(&sent).unwrap().next;
    assert_eq!(next_action(&canceled), Action::LookupPlacement);
    // The venue has it: placed, then canceled there.
    let found = apply(
        &canceled,
        Outcome::Placed {
            venue_order_id: "v".into(),
            queued: false,
        },
    );
    assert_eq!(found.next.step, Step::Cancel);
    assert_eq!(
        found.next.step_state,
        StepState::Sent,
        "the cancel's intent, folded"
    );
}

#[test]
fn a_cancel_after_a_lookup_found_nothing_looks_again_and_never_abandons() {
    // Found by `orderd chaos --seeds 2`: the answer was lost, a stale
    // read said "not found", the trader canceled; the venue had it.
    let mut l = Lifecycle::accepted();
    l = apply(
        &l,
        Outcome::HoldCreated {
            hold_id: "h".into(),
        },
    )
    .next;
    l = apply(
        &l,
        Outcome::Unknown {
            detail: "timeout".into(),
        },
    )
    .next;
    l = apply(&l, Outcome::PlacementNotFound { may_resend: true }).next;
    assert_eq!(
        next_action(&l),
        Action::PlaceOrder,
        "re-sent when not canceled"
    );
    let canceled = request_cancel(&l).unwrap().next;
    assert_eq!(next_action(&canceled), Action::LookupPlacement);
    let found = apply(
        &canceled,
        Outcome::PlacementRejected {
            detail: "risk".into(),
        },
    );
    assert_eq!(
        found.next.status,
        Status::Rejected,
        "the venue's word, not a guess"
    );
}

#[test]
fn cancel_of_a_working_order_asks_the_venue_once() {
    let c = request_cancel(&working()).unwrap();
    assert_eq!(c.next.step, Step::Cancel);
    assert_eq!(
        next_action(&c.next),
        Action::CancelAtVenue {
            venue_order_id: "v".into()
        }
    );
    let again = request_cancel(&c.next).unwrap();
    assert!(again.events.is_empty(), "idempotent");
    let sent = apply(&c.next, Outcome::CancelAccepted);
    assert_eq!(sent.next.step, Step::Working);
    assert_eq!(sent.next.status, Status::PendingCancel);
    // The venue's fill wins a race with the cancel.
    let filled = on_venue_news(&sent.next, 5.into(), 5.into(), news(VenueStatus::Filled, 5));
    assert_eq!(filled.next.status, Status::Filled);
}

#[test]
fn a_terminal_order_cannot_be_canceled() {
    let l = working();
    let done = on_venue_news(&l, 1.into(), 1.into(), news(VenueStatus::Filled, 1)).next;
    assert_eq!(
        request_cancel(&done).unwrap_err(),
        AlreadyTerminal(Status::Filled)
    );
}

#[test]
fn a_canceled_unknown_placement_is_looked_up_until_it_cannot_arrive() {
    let mut l = Lifecycle::accepted();
    l = apply(
        &l,
        Outcome::HoldCreated {
            hold_id: "h".into(),
        },
    )
    .next;
    l = apply(&l, Outcome::Unknown { detail: "t".into() }).next;
    l = request_cancel(&l).unwrap().next;
    for _ in 0..5 {
        l = apply(&l, Outcome::PlacementNotFound { may_resend: true }).next;
        assert_eq!(
            next_action(&l),
            Action::LookupPlacement,
            "looked up, never re-sent, never abandoned"
        );
    }
    let done = apply(&l, Outcome::PlacementNeverReceived);
    assert_eq!(done.next.status, Status::Canceled);
    assert_eq!(done.next.step, Step::Release);
}

#[test]
fn backoff_grows_is_capped_and_jittered() {
    let base = Duration::from_millis(100);
    let cap = Duration::from_secs(5);
    assert_eq!(backoff(1, base, cap, 1.0), Duration::from_millis(100));
    assert_eq!(backoff(1, base, cap, 0.0), Duration::from_millis(50));
    assert_eq!(backoff(3, base, cap, 1.0), Duration::from_millis(400));
    assert_eq!(backoff(60, base, cap, 1.0), cap);
}

fn any_outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::HoldCreated {
            hold_id: "h".into()
        }),
        Just(Outcome::HoldRejected {
            reason: RejectReason::InsufficientFunds { available: None }
        }),
        Just(Outcome::Placed {
            venue_order_id: "v".into(),
            queued: false,
        }),
        Just(Outcome::Placed {
            venue_order_id: "v".into(),
            queued: true,
        }),
        Just(Outcome::PlacementRejected { detail: "r".into() }),
        Just(Outcome::PlacementNotFound { may_resend: true }),
        Just(Outcome::PlacementNotFound { may_resend: false }),
        Just(Outcome::PlacementNeverReceived),
        Just(Outcome::HoldReleased),
        Just(Outcome::Unknown { detail: "u".into() }),
        Just(Outcome::Retry { detail: "r".into() }),
        Just(Outcome::Unexpected { detail: "x".into() }),
        Just(Outcome::PlacementAbandoned),
        Just(Outcome::CancelAccepted),
        Just(Outcome::CancelRefused {
            detail: "done".into()
        }),
        Just(Outcome::NotYet {
            detail: "settling".into(),
            wait: Duration::from_millis(10)
        }),
        Just(Outcome::Blocked {
            detail: "refused".into()
        }),
    ]
}

/// What can happen to an order between two of its driver's turns.
#[derive(Debug, Clone)]
enum Event {
    /// The outcome of the call `next_action` asked for.
    Outcome(Outcome),
    /// The trader cancels.
    Cancel,
    /// The driver dies; a new claim takes the order over.
    Crash,
    /// An operator resumes a parked order.
    Resume,
}

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        12 => any_outcome().prop_map(Event::Outcome),
        2 => Just(Event::Cancel),
        2 => Just(Event::Crash),
        1 => Just(Event::Resume),
    ]
}

proptest! {
    /// Whatever sequence of outcomes, cancels, crashes and resumes
    /// arrives, applying the valid ones keeps the lifecycle coherent:
    /// never a venue order without a hold, never a release without a
    /// hold, a terminal-looking status only with a matching step, the
    /// next action always fits — and a placement whose intent was ever
    /// recorded is never abandoned, an intent survives no crash as
    /// `Sent`, and a mutating call is made only with its intent on record.
    #[test]
    fn any_schedule_keeps_the_lifecycle_coherent(
        events in proptest::collection::vec(any_event(), 0..60)
    ) {
        let mut l = Lifecycle::accepted_and_reserving();
        let mut ever_sent = false;
        for event in events {
            let before = l.clone();
            match event {
                Event::Cancel => {
                    if let Ok(change) = request_cancel(&l) {
                        l = change.next;
                    }
                }
                Event::Crash => {
                    // A new claim: an intent of the dead driver is unknown.
                    if l.step_state == StepState::Sent {
                        l.step_state = StepState::Unknown;
                    }
                }
                Event::Resume => {
                    if let Ok(change) = resume(&l, "op") {
                        l = change.next;
                    }
                }
                Event::Outcome(outcome) => {
                    // The driver records an intent before a mutating
                    // call if none is on record.
                    if next_action(&l).is_mutating() && l.step_state == StepState::Pending {
                        l = record_intent(&l).next;
                    }
                    if next_action(&l).is_mutating() {
                        prop_assert!(l.step_state != StepState::Pending, "a call without its intent");
                    }
                    if let Ok(change) = transition(&l, outcome, LIMITS) {
                        prop_assert!(!change.events.is_empty());
                        l = change.next;
                    } else {
                        prop_assert_eq!(&l.step, &before.step);
                    }
                }
            }
            ever_sent |= l.placement_sent;
            prop_assert_eq!(l.placement_sent, ever_sent, "placement_sent is never forgotten");
            if next_action(&l) == Action::AbandonPlacement {
                prop_assert!(!ever_sent, "abandoning a placement that may exist");
            }
            if l.venue_order_id.is_some() {
                prop_assert!(l.hold_id.is_some(), "placed without a hold");
            }
            if l.step == Step::Release {
                prop_assert!(l.hold_id.is_some(), "release without a hold");
            }
            if l.step == Step::Parked {
                prop_assert!(l.parked_step.is_some(), "parked without its step");
            }
            if l.status == Status::Rejected {
                prop_assert!(matches!(l.step, Step::Release | Step::Closed | Step::Parked));
            }
            match next_action(&l) {
                Action::CreateHold => prop_assert_eq!(l.step, Step::Reserve),
                Action::PlaceOrder | Action::LookupPlacement => prop_assert_eq!(l.step, Step::Place),
                Action::ReleaseHold { .. } => prop_assert_eq!(l.step, Step::Release),
                Action::AbandonPlacement => prop_assert!(l.cancel_requested),
                Action::CancelAtVenue { .. } => prop_assert_eq!(l.step, Step::Cancel),
                Action::None => prop_assert!(!l.step.is_driven()),
            }
        }
    }
}

//! The transition table: the outcome of a driven step's call applied to the
//! recovery point ([`transition`]), an intent recorded on its own
//! ([`record_intent`]), the trader's cancel ([`request_cancel`]) and an
//! operator's resume ([`resume`]), with the budget that parks an order
//! whose step keeps failing.

use std::time::Duration;

use super::*;

/// The transition table.
pub fn transition(
    current: &Lifecycle,
    outcome: Outcome,
    limits: Limits,
) -> Result<Change, InvalidTransition> {
    let mut change = transition_table(current, outcome, limits)?;
    fold_intent(&mut change);
    debug_assert!(
        change.next.venue_order_id.is_none() || change.next.hold_id.is_some(),
        "placed without a hold"
    );
    debug_assert!(
        change.next.step != Step::Release || change.next.hold_id.is_some(),
        "a release without a hold"
    );
    Ok(change)
}

/// When the next step's call is to be made at once and changes something
/// outside, its intent is recorded in the same write as this outcome (one
/// write fewer than recording it on its own): the step is entered `Sent`,
/// with its `requested` event.
fn fold_intent(change: &mut Change) {
    if change.schedule != Schedule::Now || change.next.step_state != StepState::Pending {
        return;
    }
    if !next_action(&change.next).is_mutating() {
        return;
    }
    change.next.step_state = StepState::Sent;
    if change.next.step == Step::Place {
        change.next.placement_sent = true;
    }
    let step = change.next.step;
    if !change
        .events
        .iter()
        .any(|e| e.step == step && e.state == ActionState::Requested)
    {
        change.events.push(EventRecord {
            step,
            state: ActionState::Requested,
            detail: serde_json::json!({}),
        });
    }
}

/// The intent of the call `next_action` asks for, recorded on its own
/// (the step was `Pending`: after a backoff, or resumed): the step becomes
/// `Sent` with a `requested` event naming the attempt.
pub fn record_intent(current: &Lifecycle) -> Change {
    let mut next = current.clone();
    next.step_state = StepState::Sent;
    if next.step == Step::Place {
        next.placement_sent = true;
    }
    Change {
        events: vec![EventRecord {
            step: current.step,
            state: ActionState::Requested,
            detail: serde_json::json!({ "attempt": current.attempts + 1 }),
        }],
        next,
        schedule: Schedule::Now,
    }
}

fn transition_table(
    current: &Lifecycle,
    outcome: Outcome,
    limits: Limits,
) -> Result<Change, InvalidTransition> {
    use serde_json::json;
    let step = current.step;
    let event = |state: ActionState, detail: serde_json::Value| EventRecord {
        step,
        state,
        detail,
    };
    let mut next = current.clone();

    match (step, outcome) {
        // ── reserve ──────────────────────────────────────────────────────
        (Step::Reserve, Outcome::HoldCreated { hold_id }) if current.cancel_requested => {
            // Canceled while the hold was being made: never place it.
            next.hold_id = Some(hold_id.clone());
            next.attempts = 0;
            next.status = Status::Canceled;
            enter_release(&mut next);
            let mut events = vec![event(ActionState::Succeeded, json!({ "hold_id": hold_id }))];
            events.extend(release_requested(&next));
            Ok(Change {
                next,
                events,
                schedule: Schedule::Now,
            })
        }
        (Step::Reserve, Outcome::HoldCreated { hold_id }) => {
            next.step = Step::Place;
            next.step_state = StepState::Pending;
            next.attempts = 0;
            next.hold_id = Some(hold_id.clone());
            Ok(Change {
                next,
                events: vec![
                    event(ActionState::Succeeded, json!({ "hold_id": hold_id })),
                    EventRecord {
                        step: Step::Place,
                        state: ActionState::Requested,
                        detail: json!({}),
                    },
                ],
                schedule: Schedule::Now,
            })
        }
        (Step::Reserve, Outcome::HoldRejected { reason }) => {
            // Nothing is held, so nothing to release: straight to closed.
            next.step = Step::Closed;
            next.step_state = StepState::Pending;
            next.status = Status::Rejected;
            next.attempts = 0;
            next.reject_reason = Some(reason.clone());
            Ok(Change {
                next,
                events: vec![event(ActionState::Failed, json!({ "reason": reason }))],
                schedule: Schedule::Idle,
            })
        }

        // ── place ────────────────────────────────────────────────────────
        (
            Step::Place,
            Outcome::Placed {
                venue_order_id,
                queued,
            },
        ) => {
            // A cancel that arrived meanwhile is sent now.
            let (step, status, schedule) = if current.cancel_requested {
                (Step::Cancel, Status::PendingCancel, Schedule::Now)
            } else if queued {
                (Step::Working, Status::Accepted, Schedule::Idle)
            } else {
                (Step::Working, Status::New, Schedule::Idle)
            };
            next.step = step;
            next.step_state = StepState::Pending;
            next.status = status;
            next.attempts = 0;
            next.venue_order_id = Some(venue_order_id.clone());
            Ok(Change {
                next,
                events: vec![event(
                    ActionState::Succeeded,
                    json!({ "venue_order_id": venue_order_id }),
                )],
                schedule,
            })
        }
        (Step::Place, Outcome::PlacementAbandoned) if current.cancel_requested => {
            next.status = Status::Canceled;
            next.attempts = 0;
            enter_release(&mut next);
            let mut events = vec![event(
                ActionState::Failed,
                json!({ "reason": "canceled before placement" }),
            )];
            events.extend(release_requested(&next));
            Ok(Change {
                next,
                events,
                schedule: Schedule::Now,
            })
        }
        (Step::Place, Outcome::PlacementNeverReceived) if was_looked_up(current) => {
            next.status = if current.cancel_requested {
                Status::Canceled
            } else {
                Status::Rejected
            };
            next.attempts = 0;
            let reason = if current.cancel_requested {
                "canceled; the venue never received it, and no placement sent can reach it now"
            } else {
                "never reached the venue within the placement grace window"
            };
            next.reject_reason = (!current.cancel_requested).then(|| RejectReason::Venue {
                detail: reason.to_string(),
            });
            enter_release(&mut next);
            let mut events = vec![event(ActionState::Failed, json!({ "reason": reason }))];
            events.extend(release_requested(&next));
            Ok(Change {
                next,
                events,
                schedule: Schedule::Now,
            })
        }
        (Step::Place, Outcome::PlacementRejected { detail }) => {
            next.status = Status::Rejected;
            next.attempts = 0;
            next.reject_reason = Some(RejectReason::Venue {
                detail: detail.clone(),
            });
            enter_release(&mut next);
            let mut events = vec![event(ActionState::Failed, json!({ "reason": detail }))];
            events.extend(release_requested(&next));
            let schedule = if next.step == Step::Closed {
                Schedule::Idle
            } else {
                Schedule::Now
            };
            Ok(Change {
                next,
                events,
                schedule,
            })
        }
        (Step::Place, Outcome::PlacementNotFound { may_resend }) if was_looked_up(current) => {
            // Not at the venue (or not visible yet): sending it again under
            // the same client_order_id is safe, the venue refuses a second
            // order with it. Wait a little first: a stale read says 404 too.
            // A canceled order, or one past its grace window, is looked up
            // again instead of re-sent.
            if !current.cancel_requested && may_resend {
                next.step_state = StepState::Pending;
            }
            next.attempts += 1;
            Ok(budgeted(
                next,
                step,
                limits.max_attempts,
                event(ActionState::Unknown, json!({ "lookup": "not_found" })),
                "the venue does not show the placement",
            ))
        }

        // ── release ──────────────────────────────────────────────────────
        (Step::Release, Outcome::HoldReleased) => {
            next.step = Step::Closed;
            next.step_state = StepState::Pending;
            next.attempts = 0;
            Ok(Change {
                next,
                events: vec![event(ActionState::Succeeded, json!({}))],
                schedule: Schedule::Idle,
            })
        }

        // ── cancel ───────────────────────────────────────────────────────
        (Step::Cancel, Outcome::CancelAccepted) => {
            next.step = Step::Working;
            next.step_state = StepState::Pending;
            next.attempts = 0;
            Ok(Change {
                next,
                events: vec![event(ActionState::Succeeded, json!({}))],
                schedule: Schedule::Idle,
            })
        }
        (Step::Cancel, Outcome::CancelRefused { detail }) => {
            // Already done at the venue: its news (a fill, an expiry) tells
            // the rest; back to waiting for it.
            next.step = Step::Working;
            next.step_state = StepState::Pending;
            next.attempts = 0;
            Ok(Change {
                next,
                events: vec![event(ActionState::Failed, json!({ "reason": detail }))],
                schedule: Schedule::Idle,
            })
        }

        // ── any driven step ──────────────────────────────────────────────
        (
            Step::Reserve | Step::Place | Step::Cancel | Step::Release,
            Outcome::Unknown { detail },
        ) => {
            next.step_state = StepState::Unknown;
            next.attempts += 1;
            Ok(budgeted(
                next,
                step,
                limits.max_attempts,
                event(ActionState::Unknown, json!({ "detail": detail })),
                &detail,
            ))
        }
        (Step::Reserve | Step::Place | Step::Cancel | Step::Release, Outcome::Retry { detail }) => {
            // Known not done: this attempt took no effect. An earlier
            // unknown is still unknown; an intent of ours is spent.
            if next.step_state == StepState::Sent {
                next.step_state = StepState::Pending;
            }
            next.attempts += 1;
            Ok(budgeted(
                next,
                step,
                limits.max_attempts,
                event(
                    ActionState::Failed,
                    json!({ "detail": detail, "retryable": true }),
                ),
                &detail,
            ))
        }
        (
            Step::Reserve | Step::Place | Step::Cancel | Step::Release,
            Outcome::NotYet { detail, wait },
        ) => {
            if next.step_state == StepState::Sent {
                next.step_state = StepState::Pending;
            }
            Ok(Change {
                next,
                events: vec![event(
                    ActionState::Requested,
                    json!({ "deferred": detail, "wait_ms": wait.as_millis() as u64 }),
                )],
                schedule: Schedule::After(wait),
            })
        }
        (
            Step::Reserve | Step::Place | Step::Cancel | Step::Release,
            Outcome::Blocked { detail },
        ) => {
            if next.step_state == StepState::Sent {
                next.step_state = StepState::Pending;
            }
            Ok(park(next, step, &detail))
        }
        (
            Step::Reserve | Step::Place | Step::Cancel | Step::Release,
            Outcome::Unexpected { detail },
        ) => {
            if next.step_state == StepState::Sent {
                // The answer was unreadable: what it did is unknown.
                next.step_state = StepState::Unknown;
            }
            next.attempts += 1;
            Ok(budgeted(
                next,
                step,
                limits.max_unexpected_attempts,
                event(
                    ActionState::Failed,
                    json!({ "detail": detail, "retryable": true }),
                ),
                &detail,
            ))
        }

        (_, outcome) => Err(InvalidTransition {
            step: step.as_str(),
            state: current.step_state.as_str(),
            outcome: format!("{outcome:?}"),
        }),
    }
}

/// A cancel request from the trader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order is already {0}")]
pub struct AlreadyTerminal(pub Status);

/// Records the trader's wish to cancel. Idempotent: asking twice changes
/// nothing the second time. What happens next depends on the step: not yet
/// placed → the placement is abandoned; placed → the venue is asked.
pub fn request_cancel(current: &Lifecycle) -> Result<Change, AlreadyTerminal> {
    if current.status.is_terminal() {
        return Err(AlreadyTerminal(current.status));
    }
    let mut next = current.clone();
    if current.cancel_requested {
        return Ok(Change {
            next,
            events: Vec::new(),
            schedule: Schedule::Idle,
        });
    }
    next.cancel_requested = true;
    next.status = Status::PendingCancel;
    let schedule = match current.step {
        Step::Working => {
            next.step = Step::Cancel;
            next.step_state = StepState::Pending;
            next.attempts = 0;
            Schedule::Now
        }
        // The driver sees the request at its next step: a placement whose
        // intent was ever recorded is looked up, never abandoned
        // (`next_action`).
        Step::Reserve | Step::Place => Schedule::Now,
        Step::Cancel | Step::Release | Step::Closed | Step::Parked => Schedule::Idle,
    };
    Ok(Change {
        next,
        events: vec![EventRecord {
            step: Step::Cancel,
            state: ActionState::Requested,
            detail: serde_json::json!({ "from_step": current.step.as_str() }),
        }],
        schedule,
    })
}

/// Whether the current placement step is resolved by a lookup (so a lookup
/// result applies to it).
fn was_looked_up(current: &Lifecycle) -> bool {
    current.step_state == StepState::Unknown || (current.cancel_requested && current.placement_sent)
}

/// A failed attempt: retried after a backoff while the step's budget
/// lasts, parked once it is spent.
fn budgeted(
    next: Lifecycle,
    step: Step,
    budget: u32,
    event: EventRecord,
    last_error: &str,
) -> Change {
    if next.attempts >= budget {
        return park(next, step, last_error);
    }
    let attempts = next.attempts;
    Change {
        next,
        events: vec![event],
        schedule: Schedule::Backoff { attempts },
    }
}

/// Stops driving the order: an operator must look. The step it was at is
/// kept (`parked_step`) for `resume`, and so is what is known of its call.
fn park(mut next: Lifecycle, step: Step, last_error: &str) -> Change {
    next.step = Step::Parked;
    next.parked_step = Some(step);
    Change {
        events: vec![EventRecord {
            step,
            state: ActionState::Failed,
            detail: serde_json::json!({
                "parked_at_step": step.as_str(),
                "attempts": next.attempts,
                "last_error": last_error,
            }),
        }],
        next,
        schedule: Schedule::Idle,
    }
}

/// The order is not parked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order is not parked (it is at step {0})")]
pub struct NotParked(pub Step);

/// An operator resumes a parked order: back to the step it was parked at,
/// with a fresh budget, due now. What was known of the step's call stays
/// (an unknown outcome is still resolved by evidence).
pub fn resume(current: &Lifecycle, operator: &str) -> Result<Change, NotParked> {
    let (Step::Parked, Some(step)) = (current.step, current.parked_step) else {
        return Err(NotParked(current.step));
    };
    let mut next = current.clone();
    next.step = step;
    next.parked_step = None;
    next.attempts = 0;
    if next.step_state == StepState::Sent {
        next.step_state = StepState::Unknown;
    }
    Ok(Change {
        next,
        events: vec![EventRecord {
            step,
            state: ActionState::Requested,
            detail: serde_json::json!({ "resumed_by": operator }),
        }],
        schedule: Schedule::Now,
    })
}

/// Moves to Release when a hold exists, else straight to Closed.
pub(super) fn enter_release(next: &mut Lifecycle) {
    next.step_state = StepState::Pending;
    next.step = if next.hold_id.is_some() {
        Step::Release
    } else {
        Step::Closed
    };
}

pub(super) fn release_requested(next: &Lifecycle) -> Option<EventRecord> {
    (next.step == Step::Release).then(|| EventRecord {
        step: Step::Release,
        state: ActionState::Requested,
        detail: serde_json::json!({ "hold_id": next.hold_id }),
    })
}

/// Capped exponential backoff with jitter: `base · 2^(attempts-1)`, capped
/// at `cap`, then a uniformly random point in its upper half (`jitter` in
/// [0, 1)), so retries after an outage spread out instead of arriving
/// together.
pub fn backoff(attempts: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(20);
    let raw = base.saturating_mul(1u32 << exponent).min(cap);
    let jitter = jitter.clamp(0.0, 1.0);
    raw.mul_f64(0.5 + 0.5 * jitter)
}

//! The order's lifecycle as one transition table.
//!
//! Two things are tracked separately:
//! - [`Status`], what the trader sees (Alpaca's vocabulary), a projection;
//! - [`Step`] with [`StepState`], the recovery point: which external call is
//!   next, and whether the last one's outcome is unknown.
//!
//! [`next_action`] says what to do from a recovery point; [`transition`]
//! takes the outcome of doing it and returns the new recovery point and the
//! event to record. Both are pure: the caller does the I/O and commits the
//! result in one transaction. An outcome that does not fit the current step
//! is an [`InvalidTransition`], never silently absorbed.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The trader-visible status (Alpaca's order statuses that orderd uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    PendingNew,
    New,
    PartiallyFilled,
    Filled,
    PendingCancel,
    Canceled,
    Expired,
    Rejected,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::PendingNew,
        Status::New,
        Status::PartiallyFilled,
        Status::Filled,
        Status::PendingCancel,
        Status::Canceled,
        Status::Expired,
        Status::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingNew => "pending_new",
            Status::New => "new",
            Status::PartiallyFilled => "partially_filled",
            Status::Filled => "filled",
            Status::PendingCancel => "pending_cancel",
            Status::Canceled => "canceled",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// No further fills or status changes are expected from the venue.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Filled | Status::Canceled | Status::Expired | Status::Rejected
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The recovery point: which step runs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Create the hold at the balances service.
    Reserve,
    /// Place the order at the venue.
    Place,
    /// Placed; the venue drives it (fills, cancels, expiry arrive by stream
    /// or by polling).
    Working,
    /// Release what is left of the hold.
    Release,
    /// Nothing left to do.
    Closed,
    /// Stopped after repeated failures that retrying cannot fix; an
    /// operator must look.
    Parked,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Reserve,
        Step::Place,
        Step::Working,
        Step::Release,
        Step::Closed,
        Step::Parked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Reserve => "reserve",
            Step::Place => "place",
            Step::Working => "working",
            Step::Release => "release",
            Step::Closed => "closed",
            Step::Parked => "parked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Steps that orderd itself must drive (the completer's work).
    pub fn is_driven(self) -> bool {
        matches!(self, Step::Reserve | Step::Place | Step::Release)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the step's call is still to be made, or was made with an
/// outcome nobody knows yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Unknown,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(StepState::Pending),
            "unknown" => Some(StepState::Unknown),
            _ => None,
        }
    }
}

/// The recorded action states of a step (DESIGN §1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    Requested,
    Succeeded,
    Failed,
    Unknown,
}

impl ActionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Requested => "requested",
            ActionState::Succeeded => "succeeded",
            ActionState::Failed => "failed",
            ActionState::Unknown => "unknown",
        }
    }
}

/// Why an order was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RejectReason {
    /// The balances service refused the hold: not enough cash or shares.
    InsufficientFunds { available: Option<String> },
    /// The balances service refused the hold for another reason.
    HoldRefused { detail: String },
    /// The venue rejected the order.
    Venue { detail: String },
}

impl RejectReason {
    pub fn describe(&self) -> String {
        match self {
            RejectReason::InsufficientFunds { .. } => "insufficient funds".to_string(),
            RejectReason::HoldRefused { detail } => format!("hold refused: {detail}"),
            RejectReason::Venue { detail } => format!("rejected by the venue: {detail}"),
        }
    }
}

/// The part of an order the lifecycle decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub status: Status,
    pub step: Step,
    pub step_state: StepState,
    /// Failed or unknown attempts of the current step.
    pub attempts: u32,
    pub hold_id: Option<String>,
    pub venue_order_id: Option<String>,
    pub reject_reason: Option<RejectReason>,
}

impl Lifecycle {
    /// A just-accepted order: the next step is the hold.
    pub fn accepted() -> Self {
        Self {
            status: Status::PendingNew,
            step: Step::Reserve,
            step_state: StepState::Pending,
            attempts: 0,
            hold_id: None,
            venue_order_id: None,
            reject_reason: None,
        }
    }
}

/// The external call to make next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create (or, with the same key, re-send to learn the outcome of) the
    /// hold.
    CreateHold,
    /// Send the order to the venue under its derived client_order_id.
    PlaceOrder,
    /// Look the order up at the venue by client_order_id.
    LookupPlacement,
    /// Release the rest of the hold.
    ReleaseHold { hold_id: String },
    /// Nothing for orderd to do now.
    None,
}

/// What is next from `lifecycle`.
pub fn next_action(lifecycle: &Lifecycle) -> Action {
    match (lifecycle.step, lifecycle.step_state) {
        // Re-sending the same keyed request is how an unknown hold outcome
        // is resolved: the service replays what it did.
        (Step::Reserve, _) => Action::CreateHold,
        (Step::Place, StepState::Pending) => Action::PlaceOrder,
        // The placement may or may not exist: evidence first.
        (Step::Place, StepState::Unknown) => Action::LookupPlacement,
        (Step::Release, _) => match &lifecycle.hold_id {
            Some(hold_id) => Action::ReleaseHold {
                hold_id: hold_id.clone(),
            },
            // transition() never enters Release without a hold.
            None => Action::None,
        },
        (Step::Working | Step::Closed | Step::Parked, _) => Action::None,
    }
}

/// The outcome of the call [`next_action`] asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    HoldCreated {
        hold_id: String,
    },
    HoldRejected {
        reason: RejectReason,
    },
    Placed {
        venue_order_id: String,
    },
    PlacementRejected {
        detail: String,
    },
    /// The venue does not know the client_order_id (yet): send it (again).
    PlacementNotFound,
    HoldReleased,
    /// Timeout, 5xx, reset, or a duplicate-id answer that proves nothing:
    /// the call may or may not have taken effect.
    Unknown {
        detail: String,
    },
    /// Known not to have taken effect (429, request in flight): try later.
    Retry {
        detail: String,
    },
    /// An answer orderd cannot interpret; counts towards parking.
    Unexpected {
        detail: String,
    },
}

/// When to run the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Go on at once.
    Now,
    /// Wait `backoff(attempts)` first.
    Backoff { attempts: u32 },
    /// Orderd has nothing to drive (working, closed, parked).
    Idle,
}

/// The event to append for a transition.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub step: Step,
    pub state: ActionState,
    pub detail: serde_json::Value,
}

/// The result of applying an outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub next: Lifecycle,
    pub events: Vec<EventRecord>,
    pub schedule: Schedule,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outcome {outcome} does not apply to an order at step {step} ({state})")]
pub struct InvalidTransition {
    pub step: &'static str,
    pub state: &'static str,
    pub outcome: String,
}

/// Limits the transition table needs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Unexpected answers tolerated before the order is parked.
    pub max_unexpected_attempts: u32,
}

/// The transition table.
pub fn transition(
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
        (Step::Place, Outcome::Placed { venue_order_id }) => {
            next.step = Step::Working;
            next.step_state = StepState::Pending;
            next.status = Status::New;
            next.attempts = 0;
            next.venue_order_id = Some(venue_order_id.clone());
            Ok(Change {
                next,
                events: vec![event(
                    ActionState::Succeeded,
                    json!({ "venue_order_id": venue_order_id }),
                )],
                schedule: Schedule::Idle,
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
        (Step::Place, Outcome::PlacementNotFound) if current.step_state == StepState::Unknown => {
            // Not at the venue (or not visible yet): sending it again under
            // the same client_order_id is safe, the venue refuses a second
            // order with it. Wait a little first: a stale read says 404 too.
            next.step_state = StepState::Pending;
            next.attempts += 1;
            Ok(Change {
                next,
                events: vec![event(
                    ActionState::Unknown,
                    json!({ "lookup": "not_found" }),
                )],
                schedule: Schedule::Backoff {
                    attempts: current.attempts + 1,
                },
            })
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

        // ── any driven step ──────────────────────────────────────────────
        (Step::Reserve | Step::Place | Step::Release, Outcome::Unknown { detail }) => {
            next.step_state = StepState::Unknown;
            next.attempts += 1;
            Ok(Change {
                next,
                events: vec![event(ActionState::Unknown, json!({ "detail": detail }))],
                schedule: Schedule::Backoff {
                    attempts: current.attempts + 1,
                },
            })
        }
        (Step::Reserve | Step::Place | Step::Release, Outcome::Retry { detail }) => {
            // Known not done: the step state stays what it was (an earlier
            // unknown is still unknown).
            next.attempts += 1;
            Ok(Change {
                next,
                events: vec![event(
                    ActionState::Failed,
                    json!({ "detail": detail, "retryable": true }),
                )],
                schedule: Schedule::Backoff {
                    attempts: current.attempts + 1,
                },
            })
        }
        (Step::Reserve | Step::Place | Step::Release, Outcome::Unexpected { detail }) => {
            next.attempts += 1;
            if next.attempts >= limits.max_unexpected_attempts {
                next.step = Step::Parked;
                Ok(Change {
                    next,
                    events: vec![event(
                        ActionState::Failed,
                        json!({ "detail": detail, "parked_at_step": step.as_str() }),
                    )],
                    schedule: Schedule::Idle,
                })
            } else {
                Ok(Change {
                    next,
                    events: vec![event(
                        ActionState::Failed,
                        json!({ "detail": detail, "retryable": true }),
                    )],
                    schedule: Schedule::Backoff {
                        attempts: current.attempts + 1,
                    },
                })
            }
        }

        (_, outcome) => Err(InvalidTransition {
            step: step.as_str(),
            state: current.step_state.as_str(),
            outcome: format!("{outcome:?}"),
        }),
    }
}

/// Moves to Release when a hold exists, else straight to Closed.
fn enter_release(next: &mut Lifecycle) {
    next.step_state = StepState::Pending;
    next.step = if next.hold_id.is_some() {
        Step::Release
    } else {
        Step::Closed
    };
}

fn release_requested(next: &Lifecycle) -> Option<EventRecord> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
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
        let missing = apply(&unknown.next, Outcome::PlacementNotFound);
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
    fn unknown_outcomes_are_never_parked() {
        let mut l = Lifecycle::accepted();
        for _ in 0..100 {
            l = apply(
                &l,
                Outcome::Unknown {
                    detail: "5xx".into(),
                },
            )
            .next;
        }
        assert_eq!(
            l.step,
            Step::Reserve,
            "an unknown is resolved, never given up"
        );
    }

    #[test]
    fn outcomes_that_do_not_fit_the_step_are_errors() {
        let l = Lifecycle::accepted();
        assert!(
            transition(
                &l,
                Outcome::Placed {
                    venue_order_id: "v".into()
                },
                LIMITS
            )
            .is_err()
        );
        assert!(transition(&l, Outcome::HoldReleased, LIMITS).is_err());
        // A lookup result only answers an unknown placement.
        let mut placing = l.clone();
        placing.step = Step::Place;
        assert!(transition(&placing, Outcome::PlacementNotFound, LIMITS).is_err());
        let mut working = l;
        working.step = Step::Working;
        assert!(transition(&working, Outcome::Unknown { detail: "x".into() }, LIMITS).is_err());
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
                venue_order_id: "v".into()
            }),
            Just(Outcome::PlacementRejected { detail: "r".into() }),
            Just(Outcome::PlacementNotFound),
            Just(Outcome::HoldReleased),
            Just(Outcome::Unknown { detail: "u".into() }),
            Just(Outcome::Retry { detail: "r".into() }),
            Just(Outcome::Unexpected { detail: "x".into() }),
        ]
    }

    proptest! {
        /// Whatever sequence of outcomes arrives, applying the valid ones
        /// keeps the lifecycle coherent: never a venue order without a
        /// hold, never a release without a hold, a terminal-looking status
        /// only with a matching step, and the next action always fits.
        #[test]
        fn any_outcome_sequence_keeps_the_lifecycle_coherent(
            outcomes in proptest::collection::vec(any_outcome(), 0..40)
        ) {
            let mut l = Lifecycle::accepted();
            for outcome in outcomes {
                let before = l.clone();
                if let Ok(change) = transition(&l, outcome, LIMITS) {
                    l = change.next;
                    prop_assert!(!change.events.is_empty());
                } else {
                    prop_assert_eq!(&l, &before);
                }
                if l.venue_order_id.is_some() {
                    prop_assert!(l.hold_id.is_some(), "placed without a hold");
                }
                if l.step == Step::Release {
                    prop_assert!(l.hold_id.is_some(), "release without a hold");
                }
                if l.status == Status::Rejected {
                    prop_assert!(matches!(l.step, Step::Release | Step::Closed | Step::Parked));
                }
                match next_action(&l) {
                    Action::CreateHold => prop_assert_eq!(l.step, Step::Reserve),
                    Action::PlaceOrder | Action::LookupPlacement => prop_assert_eq!(l.step, Step::Place),
                    Action::ReleaseHold { .. } => prop_assert_eq!(l.step, Step::Release),
                    Action::None => prop_assert!(!l.step.is_driven()),
                }
            }
        }
    }
}

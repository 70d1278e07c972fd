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

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ids::{HoldId, VenueOrderId};

text_enum! {
    /// The trader-visible status (Alpaca's order statuses that orderd uses).
    pub enum Status as "status" {
        PendingNew => "pending_new",
        /// The venue has it but does not work it yet (entered outside the
        /// session, or waiting for its auction).
        Accepted => "accepted",
        New => "new",
        PartiallyFilled => "partially_filled",
        Filled => "filled",
        PendingCancel => "pending_cancel",
        Canceled => "canceled",
        Expired => "expired",
        Rejected => "rejected",
    }
}

impl Status {
    /// The statuses after which the trader's view no longer changes: the
    /// one list of them (SQL binds or renders it from here).
    pub const TERMINAL: &'static [Status] = &[
        Status::Filled,
        Status::Canceled,
        Status::Expired,
        Status::Rejected,
    ];

    /// Terminal statuses after which the venue may still report a fill
    /// (one that raced the cancel or the expiry).
    pub const LATE_FILLS_POSSIBLE: &'static [Status] = &[Status::Canceled, Status::Expired];

    /// No further fills or status changes are expected from the venue.
    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }
}

text_enum! {
    /// The recovery point: which step runs next.
    pub enum Step as "step" {
        /// Create the hold at the balances service.
        Reserve => "reserve",
        /// Place the order at the venue.
        Place => "place",
        /// Placed; the venue drives it (fills, cancels, expiry arrive by
        /// stream or by polling).
        Working => "working",
        /// Ask the venue to cancel; the outcome arrives as venue news.
        Cancel => "cancel",
        /// Release what is left of the hold.
        Release => "release",
        /// Nothing left to do.
        Closed => "closed",
        /// Stopped after repeated failures that retrying cannot fix; an
        /// operator must look.
        Parked => "parked",
    }
}

impl Step {
    /// Past acceptance and placement: what `POST /v2/orders` answers with
    /// is known (placed, rejected, or ended before reaching the venue).
    pub fn answers_trader(self) -> bool {
        !matches!(self, Step::Reserve | Step::Place)
    }

    /// The steps orderd itself must drive (the completer's work): the one
    /// list of them (SQL binds or renders it from here).
    pub const DRIVEN: &'static [Step] = &[Step::Reserve, Step::Place, Step::Cancel, Step::Release];

    /// The steps of an order the venue works (what a stream gap catches up).
    pub const AT_VENUE: &'static [Step] = &[Step::Working, Step::Cancel];

    /// Steps that orderd itself must drive (the completer's work).
    pub fn is_driven(self) -> bool {
        Self::DRIVEN.contains(&self)
    }
}

text_enum! {
    /// Where the step's external call stands: the recovery point's half
    /// that says what a crash leaves behind.
    pub enum StepState as "step_state" {
        /// No call is on record since the last evidence: the intent must
        /// be recorded before one is made.
        Pending => "pending",
        /// The intent is recorded by the driver holding the current claim,
        /// which makes the call next (it may already have left). A new
        /// claim turns it into `Unknown` (`store::recovery`).
        Sent => "sent",
        /// A call was made (or may have been) and its outcome is not
        /// known: only evidence resolves it.
        Unknown => "unknown",
    }
}

text_enum! {
    /// The recorded action states of a step: every step records each
    /// state it passes through on the order's timeline.
    pub enum ActionState as "state" {
        Requested => "requested",
        Succeeded => "succeeded",
        Failed => "failed",
        Unknown => "unknown",
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
    pub hold_id: Option<HoldId>,
    pub venue_order_id: Option<VenueOrderId>,
    pub reject_reason: Option<RejectReason>,
    /// The trader asked to cancel.
    pub cancel_requested: bool,
    /// The intent to place this order was recorded at some point: the
    /// venue may have it, so it is never abandoned, only looked up.
    pub placement_sent: bool,
    /// While parked: the step to resume at.
    pub parked_step: Option<Step>,
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
            cancel_requested: false,
            placement_sent: false,
            parked_step: None,
        }
    }

    /// A just-accepted order whose first call (the hold) is about to be
    /// made by the driver that accepted it: its intent is in the accept.
    pub fn accepted_and_reserving() -> Self {
        Self {
            step_state: StepState::Sent,
            ..Self::accepted()
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
    ReleaseHold { hold_id: HoldId },
    /// Canceled before it was sent: give up the placement (no call).
    AbandonPlacement,
    /// Ask the venue to cancel the order.
    CancelAtVenue { venue_order_id: VenueOrderId },
    /// Nothing for orderd to do now.
    None,
}

impl Action {
    /// Whether the call can change something outside orderd: its intent
    /// is recorded before it is made. Reads (a look-up) and no-calls are
    /// not.
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Action::CreateHold
                | Action::PlaceOrder
                | Action::ReleaseHold { .. }
                | Action::CancelAtVenue { .. }
        )
    }
}

/// What is next from `lifecycle`.
pub fn next_action(lifecycle: &Lifecycle) -> Action {
    match (lifecycle.step, lifecycle.step_state) {
        // Re-sending the same keyed request is how an unknown hold outcome
        // is resolved: the service replays what it did.
        (Step::Reserve, _) => Action::CreateHold,
        // Canceled before its placement was ever intended: it never will be.
        (Step::Place, StepState::Pending | StepState::Sent)
            if lifecycle.cancel_requested && !lifecycle.placement_sent =>
        {
            Action::AbandonPlacement
        }
        // Canceled once a placement may have left (its intent is on
        // record, whatever became of it): evidence first, never an
        // assumption (found by the schedule explorer: a crash right after
        // the send, then a cancel, abandoned an order the venue filled).
        (Step::Place, StepState::Pending | StepState::Sent) if lifecycle.cancel_requested => {
            Action::LookupPlacement
        }
        (Step::Place, StepState::Pending | StepState::Sent) => Action::PlaceOrder,
        // The placement may or may not exist: evidence first.
        (Step::Place, StepState::Unknown) => Action::LookupPlacement,
        (Step::Release, _) => match &lifecycle.hold_id {
            Some(hold_id) => Action::ReleaseHold {
                hold_id: hold_id.clone(),
            },
            // transition() never enters Release without a hold.
            None => Action::None,
        },
        (Step::Cancel, _) => match &lifecycle.venue_order_id {
            Some(venue_order_id) => Action::CancelAtVenue {
                venue_order_id: venue_order_id.clone(),
            },
            None => Action::None,
        },
        (Step::Working | Step::Closed | Step::Parked, _) => Action::None,
    }
}

/// The outcome of the call [`next_action`] asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    HoldCreated {
        hold_id: HoldId,
    },
    HoldRejected {
        reason: RejectReason,
    },
    Placed {
        venue_order_id: VenueOrderId,
        /// The venue holds it without working it yet (`accepted`: entered
        /// outside the session, or waiting for its auction).
        queued: bool,
    },
    PlacementRejected {
        detail: String,
    },
    /// The venue does not know the client_order_id (yet): send it again
    /// when `may_resend` (within the placement grace window), else — and
    /// always once canceled — look again later.
    PlacementNotFound {
        may_resend: bool,
    },
    /// The venue does not know it, and no placement sent can reach it any
    /// more (the last one's receive window has passed): it never arrived.
    /// A canceled order ends canceled; one past the placement grace window
    /// ends rejected rather than be sent late.
    PlacementNeverReceived,
    HoldReleased,
    /// The placement was given up before being sent.
    PlacementAbandoned,
    /// The venue took the cancel request; its outcome comes as venue news.
    CancelAccepted,
    /// The venue refused the cancel (the order is already done there).
    CancelRefused {
        detail: String,
    },
    /// Timeout, 5xx, reset, or a duplicate-id answer that proves nothing:
    /// the call may or may not have taken effect.
    Unknown {
        detail: String,
    },
    /// Known not to have taken effect (429, request in flight): try later.
    Retry {
        detail: String,
    },
    /// The call is not to be made yet (a release waits for its fills to
    /// settle, or for late fills to have had their window): no attempt,
    /// nothing spent of the budget; try again after `wait`.
    NotYet {
        detail: String,
        wait: Duration,
    },
    /// The step must not go on (a settlement the ledger refused blocks the
    /// release): park the order for an operator at once.
    Blocked {
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
    /// Wait exactly this long (a deferral, not a failure).
    After(Duration),
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
    /// Attempts of one step (unknown outcomes, refusals to retry, lookups
    /// that find nothing) before the order is parked for an operator with
    /// the step and the last error on its timeline. An unknown outcome is
    /// still unknown when parked: resuming resolves it by evidence.
    pub max_attempts: u32,
    /// Unexpected answers tolerated before the order is parked.
    pub max_unexpected_attempts: u32,
}

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

text_enum! {
    /// The venue's order status vocabulary.
    pub enum VenueStatus as "venue status" {
        Accepted => "accepted",
        New => "new",
        PartiallyFilled => "partially_filled",
        Filled => "filled",
        PendingCancel => "pending_cancel",
        Canceled => "canceled",
        Expired => "expired",
        Rejected => "rejected",
    }
}

impl VenueStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            VenueStatus::Filled
                | VenueStatus::Canceled
                | VenueStatus::Expired
                | VenueStatus::Rejected
        )
    }
}

/// What the venue last said about an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VenueNews {
    pub status: VenueStatus,
    /// The venue's cumulative filled quantity (the largest seen).
    pub cum_qty: rust_decimal::Decimal,
}

/// The order after venue news.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub next: Lifecycle,
    pub events: Vec<EventRecord>,
    /// The venue counts more filled shares than orderd has fills for: a
    /// report was lost; fetch the fills.
    pub missing_fills: bool,
    /// The order just became terminal and its hold must be released.
    pub release_now: bool,
}

impl Projection {
    /// News that changes nothing orderd acts on: the venue acknowledging,
    /// again, an order orderd already knows is placed. Not worth a write
    /// (one write per order fewer); the row keeps the last venue status
    /// that mattered. `recorded_cum_qty` is the venue's cumulative quantity
    /// as last recorded; `new_fill` whether the news brought a fill not
    /// recorded before.
    pub fn changes_nothing(
        &self,
        current: &Lifecycle,
        news: VenueNews,
        recorded_cum_qty: rust_decimal::Decimal,
        new_fill: bool,
    ) -> bool {
        !new_fill
            && self.events.is_empty()
            && self.next == *current
            && !self.release_now
            && !self.missing_fills
            && news.cum_qty == recorded_cum_qty
            && current.venue_order_id.is_some()
            && !news.status.is_terminal()
    }
}

/// Projects an order's status and step from venue news. `filled_qty` is the
/// fold of every fill orderd has recorded for it (including any that came
/// with this news), `qty` the order's size. Pure and order-independent
/// enough that stale or repeated news never moves an order backwards:
/// filled quantity comes from the fills, and a terminal status is final.
pub fn on_venue_news(
    current: &Lifecycle,
    qty: rust_decimal::Decimal,
    filled_qty: rust_decimal::Decimal,
    news: VenueNews,
) -> Projection {
    debug_assert!(
        filled_qty <= qty,
        "the fold is checked before it is projected: {filled_qty} > {qty}"
    );
    let mut next = current.clone();
    let missing_fills = news.cum_qty > filled_qty;
    let unchanged = |next: Lifecycle| Projection {
        next,
        events: Vec::new(),
        missing_fills,
        release_now: false,
    };
    // A fill after the end (a fill racing a cancel, reported late) is
    // recorded and settled, but the order's outcome stays what it was.
    if current.status.is_terminal() {
        return unchanged(next);
    }
    // News of an order we never got to placing cannot be ours to act on.
    if current.step == Step::Reserve {
        return unchanged(next);
    }
    let complete = filled_qty >= qty;
    // The venue's terminal word decides the outcome once orderd has every
    // fill it counts: an order canceled after a late fill completed it is
    // still canceled there, and so here (found by `orderd chaos`).
    let status = if news.status.is_terminal() && !missing_fills {
        match news.status {
            VenueStatus::Canceled => Status::Canceled,
            VenueStatus::Expired => Status::Expired,
            VenueStatus::Rejected => Status::Rejected,
            _ if complete => Status::Filled,
            // "filled" with fewer shares than ordered cannot be complete
            // without missing fills; treat as still working.
            _ if filled_qty > rust_decimal::Decimal::ZERO => Status::PartiallyFilled,
            _ => Status::New,
        }
    } else if complete {
        Status::Filled
    } else if current.cancel_requested {
        Status::PendingCancel
    } else if filled_qty > rust_decimal::Decimal::ZERO {
        Status::PartiallyFilled
    } else if news.status == VenueStatus::Accepted
        && matches!(current.status, Status::PendingNew | Status::Accepted)
    {
        // Held, not worked yet; an `accepted` report that arrives after
        // `new` (out of order) does not move the order back.
        Status::Accepted
    } else {
        Status::New
    };
    next.status = status;
    let mut events = Vec::new();
    let mut release_now = false;
    if status.is_terminal() {
        if matches!(current.step, Step::Place | Step::Working | Step::Cancel) {
            next.attempts = 0;
            enter_release(&mut next);
            release_now = next.step == Step::Release;
        }
        if status == Status::Rejected {
            next.reject_reason = Some(RejectReason::Venue {
                detail: "rejected by the venue".to_string(),
            });
        }
    } else if current.step == Step::Place {
        // News about it is proof it was placed.
        next.step = if current.cancel_requested {
            Step::Cancel
        } else {
            Step::Working
        };
        next.step_state = StepState::Pending;
        next.attempts = 0;
    }
    if next.status != current.status || next.step != current.step {
        events.push(EventRecord {
            step: Step::Working,
            state: ActionState::Succeeded,
            detail: serde_json::json!({
                "venue_status": news.status.as_str(),
                "status": status.as_str(),
            }),
        });
    }
    events.extend(release_requested(&next).filter(|_| release_now));
    Projection {
        next,
        events,
        missing_fills,
        release_now,
    }
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
}

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
        /// Its replacement is on its way to the venue (PATCH
        /// /v2/orders/{id}); it works on meanwhile.
        PendingReplace => "pending_replace",
        Canceled => "canceled",
        Expired => "expired",
        Rejected => "rejected",
        /// The venue replaced it with its replacement (`replaced_by`),
        /// atomically: it executes no more.
        Replaced => "replaced",
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
        Status::Replaced,
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
    /// A replacement of this order is on its way to the venue: it shows
    /// `pending_replace` while it works on.
    pub replace_pending: bool,
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
            replace_pending: false,
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

mod transition;
mod venue_news;

pub use transition::{
    AlreadyTerminal, NotParked, backoff, record_intent, request_cancel, resume, transition,
};
pub use venue_news::{Projection, VenueNews, VenueStatus, on_venue_news};

#[cfg(test)]
mod tests;

//! Venue news: what the venue last said about an order (its status and
//! cumulative quantity), projected onto the order ([`on_venue_news`]):
//! the trader's status, the fills orderd still lacks, and when the rest of
//! the hold may be released.

use super::transition::{enter_release, release_requested};
use super::*;

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
        /// Replaced by a cancel/replace request: terminal, it executes
        /// no more (what it filled is carried into its replacement).
        Replaced => "replaced",
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
                | VenueStatus::Replaced
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
            VenueStatus::Replaced => Status::Replaced,
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
    } else if current.replace_pending {
        Status::PendingReplace
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

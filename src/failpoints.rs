//! Crash failpoints for tests: `ORDERD_FAILPOINTS=name[,name...]` makes the
//! process kill itself with SIGKILL the first time it reaches a named
//! point, so crash tests and the schedule explorer can stop orderd exactly
//! before and after each external call and between each commit and what
//! follows it. Unset (always, outside tests), a failpoint costs one load of
//! an initialised `OnceLock`.

use std::sync::OnceLock;

use crate::domain::lifecycle::Step;

/// Environment variable naming the armed failpoints.
pub const FAILPOINTS_VAR: &str = "ORDERD_FAILPOINTS";

/// The order, its first event and its hold's intent are committed; the
/// hold is not asked for yet.
pub const AFTER_ACCEPT_COMMIT: &str = "after_accept_commit";
/// The trader's cancel is committed; nobody has acted on it.
pub const AFTER_CANCEL_REQUEST_COMMIT: &str = "after_cancel_request_commit";
/// A close-all with `cancel_orders`: the cancels are committed and their
/// shares free again; no closing sell is submitted yet.
pub const AFTER_CLOSE_ALL_CANCELS: &str = "after_close_all_cancels";
/// A fill is committed; its settlement is not sent.
pub const AFTER_FILL_APPLIED: &str = "after_fill_applied";
/// A settlement's claim (its intent) is committed; it is not sent.
pub const BEFORE_SETTLE_CALL: &str = "before_settle_call";
/// The ledger answered a settlement; the answer is not recorded.
pub const AFTER_SETTLE_CALL: &str = "after_settle_call";
/// A settlement's outcome is committed.
pub const AFTER_SETTLE_RECORDED: &str = "after_settle_recorded";

/// Names kept from before the generic points (the crash tests use them):
/// the hold was created, the placement sent, the release sent; their
/// outcomes not recorded.
pub const AFTER_HOLD_CREATED: &str = "after_hold_created";
pub const AFTER_PLACE_SENT: &str = "after_place_sent";
pub const AFTER_RELEASE_SENT: &str = "after_release_sent";

/// Where in a driven step's external call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPoint {
    /// The intent is recorded; the call is not made.
    Before,
    /// The call returned; its outcome is not recorded.
    After,
    /// The outcome (and any folded next intent) is committed.
    Recorded,
}

/// The failpoint of `step`'s call at `point`, e.g. `before_place_call`.
pub fn call_point(step: Step, point: CallPoint) -> Option<&'static str> {
    use CallPoint::*;
    Some(match (step, point) {
        (Step::Reserve, Before) => "before_reserve_call",
        (Step::Reserve, After) => "after_reserve_call",
        (Step::Reserve, Recorded) => "after_reserve_recorded",
        (Step::Place, Before) => "before_place_call",
        (Step::Place, After) => "after_place_call",
        (Step::Place, Recorded) => "after_place_recorded",
        (Step::Cancel, Before) => "before_cancel_call",
        (Step::Cancel, After) => "after_cancel_call",
        (Step::Cancel, Recorded) => "after_cancel_recorded",
        (Step::Release, Before) => "before_release_call",
        (Step::Release, After) => "after_release_call",
        (Step::Release, Recorded) => "after_release_recorded",
        _ => return None,
    })
}

/// Every crash point the schedule explorer arms, with what is durable when
/// it fires.
pub fn all() -> Vec<(&'static str, &'static str)> {
    let mut points = vec![(
        AFTER_ACCEPT_COMMIT,
        "order and hold intent committed; hold not asked for",
    )];
    for step in [Step::Reserve, Step::Place, Step::Cancel, Step::Release] {
        for (point, what) in [
            (CallPoint::Before, "intent committed; call not made"),
            (CallPoint::After, "call answered; outcome not recorded"),
            (CallPoint::Recorded, "outcome committed; nothing after it"),
        ] {
            if let Some(name) = call_point(step, point) {
                points.push((name, what));
            }
        }
        if step == Step::Place {
            points.push((
                AFTER_CANCEL_REQUEST_COMMIT,
                "the trader's cancel committed; nobody acted on it",
            ));
        }
    }
    points.extend([
        (
            AFTER_FILL_APPLIED,
            "a fill committed; its settlement not sent",
        ),
        (
            BEFORE_SETTLE_CALL,
            "settlement claimed (its intent); not sent",
        ),
        (
            AFTER_SETTLE_CALL,
            "settlement answered; outcome not recorded",
        ),
        (AFTER_SETTLE_RECORDED, "settlement outcome committed"),
    ]);
    points
}

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var(FAILPOINTS_VAR)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Dies with SIGKILL if `name` is armed.
pub fn hit(name: &str) {
    let armed = armed();
    if !armed.is_empty() && armed.iter().any(|armed| armed == name) {
        eprintln!("failpoint {name}: killing this process with SIGKILL");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Dies with SIGKILL if the failpoint of `step`'s call at `point` is armed.
pub fn hit_call(step: Step, point: CallPoint) {
    if let Some(name) = call_point(step, point) {
        hit(name);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_point_has_a_distinct_name() {
        let points = super::all();
        let mut names: Vec<&str> = points.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), points.len());
        assert_eq!(points.len(), 18);
    }
}

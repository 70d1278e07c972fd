//! The schedule explorer (`orderd chaos --explore`): instead of random
//! faults, every combination of
//!
//! - a **crash point** — orderd killed with SIGKILL before and after each
//!   external call and between each commit and what follows it
//!   (`failpoints::all`);
//! - a **racing actor** right after the restart — none, the trader's
//!   cancel (racing the recovery, or recorded before it starts), the
//!   trader's retry with the same Idempotency-Key, the same
//!   with the same `client_order_id` and no key, a second orderd instance,
//!   a venue stream disconnect, a reconciliation tick, SIGKILL of the
//!   embedded PostgreSQL postmaster;
//! - a **venue behaviour** — fills at once, fills in parts, fills a
//!   fractional quantity in parts, fills a notional buy in parts, rests (a
//!   far limit), rejects, acknowledges a cancel late, or rests and is
//!   replaced by the trader (`PATCH`) with an order that needs more hold
//!   or less, or with a marketable one the venue fills in parts (the
//!   original unfilled, or partly filled and carried into it) — the crash
//!   then hits the replacement's steps, fills and settlements, not the
//!   original's: orderd is restarted armed only once the original works
//!   (see [`arm_after_replace`]);
//!
//! run on real processes, each checked against both simulators' ground
//! truth (`orderd check`, restricted to the schedule's own order and
//! account). A schedule's name (`crash/actor/venue`) replays it exactly.
//! Combinations that cannot meet (a fill's crash point with a venue that
//! never fills) are not generated; a crash point a schedule does not reach
//! is reported as such, and its schedule still checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use tokio::time::Instant;

use crate::failpoints;

mod lane;
mod requests;

use lane::run_lane;

/// How long a schedule waits for its armed crash point to kill orderd.
pub const CRASH_WAIT: Duration = Duration::from_secs(4);
/// How long a schedule's order may take to finish once the actor has run.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(40);
/// USD each schedule's trader starts with.
const TRADER_CASH: &str = "1000000";
/// Shares of the traded symbol each trader starts with.
const TRADER_SHARES: &str = "1000";
/// The seed of the lanes' shuffle (fixed: a lane's schedules replay in the
/// same order).
const LANE_SHUFFLE_SEED: u64 = 0x0bad_c0ffee;
/// The symbol every schedule trades.
const SYMBOL: &str = "AAPL";

text_enum! {
    /// Who races orderd right after its restart.
    pub enum Actor as "actor" {
        Nobody => "none",
        Cancel => "cancel",
        /// The restart is a new instance (another name): the crashed one's
        /// leases are free only once a peer finds it dead, so the trader's
        /// cancel is recorded before anyone recovers the order.
        CancelFirst => "cancel-first",
        KeyRetry => "key-retry",
        CoidRetry => "coid-retry",
        SecondInstance => "second-instance",
        StreamDrop => "stream-drop",
        Reconcile => "reconcile",
        PostgresKill => "postgres-kill",
    }
}

text_enum! {
    /// How the venue treats the schedule's order.
    pub enum Venue as "venue" {
        FillsAtOnce => "fills-at-once",
        FillsInParts => "fills-in-parts",
        /// A fractional market order for the day: whole-share chunks, the
        /// fraction last; its hold, fills and settlements carry the fraction.
        FillsFractional => "fills-fractional",
        /// A notional market buy for the day: the venue decides its
        /// quantity at the first execution and fills it in parts; orderd
        /// learns the quantity when the venue reports it filled.
        FillsNotional => "fills-notional",
        Rests => "rests",
        Rejects => "rejects",
        CancelLate => "cancel-late",
        /// The order rests, then the trader replaces it with one that needs
        /// more hold (a larger quantity): the replacement's reserve raises
        /// the chain's hold; the crash is in the replacement's steps (its
        /// accept, reserve, place — the venue's cancel/replace —, cancel,
        /// and the release of the whole chain's hold).
        ReplaceUp => "replace-up",
        /// The order rests, then the trader replaces it with one that needs
        /// less (a smaller quantity at a lower limit): the replaced order's
        /// release gives back the surplus, and that release is where a
        /// release crash point is reached.
        ReplaceDown => "replace-down",
        /// The order rests, then the trader replaces it with a marketable
        /// one (12 at a limit far above the market: the raise), which the
        /// venue fills in parts: the fill and settlement crash points are
        /// the replacement's, and the chain's release follows its fills.
        ReplaceFills => "replace-fills",
        /// As `replace-fills`, but the original is partly filled (and
        /// settled) when the `PATCH` arrives: the venue carries its fills
        /// into the replacement (`carried_qty`), which works only the rest.
        ReplaceFillsCarried => "replace-fills-carried",
    }
}

impl Venue {
    /// Whether the schedule's order is a replace chain.
    fn replaces(self) -> bool {
        matches!(
            self,
            Venue::ReplaceUp
                | Venue::ReplaceDown
                | Venue::ReplaceFills
                | Venue::ReplaceFillsCarried
        )
    }
}

/// Which part of the lifecycle a crash point belongs to, and so what the
/// schedule must do before the crash for it to be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accept, reserve, place: the submit itself reaches it.
    Submit,
    /// The cancel path: the order is canceled once it works.
    Cancel,
    /// Fills and settlements: the venue's fills reach it.
    Fill,
    /// The release: a finished order reaches it (a resting one is canceled).
    Release,
}

fn phase_of(crash: &str) -> Phase {
    if crash.contains("cancel") {
        Phase::Cancel
    } else if crash.contains("fill") || crash.contains("settle") {
        Phase::Fill
    } else if crash.contains("release") {
        Phase::Release
    } else {
        Phase::Submit
    }
}

/// Whether a venue behaviour can reach a phase at all. A marketable
/// replacement is filled within a few hundred milliseconds of the `PATCH`,
/// so a cancel would reach it only by chance: its chains do not meet the
/// cancel's crash points.
fn meets(phase: Phase, venue: Venue) -> bool {
    match phase {
        Phase::Submit | Phase::Release => true,
        Phase::Cancel => matches!(
            venue,
            Venue::Rests
                | Venue::ReplaceUp
                | Venue::ReplaceDown
                | Venue::CancelLate
                | Venue::FillsInParts
                | Venue::FillsFractional
                | Venue::FillsNotional
        ),
        Phase::Fill => matches!(
            venue,
            Venue::FillsAtOnce
                | Venue::FillsInParts
                | Venue::FillsFractional
                | Venue::FillsNotional
                | Venue::ReplaceFills
                | Venue::ReplaceFillsCarried
        ),
    }
}

/// For a replace chain: whether orderd is armed only once the replace has
/// taken effect (the replacement works, the original is closed), so the
/// crash is the replacement's own cancel or release; otherwise it is armed
/// once the original works, before the `PATCH`, and the crash is the
/// replacement's accept, reserve or place — or, for a replace that needs
/// less, the original's release of the surplus. A marketable replacement
/// is always armed before the `PATCH`: it fills and settles (reaching the
/// fill, settlement and the chain's last release) faster than a restart.
fn arm_after_replace(phase: Phase, venue: Venue) -> bool {
    phase == Phase::Cancel || (phase == Phase::Release && venue == Venue::ReplaceUp)
}

/// One schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub crash: &'static str,
    pub actor: Actor,
    pub venue: Venue,
}

impl Schedule {
    /// `crash/actor/venue`: the name that replays it.
    pub fn name(&self) -> String {
        format!("{}/{}/{}", self.crash, self.actor, self.venue)
    }

    pub fn parse(name: &str) -> Option<Self> {
        let mut parts = name.split('/');
        let crash = parts.next()?;
        let crash = failpoints::all()
            .into_iter()
            .map(|(n, _)| n)
            .find(|n| *n == crash)?;
        let actor = Actor::parse(parts.next()?)?;
        let venue = Venue::parse(parts.next()?)?;
        parts.next().is_none().then_some(Self {
            crash,
            actor,
            venue,
        })
    }
}

/// Every schedule the explorer knows, in a fixed order.
pub fn all_schedules() -> Vec<Schedule> {
    let mut out = Vec::new();
    for (crash, _) in failpoints::all() {
        for &venue in Venue::ALL {
            if !meets(phase_of(crash), venue) {
                continue;
            }
            for &actor in Actor::ALL {
                out.push(Schedule {
                    crash,
                    actor,
                    venue,
                });
            }
        }
    }
    out
}

/// The fixed part of the CI subset: the schedules the exactly-once issue
/// was about (a crash right after the placement was sent, then the
/// trader's cancel or retry), and one of each actor and each crash point.
pub fn ci_core() -> Vec<Schedule> {
    let mut core = Vec::new();
    for venue in [Venue::FillsAtOnce, Venue::Rests] {
        for actor in [Actor::Cancel, Actor::KeyRetry, Actor::CoidRetry] {
            core.push(Schedule {
                crash: "after_place_call",
                actor,
                venue,
            });
        }
    }
    core.push(Schedule {
        crash: failpoints::AFTER_ACCEPT_COMMIT,
        actor: Actor::KeyRetry,
        venue: Venue::FillsAtOnce,
    });
    for &actor in Actor::ALL {
        let schedule = Schedule {
            crash: "after_reserve_recorded",
            actor,
            venue: Venue::FillsInParts,
        };
        if !core.contains(&schedule) {
            core.push(schedule);
        }
    }
    for (crash, _) in failpoints::all() {
        let venue = match phase_of(crash) {
            Phase::Cancel => Venue::CancelLate,
            Phase::Fill => Venue::FillsInParts,
            Phase::Submit | Phase::Release => Venue::Rejects,
        };
        // And every crash point with a fractional and a notional order.
        for venue in [venue, Venue::FillsFractional, Venue::FillsNotional] {
            let schedule = Schedule {
                crash,
                actor: Actor::Nobody,
                venue,
            };
            if !core.contains(&schedule) {
                core.push(schedule);
            }
        }
    }
    // A replace chain crashed at the venue's cancel/replace (the
    // replacement's place step), needing more hold and less; the trader's
    // cancel and retry right after it; the raise of the hold and the
    // release of the surplus.
    for crash in [
        "before_place_call",
        "after_place_call",
        "after_place_recorded",
    ] {
        for venue in [Venue::ReplaceUp, Venue::ReplaceDown] {
            core.push(Schedule {
                crash,
                actor: Actor::Nobody,
                venue,
            });
        }
    }
    core.push(Schedule {
        crash: "after_place_call",
        actor: Actor::Cancel,
        venue: Venue::ReplaceUp,
    });
    core.push(Schedule {
        crash: "after_place_call",
        actor: Actor::KeyRetry,
        venue: Venue::ReplaceDown,
    });
    core.push(Schedule {
        crash: "before_reserve_call",
        actor: Actor::Nobody,
        venue: Venue::ReplaceUp,
    });
    core.push(Schedule {
        crash: "before_release_call",
        actor: Actor::Nobody,
        venue: Venue::ReplaceDown,
    });
    // A marketable replacement crashed after its first fill, and one
    // carrying the original's fill crashed in its settlement.
    core.push(Schedule {
        crash: failpoints::AFTER_FILL_APPLIED,
        actor: Actor::Nobody,
        venue: Venue::ReplaceFills,
    });
    core.push(Schedule {
        crash: failpoints::AFTER_SETTLE_CALL,
        actor: Actor::Nobody,
        venue: Venue::ReplaceFillsCarried,
    });
    core
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ExploreOptions {
    pub work_dir: PathBuf,
    /// Only schedules whose name contains this (an exact name replays one).
    pub filter: Option<String>,
    /// The CI subset: [`ci_core`] and `sample` more drawn by `sample_seed`.
    pub ci: bool,
    /// Draw this many schedules (after the filter) with `sample_seed`.
    pub sample: Option<usize>,
    pub sample_seed: u64,
    /// Stacks run side by side.
    pub lanes: usize,
    /// Print the crash points and the schedules, run nothing.
    pub list: bool,
}

/// The schedules `options` selects.
pub fn select(options: &ExploreOptions) -> Vec<Schedule> {
    let all = all_schedules();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.sample_seed);
    let filtered: Vec<Schedule> = all
        .iter()
        .filter(|s| {
            options
                .filter
                .as_deref()
                .is_none_or(|f| s.name().contains(f))
        })
        .cloned()
        .collect();
    if options.ci {
        let mut chosen = ci_core();
        let mut rest: Vec<Schedule> = filtered
            .into_iter()
            .filter(|s| !chosen.contains(s))
            .collect();
        rest.shuffle(&mut rng);
        chosen.extend(rest.into_iter().take(options.sample.unwrap_or(0)));
        return chosen;
    }
    match options.sample {
        Some(n) => {
            let mut picked = filtered;
            picked.shuffle(&mut rng);
            picked.truncate(n);
            picked
        }
        None => filtered,
    }
}

/// What one schedule showed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScheduleResult {
    pub name: String,
    pub crash_reached: bool,
    pub violations: Vec<String>,
    pub secs: f64,
}

/// Runs the selected schedules and prints a row for each and the matrix;
/// fails naming the schedules that broke an invariant.
pub async fn explore(options: &ExploreOptions) -> anyhow::Result<()> {
    let schedules = select(options);
    if options.list {
        println!("crash points:");
        for (name, what) in failpoints::all() {
            println!("  {name:<30} {what}");
        }
        println!("actors: {}", names(Actor::ALL));
        println!("venue behaviours: {}", names(Venue::ALL));
        println!(
            "{} schedules selected of {}:",
            schedules.len(),
            all_schedules().len()
        );
        for s in &schedules {
            println!("  {}", s.name());
        }
        return Ok(());
    }
    println!(
        "exploring {} schedules of {} on {} lane(s)",
        schedules.len(),
        all_schedules().len(),
        options.lanes
    );
    let lanes = options.lanes.clamp(1, 8);
    // Lanes get a stable shuffle of the schedules, so the slow actors (a
    // second instance, a database restart) do not all land on one lane.
    let mut order: Vec<&Schedule> = schedules.iter().collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
        LANE_SHUFFLE_SEED,
    ));
    let mut queues: Vec<Vec<Schedule>> = vec![Vec::new(); lanes];
    for (i, s) in order.into_iter().enumerate() {
        queues[i % lanes].push(s.clone());
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (lane, queue) in queues.into_iter().enumerate() {
        if queue.is_empty() {
            continue;
        }
        let dir = options.work_dir.join(format!("lane-{lane}"));
        tasks.push(tokio::spawn(run_lane(lane, dir, queue)));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.extend(task.await.context("an explorer lane")??);
    }
    print_matrix(&results);
    let failed: Vec<&ScheduleResult> = results
        .iter()
        .filter(|r| !r.violations.is_empty())
        .collect();
    println!(
        "{} schedules explored in {:.0} s: {} kept every invariant, {} did not; {} reached their crash point",
        results.len(),
        started.elapsed().as_secs_f64(),
        results.len() - failed.len(),
        failed.len(),
        results.iter().filter(|r| r.crash_reached).count()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "failing schedules (replay one with --explore --filter NAME): {}",
            failed
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        )
    }
}

fn names<T: crate::domain::TextEnum>(values: &[T]) -> String {
    values
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Crash points down, actors across: `ok/all` per cell (`-` when none ran).
fn print_matrix(results: &[ScheduleResult]) {
    let mut cells: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    let mut crashes = Vec::new();
    for r in results {
        let mut parts = r.name.split('/');
        let crash = parts.next().unwrap_or("?").to_string();
        let actor = parts.next().unwrap_or("?").to_string();
        if !crashes.contains(&crash) {
            crashes.push(crash.clone());
        }
        let cell = cells.entry((crash, actor)).or_default();
        cell.1 += 1;
        if r.violations.is_empty() {
            cell.0 += 1;
        }
    }
    println!();
    print!("{:<30}", "crash point \\ actor");
    for actor in Actor::ALL {
        print!(" {:>15}", actor.as_str());
    }
    println!();
    for crash in crashes {
        print!("{crash:<30}");
        for actor in Actor::ALL {
            match cells.get(&(crash.clone(), actor.as_str().to_string())) {
                Some((ok, all)) => print!(" {:>15}", format!("{ok}/{all}")),
                None => print!(" {:>15}", "-"),
            }
        }
        println!();
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schedule_replays_by_its_name() {
        let all = all_schedules();
        for s in &all {
            assert_eq!(Schedule::parse(&s.name()).as_ref(), Some(s), "{}", s.name());
        }
        let names: BTreeSet<String> = all.iter().map(Schedule::name).collect();
        assert_eq!(names.len(), all.len(), "names are unique");
        assert!(
            ci_core().iter().all(|s| all.contains(s)),
            "the core is part of the matrix"
        );
    }

    #[test]
    fn the_issues_schedule_is_in_the_ci_core() {
        let core: Vec<String> = ci_core().iter().map(Schedule::name).collect();
        assert!(core.contains(&"after_place_call/cancel/fills-at-once".to_string()));
        assert!(core.contains(&"after_place_call/key-retry/rests".to_string()));
    }

    #[test]
    fn a_replace_chain_meets_every_crash_point_but_the_fills_and_its_place_is_in_the_ci_core() {
        let all = all_schedules();
        for venue in [Venue::ReplaceUp, Venue::ReplaceDown] {
            for (crash, _) in failpoints::all() {
                let reached = all.iter().any(|s| s.crash == crash && s.venue == venue);
                assert_eq!(reached, phase_of(crash) != Phase::Fill, "{crash} {venue}");
            }
        }
        let core = ci_core();
        for crash in [
            "before_place_call",
            "after_place_call",
            "after_place_recorded",
        ] {
            for venue in [Venue::ReplaceUp, Venue::ReplaceDown] {
                assert!(
                    core.iter().any(|s| s.crash == crash && s.venue == venue),
                    "{crash} {venue}"
                );
            }
        }
    }

    #[test]
    fn a_marketable_replacement_meets_every_crash_point_but_the_cancels_and_its_fills_are_in_the_ci_core()
     {
        let all = all_schedules();
        for venue in [Venue::ReplaceFills, Venue::ReplaceFillsCarried] {
            for (crash, _) in failpoints::all() {
                let phase = phase_of(crash);
                let reached = all.iter().any(|s| s.crash == crash && s.venue == venue);
                assert_eq!(reached, phase != Phase::Cancel, "{crash} {venue}");
                // Armed before the PATCH: the fills are the replacement's.
                assert!(
                    !(reached && arm_after_replace(phase, venue)),
                    "{crash} {venue}"
                );
            }
        }
        let core = ci_core();
        for venue in [Venue::ReplaceFills, Venue::ReplaceFillsCarried] {
            assert!(
                core.iter()
                    .any(|s| s.venue == venue && phase_of(s.crash) == Phase::Fill),
                "{venue}"
            );
        }
    }

    #[test]
    fn every_crash_point_meets_a_fractional_and_a_notional_order_in_the_ci_core() {
        let core = ci_core();
        for (crash, _) in failpoints::all() {
            for venue in [Venue::FillsFractional, Venue::FillsNotional] {
                assert!(
                    core.iter().any(|s| s.crash == crash && s.venue == venue),
                    "{crash} {venue}"
                );
            }
        }
    }
}

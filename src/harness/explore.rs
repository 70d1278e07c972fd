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
//! - a **venue behaviour** — fills at once, fills in parts, rests (a far
//!   limit), rejects, acknowledges a cancel late;
//!
//! run on real processes, each checked against both simulators' ground
//! truth (`orderd check`, restricted to the schedule's own order and
//! account). A schedule's name (`crash/actor/venue`) replays it exactly.
//! Combinations that cannot meet (a fill's crash point with a venue that
//! never fills) are not generated; a crash point a schedule does not reach
//! is reported as such, and its schedule still checked.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::session::Trader;
use super::stack::{Running, Stack, StackConfig};
use super::{ADMIN_TOKEN, put_faults};
use crate::failpoints;

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
        Rests => "rests",
        Rejects => "rejects",
        CancelLate => "cancel-late",
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

/// Whether a venue behaviour can reach a phase at all.
fn meets(phase: Phase, venue: Venue) -> bool {
    match phase {
        Phase::Submit | Phase::Release => true,
        Phase::Cancel => matches!(
            venue,
            Venue::Rests | Venue::CancelLate | Venue::FillsInParts
        ),
        Phase::Fill => matches!(venue, Venue::FillsAtOnce | Venue::FillsInParts),
    }
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
        let schedule = Schedule {
            crash,
            actor: Actor::Nobody,
            venue,
        };
        if !core.contains(&schedule) {
            core.push(schedule);
        }
    }
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

/// One stack and the schedules it runs, one after the other.
struct Lane {
    index: usize,
    stack: Stack,
    http: reqwest::Client,
    traders: VecDeque<Trader>,
}

async fn run_lane(
    index: usize,
    dir: PathBuf,
    queue: Vec<Schedule>,
) -> anyhow::Result<Vec<ScheduleResult>> {
    let mut lane = Lane::start(index, &dir, queue.len()).await?;
    let mut results = Vec::new();
    for schedule in queue {
        let started = Instant::now();
        let (crash_reached, violations) = match lane.run(&schedule).await {
            Ok(outcome) => outcome,
            Err(error) => (
                false,
                vec![format!("the schedule could not run: {error:#}")],
            ),
        };
        let result = ScheduleResult {
            name: schedule.name(),
            crash_reached,
            violations,
            secs: started.elapsed().as_secs_f64(),
        };
        println!(
            "{:<58} {:<11} {:>5.1}s  {}",
            result.name,
            if result.crash_reached {
                "crashed"
            } else {
                "not reached"
            },
            result.secs,
            if result.violations.is_empty() {
                "ok".to_string()
            } else {
                format!("FAIL {}", result.violations.join("; "))
            }
        );
        results.push(result);
    }
    let data_dir = dir.join("postgres");
    tokio::task::block_in_place(|| lane.stack.stop());
    let _ = crate::embedded_postgres::EmbeddedPostgres::stop_unowned(&data_dir);
    Ok(results)
}

impl Lane {
    async fn start(index: usize, dir: &Path, traders: usize) -> anyhow::Result<Self> {
        let pg = dir.join("postgres");
        if pg.exists() {
            let _ = crate::embedded_postgres::EmbeddedPostgres::stop_unowned(&pg);
            std::fs::remove_dir_all(&pg).with_context(|| format!("removing {}", pg.display()))?;
        }
        let mut config = StackConfig::beside_current_exe(dir, 7 + index as u64)?;
        config.orderd_env = vec![
            // A restart fences its predecessor at once.
            ("ORDERD__INSTANCE__NAME".into(), format!("explore-{index}")),
            // Short windows, so a schedule is seconds, not minutes.
            (
                "ORDERD__LIFECYCLE__LATE_FILL_WINDOW_MS".into(),
                "300".into(),
            ),
            ("ORDERD__EXCHANGE__REQUEST_TIMEOUT_MS".into(), "1000".into()),
            (
                "ORDERD__EXCHANGE__PLACEMENT_WINDOW_MS".into(),
                "1500".into(),
            ),
            ("ORDERD__EXCHANGE__CLOCK_SKEW_MS".into(), "0".into()),
            (
                "ORDERD__LIFECYCLE__PLACEMENT_GRACE_MS".into(),
                "3000".into(),
            ),
            ("ORDERD__RECONCILE__SETTLE_TIME_MS".into(), "1000".into()),
            ("ORDERD__RECONCILE__STALE_AFTER_MS".into(), "1500".into()),
        ];
        let stack = tokio::task::block_in_place(|| Stack::start(config))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?;
        let traders = provision(&stack, &http, &format!("explore-{index}"), traders).await?;
        Ok(Self {
            index,
            stack,
            http,
            traders: traders.into(),
        })
    }

    fn url(&self) -> anyhow::Result<String> {
        self.stack.orderd_url().context("orderd is not running")
    }

    /// Runs one schedule; returns whether its crash point was reached and
    /// the violations it found (none: it kept every invariant).
    async fn run(&mut self, schedule: &Schedule) -> anyhow::Result<(bool, Vec<String>)> {
        let trader = self
            .traders
            .pop_front()
            .context("no trader left for this schedule")?;
        let exchange = self.stack.exchange.url();
        // A clean start, armed.
        tokio::task::block_in_place(|| self.stack.kill_orderd());
        put_faults(&self.http, &exchange, &venue_faults(schedule.venue)).await?;
        tokio::task::block_in_place(|| self.stack.start_orderd(Some(schedule.crash)))?;
        let url = self.url()?;

        let coid = format!("x{}-{}", self.index, uuid::Uuid::new_v4().simple());
        let key = format!("k-{coid}");
        let body = order_body(schedule.venue, &coid);
        let first = submit(&self.http, &url, &trader, &body, Some(&key)).await;
        let phase = phase_of(schedule.crash);
        let needs_cancel = phase == Phase::Cancel
            || (phase == Phase::Release
                && matches!(schedule.venue, Venue::Rests | Venue::CancelLate));
        if needs_cancel && let Some(id) = find_order(&self.http, &url, &trader, &coid).await {
            wait_for(
                &self.http,
                &url,
                &trader,
                &id,
                Duration::from_secs(3),
                |o| o["status"] != "pending_new",
            )
            .await;
            let _ = trader_request(
                &self.http,
                reqwest::Method::DELETE,
                &format!("{url}/v2/orders/{id}"),
                &trader,
                None,
            )
            .await;
        }
        // The crash, if this schedule reaches it.
        let deadline = Instant::now() + CRASH_WAIT;
        let mut crashed = false;
        while Instant::now() < deadline {
            if !tokio::task::block_in_place(|| self.stack.orderd_alive()) {
                crashed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if crashed {
            // The venue goes on as it does; the restart is unarmed.
            if schedule.venue == Venue::Rejects {
                put_faults(&self.http, &exchange, &json!({})).await?;
            }
            let rename = (schedule.actor == Actor::CancelFirst).then(|| {
                format!(
                    "explore-{}-restarted-{}",
                    self.index,
                    uuid::Uuid::new_v4().simple()
                )
            });
            tokio::task::block_in_place(|| self.stack.start_orderd_as(None, rename.as_deref()))?;
        }
        let url = self.url()?;
        let mut violations = Vec::new();
        let mut second: Option<Running> = None;

        // The racing actor, at once.
        match schedule.actor {
            Actor::Nobody => {}
            Actor::Cancel | Actor::CancelFirst => {
                if let Some(id) = find_order(&self.http, &url, &trader, &coid).await {
                    let _ = trader_request(
                        &self.http,
                        reqwest::Method::DELETE,
                        &format!("{url}/v2/orders/{id}"),
                        &trader,
                        None,
                    )
                    .await;
                }
            }
            Actor::KeyRetry | Actor::CoidRetry => {
                let key = (schedule.actor == Actor::KeyRetry).then_some(key.as_str());
                match submit(&self.http, &url, &trader, &body, key).await {
                    Some((status, reply)) => {
                        let known = find_order(&self.http, &url, &trader, &coid).await;
                        if status != 200 {
                            violations.push(format!(
                                "I7: the retry got {status} {reply} instead of the order"
                            ));
                        } else if reply["id"].as_str().map(str::to_string) != known {
                            violations.push(format!(
                                "I7: the retry answered order {:?}, the order is {known:?}",
                                reply["id"]
                            ));
                        }
                        if let Some((first_status, first_reply)) = &first
                            && *first_status == 200
                            && first_reply["id"] != reply["id"]
                        {
                            violations.push(format!(
                                "I7: first answer {}, retry {}",
                                first_reply["id"], reply["id"]
                            ));
                        }
                    }
                    None => violations.push("I7: the retry got no answer".to_string()),
                }
            }
            Actor::SecondInstance => {
                second = Some(tokio::task::block_in_place(|| {
                    self.stack
                        .start_extra_orderd(&format!("explore-{}-second", self.index))
                })?);
            }
            Actor::StreamDrop => {
                let _ = self
                    .http
                    .post(format!("{exchange}/admin/disconnect"))
                    .send()
                    .await;
            }
            Actor::Reconcile => {
                for job in ["unknown_outcomes", "open_orders", "balances", "orphans"] {
                    let _ = self
                        .http
                        .post(format!("{url}/admin/reconciliations/run/{job}"))
                        .bearer_auth(ADMIN_TOKEN)
                        .send()
                        .await;
                }
            }
            Actor::PostgresKill => {
                let dir = self.stack.config.work_dir.join("postgres");
                match crate::embedded_postgres::EmbeddedPostgres::postmaster_pid(&dir) {
                    Some(pid) => {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    None => violations.push("no postmaster to kill".to_string()),
                }
            }
        }
        put_faults(&self.http, &exchange, &json!({})).await?;

        // Whatever still works is canceled (as a trader ending the day
        // would); then the order must finish on its own.
        let settled = self.finish(&url, &trader, &coid, first.as_ref()).await;
        if let Err(problem) = settled {
            violations.push(problem);
        }
        if let Some(second) = second {
            super::stack::stop_running(second);
        }
        violations.extend(self.check(&trader, &coid).await?);
        Ok((crashed, violations))
    }

    /// Cancels what is open, then waits until the order is closed and its
    /// fills settled.
    async fn finish(
        &self,
        url: &str,
        trader: &Trader,
        coid: &str,
        first: Option<&(u16, Value)>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + SETTLE_LIMIT;
        let mut id = None;
        while id.is_none() && Instant::now() < deadline {
            id = find_order(&self.http, url, trader, coid).await;
            if id.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let Some(id) = id else {
            // Never accepted: nothing must exist anywhere, and the trader
            // must not have been told it was.
            if let Some((200, reply)) = first {
                return Err(format!("I5: acknowledged order {} is missing", reply["id"]));
            }
            return Ok(());
        };
        let mut canceled = false;
        loop {
            let timeline = trader_request(
                &self.http,
                reqwest::Method::GET,
                &format!("{url}/v2/orders/{id}/events"),
                trader,
                None,
            )
            .await;
            let fills = trader_request(
                &self.http,
                reqwest::Method::GET,
                &format!("{url}/v2/orders/{id}/fills"),
                trader,
                None,
            )
            .await;
            if let (Some((200, timeline)), Some((200, fills))) = (&timeline, &fills) {
                let closed = timeline["step"] == "closed";
                let settled = fills
                    .as_array()
                    .is_some_and(|f| f.iter().all(|f| f["settlement_state"] == "settled"));
                if closed && settled {
                    return Ok(());
                }
                if timeline["step"] == "parked" {
                    return Err(format!("order {id} parked: {}", timeline["events"]));
                }
                if !canceled && timeline["step"] == "working" {
                    let _ = trader_request(
                        &self.http,
                        reqwest::Method::DELETE,
                        &format!("{url}/v2/orders/{id}"),
                        trader,
                        None,
                    )
                    .await;
                    canceled = true;
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "I6: order {id} not finished after {SETTLE_LIMIT:?}: {}",
                    timeline.map(|t| t.1.to_string()).unwrap_or_default()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `orderd check`, keeping the violations of this schedule's trader,
    /// order, hold and executions.
    async fn check(&self, trader: &Trader, coid: &str) -> anyhow::Result<Vec<String>> {
        let url = self.url()?;
        let order_id = find_order(&self.http, &url, trader, coid).await;
        let mut ids: BTreeSet<String> = BTreeSet::new();
        ids.insert(trader.account_id.clone());
        if let Some(id) = &order_id {
            ids.insert(id.clone());
            if let Some((200, fills)) = trader_request(
                &self.http,
                reqwest::Method::GET,
                &format!("{url}/v2/orders/{id}/fills"),
                trader,
                None,
            )
            .await
            {
                for f in fills.as_array().into_iter().flatten() {
                    if let Some(exec) = f["execution_id"].as_str() {
                        ids.insert(exec.to_string());
                    }
                }
            }
        }
        let printed = tokio::task::block_in_place(|| self.stack.cli(&["check", "--json"]))?;
        let report: Value =
            serde_json::from_str(printed.trim()).context("orderd check --json output")?;
        let mut violations = Vec::new();
        for invariant in report["invariants"].as_array().into_iter().flatten() {
            for v in invariant["violations"].as_array().into_iter().flatten() {
                let id = v["id"].as_str().unwrap_or_default();
                if ids.contains(id) {
                    violations.push(format!(
                        "{} {} {}",
                        invariant["name"].as_str().unwrap_or("?"),
                        id,
                        v["detail"].as_str().unwrap_or("")
                    ));
                }
            }
        }
        Ok(violations)
    }
}

/// The venue's fault profile for a behaviour.
fn venue_faults(venue: Venue) -> Value {
    match venue {
        Venue::Rejects => json!({"reject": 1.0}),
        Venue::CancelLate => json!({"cancel_delay_ms": 1500}),
        _ => json!({}),
    }
}

/// The order a behaviour needs: a marketable IOC fills at once; a
/// marketable limit DAY fills in the venue's chunks; a far limit rests.
fn order_body(venue: Venue, coid: &str) -> Value {
    match venue {
        Venue::FillsAtOnce => json!({"symbol": SYMBOL, "qty": "5", "side": "buy",
            "type": "market", "time_in_force": "ioc", "client_order_id": coid}),
        Venue::FillsInParts => json!({"symbol": SYMBOL, "qty": "12", "side": "buy",
            "type": "limit", "limit_price": "300.00", "time_in_force": "day",
            "client_order_id": coid}),
        Venue::Rests | Venue::CancelLate | Venue::Rejects => json!({"symbol": SYMBOL, "qty": "3",
            "side": "buy", "type": "limit", "limit_price": "1.00", "time_in_force": "gtc",
            "client_order_id": coid}),
    }
}

async fn trader_request(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    trader: &Trader,
    body: Option<(&Value, Option<&str>)>,
) -> Option<(u16, Value)> {
    let mut request = http
        .request(method, url)
        .header("APCA-API-KEY-ID", &trader.key_id)
        .header("APCA-API-SECRET-KEY", &trader.secret_key);
    if let Some((body, key)) = body {
        request = request.json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let value = response.json().await.unwrap_or(Value::Null);
    Some((status, value))
}

async fn submit(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
    body: &Value,
    key: Option<&str>,
) -> Option<(u16, Value)> {
    trader_request(
        http,
        reqwest::Method::POST,
        &format!("{url}/v2/orders"),
        trader,
        Some((body, key)),
    )
    .await
}

/// The order's id, found by its client_order_id (as a trader who got no
/// answer would).
async fn find_order(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
    coid: &str,
) -> Option<String> {
    let (status, order) = trader_request(
        http,
        reqwest::Method::GET,
        &format!("{url}/v2/orders:by_client_order_id?client_order_id={coid}"),
        trader,
        None,
    )
    .await?;
    (status == 200)
        .then(|| order["id"].as_str().map(str::to_string))
        .flatten()
}

async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    trader: &Trader,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some((200, order)) = trader_request(
            http,
            reqwest::Method::GET,
            &format!("{url}/v2/orders/{id}"),
            trader,
            None,
        )
        .await
            && done(&order)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Funds `count` traders at the ledger and creates their orderd accounts
/// in one CLI run.
async fn provision(
    stack: &Stack,
    http: &reqwest::Client,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<Trader>> {
    for i in 1..=count {
        let response = http
            .post(format!("{}/admin/accounts", stack.balances.url()))
            .json(&json!({"account_id": format!("{prefix}-{i}"),
                          "balances": {"USD": TRADER_CASH, SYMBOL: TRADER_SHARES}}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "funding {prefix}-{i}: {}",
            response.status()
        );
    }
    let count_text = count.to_string();
    let printed = tokio::task::block_in_place(|| {
        stack.cli(&[
            "account",
            "create",
            "--name",
            prefix,
            "--balances-account",
            prefix,
            "--count",
            &count_text,
        ])
    })?;
    printed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let created: Value = serde_json::from_str(line).context("account create output")?;
            Ok(Trader {
                name: format!("{prefix}-{}", i + 1),
                key_id: created["key_id"].as_str().unwrap_or_default().to_string(),
                secret_key: created["secret_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                account_id: created["account_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect()
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
}

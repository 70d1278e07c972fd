//! A lane: one stack running its schedules one after the other, each
//! armed, crashed, raced, settled and checked.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::super::session::Trader;
use super::super::stack::{Running, Stack, StackConfig};
use super::super::{ADMIN_TOKEN, put_faults};
use super::requests::*;
use super::*;
use crate::engine::settler::FEE_PER_FILL;

/// The exchange simulator's API key (its default, which the stack keeps).
const VENUE_API_KEY: &str = "sim-venue-key";

/// How long a chain's check asks again for an order it does not find.
const LOOKUP_LIMIT: Duration = Duration::from_secs(5);

/// A replace chain's original and the trader's `PATCH` of it.
struct Chain {
    original_id: String,
    patch: Value,
}

/// One stack and the schedules it runs, one after the other.
struct Lane {
    index: usize,
    stack: Stack,
    http: reqwest::Client,
    /// The venue, read as orderd reads it (a replacement's venue order).
    venue: crate::venues::exchange::ExchangeClient,
    traders: VecDeque<Trader>,
}

pub(super) async fn run_lane(
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
            // Every instance runs this release: notional orders are taken.
            ("ORDERD__LIFECYCLE__NOTIONAL_ORDERS".into(), "true".into()),
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
        let venue = crate::venues::exchange::ExchangeClient::new(
            &stack.exchange.url(),
            VENUE_API_KEY,
            Duration::from_secs(5),
        );
        Ok(Self {
            index,
            stack,
            venue,
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
        let phase = phase_of(schedule.crash);
        let chained = schedule.venue.replaces();
        // A clean start, armed (a replace chain's once its original works).
        tokio::task::block_in_place(|| self.stack.kill_orderd());
        put_faults(&self.http, &exchange, &venue_faults(schedule.venue)).await?;
        tokio::task::block_in_place(|| {
            self.stack
                .start_orderd((!chained).then_some(schedule.crash))
        })?;
        let url = self.url()?;

        let original_coid = format!("x{}-{}", self.index, uuid::Uuid::new_v4().simple());
        let key = format!("k-{original_coid}");
        let body = order_body(schedule.venue, &original_coid);
        let mut first = submit(&self.http, &url, &trader, &body, Some(&key)).await;
        // A replace chain: the schedule's order is the replacement.
        let coid = if chained {
            format!("{original_coid}-r")
        } else {
            original_coid.clone()
        };
        let chain = match replace_patch(schedule.venue, &coid) {
            Some(patch) => {
                let (chain, answer) = self
                    .replace_armed(schedule, &trader, &original_coid, patch)
                    .await?;
                first = answer;
                Some(chain)
            }
            None => None,
        };
        let url = self.url()?;
        let needs_cancel = phase == Phase::Cancel
            || (phase == Phase::Release
                && matches!(
                    schedule.venue,
                    Venue::Rests | Venue::CancelLate | Venue::ReplaceUp
                ));
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
                // A replace is retried as it was sent (it takes no key).
                let key = (schedule.actor == Actor::KeyRetry).then_some(key.as_str());
                let retried = match &chain {
                    Some(chain) => {
                        replace(&self.http, &url, &trader, &chain.original_id, &chain.patch).await
                    }
                    None => submit(&self.http, &url, &trader, &body, key).await,
                };
                match retried {
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
        let mut coids = vec![coid.as_str()];
        if chained {
            // The replacement is done; the original too, or it is canceled
            // now (a replacement that never reached the venue left it
            // working).
            if let Err(problem) = self.finish(&url, &trader, &original_coid, None).await {
                violations.push(problem);
            }
            coids.push(&original_coid);
            violations.extend(
                self.chain_consistent(&url, &trader, &original_coid, &coid)
                    .await,
            );
        }
        if let Some(second) = second {
            super::super::stack::stop_running(second);
        }
        violations.extend(self.check(&trader, &coids).await?);
        Ok((crashed, violations))
    }

    /// A replace chain up to its crash: waits until the original works,
    /// then `PATCH`es it with orderd armed — before the `PATCH`, or, when
    /// the crash point is the replacement's cancel or the chain's last
    /// release ([`arm_after_replace`]), once the replacement works and the
    /// original is closed. Returns the chain and the `PATCH`'s answer.
    async fn replace_armed(
        &mut self,
        schedule: &Schedule,
        trader: &Trader,
        original_coid: &str,
        patch: Value,
    ) -> anyhow::Result<(Chain, Option<(u16, Value)>)> {
        let url = self.url()?;
        let original_id = find_order(&self.http, &url, trader, original_coid)
            .await
            .context("the order to replace was not accepted")?;
        wait_for(
            &self.http,
            &url,
            trader,
            &original_id,
            Duration::from_secs(5),
            |o| o["status"] == "new",
        )
        .await;
        if schedule.venue == Venue::ReplaceFillsCarried {
            self.fill_in_part(&url, trader, &original_id).await?;
        }
        let late = arm_after_replace(phase_of(schedule.crash), schedule.venue);
        if !late {
            self.restart_armed(schedule.crash)?;
        }
        let url = self.url()?;
        let answer = replace(&self.http, &url, trader, &original_id, &patch).await;
        if late {
            let replacement = match &answer {
                Some((200, reply)) => reply["id"].as_str().map(str::to_string),
                _ => None,
            }
            .with_context(|| format!("the replace was refused: {answer:?}"))?;
            wait_for(
                &self.http,
                &url,
                trader,
                &replacement,
                Duration::from_secs(5),
                |o| o["status"] == "new",
            )
            .await;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline
                && step_of(&self.http, &url, trader, &original_id)
                    .await
                    .as_deref()
                    != Some("closed")
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.restart_armed(schedule.crash)?;
        }
        Ok((Chain { original_id, patch }, answer))
    }

    /// Fills the resting original (3 at 1.00) in part: the venue's price
    /// drops below its limit, so its first fill chunk is due at once, and
    /// is set back (which executes that chunk first) well before the next
    /// chunk is due (the venue's fill interval, 100 ms), which then finds
    /// it no longer marketable and rests it. Waits until orderd has the
    /// fill settled, so the armed crash meets the replacement's fills and
    /// settlements, not this one's.
    async fn fill_in_part(
        &self,
        url: &str,
        trader: &Trader,
        original_id: &str,
    ) -> anyhow::Result<()> {
        let exchange = self.stack.exchange.url();
        let market = self
            .venue
            .quote(SYMBOL)
            .await
            .map_err(|error| anyhow::anyhow!("{SYMBOL}'s quote: {error:?}"))?
            .last;
        set_price(&self.http, &exchange, "0.50").await?;
        set_price(&self.http, &exchange, &market.to_string()).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = Value::Null;
        while Instant::now() < deadline {
            if let Some((200, order)) = trader_request(
                &self.http,
                reqwest::Method::GET,
                &format!("{url}/v2/orders/{original_id}"),
                trader,
                None,
            )
            .await
            {
                status = order["status"].clone();
                let fills = fills_of(&self.http, url, trader, original_id).await;
                let settled =
                    !fills.is_empty() && fills.iter().all(|f| f["settlement_state"] == "settled");
                if status == "partially_filled" && settled {
                    return Ok(());
                }
                if status == "filled" {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!(
            "the original was to rest partly filled and settled, it is {status} \
             (a filled one: more than the venue's fill interval passed between the two prices)"
        )
    }

    /// A clean restart with `crash` armed (the order at hand is at rest).
    fn restart_armed(&mut self, crash: &str) -> anyhow::Result<()> {
        tokio::task::block_in_place(|| {
            self.stack.kill_orderd();
            self.stack.start_orderd(Some(crash))
        })
    }

    /// Once both orders of a chain are closed: the replacement reached the
    /// venue (the venue's word) and the original is `replaced` by it, or it
    /// did not (it is rejected, or canceled before it was sent) and the
    /// original's replace was undone; and nothing of the chain's hold is
    /// held any more.
    async fn chain_consistent(
        &self,
        url: &str,
        trader: &Trader,
        original_coid: &str,
        replacement_coid: &str,
    ) -> Vec<String> {
        let mut violations = Vec::new();
        let get = |path: String| async move {
            trader_request(
                &self.http,
                reqwest::Method::GET,
                &format!("{url}{path}"),
                trader,
                None,
            )
            .await
        };
        let Some(original_id) =
            find_order_within(&self.http, url, trader, original_coid, LOOKUP_LIMIT).await
        else {
            return vec!["the replaced order is missing".to_string()];
        };
        let original = match get(format!("/v2/orders/{original_id}")).await {
            Some((200, order)) => order,
            other => return vec![format!("the replaced order {original_id}: {other:?}")],
        };
        match find_order_within(&self.http, url, trader, replacement_coid, LOOKUP_LIMIT).await {
            None => {
                if original["status"] == "replaced" || !original["replaced_by"].is_null() {
                    violations.push(format!(
                        "chain: {original_id} is {} by {}, no replacement exists",
                        original["status"], original["replaced_by"]
                    ));
                }
            }
            Some(replacement_id) => {
                let replacement = match get(format!("/v2/orders/{replacement_id}")).await {
                    Some((200, order)) => order,
                    other => return vec![format!("the replacement {replacement_id}: {other:?}")],
                };
                // Whether it reached the venue is the venue's word: its
                // placement is the replace, keyed by its venue client id.
                let placed = match replacement_id.parse() {
                    Ok(id) => self
                        .venue
                        .order_by_client_order_id(&crate::engine::keys::venue_client_order_id(id))
                        .await
                        .map(|found| found.is_some())
                        .map_err(|error| format!("{error:?}")),
                    Err(error) => Err(format!("{error:?}")),
                };
                let placed = match placed {
                    Ok(placed) => placed,
                    Err(error) => {
                        violations.push(format!(
                            "chain: the venue's word on {replacement_id}: {error}"
                        ));
                        return violations;
                    }
                };
                if replacement["replaces"] != original_id.as_str() {
                    violations.push(format!(
                        "chain: {replacement_id} replaces {}, not {original_id}",
                        replacement["replaces"]
                    ));
                }
                let replaced = original["status"] == "replaced"
                    && original["replaced_by"] == replacement_id.as_str();
                let undone = original["status"] != "replaced" && original["replaced_by"].is_null();
                if placed && !replaced {
                    violations.push(format!(
                        "chain: {replacement_id} ({}) reached the venue, but {original_id} is {} (replaced_by {})",
                        replacement["status"], original["status"], original["replaced_by"]
                    ));
                }
                if !placed && !undone {
                    violations.push(format!(
                        "chain: {replacement_id} ({}) never reached the venue, but {original_id} is {} by {}",
                        replacement["status"], original["status"], original["replaced_by"]
                    ));
                }
                if !placed
                    && !matches!(
                        replacement["status"].as_str(),
                        Some("rejected" | "canceled")
                    )
                {
                    violations.push(format!(
                        "chain: {replacement_id} never reached the venue, yet it is {}",
                        replacement["status"]
                    ));
                }
            }
        }
        // Everything closed and settled: the whole cash is the trader's to
        // spend again, but what the chain's fills cost (none for a far
        // limit).
        let mut spent = Decimal::ZERO;
        for coid in [original_coid, replacement_coid] {
            let Some(id) = find_order_within(&self.http, url, trader, coid, LOOKUP_LIMIT).await
            else {
                continue;
            };
            for fill in fills_of(&self.http, url, trader, &id).await {
                let number =
                    |field: &str| fill[field].as_str().and_then(|v| v.parse::<Decimal>().ok());
                match (number("qty"), number("price")) {
                    (Some(qty), Some(price)) => spent += qty * price + FEE_PER_FILL,
                    _ => violations.push(format!("chain: an unreadable fill of {id}: {fill}")),
                }
            }
        }
        let cash: Decimal = TRADER_CASH.parse().unwrap_or_default();
        if let Some((200, account)) = get("/v2/account".to_string()).await {
            let power = account["buying_power"]
                .as_str()
                .and_then(|p| p.parse::<Decimal>().ok());
            // To the cent, as the account shows it (a sub-dollar fill's
            // price has four places).
            if power != Some((cash - spent).round_dp(2)) {
                violations.push(format!(
                    "chain: buying power {} once the chain is closed, not {TRADER_CASH} less the {spent} its fills cost",
                    account["buying_power"]
                ));
            }
        }
        violations
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
    /// orders (a replace chain's two), hold and executions.
    async fn check(&self, trader: &Trader, coids: &[&str]) -> anyhow::Result<Vec<String>> {
        let url = self.url()?;
        let mut ids: BTreeSet<String> = BTreeSet::new();
        ids.insert(trader.account_id.clone());
        for coid in coids {
            let Some(id) = find_order(&self.http, &url, trader, coid).await else {
                continue;
            };
            for f in fills_of(&self.http, &url, trader, &id).await {
                if let Some(exec) = f["execution_id"].as_str() {
                    ids.insert(exec.to_string());
                }
            }
            ids.insert(id);
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

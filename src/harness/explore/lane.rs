//! A lane: one stack running its schedules one after the other, each
//! armed, crashed, raced, settled and checked.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::super::session::Trader;
use super::super::stack::{Running, Stack, StackConfig};
use super::super::{ADMIN_TOKEN, put_faults};
use super::requests::*;
use super::*;

/// One stack and the schedules it runs, one after the other.
struct Lane {
    index: usize,
    stack: Stack,
    http: reqwest::Client,
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
            super::super::stack::stop_running(second);
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

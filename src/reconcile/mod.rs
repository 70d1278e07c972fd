//! Reconciliation: cron-scheduled jobs that compare orderd with the venue
//! and the ledger and repair what a crash, a timeout or a lost message left
//! behind. Every run is recorded with what it examined, what it found and
//! what it did. Each cron tick runs once across all instances (a unique
//! row per job and tick); after downtime only the latest missed tick runs.

mod day;
mod jobs;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::ReconcileSettings;
use crate::domain::schedule::latest_due;
use crate::engine::Engine;
use crate::metrics::names;
use crate::store::reconcile::{self as store, RecordedFinding};

/// How often the scheduler looks for due ticks.
pub const SCHEDULER_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// Orders the venue works with no news for a while: look them up.
    OpenOrders,
    /// Unknown outcomes, parked orders, unsettled fills.
    UnknownOutcomes,
    /// Holds of terminal orders; settled fills against the ledger.
    Balances,
    /// Venue orders with orderd's ids that orderd does not know.
    Orphans,
    /// Expired idempotency records and old tick claims.
    Gc,
    /// The venue's instruments and calendar, synced.
    Reference,
    /// Orders that should have ended with a session that has closed.
    SessionClose,
}

impl Job {
    pub const ALL: [Job; 7] = [
        Job::OpenOrders,
        Job::UnknownOutcomes,
        Job::Balances,
        Job::Orphans,
        Job::Gc,
        Job::Reference,
        Job::SessionClose,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Job::OpenOrders => "open_orders",
            Job::UnknownOutcomes => "unknown_outcomes",
            Job::Balances => "balances",
            Job::Orphans => "orphans",
            Job::Gc => "gc",
            Job::Reference => "reference",
            Job::SessionClose => "session_close",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.as_str() == text)
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: i64,
    pub job: Job,
    pub examined: u64,
    pub findings: Vec<RecordedFinding>,
    pub errors: Vec<String>,
}

/// What a job collects while it runs.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub run_id: i64,
    pub examined: u64,
    pub findings: Vec<RecordedFinding>,
    pub errors: Vec<String>,
}

/// How long a run's hold on its job lasts without renewal; renewed every
/// third of it while the run goes on, so a crashed instance's hold lapses
/// this long after it died.
pub const JOB_LEASE_TTL: Duration = Duration::from_secs(30);

/// How long a run by hand (or at start-up) waits for the job's current run
/// to finish.
pub const JOB_BUSY_WAIT: Duration = Duration::from_secs(60);

/// Why a run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("reconciliation job {} is still running (waited {:?})", .0.as_str(), JOB_BUSY_WAIT)]
    Busy(Job),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Debug)]
pub struct Reconciler {
    pub engine: Arc<Engine>,
    pub reference: Arc<crate::reference::ReferenceData>,
    pub settings: ReconcileSettings,
    schedules: Vec<(Job, cron::Schedule)>,
    /// Jobs running in this process (the lease keeps other processes out;
    /// this keeps this one from running a job twice).
    running: std::sync::Mutex<std::collections::HashSet<Job>>,
}

/// A job held for one run: given back when dropped.
struct JobHold<'a> {
    reconciler: &'a Reconciler,
    job: Job,
    token: i64,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for JobHold<'_> {
    fn drop(&mut self) {
        self.renewal.abort();
        if let Ok(mut running) = self.reconciler.running.lock() {
            running.remove(&self.job);
        }
        let pool = self.reconciler.engine.pool.clone();
        let (name, instance, token) = (
            job_lease(self.job),
            self.reconciler.engine.instance_id,
            self.token,
        );
        tokio::spawn(async move {
            if let Err(error) = store::release_lease(&pool, &name, instance, token).await {
                tracing::warn!(%error, lease = name, "releasing a job lease");
            }
        });
    }
}

fn job_lease(job: Job) -> String {
    format!("reconcile:{}", job.as_str())
}

impl Reconciler {
    /// Parses the schedules (validated with the settings at start-up).
    pub fn new(
        engine: Arc<Engine>,
        reference: Arc<crate::reference::ReferenceData>,
        settings: ReconcileSettings,
    ) -> Arc<Self> {
        let schedules = Job::ALL
            .into_iter()
            .filter_map(|job| {
                let expression = settings
                    .schedules()
                    .into_iter()
                    .find(|(name, _)| *name == job.as_str())
                    .map(|(_, e)| e.to_string())?;
                cron::Schedule::from_str(&expression).ok().map(|s| (job, s))
            })
            .collect();
        Arc::new(Self {
            engine,
            reference,
            settings,
            schedules,
            running: std::sync::Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// Takes `job` for one run, if no run of it is going on here or on
    /// another instance.
    async fn hold(&self, job: Job) -> Result<Option<JobHold<'_>>, sqlx::Error> {
        {
            let Ok(mut running) = self.running.lock() else {
                return Ok(None);
            };
            if !running.insert(job) {
                return Ok(None);
            }
        }
        let name = job_lease(job);
        let ttl_ms = u64::try_from(JOB_LEASE_TTL.as_millis()).unwrap_or(u64::MAX);
        let acquired = store::acquire_lease(
            &self.engine.pool,
            &name,
            self.engine.instance_id,
            ttl_ms,
            self.engine.settings.instance_dead_after_ms,
        )
        .await;
        let token = match acquired {
            Ok(Some(token)) => token,
            other => {
                if let Ok(mut running) = self.running.lock() {
                    running.remove(&job);
                }
                return other.map(|_| None);
            }
        };
        let pool = self.engine.pool.clone();
        let instance = self.engine.instance_id;
        let renewal = tokio::spawn(async move {
            loop {
                tokio::time::sleep(JOB_LEASE_TTL / 3).await;
                match store::renew_lease(&pool, &name, instance, token, ttl_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(lease = name, "a job lease was taken over mid-run");
                        return;
                    }
                    Err(error) => tracing::warn!(%error, lease = name, "renewing a job lease"),
                }
            }
        });
        Ok(Some(JobHold {
            reconciler: self,
            job,
            token,
            renewal,
        }))
    }

    /// Waits (up to [`JOB_BUSY_WAIT`]) until `job` can be taken.
    async fn hold_waiting(&self, job: Job) -> Result<JobHold<'_>, RunError> {
        let until = tokio::time::Instant::now() + JOB_BUSY_WAIT;
        loop {
            if let Some(hold) = self.hold(job).await? {
                return Ok(hold);
            }
            if tokio::time::Instant::now() >= until {
                return Err(RunError::Busy(job));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `job` now, by hand, and records the run: once the job's
    /// current run (here or on another instance) is over, waiting up to
    /// [`JOB_BUSY_WAIT`] for it.
    pub async fn run_job(&self, job: Job) -> Result<RunSummary, RunError> {
        let _hold = self.hold_waiting(job).await?;
        Ok(self.run(job, None, "manual").await?)
    }

    /// Runs `job` as part of this instance's start, recorded as such.
    pub async fn run_at_startup(&self, job: Job) -> Result<RunSummary, RunError> {
        let _hold = self.hold_waiting(job).await?;
        Ok(self.run(job, None, "startup").await?)
    }

    /// Runs `job` for its cron tick `tick`, unless a run of it is still
    /// going on (the tick is skipped: counted, and the next one comes).
    async fn run_scheduled(&self, job: Job, tick: DateTime<Utc>) -> Result<(), sqlx::Error> {
        let Some(_hold) = self.hold(job).await? else {
            metrics::counter!(names::RECONCILE_SKIPPED, "job" => job.as_str()).increment(1);
            tracing::info!(job = job.as_str(), %tick, "tick skipped: the job's last run is still going");
            return Ok(());
        };
        self.run(job, Some(tick), "schedule").await.map(|_| ())
    }

    async fn run(
        &self,
        job: Job,
        scheduled_for: Option<DateTime<Utc>>,
        trigger: &str,
    ) -> Result<RunSummary, sqlx::Error> {
        let pool = &self.engine.pool;
        let since = store::last_run_start(pool, job.as_str()).await?;
        let run_id = store::start_run(
            pool,
            job.as_str(),
            scheduled_for,
            trigger,
            self.engine.instance_id,
        )
        .await?;
        let mut tally = Tally {
            run_id,
            ..Tally::default()
        };
        let result = match job {
            Job::OpenOrders => jobs::open_orders(self, &mut tally).await,
            Job::UnknownOutcomes => jobs::unknown_outcomes(self, &mut tally).await,
            Job::Balances => jobs::balances(self, since, &mut tally).await,
            Job::Orphans => jobs::orphans(self, &mut tally).await,
            Job::Gc => jobs::gc(self, &mut tally).await,
            Job::Reference => day::reference(self, &mut tally).await,
            Job::SessionClose => day::session_close(self, &mut tally).await,
        };
        if let Err(error) = result {
            tally.errors.push(error.to_string());
        }
        store::finish_run(pool, run_id, tally.examined, &tally.findings, &tally.errors).await?;
        metrics::counter!(names::RECONCILE_RUNS, "job" => job.as_str()).increment(1);
        for f in &tally.findings {
            metrics::counter!(names::RECONCILE_FINDINGS, "job" => job.as_str(), "kind" => f.finding.kind,
                "classification" => f.finding.classification.as_str())
            .increment(1);
            if let Some(ok) = f.action_ok {
                metrics::counter!(names::RECONCILE_REPAIRS, "job" => job.as_str(), "kind" => f.finding.kind,
                    "result" => if ok { "ok" } else { "failed" })
                .increment(1);
            }
        }
        for finding in &tally.findings {
            tracing::info!(
                run_id,
                job = job.as_str(),
                kind = finding.finding.kind,
                classification = finding.finding.classification.as_str(),
                order_id = ?finding.order_id,
                action = %finding.action,
                "reconciliation finding"
            );
        }
        Ok(RunSummary {
            run_id,
            job,
            examined: tally.examined,
            findings: tally.findings,
            errors: tally.errors,
        })
    }

    /// Recorded runs, newest first (of `job`, or of every job).
    pub async fn runs(
        &self,
        job: Option<&str>,
        limit: i64,
    ) -> Result<Vec<store::RunRecord>, sqlx::Error> {
        store::list_runs(&self.engine.pool, job, limit).await
    }

    /// A recorded run with its findings.
    pub async fn run_detail(
        &self,
        run_id: i64,
    ) -> Result<Option<(store::RunRecord, Vec<store::FindingRecord>)>, sqlx::Error> {
        store::run_with_findings(&self.engine.pool, run_id).await
    }

    /// Runs due ticks until `shutdown`.
    pub async fn run_scheduler(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let pool = &self.engine.pool;
        let lookback = chrono::Duration::seconds(
            i64::try_from(self.settings.catchup_lookback_secs).unwrap_or(3600),
        );
        // Start after the last tick anyone ran, so a restart runs the
        // latest missed tick once and not every tick it missed.
        let mut seen: Vec<(Job, DateTime<Utc>)> = Vec::new();
        for (job, _) in &self.schedules {
            let floor = Utc::now() - lookback;
            let last = store::last_tick(pool, job.as_str())
                .await
                .ok()
                .flatten()
                .unwrap_or(floor);
            seen.push((*job, last.max(floor)));
        }
        loop {
            let now = Utc::now();
            for ((job, schedule), (_, last)) in self.schedules.iter().zip(seen.iter_mut()) {
                let Some(tick) = latest_due(schedule, *last, now) else {
                    continue;
                };
                match store::claim_tick(pool, job.as_str(), tick, self.engine.instance_id).await {
                    Ok(true) => {
                        *last = tick;
                        let this = self.clone();
                        let job = *job;
                        // Jobs run beside the scheduler so a slow one does
                        // not delay the others' ticks.
                        tokio::spawn(async move {
                            if let Err(error) = this.run_scheduled(job, tick).await {
                                tracing::error!(job = job.as_str(), %error, "reconciliation run failed");
                            }
                        });
                    }
                    Ok(false) => *last = tick,
                    // Unknown (the claim may have committed with its answer
                    // lost, or the database is away): claimed again at the
                    // next look, which resolves it (`store::claim_tick`).
                    Err(error) => {
                        tracing::warn!(job = job.as_str(), %error, "claiming a reconciliation tick; trying again")
                    }
                }
            }
            tokio::select! {
                // The next look, or the stop.
                _ = tokio::time::sleep(SCHEDULER_POLL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

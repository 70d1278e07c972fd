//! Shared state, the market task, and the in-process entry points
//! ([`spawn`] and [`Handle`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{NaiveDate, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::clock::Phase;
use crate::config::Config;
use crate::faults::{FaultCounters, FaultProfile};
use crate::market::{ExecReport, ListError, Listing, Market, MarketParams, WallClockError};
use crate::wire::{
    AssetResponse, CalendarDay, ClockResponse, FillResponse, GroundTruth, GroundTruthOrder,
    GroundTruthSession, HaltResponse, OrderResponse, QuoteResponse, Stats,
};

/// How long `Handle::shutdown` waits for the server to finish.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Mixed into the seed so the fault rolls and the market draw from
/// independent streams.
const FAULT_SEED_SALT: u64 = 0x5EED_FA17;

/// Everything behind the one lock. Held briefly, never across an await.
pub(crate) struct State {
    pub market: Market,
    pub faults: FaultProfile,
    pub fault_rng: ChaCha8Rng,
    /// Raw POST /v1/orders requests per client_order_id.
    pub placement_requests: HashMap<String, u64>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub orders_created: AtomicU64,
    pub orders_rejected: AtomicU64,
    pub placement_requests: AtomicU64,
    pub reports_published: AtomicU64,
    pub reports_sent: AtomicU64,
    pub connections_opened: AtomicU64,
    pub connections_open: AtomicU64,
    pub slow_consumer_disconnects: AtomicU64,
}

pub(crate) struct Shared {
    pub config: Config,
    state: Mutex<State>,
    /// Every report, in publication order; each websocket connection
    /// subscribes (the ring is its bounded queue).
    pub reports: broadcast::Sender<Arc<ExecReport>>,
    pub counters: Counters,
    pub fault_counters: FaultCounters,
    /// Bumped on every fault-profile change so connections can cache it.
    pub faults_version: AtomicU64,
    pub shutdown: watch::Receiver<bool>,
    /// Bumped by `POST /admin/disconnect`: every stream connection closes.
    pub kick: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the market half-updated
        // in a way worse than stopping the venue would; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` under the lock and publishes the reports it produced, in
    /// order, before releasing the lock (so publication order = event order).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.lock();
        let result = f(&mut state);
        let reports = state.market.drain_reports();
        if !reports.is_empty() {
            self.counters
                .reports_published
                .fetch_add(reports.len() as u64, Ordering::Relaxed);
            for report in reports {
                // No subscriber is not an error: nobody listens.
                let _ = self.reports.send(Arc::new(report));
            }
        }
        result
    }

    pub fn faults(&self) -> FaultProfile {
        self.lock().faults.clone()
    }

    pub fn set_faults(&self, profile: FaultProfile) -> Result<(), String> {
        profile.validate()?;
        let mut state = self.lock();
        state.market.set_halt_fault(profile.halt, profile.halt_ms);
        state.faults = profile;
        drop(state);
        self.faults_version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// The clock now, after firing everything due (so the phase answered
    /// is the one the market acts on).
    pub fn clock(&self) -> ClockResponse {
        let now = Utc::now();
        self.with_state(|s| {
            s.market.advance(now);
            ClockResponse::new(s.market.schedule().mode(), s.market.clock(now), now)
        })
    }

    /// Trading days in `[start, end]`; `start` defaults to the current
    /// session's date, `end` to `start + default_days`.
    pub fn calendar(
        &self,
        start: Option<NaiveDate>,
        end: impl FnOnce(NaiveDate) -> NaiveDate,
    ) -> Vec<CalendarDay> {
        let now = Utc::now();
        self.with_state(|s| {
            s.market.advance(now);
            let start = start.unwrap_or_else(|| s.market.clock(now).session_date);
            s.market
                .calendar(start, end(start))
                .iter()
                .map(CalendarDay::from)
                .collect()
        })
    }

    /// Moves the accelerated clock to the next start of `phase` (see
    /// `Market::advance_clock_to`) and answers the new clock.
    pub fn advance_clock(&self, phase: Phase) -> Result<ClockResponse, WallClockError> {
        let now = Utc::now();
        self.with_state(|s| {
            s.market.advance_clock_to(phase, now)?;
            Ok(ClockResponse::new(
                s.market.schedule().mode(),
                s.market.clock(now),
                now,
            ))
        })
    }

    /// Every asset, or those with the given `active` flag.
    pub fn assets(&self, active: Option<bool>) -> Vec<AssetResponse> {
        self.with_state(|s| {
            s.market
                .instruments()
                .iter()
                .filter(|i| active.is_none_or(|a| i.active == a))
                .map(AssetResponse::from)
                .collect()
        })
    }

    pub fn asset(&self, symbol: &str) -> Option<AssetResponse> {
        self.with_state(|s| s.market.instrument(symbol).map(AssetResponse::from))
    }

    pub fn list_asset(&self, listing: Listing) -> Result<AssetResponse, ListError> {
        let now = Utc::now();
        self.with_state(|s| {
            s.market.advance(now);
            s.market.list_asset(listing, now).map(AssetResponse::from)
        })
    }

    /// Delists (see `Market::delist`); None for an unknown symbol.
    pub fn delist(&self, symbol: &str) -> Option<AssetResponse> {
        let now = Utc::now();
        self.with_state(|s| {
            s.market.advance(now);
            s.market.delist(symbol, now).map(AssetResponse::from)
        })
    }

    pub fn halt(&self, symbol: &str) -> Option<AssetResponse> {
        let now = Utc::now();
        self.with_state(|s| {
            s.market.advance(now);
            s.market.halt(symbol, now).map(AssetResponse::from)
        })
    }

    pub fn resume(&self, symbol: &str) -> Option<AssetResponse> {
        let now = Utc::now();
        self.with_state(|s| {
            s.market.advance(now);
            s.market.resume(symbol, now).map(AssetResponse::from)
        })
    }

    pub fn reset(&self) {
        self.with_state(|s| {
            s.market.reset();
            s.placement_requests.clear();
        });
    }

    pub fn set_price(&self, symbol: &str, price: Decimal) -> Option<QuoteResponse> {
        let now = Utc::now();
        self.with_state(|s| {
            // What is due fires first, so the price meets the phase of now.
            s.market.advance(now);
            s.market.set_price(symbol, price, now)
        })
        .map(|q| QuoteResponse::new(q, now))
    }

    pub fn ground_truth(&self) -> GroundTruth {
        self.with_state(|s| {
            let orders = s
                .market
                .orders()
                .iter()
                .map(|o| GroundTruthOrder {
                    order: OrderResponse::from(o),
                    fills: o.fills.iter().map(FillResponse::from).collect(),
                    placement_requests: s
                        .placement_requests
                        .get(&o.client_order_id)
                        .copied()
                        .unwrap_or(0),
                })
                .collect();
            let mut orders_created: BTreeMap<String, u64> = BTreeMap::new();
            for o in s.market.orders() {
                *orders_created.entry(o.client_order_id.clone()).or_default() += 1;
            }
            GroundTruth {
                orders,
                placement_requests: s
                    .placement_requests
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
                orders_created,
                sessions: s.market.sessions().map(GroundTruthSession::from).collect(),
                halts: s.market.halts().map(HaltResponse::from).collect(),
            }
        })
    }

    pub fn stats(&self) -> Stats {
        let (orders, open_orders, halts) = self.with_state(|s| {
            let orders = s.market.orders().len() as u64;
            let open = s
                .market
                .orders()
                .iter()
                .filter(|o| !o.status.is_terminal())
                .count() as u64;
            (orders, open, s.market.fault_halts())
        });
        let c = &self.counters;
        let mut faults = self.fault_counters.snapshot();
        faults.halt = halts;
        Stats {
            faults,
            orders,
            open_orders,
            orders_created: c.orders_created.load(Ordering::Relaxed),
            orders_rejected: c.orders_rejected.load(Ordering::Relaxed),
            placement_requests: c.placement_requests.load(Ordering::Relaxed),
            reports_published: c.reports_published.load(Ordering::Relaxed),
            reports_sent: c.reports_sent.load(Ordering::Relaxed),
            connections_opened: c.connections_opened.load(Ordering::Relaxed),
            connections_open: c.connections_open.load(Ordering::Relaxed),
            slow_consumer_disconnects: c.slow_consumer_disconnects.load(Ordering::Relaxed),
        }
    }
}

/// A running venue. Dropping it stops the venue too (without waiting).
pub struct Handle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    market: Option<JoinHandle<()>>,
}

impl Handle {
    /// The bound address (the real port when the config asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base of the REST API.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://ADDR/v1/stream`.
    pub fn stream_url(&self) -> String {
        format!("ws://{}/v1/stream", self.addr)
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Current fault profile (same as `GET /admin/faults`).
    pub fn faults(&self) -> FaultProfile {
        self.shared.faults()
    }

    /// Replaces the fault profile (same as `PUT /admin/faults`).
    pub fn set_faults(&self, profile: FaultProfile) -> Result<(), String> {
        self.shared.set_faults(profile)
    }

    /// Forgets all orders and placement counts (same as `POST /admin/reset`).
    pub fn reset(&self) {
        self.shared.reset()
    }

    /// Sets a symbol's reference price (same as `POST /admin/prices`).
    pub fn set_price(&self, symbol: &str, price: Decimal) -> Option<QuoteResponse> {
        self.shared.set_price(symbol, price)
    }

    /// Same as `GET /admin/ground-truth`.
    pub fn ground_truth(&self) -> GroundTruth {
        self.shared.ground_truth()
    }

    /// Same as `GET /admin/stats`.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Same as `GET /v1/clock`.
    pub fn clock(&self) -> ClockResponse {
        self.shared.clock()
    }

    /// Same as `POST /admin/clock/advance`: the next start of `phase` is
    /// now (accelerated clock only).
    pub fn advance_clock(&self, phase: Phase) -> Result<ClockResponse, WallClockError> {
        self.shared.advance_clock(phase)
    }

    /// Same as `POST /admin/assets/{symbol}/halt`; None for an unknown symbol.
    pub fn halt(&self, symbol: &str) -> Option<AssetResponse> {
        self.shared.halt(symbol)
    }

    /// Same as `POST /admin/assets/{symbol}/resume`.
    pub fn resume(&self, symbol: &str) -> Option<AssetResponse> {
        self.shared.resume(symbol)
    }

    /// Same as `POST /admin/assets/{symbol}/delist`.
    pub fn delist(&self, symbol: &str) -> Option<AssetResponse> {
        self.shared.delist(symbol)
    }

    /// Stops accepting, closes stream connections, stops the market, and
    /// waits (bounded) for the server to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown_tx.send(true);
        if let Some(server) = self.server.take() {
            match tokio::time::timeout(SHUTDOWN_TIMEOUT, server).await {
                Ok(joined) => joined
                    .context("server task panicked")?
                    .context("server failed")?,
                Err(_) => anyhow::bail!("server did not stop within {SHUTDOWN_TIMEOUT:?}"),
            }
        }
        if let Some(market) = self.market.take() {
            market.await.context("market task panicked")?;
        }
        Ok(())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}

/// Binds `config.listen`, starts the market task and the HTTP server, and
/// returns once the venue accepts connections.
pub async fn spawn(config: Config) -> anyhow::Result<Handle> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let run_id = format!("{:08x}", rand::random::<u32>());
    let params = MarketParams::new(&config, config.load_calendar()?).map_err(anyhow::Error::msg)?;
    let mut market = Market::new(params, &config.symbols, config.seed, run_id, Utc::now());
    market.set_halt_fault(config.faults.halt, config.faults.halt_ms);
    let (reports, _) = broadcast::channel(config.stream_queue_len);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            market,
            faults: config.faults.clone(),
            fault_rng: ChaCha8Rng::seed_from_u64(config.seed ^ FAULT_SEED_SALT),
            placement_requests: HashMap::new(),
        }),
        config,
        reports,
        counters: Counters::default(),
        fault_counters: FaultCounters::default(),
        faults_version: AtomicU64::new(0),
        shutdown: shutdown_rx.clone(),
        kick: watch::channel(0).0,
    });

    let market_task = tokio::spawn(run_market(shared.clone(), shutdown_rx.clone()));
    let router = crate::api::router(shared.clone());
    let mut server_shutdown = shutdown_rx;
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = server_shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });
    tracing::debug!(%addr, "exchange-sim started");
    Ok(Handle {
        addr,
        shared,
        shutdown_tx,
        server: Some(server),
        market: Some(market_task),
    })
}

/// The one market task: every `market_tick_ms` fires what is due (fill
/// chunks, cancels, price walk, halts, the session's phases and auctions).
async fn run_market(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(shared.config.market_tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Utc::now();
                shared.with_state(|s| s.market.advance(now));
            }
            _ = stopped(&mut shutdown) => break,
        }
    }
}

/// Resolves once shutdown is requested (or the handle is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard returned by wait_for is dropped here, keeping callers Send.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

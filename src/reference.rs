//! Reference data: the venue's instruments and its calendar of sessions.
//! The `reference` job syncs them from the venue into the database (at
//! start-up and on its schedule, audited like every job); every instance
//! holds a copy in memory, reloaded from the database, so intake validates
//! a symbol and the clock answers without a call to the venue.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{Days, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Settings;
use crate::domain::asset::{self, Asset, AssetChange, AssetRefusal, AssetStatus};
use crate::domain::order::{Amount, NewOrder};
use crate::domain::session::{Calendar, SessionDay, SessionRules};
use crate::store::reference as store;
use crate::venues::CallError;
use crate::venues::exchange::ExchangeClient;
use crate::venues::reference::{VenueAsset, VenueSession};

/// What every instance knows of the reference data, at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// By symbol, in symbol order.
    assets: Vec<Asset>,
    by_symbol: HashMap<String, usize>,
    by_id: HashMap<Uuid, usize>,
    pub calendar: Calendar,
}

impl Snapshot {
    fn new(mut assets: Vec<Asset>, sessions: Vec<SessionDay>, rules: SessionRules) -> Self {
        assets.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        let by_symbol = assets
            .iter()
            .enumerate()
            .map(|(i, a)| (a.symbol.clone(), i))
            .collect();
        let by_id = assets
            .iter()
            .enumerate()
            .map(|(i, a)| (a.asset_id, i))
            .collect();
        Self {
            assets,
            by_symbol,
            by_id,
            calendar: Calendar::new(sessions, rules),
        }
    }

    /// Whether the venue's instruments have been synced at least once.
    pub fn has_assets(&self) -> bool {
        !self.assets.is_empty()
    }

    pub fn assets(&self) -> &[Asset] {
        &self.assets
    }

    /// The asset of a symbol (any case) or of orderd's asset id.
    pub fn asset(&self, symbol_or_id: &str) -> Option<&Asset> {
        let index = match Uuid::parse_str(symbol_or_id) {
            Ok(id) => self.by_id.get(&id),
            Err(_) => self.by_symbol.get(&symbol_or_id.to_ascii_uppercase()),
        };
        index.map(|i| &self.assets[*i])
    }

    /// Whether `order` can be taken: its symbol listed, active and
    /// tradable, its quantity and price within the asset's rules.
    pub fn admit(&self, order: &NewOrder) -> Result<(), AssetRefusal> {
        let symbol = order.symbol.as_str();
        let asset = self
            .by_symbol
            .get(symbol)
            .map(|i| &self.assets[*i])
            .ok_or_else(|| AssetRefusal::Unknown(symbol.to_string()))?;
        match order.amount {
            Amount::Qty(qty) => asset.admits(qty.value(), &order.prices.on_the_tick()),
            Amount::Notional(_) => asset.admits_notional(),
        }
    }
}

/// A sync that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the venue: {0}")]
    Venue(#[from] CallError),
    #[error("the database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a sync found and recorded.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Instruments and sessions looked at.
    pub examined: u64,
    pub asset_changes: Vec<AssetChange>,
    /// Sessions synced (the calendar is replaced for its range every time).
    pub sessions: usize,
    /// How far the venue's clock is from this instance's (venue minus
    /// ours, at the middle of the call), when more than the placements'
    /// allowed skew (`exchange.clock_skew_ms`): their receive windows then
    /// prove less than they claim.
    pub clock_skew: Option<chrono::Duration>,
}

#[derive(Debug)]
pub struct ReferenceData {
    current: RwLock<Arc<Snapshot>>,
    pool: PgPool,
    exchange: ExchangeClient,
    rules: SessionRules,
    calendar_days: u32,
    refresh: Duration,
    clock_skew_allowed: chrono::Duration,
}

fn asset_of(venue: VenueAsset) -> Asset {
    Asset {
        asset_id: asset::asset_id(&venue.symbol),
        symbol: venue.symbol,
        venue_asset_id: venue.id,
        name: venue.name,
        exchange: venue.exchange,
        asset_class: "us_equity".to_string(),
        status: if venue.status == "active" {
            AssetStatus::Active
        } else {
            AssetStatus::Inactive
        },
        tradable: venue.tradable,
        shortable: venue.shortable,
        easy_to_borrow: venue.easy_to_borrow,
        fractionable: venue.fractionable,
        marginable: venue.marginable,
        halted: venue.halted,
        tick_size: venue.tick_size,
        sub_dollar_tick_size: venue.sub_dollar_tick_size,
        tick_threshold: venue.tick_threshold,
        lot_size: venue.lot_size,
        min_qty: venue.min_qty,
        max_qty: venue.max_qty,
    }
}

fn session_of(venue: VenueSession) -> SessionDay {
    SessionDay {
        date: venue.date,
        pre_open: venue.pre_open,
        open: venue.open,
        closing_auction: venue.closing_auction,
        close: venue.close,
        early_close: venue.early_close,
    }
}

impl ReferenceData {
    pub fn new(pool: PgPool, exchange: ExchangeClient, settings: &Settings) -> Arc<Self> {
        let rules = settings.market.session_rules();
        Arc::new(Self {
            current: RwLock::new(Arc::new(Snapshot::new(Vec::new(), Vec::new(), rules))),
            pool,
            exchange,
            rules,
            calendar_days: settings.reference.calendar_days,
            refresh: Duration::from_millis(settings.reference.refresh_ms),
            clock_skew_allowed: chrono::Duration::milliseconds(
                i64::try_from(settings.exchange.clock_skew_ms).unwrap_or(i64::MAX),
            ),
        })
    }

    /// The current copy (cheap: an `Arc`).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads the copy from the database.
    pub async fn reload(&self) -> Result<(), sqlx::Error> {
        let assets = store::assets(&self.pool).await?;
        let sessions = store::sessions(&self.pool).await?;
        let snapshot = Arc::new(Snapshot::new(assets, sessions, self.rules));
        match self.current.write() {
            Ok(mut current) => *current = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
        Ok(())
    }

    /// Fetches the venue's instruments and calendar, records what changed,
    /// and reloads. No transaction is open during the venue's calls.
    pub async fn sync(&self) -> Result<SyncReport, SyncError> {
        let listed: Vec<Asset> = self
            .exchange
            .assets()
            .await?
            .into_iter()
            .map(asset_of)
            .collect();
        let today = Utc::now().date_naive();
        let start = today - Days::new(7);
        let end = today + Days::new(u64::from(self.calendar_days));
        let sessions: Vec<SessionDay> = self
            .exchange
            .calendar(start, end)
            .await?
            .into_iter()
            .map(session_of)
            .collect();
        let asked = Utc::now();
        let venue_clock = self.exchange.clock().await?;
        let answered = Utc::now();
        let skew = venue_clock.timestamp - (asked + (answered - asked) / 2);
        let clock_skew = (skew.abs() > self.clock_skew_allowed).then_some(skew);
        let known = store::assets(&self.pool).await?;
        let changes = asset::diff(&known, &listed);
        let changed: Vec<Asset> = changes.iter().map(|c| c.after().clone()).collect();
        store::save_assets(&self.pool, &changed).await?;
        store::replace_sessions(&self.pool, start, end, &sessions).await?;
        self.reload().await?;
        Ok(SyncReport {
            examined: (listed.len() + sessions.len()) as u64,
            asset_changes: changes,
            sessions: sessions.len(),
            clock_skew,
        })
    }

    /// Reloads every `reference.refresh_ms` until `shutdown`: the job that
    /// syncs runs on one instance, every instance reads what it wrote.
    pub async fn run_refresher(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                // The next reload, or the stop.
                _ = tokio::time::sleep(self.refresh) => {}
                _ = shutdown.changed() => return,
            }
            if let Err(error) = self.reload().await {
                tracing::warn!(%error, "reloading reference data");
            }
        }
    }
}

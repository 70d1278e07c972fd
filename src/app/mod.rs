//! The application layer: each use case a front door offers, end to end,
//! over the engine and the store, with nothing of HTTP in it. A handler
//! parses, calls one function here, renders; a second front door (a FIX
//! session, a CLI command, a batch import) calls the same functions.
//!
//! - [`intake`]: submit an order (validation happened before; here the
//!   idempotency protocol, the hold's pricing, the accept write, driving
//!   it as far as its answer within a deadline);
//! - [`idempotency`]: the Idempotency-Key protocol on its own;
//! - [`cancel`]: cancel one order, cancel all;
//! - [`queries`]: what a trader may read of its orders;
//! - [`account`]: cash and positions from the ledger of record;
//! - [`positions`]: closing positions (each an ordinary market sell);
//! - [`console`]: the operator console's sessions, reads and actions.

pub mod account;
pub mod cancel;
pub mod console;
pub mod health;
pub mod idempotency;
pub mod intake;
pub mod positions;
pub mod queries;
pub mod ratelimit;
pub mod replace;

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Settings;
use crate::engine::Engine;
use crate::reconcile::Reconciler;

/// What every use case works with: one per process.
#[derive(Debug)]
pub struct App {
    pub settings: Settings,
    pub pool: PgPool,
    /// This process's row in `instances`; owner of its leases.
    pub instance_id: Uuid,
    /// Its name and generation.
    pub identity: crate::instance::Identity,
    pub engine: Arc<Engine>,
    pub reconciler: Arc<Reconciler>,
    /// The venue's instruments and calendar, in memory.
    pub reference: Arc<crate::reference::ReferenceData>,
    /// Verified API keys (see [`account::authenticate`]).
    pub auth_cache: account::AuthCache,
    /// Requests per account and minute, on this instance.
    pub rate_limiter: ratelimit::RateLimiter,
    /// When `/metrics` last read its database gauges.
    pub gauge_cache: health::GaugeCache,
    /// Console login attempts on this instance, in all (one bucket).
    pub console_logins: ratelimit::RateLimiter,
}

impl App {
    /// The engine and the reconciler over `pool`, for the instance
    /// `identity`.
    pub fn new(settings: Settings, pool: PgPool, identity: crate::instance::Identity) -> Arc<Self> {
        let instance_id = identity.instance_id;
        let engine = Engine::new(pool.clone(), &settings, instance_id);
        let reference =
            crate::reference::ReferenceData::new(pool.clone(), engine.exchange.clone(), &settings);
        let reconciler = Reconciler::new(
            engine.clone(),
            reference.clone(),
            settings.reconcile.clone(),
        );
        let auth_cache = account::AuthCache::new(std::time::Duration::from_millis(
            settings.http.auth_cache_ms,
        ));
        let rate_limiter = ratelimit::RateLimiter::new(settings.http.rate_limit_per_minute);
        let console_logins =
            ratelimit::RateLimiter::new(settings.console.login_attempts_per_minute);
        Arc::new(Self {
            settings,
            pool,
            instance_id,
            identity,
            engine,
            reconciler,
            reference,
            auth_cache,
            rate_limiter,
            gauge_cache: health::GaugeCache::default(),
            console_logins,
        })
    }
}

/// Why a use case could not finish: never the trader's fault (those are
/// each use case's own errors), always worth a log line.
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("{0}")]
    Broken(String),
}

impl From<crate::store::orders::CorruptRow> for Internal {
    fn from(error: crate::store::orders::CorruptRow) -> Self {
        Internal::Engine(error.into())
    }
}

impl From<tokio::task::JoinError> for Internal {
    fn from(error: tokio::task::JoinError) -> Self {
        Internal::Broken(format!("a use case's task failed: {error}"))
    }
}

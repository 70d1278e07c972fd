//! Builds the application from settings, so the binary and the tests start
//! orderd the same way: open the database (embedded or by URL), migrate,
//! bind the listener, serve until a shutdown future completes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::{DatabaseSettings, Settings};
use crate::db;
use crate::embedded_postgres::{self, ClusterOptions, EmbeddedPostgres};
use crate::engine::{catchup, completer, settler, venue_stream};
use crate::http::AppState;
use crate::supervise::supervise;

/// The database orderd uses inside the embedded cluster.
pub const EMBEDDED_DATABASE: &str = "orderd";

/// How long to wait for an adopted embedded cluster to accept connections.
const EMBEDDED_READY_LIMIT: Duration = Duration::from_secs(30);

/// Whether a command must own the embedded cluster (`serve`) or may use the
/// one a running `serve` owns (short CLI commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddedAccess {
    Own,
    AttachOrStart,
}

/// An open database: the pool, and the embedded cluster when this process
/// started it.
#[derive(Debug)]
pub struct Database {
    pub pool: PgPool,
    embedded: Option<Arc<EmbeddedPostgres>>,
    /// Restarts the owned embedded cluster if its postmaster dies.
    watchdog: Option<Background>,
    /// With several hosts in `database.url`: keeps the pool on the primary.
    follower: Option<Background>,
}

/// A background task of the database's and the sender that stops it.
type Background = (
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Sender<bool>,
);

/// How often the owner of the embedded cluster checks it still runs.
pub const EMBEDDED_WATCHDOG_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps the owned embedded cluster running: if its postmaster dies (a
/// crash, a SIGKILL), it is started again — Postgres recovers from its
/// WAL, so nothing committed is lost — and the pool's connections, the
/// liveness connection and the listeners reconnect by themselves.
fn watch_embedded(pg: Arc<EmbeddedPostgres>, options: ClusterOptions) -> Background {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                // The next check, or the stop.
                _ = tokio::time::sleep(EMBEDDED_WATCHDOG_INTERVAL) => {}
                _ = stopped.changed() => return,
            }
            let pg = pg.clone();
            let options = options.clone();
            match tokio::task::spawn_blocking(move || pg.ensure_running(&options)).await {
                Ok(Ok(false)) => {}
                Ok(Ok(true)) => {
                    tracing::warn!("the embedded PostgreSQL had stopped; started it again");
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "the embedded PostgreSQL is down; retrying");
                }
                Err(error) => tracing::error!(%error, "embedded PostgreSQL watchdog"),
            }
        }
    });
    (task, stop)
}

impl Database {
    /// Opens `database.url`, or the embedded cluster when it is unset, and
    /// applies migrations.
    pub async fn open(settings: &DatabaseSettings, access: EmbeddedAccess) -> anyhow::Result<Self> {
        let mut candidates = Vec::new();
        let mut current = 0;
        let (options, embedded) = match &settings.url {
            Some(url) => {
                candidates = db::hosts::candidates(url)
                    .map_err(|problem| anyhow::anyhow!("`database.url`: {problem}"))?;
                // Start on the primary; with none reachable yet, on the
                // first host (the migration then says why it cannot).
                if candidates.len() > 1 {
                    current = db::hosts::find_primary(&candidates).await.unwrap_or(0);
                }
                (candidates[current].clone(), None)
            }
            None => {
                let dir = settings.data_dir.clone();
                let cluster_options = ClusterOptions {
                    settings: settings.server_settings().map_err(|problem| {
                        anyhow::anyhow!("database.embedded_settings: {problem}")
                    })?,
                    ..ClusterOptions::default()
                };
                let start_options = cluster_options.clone();
                let pg = tokio::task::spawn_blocking(move || match access {
                    EmbeddedAccess::Own => EmbeddedPostgres::start(&dir, &start_options),
                    EmbeddedAccess::AttachOrStart => {
                        EmbeddedPostgres::attach_or_start(&dir, &start_options)
                    }
                })
                .await
                .context("embedded PostgreSQL start-up task")??;
                let admin = pg.connect_options("postgres");
                if !embedded_postgres::wait_until_accepting(&admin, EMBEDDED_READY_LIMIT).await {
                    anyhow::bail!(
                        "embedded PostgreSQL in {} did not accept connections within {:?}; see {}/postgres.log",
                        pg.dir().display(),
                        EMBEDDED_READY_LIMIT,
                        pg.dir().display()
                    );
                }
                db::create_database_if_missing(&admin, EMBEDDED_DATABASE)
                    .await
                    .context("creating the orderd database in the embedded cluster")?;
                tracing::info!(
                    dir = %pg.dir().display(),
                    url = %pg.url(EMBEDDED_DATABASE),
                    owner = pg.is_owner(),
                    "embedded PostgreSQL ready"
                );
                (
                    pg.connect_options(EMBEDDED_DATABASE),
                    Some((Arc::new(pg), cluster_options)),
                )
            }
        };
        let pool = db::build_pool(options, settings);
        let watchdog = match (&embedded, access) {
            (Some((pg, options)), EmbeddedAccess::Own) if pg.is_owner() => {
                Some(watch_embedded(pg.clone(), options.clone()))
            }
            _ => None,
        };
        let follower = (candidates.len() > 1).then(|| {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let decorating = settings.clone();
            let task = tokio::spawn(db::hosts::follow_primary(
                pool.clone(),
                candidates,
                current,
                move |options| db::decorate(options, &decorating),
                Duration::from_millis(settings.primary_check_ms),
                stopped,
            ));
            (task, stop)
        });
        let database = Self {
            pool,
            embedded: embedded.map(|(pg, _)| pg),
            watchdog,
            follower,
        };
        if let Err(error) = db::migrate(&database.pool).await {
            database.close().await;
            return Err(error).context("applying database migrations");
        }
        Ok(database)
    }

    /// Closes the pool, then stops the embedded cluster if this process
    /// owns it.
    pub async fn close(self) {
        for (task, stop) in self.watchdog.into_iter().chain(self.follower) {
            let _ = stop.send(true);
            let _ = task.await;
        }
        self.pool.close().await;
        let owned = self
            .embedded
            .and_then(|pg| Arc::try_unwrap(pg).ok())
            .filter(EmbeddedPostgres::is_owner);
        if let Some(pg) = owned {
            let dir: PathBuf = pg.dir().to_path_buf();
            match tokio::task::spawn_blocking(move || pg.stop()).await {
                Ok(Ok(())) => tracing::info!(dir = %dir.display(), "embedded PostgreSQL stopped"),
                Ok(Err(error)) => tracing::error!(%error, "stopping embedded PostgreSQL"),
                Err(error) => tracing::error!(%error, "stopping embedded PostgreSQL"),
            }
        }
    }
}

/// A built, bound, not yet serving orderd.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    database: Option<Database>,
}

impl Application {
    /// Opens the database (owning the embedded cluster if configured so)
    /// and binds `http.listen`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let database = Database::open(&settings.database, EmbeddedAccess::Own).await?;
        let pool = database.pool.clone();
        match Self::build_with_pool(settings, pool).await {
            Ok(mut app) => {
                app.database = Some(database);
                Ok(app)
            }
            Err(error) => {
                database.close().await;
                Err(error)
            }
        }
    }

    /// Binds `http.listen` over an already migrated pool (tests give each
    /// app its own fresh database this way).
    pub async fn build_with_pool(settings: Settings, pool: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.http.listen)
            .await
            .with_context(|| format!("binding `http.listen` = {}", settings.http.listen))?;
        let identity =
            crate::instance::register(&pool, &crate::instance::name_of(&settings)).await?;
        // The recorder exists before anything records.
        let _ = crate::metrics::handle();
        let state = AppState::new(App::new(settings, pool, identity));
        sync_reference_data(&state.app).await;
        Ok(Self {
            listener,
            state,
            database: None,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.app.settings.http.listen)
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains requests, marks the
    /// instance stopped and closes the database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            database,
        } = self;
        let app = state.app.clone();
        let (stop_background, background_stopped) = tokio::sync::watch::channel(false);
        let (liveness, mut ended) = crate::instance::start(
            &app.pool,
            &app.identity,
            &app.settings,
            background_stopped.clone(),
        );
        let engine = app.engine.clone();
        let stream_enabled = app.settings.exchange.stream_enabled;
        let background = vec![
            supervise("completer", background_stopped.clone(), {
                let engine = engine.clone();
                move |stop| completer::run(engine.clone(), stop)
            }),
            supervise("settler", background_stopped.clone(), {
                let engine = engine.clone();
                move |stop| settler::run(engine.clone(), stop)
            }),
            supervise("catch-up", background_stopped.clone(), {
                let engine = engine.clone();
                move |stop| catchup::run(engine.clone(), stop)
            }),
            supervise("venue-stream", background_stopped.clone(), {
                let engine = engine.clone();
                move |stop| venue_stream::run(engine.clone(), stop, stream_enabled)
            }),
            supervise("reconciliation", background_stopped.clone(), {
                let reconciler = app.reconciler.clone();
                move |stop| reconciler.clone().run_scheduler(stop)
            }),
            supervise("reference-refresh", background_stopped.clone(), {
                let reference = app.reference.clone();
                move |stop| reference.clone().run_refresher(stop)
            }),
            supervise("trade-update-relay", background_stopped.clone(), {
                let state = state.clone();
                move |stop| crate::http::stream::relay_notifications(state.clone(), stop)
            }),
            supervise("console-live", background_stopped.clone(), {
                let state = state.clone();
                move |stop| crate::console::live::run_hub(state.clone(), stop)
            }),
        ];
        // A newer instance of this name fences this one: stop serving.
        let fenced = async move {
            while ended.changed().await.is_ok() {
                if ended.borrow().is_some() {
                    return;
                }
            }
            std::future::pending::<()>().await;
        };
        let fenced_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shutdown = {
            let fenced_flag = fenced_flag.clone();
            let state = state.clone();
            async move {
                tokio::select! {
                    // The operator's stop, or a successor's fence.
                    () = shutdown => {}
                    () = fenced => fenced_flag.store(true, std::sync::atomic::Ordering::SeqCst),
                }
                // Endless responses end now; the drain waits for the rest.
                let _ = state.stopping.send(true);
            }
        };
        let router =
            crate::http::router(state.clone()).merge(crate::console::router(state.clone()));
        let listener = crate::http::listener::CappedListener::new(
            listener,
            app.settings.http.max_connections,
            std::time::Duration::from_millis(app.settings.http.first_byte_timeout_ms),
        );
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP");
        // Background work finishes its current pass (each step it records
        // is one transaction, never cut short), then stops.
        let _ = stop_background.send(true);
        for task in background {
            if let Err(error) = task.await {
                tracing::error!(%error, "background task");
            }
        }
        let _ = liveness.await;
        let was_fenced = fenced_flag.load(std::sync::atomic::Ordering::SeqCst);
        if !was_fenced {
            crate::instance::mark_stopped(&app.pool, app.instance_id).await;
        }
        if let Some(database) = database {
            database.close().await;
        }
        served?;
        if was_fenced {
            anyhow::bail!("a newer instance with this instance.name started; this one stopped");
        }
        Ok(())
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        // Either signal means the same thing: stop accepting, drain, exit.
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// The first sync of the venue's instruments and calendar, recorded as a
/// `reference` run triggered at start-up. If the venue cannot be reached,
/// what an earlier sync stored serves until the job's next run succeeds.
async fn sync_reference_data(app: &App) {
    let synced = app
        .reconciler
        .run_at_startup(crate::reconcile::Job::Reference)
        .await;
    let failed = match &synced {
        Ok(summary) if summary.errors.is_empty() => {
            tracing::info!(
                run_id = summary.run_id,
                examined = summary.examined,
                changes = summary.findings.len(),
                "reference data synced from the venue"
            );
            false
        }
        Ok(summary) => {
            tracing::warn!(errors = ?summary.errors, "syncing reference data at start-up; using what was stored");
            true
        }
        Err(error) => {
            tracing::warn!(%error, "recording the start-up reference sync; using what was stored");
            true
        }
    };
    if failed && let Err(error) = app.reference.reload().await {
        tracing::warn!(%error, "loading stored reference data");
    }
}

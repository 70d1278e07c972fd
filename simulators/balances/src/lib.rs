//! `balances-sim`: a cash-and-positions ledger service that behaves like a real one,
//! failures included. Two-phase holds (TigerBeetle's pending transfers), settlements
//! keyed by the venue's exec_id, an append-only ledger, Stripe-style idempotency keys
//! and seeded fault injection. See README.md for the HTTP API.
//!
//! Code map:
//! - [`ledger`]: the pure core (no I/O; `now` passed in), where the invariants live;
//! - [`wire`]: JSON bodies; the golden fixtures in `fixtures/` are these serialized;
//! - [`parse`]: request bodies → core requests, with field-named errors;
//! - [`idempotency`]: key records (in flight / done with the stored response);
//! - [`faults`]: the fault profile, seeded dice and counters;
//! - `http`: routes; one mutex over ledger + idempotency, never held across an await.

pub mod config;
pub mod error;
pub mod faults;
mod http;
pub mod idempotency;
pub mod ledger;
pub mod parse;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::Config;
pub use faults::{FaultConfig, LostMode};
pub use http::{IDEMPOTENT_REPLAYED, MAX_BODY_BYTES};

/// How long `Handle::shutdown` waits for in-flight requests before aborting them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulator. Dropping it stops the server too (without waiting).
pub struct Handle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Handle {
    /// The bound address (the real port when the configured port was 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish (up to [`SHUTDOWN_GRACE`]).
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(joined) => joined
                .context("server task failed")?
                .context("server error"),
            Err(_) => {
                task.abort();
                tracing::warn!(
                    "in-flight requests did not finish within the grace period; aborted"
                );
                Ok(())
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `config.listen` and serves until the handle is shut down or dropped.
pub async fn spawn(config: Config) -> anyhow::Result<Handle> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let app = Arc::new(http::App::new(config)?);
    let router = http::router(app);
    let (tx, rx) = oneshot::channel::<()>();
    let listener = listener.tap_io(|tcp| {
        // Small request/response pairs: don't let Nagle add latency.
        let _ = tcp.set_nodelay(true);
    });
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    tracing::info!(%addr, "balances-sim serving");
    Ok(Handle {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

//! This process's identity and liveness. An instance registers under a
//! stable name (`instance.name`); a new generation of a name fences the
//! earlier ones, so a restarted process takes over its predecessor's
//! leases at once. While it lives it holds a session advisory lock and
//! writes a heartbeat on a connection of its own (never the pool: a
//! saturated pool must not make a live instance look dead), and checks
//! its peers: one whose heartbeat is old and whose lock is free is dead.

use std::time::Duration;

use anyhow::Context;
use sqlx::{ConnectOptions, PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::Settings;
use crate::store::instances;

/// Who this process is.
#[derive(Debug, Clone)]
pub struct Identity {
    pub instance_id: Uuid,
    pub name: String,
    pub generation: i64,
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The configured name, or `{hostname}:{http.listen}`; with port 0 (no
/// stable address) a name unique to this process.
pub fn name_of(settings: &Settings) -> String {
    if let Some(name) = &settings.instance.name {
        return name.clone();
    }
    let listen = settings.http.listen;
    if listen.port() == 0 {
        format!(
            "{}:pid-{}-{}",
            hostname(),
            std::process::id(),
            Uuid::new_v4().simple()
        )
    } else {
        format!("{}:{listen}", hostname())
    }
}

/// Registers this process as a new generation of `name`.
pub async fn register(pool: &PgPool, name: &str) -> anyhow::Result<Identity> {
    let (instance_id, generation) = instances::register(
        pool,
        name,
        &hostname(),
        std::process::id(),
        env!("CARGO_PKG_VERSION"),
    )
    .await
    .context("registering this instance")?;
    tracing::info!(%instance_id, name, generation, "instance registered");
    Ok(Identity {
        instance_id,
        name: name.to_string(),
        generation,
    })
}

/// Marks an instance stopped, so its leases are free at once.
pub async fn mark_stopped(pool: &PgPool, instance_id: Uuid) {
    if let Err(error) = instances::mark_stopped(pool, instance_id).await {
        tracing::warn!(%error, "marking this instance stopped");
    }
}

/// Why liveness ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// A newer instance of this name started: this one must stop at once
    /// (its leases are no longer its own).
    Fenced,
}

/// Keeps the heartbeat and the liveness lock on a connection of its own,
/// reconnecting when it drops (a database restart), and reaps dead peers,
/// until `shutdown`. The returned receiver turns `Some(Ended::Fenced)` if
/// a newer generation fenced this instance.
pub fn start(
    pool: &PgPool,
    identity: &Identity,
    settings: &Settings,
    shutdown: watch::Receiver<bool>,
) -> (tokio::task::JoinHandle<()>, watch::Receiver<Option<Ended>>) {
    let (ended_tx, ended) = watch::channel(None);
    let task = tokio::spawn(run(
        pool.clone(),
        identity.instance_id,
        Duration::from_millis(settings.instance.heartbeat_ms),
        settings.instance.reap_after_ms,
        ended_tx,
        shutdown,
    ));
    (task, ended)
}

async fn run(
    pool: PgPool,
    instance_id: Uuid,
    every: Duration,
    reap_after_ms: u64,
    ended: watch::Sender<Option<Ended>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn: Option<PgConnection> = None;
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // The next beat, or the stop.
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        if conn.is_none() {
            // The pool's options as they are now: after a failover they
            // name the new primary.
            let options = pool
                .connect_options()
                .as_ref()
                .clone()
                .application_name("orderd-liveness");
            match options.connect().await {
                Ok(mut fresh) => match instances::lock_self(&mut fresh, instance_id).await {
                    Ok(_) => conn = Some(fresh),
                    Err(error) => tracing::warn!(%error, "taking the liveness lock"),
                },
                Err(error) => {
                    tracing::warn!(%error, "connecting for the instance heartbeat");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match instances::heartbeat(c, instance_id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(%instance_id, "a newer instance of this name started; this one stops");
                let _ = ended.send(Some(Ended::Fenced));
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "instance heartbeat; reconnecting");
                conn = None;
                continue;
            }
        }
        match instances::reap(c, instance_id, reap_after_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(instances = n, "found dead instances; their leases are free"),
            Err(error) => {
                tracing::warn!(%error, "checking peers; reconnecting");
                conn = None;
            }
        }
    }
}

//! The instance registry: every orderd process registers itself at
//! start-up and refreshes its heartbeat while it lives. Leases name their
//! owner by instance id.

use sqlx::PgPool;
use uuid::Uuid;

const REGISTER: &str =
    "INSERT INTO instances (instance_id, hostname, pid, version) VALUES ($1, $2, $3, $4)";

/// Registers a new instance; returns its id.
pub async fn register(
    pool: &PgPool,
    hostname: &str,
    pid: u32,
    version: &str,
) -> Result<Uuid, sqlx::Error> {
    let instance_id = Uuid::now_v7();
    sqlx::query(REGISTER)
        .bind(instance_id)
        .bind(hostname)
        .bind(i32::try_from(pid).unwrap_or(i32::MAX))
        .bind(version)
        .execute(pool)
        .await?;
    Ok(instance_id)
}

const MARK_STOPPED: &str = "UPDATE instances SET stopped_at = now() WHERE instance_id = $1";

/// Marks an instance stopped, so its leases are free at once.
pub async fn mark_stopped(pool: &PgPool, instance_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(MARK_STOPPED)
        .bind(instance_id)
        .execute(pool)
        .await?;
    Ok(())
}

const HEARTBEAT: &str = "UPDATE instances SET last_seen_at = now() WHERE instance_id = $1";

/// Refreshes an instance's heartbeat.
pub async fn heartbeat(pool: &PgPool, instance_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(HEARTBEAT)
        .bind(instance_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("REGISTER", REGISTER),
        ("MARK_STOPPED", MARK_STOPPED),
        ("HEARTBEAT", HEARTBEAT),
    ]
}

//! The instance registry: every orderd process registers itself at
//! start-up under its name (a new generation fences the earlier ones of
//! that name at once) and proves it lives with a heartbeat and a session
//! advisory lock held on its own connection. Leases name their owner by
//! instance id; a lease of a dead instance is free.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The advisory-lock class of instance liveness locks ("ordd"); the key is
/// a hash of the instance id.
pub const LIVENESS_LOCK_CLASS: i32 = 0x6F72_6464;

const SERIALIZE_NAME: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";

const FENCE_PREDECESSORS: &str =
    "UPDATE instances SET fenced_at = now(), stopped_at = COALESCE(stopped_at, now())
      WHERE name = $1 AND fenced_at IS NULL";

const REGISTER: &str = "INSERT INTO instances (instance_id, name, generation, hostname, pid, version)
     SELECT $1, $2, COALESCE((SELECT max(generation) FROM instances WHERE name = $2), 0) + 1, $3, $4, $5
     RETURNING generation";

/// Registers a new instance named `name`, fencing every earlier instance
/// of that name (a restarted process takes over its predecessor's leases
/// at once). Returns its id and generation.
pub async fn register(
    pool: &PgPool,
    name: &str,
    hostname: &str,
    pid: u32,
    version: &str,
) -> Result<(Uuid, i64), sqlx::Error> {
    let instance_id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query(SERIALIZE_NAME)
        .bind(LIVENESS_LOCK_CLASS)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query(FENCE_PREDECESSORS)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let generation: i64 = sqlx::query_scalar(REGISTER)
        .bind(instance_id)
        .bind(name)
        .bind(hostname)
        .bind(i32::try_from(pid).unwrap_or(i32::MAX))
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((instance_id, generation))
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

const LOCK_SELF: &str = "SELECT pg_try_advisory_lock($1, hashtext($2::text))";

/// Takes this instance's liveness lock on `conn` (a session lock: it lives
/// as long as the connection, which lives as long as the process).
pub async fn lock_self(conn: &mut PgConnection, instance_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(LOCK_SELF)
        .bind(LIVENESS_LOCK_CLASS)
        .bind(instance_id)
        .fetch_one(conn)
        .await
}

const HEARTBEAT: &str = "UPDATE instances SET last_seen_at = now(), stopped_at = NULL
      WHERE instance_id = $1 AND fenced_at IS NULL
     RETURNING instance_id";

/// Refreshes the heartbeat (and undoes a peer's verdict that this instance
/// was dead: its leases are fenced by token, so nothing it lost comes
/// back). `false` when a newer instance of its name fenced it: it must
/// stop.
pub async fn heartbeat(conn: &mut PgConnection, instance_id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Uuid>(HEARTBEAT)
        .bind(instance_id)
        .fetch_optional(conn)
        .await?
        .is_some())
}

const SUSPECTS: &str = "SELECT instance_id FROM instances
      WHERE stopped_at IS NULL AND fenced_at IS NULL AND instance_id <> $1
        AND last_seen_at < now() - make_interval(secs => $2::float8 / 1000)
      LIMIT 100";

const PROBE: &str = "SELECT pg_try_advisory_lock($1, hashtext($2::text))";

const UNLOCK: &str = "SELECT pg_advisory_unlock($1, hashtext($2::text))";

const DECLARE_DEAD: &str = "UPDATE instances SET stopped_at = now()
      WHERE instance_id = $1 AND stopped_at IS NULL
        AND last_seen_at < now() - make_interval(secs => $2::float8 / 1000)";

/// Finds peers whose heartbeat is older than `quiet_ms` and whose
/// liveness lock is free (their connection, and so their process, is
/// gone), and marks them stopped: their leases are free at once. Returns
/// how many. A silent peer that still holds its lock is left alone (the
/// dead-instance threshold decides for it).
pub async fn reap(
    conn: &mut PgConnection,
    instance_id: Uuid,
    quiet_ms: u64,
) -> Result<u64, sqlx::Error> {
    let suspects: Vec<Uuid> = sqlx::query_scalar(SUSPECTS)
        .bind(instance_id)
        .bind(quiet_ms as f64)
        .fetch_all(&mut *conn)
        .await?;
    let mut reaped = 0;
    for suspect in suspects {
        let free: bool = sqlx::query_scalar(PROBE)
            .bind(LIVENESS_LOCK_CLASS)
            .bind(suspect)
            .fetch_one(&mut *conn)
            .await?;
        if !free {
            continue;
        }
        sqlx::query(UNLOCK)
            .bind(LIVENESS_LOCK_CLASS)
            .bind(suspect)
            .execute(&mut *conn)
            .await?;
        reaped += sqlx::query(DECLARE_DEAD)
            .bind(suspect)
            .bind(quiet_ms as f64)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(reaped)
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SERIALIZE_NAME", SERIALIZE_NAME),
        ("FENCE_PREDECESSORS", FENCE_PREDECESSORS),
        ("REGISTER", REGISTER),
        ("MARK_STOPPED", MARK_STOPPED),
        ("LOCK_SELF", LOCK_SELF),
        ("HEARTBEAT", HEARTBEAT),
        ("SUSPECTS", SUSPECTS),
        ("PROBE", PROBE),
        ("UNLOCK", UNLOCK),
        ("DECLARE_DEAD", DECLARE_DEAD),
    ]
}

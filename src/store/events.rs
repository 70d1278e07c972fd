//! The order's append-only action timeline: every recorded step with its
//! action state (requested, succeeded, failed, unknown) and detail.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::lifecycle::{ActionState, EventRecord, Step};

/// One row of an order's timeline.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct OrderEvent {
    pub event_id: i64,
    #[schema(value_type = String)]
    pub step: Step,
    #[schema(value_type = String)]
    pub state: ActionState,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub instance_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// The key of an event's detail that names the request which caused it
/// (`X-Request-Id`: an order's accept, a trader's cancel, an operator's
/// resume or cancel).
pub const REQUEST_ID: &str = "request_id";

/// Records `request_id`, if any, in `detail` (an object; anything else is
/// left as it is).
pub fn tag_request(detail: &mut serde_json::Value, request_id: Option<&str>) {
    if let (Some(id), Some(map)) = (request_id, detail.as_object_mut()) {
        map.insert(REQUEST_ID.into(), id.into());
    }
}

/// The request that caused an event, if it was recorded.
pub fn request_of(detail: &serde_json::Value) -> Option<&str> {
    detail.get(REQUEST_ID).and_then(serde_json::Value::as_str)
}

const EVENTS_OF: &str = "SELECT event_id, step, state, detail, instance_id, created_at
       FROM order_events WHERE order_id = $1 ORDER BY event_id";

/// Every event of `order_id`, oldest first.
pub async fn events_of(pool: &PgPool, order_id: Uuid) -> Result<Vec<OrderEvent>, sqlx::Error> {
    sqlx::query_as(EVENTS_OF)
        .bind(order_id)
        .fetch_all(pool)
        .await
}

const INSERT_EVENTS: &str = "INSERT INTO order_events (order_id, step, state, detail, instance_id)
     SELECT $1, s.step, s.state, s.detail, $5
       FROM unnest($2::text[], $3::text[], $4::jsonb[]) AS s(step, state, detail)";

/// Appends `events` of `order_id` in the caller's transaction.
pub async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    instance_id: Uuid,
    events: &[EventRecord],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let columns = EventColumns::of(events);
    sqlx::query(INSERT_EVENTS)
        .bind(order_id)
        .bind(columns.steps)
        .bind(columns.states)
        .bind(columns.details)
        .bind(instance_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Events as the three arrays an `unnest($a::text[], $b::text[],
/// $c::jsonb[])` takes, for statements that write the events in the same
/// statement as the change they record.
pub(crate) struct EventColumns {
    pub steps: Vec<Step>,
    pub states: Vec<ActionState>,
    pub details: Vec<serde_json::Value>,
}

impl EventColumns {
    pub fn of(events: &[EventRecord]) -> Self {
        Self {
            steps: events.iter().map(|e| e.step).collect(),
            states: events.iter().map(|e| e.state).collect(),
            details: events.iter().map(|e| e.detail.clone()).collect(),
        }
    }
}

/// Every statement of this module, for the test that prepares them all.
pub(crate) fn statements() -> Vec<(&'static str, &'static str)> {
    vec![("EVENTS_OF", EVENTS_OF), ("INSERT_EVENTS", INSERT_EVENTS)]
}

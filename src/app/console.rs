//! The operator console's use cases, with nothing of HTML in them: log in
//! and out (sessions shared by every instance), the blotter's pages, one
//! order with everything recorded about it, the venue's and the ledger's
//! view of it, and the operator's actions (the same resume and cancel as
//! `orderd orders resume|cancel`, audited under the operator's name).

use std::time::Instant;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{App, Internal};
use crate::store::console::{self as store, BlotterQuery, BlotterRow};
use crate::store::events::{self, OrderEvent};
use crate::store::executions::{self, FillRecord};
use crate::store::orders::{self, OrderRecord};
use crate::store::quarantine::{self, Quarantined};
use crate::store::recovery::{self, OperatorAction};

/// The longest operator name a session records.
pub const OPERATOR_NAME_MAX: usize = 64;

/// What a console session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads everything; acts on nothing.
    Viewer,
    /// Resumes and cancels orders, runs reconciliation jobs.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// A logged-in console session.
#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    pub operator: String,
    pub csrf_token: String,
}

/// A session just created: `id` goes into the cookie and nowhere else.
#[derive(Debug)]
pub struct NewSession {
    pub id: String,
    pub session: Session,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("that token does not log in to the console")]
    BadToken,
    #[error(
        "give your name (1 to {OPERATOR_NAME_MAX} characters): it is recorded with every action"
    )]
    BadName,
    #[error("too many login attempts; try again in {0} s")]
    TooMany(u64),
    #[error(transparent)]
    Internal(#[from] sqlx::Error),
}

/// The session table's key for a cookie's id.
fn session_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// A random token, 32 bytes as hex.
fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Logs in with the admin token (an operator) or the viewer token.
/// Trader API keys are not tokens here: they never log in.
pub async fn login(app: &App, token: &str, operator: &str) -> Result<NewSession, LoginError> {
    if let Some(state) = app.console_logins.take(Uuid::nil(), Instant::now())
        && let Some(wait) = state.retry_after
    {
        return Err(LoginError::TooMany(wait.as_secs().max(1)));
    }
    let operator = operator.trim();
    if operator.is_empty()
        || operator.chars().count() > OPERATOR_NAME_MAX
        || operator.chars().any(char::is_control)
    {
        return Err(LoginError::BadName);
    }
    let settings = &app.settings;
    let is_admin =
        crate::http::admin::constant_time_eq(token.as_bytes(), settings.admin.token.as_bytes());
    let is_viewer = settings.console.viewer_token.as_ref().is_some_and(|v| {
        !v.is_empty() && crate::http::admin::constant_time_eq(token.as_bytes(), v.as_bytes())
    });
    let role = match (is_admin, is_viewer) {
        (true, _) => Role::Operator,
        (false, true) => Role::Viewer,
        (false, false) => return Err(LoginError::BadToken),
    };
    let id = random_token();
    let session = Session {
        role,
        operator: operator.to_string(),
        csrf_token: random_token(),
    };
    store::insert_session(
        &app.pool,
        &session_hash(&id),
        role.as_str(),
        &session.operator,
        &session.csrf_token,
        settings.console.session_ttl_ms,
    )
    .await?;
    tracing::info!(operator = %session.operator, role = role.as_str(), "console login");
    Ok(NewSession { id, session })
}

/// The live session a cookie names.
pub async fn session(app: &App, id: &str) -> Result<Option<Session>, sqlx::Error> {
    let Some(row) = store::load_session(&app.pool, &session_hash(id)).await? else {
        return Ok(None);
    };
    Ok(Role::parse(&row.role).map(|role| Session {
        role,
        operator: row.operator,
        csrf_token: row.csrf_token,
    }))
}

pub async fn logout(app: &App, id: &str) -> Result<(), sqlx::Error> {
    store::delete_session(&app.pool, &session_hash(id)).await
}

/// The account a blotter filter names (a name or an id).
pub async fn account_named(app: &App, text: &str) -> Result<Option<Uuid>, sqlx::Error> {
    crate::store::accounts::find_account(&app.pool, text.trim()).await
}

/// One page of the blotter.
pub async fn blotter(app: &App, query: &BlotterQuery) -> Result<Vec<BlotterRow>, sqlx::Error> {
    store::blotter_page(&app.pool, query).await
}

/// How many orders are parked, unknown or stuck.
pub async fn attention_counts(app: &App) -> Result<store::AttentionCounts, sqlx::Error> {
    store::attention_counts(&app.pool, app.settings.console.stuck_after_ms).await
}

/// The blotter rows of the orders a live update names.
pub async fn blotter_rows(app: &App, order_ids: &[Uuid]) -> Result<Vec<BlotterRow>, sqlx::Error> {
    store::blotter_rows(&app.pool, order_ids, app.settings.console.stuck_after_ms).await
}

/// Instances running, and those stopped within the hour.
pub async fn instances(app: &App) -> Result<Vec<store::InstanceRow>, sqlx::Error> {
    store::instances(&app.pool, 100).await
}

/// Who holds the venue stream, under which fencing token.
pub async fn venue_stream_lease(app: &App) -> Result<Option<store::LeaseRow>, sqlx::Error> {
    store::lease(&app.pool, crate::store::executions::VENUE_STREAM_LEASE).await
}

/// Everything recorded about one order.
#[derive(Debug)]
pub struct OrderDetail {
    pub order: OrderRecord,
    pub events: Vec<OrderEvent>,
    pub fills: Vec<FillRecord>,
    pub quarantined: Vec<Quarantined>,
}

pub async fn order_detail(app: &App, order_id: Uuid) -> Result<Option<OrderDetail>, Internal> {
    let Some(order) = orders::load(&app.pool, order_id).await? else {
        return Ok(None);
    };
    let events = events::events_of(&app.pool, order_id).await?;
    let fills = executions::fills_of(&app.pool, order_id).await?;
    let quarantined =
        quarantine::of_order(&app.pool, &order.venue_client_order_id, order_id).await?;
    Ok(Some(OrderDetail {
        order,
        events,
        fills,
        quarantined,
    }))
}

/// What the venue and the ledger say of an order now (each call's error
/// is what is shown when it fails).
#[derive(Debug)]
pub struct OutsideView {
    pub venue: Result<Option<crate::venues::exchange::VenueOrder>, String>,
    pub hold: Result<Option<crate::venues::balances::Hold>, String>,
    pub settlements: Result<Vec<crate::venues::balances::Settlement>, String>,
}

/// Asks the venue (by the order's client id, which works without a venue
/// order id) and the ledger (its hold, its settlements), at once.
pub async fn outside_view(app: &App, order: &OrderRecord) -> OutsideView {
    let engine = &app.engine;
    let venue = engine
        .exchange
        .order_by_client_order_id(&order.venue_client_order_id);
    let hold = async {
        match &order.hold_id {
            Some(hold_id) => engine.balances.hold(hold_id).await,
            None => Ok(None),
        }
    };
    let order_id = order.order_id.to_string();
    let settlements = engine.balances.settlements_for_order(&order_id);
    let (venue, hold, settlements) = tokio::join!(venue, hold, settlements);
    OutsideView {
        venue: venue.map_err(|e| e.to_string()),
        hold: hold.map_err(|e| e.to_string()),
        settlements: settlements.map_err(|e| e.to_string()),
    }
}

/// An operator's action on an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Resume,
    Cancel,
}

/// Resumes or cancels `order_id` as `operator`, recorded on its timeline
/// with the console request that asked, `request_id` (the same functions
/// as `orderd orders resume|cancel`). In its own task: an operator
/// closing the tab must not cut the write short.
pub async fn act(
    app: &std::sync::Arc<App>,
    order_id: Uuid,
    operator: &str,
    action: Action,
    request_id: &str,
) -> Result<OperatorAction, Internal> {
    let app = app.clone();
    let operator = operator.to_string();
    let request_id = request_id.to_string();
    let done = tokio::spawn(async move {
        let updates = &app.engine.trade_updates;
        let (pool, actor, request) = (&app.pool, app.instance_id, Some(request_id.as_str()));
        match action {
            Action::Resume => {
                recovery::resume(pool, updates, order_id, &operator, actor, request).await
            }
            Action::Cancel => {
                recovery::operator_cancel(pool, updates, order_id, &operator, actor, request).await
            }
        }
    })
    .await?;
    done.map_err(|e| Internal::Broken(e.to_string()))
}

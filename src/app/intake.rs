//! Submitting an order, end to end: price its hold, accept it (the order,
//! its first event and its Idempotency-Key in one transaction), drive it
//! as far as its answer within the submit deadline, and answer — or, for
//! a request seen before, replay or resume (see [`super::idempotency`];
//! a repeated `client_order_id` with the same body is a replay too).
//!
//! The work runs in its own task: a client that hangs up cancels nothing
//! (never a transaction half-way, sqlx #4393; never a placement).

use std::sync::Arc;

use tokio::time::Instant;
use uuid::Uuid;

use super::idempotency::{self, FollowError, Followed, IdempotencyKey, StoredResponse, Taken};
use super::{App, Internal};
use crate::domain::InvalidField;
use crate::domain::asset::AssetRefusal;
use crate::domain::hold::{hold_asset, needs_quote, order_hold};
use crate::domain::ids::ClientOrderId;
use crate::domain::lifecycle::{RejectReason, Status};
use crate::domain::order::{Amount, NewOrder, Side};
use crate::engine::keys;
use crate::failpoints;
use crate::metrics::names;
use crate::store::accounts::Account;
use crate::store::orders::{self as order_store, NewOrderRow, OrderRecord, Replacing};

/// What the trader is told about an order.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The order as it stands (new, pending_new past the deadline,
    /// rejected by the venue, ...).
    Order(Box<OrderRecord>),
    /// The balances service refused the hold: Alpaca's 403.
    InsufficientFunds { side: Side },
}

impl Answer {
    /// What `order` answers now.
    pub fn of(order: OrderRecord) -> Self {
        let insufficient = order.status == Status::Rejected
            && matches!(
                order.reject_reason(),
                Some(RejectReason::InsufficientFunds { .. })
            );
        if insufficient {
            Answer::InsufficientFunds { side: order.side }
        } else {
            Answer::Order(Box::new(order))
        }
    }

    /// Final, and so stored for replay, once the order has left
    /// `pending_new`: a `pending_new` answer is re-derived on replay so the
    /// retry sees (and, if nobody drives it, resumes) the work.
    fn is_final(&self) -> bool {
        match self {
            Answer::Order(order) => order.status != Status::PendingNew,
            Answer::InsufficientFunds { .. } => true,
        }
    }
}

/// How the front door renders an answer, so a final one can be stored
/// under its key and replayed byte for byte.
pub type Render = fn(&Answer) -> StoredResponse;

/// The reply to a submit.
#[derive(Debug)]
pub struct Reply {
    pub body: ReplyBody,
    /// An earlier request's outcome (Idempotency-Key or client_order_id).
    pub replayed: bool,
}

#[derive(Debug)]
pub enum ReplyBody {
    Fresh(Answer),
    Stored(StoredResponse),
}

/// Why a submit was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Key(#[from] FollowError),
    #[error("client_order_id must be unique")]
    ClientOrderIdReused,
    /// The asset does not take this order (unknown, inactive, not
    /// tradable, off its lot or tick): nothing was recorded.
    #[error(transparent)]
    Asset(#[from] AssetRefusal),
    /// The venue's instruments have never been synced: nothing can be
    /// validated yet.
    #[error("reference data is not loaded yet; retry shortly")]
    ReferenceDataUnavailable,
    /// A replace of an order that cannot be replaced as it stands (or
    /// with these terms): nothing was recorded.
    #[error(transparent)]
    NotReplaceable(#[from] crate::domain::replace::NotReplaceable),
    /// A replace of an order the account does not have.
    #[error("order not found for {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Internal(#[from] Internal),
}

impl From<sqlx::Error> for SubmitError {
    fn from(error: sqlx::Error) -> Self {
        SubmitError::Internal(error.into())
    }
}

/// Submits `order` for `account`. Answers once the order's answer is
/// known or, past `lifecycle.submit_deadline_ms`, with the order as it
/// stands (`pending_new`) while its task goes on. `request_id` (the
/// request that submitted it) is on the task's span and in the accept's
/// event.
pub async fn submit(
    app: Arc<App>,
    account: Account,
    order: NewOrder,
    key: Option<IdempotencyKey>,
    render: Render,
    request_id: Option<&str>,
) -> Result<Reply, SubmitError> {
    admit(&app, &account, &order, key.as_ref()).await?;
    accept_in_task(app, account, order, key, render, request_id, None).await
}

/// Accepts `order` (admitted) and drives it in a task of its own,
/// answering as [`submit`] does; `replacing`: it is a replacement.
pub(super) async fn accept_in_task(
    app: Arc<App>,
    account: Account,
    order: NewOrder,
    key: Option<IdempotencyKey>,
    render: Render,
    request_id: Option<&str>,
    replacing: Option<Replacing>,
) -> Result<Reply, SubmitError> {
    let answer_by = Instant::now() + app.settings.lifecycle.submit_deadline();
    let (accepted_tx, mut accepted) = tokio::sync::oneshot::channel();
    let span = tracing::info_span!(
        "submit",
        account_id = %account.account_id,
        client_order_id = order.client_order_id.as_ref().map(|c| c.as_str()),
        order_id = tracing::field::Empty,
        request_id,
    );
    let request_id = request_id.map(str::to_string);
    let mut work = tokio::spawn(tracing::Instrument::instrument(
        accept_and_drive(
            app,
            account,
            Submitted {
                order,
                key,
                replacing,
            },
            render,
            accepted_tx,
            request_id,
        ),
        span,
    ));
    // Waiting on the task's handle cancels nothing in it.
    match tokio::time::timeout_at(answer_by, &mut work).await {
        Ok(joined) => joined.map_err(Internal::from)?,
        Err(_) => match accepted.try_recv() {
            Ok(order) => Ok(Reply {
                body: ReplyBody::Fresh(Answer::of(order)),
                replayed: false,
            }),
            Err(_) => work.await.map_err(Internal::from)?,
        },
    }
}

/// Refuses an order its asset does not take, before anything is recorded
/// — unless the same request was accepted before (under its key or its
/// client_order_id): a retry replays its outcome whatever became of the
/// asset since.
pub(super) async fn admit(
    app: &App,
    account: &Account,
    order: &NewOrder,
    key: Option<&IdempotencyKey>,
) -> Result<(), SubmitError> {
    let reference = app.reference.snapshot();
    if order.amount.notional().is_some() && !app.settings.lifecycle.notional_orders {
        return Err(SubmitError::Asset(AssetRefusal::Field(InvalidField {
            field: "notional",
            problem: "orders are not enabled here (lifecycle.notional_orders); give qty".into(),
        })));
    }
    let refusal = if reference.has_assets() {
        match reference.admit(order) {
            Ok(()) => return Ok(()),
            Err(refusal) => SubmitError::Asset(refusal),
        }
    } else {
        SubmitError::ReferenceDataUnavailable
    };
    let seen_under_key = match key {
        Some(key) => crate::store::idempotency::load(&app.pool, account.account_id, key.as_str())
            .await?
            .is_some(),
        None => false,
    };
    let seen_under_client_order_id = match &order.client_order_id {
        Some(coid) if !seen_under_key => {
            order_store::load_by_client_order_id(&app.pool, account.account_id, coid)
                .await?
                .is_some()
        }
        _ => false,
    };
    if seen_under_key || seen_under_client_order_id {
        Ok(())
    } else {
        Err(refusal)
    }
}

/// What the accept transaction found.
enum Accept {
    /// The order, now on record; `None` if its client_order_id was taken.
    Inserted(Option<Box<OrderRecord>>),
    /// The Idempotency-Key was used before.
    Existing(crate::store::idempotency::IdempotencyRecord),
    /// The order to replace can no longer be replaced: nothing recorded.
    NotReplaceable,
}

/// What a submit (or a replace) asks to accept.
struct Submitted {
    order: NewOrder,
    key: Option<IdempotencyKey>,
    /// It is a replacement of this order.
    replacing: Option<Replacing>,
}

async fn accept_and_drive(
    app: Arc<App>,
    account: Account,
    submitted: Submitted,
    render: Render,
    accepted_tx: tokio::sync::oneshot::Sender<OrderRecord>,
    request_id: Option<String>,
) -> Result<Reply, SubmitError> {
    let Submitted {
        order,
        key,
        replacing,
    } = submitted;
    let request_id = request_id.as_deref();
    let settings = &app.settings.lifecycle;
    let fingerprint = order.fingerprint();
    let order_id = Uuid::now_v7();
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let mut row = new_order_row(&app, &account, &order, order_id, &fingerprint).await;
    row.replacing = replacing;

    // Accept: the order, its first event and the key, in one transaction
    // (without a key, one statement is that transaction).
    let accepting = async {
        match (&key, replacing) {
            // A replacement and the mark on the order it replaces, in one
            // transaction: both or neither.
            (_, Some(replacing)) => {
                let mut tx = app.pool.begin().await?;
                let inserted = insert(&mut *tx, &app, &row, request_id).await?;
                if inserted.is_none() {
                    tx.rollback().await?;
                    return Ok(Accept::Inserted(None));
                }
                let marked = order_store::mark_replacing(
                    &mut *tx,
                    replacing.original,
                    order_id,
                    account.account_id,
                    app.instance_id,
                )
                .await?;
                if !marked {
                    tx.rollback().await?;
                    return Ok(Accept::NotReplaceable);
                }
                tx.commit().await?;
                Ok(Accept::Inserted(inserted.map(Box::new)))
            }
            (None, None) => Ok(Accept::Inserted(
                insert(&app.pool, &app, &row, request_id)
                    .await?
                    .map(Box::new),
            )),
            (Some(key), None) => {
                let mut tx = app.pool.begin().await?;
                let taken = idempotency::take(
                    &mut tx,
                    account.account_id,
                    key,
                    &fingerprint,
                    settings.idempotency_ttl_secs,
                )
                .await?;
                if let Taken::Existing(record) = taken {
                    tx.rollback().await?;
                    return Ok(Accept::Existing(record));
                }
                let inserted = insert(&mut *tx, &app, &row, request_id).await?;
                if inserted.is_some() {
                    idempotency::attach(&mut tx, account.account_id, key, order_id).await?;
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok::<_, sqlx::Error>(Accept::Inserted(inserted.map(Box::new)))
            }
        }
    }
    .await;
    let inserted = match accepting {
        Ok(Accept::Inserted(inserted)) => inserted.map(|order| *order),
        Ok(Accept::NotReplaceable) => {
            let original = replacing.map(|r| r.original).unwrap_or_default();
            return Err(super::replace::refusal(&app, account.account_id, original).await);
        }
        Ok(Accept::Existing(record)) => {
            let key = key.as_ref().ok_or_else(|| {
                Internal::Broken("an existing idempotency record without a key".into())
            })?;
            return follow_key(&app, &account, key, record, &fingerprint, render).await;
        }
        // The commit's answer may be what was lost (the connection died
        // after the server committed): an unknown outcome, resolved by
        // evidence. The order id is ours alone, so finding it on record
        // proves the whole accept committed (the key with it), leased to
        // this task; not finding it proves nothing did.
        Err(error) => match order_store::load(&app.pool, order_id).await {
            Ok(Some(order)) => {
                tracing::warn!(%error, "the accept's answer was lost, but it committed; going on");
                metrics::counter!(names::UNKNOWN_OUTCOMES_RESOLVED, "step" => "accept")
                    .increment(1);
                Some(order)
            }
            _ => return Err(error.into()),
        },
    };
    let Some(accepted) = inserted else {
        return existing_client_order_id(&app, &account, &row.client_order_id, &fingerprint).await;
    };
    failpoints::hit(failpoints::AFTER_ACCEPT_COMMIT);
    tracing::debug!(%order_id, "order accepted");
    // Alpaca's first trade update of an order, sent once it is on record.
    app.engine
        .trade_updates
        .publish(crate::store::trade_updates::trade_update_payload(
            account.account_id,
            order_id,
            "pending_new",
            None,
        ));
    if let Some(replacing) = replacing {
        app.engine
            .trade_updates
            .publish(crate::store::trade_updates::trade_update_payload(
                account.account_id,
                replacing.original,
                "pending_replace",
                None,
            ));
    }
    // For an answer past the deadline (nobody may be waiting: fine).
    let _ = accepted_tx.send(accepted.clone());

    let deadline = Instant::now() + settings.submit_deadline();
    let driven = app
        .engine
        .drive_to_answer(accepted, deadline)
        .await
        .map_err(Internal::from)?;
    finish(&app, &account, key.as_ref(), driven, false, render).await
}

/// Inserts the accepted order, leased to this instance (in a transaction
/// or on its own).
async fn insert<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    app: &App,
    row: &NewOrderRow,
    request_id: Option<&str>,
) -> Result<Option<OrderRecord>, sqlx::Error> {
    order_store::insert_order(
        executor,
        row,
        app.instance_id,
        app.settings.lifecycle.lease_ms,
        request_id,
    )
    .await
}

/// The row to accept: the trader's order, its derived ids, and its hold
/// ([`hold_for`]; a market or trailing-stop buy asks for a quote first, and if the venue
/// cannot quote now the engine asks again before reserving).
async fn new_order_row(
    app: &App,
    account: &Account,
    order: &NewOrder,
    order_id: Uuid,
    fingerprint: &str,
) -> NewOrderRow {
    let terms = order.prices.terms();
    let symbol = order.symbol.as_str();
    let collar = app.settings.lifecycle.market_buy_collar;
    // A notional order's quantity is the venue's to decide: 0 on the row
    // until it is known.
    let (qty, notional) = match order.amount {
        Amount::Qty(qty) => (qty.value(), None),
        Amount::Notional(notional) => (rust_decimal::Decimal::ZERO, Some(notional.value())),
    };
    // A quote only where the hold is sized from one: a buy at the market,
    // a notional sell.
    let quote = if notional.map_or(needs_quote(order.side, &terms), |_| {
        order.side == Side::Sell
    }) {
        app.engine.quote_for_hold(symbol).await.ok()
    } else {
        None
    };
    let (hold, hold_rate) =
        match order_hold(order.side, symbol, qty, notional, &terms, quote, collar) {
            Ok((hold, rate)) => (Some(hold), rate),
            Err(_) => (None, None),
        };
    NewOrderRow {
        order_id,
        account_id: account.account_id,
        client_order_id: order
            .client_order_id
            .clone()
            .unwrap_or_else(|| ClientOrderId::generated(order_id)),
        venue_client_order_id: keys::venue_client_order_id(order_id),
        request_fingerprint: fingerprint.to_string(),
        symbol: symbol.to_string(),
        side: order.side,
        order_type: order.order_type,
        time_in_force: order.time_in_force,
        qty,
        notional,
        terms,
        hold_asset: hold_asset(order.side, symbol).to_string(),
        hold_amount: hold.as_ref().map(|h| h.amount),
        hold_rate,
        expires_at: app
            .reference
            .snapshot()
            .calendar
            .expires_at(order.time_in_force, chrono::Utc::now()),
        replacing: None,
    }
}

/// The answer for `order`, stored under `key` when final.
async fn finish(
    app: &App,
    account: &Account,
    key: Option<&IdempotencyKey>,
    order: OrderRecord,
    replayed: bool,
    render: Render,
) -> Result<Reply, SubmitError> {
    let answer = Answer::of(order);
    if let Some(key) = key
        && answer.is_final()
    {
        idempotency::complete(&app.pool, account.account_id, key, &render(&answer)).await?;
    }
    Ok(Reply {
        body: ReplyBody::Fresh(answer),
        replayed,
    })
}

/// The outcome of the request made earlier under `key`, if there was one
/// (`fingerprint` is the digest of the request now: another request under
/// the same key is refused).
pub async fn replay(
    app: &App,
    account: &Account,
    key: &IdempotencyKey,
    fingerprint: &str,
    render: Render,
) -> Result<Option<Reply>, SubmitError> {
    let Some(record) =
        crate::store::idempotency::load(&app.pool, account.account_id, key.as_str()).await?
    else {
        return Ok(None);
    };
    Ok(Some(
        follow_key(app, account, key, record, fingerprint, render).await?,
    ))
}

async fn follow_key(
    app: &App,
    account: &Account,
    key: &IdempotencyKey,
    record: crate::store::idempotency::IdempotencyRecord,
    fingerprint: &str,
    render: Render,
) -> Result<Reply, SubmitError> {
    match idempotency::follow(app, account.account_id, key, record, fingerprint).await? {
        Followed::Replay(stored) => Ok(Reply {
            body: ReplyBody::Stored(stored),
            replayed: true,
        }),
        Followed::Order(order) => finish(app, account, Some(key), *order, true, render).await,
    }
}

/// The account already has an order with this client_order_id: the same
/// request is a replay (resumed if nobody drives it); a different one is
/// Alpaca's 422.
async fn existing_client_order_id(
    app: &App,
    account: &Account,
    client_order_id: &ClientOrderId,
    fingerprint: &str,
) -> Result<Reply, SubmitError> {
    let order =
        order_store::load_by_client_order_id(&app.pool, account.account_id, client_order_id)
            .await?
            .ok_or_else(|| {
                Internal::Broken("a client_order_id conflict without an order".into())
            })?;
    if order.request_fingerprint != fingerprint {
        metrics::counter!(names::IDEMPOTENCY_CONFLICTS, "reason" => "client_order_id_reused")
            .increment(1);
        return Err(SubmitError::ClientOrderIdReused);
    }
    metrics::counter!(names::IDEMPOTENCY_REPLAYS, "key" => "client_order_id").increment(1);
    let order = idempotency::resume(app, order.order_id)
        .await?
        .unwrap_or(order);
    Ok(Reply {
        body: ReplyBody::Fresh(Answer::of(order)),
        replayed: true,
    })
}

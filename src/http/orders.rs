//! `/v2/orders`: submit (with Idempotency-Key and client_order_id replay),
//! list, get by id or client_order_id, and the order's recorded timeline.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use super::alpaca::AlpacaOrder;
use super::alpaca::{order_json, parse_order_request};
use super::auth::Trader;
use super::error::{ApiError, codes};
use super::openapi::{CancelAllEntry, ErrorBody, FillView, OrderRequest, OrderTimeline};
use crate::domain::lifecycle::{RejectReason, Status, Step};
use crate::domain::order::{NewOrder, Side};
use crate::engine::keys;
use crate::failpoints;
use crate::metrics::names;
use crate::startup::AppState;
use crate::store::accounts::Account;
use crate::store::idempotency::{self, IdempotencyRecord, Taken};
use crate::store::orders::{self as order_store, NewOrderRow, OrderRecord};

/// The header of the IETF Idempotency-Key draft.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set on a response that replays an earlier request's outcome.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest Idempotency-Key accepted.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;
/// `GET /v2/orders` page size: default and maximum (Alpaca's).
pub const LIST_LIMIT_DEFAULT: i64 = 50;
pub const LIST_LIMIT_MAX: i64 = 500;
/// How often a waiting duplicate re-reads the first request's record.
const IDEMPOTENCY_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// An answer to a submit, before it becomes a response.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    body: Value,
    replayed: bool,
}

impl Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.replayed {
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        response
    }
}

/// What the trader is told about `order` now.
fn answer_for(order: &OrderRecord) -> Answer {
    let insufficient = order.status == Status::Rejected.as_str()
        && matches!(
            order.reject_reason().ok().flatten(),
            Some(RejectReason::InsufficientFunds { .. })
        );
    if insufficient {
        let message = if order.side == Side::Sell.as_str() {
            "insufficient qty available for order"
        } else {
            "insufficient buying power"
        };
        return Answer {
            status: StatusCode::FORBIDDEN,
            body: json!({ "code": codes::FORBIDDEN, "message": message }),
            replayed: false,
        };
    }
    Answer {
        status: StatusCode::OK,
        body: order_json(order),
        replayed: false,
    }
}

/// An answer is final, and may be stored for replay, once the order has
/// left `pending_new`: a `pending_new` answer is re-derived on replay so
/// the retry sees (and, if nobody drives it, resumes) the work.
fn is_final(order: &OrderRecord) -> bool {
    order.status != Status::PendingNew.as_str()
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?
        .trim()
        // The draft's sf-string form: a quoted string.
        .trim_matches('"')
        .to_string();
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX_LEN {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} characters"
        )));
    }
    Ok(Some(key))
}

/// `POST /v2/orders`.
#[utoipa::path(post, path = "/v2/orders", tag = "orders",
    request_body(content = OrderRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Replays the first outcome of the same request; a different body under it is 422")),
    responses(
        (status = 200, description = "Accepted: new, or pending_new past the submit deadline, or rejected by the venue", body = AlpacaOrder,
         headers(("Idempotent-Replayed" = String, description = "true on a replay"))),
        (status = 400, description = "Malformed JSON or header", body = ErrorBody),
        (status = 401, description = "Bad or missing API keys", body = ErrorBody),
        (status = 403, description = "Insufficient buying power or qty", body = ErrorBody),
        (status = 409, description = "The same Idempotency-Key is still in progress", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "A field fails validation, or a key or client_order_id is reused with another body", body = ErrorBody),
    ),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                codes::PAYLOAD_TOO_LARGE
            } else {
                codes::BAD_REQUEST
            },
            rejection.body_text(),
        )
    })?;
    let started = std::time::Instant::now();
    let new_order = parse_order_request(&body)?;
    let key = idempotency_key(&headers)?;
    // The work runs in its own task: a client that hangs up must not cancel
    // a transaction half-way (sqlx #4393) nor abandon a placement.
    let span = tracing::info_span!(
        "submit",
        account_id = %account.account_id,
        client_order_id = new_order.client_order_id.as_ref().map(|c| c.as_str()),
        order_id = tracing::field::Empty,
    );
    let answer_by = Instant::now() + state.settings.lifecycle.submit_deadline();
    let (accepted_tx, mut accepted) = tokio::sync::oneshot::channel();
    let mut work = tokio::spawn(tracing::Instrument::instrument(
        submit_order(state, account, new_order, key, accepted_tx),
        span,
    ));
    // Past the deadline, an accepted order is answered as it stands
    // (`pending_new`) while its task goes on; the trader follows it with GET
    // or the stream. Waiting on the task's handle cancels nothing in it.
    let answer = match tokio::time::timeout_at(answer_by, &mut work).await {
        Ok(joined) => joined.map_err(ApiError::internal)?,
        Err(_) => match accepted.try_recv() {
            Ok(order) => Ok(answer_for(&order)),
            Err(_) => work.await.map_err(ApiError::internal)?,
        },
    };
    let outcome = match &answer {
        Ok(a) if a.replayed => "replayed",
        Ok(a) if a.status == StatusCode::OK => a.body["status"]
            .as_str()
            .map(status_label)
            .unwrap_or("other"),
        Ok(a) if a.status == StatusCode::FORBIDDEN => "insufficient_funds",
        Ok(_) => "other",
        Err(e) if e.status == StatusCode::CONFLICT => "conflict",
        Err(e) if e.status.is_client_error() => "refused",
        Err(_) => "error",
    };
    metrics::counter!(names::ORDERS_SUBMITTED, "outcome" => outcome).increment(1);
    metrics::histogram!(names::SUBMIT_DURATION, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    Ok(answer?.into_response())
}

/// A bounded label for the status an order was answered with.
fn status_label(status: &str) -> &'static str {
    Status::parse(status).map(Status::as_str).unwrap_or("other")
}

async fn submit_order(
    state: Arc<AppState>,
    account: Account,
    new_order: NewOrder,
    key: Option<String>,
    accepted_tx: tokio::sync::oneshot::Sender<OrderRecord>,
) -> Result<Answer, ApiError> {
    let settings = &state.settings.lifecycle;
    let fingerprint = new_order.fingerprint();
    let order_id = Uuid::now_v7();
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let client_order_id = new_order
        .client_order_id
        .as_ref()
        .map(|c| c.as_str().to_string())
        .unwrap_or_else(|| order_id.to_string());
    let qty = new_order.qty.value();
    let limit_price = new_order.limit_price.map(|p| p.value());
    let (hold_asset, hold_amount, hold_rate) = match (new_order.side, limit_price) {
        (Side::Buy, Some(price)) => ("USD".to_string(), Some(qty * price), Some(price)),
        // A market buy's hold comes from a quote. Asked for here, it is
        // written with the order (one write fewer); if the venue cannot
        // quote now, the engine asks again before reserving.
        (Side::Buy, None) => match state
            .engine
            .market_buy_hold(new_order.symbol.as_str(), qty)
            .await
        {
            Ok(hold) => ("USD".to_string(), Some(hold.amount), Some(hold.rate)),
            Err(_) => ("USD".to_string(), None, None),
        },
        (Side::Sell, _) => (new_order.symbol.to_string(), Some(qty), Some(Decimal::ONE)),
    };
    let row = NewOrderRow {
        order_id,
        account_id: account.account_id,
        client_order_id,
        venue_client_order_id: keys::venue_client_order_id(order_id),
        request_fingerprint: fingerprint.clone(),
        symbol: new_order.symbol.to_string(),
        side: new_order.side.to_string(),
        order_type: new_order.order_type.to_string(),
        time_in_force: new_order.time_in_force.to_string(),
        qty,
        limit_price,
        hold_asset,
        hold_amount,
        hold_rate,
    };

    // Accept: the order, its first event and the key, in one transaction
    // (without a key, one statement is that transaction).
    let inserted = match &key {
        None => {
            order_store::insert_order(&state.pool, &row, state.instance_id, settings.lease_ms)
                .await?
        }
        Some(key) => {
            let mut tx = state.pool.begin().await?;
            match idempotency::take(
                &mut tx,
                account.account_id,
                key,
                &fingerprint,
                settings.idempotency_ttl_secs,
            )
            .await?
            {
                Taken::New => {}
                Taken::Existing(record) => {
                    tx.rollback().await?;
                    return existing_key(&state, &account, key, record, &fingerprint).await;
                }
            }
            let inserted =
                order_store::insert_order(&mut *tx, &row, state.instance_id, settings.lease_ms)
                    .await?;
            if inserted.is_some() {
                idempotency::attach_order(&mut tx, account.account_id, key, order_id).await?;
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            inserted
        }
    };
    let Some(order) = inserted else {
        return existing_client_order_id(&state, &account, &row.client_order_id, &fingerprint)
            .await;
    };
    failpoints::hit(failpoints::AFTER_ACCEPT_COMMIT);
    tracing::debug!(%order_id, "order accepted");
    // For an answer past the deadline (nobody may be waiting: fine).
    let _ = accepted_tx.send(order.clone());

    let deadline = Instant::now() + settings.submit_deadline();
    let order = state
        .engine
        .drive_to_answer(order, deadline)
        .await
        .map_err(ApiError::internal)?;
    finish(&state, &account, key.as_deref(), &order, false).await
}

/// Derives the answer for `order` and stores it under `key` when final.
async fn finish(
    state: &AppState,
    account: &Account,
    key: Option<&str>,
    order: &OrderRecord,
    replayed: bool,
) -> Result<Answer, ApiError> {
    let mut answer = answer_for(order);
    if let Some(key) = key
        && is_final(order)
    {
        idempotency::complete(
            &state.pool,
            account.account_id,
            key,
            answer.status.as_u16(),
            &answer.body,
        )
        .await?;
    }
    answer.replayed = replayed;
    Ok(answer)
}

/// The key was used before: replay, refuse a different body, or (first
/// request still running) wait briefly and then answer 409.
async fn existing_key(
    state: &AppState,
    account: &Account,
    key: &str,
    mut record: IdempotencyRecord,
    fingerprint: &str,
) -> Result<Answer, ApiError> {
    if record.request_fingerprint != fingerprint {
        metrics::counter!(names::IDEMPOTENCY_CONFLICTS, "reason" => "different_request")
            .increment(1);
        return Err(ApiError::unprocessable(
            "Idempotency-Key was already used with a different request",
        ));
    }
    let wait_until = Instant::now() + state.settings.lifecycle.idempotency_wait();
    loop {
        if let (Some(status), Some(body)) = (record.response_status, record.response_body.clone()) {
            metrics::counter!(names::IDEMPOTENCY_REPLAYS, "key" => "idempotency_key").increment(1);
            return Ok(Answer {
                status: StatusCode::from_u16(u16::try_from(status).unwrap_or(500))
                    .unwrap_or(StatusCode::OK),
                body,
                replayed: true,
            });
        }
        let Some(order_id) = record.order_id else {
            return Err(ApiError::internal("idempotency record without an order"));
        };
        // Nobody answering for it (a crash, or an earlier pending_new
        // answer): resume the work from its recovery point.
        if let Some(order) = resume(state, order_id).await? {
            return finish(state, account, Some(key), &order, true).await;
        }
        if Instant::now() >= wait_until {
            metrics::counter!(names::IDEMPOTENCY_CONFLICTS, "reason" => "in_progress").increment(1);
            return Err(ApiError::conflict(
                "a request with this Idempotency-Key is still in progress; retry later",
            ));
        }
        tokio::time::sleep(IDEMPOTENCY_POLL).await;
        record = idempotency::load(&state.pool, account.account_id, key)
            .await?
            .ok_or_else(|| ApiError::internal("idempotency record vanished"))?;
    }
}

/// Claims and drives `order_id` if no live instance holds it; returns the
/// order then. `None` while another request or instance is driving it.
async fn resume(state: &AppState, order_id: Uuid) -> Result<Option<OrderRecord>, ApiError> {
    let current = order_store::load(&state.pool, order_id)
        .await?
        .ok_or_else(|| ApiError::internal("order vanished"))?;
    let step = Step::parse(&current.step).unwrap_or(Step::Parked);
    if !step.is_driven() {
        return Ok(Some(current));
    }
    let deadline = Instant::now() + state.settings.lifecycle.submit_deadline();
    state
        .engine
        .claim_and_drive(order_id, deadline)
        .await
        .map_err(ApiError::internal)
}

/// The account already has an order with this client_order_id: the same
/// request is a replay; a different one is Alpaca's 422.
async fn existing_client_order_id(
    state: &AppState,
    account: &Account,
    client_order_id: &str,
    fingerprint: &str,
) -> Result<Answer, ApiError> {
    let order =
        order_store::load_by_client_order_id(&state.pool, account.account_id, client_order_id)
            .await?
            .ok_or_else(|| ApiError::internal("client_order_id conflict without an order"))?;
    if order.request_fingerprint != fingerprint {
        metrics::counter!(names::IDEMPOTENCY_CONFLICTS, "reason" => "client_order_id_reused")
            .increment(1);
        return Err(ApiError::validation("client_order_id must be unique"));
    }
    metrics::counter!(names::IDEMPOTENCY_REPLAYS, "key" => "client_order_id").increment(1);
    let order = match resume(state, order.order_id).await? {
        Some(order) => order,
        None => order,
    };
    let mut answer = answer_for(&order);
    answer.replayed = true;
    Ok(answer)
}

fn parse_order_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found(format!("order not found for {id}")))
}

/// `GET /v2/orders/{id}`.
#[utoipa::path(get, path = "/v2/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, body = AlpacaOrder), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let order = order_store::load_for_account(&state.pool, account.account_id, order_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("order not found for {id}")))?;
    Ok(Json(order_json(&order)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ByClientOrderId {
    #[param(min_length = 1, max_length = 48)]
    client_order_id: String,
}

/// `GET /v2/orders:by_client_order_id?client_order_id=`.
#[utoipa::path(get, path = "/v2/orders:by_client_order_id", tag = "orders", params(ByClientOrderId),
    responses((status = 200, body = AlpacaOrder), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn get_by_client_order_id(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Query(query): Query<ByClientOrderId>,
) -> Result<Json<Value>, ApiError> {
    let client_order_id = query.client_order_id;
    if client_order_id.is_empty() {
        return Err(ApiError::validation("client_order_id is required"));
    }
    let order =
        order_store::load_by_client_order_id(&state.pool, account.account_id, &client_order_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("order not found for {client_order_id}")))?;
    Ok(Json(order_json(&order)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// open (default), closed or all.
    status: Option<String>,
    limit: Option<String>,
    after: Option<String>,
    until: Option<String>,
    direction: Option<String>,
    symbols: Option<String>,
    /// Accepted for compatibility; orderd has no multi-leg orders.
    #[allow(dead_code)]
    nested: Option<String>,
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| {
            ApiError::validation(format!("{name} must be an RFC 3339 timestamp or a date"))
        })
}

/// `GET /v2/orders`.
#[utoipa::path(get, path = "/v2/orders", tag = "orders", params(ListQuery),
    responses((status = 200, body = Vec<AlpacaOrder>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let open: Vec<String> = Status::ALL
        .iter()
        .filter(|s| !s.is_terminal())
        .map(|s| s.as_str().to_string())
        .collect();
    let closed: Vec<String> = Status::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| s.as_str().to_string())
        .collect();
    let statuses = match query.status.as_deref().unwrap_or("open") {
        "open" => Some(open),
        "closed" => Some(closed),
        "all" => None,
        other => {
            return Err(ApiError::validation(format!(
                "status must be open, closed or all, got {other:?}"
            )));
        }
    };
    let limit = match query.limit.as_deref() {
        None => LIST_LIMIT_DEFAULT,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=LIST_LIMIT_MAX).contains(l))
            .ok_or_else(|| ApiError::validation(format!("limit must be 1 to {LIST_LIMIT_MAX}")))?,
    };
    let ascending = match query.direction.as_deref().unwrap_or("desc") {
        "asc" => true,
        "desc" => false,
        other => {
            return Err(ApiError::validation(format!(
                "direction must be asc or desc, got {other:?}"
            )));
        }
    };
    let symbols = query.symbols.as_deref().map(|s| {
        s.split(',')
            .map(|x| x.trim().to_ascii_uppercase())
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
    });
    let filter = order_store::ListFilter {
        account_id: account.account_id,
        statuses,
        symbols,
        after: query
            .after
            .as_deref()
            .map(|t| parse_time("after", t))
            .transpose()?,
        until: query
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
        ascending,
        limit,
    };
    let orders = order_store::list(&state.pool, &filter).await?;
    Ok(Json(Value::Array(orders.iter().map(order_json).collect())))
}

/// `GET /v2/orders/{id}/events`: the recorded action timeline.
#[utoipa::path(get, path = "/v2/orders/{id}/events", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, body = OrderTimeline), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn events(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Path(id): Path<String>,
) -> Result<Json<OrderTimeline>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let order = order_store::load_for_account(&state.pool, account.account_id, order_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("order not found for {id}")))?;
    let events = order_store::events(&state.pool, order.order_id).await?;
    Ok(Json(OrderTimeline {
        order_id: order.order_id,
        status: order.status,
        step: order.step,
        step_state: order.step_state,
        attempts: order.attempts,
        next_attempt_at: order.next_attempt_at,
        events,
    }))
}

/// Drives a just-canceled order's next step in the background (the venue
/// cancel, or the release of a never-placed order's hold). The driver that
/// holds the lease, if any, sees the cancel at its next step instead.
fn drive_cancel(state: &Arc<AppState>, order_id: Uuid) {
    let state = state.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + state.settings.lifecycle.submit_deadline();
        if let Err(error) = state.engine.claim_and_drive(order_id, deadline).await {
            tracing::error!(%order_id, %error, "driving a cancel");
        }
    });
}

/// `DELETE /v2/orders/{id}`: 204 once the cancel is recorded; the outcome
/// (canceled, or filled if a fill wins the race) follows.
#[utoipa::path(delete, path = "/v2/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 204, description = "Cancel recorded"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, description = "Already terminal", body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let order_id = parse_order_id(&id)?;
    let work = tokio::spawn({
        let state = state.clone();
        async move {
            order_store::request_cancel(
                &state.pool,
                &state.engine.trade_updates,
                account.account_id,
                order_id,
                state.instance_id,
            )
            .await
        }
    });
    match work.await.map_err(ApiError::internal)?? {
        order_store::CancelRequest::NotFound => {
            Err(ApiError::not_found(format!("order not found for {id}")))
        }
        order_store::CancelRequest::AlreadyTerminal(status) => Err(ApiError::unprocessable(
            format!("order is already in \"{status}\" state"),
        )),
        order_store::CancelRequest::Recorded(_) => {
            drive_cancel(&state, order_id);
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

/// `DELETE /v2/orders`: cancels every open order; Alpaca's 207 body, one
/// entry per order with its own status.
#[utoipa::path(delete, path = "/v2/orders", tag = "orders",
    responses((status = 207, body = Vec<CancelAllEntry>), (status = 401, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn cancel_all(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
) -> Result<Response, ApiError> {
    let work = tokio::spawn({
        let state = state.clone();
        async move {
            let mut results = Vec::new();
            for order in order_store::open_orders(&state.pool, account.account_id).await? {
                let outcome = order_store::request_cancel(
                    &state.pool,
                    &state.engine.trade_updates,
                    account.account_id,
                    order.order_id,
                    state.instance_id,
                )
                .await;
                let entry = match outcome {
                    Ok(order_store::CancelRequest::Recorded(updated)) => {
                        drive_cancel(&state, updated.order_id);
                        json!({"id": updated.order_id, "status": 200, "body": order_json(&updated)})
                    }
                    Ok(order_store::CancelRequest::AlreadyTerminal(status)) => json!({
                        "id": order.order_id, "status": 422,
                        "body": {"code": codes::UNPROCESSABLE, "message": format!("order is already in \"{status}\" state")}
                    }),
                    Ok(order_store::CancelRequest::NotFound) => json!({
                        "id": order.order_id, "status": 404,
                        "body": {"code": codes::NOT_FOUND, "message": "order not found"}
                    }),
                    Err(error) => {
                        tracing::error!(order_id = %order.order_id, %error, "cancel-all entry");
                        json!({
                            "id": order.order_id, "status": 500,
                            "body": {"code": codes::INTERNAL, "message": "internal server error"}
                        })
                    }
                };
                results.push(entry);
            }
            Ok::<_, sqlx::Error>(results)
        }
    });
    let results = work.await.map_err(ApiError::internal)??;
    Ok((StatusCode::MULTI_STATUS, Json(Value::Array(results))).into_response())
}

/// `GET /v2/orders/{id}/fills`: the order's executions and their settlement.
#[utoipa::path(get, path = "/v2/orders/{id}/fills", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, body = Vec<FillView>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn fills(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Path(id): Path<String>,
) -> Result<Json<Vec<FillView>>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let order = order_store::load_for_account(&state.pool, account.account_id, order_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("order not found for {id}")))?;
    let fills = crate::store::fills::fills_of(&state.pool, order.order_id).await?;
    Ok(Json(
        fills
            .into_iter()
            .map(|f| FillView {
                execution_id: f.exec_id,
                order_id: f.order_id,
                qty: f.qty.normalize().to_string(),
                price: f.price.normalize().to_string(),
                transact_time: f.transact_time,
                source: f.source,
                settlement_state: f.settlement_state,
                settled_at: f.settled_at,
            })
            .collect(),
    ))
}

//! `/v2/orders`: each handler parses, calls the application layer
//! (`app::intake`, `app::cancel`, `app::queries`), and renders.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::alpaca::{AlpacaOrder, order_json, parse_order_request};
use super::auth::Trader;
use super::docs::{CancelAllEntry, ErrorBody, FillView, OrderTimeline};
use super::error::{ApiError, codes};
use super::request_id::RequestId;
use super::state::AppState;
use crate::app::cancel::{self, Canceled};
use crate::app::idempotency::{FollowError, IdempotencyKey, StoredResponse};
use crate::app::intake::{self, Answer, ReplyBody, SubmitError};
use crate::app::queries;
use crate::domain::asset::AssetRefusal;
use crate::domain::lifecycle::Status;
use crate::domain::order::{ClientOrderId, Side, Symbol};
use crate::metrics::names;
use crate::store::orders::ListFilter;

/// The header of the IETF Idempotency-Key draft.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set on a response that replays an earlier request's outcome.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// `GET /v2/orders` page size: default and maximum (Alpaca's).
pub const LIST_LIMIT_DEFAULT: i64 = 50;
pub const LIST_LIMIT_MAX: i64 = 500;
/// What `nested` accepts (Python's str(bool) too).
pub const NESTED_VALUES: [&str; 4] = ["true", "false", "True", "False"];

/// How an answer is rendered (and stored for replay under its key).
pub(super) fn render(answer: &Answer) -> StoredResponse {
    match answer {
        Answer::Order(order) => StoredResponse {
            status: StatusCode::OK.as_u16(),
            body: order_json(order),
        },
        Answer::InsufficientFunds { side } => StoredResponse {
            status: StatusCode::FORBIDDEN.as_u16(),
            body: json!({
                "code": codes::FORBIDDEN,
                "message": match side {
                    Side::Sell => "insufficient qty available for order",
                    Side::Buy => "insufficient buying power",
                },
            }),
        },
    }
}

pub(super) fn respond(stored: StoredResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Json(stored.body)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Key(FollowError::DifferentRequest) => {
                ApiError::unprocessable(error.to_string())
            }
            SubmitError::Key(FollowError::InProgress { retry_after }) => {
                ApiError::conflict(error.to_string()).retry_after(retry_after)
            }
            SubmitError::Key(FollowError::Internal(internal)) | SubmitError::Internal(internal) => {
                internal.into()
            }
            SubmitError::ClientOrderIdReused => ApiError::validation(error.to_string()),
            SubmitError::Asset(AssetRefusal::Field(field)) => field.into(),
            SubmitError::Asset(refusal) => ApiError::unprocessable(refusal.to_string()),
            SubmitError::ReferenceDataUnavailable => ApiError::unavailable(error.to_string())
                .retry_after(std::time::Duration::from_secs(1)),
            SubmitError::NotReplaceable(refused) => ApiError::unprocessable(refused.to_string()),
            SubmitError::NotFound(id) => ApiError::not_found(format!("order not found for {id}")),
        }
    }
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(|invalid| ApiError::bad_request(invalid.to_string()))
}

/// `POST /v2/orders`.
#[utoipa::path(post, path = "/v2/orders", tag = "orders", operation_id = "postOrder",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Replays the first outcome of the same request; a different body under it is 422")),
    responses(
        (status = 200, description = "Accepted: new, or pending_new past the submit deadline, or rejected by the venue", body = AlpacaOrder,
         headers(("Idempotent-Replayed" = String, description = "true on a replay"))),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = ErrorBody),
        (status = 401, description = "Bad or missing API keys", body = ErrorBody),
        (status = 403, description = "Insufficient buying power or qty", body = ErrorBody),
        (status = 409, description = "The same Idempotency-Key is still in progress", body = ErrorBody,
         headers(("Retry-After" = String, description = "Seconds to wait before retrying"))),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "A field fails validation, or a key or client_order_id is reused with another body", body = ErrorBody),
        (status = 503, description = "The database is unavailable: nothing was accepted; retry (with the same Idempotency-Key) after Retry-After", body = ErrorBody),
    ),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    request_id: RequestId,
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
    let reply = intake::submit(
        state.app.clone(),
        account,
        new_order,
        key,
        render,
        Some(request_id.as_str()),
    )
    .await;
    let outcome = match &reply {
        Ok(reply) if reply.replayed => "replayed",
        Ok(reply) => match &reply.body {
            ReplyBody::Fresh(Answer::Order(order)) => order.status.as_str(),
            ReplyBody::Fresh(Answer::InsufficientFunds { .. }) => "insufficient_funds",
            ReplyBody::Stored(_) => "replayed",
        },
        Err(SubmitError::Key(FollowError::InProgress { .. })) => "conflict",
        Err(SubmitError::Internal(_) | SubmitError::Key(FollowError::Internal(_))) => "error",
        Err(_) => "refused",
    };
    metrics::counter!(names::ORDERS_SUBMITTED, "outcome" => outcome).increment(1);
    metrics::histogram!(names::SUBMIT_DURATION, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    let reply = reply?;
    Ok(respond(stored(reply.body), reply.replayed))
}

/// What a reply answers: a fresh answer rendered, or the stored one.
pub(super) fn stored(body: ReplyBody) -> StoredResponse {
    match body {
        ReplyBody::Fresh(answer) => render(&answer),
        ReplyBody::Stored(stored) => stored,
    }
}

fn parse_order_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found(format!("order not found for {id}")))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("order not found for {id}"))
}

/// `GET /v2/orders/{id}`.
#[utoipa::path(get, path = "/v2/orders/{order_id}", tag = "orders", operation_id = "getOrderByOrderID",
    params(("order_id" = String, Path, description = "Order id")),
    responses((status = 200, body = AlpacaOrder), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let order = queries::order(&state.app, account.account_id, order_id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(order_json(&order)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ByClientOrderId {
    /// The client_order_id the order was submitted with (or was given).
    client_order_id: String,
}

/// `GET /v2/orders:by_client_order_id?client_order_id=`.
#[utoipa::path(get, path = "/v2/orders:by_client_order_id", tag = "orders", operation_id = "getOrderByClientOrderId", params(ByClientOrderId),
    responses((status = 200, body = AlpacaOrder), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn get_by_client_order_id(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Query(query): Query<ByClientOrderId>,
) -> Result<Json<Value>, ApiError> {
    let client_order_id = ClientOrderId::parse(&query.client_order_id)?;
    let order = queries::order_by_client_order_id(&state.app, account.account_id, &client_order_id)
        .await?
        .ok_or_else(|| not_found(client_order_id.as_str()))?;
    Ok(Json(order_json(&order)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// open (default), closed or all.
    status: Option<String>,
    /// 1 to 500 (default 50).
    limit: Option<String>,
    /// Only orders submitted after this time (RFC 3339, or a date).
    after: Option<String>,
    /// Only orders submitted until this time (RFC 3339, or a date).
    until: Option<String>,
    /// asc or desc (default) by submission time.
    direction: Option<String>,
    /// Comma-separated symbols.
    symbols: Option<String>,
    /// Accepted for compatibility (true or false; alpaca-py sends True or
    /// False); orderd has no multi-leg orders.
    nested: Option<String>,
}

pub(super) fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| {
            ApiError::validation(format!("{name} must be an RFC 3339 timestamp or a date"))
        })
}

/// `direction`: asc, or desc (the default).
pub(super) fn parse_ascending(direction: Option<&str>) -> Result<bool, ApiError> {
    match direction.unwrap_or("desc") {
        "asc" => Ok(true),
        "desc" => Ok(false),
        other => Err(ApiError::validation(format!(
            "direction must be asc or desc, got {other:?}"
        ))),
    }
}

fn list_filter(account_id: Uuid, query: &ListQuery) -> Result<ListFilter, ApiError> {
    let statuses = |terminal: bool| -> Vec<Status> {
        Status::ALL
            .iter()
            .copied()
            .filter(|s| s.is_terminal() == terminal)
            .collect()
    };
    let statuses = match query.status.as_deref().unwrap_or("open") {
        "open" => Some(statuses(false)),
        "closed" => Some(statuses(true)),
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
    if let Some(nested) = query.nested.as_deref()
        && !NESTED_VALUES.contains(&nested)
    {
        return Err(ApiError::validation(format!(
            "nested must be true or false, got {nested:?}"
        )));
    }
    let ascending = parse_ascending(query.direction.as_deref())?;
    let symbols = query
        .symbols
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(|symbol| Symbol::parse(symbol).map(|s| s.as_str().to_string()))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|_| {
            ApiError::validation(
                "symbols must be a comma-separated list of symbols (letters, digits, '.' or '/')",
            )
        })?;
    Ok(ListFilter {
        account_id,
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
    })
}

/// `GET /v2/orders`.
#[utoipa::path(get, path = "/v2/orders", tag = "orders", operation_id = "getAllOrders", params(ListQuery),
    responses((status = 200, body = Vec<AlpacaOrder>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = list_filter(account.account_id, &query)?;
    let orders = queries::orders(&state.app, &filter).await?;
    Ok(Json(Value::Array(orders.iter().map(order_json).collect())))
}

/// `GET /v2/orders/{id}/events`: the recorded action timeline.
#[utoipa::path(get, path = "/v2/orders/{order_id}/events", tag = "orders", operation_id = "getOrderEvents",
    params(("order_id" = String, Path, description = "Order id")),
    responses((status = 200, body = OrderTimeline), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn events(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Path(id): Path<String>,
) -> Result<Json<OrderTimeline>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let (order, events) = queries::timeline(&state.app, account.account_id, order_id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(OrderTimeline {
        order_id: order.order_id,
        status: order.status.to_string(),
        step: order.step.to_string(),
        step_state: order.step_state.to_string(),
        attempts: order.attempts,
        next_attempt_at: order.next_attempt_at,
        events,
    }))
}

/// `DELETE /v2/orders/{id}`: 204 once the cancel is recorded; the outcome
/// (canceled, or filled if a fill wins the race) follows.
#[utoipa::path(delete, path = "/v2/orders/{order_id}", tag = "orders", operation_id = "deleteOrderByOrderID",
    params(("order_id" = String, Path, description = "Order id")),
    responses((status = 204, description = "Cancel recorded"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, description = "Already terminal", body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    request_id: RequestId,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let order_id = parse_order_id(&id)?;
    let request = Some(request_id.as_str());
    match cancel::cancel(&state.app, account.account_id, order_id, request).await? {
        Canceled::NotFound => Err(not_found(&id)),
        Canceled::AlreadyTerminal(status) => Err(already_terminal(status)),
        Canceled::Recorded(_) => Ok(StatusCode::NO_CONTENT),
    }
}

/// What `PATCH /v2/orders/{id}` may change (Alpaca's): `trail` is the new
/// trail of a trailing stop, in the unit it was given in.
const REPLACE_FIELDS: [&str; 6] = [
    "qty",
    "time_in_force",
    "limit_price",
    "stop_price",
    "trail",
    "client_order_id",
];

/// `PATCH /v2/orders/{id}`: replaces an open order with a new one.
#[utoipa::path(patch, path = "/v2/orders/{order_id}", tag = "orders", operation_id = "patchOrderByOrderId",
    params(("order_id" = String, Path, description = "Id of the order to replace")),
    request_body(content = Object, description = "What changes: `qty` (the total wanted, what was filled included), `time_in_force` (day or gtc), `limit_price`, `stop_price`, `trail` (a trailing stop's trail_price or trail_percent), `client_order_id` (the replacement's). The rest is the original's."),
    responses(
        (status = 200, description = "The replacement (a new order, `replaces` naming the original). Success does not mean replaced: if the original fills first, the replacement is rejected and the original goes on.", body = AlpacaOrder),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Insufficient buying power or qty for the larger of the two orders", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "The order cannot be replaced as it stands (accepted, pending_new, pending_cancel, pending_replace, done, notional, market), or a field fails validation", body = ErrorBody),
    ),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn replace(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    request_id: RequestId,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            codes::BAD_REQUEST,
            rejection.body_text(),
        )
    })?;
    let original_id = parse_order_id(&id)?;
    let patch: Value = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(format!("request body is not valid JSON: {error}"))
    })?;
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    };
    if let Some(field) = patch
        .keys()
        .find(|field| !REPLACE_FIELDS.contains(&field.as_str()))
    {
        return Err(ApiError::validation(format!(
            "{field} cannot be changed by a replace; only {} can",
            REPLACE_FIELDS.join(", ")
        )));
    }
    let original = queries::order(&state.app, account.account_id, original_id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let replacement = parse_order_request(
        &replacement_request(&original, &patch)
            .to_string()
            .into_bytes(),
    )?;
    let reply = crate::app::replace::replace(
        state.app.clone(),
        account,
        original_id,
        replacement,
        render,
        Some(request_id.as_str()),
    )
    .await?;
    Ok(respond(stored(reply.body), reply.replayed))
}

/// The replacement as a new order's request: the original's terms, with
/// what the patch gives instead. `qty` is the total: what the chain asked
/// for unless the patch says.
fn replacement_request(
    original: &crate::store::orders::OrderRecord,
    patch: &serde_json::Map<String, Value>,
) -> Value {
    let given = |field: &str| patch.get(field).filter(|v| !v.is_null()).cloned();
    let own = |value: Option<rust_decimal::Decimal>| {
        value.map(|v| Value::String(v.normalize().to_string()))
    };
    let mut request = json!({
        "symbol": original.symbol,
        "side": original.side.as_str(),
        "type": original.order_type.as_str(),
        "time_in_force": given("time_in_force").unwrap_or_else(|| json!(original.time_in_force.as_str())),
        "qty": given("qty").or_else(|| own(Some(original.qty + original.carried_qty))),
    });
    let mut put = |field: &str, value: Option<Value>| {
        if let Some(value) = value {
            request[field] = value;
        }
    };
    put(
        "limit_price",
        given("limit_price").or_else(|| own(original.limit_price)),
    );
    put(
        "stop_price",
        given("stop_price").or_else(|| own(original.stop_price)),
    );
    if original.trail_price.is_some() {
        put(
            "trail_price",
            given("trail").or_else(|| own(original.trail_price)),
        );
    } else if original.trail_percent.is_some() {
        put(
            "trail_percent",
            given("trail").or_else(|| own(original.trail_percent)),
        );
    } else {
        // A trail for an order without one: the parser refuses it.
        put("trail_price", given("trail"));
    }
    put("client_order_id", given("client_order_id"));
    request
}

fn already_terminal(status: Status) -> ApiError {
    ApiError::unprocessable(format!("order is already in \"{status}\" state"))
}

/// `DELETE /v2/orders`: cancels every open order; Alpaca's 207 body, one
/// entry per order with its own status.
#[utoipa::path(delete, path = "/v2/orders", tag = "orders", operation_id = "deleteAllOrders",
    responses((status = 207, body = Vec<CancelAllEntry>), (status = 401, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn cancel_all(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    request_id: RequestId,
) -> Result<Response, ApiError> {
    let request = Some(request_id.as_str());
    let entries = cancel::cancel_all(&state.app, account.account_id, request).await?;
    let rendered: Vec<CancelAllEntry> = entries
        .into_iter()
        .map(|entry| {
            let (status, body) = match entry.canceled {
                Some(Canceled::Recorded(order)) => (200, order_json(&order)),
                Some(Canceled::AlreadyTerminal(status)) => {
                    let error = already_terminal(status);
                    (error.status.as_u16(), error.body())
                }
                Some(Canceled::NotFound) => {
                    let error = ApiError::not_found("order not found");
                    (error.status.as_u16(), error.body())
                }
                None => (
                    500,
                    json!({"code": codes::INTERNAL, "message": "internal server error"}),
                ),
            };
            CancelAllEntry {
                id: entry.order_id,
                status,
                body,
            }
        })
        .collect();
    Ok((StatusCode::MULTI_STATUS, Json(rendered)).into_response())
}

/// `GET /v2/orders/{id}/fills`: the order's executions and their settlement.
#[utoipa::path(get, path = "/v2/orders/{order_id}/fills", tag = "orders", operation_id = "getOrderFills",
    params(("order_id" = String, Path, description = "Order id")),
    responses((status = 200, body = Vec<FillView>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("key_id" = [], "secret_key" = [])))]
pub async fn fills(
    State(state): State<Arc<AppState>>,
    Trader(account): Trader,
    Path(id): Path<String>,
) -> Result<Json<Vec<FillView>>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let fills = queries::fills(&state.app, account.account_id, order_id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(
        fills
            .into_iter()
            .map(|f| FillView {
                execution_id: f.exec_id.to_string(),
                order_id: f.order_id,
                qty: f.qty.normalize().to_string(),
                price: f.price.normalize().to_string(),
                transact_time: f.transact_time,
                source: f.source.to_string(),
                settlement_state: f.settlement_state.to_string(),
                settled_at: f.settled_at,
            })
            .collect(),
    ))
}

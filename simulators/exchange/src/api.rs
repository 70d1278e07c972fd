//! HTTP handlers: the `/v1` venue API (API-key auth, fault injection) and the
//! `/admin` API (no auth, never faulted).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::app::{Shared, State as VenueState};
use crate::clock::Phase;
use crate::faults::{Fault, FaultProfile, roll};
use crate::market::{CancelError, CancelMode, ListError, Listing, Order, PlaceError, status_name};
use crate::wire::{
    AdvanceClockRequest, AssetResponse, AssetsQuery, ByClientOrderIdQuery, CalendarDay,
    CalendarQuery, ClockResponse, CreateAssetRequest, ErrorBody, FillResponse, ListOrdersQuery,
    OrderResponse, QuoteResponse, SetPriceRequest, codes, parse_place_order,
};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Default and largest page of `GET /v1/orders`.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
pub const MAX_PAGE_LIMIT: usize = 500;
/// Reason recorded on venue rejections injected by the `reject` faults.
const VENUE_REJECT_REASON: &str = "order rejected by venue (simulated)";
/// `GET /v1/calendar` without `end`: this many days after `start`.
pub const DEFAULT_CALENDAR_DAYS: u64 = 30;
/// Longest `GET /v1/calendar` range, `end - start`, in days.
pub const MAX_CALENDAR_DAYS: i64 = 400;

type SharedState = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let v1 = Router::new()
        .route("/v1/orders", post(place_order).get(list_orders))
        .route(
            "/v1/orders:by_client_order_id",
            get(order_by_client_order_id),
        )
        .route("/v1/orders/{id}", get(get_order).delete(cancel_order))
        .route("/v1/orders/{id}/fills", get(get_fills))
        .route("/v1/orders/{id}/replace", post(replace_order))
        .route("/v1/quotes/{symbol}", get(get_quote))
        .route("/v1/assets", get(list_assets))
        .route("/v1/assets/{symbol}", get(get_asset))
        .route("/v1/clock", get(get_clock))
        .route("/v1/calendar", get(get_calendar))
        .route_layer(middleware::from_fn_with_state(shared.clone(), v1_guard));
    let admin = Router::new()
        .route("/admin/clock/advance", post(advance_clock))
        .route("/admin/assets", post(create_asset))
        .route("/admin/assets/{symbol}/delist", post(delist_asset))
        .route("/admin/assets/{symbol}/halt", post(halt_asset))
        .route("/admin/assets/{symbol}/resume", post(resume_asset))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/reset", post(reset))
        .route("/admin/ground-truth", get(ground_truth))
        .route("/admin/stats", get(stats))
        .route("/admin/prices", post(set_price))
        .route("/admin/disconnect", post(disconnect));
    v1.merge(admin)
        .route("/v1/stream", get(crate::stream::upgrade))
        .fallback(|| async { ApiError::not_found("route not found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                codes::METHOD_NOT_ALLOWED,
                "method not allowed",
            )
        })
        .with_state(shared)
}

/// An error answer: `{"code", "message"}` with the matching status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::VALIDATION, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::UNPROCESSABLE,
            message,
        )
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, codes::CONFLICT, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                code: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// `/v1` REST: API key, then injected latency (429/503 are rolled by each
/// handler, after a placement is counted).
async fn v1_guard(State(shared): SharedState, request: Request, next: Next) -> Response {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|key| key == shared.config.api_key);
    if !authorized {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHORIZED,
            "missing or invalid API key",
        )
        .into_response();
    }
    let latency_ms = shared.with_state(|s| {
        let f = &s.faults;
        if roll(&mut s.fault_rng, f.latency) {
            Some(
                s.fault_rng
                    .random_range(f.latency_min_ms..=f.latency_max_ms),
            )
        } else {
            None
        }
    });
    if let Some(ms) = latency_ms {
        shared.fault_counters.record(Fault::Latency);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    next.run(request).await
}

/// 429 / 503 injection, rolled under the lock.
fn gate(shared: &Shared, s: &mut VenueState) -> ApiResult<()> {
    if roll(&mut s.fault_rng, s.faults.rate_limited) {
        shared.fault_counters.record(Fault::RateLimited);
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMIT,
            "rate limit exceeded",
        );
        error.retry_after_secs = Some(s.faults.retry_after_secs);
        return Err(error);
    }
    if roll(&mut s.fault_rng, s.faults.unavailable) {
        shared.fault_counters.record(Fault::Unavailable);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::UNAVAILABLE,
            "service temporarily unavailable",
        ));
    }
    Ok(())
}

fn gate_only(shared: &Shared) -> ApiResult<()> {
    shared.with_state(|s| gate(shared, s))
}

/// Reads the whole body, at most `MAX_BODY_BYTES`.
async fn read_body(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                format!("request body must be at most {MAX_BODY_BYTES} bytes"),
            )
        })
}

async fn read_json<T: DeserializeOwned>(body: Body) -> ApiResult<T> {
    let bytes = read_body(body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::validation(format!("invalid request body: {e}")))
}

/// How a lost response shows itself.
enum LostResponse {
    /// Hang `delay_ms`, then 504.
    Timeout { delay_ms: u64 },
    /// 500 at once.
    Internal,
}

fn roll_lost(shared: &Shared, s: &mut VenueState, p: f64) -> Option<LostResponse> {
    if !roll(&mut s.fault_rng, p) {
        return None;
    }
    if s.fault_rng.random_bool(0.5) {
        shared.fault_counters.record(Fault::ResponseLostTimeout);
        Some(LostResponse::Timeout {
            delay_ms: s.faults.response_lost_delay_ms,
        })
    } else {
        shared.fault_counters.record(Fault::ResponseLost500);
        Some(LostResponse::Internal)
    }
}

/// Longest `recv_window_ms` a placement may carry.
pub const RECV_WINDOW_MAX_MS: i64 = 60_000;

async fn place_order(State(shared): SharedState, body: Body) -> ApiResult<Response> {
    let bytes = read_body(body).await?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::validation(format!("malformed JSON: {e}")))?;
    // A request held in the network (fault): it reaches the venue later,
    // whatever became of the connection that sent it.
    let late = shared.with_state(|s| {
        roll(&mut s.fault_rng, s.faults.late_arrival)
            .then_some((s.faults.late_arrival_ms, s.faults.response_lost_delay_ms))
    });
    if let Some((arrive_after_ms, hang_ms)) = late {
        shared.fault_counters.record(Fault::LateArrival);
        let held = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(arrive_after_ms)).await;
            let _ = place_arrived(&held, &value).await;
        });
        tokio::time::sleep(Duration::from_millis(hang_ms)).await;
        return Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            codes::TIMEOUT,
            "gateway timeout",
        ));
    }
    place_arrived(&shared, &value).await
}

/// A placement's `timestamp` (ms since the epoch, when it was sent) and
/// `recv_window_ms`, as Binance's: a request that reaches the venue after
/// `timestamp + recv_window_ms` is refused and creates nothing, so a
/// sender knows for certain that one it lost track of can no longer arrive.
fn receive_window(value: &serde_json::Value, now: chrono::DateTime<Utc>) -> ApiResult<()> {
    let timestamp = value.get("timestamp");
    let window = value.get("recv_window_ms");
    let (Some(timestamp), Some(window)) = (timestamp, window) else {
        if timestamp.is_some() || window.is_some() {
            return Err(ApiError::validation(
                "timestamp and recv_window_ms go together",
            ));
        }
        return Ok(());
    };
    let (Some(timestamp), Some(window)) = (timestamp.as_i64(), window.as_i64()) else {
        return Err(ApiError::validation(
            "timestamp and recv_window_ms must be integers (milliseconds)",
        ));
    };
    if !(1..=RECV_WINDOW_MAX_MS).contains(&window) {
        return Err(ApiError::validation(format!(
            "recv_window_ms must be 1 to {RECV_WINDOW_MAX_MS}"
        )));
    }
    let age_ms = now.timestamp_millis() - timestamp;
    if age_ms > window {
        return Err(ApiError::unprocessable(format!(
            "request expired: it arrived {age_ms} ms after its timestamp, past its recv_window_ms of {window}"
        )));
    }
    Ok(())
}

/// The placement as the venue processes it once it has arrived.
async fn place_arrived(shared: &Shared, value: &serde_json::Value) -> ApiResult<Response> {
    let (client_order_id, parsed) = parse_place_order(value);
    let now = Utc::now();
    let (order, lost) =
        shared.with_state(|s| -> ApiResult<(OrderResponse, Option<LostResponse>)> {
            if let Some(id) = &client_order_id {
                shared
                    .counters
                    .placement_requests
                    .fetch_add(1, Ordering::Relaxed);
                match s.placement_requests.get_mut(id) {
                    Some(count) => *count += 1,
                    None => {
                        s.placement_requests.insert(id.clone(), 1);
                    }
                }
            }
            gate(shared, s)?;
            receive_window(value, now)?;
            let order = parsed.map_err(ApiError::validation)?;
            // The phase the order meets is the one at `now`.
            s.market.advance(now);
            s.market.validate(&order).map_err(place_error)?;
            let (reject, lost) = if roll(&mut s.fault_rng, s.faults.reject_response_lost) {
                shared.fault_counters.record(Fault::RejectResponseLost);
                let kind = if s.fault_rng.random_bool(0.5) {
                    LostResponse::Timeout {
                        delay_ms: s.faults.response_lost_delay_ms,
                    }
                } else {
                    LostResponse::Internal
                };
                (true, Some(kind))
            } else if roll(&mut s.fault_rng, s.faults.reject) {
                shared.fault_counters.record(Fault::Reject);
                (true, None)
            } else {
                let p = s.faults.response_lost;
                (false, roll_lost(shared, s, p))
            };
            let venue_reject = reject.then(|| VENUE_REJECT_REASON.to_owned());
            let id = s
                .market
                .place(order, venue_reject, now)
                .map_err(place_error)?;
            let counter = if reject {
                &shared.counters.orders_rejected
            } else {
                &shared.counters.orders_created
            };
            counter.fetch_add(1, Ordering::Relaxed);
            Ok((order_response(s, id)?, lost))
        })?;
    lose(lost).await?;
    if order.status == crate::market::OrderStatus::Rejected {
        return Err(ApiError::unprocessable(
            order
                .reject_reason
                .unwrap_or_else(|| VENUE_REJECT_REASON.into()),
        ));
    }
    Ok(Json(order).into_response())
}

/// The order just entered, as answered.
fn order_response(s: &VenueState, id: Uuid) -> ApiResult<OrderResponse> {
    s.market.order(id).map(OrderResponse::from).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "order vanished",
        )
    })
}

/// A response the fault plan lost (after what it answers took effect):
/// a 504 after a hang, or a 500. `Ok` when it is not lost.
async fn lose(lost: Option<LostResponse>) -> ApiResult<()> {
    match lost {
        Some(LostResponse::Timeout { delay_ms }) => {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                codes::TIMEOUT,
                "gateway timeout",
            ))
        }
        Some(LostResponse::Internal) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal server error",
        )),
        None => Ok(()),
    }
}

fn place_error(e: PlaceError) -> ApiError {
    match e {
        PlaceError::Invalid(message) => ApiError::validation(message),
        PlaceError::Refused(message) => ApiError::unprocessable(message),
        PlaceError::UnknownSymbol(symbol) => {
            ApiError::unprocessable(format!("unknown symbol: {symbol}"))
        }
        PlaceError::NotTradable(symbol) => {
            ApiError::unprocessable(format!("asset {symbol} is not tradable"))
        }
        PlaceError::WrongPhase(message) => ApiError::unprocessable(message),
        PlaceError::DuplicateClientOrderId => {
            ApiError::unprocessable("client_order_id must be unique")
        }
    }
}

fn parse_order_id(path: Result<Path<String>, PathRejection>) -> ApiResult<Uuid> {
    let Path(raw) = path.map_err(|_| ApiError::not_found("order not found"))?;
    Uuid::parse_str(&raw).map_err(|_| ApiError::not_found("order not found"))
}

/// A lookup that may be answered stale: 404 for a young order.
fn stale(shared: &Shared, s: &mut VenueState, order: &Order) -> bool {
    let window_ms = i64::try_from(s.faults.stale_read_window_ms).unwrap_or(i64::MAX);
    let young = (Utc::now() - order.created_at).num_milliseconds() < window_ms;
    if young && roll(&mut s.fault_rng, s.faults.stale_read) {
        shared.fault_counters.record(Fault::StaleRead);
        return true;
    }
    false
}

fn lookup(
    shared: &Shared,
    s: &mut VenueState,
    found: Option<OrderResponse>,
) -> ApiResult<Json<OrderResponse>> {
    let order = found.ok_or_else(|| ApiError::not_found("order not found"))?;
    let is_stale = s
        .market
        .order(order.id)
        .cloned()
        .is_some_and(|o| stale(shared, s, &o));
    if is_stale {
        return Err(ApiError::not_found("order not found"));
    }
    Ok(Json(order))
}

async fn get_order(
    State(shared): SharedState,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<OrderResponse>> {
    gate_only(&shared)?;
    let id = parse_order_id(path)?;
    shared.with_state(|s| {
        let found = s.market.order(id).map(OrderResponse::from);
        lookup(&shared, s, found)
    })
}

async fn order_by_client_order_id(
    State(shared): SharedState,
    query: Result<Query<ByClientOrderIdQuery>, QueryRejection>,
) -> ApiResult<Json<OrderResponse>> {
    gate_only(&shared)?;
    let Query(query) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    let client_order_id = query
        .client_order_id
        .ok_or_else(|| ApiError::validation("client_order_id is required"))?;
    shared.with_state(|s| {
        let found = s
            .market
            .order_by_client_order_id(&client_order_id)
            .map(OrderResponse::from);
        lookup(&shared, s, found)
    })
}

async fn list_orders(
    State(shared): SharedState,
    query: Result<Query<ListOrdersQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<OrderResponse>>> {
    gate_only(&shared)?;
    let Query(query) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    let open = match query.status.as_deref() {
        None | Some("open") => Some(true),
        Some("closed") => Some(false),
        Some("all") => None,
        Some(_) => return Err(ApiError::validation("status must be open, closed or all")),
    };
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE_LIMIT,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::validation(format!(
                    "limit must be 1..={MAX_PAGE_LIMIT}"
                )));
            }
        },
    };
    let after = match query.after.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(
            Uuid::parse_str(raw).map_err(|_| ApiError::validation("after must be an order id"))?,
        ),
    };
    let orders = shared.with_state(|s| {
        if let Some(after) = after
            && s.market.order(after).is_none()
        {
            return Err(ApiError::validation("after is not a known order id"));
        }
        Ok(s.market
            .list(open, after, limit)
            .into_iter()
            .map(OrderResponse::from)
            .collect())
    })?;
    Ok(Json(orders))
}

async fn cancel_order(
    State(shared): SharedState,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    gate_only(&shared)?;
    let id = parse_order_id(path)?;
    let now = Utc::now();
    shared.with_state(|s| {
        let status = s.market.order(id).map(|o| o.status);
        let mode = match status {
            Some(status)
                if !status.is_terminal() && status != crate::market::OrderStatus::PendingCancel =>
            {
                if roll(&mut s.fault_rng, s.faults.fill_races_cancel) {
                    shared.fault_counters.record(Fault::FillRacesCancel);
                    CancelMode::FillRacesCancel
                } else if roll(&mut s.fault_rng, s.faults.fill_after_cancel) {
                    shared.fault_counters.record(Fault::FillAfterCancel);
                    CancelMode::FillAfterCancel
                } else {
                    CancelMode::Normal
                }
            }
            _ => CancelMode::Normal,
        };
        let extra_ms = s.faults.cancel_delay_ms;
        s.market
            .request_cancel_after(id, mode, now, extra_ms)
            .map_err(|e| match e {
                CancelError::NotFound => ApiError::not_found("order not found"),
                CancelError::AlreadyTerminal(status) => {
                    ApiError::unprocessable(format!("order is already {}", status_name(status)))
                }
            })
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/orders/{id}/replace`: cancel/replace, atomic at the venue
/// (`market::replace`). 200 with the replacement (the same one again for
/// the same request); 404 unknown order; 422 when it cannot be replaced
/// or the terms are refused; a lost response (fault) after the replace
/// took effect, as a placement's.
async fn replace_order(
    State(shared): SharedState,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> ApiResult<Response> {
    let id = parse_order_id(path)?;
    let bytes = read_body(body).await?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::validation(format!("malformed JSON: {e}")))?;
    let now = Utc::now();
    receive_window(&value, now)?;
    let (order, lost) =
        shared.with_state(|s| -> ApiResult<(OrderResponse, Option<LostResponse>)> {
            gate(&shared, s)?;
            let terms = crate::wire::parse_replace(&value).map_err(ApiError::validation)?;
            s.market.advance(now);
            let mode = if roll(&mut s.fault_rng, s.faults.fill_races_replace) {
                shared.fault_counters.record(Fault::FillRacesReplace);
                crate::market::ReplaceMode::FillRacesReplace
            } else {
                crate::market::ReplaceMode::Normal
            };
            let replaced = s
                .market
                .replace(id, terms, mode, now)
                .map_err(|e| match e {
                    crate::market::ReplaceError::NotFound => ApiError::not_found("order not found"),
                    crate::market::ReplaceError::NotReplaceable(reason) => {
                        ApiError::unprocessable(reason)
                    }
                    crate::market::ReplaceError::Invalid(e) => place_error(e),
                })?;
            let new_id = match replaced {
                crate::market::Replaced::New(new_id) => {
                    shared
                        .counters
                        .orders_created
                        .fetch_add(1, Ordering::Relaxed);
                    new_id
                }
                crate::market::Replaced::Again(new_id) => new_id,
            };
            let p = s.faults.response_lost;
            let lost = roll_lost(&shared, s, p);
            Ok((order_response(s, new_id)?, lost))
        })?;
    lose(lost).await?;
    Ok(Json(order).into_response())
}

async fn get_fills(
    State(shared): SharedState,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Vec<FillResponse>>> {
    gate_only(&shared)?;
    let id = parse_order_id(path)?;
    shared.with_state(|s| {
        s.market
            .order(id)
            .map(|o| Json(o.fills.iter().map(FillResponse::from).collect()))
            .ok_or_else(|| ApiError::not_found("order not found"))
    })
}

async fn get_quote(
    State(shared): SharedState,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<QuoteResponse>> {
    gate_only(&shared)?;
    let Path(symbol) = path.map_err(|_| ApiError::not_found("unknown symbol"))?;
    let quote = shared.with_state(|s| s.market.quote(&symbol));
    quote
        .map(|q| Json(QuoteResponse::new(q, Utc::now())))
        .ok_or_else(|| ApiError::not_found(format!("unknown symbol: {symbol}")))
}

async fn list_assets(
    State(shared): SharedState,
    query: Result<Query<AssetsQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<AssetResponse>>> {
    gate_only(&shared)?;
    let Query(query) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    let active = match query.status.as_deref() {
        None => None,
        Some("active") => Some(true),
        Some("inactive") => Some(false),
        Some(_) => return Err(ApiError::validation("status must be active or inactive")),
    };
    Ok(Json(shared.assets(active)))
}

async fn get_asset(
    State(shared): SharedState,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<AssetResponse>> {
    gate_only(&shared)?;
    let Path(symbol) = path.map_err(|_| ApiError::not_found("unknown symbol"))?;
    shared
        .asset(&symbol)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("unknown symbol: {symbol}")))
}

async fn get_clock(State(shared): SharedState) -> ApiResult<Json<ClockResponse>> {
    gate_only(&shared)?;
    Ok(Json(shared.clock()))
}

fn parse_date(field: &str, raw: Option<&str>) -> ApiResult<Option<chrono::NaiveDate>> {
    raw.map(|text| {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| ApiError::validation(format!("{field} must be a date YYYY-MM-DD")))
    })
    .transpose()
}

async fn get_calendar(
    State(shared): SharedState,
    query: Result<Query<CalendarQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<CalendarDay>>> {
    gate_only(&shared)?;
    let Query(query) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    let start = parse_date("start", query.start.as_deref())?;
    let end = parse_date("end", query.end.as_deref())?;
    // Both bounds are checked once `start` is known (it may default to the
    // current session's date).
    let mut bad_range = None;
    let days = shared.calendar(start, |start| {
        let end = end.unwrap_or_else(|| start + chrono::Days::new(DEFAULT_CALENDAR_DAYS));
        let span = (end - start).num_days();
        if span < 0 {
            bad_range = Some("end must not be before start".to_owned());
            return start.pred_opt().unwrap_or(start);
        }
        if span > MAX_CALENDAR_DAYS {
            bad_range = Some(format!(
                "the range must be at most {MAX_CALENDAR_DAYS} days"
            ));
            return start.pred_opt().unwrap_or(start);
        }
        end
    });
    match bad_range {
        Some(message) => Err(ApiError::validation(message)),
        None => Ok(Json(days)),
    }
}

// ---- /admin ----

async fn advance_clock(State(shared): SharedState, body: Body) -> ApiResult<Json<ClockResponse>> {
    let request: AdvanceClockRequest = read_json(body).await?;
    let phase = Phase::parse(&request.to).ok_or_else(|| {
        ApiError::validation(
            "to must be pre_open, opening_auction, open, closing_auction or closed",
        )
    })?;
    shared
        .advance_clock(phase)
        .map(Json)
        .map_err(|e| ApiError::conflict(e.to_string()))
}

async fn create_asset(State(shared): SharedState, body: Body) -> ApiResult<Response> {
    let request: CreateAssetRequest = read_json(body).await?;
    let min_qty = match request.min_qty {
        None => 1,
        Some(qty) if qty.fract().is_zero() && qty >= rust_decimal::Decimal::ONE => {
            u64::try_from(qty).map_err(|_| ApiError::validation("min_qty is too large"))?
        }
        Some(_) => return Err(ApiError::validation("min_qty must be a whole number >= 1")),
    };
    let listing = Listing {
        symbol: request.symbol,
        name: request.name,
        price: request.price,
        exchange: request.exchange.unwrap_or_default(),
        shortable: request.shortable.unwrap_or(true),
        min_qty,
        fractionable: request.fractionable.unwrap_or(min_qty == 1),
    };
    let symbol = listing.symbol.clone();
    match shared.list_asset(listing) {
        Ok(asset) => Ok((StatusCode::CREATED, Json(asset)).into_response()),
        Err(ListError::AlreadyActive) => Err(ApiError::conflict(format!(
            "asset {symbol} is already listed and active"
        ))),
        Err(ListError::Invalid(message)) => Err(ApiError::validation(message)),
    }
}

fn asset_or_404(symbol: &str, asset: Option<AssetResponse>) -> ApiResult<Json<AssetResponse>> {
    asset
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("unknown symbol: {symbol}")))
}

async fn delist_asset(
    State(shared): SharedState,
    Path(symbol): Path<String>,
) -> ApiResult<Json<AssetResponse>> {
    asset_or_404(&symbol, shared.delist(&symbol))
}

async fn halt_asset(
    State(shared): SharedState,
    Path(symbol): Path<String>,
) -> ApiResult<Json<AssetResponse>> {
    asset_or_404(&symbol, shared.halt(&symbol))
}

async fn resume_asset(
    State(shared): SharedState,
    Path(symbol): Path<String>,
) -> ApiResult<Json<AssetResponse>> {
    asset_or_404(&symbol, shared.resume(&symbol))
}

/// `POST /admin/disconnect`: closes every stream connection now (as the
/// `disconnect` fault would, without waiting for a report); answers how
/// many were open.
async fn disconnect(State(shared): SharedState) -> Json<serde_json::Value> {
    let open = shared.counters.connections_open.load(Ordering::Relaxed);
    shared.kick.send_modify(|generation| *generation += 1);
    Json(serde_json::json!({ "connections": open }))
}

async fn get_faults(State(shared): SharedState) -> Json<FaultProfile> {
    Json(shared.faults())
}

async fn put_faults(State(shared): SharedState, body: Body) -> ApiResult<Json<FaultProfile>> {
    let profile: FaultProfile = read_json(body).await?;
    shared
        .set_faults(profile.clone())
        .map_err(ApiError::validation)?;
    Ok(Json(profile))
}

async fn reset(State(shared): SharedState) -> StatusCode {
    shared.reset();
    StatusCode::NO_CONTENT
}

async fn ground_truth(State(shared): SharedState) -> Json<impl Serialize> {
    Json(shared.ground_truth())
}

async fn stats(State(shared): SharedState) -> Json<impl Serialize> {
    Json(shared.stats())
}

async fn set_price(State(shared): SharedState, body: Body) -> ApiResult<Json<QuoteResponse>> {
    let request: SetPriceRequest = read_json(body).await?;
    if request.price <= rust_decimal::Decimal::ZERO {
        return Err(ApiError::validation("price must be > 0"));
    }
    shared
        .set_price(&request.symbol, request.price)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("unknown symbol: {}", request.symbol)))
}

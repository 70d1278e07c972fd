//! The HTTP adapter: routes, fault injection around `/v1`, idempotency around mutations.
//!
//! Concurrency: all ledger state and idempotency records live behind one
//! `std::sync::Mutex` (`App::shared`); fault dice and counters behind another
//! (`App::faults`). Neither is ever held across an `.await`, and never both at once.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use rand::RngCore;
use serde::Deserialize;

use crate::config::Config;
use crate::error::ApiError;
use crate::faults::{EarlyFault, FaultConfig, FaultState, LostResponse};
use crate::idempotency::{Begin, Fingerprint, IdempotencyStore, Operation};
use crate::ledger::Ledger;
use crate::{parse, wire};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Ledger page size when `limit` is absent, and its upper bound.
pub const LEDGER_PAGE_DEFAULT: usize = 100;
pub const LEDGER_PAGE_MAX: usize = 1_000;

/// Response header that marks a replayed idempotent response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

pub(crate) struct Shared {
    ledger: Ledger,
    idempotency: IdempotencyStore,
}

pub(crate) struct App {
    config: Config,
    shared: Mutex<Shared>,
    faults: Mutex<FaultState>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code path panics while holding a lock; if one ever did, the state is still
    // consistent because every ledger operation validates before it writes.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl App {
    pub(crate) fn new(config: Config) -> anyhow::Result<Self> {
        config
            .faults
            .validate()
            .map_err(|(field, reason)| anyhow::anyhow!("faults.{field}: {reason}"))?;
        let shared = Shared::new(&config)?;
        let faults = FaultState::new(config.faults.clone(), config.seed);
        Ok(App {
            config,
            shared: Mutex::new(shared),
            faults: Mutex::new(faults),
        })
    }
}

impl Shared {
    fn new(config: &Config) -> anyhow::Result<Self> {
        // Ids must not repeat across runs (orderd keeps them), so they are not seeded.
        let mut ledger = Ledger::new(rand::rng().next_u64());
        let now = Utc::now();
        for account in &config.accounts {
            let balances = account
                .balances
                .iter()
                .map(|(k, v)| (k.clone(), v.0))
                .collect();
            ledger
                .create_account(&account.account_id, &balances, now)
                .map_err(|e| anyhow::anyhow!("accounts: {e}"))?;
        }
        Ok(Shared {
            ledger,
            idempotency: IdempotencyStore::default(),
        })
    }
}

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/holds", post(create_hold).get(list_holds))
        .route("/v1/holds/{id}", get(get_hold))
        .route("/v1/holds/{id}/release", post(release_hold))
        .route("/v1/holds/{id}/increase", post(increase_hold))
        .route(
            "/v1/settlements",
            post(create_settlement).get(list_settlements),
        )
        .route("/v1/settlements/{id}", get(get_settlement))
        .route("/v1/accounts/{id}/balances", get(get_balances))
        .route("/v1/ledger", get(get_ledger))
        .route("/admin/accounts", post(admin_create_account))
        .route("/admin/faults", get(admin_get_faults).put(admin_put_faults))
        .route("/admin/reset", post(admin_reset))
        .route("/admin/ground-truth", get(admin_ground_truth))
        .route("/admin/stats", get(admin_stats))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

// ---- response helpers -----------------------------------------------------------

pub(crate) fn json_bytes(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    json_bytes(
        status,
        serde_json::to_vec(value).expect("wire types always serialize"),
    )
}

fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body must be at most {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                rejection.body_text(),
            )
        }
    })
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

// ---- fault injection around /v1 ---------------------------------------------------

/// Runs a `/v1` handler under the fault plan: early faults answer before `handler`
/// runs (nothing committed); `handler` gets the latency to inject at the right spot;
/// a lost response replaces whatever `handler` answered (which has committed).
async fn with_faults<F, Fut>(app: Arc<App>, endpoint: &'static str, handler: F) -> Response
where
    F: FnOnce(Arc<App>, Option<Duration>) -> Fut,
    Fut: Future<Output = Response>,
{
    let plan = lock(&app.faults).plan(endpoint);
    if let Some(early) = plan.early {
        return match early {
            EarlyFault::TooManyRequests { retry_after_s } => {
                let mut r = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests",
                )
                .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
                r
            }
            EarlyFault::ServiceUnavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "service unavailable",
            )
            .into_response(),
            EarlyFault::InternalError => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error",
            )
            .into_response(),
        };
    }
    let response = handler(app, plan.latency).await;
    match plan.lost {
        None => response,
        Some(LostResponse::Error500) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
        .into_response(),
        Some(LostResponse::Timeout504 { delay }) => {
            tokio::time::sleep(delay).await;
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                "upstream timed out",
            )
            .into_response()
        }
        Some(LostResponse::ConnectionDrop { delay }) => {
            tokio::time::sleep(delay).await;
            // A body that fails makes hyper abort the connection mid-response.
            let stream = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("response lost (injected)"))
            });
            Response::new(Body::from_stream(stream))
        }
    }
}

async fn sleep_opt(latency: Option<Duration>) {
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
}

/// Frees an in-flight key if the request future is dropped before it completes.
struct InFlightGuard<'a> {
    app: &'a App,
    operation: Operation,
    key: Option<String>,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.app.shared)
                .idempotency
                .abandon(self.operation, &key);
        }
    }
}

/// Runs one keyed mutation: reserve the key, wait out the injected latency, then
/// apply to the ledger and record the response in one critical section.
async fn mutate(app: &App, fingerprint: Fingerprint, latency: Option<Duration>) -> Response {
    let begin = lock(&app.shared).idempotency.begin(&fingerprint);
    match begin {
        Begin::Proceed => {}
        Begin::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = json_bytes(status, body);
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            return response;
        }
        Begin::InFlight => {
            return ApiError::new(
                StatusCode::CONFLICT,
                "request_in_flight",
                "a request with this idempotency key is still being processed; retry later",
            )
            .into_response();
        }
        Begin::Reused => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this idempotency key was already used with a different request",
            )
            .into_response();
        }
    }
    let mut guard = InFlightGuard {
        app,
        operation: fingerprint.operation(),
        key: Some(fingerprint.key().to_owned()),
    };
    sleep_opt(latency).await;
    let (status, body) = {
        let mut shared = lock(&app.shared);
        let now = Utc::now();
        let outcome = match &fingerprint {
            Fingerprint::Hold(req) => shared.ledger.create_hold(req, now).map(|h| {
                (
                    StatusCode::CREATED,
                    serde_json::to_vec(&wire::Hold::from(h)),
                )
            }),
            Fingerprint::Release(req) => shared
                .ledger
                .release_hold(req, now)
                .map(|h| (StatusCode::OK, serde_json::to_vec(&wire::Hold::from(h)))),
            Fingerprint::Increase(req) => shared
                .ledger
                .increase_hold(req, now)
                .map(|h| (StatusCode::OK, serde_json::to_vec(&wire::Hold::from(h)))),
            Fingerprint::Settlement(req) => shared.ledger.settle(req, now).map(|s| {
                (
                    StatusCode::CREATED,
                    serde_json::to_vec(&wire::Settlement::from(s)),
                )
            }),
        };
        let (status, body) = match outcome {
            Ok((status, body)) => (
                status,
                Bytes::from(body.expect("wire types always serialize")),
            ),
            Err(e) => {
                let e = ApiError::from(e);
                (e.status, Bytes::from(e.body_bytes()))
            }
        };
        // Every outcome the ledger decided is recorded, errors included (Stripe).
        shared
            .idempotency
            .complete(fingerprint, status.as_u16(), body.clone());
        (status, body)
    };
    guard.key = None;
    json_bytes(status, body)
}

// ---- /v1 mutations ------------------------------------------------------------------

async fn create_hold(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Response {
    with_faults(app, "create_hold", |app, latency| async move {
        let req = match body_or_error(body).and_then(|b| parse::create_hold(&b)) {
            Ok(req) => req,
            Err(e) => return e.into_response(),
        };
        mutate(&app, Fingerprint::Hold(req), latency).await
    })
    .await
}

async fn release_hold(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    with_faults(app, "release_hold", |app, latency| async move {
        let Ok(hold_id) = uuid::Uuid::parse_str(&id) else {
            return ApiError::not_found("hold_not_found", format!("hold {id} not found"))
                .into_response();
        };
        let req = match body_or_error(body).and_then(|b| parse::release(hold_id, &b)) {
            Ok(req) => req,
            Err(e) => return e.into_response(),
        };
        mutate(&app, Fingerprint::Release(req), latency).await
    })
    .await
}

async fn increase_hold(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    with_faults(app, "increase_hold", |app, latency| async move {
        let Ok(hold_id) = uuid::Uuid::parse_str(&id) else {
            return ApiError::not_found("hold_not_found", format!("hold {id} not found"))
                .into_response();
        };
        let req = match body_or_error(body).and_then(|b| parse::increase(hold_id, &b)) {
            Ok(req) => req,
            Err(e) => return e.into_response(),
        };
        mutate(&app, Fingerprint::Increase(req), latency).await
    })
    .await
}

async fn create_settlement(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    with_faults(app, "create_settlement", |app, latency| async move {
        let req = match body_or_error(body).and_then(|b| parse::settlement(&b)) {
            Ok(req) => req,
            Err(e) => return e.into_response(),
        };
        mutate(&app, Fingerprint::Settlement(req), latency).await
    })
    .await
}

// ---- /v1 reads ------------------------------------------------------------------------

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        rejection.body_text(),
    )
}

async fn get_hold(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    with_faults(app, "get_hold", |app, latency| async move {
        sleep_opt(latency).await;
        let hold = uuid::Uuid::parse_str(&id)
            .ok()
            .and_then(|id| lock(&app.shared).ledger.hold(id).map(wire::Hold::from));
        match hold {
            Some(hold) => json(StatusCode::OK, &hold),
            None => ApiError::not_found("hold_not_found", format!("hold {id} not found"))
                .into_response(),
        }
    })
    .await
}

#[derive(Deserialize)]
struct LookupQuery {
    idempotency_key: Option<String>,
    order_id: Option<String>,
}

async fn list_holds(
    State(app): State<Arc<App>>,
    query: Result<Query<LookupQuery>, QueryRejection>,
) -> Response {
    with_faults(app, "list_holds", |app, latency| async move {
        sleep_opt(latency).await;
        let Query(q) = match query {
            Ok(q) => q,
            Err(e) => return query_error(e).into_response(),
        };
        let shared = lock(&app.shared);
        let holds: Vec<wire::Hold> = match (&q.idempotency_key, &q.order_id) {
            (Some(key), order_id) => shared
                .ledger
                .hold_by_key(key)
                .filter(|h| order_id.is_none() || h.reference.order_id == *order_id)
                .map(wire::Hold::from)
                .into_iter()
                .collect(),
            (None, Some(order_id)) => shared
                .ledger
                .holds_by_order(order_id)
                .into_iter()
                .map(wire::Hold::from)
                .collect(),
            (None, None) => {
                return ApiError::missing_field("idempotency_key or order_id").into_response();
            }
        };
        drop(shared);
        json(StatusCode::OK, &wire::HoldsResponse { holds })
    })
    .await
}

async fn get_settlement(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    with_faults(app, "get_settlement", |app, latency| async move {
        sleep_opt(latency).await;
        let settlement = uuid::Uuid::parse_str(&id).ok().and_then(|id| {
            lock(&app.shared)
                .ledger
                .settlement(id)
                .map(wire::Settlement::from)
        });
        match settlement {
            Some(s) => json(StatusCode::OK, &s),
            None => {
                ApiError::not_found("settlement_not_found", format!("settlement {id} not found"))
                    .into_response()
            }
        }
    })
    .await
}

async fn list_settlements(
    State(app): State<Arc<App>>,
    query: Result<Query<LookupQuery>, QueryRejection>,
) -> Response {
    with_faults(app, "list_settlements", |app, latency| async move {
        sleep_opt(latency).await;
        let Query(q) = match query {
            Ok(q) => q,
            Err(e) => return query_error(e).into_response(),
        };
        let shared = lock(&app.shared);
        let settlements: Vec<wire::Settlement> = match (&q.idempotency_key, &q.order_id) {
            (Some(key), order_id) => shared
                .ledger
                .settlement_by_key(key)
                .filter(|s| order_id.is_none() || s.reference.order_id == *order_id)
                .map(wire::Settlement::from)
                .into_iter()
                .collect(),
            (None, Some(order_id)) => shared
                .ledger
                .settlements_by_order(order_id)
                .into_iter()
                .map(wire::Settlement::from)
                .collect(),
            (None, None) => {
                return ApiError::missing_field("idempotency_key or order_id").into_response();
            }
        };
        drop(shared);
        json(StatusCode::OK, &wire::SettlementsResponse { settlements })
    })
    .await
}

async fn get_balances(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    with_faults(app, "get_balances", |app, latency| async move {
        sleep_opt(latency).await;
        let balances = lock(&app.shared)
            .ledger
            .account(&id)
            .map(wire::BalancesResponse::from);
        match balances {
            Some(b) => json(StatusCode::OK, &b),
            None => ApiError::not_found("account_not_found", format!("account {id} not found"))
                .into_response(),
        }
    })
    .await
}

#[derive(Deserialize)]
struct LedgerQuery {
    account_id: Option<String>,
    after_seq: Option<String>,
    limit: Option<String>,
}

fn parse_query_number(field: &str, value: Option<&str>, default: u64) -> Result<u64, ApiError> {
    match value {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::invalid_field(field, "must be a non-negative integer")),
    }
}

async fn get_ledger(
    State(app): State<Arc<App>>,
    query: Result<Query<LedgerQuery>, QueryRejection>,
) -> Response {
    with_faults(app, "get_ledger", |app, latency| async move {
        sleep_opt(latency).await;
        let Query(q) = match query {
            Ok(q) => q,
            Err(e) => return query_error(e).into_response(),
        };
        let parsed =
            parse_query_number("after_seq", q.after_seq.as_deref(), 0).and_then(|after_seq| {
                let limit =
                    parse_query_number("limit", q.limit.as_deref(), LEDGER_PAGE_DEFAULT as u64)?;
                if limit == 0 || limit > LEDGER_PAGE_MAX as u64 {
                    return Err(ApiError::invalid_field(
                        "limit",
                        format!("must be between 1 and {LEDGER_PAGE_MAX}"),
                    ));
                }
                Ok((after_seq, limit as usize))
            });
        let (after_seq, limit) = match parsed {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        let shared = lock(&app.shared);
        if let Some(account_id) = &q.account_id
            && shared.ledger.account(account_id).is_none()
        {
            return ApiError::not_found(
                "account_not_found",
                format!("account {account_id} not found"),
            )
            .into_response();
        }
        let (page, has_more) =
            shared
                .ledger
                .entries_page(q.account_id.as_deref(), after_seq, limit);
        let entries: Vec<wire::LedgerEntry> =
            page.into_iter().map(wire::LedgerEntry::from).collect();
        drop(shared);
        let next_after_seq = entries.last().map_or(after_seq, |e| e.seq);
        json(
            StatusCode::OK,
            &wire::LedgerResponse {
                entries,
                next_after_seq,
                has_more,
            },
        )
    })
    .await
}

// ---- /admin (no faults) ---------------------------------------------------------------

async fn admin_create_account(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    lock(&app.faults).count("admin_create_account");
    let (account_id, balances) = match body_or_error(body).and_then(|b| parse::create_account(&b)) {
        Ok(parsed) => parsed,
        Err(e) => return e.into_response(),
    };
    let mut shared = lock(&app.shared);
    let created = shared
        .ledger
        .create_account(&account_id, &balances, Utc::now())
        .map(wire::BalancesResponse::from);
    drop(shared);
    match created {
        Ok(account) => json(StatusCode::CREATED, &account),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn admin_get_faults(State(app): State<Arc<App>>) -> Response {
    let mut faults = lock(&app.faults);
    faults.count("admin_get_faults");
    let config = faults.config.clone();
    drop(faults);
    json(StatusCode::OK, &config)
}

async fn admin_put_faults(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    lock(&app.faults).count("admin_put_faults");
    let body = match body_or_error(body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let config: FaultConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {e}"),
            )
            .into_response();
        }
        Err(e) => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                e.to_string(),
            )
            .into_response();
        }
    };
    if let Err((field, reason)) = config.validate() {
        return ApiError::invalid_field(field, reason).into_response();
    }
    lock(&app.faults).config = config.clone();
    json(StatusCode::OK, &config)
}

/// Clears every account, hold, settlement, ledger entry and idempotency record,
/// re-creates the configured accounts, restores the configured fault profile and
/// seed, and zeroes the counters.
async fn admin_reset(State(app): State<Arc<App>>) -> Response {
    let fresh = match Shared::new(&app.config) {
        Ok(s) => s,
        Err(e) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                e.to_string(),
            )
            .into_response();
        }
    };
    *lock(&app.shared) = fresh;
    let mut faults = lock(&app.faults);
    *faults = FaultState::new(app.config.faults.clone(), app.config.seed);
    faults.count("admin_reset");
    drop(faults);
    json(StatusCode::OK, &serde_json::json!({"reset": true}))
}

async fn admin_ground_truth(State(app): State<Arc<App>>) -> Response {
    lock(&app.faults).count("admin_ground_truth");
    let shared = lock(&app.shared);
    let truth = wire::GroundTruth {
        accounts: shared
            .ledger
            .accounts()
            .into_iter()
            .map(wire::BalancesResponse::from)
            .collect(),
        holds: shared.ledger.holds().map(wire::Hold::from).collect(),
        settlements: shared
            .ledger
            .settlements()
            .map(wire::Settlement::from)
            .collect(),
        ledger: shared
            .ledger
            .entries()
            .iter()
            .map(wire::LedgerEntry::from)
            .collect(),
    };
    drop(shared);
    json(StatusCode::OK, &truth)
}

async fn admin_stats(State(app): State<Arc<App>>) -> Response {
    let mut faults = lock(&app.faults);
    faults.count("admin_stats");
    let (requests, injected) = (faults.requests(), faults.injected());
    drop(faults);
    let shared = lock(&app.shared);
    let idempotency = [
        ("replayed", shared.idempotency.replayed),
        ("in_flight_conflict", shared.idempotency.in_flight_conflicts),
        ("key_reused", shared.idempotency.key_reused),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    drop(shared);
    json(
        StatusCode::OK,
        &wire::Stats {
            requests,
            faults: injected,
            idempotency,
        },
    )
}

//! `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` authentication of trader
//! requests (verified keys are cached by `app::account::authenticate`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::{ApiError, codes};
use super::state::AppState;
use crate::app::account;
use crate::app::ratelimit::RateState;
use crate::store::accounts::Account;

pub const KEY_ID_HEADER: &str = "apca-api-key-id";
pub const SECRET_HEADER: &str = "apca-api-secret-key";

/// The authenticated trader account of a request.
#[derive(Debug, Clone)]
pub struct Trader(pub Account);

impl FromRequestParts<Arc<AppState>> for Trader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let (Some(key_id), Some(secret)) = (header(KEY_ID_HEADER), header(SECRET_HEADER)) else {
            return Err(ApiError::unauthorized());
        };
        let Some(account) = account::authenticate(&state.app, key_id, secret).await? else {
            return Err(ApiError::unauthorized());
        };
        tracing::Span::current().record("account_id", tracing::field::display(account.account_id));
        let rate = state
            .app
            .rate_limiter
            .take(account.account_id, std::time::Instant::now());
        if let (Some(rate), Some(slot)) = (rate, parts.extensions.get::<RateSlot>()) {
            slot.set(rate);
        }
        match rate.and_then(|r| r.retry_after) {
            Some(wait) => {
                metrics::counter!(crate::metrics::names::RATE_LIMITED).increment(1);
                Err(ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    codes::TOO_MANY_REQUESTS,
                    "rate limit exceeded",
                )
                .retry_after(wait))
            }
            None => Ok(Trader(account)),
        }
    }
}

/// Where the extractor leaves what the rate limiter said of a request, for
/// [`rate_limit_headers`] to put on the response.
#[derive(Debug, Clone, Default)]
pub struct RateSlot(Arc<std::sync::Mutex<Option<RateState>>>);

impl RateSlot {
    fn set(&self, rate: RateState) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(rate);
        }
    }

    fn get(&self) -> Option<RateState> {
        self.0.lock().ok().and_then(|slot| *slot)
    }
}

/// Alpaca's `X-RateLimit-Limit`, `-Remaining` and `-Reset` (epoch seconds
/// when the account's allowance is whole again) on every response to an
/// authenticated trader request.
pub async fn rate_limit_headers(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let slot = RateSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    if let Some(rate) = slot.get() {
        // The first whole second at which the allowance is whole.
        let reset_ms = chrono::Utc::now().timestamp_millis()
            + i64::try_from(rate.reset_in.as_millis()).unwrap_or(0);
        let reset = reset_ms.div_euclid(1000) + i64::from(reset_ms.rem_euclid(1000) > 0);
        let headers = response.headers_mut();
        for (name, value) in [
            ("x-ratelimit-limit", rate.limit.to_string()),
            ("x-ratelimit-remaining", rate.remaining.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ] {
            if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    response
}

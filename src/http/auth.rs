//! `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` authentication of trader
//! requests (verified keys are cached by `app::account::authenticate`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use super::state::AppState;
use crate::app::account;
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
        match account::authenticate(&state.app, key_id, secret).await? {
            Some(account) => {
                tracing::Span::current()
                    .record("account_id", tracing::field::display(account.account_id));
                Ok(Trader(account))
            }
            None => Err(ApiError::unauthorized()),
        }
    }
}

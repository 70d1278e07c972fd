//! The API error: an HTTP status plus a `{"code", "message"}` body. Never leaks internals.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::ledger::LedgerError;
use crate::wire::{Amount, ErrorBody};

#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                message: message.into(),
                field: None,
                available: None,
            },
        }
    }

    /// 422 `invalid_field`, naming the field.
    pub fn invalid_field(field: &str, reason: impl std::fmt::Display) -> Self {
        let mut error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {reason}"),
        );
        error.body.field = Some(field.to_owned());
        error
    }

    /// 422 `missing_field`, naming the field.
    pub fn missing_field(field: &str) -> Self {
        let mut error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
            format!("{field}: is required"),
        );
        error.body.field = Some(field.to_owned());
        error
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).expect("an error body always serializes")
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> Self {
        let message = error.to_string();
        match error {
            LedgerError::AccountExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "account_exists", message)
            }
            LedgerError::AccountNotFound(_) => ApiError::not_found("account_not_found", message),
            LedgerError::HoldNotFound(_) => ApiError::not_found("hold_not_found", message),
            LedgerError::HoldClosed(_) => {
                ApiError::new(StatusCode::CONFLICT, "hold_closed", message)
            }
            LedgerError::InsufficientFunds { available, .. } => {
                let mut e = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "insufficient_funds",
                    message,
                );
                e.body.available = Some(Amount(available));
                e
            }
            LedgerError::HoldAccountMismatch { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "hold_account_mismatch",
                message,
            ),
            LedgerError::HoldAssetMismatch { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "hold_asset_mismatch",
                message,
            ),
            LedgerError::InvalidAmount { field, reason } => ApiError::invalid_field(field, reason),
            LedgerError::Overflow => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "amount_out_of_range",
                message,
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::http::json_bytes(self.status, self.body_bytes())
    }
}

//! The venue's reference data: its instruments, its calendar of sessions
//! and its clock (exchange-sim's `/v1/assets`, `/v1/calendar`,
//! `/v1/clock`). Read by the `reference` job only, never per request.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::exchange::ExchangeClient;
use super::{CallError, read_response, timed, transport_error};

const SERVICE: &str = "exchange";

/// An instrument as the venue lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VenueAsset {
    pub id: String,
    pub symbol: String,
    pub name: String,
    pub exchange: String,
    /// active or inactive.
    pub status: String,
    pub tradable: bool,
    pub shortable: bool,
    pub easy_to_borrow: bool,
    pub fractionable: bool,
    pub marginable: bool,
    pub halted: bool,
    pub tick_size: Decimal,
    pub sub_dollar_tick_size: Decimal,
    pub tick_threshold: Decimal,
    pub lot_size: Decimal,
    pub min_qty: Decimal,
    pub max_qty: Decimal,
}

/// One trading day of the venue's calendar.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VenueSession {
    pub date: NaiveDate,
    pub pre_open: DateTime<Utc>,
    pub open: DateTime<Utc>,
    pub closing_auction: DateTime<Utc>,
    pub close: DateTime<Utc>,
    pub early_close: bool,
}

/// The venue's clock.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VenueClock {
    pub timestamp: DateTime<Utc>,
    /// wall or accelerated.
    pub mode: String,
    pub phase: String,
    pub is_open: bool,
    pub session_date: NaiveDate,
    pub next_open: DateTime<Utc>,
    pub next_close: DateTime<Utc>,
}

impl ExchangeClient {
    /// A `GET` of the venue's reference data.
    async fn reference<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, CallError> {
        timed(SERVICE, endpoint, async {
            let response = self
                .http()
                .get(self.url(path))
                .query(query)
                .bearer_auth(self.api_key())
                .send()
                .await
                .map_err(|e| transport_error(SERVICE, e))?;
            read_response(SERVICE, response).await
        })
        .await
    }

    /// Every instrument the venue lists (active and inactive).
    pub async fn assets(&self) -> Result<Vec<VenueAsset>, CallError> {
        self.reference("assets", "/v1/assets", &[]).await
    }

    /// The venue's sessions dated `start..=end`.
    pub async fn calendar(
        &self,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<VenueSession>, CallError> {
        let query = [("start", start.to_string()), ("end", end.to_string())];
        self.reference("calendar", "/v1/calendar", &query).await
    }

    pub async fn clock(&self) -> Result<VenueClock, CallError> {
        self.reference("clock", "/v1/clock", &[]).await
    }
}

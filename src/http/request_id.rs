//! `X-Request-Id`, end to end: every request to the trader API and the
//! console gets an id — the client's, when it sent a usable one (1 to
//! [`MAX_LEN`] visible ASCII characters), else a fresh UUIDv7. The id is
//! echoed on the response, recorded on the request's span (`request_id`,
//! so every log line of the request carries it), and given to handlers as
//! a request extension ([`RequestId`] is also an extractor) so the actions
//! a request causes record it durably (the accept's and a cancel's
//! `order_events.detail.request_id`, the console's audit events).
//!
//! An unusable client id (empty, too long, a space or a control character,
//! non-ASCII) is ignored, never echoed: a header is not a place to inject
//! log lines or markup.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header, on requests and responses.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client request id kept.
pub const MAX_LEN: usize = 128;

/// One request's id: visible ASCII, 1 to [`MAX_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The client's id, if it is usable.
    pub fn parse(text: &str) -> Option<Self> {
        let usable =
            (1..=MAX_LEN).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        usable.then(|| Self(Arc::from(text)))
    }

    /// A fresh id (a UUIDv7: ordered by time, unique across instances).
    pub fn generate() -> Self {
        Self(Arc::from(uuid::Uuid::now_v7().to_string()))
    }

    /// The id of a request: its usable header, else a fresh one.
    fn of(request: &Request) -> Self {
        request
            .headers()
            .get(&HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(Self::parse)
            .unwrap_or_else(Self::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The middleware: runs inside the request's span (the `TraceLayer`'s,
/// which declares an empty `request_id` field), so the id it records is
/// on every log line of the request.
pub async fn layer(mut request: Request, next: Next) -> Response {
    let id = RequestId::of(&request);
    tracing::Span::current().record("request_id", id.as_str());
    request.extensions_mut().insert(id.clone());
    let mut response = next.run(request).await;
    // Visible ASCII by construction, so always a valid header value.
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// The id the middleware gave the request (a fresh one for a router
/// built without it: a handler always has an id to record).
impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_is_kept_only_when_it_is_visible_ascii_of_usable_length() {
        assert_eq!(
            RequestId::parse("abc-123_X.y").unwrap().as_str(),
            "abc-123_X.y"
        );
        assert!(RequestId::parse(&"a".repeat(MAX_LEN)).is_some());
        for bad in [
            String::new(),
            "a".repeat(MAX_LEN + 1),
            "two words".into(),
            "line\nbreak".into(),
            "tab\there".into(),
            "\u{7f}".into(),
            "café".into(),
        ] {
            assert!(RequestId::parse(&bad).is_none(), "{bad:?} kept");
        }
    }

    #[test]
    fn a_generated_id_is_a_uuid_v7() {
        let id = RequestId::generate();
        let uuid = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        assert!(RequestId::parse(id.as_str()).is_some());
    }
}

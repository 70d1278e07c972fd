//! Clients of the two external services. Each owns its wire types and
//! converts to domain values at this boundary. Every call's failure is
//! classified once, here, as definitive, retryable or unknown; the clients
//! never retry on their own: the lifecycle's durable backoff is the one
//! retry policy.

pub mod balances;
pub mod exchange;
#[cfg(test)]
mod fixtures_test;
pub mod reference;

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(super::segment("AAPL"), "AAPL");
        assert_eq!(super::segment("BRK.B"), "BRK.B");
        assert_eq!(super::segment("a/b?c#d%"), "a%2Fb%3Fc%23d%25");
    }

    /// A body past the cap is not read, with or without a Content-Length.
    #[tokio::test]
    async fn a_response_past_the_cap_is_an_unknown_outcome_not_read() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/sized", get(|| async { "x".repeat(4096) }))
            .route(
                "/streamed",
                get(|| async {
                    let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1024]));
                    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
                }),
            )
            .route("/small", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        crate::install_crypto_provider();
        let client = reqwest::Client::new();
        for path in ["/sized", "/streamed"] {
            let response = client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap();
            let error = super::read_capped("test", response, 2048)
                .await
                .unwrap_err();
            assert!(
                matches!(error, super::CallError::Unknown { ref detail, .. } if detail.contains("larger than 2048")),
                "{path}: {error:?}"
            );
        }
        let response = client
            .get(format!("http://{addr}/small"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            super::read_capped("test", response, 2048).await.unwrap(),
            b"ok"
        );
    }
}

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;

/// A failed call, by what it proves about the remote side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The service answered and refused: nothing happened, and sending the
    /// same request again gets the same answer.
    #[error("{service} refused ({status}): {code} {message}")]
    Definitive {
        service: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// Known not to have taken effect (429, connection refused before
    /// sending, request in flight): try again later.
    #[error("{service}: {detail}")]
    Retryable {
        service: &'static str,
        detail: String,
        retry_after: Option<Duration>,
    },
    /// It may or may not have taken effect (timeout, 5xx, reset).
    #[error("{service}: outcome unknown: {detail}")]
    Unknown {
        service: &'static str,
        detail: String,
    },
    /// A success status with a body we cannot read.
    #[error("{service}: unexpected answer: {detail}")]
    Unexpected {
        service: &'static str,
        detail: String,
    },
}

/// A path segment, percent-encoded: ids and symbols from outside never
/// change the shape of a URL (`/`, `?`, `#`, `%` and the rest escaped).
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The label value of a call's outcome.
pub fn outcome_label<T>(result: &Result<T, CallError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(CallError::Definitive { .. }) => "definitive",
        Err(CallError::Retryable { .. }) => "retryable",
        Err(CallError::Unknown { .. }) => "unknown",
        Err(CallError::Unexpected { .. }) => "unexpected",
    }
}

/// Times an external call and counts its failures: every call of both
/// clients goes through here.
pub(crate) async fn timed<T>(
    service: &'static str,
    endpoint: &'static str,
    call: impl std::future::Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    use crate::metrics::names;
    let started = std::time::Instant::now();
    let result = call.await;
    let outcome = outcome_label(&result);
    metrics::histogram!(names::EXTERNAL_CALL_DURATION, "service" => service, "endpoint" => endpoint, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    if result.is_err() {
        metrics::counter!(names::EXTERNAL_CALL_ERRORS, "service" => service, "endpoint" => endpoint, "kind" => outcome)
            .increment(1);
    }
    result
}

/// Retry-After longer than this is treated as this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(60);

/// Builds the shared HTTP client (connection pool per host).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Classifies a transport error.
pub(crate) fn transport_error(service: &'static str, error: reqwest::Error) -> CallError {
    if error.is_connect() {
        // The connection was never established: the request was not sent.
        CallError::Retryable {
            service,
            detail: format!("cannot connect: {error}"),
            retry_after: None,
        }
    } else {
        // Timeout, reset, broken body: it may have been processed.
        CallError::Unknown {
            service,
            detail: error.to_string(),
        }
    }
}

/// The error body both services use: `{code, message}` (code a number at
/// the venue, a string at the balances service).
#[derive(Debug, serde::Deserialize)]
struct ErrorBody {
    code: serde_json::Value,
    #[serde(default)]
    message: String,
}

/// Largest response body read from the venue or the ledger. A larger one
/// is not read: an unknown outcome (whatever the call did stays to be
/// found by evidence), never an unbounded allocation.
pub const RESPONSE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The body of `response`, up to `max` bytes.
async fn read_capped(
    service: &'static str,
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, CallError> {
    let too_large = || {
        metrics::counter!(crate::metrics::names::RESPONSES_TOO_LARGE, "service" => service)
            .increment(1);
        CallError::Unknown {
            service,
            detail: format!("the response is larger than {max} bytes: not read"),
        }
    };
    if response
        .content_length()
        .is_some_and(|length| length > max as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| transport_error(service, error))?
    {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads a response: 2xx bodies as `T`, everything else classified.
pub(crate) async fn read_response<T: DeserializeOwned>(
    service: &'static str,
    response: reqwest::Response,
) -> Result<T, CallError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(RETRY_AFTER_MAX));
    let bytes = read_capped(service, response, RESPONSE_MAX_BYTES).await?;
    decode_answer(service, status, retry_after, &bytes)
}

/// What an answer with `status` and body `bytes` proves: 2xx bodies as
/// `T`, everything else classified. Pure (the fuzz targets drive it).
pub(crate) fn decode_answer<T: DeserializeOwned>(
    service: &'static str,
    status: StatusCode,
    retry_after: Option<Duration>,
    bytes: &[u8],
) -> Result<T, CallError> {
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|error| CallError::Unexpected {
            service,
            detail: format!("{status}: {error}"),
        });
    }
    let body: Option<ErrorBody> = serde_json::from_slice(bytes).ok();
    let (code, message) = match body {
        Some(b) => (
            match b.code {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
            b.message,
        ),
        None => (
            String::new(),
            String::from_utf8_lossy(bytes).chars().take(200).collect(),
        ),
    };
    Err(classify_status(service, status, code, message, retry_after))
}

fn classify_status(
    service: &'static str,
    status: StatusCode,
    code: String,
    message: String,
    retry_after: Option<Duration>,
) -> CallError {
    match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::CONFLICT => CallError::Retryable {
            service,
            detail: format!("{status} {code} {message}"),
            retry_after,
        },
        s if s.is_server_error() => CallError::Unknown {
            service,
            detail: format!("{status} {code} {message}"),
        },
        s => CallError::Definitive {
            service,
            status: s.as_u16(),
            code,
            message,
        },
    }
}

//! Each bound of the trader API, driven past: the documented answer, and
//! the server still serving.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestStack, Trader};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(stack: &TestStack) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    tokio_tungstenite::connect_async(format!("ws://{}/stream", stack.app.addr))
        .await
        .map(|(socket, _)| socket)
}

async fn next_json(socket: &mut Socket) -> Option<Value> {
    let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("an answer in time")?;
    match message.ok()? {
        Message::Text(text) => serde_json::from_str(&text).ok(),
        _ => None,
    }
}

async fn authenticated(stack: &TestStack, trader: &Trader) -> (Socket, Value) {
    let mut socket = connect(stack).await.expect("connect");
    socket
        .send(Message::text(
            json!({"action": "authenticate",
                "data": {"key_id": trader.key_id, "secret_key": trader.secret_key}})
            .to_string(),
        ))
        .await
        .expect("authenticate");
    let answer = next_json(&mut socket).await.expect("an answer");
    (socket, answer)
}

#[tokio::test]
async fn stream_sessions_are_capped_per_account_and_per_instance() {
    let stack = TestStack::spawn_with(|s| {
        s.http.stream_sessions_max = 3;
        s.http.stream_sessions_per_account = 2;
    })
    .await;
    let busy = stack.trader(&[("USD", "1000")]).await;
    let other = stack.trader(&[("USD", "1000")]).await;
    let (first, answer) = authenticated(&stack, &busy).await;
    assert_eq!(answer["data"]["status"], "authorized");
    let (_second, answer) = authenticated(&stack, &busy).await;
    assert_eq!(answer["data"]["status"], "authorized");
    // A third for the same account: Alpaca's connection-limit error, closed.
    let (mut third, answer) = authenticated(&stack, &busy).await;
    assert_eq!(answer["stream"], "error", "{answer}");
    assert_eq!(answer["data"]["code"], 406);
    assert!(next_json(&mut third).await.is_none(), "closed");
    // Another account still gets in (the refused session gave its place back).
    let (_other, answer) = authenticated(&stack, &other).await;
    assert_eq!(answer["data"]["status"], "authorized");
    // The instance is full: the upgrade itself is refused, 503.
    match connect(&stack).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert!(response.headers().get("retry-after").is_some());
        }
        other => panic!("a fourth session was let in: {:?}", other.map(|_| ())),
    }
    // A session that ends gives its place back.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(mut socket) = connect(&stack).await {
            socket.close(None).await.ok();
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_oversized_stream_message_closes_that_session_only() {
    let stack = TestStack::spawn_with(|s| s.http.stream_message_max_bytes = 2048).await;
    let trader = stack.trader(&[("USD", "1000")]).await;
    let mut socket = connect(&stack).await.expect("connect");
    // A valid authentication, padded past the bound: refused for its size.
    let huge = json!({"action": "authenticate",
        "data": {"key_id": trader.key_id, "secret_key": trader.secret_key},
        "pad": "x".repeat(10_000)})
    .to_string();
    // The send may already fail; either way the server ends the session.
    let _ = socket.send(Message::text(huge)).await;
    // Refused as an authentication that never came, then closed.
    if let Some(answer) = next_json(&mut socket).await {
        assert_eq!(answer["data"]["status"], "unauthorized", "{answer}");
        assert!(next_json(&mut socket).await.is_none(), "closed");
    }
    let (_fresh, answer) = authenticated(&stack, &trader).await;
    assert_eq!(answer["data"]["status"], "authorized", "still serving");
}

#[tokio::test]
async fn a_revoked_keys_stream_session_ends_within_the_auth_cache_time() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000")]).await;
    let (mut socket, answer) = authenticated(&stack, &trader).await;
    assert_eq!(answer["data"]["status"], "authorized");
    orderd::store::accounts::revoke_key(&stack.app.db.pool, &trader.key_id)
        .await
        .unwrap()
        .expect("the key");
    let revoked_at = tokio::time::Instant::now();
    let told = next_json(&mut socket).await.expect("told");
    assert_eq!(told["data"]["status"], "unauthorized", "{told}");
    assert!(next_json(&mut socket).await.is_none(), "closed");
    // http.auth_cache_ms is at most a second; a little slack for the read.
    assert!(
        revoked_at.elapsed() <= Duration::from_millis(1500),
        "{:?}",
        revoked_at.elapsed()
    );
}

#[tokio::test]
async fn past_max_connections_the_next_waits_until_one_closes() {
    let stack = TestStack::spawn_with(|s| s.http.max_connections = 2).await;
    // Two idle connections take both places.
    let first = tokio::net::TcpStream::connect(stack.app.addr)
        .await
        .unwrap();
    let _second = tokio::net::TcpStream::connect(stack.app.addr)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let url = stack.app.url("/healthz");
    let waiting = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a third connection was served");
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a place was free")
        .unwrap()
        .expect("an answer");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_request_past_its_deadline_is_503_with_retry_after() {
    let stack = TestStack::spawn_with(|s| {
        s.lifecycle.submit_deadline_ms = 100;
        s.http.request_timeout_ms = 300;
    })
    .await;
    let trader = stack.trader(&[("USD", "1000")]).await;
    // The ledger answers every read in 1 to 1.2 s.
    stack
        .put_balances_faults(
            json!({"latency": 1.0, "latency_ms_min": 1000, "latency_ms_max": 1200}),
        )
        .await;
    let started = tokio::time::Instant::now();
    let reply = trader.get("/v2/account").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["code"], 50310000);
    assert!(reply.headers.get("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    stack.put_balances_faults(json!({})).await;
    assert_eq!(trader.get("/v2/account").await.status, 200);
}

#[tokio::test]
async fn a_silent_connection_is_closed_and_gives_its_place_back() {
    use tokio::io::AsyncReadExt;
    let stack = TestStack::spawn_with(|s| {
        s.http.max_connections = 1;
        s.http.first_byte_timeout_ms = 300;
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(stack.app.addr)
        .await
        .unwrap();
    // The only place is taken by a connection that says nothing; it is
    // closed after the timeout and the next client is served.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf))
        .await
        .expect("closed by the server");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    let status = tokio::time::timeout(
        Duration::from_secs(3),
        reqwest::get(stack.app.url("/healthz")),
    )
    .await
    .expect("served")
    .expect("an answer")
    .status();
    assert_eq!(status, 200);
}

//! Test harness: the venue on 127.0.0.1:0, a typed HTTP client and a stream client.

use std::time::Duration;

use exchange_sim::{Config, Handle};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEY: &str = "sim-venue-key";
/// Longest a test waits for one stream message.
pub const STREAM_WAIT: Duration = Duration::from_secs(5);

/// Fast settings: frozen prices, short fill intervals, quick heartbeats.
pub fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        walk_step_bps: 0.into(),
        fill_interval_ms: 10,
        fill_chunks_min: 2,
        fill_chunks_max: 3,
        market_tick_ms: 2,
        heartbeat_ms: 200,
        ..Config::default()
    }
}

pub struct Sim {
    pub handle: Handle,
    pub http: reqwest::Client,
}

pub async fn start() -> Sim {
    start_with(test_config()).await
}

pub async fn start_with(config: Config) -> Sim {
    let handle = exchange_sim::spawn(config).await.expect("spawn");
    // reqwest is built without a TLS provider choice; plain http needs none,
    // but the client insists on one being installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().expect("client");
    Sim { handle, http }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.handle.base_url(), path)
    }

    async fn finish(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!("non-JSON body ({e}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("send");
        Self::finish(resp).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        let resp = self
            .http
            .delete(self.url(path))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("send");
        Self::finish(resp).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .expect("send");
        Self::finish(resp).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        Self::finish(resp).await
    }

    pub async fn put_faults(&self, profile: Value) -> Reply {
        let resp = self
            .http
            .put(self.url("/admin/faults"))
            .json(&profile)
            .send()
            .await
            .expect("send");
        Self::finish(resp).await
    }

    pub async fn admin_get(&self, path: &str) -> Reply {
        let resp = self.http.get(self.url(path)).send().await.expect("send");
        Self::finish(resp).await
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Reply {
        let resp = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("send");
        Self::finish(resp).await
    }

    /// `POST /admin/clock/advance` to the next start of `phase`; the new clock.
    pub async fn advance(&self, phase: &str) -> Value {
        let reply = self
            .admin_post("/admin/clock/advance", &json!({"to": phase}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["phase"], phase, "{}", reply.body);
        reply.body
    }

    /// Places an order; `limit` None = market.
    pub async fn place(
        &self,
        coid: &str,
        symbol: &str,
        side: &str,
        tif: &str,
        qty: &str,
        limit: Option<&str>,
    ) -> Reply {
        let mut body = json!({
            "client_order_id": coid, "symbol": symbol, "side": side,
            "type": if limit.is_some() { "limit" } else { "market" },
            "time_in_force": tif, "qty": qty,
        });
        if let Some(px) = limit {
            body["limit_price"] = json!(px);
        }
        self.post_json("/v1/orders", &body).await
    }

    pub async fn order(&self, id: &str) -> Reply {
        self.get(&format!("/v1/orders/{id}")).await
    }

    /// Polls the order until `pred` holds (bounded).
    pub async fn wait_order(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..500 {
            let reply = self.order(id).await;
            if reply.status == StatusCode::OK && pred(&reply.body) {
                return reply.body;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "order {id} never reached the expected state: {:?}",
            self.order(id).await.body
        );
    }

    pub async fn stream(&self) -> Stream {
        let (mut ws, _) = tokio_tungstenite::connect_async(self.handle.stream_url())
            .await
            .expect("connect");
        ws.send(Message::text(
            json!({"action": "auth", "key": KEY}).to_string(),
        ))
        .await
        .expect("auth");
        let mut stream = Stream { ws };
        let ack = stream.next_json().await.expect("auth answer");
        assert_eq!(ack, json!({"type": "auth", "status": "authorized"}));
        stream
    }
}

pub struct Stream {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Stream {
    /// Next text message as JSON; None if the connection closed.
    pub async fn next_json(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(STREAM_WAIT, self.ws.next())
                .await
                .expect("stream message in time");
            match msg {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).expect("json"));
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Next execution report (heartbeats skipped).
    pub async fn next_report(&mut self) -> Value {
        loop {
            let msg = self.next_json().await.expect("stream open");
            if msg["type"] == "execution_report" {
                return msg;
            }
        }
    }

    /// Reports of `order_id` until one with a terminal status and, if
    /// `then` is given, that many more reports of the order.
    pub async fn reports_until_terminal(&mut self, order_id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let r = self.next_report().await;
            if r["order_id"] == order_id {
                let terminal = matches!(
                    r["status"].as_str(),
                    Some("filled" | "canceled" | "expired" | "rejected" | "replaced")
                );
                out.push(r);
                if terminal {
                    return out;
                }
            }
        }
    }

    /// All reports of `order_id` within `window` (no heartbeat filtering of seq checks).
    pub async fn collect_for(&mut self, window: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(msg) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match msg {
                Some(Ok(Message::Text(text))) => {
                    out.push(serde_json::from_str(text.as_str()).expect("json"))
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
        out
    }
}

pub fn dec(v: &Value) -> rust_decimal::Decimal {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
}

pub fn id_of(reply: &Reply) -> String {
    reply.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {:?} {}", reply.status, reply.body))
        .to_owned()
}

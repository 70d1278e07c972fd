//! `TestApp`: a simulator on port 0 plus typed helpers.

use balances_sim::{Config, Handle};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub struct TestApp {
    pub handle: Handle,
    pub client: reqwest::Client,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }

    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Config::default()).await
}

pub async fn spawn_app_with(mut config: Config) -> TestApp {
    config.listen = "127.0.0.1:0".parse().unwrap();
    let handle = balances_sim::spawn(config).await.expect("spawn");
    // reqwest is built with `rustls-no-provider`; plain http still wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    TestApp { handle, client }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.url())
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request failed");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "non-JSON body ({status}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        self.send(request).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn put_faults(&self, faults: Value) -> Value {
        self.send(self.client.put(self.url("/admin/faults")).json(&faults))
            .await
            .expect(200)
    }

    pub async fn create_account(&self, account_id: &str, balances: Value) -> Value {
        self.post(
            "/admin/accounts",
            &json!({"account_id": account_id, "balances": balances}),
        )
        .await
        .expect(201)
    }

    pub async fn hold(&self, key: &str, account_id: &str, asset: &str, amount: &str) -> Reply {
        let body = json!({
            "idempotency_key": key,
            "account_id": account_id,
            "asset": asset,
            "amount": amount,
            "reference": {"order_id": format!("order-{key}"), "client_order_id": format!("coid-{key}")},
        });
        self.post("/v1/holds", &body).await
    }

    pub async fn release(&self, hold_id: &str, key: &str, amount: Option<&str>) -> Reply {
        let mut body = json!({"idempotency_key": key});
        if let Some(amount) = amount {
            body["amount"] = json!(amount);
        }
        self.post(&format!("/v1/holds/{hold_id}/release"), &body)
            .await
    }

    pub async fn increase(&self, hold_id: &str, key: &str, amount: &str) -> Reply {
        let body = json!({"idempotency_key": key, "amount": amount});
        self.post(&format!("/v1/holds/{hold_id}/increase"), &body)
            .await
    }

    pub async fn balance(&self, account_id: &str, asset: &str) -> (String, String, String) {
        let body = self
            .get(&format!("/v1/accounts/{account_id}/balances"))
            .await
            .expect(200);
        let b = &body["balances"][asset];
        let s = |k: &str| b[k].as_str().unwrap_or("0").to_owned();
        (s("total"), s("held"), s("available"))
    }

    pub async fn ground_truth(&self) -> Value {
        self.get("/admin/ground-truth").await.expect(200)
    }

    pub async fn stats(&self) -> Value {
        self.get("/admin/stats").await.expect(200)
    }
}

/// (total, held, available) as string literals, for assertions.
pub fn tha(total: &str, held: &str, available: &str) -> (String, String, String) {
    (total.to_owned(), held.to_owned(), available.to_owned())
}
